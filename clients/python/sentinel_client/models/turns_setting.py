from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.on_new_message_name import OnNewMessageName
from ..types import UNSET, Unset






T = TypeVar("T", bound="TurnsSetting")



@_attrs_define
class TurnsSetting:
    """ When a conversation's next turn starts: once the conversation has been quiet for `quiet_ms`
    (0 to 60000; default 1500), or `max_wait_ms` after its first unanswered message (0 to 600000,
    at least `quiet_ms`; default 8000), whichever comes first. The turn carries every unanswered
    message, so a burst ("hi" / "I need help" / "with my order 1234") is answered once. Whatever
    the setting, one turn runs per conversation at a time; `on_new_message` says what a message
    arriving while it runs does (default `wait`). On a change, what is absent stays.

        Attributes:
            quiet_ms (int | Unset):
            max_wait_ms (int | Unset):
            on_new_message (OnNewMessageName | Unset): What a message arriving while a turn of its conversation runs does.
                `wait`: it is answered by
                the next turn, once this one has ended. `interrupt`: the running turn is canceled (a queued
                turn at once; a running one when its worker next heartbeats, and a forward is abandoned) and
                the next turn answers the interrupted turn's messages together with the new one.
            typing (bool | Unset): Whether the platform shows "typing…" while a turn runs (Telegram `sendChatAction`, the
                WhatsApp Cloud API's typing indicator; Slack and Salesforce have none). Default: on while
                the built-in agent answers, off for your own agents until you turn it on.
     """

    quiet_ms: int | Unset = UNSET
    max_wait_ms: int | Unset = UNSET
    on_new_message: OnNewMessageName | Unset = UNSET
    typing: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        quiet_ms = self.quiet_ms

        max_wait_ms = self.max_wait_ms

        on_new_message: str | Unset = UNSET
        if not isinstance(self.on_new_message, Unset):
            on_new_message = self.on_new_message.value


        typing = self.typing


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if quiet_ms is not UNSET:
            field_dict["quiet_ms"] = quiet_ms
        if max_wait_ms is not UNSET:
            field_dict["max_wait_ms"] = max_wait_ms
        if on_new_message is not UNSET:
            field_dict["on_new_message"] = on_new_message
        if typing is not UNSET:
            field_dict["typing"] = typing

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        quiet_ms = d.pop("quiet_ms", UNSET)

        max_wait_ms = d.pop("max_wait_ms", UNSET)

        _on_new_message = d.pop("on_new_message", UNSET)
        on_new_message: OnNewMessageName | Unset
        if isinstance(_on_new_message,  Unset):
            on_new_message = UNSET
        else:
            on_new_message = OnNewMessageName(_on_new_message)




        typing = d.pop("typing", UNSET)

        turns_setting = cls(
            quiet_ms=quiet_ms,
            max_wait_ms=max_wait_ms,
            on_new_message=on_new_message,
            typing=typing,
        )


        turns_setting.additional_properties = d
        return turns_setting

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
