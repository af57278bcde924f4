from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast
import datetime






T = TypeVar("T", bound="HeartbeatResponse")



@_attrs_define
class HeartbeatResponse:
    """ 
        Attributes:
            lease_expires_at (datetime.datetime): When the lease now expires (the gateway's clock).
            cancel_requested (bool): Someone asked to cancel the job: stop, then call `fail`, which ends it `canceled`.
     """

    lease_expires_at: datetime.datetime
    cancel_requested: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        lease_expires_at = self.lease_expires_at.isoformat()

        cancel_requested = self.cancel_requested


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "lease_expires_at": lease_expires_at,
            "cancel_requested": cancel_requested,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        lease_expires_at = datetime.datetime.fromisoformat(d.pop("lease_expires_at"))




        cancel_requested = d.pop("cancel_requested")

        heartbeat_response = cls(
            lease_expires_at=lease_expires_at,
            cancel_requested=cancel_requested,
        )


        heartbeat_response.additional_properties = d
        return heartbeat_response

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
