from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="SendMessage")



@_attrs_define
class SendMessage:
    """ A message to send through the source's platform, with its reply credentials.

        Attributes:
            conversation_id (str): The conversation, as the platform names it: Telegram's chat id, WhatsApp's customer
                number
                (`wa_id`), Slack's channel id.
            text (str): At most 4096 characters.
            reply_to (str | Unset): The message it answers: Telegram's `message_id`, WhatsApp's message id (`wamid…`), or
                the
                Slack thread's `ts`.
     """

    conversation_id: str
    text: str
    reply_to: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        conversation_id = self.conversation_id

        text = self.text

        reply_to = self.reply_to


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "conversation_id": conversation_id,
            "text": text,
        })
        if reply_to is not UNSET:
            field_dict["reply_to"] = reply_to

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        conversation_id = d.pop("conversation_id")

        text = d.pop("text")

        reply_to = d.pop("reply_to", UNSET)

        send_message = cls(
            conversation_id=conversation_id,
            text=text,
            reply_to=reply_to,
        )


        send_message.additional_properties = d
        return send_message

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
