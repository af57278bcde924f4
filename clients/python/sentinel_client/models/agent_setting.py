from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.agent_mode_name import AgentModeName
from ..types import UNSET, Unset






T = TypeVar("T", bound="AgentSetting")



@_attrs_define
class AgentSetting:
    """ A source's agent. For `forward`, Sentinel POSTs each healed message with text to `url` as a
    Standard Webhook (`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed with the
    source's agent secret): `{"type": "message.received", "timestamp", "data": {"job_id",
    "source_id", "message", "history"}}`. A 2xx `{"reply": "…"}` sends the reply; 429 or 503 with
    `Retry-After` waits that long; other 5xx and timeouts are retried with backoff; other 4xx end
    the job dead. The URL must be public unless the operator's `SENTINEL_FORWARD_ALLOW` names its
    host or address range.

        Attributes:
            mode (AgentModeName): Who answers a source's messages.
            url (str | Unset): `forward` only: where messages are POSTed (http or https).
            max_in_flight (int | Unset): `forward` only: the most requests outstanding to the agent at once, across all
                workers;
                default 4.
            timeout_ms (int | Unset): `forward` only: how long a request may take before it is retried; default 10000.
     """

    mode: AgentModeName
    url: str | Unset = UNSET
    max_in_flight: int | Unset = UNSET
    timeout_ms: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        mode = self.mode.value

        url = self.url

        max_in_flight = self.max_in_flight

        timeout_ms = self.timeout_ms


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "mode": mode,
        })
        if url is not UNSET:
            field_dict["url"] = url
        if max_in_flight is not UNSET:
            field_dict["max_in_flight"] = max_in_flight
        if timeout_ms is not UNSET:
            field_dict["timeout_ms"] = timeout_ms

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        mode = AgentModeName(d.pop("mode"))




        url = d.pop("url", UNSET)

        max_in_flight = d.pop("max_in_flight", UNSET)

        timeout_ms = d.pop("timeout_ms", UNSET)

        agent_setting = cls(
            mode=mode,
            url=url,
            max_in_flight=max_in_flight,
            timeout_ms=timeout_ms,
        )


        agent_setting.additional_properties = d
        return agent_setting

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
