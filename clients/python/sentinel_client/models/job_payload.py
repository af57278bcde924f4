from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.payload_encoding import PayloadEncoding
from ..types import UNSET, Unset






T = TypeVar("T", bound="JobPayload")



@_attrs_define
class JobPayload:
    """ A job's stored request, as the gateway received it: `webhook.inbound` jobs (and their replays).

        Attributes:
            body (str): The body: UTF-8 text, or base64 when it is not valid UTF-8 (see `encoding`).
            encoding (PayloadEncoding):
            size_bytes (int):
            headers (Any | Unset): The request headers kept for auditing (never the secret ones).
     """

    body: str
    encoding: PayloadEncoding
    size_bytes: int
    headers: Any | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        body = self.body

        encoding = self.encoding.value

        size_bytes = self.size_bytes

        headers = self.headers


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "body": body,
            "encoding": encoding,
            "size_bytes": size_bytes,
        })
        if headers is not UNSET:
            field_dict["headers"] = headers

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        body = d.pop("body")

        encoding = PayloadEncoding(d.pop("encoding"))




        size_bytes = d.pop("size_bytes")

        headers = d.pop("headers", UNSET)

        job_payload = cls(
            body=body,
            encoding=encoding,
            size_bytes=size_bytes,
            headers=headers,
        )


        job_payload.additional_properties = d
        return job_payload

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
