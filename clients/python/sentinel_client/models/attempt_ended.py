from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
import datetime






T = TypeVar("T", bound="AttemptEnded")



@_attrs_define
class AttemptEnded:
    """ 
        Attributes:
            id (int):
            status (str): `succeeded`, `queued` (it runs again at `run_at`), `dead` or `canceled`.
            run_at (datetime.datetime | Unset): When the job runs again, if it does.
            reply_job_id (int | Unset): The `reply.deliver` job that sends `complete`'s `reply`.
     """

    id: int
    status: str
    run_at: datetime.datetime | Unset = UNSET
    reply_job_id: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = self.id

        status = self.status

        run_at: str | Unset = UNSET
        if not isinstance(self.run_at, Unset):
            run_at = self.run_at.isoformat()

        reply_job_id = self.reply_job_id


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "status": status,
        })
        if run_at is not UNSET:
            field_dict["run_at"] = run_at
        if reply_job_id is not UNSET:
            field_dict["reply_job_id"] = reply_job_id

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        status = d.pop("status")

        _run_at = d.pop("run_at", UNSET)
        run_at: datetime.datetime | Unset
        if isinstance(_run_at,  Unset):
            run_at = UNSET
        else:
            run_at = datetime.datetime.fromisoformat(_run_at)




        reply_job_id = d.pop("reply_job_id", UNSET)

        attempt_ended = cls(
            id=id,
            status=status,
            run_at=run_at,
            reply_job_id=reply_job_id,
        )


        attempt_ended.additional_properties = d
        return attempt_ended

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
