from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.on_new_message_name import OnNewMessageName






T = TypeVar("T", bound="TurnsView")



@_attrs_define
class TurnsView:
    """ A source's turn setting as the API shows it (see `TurnsSetting`).

        Attributes:
            quiet_ms (int):
            max_wait_ms (int):
            on_new_message (OnNewMessageName): What a message arriving while a turn of its conversation runs does. `wait`:
                it is answered by
                the next turn, once this one has ended. `interrupt`: the running turn is canceled (a queued
                turn at once; a running one when its worker next heartbeats, and a forward is abandoned) and
                the next turn answers the interrupted turn's messages together with the new one.
            typing (bool): Whether "typing…" shows while its turns run, with the default for its agent applied.
     """

    quiet_ms: int
    max_wait_ms: int
    on_new_message: OnNewMessageName
    typing: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        quiet_ms = self.quiet_ms

        max_wait_ms = self.max_wait_ms

        on_new_message = self.on_new_message.value

        typing = self.typing


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "quiet_ms": quiet_ms,
            "max_wait_ms": max_wait_ms,
            "on_new_message": on_new_message,
            "typing": typing,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        quiet_ms = d.pop("quiet_ms")

        max_wait_ms = d.pop("max_wait_ms")

        on_new_message = OnNewMessageName(d.pop("on_new_message"))




        typing = d.pop("typing")

        turns_view = cls(
            quiet_ms=quiet_ms,
            max_wait_ms=max_wait_ms,
            on_new_message=on_new_message,
            typing=typing,
        )


        turns_view.additional_properties = d
        return turns_view

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
