from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.replay_filter import ReplayFilter





T = TypeVar("T", bound="BulkReplay")



@_attrs_define
class BulkReplay:
    """ 
        Attributes:
            filter_ (ReplayFilter): Which finished jobs a bulk replay takes.
            limit (int | Unset): The most jobs to replay, oldest first; default 100.
            dry_run (bool | Unset): `true` (the default) only says which jobs would be replayed; `false` replays them.
     """

    filter_: ReplayFilter
    limit: int | Unset = UNSET
    dry_run: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.replay_filter import ReplayFilter # noqa: PLC0415
        filter_ = self.filter_.to_dict()

        limit = self.limit

        dry_run = self.dry_run


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "filter": filter_,
        })
        if limit is not UNSET:
            field_dict["limit"] = limit
        if dry_run is not UNSET:
            field_dict["dry_run"] = dry_run

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.replay_filter import ReplayFilter # noqa: PLC0415
        d = dict(src_dict)
        filter_ = ReplayFilter.from_dict(d.pop("filter"))




        limit = d.pop("limit", UNSET)

        dry_run = d.pop("dry_run", UNSET)

        bulk_replay = cls(
            filter_=filter_,
            limit=limit,
            dry_run=dry_run,
        )


        bulk_replay.additional_properties = d
        return bulk_replay

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
