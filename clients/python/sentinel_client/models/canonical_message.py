from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.canonical_event_type import CanonicalEventType
from ..models.canonical_platform import CanonicalPlatform
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.attachment import Attachment





T = TypeVar("T", bound="CanonicalMessage")



@_attrs_define
class CanonicalMessage:
    """ The canonical message: the one healed form of every inbound event (`docs/CANONICAL.md`). The
    same schema, as JSON Schema, is served at `/v1/schemas/canonical-message`.

        Attributes:
            platform (CanonicalPlatform):
            event_type (CanonicalEventType):
            attachments (list[Attachment]):
            event_id (None | str | Unset):
            conversation_id (None | str | Unset):
            sender_id (None | str | Unset):
            sender_name (None | str | Unset):
            text (None | str | Unset):
            sent_at (None | str | Unset): RFC 3339.
            reply_to (None | str | Unset):
     """

    platform: CanonicalPlatform
    event_type: CanonicalEventType
    attachments: list[Attachment]
    event_id: None | str | Unset = UNSET
    conversation_id: None | str | Unset = UNSET
    sender_id: None | str | Unset = UNSET
    sender_name: None | str | Unset = UNSET
    text: None | str | Unset = UNSET
    sent_at: None | str | Unset = UNSET
    reply_to: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.attachment import Attachment # noqa: PLC0415
        platform = self.platform.value

        event_type = self.event_type.value

        attachments = []
        for attachments_item_data in self.attachments:
            attachments_item = attachments_item_data.to_dict()
            attachments.append(attachments_item)



        event_id: None | str | Unset
        if isinstance(self.event_id, Unset):
            event_id = UNSET
        else:
            event_id = self.event_id

        conversation_id: None | str | Unset
        if isinstance(self.conversation_id, Unset):
            conversation_id = UNSET
        else:
            conversation_id = self.conversation_id

        sender_id: None | str | Unset
        if isinstance(self.sender_id, Unset):
            sender_id = UNSET
        else:
            sender_id = self.sender_id

        sender_name: None | str | Unset
        if isinstance(self.sender_name, Unset):
            sender_name = UNSET
        else:
            sender_name = self.sender_name

        text: None | str | Unset
        if isinstance(self.text, Unset):
            text = UNSET
        else:
            text = self.text

        sent_at: None | str | Unset
        if isinstance(self.sent_at, Unset):
            sent_at = UNSET
        else:
            sent_at = self.sent_at

        reply_to: None | str | Unset
        if isinstance(self.reply_to, Unset):
            reply_to = UNSET
        else:
            reply_to = self.reply_to


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "platform": platform,
            "event_type": event_type,
            "attachments": attachments,
        })
        if event_id is not UNSET:
            field_dict["event_id"] = event_id
        if conversation_id is not UNSET:
            field_dict["conversation_id"] = conversation_id
        if sender_id is not UNSET:
            field_dict["sender_id"] = sender_id
        if sender_name is not UNSET:
            field_dict["sender_name"] = sender_name
        if text is not UNSET:
            field_dict["text"] = text
        if sent_at is not UNSET:
            field_dict["sent_at"] = sent_at
        if reply_to is not UNSET:
            field_dict["reply_to"] = reply_to

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.attachment import Attachment # noqa: PLC0415
        d = dict(src_dict)
        platform = CanonicalPlatform(d.pop("platform"))




        event_type = CanonicalEventType(d.pop("event_type"))




        attachments = []
        _attachments = d.pop("attachments")
        for attachments_item_data in (_attachments):
            attachments_item = Attachment.from_dict(attachments_item_data)



            attachments.append(attachments_item)


        def _parse_event_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        event_id = _parse_event_id(d.pop("event_id", UNSET))


        def _parse_conversation_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        conversation_id = _parse_conversation_id(d.pop("conversation_id", UNSET))


        def _parse_sender_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sender_id = _parse_sender_id(d.pop("sender_id", UNSET))


        def _parse_sender_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sender_name = _parse_sender_name(d.pop("sender_name", UNSET))


        def _parse_text(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        text = _parse_text(d.pop("text", UNSET))


        def _parse_sent_at(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sent_at = _parse_sent_at(d.pop("sent_at", UNSET))


        def _parse_reply_to(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reply_to = _parse_reply_to(d.pop("reply_to", UNSET))


        canonical_message = cls(
            platform=platform,
            event_type=event_type,
            attachments=attachments,
            event_id=event_id,
            conversation_id=conversation_id,
            sender_id=sender_id,
            sender_name=sender_name,
            text=text,
            sent_at=sent_at,
            reply_to=reply_to,
        )


        canonical_message.additional_properties = d
        return canonical_message

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
