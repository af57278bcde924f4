from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
import datetime






T = TypeVar("T", bound="ConversationMessage")



@_attrs_define
class ConversationMessage:
    """ A user's message in a transcript.

        Attributes:
            inbound_job_id (int): The `webhook.inbound` job that carried it (`GET /v1/jobs/{id}/message`: its healed
                message and raw payload).
            text (str):
            arrived_at (datetime.datetime): When the gateway acknowledged it.
            position (int | None | Unset): Its place in the history the agent sees; absent while no turn has taken it.
            order_key (None | str | Unset): The platform's order (Telegram's `update_id`, WhatsApp's timestamp, Slack's
                `ts`), as a
                decimal; absent: the order of arrival.
            turn_job_id (int | None | Unset): The turn that answers it.
            dropped (None | str | Unset): Why no turn answers it (the reply policy refused it, the source's agent is
                `none`).
     """

    inbound_job_id: int
    text: str
    arrived_at: datetime.datetime
    position: int | None | Unset = UNSET
    order_key: None | str | Unset = UNSET
    turn_job_id: int | None | Unset = UNSET
    dropped: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        inbound_job_id = self.inbound_job_id

        text = self.text

        arrived_at = self.arrived_at.isoformat()

        position: int | None | Unset
        if isinstance(self.position, Unset):
            position = UNSET
        else:
            position = self.position

        order_key: None | str | Unset
        if isinstance(self.order_key, Unset):
            order_key = UNSET
        else:
            order_key = self.order_key

        turn_job_id: int | None | Unset
        if isinstance(self.turn_job_id, Unset):
            turn_job_id = UNSET
        else:
            turn_job_id = self.turn_job_id

        dropped: None | str | Unset
        if isinstance(self.dropped, Unset):
            dropped = UNSET
        else:
            dropped = self.dropped


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "inbound_job_id": inbound_job_id,
            "text": text,
            "arrived_at": arrived_at,
        })
        if position is not UNSET:
            field_dict["position"] = position
        if order_key is not UNSET:
            field_dict["order_key"] = order_key
        if turn_job_id is not UNSET:
            field_dict["turn_job_id"] = turn_job_id
        if dropped is not UNSET:
            field_dict["dropped"] = dropped

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        inbound_job_id = d.pop("inbound_job_id")

        text = d.pop("text")

        arrived_at = datetime.datetime.fromisoformat(d.pop("arrived_at"))




        def _parse_position(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        position = _parse_position(d.pop("position", UNSET))


        def _parse_order_key(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        order_key = _parse_order_key(d.pop("order_key", UNSET))


        def _parse_turn_job_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        turn_job_id = _parse_turn_job_id(d.pop("turn_job_id", UNSET))


        def _parse_dropped(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        dropped = _parse_dropped(d.pop("dropped", UNSET))


        conversation_message = cls(
            inbound_job_id=inbound_job_id,
            text=text,
            arrived_at=arrived_at,
            position=position,
            order_key=order_key,
            turn_job_id=turn_job_id,
            dropped=dropped,
        )


        conversation_message.additional_properties = d
        return conversation_message

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
