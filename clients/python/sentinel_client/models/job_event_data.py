from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.job_event_type import JobEventType
from ..types import UNSET, Unset
from typing import cast
from uuid import UUID






T = TypeVar("T", bound="JobEventData")



@_attrs_define
class JobEventData:
    """ The `data` of every event, which names its own `type` (the SSE `event` name).

        Attributes:
            type_ (JobEventType): The SSE `event` name of an event, also its `type` field.
            job_id (int):
            kind (str):
            status (str):
            attempt (int):
            at (str): When the change happened (RFC 3339).
            error (Any | Unset): Present on `job.retrying` and `job.dead`.
            run_at (None | str | Unset): When a requeued job runs again.
            worker_id (None | str | Unset):
            replay_of (int | None | Unset):
            stage (None | str | Unset): `job.progress`: the step that is generating: `generate` (an `llm.generate` job),
                `heal` (the
                LLM healing step) or `reply` (the agent's reply).
            tokens (int | None | Unset): `job.progress`: tokens generated so far.
            max_tokens (int | None | Unset): `job.progress`: the token budget of the generation.
            text (None | str | Unset): `job.progress`: the text generated so far.
            source_id (None | Unset | UUID): `turn.*`: the turn's conversation.
            conversation_id (None | str | Unset):
            messages (int | None | Unset): `turn.*`: how many messages the turn answers.
            reply_job_id (int | None | Unset): `turn.ended`: the `reply.deliver` job of the reply the turn queued.
     """

    type_: JobEventType
    job_id: int
    kind: str
    status: str
    attempt: int
    at: str
    error: Any | Unset = UNSET
    run_at: None | str | Unset = UNSET
    worker_id: None | str | Unset = UNSET
    replay_of: int | None | Unset = UNSET
    stage: None | str | Unset = UNSET
    tokens: int | None | Unset = UNSET
    max_tokens: int | None | Unset = UNSET
    text: None | str | Unset = UNSET
    source_id: None | Unset | UUID = UNSET
    conversation_id: None | str | Unset = UNSET
    messages: int | None | Unset = UNSET
    reply_job_id: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_.value

        job_id = self.job_id

        kind = self.kind

        status = self.status

        attempt = self.attempt

        at = self.at

        error = self.error

        run_at: None | str | Unset
        if isinstance(self.run_at, Unset):
            run_at = UNSET
        else:
            run_at = self.run_at

        worker_id: None | str | Unset
        if isinstance(self.worker_id, Unset):
            worker_id = UNSET
        else:
            worker_id = self.worker_id

        replay_of: int | None | Unset
        if isinstance(self.replay_of, Unset):
            replay_of = UNSET
        else:
            replay_of = self.replay_of

        stage: None | str | Unset
        if isinstance(self.stage, Unset):
            stage = UNSET
        else:
            stage = self.stage

        tokens: int | None | Unset
        if isinstance(self.tokens, Unset):
            tokens = UNSET
        else:
            tokens = self.tokens

        max_tokens: int | None | Unset
        if isinstance(self.max_tokens, Unset):
            max_tokens = UNSET
        else:
            max_tokens = self.max_tokens

        text: None | str | Unset
        if isinstance(self.text, Unset):
            text = UNSET
        else:
            text = self.text

        source_id: None | str | Unset
        if isinstance(self.source_id, Unset):
            source_id = UNSET
        elif isinstance(self.source_id, UUID):
            source_id = str(self.source_id)
        else:
            source_id = self.source_id

        conversation_id: None | str | Unset
        if isinstance(self.conversation_id, Unset):
            conversation_id = UNSET
        else:
            conversation_id = self.conversation_id

        messages: int | None | Unset
        if isinstance(self.messages, Unset):
            messages = UNSET
        else:
            messages = self.messages

        reply_job_id: int | None | Unset
        if isinstance(self.reply_job_id, Unset):
            reply_job_id = UNSET
        else:
            reply_job_id = self.reply_job_id


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "type": type_,
            "job_id": job_id,
            "kind": kind,
            "status": status,
            "attempt": attempt,
            "at": at,
        })
        if error is not UNSET:
            field_dict["error"] = error
        if run_at is not UNSET:
            field_dict["run_at"] = run_at
        if worker_id is not UNSET:
            field_dict["worker_id"] = worker_id
        if replay_of is not UNSET:
            field_dict["replay_of"] = replay_of
        if stage is not UNSET:
            field_dict["stage"] = stage
        if tokens is not UNSET:
            field_dict["tokens"] = tokens
        if max_tokens is not UNSET:
            field_dict["max_tokens"] = max_tokens
        if text is not UNSET:
            field_dict["text"] = text
        if source_id is not UNSET:
            field_dict["source_id"] = source_id
        if conversation_id is not UNSET:
            field_dict["conversation_id"] = conversation_id
        if messages is not UNSET:
            field_dict["messages"] = messages
        if reply_job_id is not UNSET:
            field_dict["reply_job_id"] = reply_job_id

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        type_ = JobEventType(d.pop("type"))




        job_id = d.pop("job_id")

        kind = d.pop("kind")

        status = d.pop("status")

        attempt = d.pop("attempt")

        at = d.pop("at")

        error = d.pop("error", UNSET)

        def _parse_run_at(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        run_at = _parse_run_at(d.pop("run_at", UNSET))


        def _parse_worker_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        worker_id = _parse_worker_id(d.pop("worker_id", UNSET))


        def _parse_replay_of(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        replay_of = _parse_replay_of(d.pop("replay_of", UNSET))


        def _parse_stage(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        stage = _parse_stage(d.pop("stage", UNSET))


        def _parse_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        tokens = _parse_tokens(d.pop("tokens", UNSET))


        def _parse_max_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_tokens = _parse_max_tokens(d.pop("max_tokens", UNSET))


        def _parse_text(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        text = _parse_text(d.pop("text", UNSET))


        def _parse_source_id(data: object) -> None | Unset | UUID:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                source_id_type_0 = UUID(data)



                return source_id_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UUID, data)

        source_id = _parse_source_id(d.pop("source_id", UNSET))


        def _parse_conversation_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        conversation_id = _parse_conversation_id(d.pop("conversation_id", UNSET))


        def _parse_messages(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        messages = _parse_messages(d.pop("messages", UNSET))


        def _parse_reply_job_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        reply_job_id = _parse_reply_job_id(d.pop("reply_job_id", UNSET))


        job_event_data = cls(
            type_=type_,
            job_id=job_id,
            kind=kind,
            status=status,
            attempt=attempt,
            at=at,
            error=error,
            run_at=run_at,
            worker_id=worker_id,
            replay_of=replay_of,
            stage=stage,
            tokens=tokens,
            max_tokens=max_tokens,
            text=text,
            source_id=source_id,
            conversation_id=conversation_id,
            messages=messages,
            reply_job_id=reply_job_id,
        )


        job_event_data.additional_properties = d
        return job_event_data

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
