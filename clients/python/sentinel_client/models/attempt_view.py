from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
import datetime






T = TypeVar("T", bound="AttemptView")



@_attrs_define
class AttemptView:
    """ One attempt at a job, from the `job_attempts` audit table.

        Attributes:
            attempt (int):
            worker_id (str):
            started_at (datetime.datetime):
            finished_at (datetime.datetime):
            outcome (str): `succeeded`, `retry`, `dead`, `snoozed`, `canceled`, `lease_expired` or `handed_off`.
            error (Any | Unset):
     """

    attempt: int
    worker_id: str
    started_at: datetime.datetime
    finished_at: datetime.datetime
    outcome: str
    error: Any | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        attempt = self.attempt

        worker_id = self.worker_id

        started_at = self.started_at.isoformat()

        finished_at = self.finished_at.isoformat()

        outcome = self.outcome

        error = self.error


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "attempt": attempt,
            "worker_id": worker_id,
            "started_at": started_at,
            "finished_at": finished_at,
            "outcome": outcome,
        })
        if error is not UNSET:
            field_dict["error"] = error

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        attempt = d.pop("attempt")

        worker_id = d.pop("worker_id")

        started_at = datetime.datetime.fromisoformat(d.pop("started_at"))




        finished_at = datetime.datetime.fromisoformat(d.pop("finished_at"))




        outcome = d.pop("outcome")

        error = d.pop("error", UNSET)

        attempt_view = cls(
            attempt=attempt,
            worker_id=worker_id,
            started_at=started_at,
            finished_at=finished_at,
            outcome=outcome,
            error=error,
        )


        attempt_view.additional_properties = d
        return attempt_view

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
