from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
import datetime






T = TypeVar("T", bound="ConversationTurn")



@_attrs_define
class ConversationTurn:
    """ One turn: the messages it answered (history positions `first_position` to `last_position`)
    and its reply.

        Attributes:
            job_id (int): Its job (`GET /v1/jobs/{id}`).
            kind (str): `agent.reply` (the built-in agent), `agent.turn` (your workers) or `agent.forward`.
            status (str): `open` (it holds the lane), `answered`, `unanswered` (it ended without a reply),
                `failed` (its job is dead), `canceled`, or `interrupted` (a newer message canceled it;
                its messages went to the next turn).
            first_position (int):
            last_position (int):
            created_at (datetime.datetime):
            job_status (None | str | Unset): Its job's status; absent once retention deleted the job.
            reply (None | str | Unset):
            reply_job_id (int | None | Unset): The `reply.deliver` job sending the reply, and its status.
            reply_status (None | str | Unset):
            ended_at (datetime.datetime | None | Unset):
     """

    job_id: int
    kind: str
    status: str
    first_position: int
    last_position: int
    created_at: datetime.datetime
    job_status: None | str | Unset = UNSET
    reply: None | str | Unset = UNSET
    reply_job_id: int | None | Unset = UNSET
    reply_status: None | str | Unset = UNSET
    ended_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        job_id = self.job_id

        kind = self.kind

        status = self.status

        first_position = self.first_position

        last_position = self.last_position

        created_at = self.created_at.isoformat()

        job_status: None | str | Unset
        if isinstance(self.job_status, Unset):
            job_status = UNSET
        else:
            job_status = self.job_status

        reply: None | str | Unset
        if isinstance(self.reply, Unset):
            reply = UNSET
        else:
            reply = self.reply

        reply_job_id: int | None | Unset
        if isinstance(self.reply_job_id, Unset):
            reply_job_id = UNSET
        else:
            reply_job_id = self.reply_job_id

        reply_status: None | str | Unset
        if isinstance(self.reply_status, Unset):
            reply_status = UNSET
        else:
            reply_status = self.reply_status

        ended_at: None | str | Unset
        if isinstance(self.ended_at, Unset):
            ended_at = UNSET
        elif isinstance(self.ended_at, datetime.datetime):
            ended_at = self.ended_at.isoformat()
        else:
            ended_at = self.ended_at


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "job_id": job_id,
            "kind": kind,
            "status": status,
            "first_position": first_position,
            "last_position": last_position,
            "created_at": created_at,
        })
        if job_status is not UNSET:
            field_dict["job_status"] = job_status
        if reply is not UNSET:
            field_dict["reply"] = reply
        if reply_job_id is not UNSET:
            field_dict["reply_job_id"] = reply_job_id
        if reply_status is not UNSET:
            field_dict["reply_status"] = reply_status
        if ended_at is not UNSET:
            field_dict["ended_at"] = ended_at

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        job_id = d.pop("job_id")

        kind = d.pop("kind")

        status = d.pop("status")

        first_position = d.pop("first_position")

        last_position = d.pop("last_position")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        def _parse_job_status(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        job_status = _parse_job_status(d.pop("job_status", UNSET))


        def _parse_reply(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reply = _parse_reply(d.pop("reply", UNSET))


        def _parse_reply_job_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        reply_job_id = _parse_reply_job_id(d.pop("reply_job_id", UNSET))


        def _parse_reply_status(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reply_status = _parse_reply_status(d.pop("reply_status", UNSET))


        def _parse_ended_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                ended_at_type_0 = datetime.datetime.fromisoformat(data)



                return ended_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        ended_at = _parse_ended_at(d.pop("ended_at", UNSET))


        conversation_turn = cls(
            job_id=job_id,
            kind=kind,
            status=status,
            first_position=first_position,
            last_position=last_position,
            created_at=created_at,
            job_status=job_status,
            reply=reply,
            reply_job_id=reply_job_id,
            reply_status=reply_status,
            ended_at=ended_at,
        )


        conversation_turn.additional_properties = d
        return conversation_turn

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
