from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
from uuid import UUID
import datetime

if TYPE_CHECKING:
  from ..models.agent_view import AgentView
  from ..models.turns_view import TurnsView





T = TypeVar("T", bound="Source")



@_attrs_define
class Source:
    """ 
        Attributes:
            id (UUID):
            platform (str):
            ingest_url (str): Where the platform must send its webhooks. With an `ingest_token`, the creation answer's URL
                carries `?token=`; listings leave it out.
            has_reply_credentials (bool): Whether reply credentials were given (they are never returned).
            reply_policy (str): `deterministic`, `extracted`, `any` or `never`.
            agent (AgentView): A source's agent as the API shows it.
            reply_ttl_secs (int): How long, in seconds, a reply keeps being retried through the platform's outages before
                its job ends `dead` with `reply_expired`; 3600 unless set.
            turns (TurnsView): A source's turn setting as the API shows it (see `TurnsSetting`).
            created_at (datetime.datetime):
            name (None | str | Unset):
            system_prompt (None | str | Unset): The agent's system prompt for replies to this source's messages.
            previous_secrets_until (datetime.datetime | None | Unset): After a rotation, the replaced secrets are still
                taken until this time.
            updated_at (datetime.datetime | None | Unset): When the source was last changed; null when never.
     """

    id: UUID
    platform: str
    ingest_url: str
    has_reply_credentials: bool
    reply_policy: str
    agent: AgentView
    reply_ttl_secs: int
    turns: TurnsView
    created_at: datetime.datetime
    name: None | str | Unset = UNSET
    system_prompt: None | str | Unset = UNSET
    previous_secrets_until: datetime.datetime | None | Unset = UNSET
    updated_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.agent_view import AgentView # noqa: PLC0415
        from ..models.turns_view import TurnsView # noqa: PLC0415
        id = str(self.id)

        platform = self.platform

        ingest_url = self.ingest_url

        has_reply_credentials = self.has_reply_credentials

        reply_policy = self.reply_policy

        agent = self.agent.to_dict()

        reply_ttl_secs = self.reply_ttl_secs

        turns = self.turns.to_dict()

        created_at = self.created_at.isoformat()

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        system_prompt: None | str | Unset
        if isinstance(self.system_prompt, Unset):
            system_prompt = UNSET
        else:
            system_prompt = self.system_prompt

        previous_secrets_until: None | str | Unset
        if isinstance(self.previous_secrets_until, Unset):
            previous_secrets_until = UNSET
        elif isinstance(self.previous_secrets_until, datetime.datetime):
            previous_secrets_until = self.previous_secrets_until.isoformat()
        else:
            previous_secrets_until = self.previous_secrets_until

        updated_at: None | str | Unset
        if isinstance(self.updated_at, Unset):
            updated_at = UNSET
        elif isinstance(self.updated_at, datetime.datetime):
            updated_at = self.updated_at.isoformat()
        else:
            updated_at = self.updated_at


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "platform": platform,
            "ingest_url": ingest_url,
            "has_reply_credentials": has_reply_credentials,
            "reply_policy": reply_policy,
            "agent": agent,
            "reply_ttl_secs": reply_ttl_secs,
            "turns": turns,
            "created_at": created_at,
        })
        if name is not UNSET:
            field_dict["name"] = name
        if system_prompt is not UNSET:
            field_dict["system_prompt"] = system_prompt
        if previous_secrets_until is not UNSET:
            field_dict["previous_secrets_until"] = previous_secrets_until
        if updated_at is not UNSET:
            field_dict["updated_at"] = updated_at

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.agent_view import AgentView # noqa: PLC0415
        from ..models.turns_view import TurnsView # noqa: PLC0415
        d = dict(src_dict)
        id = UUID(d.pop("id"))




        platform = d.pop("platform")

        ingest_url = d.pop("ingest_url")

        has_reply_credentials = d.pop("has_reply_credentials")

        reply_policy = d.pop("reply_policy")

        agent = AgentView.from_dict(d.pop("agent"))




        reply_ttl_secs = d.pop("reply_ttl_secs")

        turns = TurnsView.from_dict(d.pop("turns"))




        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))


        def _parse_system_prompt(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        system_prompt = _parse_system_prompt(d.pop("system_prompt", UNSET))


        def _parse_previous_secrets_until(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                previous_secrets_until_type_0 = datetime.datetime.fromisoformat(data)



                return previous_secrets_until_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        previous_secrets_until = _parse_previous_secrets_until(d.pop("previous_secrets_until", UNSET))


        def _parse_updated_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                updated_at_type_0 = datetime.datetime.fromisoformat(data)



                return updated_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        updated_at = _parse_updated_at(d.pop("updated_at", UNSET))


        source = cls(
            id=id,
            platform=platform,
            ingest_url=ingest_url,
            has_reply_credentials=has_reply_credentials,
            reply_policy=reply_policy,
            agent=agent,
            reply_ttl_secs=reply_ttl_secs,
            turns=turns,
            created_at=created_at,
            name=name,
            system_prompt=system_prompt,
            previous_secrets_until=previous_secrets_until,
            updated_at=updated_at,
        )


        source.additional_properties = d
        return source

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
