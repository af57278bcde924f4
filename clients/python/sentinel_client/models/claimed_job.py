from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
import datetime






T = TypeVar("T", bound="ClaimedJob")



@_attrs_define
class ClaimedJob:
    """ 
        Attributes:
            id (int):
            kind (str):
            attempt (int): 1 on the first attempt.
            max_attempts (int):
            priority (int):
            lease (str): The fencing token every later call about this job must carry.
            lease_expires_at (datetime.datetime):
            input_ (Any): An `agent.turn`'s input is `{source_id, platform, inbound_job_id, message, messages,
                history, address}`: `history` is the conversation's last messages before the turn's own
                (`{role: user | agent, text}`, oldest first, read when the job is claimed, so it holds the
                reply of the turn before), and `address` where the reply goes.
            created_at (datetime.datetime):
            message (Any | Unset): For an `agent.turn`: the canonical message to answer, the last of `messages`. Answer the
                turn with `complete`'s `reply`.
            messages (list[Any] | Unset): For an `agent.turn`: every message the turn answers, oldest first (a burst of
                messages is
                one turn).
     """

    id: int
    kind: str
    attempt: int
    max_attempts: int
    priority: int
    lease: str
    lease_expires_at: datetime.datetime
    input_: Any
    created_at: datetime.datetime
    message: Any | Unset = UNSET
    messages: list[Any] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = self.id

        kind = self.kind

        attempt = self.attempt

        max_attempts = self.max_attempts

        priority = self.priority

        lease = self.lease

        lease_expires_at = self.lease_expires_at.isoformat()

        input_ = self.input_

        created_at = self.created_at.isoformat()

        message = self.message

        messages: list[Any] | Unset = UNSET
        if not isinstance(self.messages, Unset):
            messages = self.messages




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "kind": kind,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "priority": priority,
            "lease": lease,
            "lease_expires_at": lease_expires_at,
            "input": input_,
            "created_at": created_at,
        })
        if message is not UNSET:
            field_dict["message"] = message
        if messages is not UNSET:
            field_dict["messages"] = messages

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        kind = d.pop("kind")

        attempt = d.pop("attempt")

        max_attempts = d.pop("max_attempts")

        priority = d.pop("priority")

        lease = d.pop("lease")

        lease_expires_at = datetime.datetime.fromisoformat(d.pop("lease_expires_at"))




        input_ = d.pop("input")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        message = d.pop("message", UNSET)

        messages = cast(list[Any], d.pop("messages", UNSET))


        claimed_job = cls(
            id=id,
            kind=kind,
            attempt=attempt,
            max_attempts=max_attempts,
            priority=priority,
            lease=lease,
            lease_expires_at=lease_expires_at,
            input_=input_,
            created_at=created_at,
            message=message,
            messages=messages,
        )


        claimed_job.additional_properties = d
        return claimed_job

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
