from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
import datetime






T = TypeVar("T", bound="CreateJob")



@_attrs_define
class CreateJob:
    """ 
        Attributes:
            kind (str): `payload.heal` or `llm.generate`, which Sentinel's worker runs; or a kind of your own, which
                your workers claim through `/v1/worker/claim`. A kind of your own has 1 to 64 characters:
                lowercase ASCII letters, digits, `_` and `-`, in segments separated by single dots, starting
                with a letter (for example `doc.summarise`). Sentinel's kinds (`webhook.inbound`,
                `payload.heal`, `llm.generate`, `reply.deliver`, `agent.turn`, `agent.forward`) and names
                starting with `sentinel.` are reserved.
            input_ (Any): `payload.heal`: `{payload, platform?}`, the payload as text (the raw body as received) or
                as JSON (an object or a list). `llm.generate`: `{messages, json_schema?, max_tokens?}`.
                A kind of your own: any JSON your workers take.
            priority (int | Unset): Lower runs first; default 0.
            max_attempts (int | Unset):
            run_at (datetime.datetime | Unset): Not before this time; default now.
     """

    kind: str
    input_: Any
    priority: int | Unset = UNSET
    max_attempts: int | Unset = UNSET
    run_at: datetime.datetime | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        kind = self.kind

        input_ = self.input_

        priority = self.priority

        max_attempts = self.max_attempts

        run_at: str | Unset = UNSET
        if not isinstance(self.run_at, Unset):
            run_at = self.run_at.isoformat()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "kind": kind,
            "input": input_,
        })
        if priority is not UNSET:
            field_dict["priority"] = priority
        if max_attempts is not UNSET:
            field_dict["max_attempts"] = max_attempts
        if run_at is not UNSET:
            field_dict["run_at"] = run_at

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        kind = d.pop("kind")

        input_ = d.pop("input")

        priority = d.pop("priority", UNSET)

        max_attempts = d.pop("max_attempts", UNSET)

        _run_at = d.pop("run_at", UNSET)
        run_at: datetime.datetime | Unset
        if isinstance(_run_at,  Unset):
            run_at = UNSET
        else:
            run_at = datetime.datetime.fromisoformat(_run_at)




        create_job = cls(
            kind=kind,
            input_=input_,
            priority=priority,
            max_attempts=max_attempts,
            run_at=run_at,
        )


        create_job.additional_properties = d
        return create_job

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
