from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.conversation_state import ConversationState
from ..types import UNSET, Unset
from typing import cast
from uuid import UUID
import datetime

if TYPE_CHECKING:
  from ..models.conversation_message import ConversationMessage
  from ..models.conversation_turn import ConversationTurn





T = TypeVar("T", bound="Conversation")



@_attrs_define
class Conversation:
    """ A conversation and a window of its transcript: the unanswered messages and the last `limit`
    answered ones (oldest first), with the turns that answered them.

        Attributes:
            source_id (UUID):
            conversation_id (str):
            platform (str):
            state (ConversationState): Where a conversation stands.
            last_message_at (datetime.datetime):
            turns (list[ConversationTurn]): Oldest first.
            created_at (datetime.datetime):
            messages (list[ConversationMessage]): Oldest first: answered messages by position, then the unanswered ones in
                the order the
                next turn takes them.
            turn_job_id (int | None | Unset): The job of the turn holding the lane (`agent.reply`, `agent.turn` or
                `agent.forward`).
            next_start_at (datetime.datetime | None | Unset): When the next turn may start (`waiting`).
            next_before (int | Unset): Pass as `before` for the older part of the transcript; absent when there is none.
     """

    source_id: UUID
    conversation_id: str
    platform: str
    state: ConversationState
    last_message_at: datetime.datetime
    turns: list[ConversationTurn]
    created_at: datetime.datetime
    messages: list[ConversationMessage]
    turn_job_id: int | None | Unset = UNSET
    next_start_at: datetime.datetime | None | Unset = UNSET
    next_before: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.conversation_message import ConversationMessage # noqa: PLC0415
        from ..models.conversation_turn import ConversationTurn # noqa: PLC0415
        source_id = str(self.source_id)

        conversation_id = self.conversation_id

        platform = self.platform

        state = self.state.value

        last_message_at = self.last_message_at.isoformat()

        turns = []
        for turns_item_data in self.turns:
            turns_item = turns_item_data.to_dict()
            turns.append(turns_item)



        created_at = self.created_at.isoformat()

        messages = []
        for messages_item_data in self.messages:
            messages_item = messages_item_data.to_dict()
            messages.append(messages_item)



        turn_job_id: int | None | Unset
        if isinstance(self.turn_job_id, Unset):
            turn_job_id = UNSET
        else:
            turn_job_id = self.turn_job_id

        next_start_at: None | str | Unset
        if isinstance(self.next_start_at, Unset):
            next_start_at = UNSET
        elif isinstance(self.next_start_at, datetime.datetime):
            next_start_at = self.next_start_at.isoformat()
        else:
            next_start_at = self.next_start_at

        next_before = self.next_before


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "source_id": source_id,
            "conversation_id": conversation_id,
            "platform": platform,
            "state": state,
            "last_message_at": last_message_at,
            "turns": turns,
            "created_at": created_at,
            "messages": messages,
        })
        if turn_job_id is not UNSET:
            field_dict["turn_job_id"] = turn_job_id
        if next_start_at is not UNSET:
            field_dict["next_start_at"] = next_start_at
        if next_before is not UNSET:
            field_dict["next_before"] = next_before

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.conversation_message import ConversationMessage # noqa: PLC0415
        from ..models.conversation_turn import ConversationTurn # noqa: PLC0415
        d = dict(src_dict)
        source_id = UUID(d.pop("source_id"))




        conversation_id = d.pop("conversation_id")

        platform = d.pop("platform")

        state = ConversationState(d.pop("state"))




        last_message_at = datetime.datetime.fromisoformat(d.pop("last_message_at"))




        turns = []
        _turns = d.pop("turns")
        for turns_item_data in (_turns):
            turns_item = ConversationTurn.from_dict(turns_item_data)



            turns.append(turns_item)


        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        messages = []
        _messages = d.pop("messages")
        for messages_item_data in (_messages):
            messages_item = ConversationMessage.from_dict(messages_item_data)



            messages.append(messages_item)


        def _parse_turn_job_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        turn_job_id = _parse_turn_job_id(d.pop("turn_job_id", UNSET))


        def _parse_next_start_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                next_start_at_type_0 = datetime.datetime.fromisoformat(data)



                return next_start_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        next_start_at = _parse_next_start_at(d.pop("next_start_at", UNSET))


        next_before = d.pop("next_before", UNSET)

        conversation = cls(
            source_id=source_id,
            conversation_id=conversation_id,
            platform=platform,
            state=state,
            last_message_at=last_message_at,
            turns=turns,
            created_at=created_at,
            messages=messages,
            turn_job_id=turn_job_id,
            next_start_at=next_start_at,
            next_before=next_before,
        )


        conversation.additional_properties = d
        return conversation

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
