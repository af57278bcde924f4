from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast
from uuid import UUID
import datetime






T = TypeVar("T", bound="TenantSummary")



@_attrs_define
class TenantSummary:
    """ A tenant as the admin listing shows it: its settings and how much it holds.

        Attributes:
            id (UUID):
            name (str):
            status (str):
            rate_limit_per_sec (int):
            burst (int):
            max_queued_jobs (int):
            created_at (datetime.datetime):
            updated_at (datetime.datetime):
            queued_jobs (int): Its queued jobs, as of the gateway's last count (every 2 s).
            sources (int): Its sources that are not deleted.
            active_api_keys (int): Its API keys that are not revoked.
     """

    id: UUID
    name: str
    status: str
    rate_limit_per_sec: int
    burst: int
    max_queued_jobs: int
    created_at: datetime.datetime
    updated_at: datetime.datetime
    queued_jobs: int
    sources: int
    active_api_keys: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = str(self.id)

        name = self.name

        status = self.status

        rate_limit_per_sec = self.rate_limit_per_sec

        burst = self.burst

        max_queued_jobs = self.max_queued_jobs

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        queued_jobs = self.queued_jobs

        sources = self.sources

        active_api_keys = self.active_api_keys


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "name": name,
            "status": status,
            "rate_limit_per_sec": rate_limit_per_sec,
            "burst": burst,
            "max_queued_jobs": max_queued_jobs,
            "created_at": created_at,
            "updated_at": updated_at,
            "queued_jobs": queued_jobs,
            "sources": sources,
            "active_api_keys": active_api_keys,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = UUID(d.pop("id"))




        name = d.pop("name")

        status = d.pop("status")

        rate_limit_per_sec = d.pop("rate_limit_per_sec")

        burst = d.pop("burst")

        max_queued_jobs = d.pop("max_queued_jobs")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))




        queued_jobs = d.pop("queued_jobs")

        sources = d.pop("sources")

        active_api_keys = d.pop("active_api_keys")

        tenant_summary = cls(
            id=id,
            name=name,
            status=status,
            rate_limit_per_sec=rate_limit_per_sec,
            burst=burst,
            max_queued_jobs=max_queued_jobs,
            created_at=created_at,
            updated_at=updated_at,
            queued_jobs=queued_jobs,
            sources=sources,
            active_api_keys=active_api_keys,
        )


        tenant_summary.additional_properties = d
        return tenant_summary

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
