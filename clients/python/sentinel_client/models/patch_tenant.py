from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.tenant_status import TenantStatus
from ..types import UNSET, Unset






T = TypeVar("T", bound="PatchTenant")



@_attrs_define
class PatchTenant:
    """ 
        Attributes:
            status (TenantStatus | Unset):
            rate_limit_per_sec (int | Unset):
            burst (int | Unset):
            max_queued_jobs (int | Unset):
     """

    status: TenantStatus | Unset = UNSET
    rate_limit_per_sec: int | Unset = UNSET
    burst: int | Unset = UNSET
    max_queued_jobs: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        status: str | Unset = UNSET
        if not isinstance(self.status, Unset):
            status = self.status.value


        rate_limit_per_sec = self.rate_limit_per_sec

        burst = self.burst

        max_queued_jobs = self.max_queued_jobs


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if status is not UNSET:
            field_dict["status"] = status
        if rate_limit_per_sec is not UNSET:
            field_dict["rate_limit_per_sec"] = rate_limit_per_sec
        if burst is not UNSET:
            field_dict["burst"] = burst
        if max_queued_jobs is not UNSET:
            field_dict["max_queued_jobs"] = max_queued_jobs

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _status = d.pop("status", UNSET)
        status: TenantStatus | Unset
        if isinstance(_status,  Unset):
            status = UNSET
        else:
            status = TenantStatus(_status)




        rate_limit_per_sec = d.pop("rate_limit_per_sec", UNSET)

        burst = d.pop("burst", UNSET)

        max_queued_jobs = d.pop("max_queued_jobs", UNSET)

        patch_tenant = cls(
            status=status,
            rate_limit_per_sec=rate_limit_per_sec,
            burst=burst,
            max_queued_jobs=max_queued_jobs,
        )


        patch_tenant.additional_properties = d
        return patch_tenant

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
