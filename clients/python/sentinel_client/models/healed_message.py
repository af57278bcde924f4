from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.healed_by import HealedBy
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.canonical_message import CanonicalMessage





T = TypeVar("T", bound="HealedMessage")



@_attrs_define
class HealedMessage:
    """ A healing job's result, typed: `webhook.inbound` and `payload.heal`.

        Attributes:
            message (CanonicalMessage): The canonical message: the one healed form of every inbound event
                (`docs/CANONICAL.md`). The
                same schema, as JSON Schema, is served at `/v1/schemas/canonical-message`.
            healed_by (HealedBy): Which step produced the message.
            reply (None | str | Unset): The agent's reply (inbound messages with text): the reply of the conversation's turn
                that
                answered it (a burst of messages gets one reply), null until that turn has answered.
            delivery (Any | Unset): `{job_id}` of the `reply.deliver` job, or `{skipped}` with the reason.
            heal_confidence (str | Unset): `high` for the adapter and repair, `medium` for the extractor; for the model,
                `medium` when
                every field it chose was one of the paths it was shown and some layer's keys name the
                conversation it chose without a rival, `low` otherwise: a guess.
                Absent on messages healed before this field existed.
            heal_trace (Any | Unset): How the message was made: `unwrapped`, how the object it was read from was reached,
                outermost first (`"<pointer>: <decoder>"` for a string decoded inside a layer, e.g.
                `"/Records/0/body: json"`; `"<decoder>"` for a decoded text, e.g. `"json"` after
                `base64`; then the object's pointer in its layer, e.g. `"/detail"`), and `fields`, the JSON
                pointer each field was read from in that layer (every step but the model;
                docs/CANONICAL.md). Absent when neither.
            reply_skipped (Any | Unset): Why no automatic reply was sent although the message has text: `{reason, healed_by,
                reply_policy}`, when the source's `reply_policy` does not cover the step that healed it.
     """

    message: CanonicalMessage
    healed_by: HealedBy
    reply: None | str | Unset = UNSET
    delivery: Any | Unset = UNSET
    heal_confidence: str | Unset = UNSET
    heal_trace: Any | Unset = UNSET
    reply_skipped: Any | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.canonical_message import CanonicalMessage # noqa: PLC0415
        message = self.message.to_dict()

        healed_by = self.healed_by.value

        reply: None | str | Unset
        if isinstance(self.reply, Unset):
            reply = UNSET
        else:
            reply = self.reply

        delivery = self.delivery

        heal_confidence = self.heal_confidence

        heal_trace = self.heal_trace

        reply_skipped = self.reply_skipped


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "message": message,
            "healed_by": healed_by,
        })
        if reply is not UNSET:
            field_dict["reply"] = reply
        if delivery is not UNSET:
            field_dict["delivery"] = delivery
        if heal_confidence is not UNSET:
            field_dict["heal_confidence"] = heal_confidence
        if heal_trace is not UNSET:
            field_dict["heal_trace"] = heal_trace
        if reply_skipped is not UNSET:
            field_dict["reply_skipped"] = reply_skipped

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.canonical_message import CanonicalMessage # noqa: PLC0415
        d = dict(src_dict)
        message = CanonicalMessage.from_dict(d.pop("message"))




        healed_by = HealedBy(d.pop("healed_by"))




        def _parse_reply(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reply = _parse_reply(d.pop("reply", UNSET))


        delivery = d.pop("delivery", UNSET)

        heal_confidence = d.pop("heal_confidence", UNSET)

        heal_trace = d.pop("heal_trace", UNSET)

        reply_skipped = d.pop("reply_skipped", UNSET)

        healed_message = cls(
            message=message,
            healed_by=healed_by,
            reply=reply,
            delivery=delivery,
            heal_confidence=heal_confidence,
            heal_trace=heal_trace,
            reply_skipped=reply_skipped,
        )


        healed_message.additional_properties = d
        return healed_message

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
