from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="CompleteRequest")



@_attrs_define
class CompleteRequest:
    """ 
        Attributes:
            lease (str):
            result (Any | Unset): The job's result, kept in the job; default null. At most 1 MiB of JSON (413
                `result_too_large`).
            reply (str | Unset): For an `agent.turn`: the answer to send to the user, through the outbox (a `reply.deliver`
                job, in the same transaction as the completion), at most 4096 characters. Other kinds
                refuse it (422 `reply_not_allowed`).
     """

    lease: str
    result: Any | Unset = UNSET
    reply: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        lease = self.lease

        result = self.result

        reply = self.reply


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "lease": lease,
        })
        if result is not UNSET:
            field_dict["result"] = result
        if reply is not UNSET:
            field_dict["reply"] = reply

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        lease = d.pop("lease")

        result = d.pop("result", UNSET)

        reply = d.pop("reply", UNSET)

        complete_request = cls(
            lease=lease,
            result=result,
            reply=reply,
        )


        complete_request.additional_properties = d
        return complete_request

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
