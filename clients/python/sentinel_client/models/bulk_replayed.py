from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.replayed_item import ReplayedItem





T = TypeVar("T", bound="BulkReplayed")



@_attrs_define
class BulkReplayed:
    """ 
        Attributes:
            dry_run (bool):
            items (list[ReplayedItem]): The jobs the filter takes (up to `limit`), oldest first, each with its replay's id
                once
                replayed. A job replayed before is left out, so the same filter never replays it twice.
            more (bool): More jobs match beyond `limit`: run it again for the next ones.
     """

    dry_run: bool
    items: list[ReplayedItem]
    more: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.replayed_item import ReplayedItem # noqa: PLC0415
        dry_run = self.dry_run

        items = []
        for items_item_data in self.items:
            items_item = items_item_data.to_dict()
            items.append(items_item)



        more = self.more


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "dry_run": dry_run,
            "items": items,
            "more": more,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.replayed_item import ReplayedItem # noqa: PLC0415
        d = dict(src_dict)
        dry_run = d.pop("dry_run")

        items = []
        _items = d.pop("items")
        for items_item_data in (_items):
            items_item = ReplayedItem.from_dict(items_item_data)



            items.append(items_item)


        more = d.pop("more")

        bulk_replayed = cls(
            dry_run=dry_run,
            items=items,
            more=more,
        )


        bulk_replayed.additional_properties = d
        return bulk_replayed

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
