from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
import datetime






T = TypeVar("T", bound="AgentView")



@_attrs_define
class AgentView:
    """ A source's agent as the API shows it.

        Attributes:
            mode (str): `builtin`, `none`, `external` or `forward`.
            url (str | Unset):
            max_in_flight (int | Unset):
            timeout_ms (int | Unset):
            secret (str | Unset): The signing secret of forward requests (`whsec_…`), only in the answer that made it: the
                creation of a forwarding source, a switch to `forward`, or `rotate_agent_secret`. It is
                never shown again.
            previous_secret_until (datetime.datetime | Unset): After a rotation, the previous secret also signs forward
                requests until this time.
     """

    mode: str
    url: str | Unset = UNSET
    max_in_flight: int | Unset = UNSET
    timeout_ms: int | Unset = UNSET
    secret: str | Unset = UNSET
    previous_secret_until: datetime.datetime | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        mode = self.mode

        url = self.url

        max_in_flight = self.max_in_flight

        timeout_ms = self.timeout_ms

        secret = self.secret

        previous_secret_until: str | Unset = UNSET
        if not isinstance(self.previous_secret_until, Unset):
            previous_secret_until = self.previous_secret_until.isoformat()


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
        if secret is not UNSET:
            field_dict["secret"] = secret
        if previous_secret_until is not UNSET:
            field_dict["previous_secret_until"] = previous_secret_until

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        mode = d.pop("mode")

        url = d.pop("url", UNSET)

        max_in_flight = d.pop("max_in_flight", UNSET)

        timeout_ms = d.pop("timeout_ms", UNSET)

        secret = d.pop("secret", UNSET)

        _previous_secret_until = d.pop("previous_secret_until", UNSET)
        previous_secret_until: datetime.datetime | Unset
        if isinstance(_previous_secret_until,  Unset):
            previous_secret_until = UNSET
        else:
            previous_secret_until = datetime.datetime.fromisoformat(_previous_secret_until)




        agent_view = cls(
            mode=mode,
            url=url,
            max_in_flight=max_in_flight,
            timeout_ms=timeout_ms,
            secret=secret,
            previous_secret_until=previous_secret_until,
        )


        agent_view.additional_properties = d
        return agent_view

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
