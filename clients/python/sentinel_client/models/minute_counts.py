from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast
import datetime






T = TypeVar("T", bound="MinuteCounts")



@_attrs_define
class MinuteCounts:
    """ 
        Attributes:
            minute (datetime.datetime): The minute's start (RFC 3339).
            succeeded (int):
            dead (int):
            canceled (int):
     """

    minute: datetime.datetime
    succeeded: int
    dead: int
    canceled: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        minute = self.minute.isoformat()

        succeeded = self.succeeded

        dead = self.dead

        canceled = self.canceled


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "minute": minute,
            "succeeded": succeeded,
            "dead": dead,
            "canceled": canceled,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        minute = datetime.datetime.fromisoformat(d.pop("minute"))




        succeeded = d.pop("succeeded")

        dead = d.pop("dead")

        canceled = d.pop("canceled")

        minute_counts = cls(
            minute=minute,
            succeeded=succeeded,
            dead=dead,
            canceled=canceled,
        )


        minute_counts.additional_properties = d
        return minute_counts

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
