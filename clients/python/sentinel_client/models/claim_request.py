from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ClaimRequest")



@_attrs_define
class ClaimRequest:
    """ 
        Attributes:
            kinds (list[str]): Kinds to take jobs of: your own (the name rule is under `POST /v1/jobs`), and `agent.turn`
                for the messages of sources whose agent is `external`.
            worker_id (str): The worker's name, kept in the attempts' audit rows.
            max_ (int | Unset): The most jobs to take; default 1.
            wait_ms (int | Unset): Wait up to this long for a job when none is ready (long poll); default 0, answer at once.
                The gateway may cap it lower (`SENTINEL_CLAIM_MAX_WAIT_MS`).
            lease_secs (int | Unset): How long each job's lease lasts before another worker may claim it; default 30. Extend
                it
                with a heartbeat.
     """

    kinds: list[str]
    worker_id: str
    max_: int | Unset = UNSET
    wait_ms: int | Unset = UNSET
    lease_secs: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        kinds = self.kinds



        worker_id = self.worker_id

        max_ = self.max_

        wait_ms = self.wait_ms

        lease_secs = self.lease_secs


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "kinds": kinds,
            "worker_id": worker_id,
        })
        if max_ is not UNSET:
            field_dict["max"] = max_
        if wait_ms is not UNSET:
            field_dict["wait_ms"] = wait_ms
        if lease_secs is not UNSET:
            field_dict["lease_secs"] = lease_secs

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        kinds = cast(list[str], d.pop("kinds"))


        worker_id = d.pop("worker_id")

        max_ = d.pop("max", UNSET)

        wait_ms = d.pop("wait_ms", UNSET)

        lease_secs = d.pop("lease_secs", UNSET)

        claim_request = cls(
            kinds=kinds,
            worker_id=worker_id,
            max_=max_,
            wait_ms=wait_ms,
            lease_secs=lease_secs,
        )


        claim_request.additional_properties = d
        return claim_request

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
