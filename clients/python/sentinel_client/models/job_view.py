from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
from uuid import UUID
import datetime






T = TypeVar("T", bound="JobView")



@_attrs_define
class JobView:
    """ 
        Attributes:
            id (int):
            kind (str):
            status (str):
            attempt (int):
            max_attempts (int):
            priority (int):
            input_ (Any):
            created_at (datetime.datetime):
            source_id (None | Unset | UUID):
            result (Any | Unset):
            last_error (Any | Unset):
            replay_of (int | None | Unset):
            started_at (datetime.datetime | None | Unset):
            finished_at (datetime.datetime | None | Unset):
     """

    id: int
    kind: str
    status: str
    attempt: int
    max_attempts: int
    priority: int
    input_: Any
    created_at: datetime.datetime
    source_id: None | Unset | UUID = UNSET
    result: Any | Unset = UNSET
    last_error: Any | Unset = UNSET
    replay_of: int | None | Unset = UNSET
    started_at: datetime.datetime | None | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = self.id

        kind = self.kind

        status = self.status

        attempt = self.attempt

        max_attempts = self.max_attempts

        priority = self.priority

        input_ = self.input_

        created_at = self.created_at.isoformat()

        source_id: None | str | Unset
        if isinstance(self.source_id, Unset):
            source_id = UNSET
        elif isinstance(self.source_id, UUID):
            source_id = str(self.source_id)
        else:
            source_id = self.source_id

        result = self.result

        last_error = self.last_error

        replay_of: int | None | Unset
        if isinstance(self.replay_of, Unset):
            replay_of = UNSET
        else:
            replay_of = self.replay_of

        started_at: None | str | Unset
        if isinstance(self.started_at, Unset):
            started_at = UNSET
        elif isinstance(self.started_at, datetime.datetime):
            started_at = self.started_at.isoformat()
        else:
            started_at = self.started_at

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "kind": kind,
            "status": status,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "priority": priority,
            "input": input_,
            "created_at": created_at,
        })
        if source_id is not UNSET:
            field_dict["source_id"] = source_id
        if result is not UNSET:
            field_dict["result"] = result
        if last_error is not UNSET:
            field_dict["last_error"] = last_error
        if replay_of is not UNSET:
            field_dict["replay_of"] = replay_of
        if started_at is not UNSET:
            field_dict["started_at"] = started_at
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        kind = d.pop("kind")

        status = d.pop("status")

        attempt = d.pop("attempt")

        max_attempts = d.pop("max_attempts")

        priority = d.pop("priority")

        input_ = d.pop("input")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        def _parse_source_id(data: object) -> None | Unset | UUID:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                source_id_type_0 = UUID(data)



                return source_id_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UUID, data)

        source_id = _parse_source_id(d.pop("source_id", UNSET))


        result = d.pop("result", UNSET)

        last_error = d.pop("last_error", UNSET)

        def _parse_replay_of(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        replay_of = _parse_replay_of(d.pop("replay_of", UNSET))


        def _parse_started_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                started_at_type_0 = datetime.datetime.fromisoformat(data)



                return started_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        started_at = _parse_started_at(d.pop("started_at", UNSET))


        def _parse_finished_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)



                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        finished_at = _parse_finished_at(d.pop("finished_at", UNSET))


        job_view = cls(
            id=id,
            kind=kind,
            status=status,
            attempt=attempt,
            max_attempts=max_attempts,
            priority=priority,
            input_=input_,
            created_at=created_at,
            source_id=source_id,
            result=result,
            last_error=last_error,
            replay_of=replay_of,
            started_at=started_at,
            finished_at=finished_at,
        )


        job_view.additional_properties = d
        return job_view

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
