from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.minute_counts import MinuteCounts
  from ..models.status_counts import StatusCounts





T = TypeVar("T", bound="Stats")



@_attrs_define
class Stats:
    """ 
        Attributes:
            counts (StatusCounts):
            per_minute (list[MinuteCounts]): Jobs finished in each of the last 15 minutes, oldest first; the last entry is
                the current
                (partial) minute.
            oldest_queued_age_ms (int | None | Unset): Age of the oldest job that is ready to run and not yet claimed; null
                when none is.
     """

    counts: StatusCounts
    per_minute: list[MinuteCounts]
    oldest_queued_age_ms: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.minute_counts import MinuteCounts # noqa: PLC0415
        from ..models.status_counts import StatusCounts # noqa: PLC0415
        counts = self.counts.to_dict()

        per_minute = []
        for per_minute_item_data in self.per_minute:
            per_minute_item = per_minute_item_data.to_dict()
            per_minute.append(per_minute_item)



        oldest_queued_age_ms: int | None | Unset
        if isinstance(self.oldest_queued_age_ms, Unset):
            oldest_queued_age_ms = UNSET
        else:
            oldest_queued_age_ms = self.oldest_queued_age_ms


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "counts": counts,
            "per_minute": per_minute,
        })
        if oldest_queued_age_ms is not UNSET:
            field_dict["oldest_queued_age_ms"] = oldest_queued_age_ms

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.minute_counts import MinuteCounts # noqa: PLC0415
        from ..models.status_counts import StatusCounts # noqa: PLC0415
        d = dict(src_dict)
        counts = StatusCounts.from_dict(d.pop("counts"))




        per_minute = []
        _per_minute = d.pop("per_minute")
        for per_minute_item_data in (_per_minute):
            per_minute_item = MinuteCounts.from_dict(per_minute_item_data)



            per_minute.append(per_minute_item)


        def _parse_oldest_queued_age_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        oldest_queued_age_ms = _parse_oldest_queued_age_ms(d.pop("oldest_queued_age_ms", UNSET))


        stats = cls(
            counts=counts,
            per_minute=per_minute,
            oldest_queued_age_ms=oldest_queued_age_ms,
        )


        stats.additional_properties = d
        return stats

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
