from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="ProgressRequest")



@_attrs_define
class ProgressRequest:
    """ 
        Attributes:
            lease (str):
            progress (Any): Anything the job's followers should see; it is appended as a `job.progress` event, whose
                data carries it as `progress`. At most 64 KiB of JSON (413 `progress_too_large`); each
                report spends one of the tenant's event tokens, as a submission does.
     """

    lease: str
    progress: Any
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        lease = self.lease

        progress = self.progress


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "lease": lease,
            "progress": progress,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        lease = d.pop("lease")

        progress = d.pop("progress")

        progress_request = cls(
            lease=lease,
            progress=progress,
        )


        progress_request.additional_properties = d
        return progress_request

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
