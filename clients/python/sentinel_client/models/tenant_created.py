from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from uuid import UUID






T = TypeVar("T", bound="TenantCreated")



@_attrs_define
class TenantCreated:
    """ 
        Attributes:
            id (UUID):
            name (str):
            status (str):
            rate_limit_per_sec (int):
            burst (int):
            max_queued_jobs (int):
            api_key (str): The tenant's first API key. It is shown only here.
     """

    id: UUID
    name: str
    status: str
    rate_limit_per_sec: int
    burst: int
    max_queued_jobs: int
    api_key: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = str(self.id)

        name = self.name

        status = self.status

        rate_limit_per_sec = self.rate_limit_per_sec

        burst = self.burst

        max_queued_jobs = self.max_queued_jobs

        api_key = self.api_key


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "name": name,
            "status": status,
            "rate_limit_per_sec": rate_limit_per_sec,
            "burst": burst,
            "max_queued_jobs": max_queued_jobs,
            "api_key": api_key,
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

        api_key = d.pop("api_key")

        tenant_created = cls(
            id=id,
            name=name,
            status=status,
            rate_limit_per_sec=rate_limit_per_sec,
            burst=burst,
            max_queued_jobs=max_queued_jobs,
            api_key=api_key,
        )


        tenant_created.additional_properties = d
        return tenant_created

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
