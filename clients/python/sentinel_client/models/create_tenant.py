from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="CreateTenant")



@_attrs_define
class CreateTenant:
    """ 
        Attributes:
            name (str):
            rate_limit_per_sec (int | Unset): Sustained webhooks per second; default 100.
            burst (int | Unset): Burst above the sustained rate; default 200. Each webhook event, job submission, replay
                and source change spends one token.
            max_queued_jobs (int | Unset): The most jobs the tenant may have queued; default 100,000. Beyond it new work
                gets 429
                `queue_full`.
     """

    name: str
    rate_limit_per_sec: int | Unset = UNSET
    burst: int | Unset = UNSET
    max_queued_jobs: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        rate_limit_per_sec = self.rate_limit_per_sec

        burst = self.burst

        max_queued_jobs = self.max_queued_jobs


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "name": name,
        })
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
        name = d.pop("name")

        rate_limit_per_sec = d.pop("rate_limit_per_sec", UNSET)

        burst = d.pop("burst", UNSET)

        max_queued_jobs = d.pop("max_queued_jobs", UNSET)

        create_tenant = cls(
            name=name,
            rate_limit_per_sec=rate_limit_per_sec,
            burst=burst,
            max_queued_jobs=max_queued_jobs,
        )


        create_tenant.additional_properties = d
        return create_tenant

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
