from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="FailRequest")



@_attrs_define
class FailRequest:
    """ 
        Attributes:
            lease (str):
            error (Any): What went wrong: a message, or an object (kept as `last_error`). At most 16 KiB of JSON
                (413 `error_too_large`).
            retry (bool | Unset): `true` (the default): try again after the queue's backoff, while attempts remain.
                `false`: fatal, the job ends `dead` at once.
            retry_after_secs (int | Unset): Snooze instead: run again after this many seconds without spending an attempt (a
                rate
                limit, a dependency that said when to come back). Not with `retry: false`.
     """

    lease: str
    error: Any
    retry: bool | Unset = UNSET
    retry_after_secs: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        lease = self.lease

        error = self.error

        retry = self.retry

        retry_after_secs = self.retry_after_secs


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "lease": lease,
            "error": error,
        })
        if retry is not UNSET:
            field_dict["retry"] = retry
        if retry_after_secs is not UNSET:
            field_dict["retry_after_secs"] = retry_after_secs

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        lease = d.pop("lease")

        error = d.pop("error")

        retry = d.pop("retry", UNSET)

        retry_after_secs = d.pop("retry_after_secs", UNSET)

        fail_request = cls(
            lease=lease,
            error=error,
            retry=retry,
            retry_after_secs=retry_after_secs,
        )


        fail_request.additional_properties = d
        return fail_request

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
