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






T = TypeVar("T", bound="ReplayFilter")



@_attrs_define
class ReplayFilter:
    """ Which finished jobs a bulk replay takes.

        Attributes:
            status (str | Unset): `dead` (the default), `succeeded` or `canceled`.
            kind (str | Unset):
            source_id (UUID | Unset):
            since (datetime.datetime | Unset): Created at or after this time.
            until (datetime.datetime | Unset): Created before this time.
     """

    status: str | Unset = UNSET
    kind: str | Unset = UNSET
    source_id: UUID | Unset = UNSET
    since: datetime.datetime | Unset = UNSET
    until: datetime.datetime | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        status = self.status

        kind = self.kind

        source_id: str | Unset = UNSET
        if not isinstance(self.source_id, Unset):
            source_id = str(self.source_id)

        since: str | Unset = UNSET
        if not isinstance(self.since, Unset):
            since = self.since.isoformat()

        until: str | Unset = UNSET
        if not isinstance(self.until, Unset):
            until = self.until.isoformat()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if status is not UNSET:
            field_dict["status"] = status
        if kind is not UNSET:
            field_dict["kind"] = kind
        if source_id is not UNSET:
            field_dict["source_id"] = source_id
        if since is not UNSET:
            field_dict["since"] = since
        if until is not UNSET:
            field_dict["until"] = until

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        status = d.pop("status", UNSET)

        kind = d.pop("kind", UNSET)

        _source_id = d.pop("source_id", UNSET)
        source_id: UUID | Unset
        if isinstance(_source_id,  Unset):
            source_id = UNSET
        else:
            source_id = UUID(_source_id)




        _since = d.pop("since", UNSET)
        since: datetime.datetime | Unset
        if isinstance(_since,  Unset):
            since = UNSET
        else:
            since = datetime.datetime.fromisoformat(_since)




        _until = d.pop("until", UNSET)
        until: datetime.datetime | Unset
        if isinstance(_until,  Unset):
            until = UNSET
        else:
            until = datetime.datetime.fromisoformat(_until)




        replay_filter = cls(
            status=status,
            kind=kind,
            source_id=source_id,
            since=since,
            until=until,
        )


        replay_filter.additional_properties = d
        return replay_filter

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
