from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.reply_policy import ReplyPolicy
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.agent_setting import AgentSetting
  from ..models.turns_setting import TurnsSetting





T = TypeVar("T", bound="UpdateSource")



@_attrs_define
class UpdateSource:
    """ A change to a source; what is absent stays as it is. The ingest URL never changes.

        Attributes:
            name (None | str | Unset):
            system_prompt (None | str | Unset): `null` removes it (replies then use the default prompt).
            reply_policy (ReplyPolicy | Unset): Which healing steps may trigger the agent's automatic reply; default
                `deterministic`. A message
                healed below it still succeeds, and its job's result says `reply_skipped`.
            reply (Any | Unset): New reply credentials, as on creation; `null` removes them (no more replies).
            secrets (Any | Unset): New verification secrets, checked as on creation. The secrets they replace stay valid for
                `secrets_overlap_secs`, so webhooks signed while the platform switches over are taken.
            agent (AgentSetting | Unset): A source's agent. For `forward`, Sentinel POSTs each healed message with text to
                `url` as a
                Standard Webhook (`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed with the
                source's agent secret): `{"type": "message.received", "timestamp", "data": {"job_id",
                "source_id", "message", "history"}}`. A 2xx `{"reply": "…"}` sends the reply; 429 or 503 with
                `Retry-After` waits that long; other 5xx and timeouts are retried with backoff; other 4xx end
                the job dead. The URL must be public unless the operator's `SENTINEL_FORWARD_ALLOW` names its
                host or address range.
            rotate_agent_secret (bool | Unset): Make a new forward signing secret (the agent must be `forward`); the answer
                shows it once,
                and the previous one keeps signing for `secrets_overlap_secs`.
            secrets_overlap_secs (int | Unset): How long the replaced secrets (verification secrets, and the agent's signing
                secret) stay
                valid; default 86400 (a day), 0 ends them at once.
            reply_ttl_secs (int | None | Unset): As on creation (60 to 604800); `null` goes back to the default, 3600.
                Replies already
                queued are held to the new value too.
            turns (TurnsSetting | Unset): When a conversation's next turn starts: once the conversation has been quiet for
                `quiet_ms`
                (0 to 60000; default 1500), or `max_wait_ms` after its first unanswered message (0 to 600000,
                at least `quiet_ms`; default 8000), whichever comes first. The turn carries every unanswered
                message, so a burst ("hi" / "I need help" / "with my order 1234") is answered once. Whatever
                the setting, one turn runs per conversation at a time; `on_new_message` says what a message
                arriving while it runs does (default `wait`). On a change, what is absent stays.
     """

    name: None | str | Unset = UNSET
    system_prompt: None | str | Unset = UNSET
    reply_policy: ReplyPolicy | Unset = UNSET
    reply: Any | Unset = UNSET
    secrets: Any | Unset = UNSET
    agent: AgentSetting | Unset = UNSET
    rotate_agent_secret: bool | Unset = UNSET
    secrets_overlap_secs: int | Unset = UNSET
    reply_ttl_secs: int | None | Unset = UNSET
    turns: TurnsSetting | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.agent_setting import AgentSetting # noqa: PLC0415
        from ..models.turns_setting import TurnsSetting # noqa: PLC0415
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

        reply_policy: str | Unset = UNSET
        if not isinstance(self.reply_policy, Unset):
            reply_policy = self.reply_policy.value


        reply = self.reply

        secrets = self.secrets

        agent: dict[str, Any] | Unset = UNSET
        if not isinstance(self.agent, Unset):
            agent = self.agent.to_dict()

        rotate_agent_secret = self.rotate_agent_secret

        secrets_overlap_secs = self.secrets_overlap_secs

        reply_ttl_secs: int | None | Unset
        if isinstance(self.reply_ttl_secs, Unset):
            reply_ttl_secs = UNSET
        else:
            reply_ttl_secs = self.reply_ttl_secs

        turns: dict[str, Any] | Unset = UNSET
        if not isinstance(self.turns, Unset):
            turns = self.turns.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if name is not UNSET:
            field_dict["name"] = name
        if system_prompt is not UNSET:
            field_dict["system_prompt"] = system_prompt
        if reply_policy is not UNSET:
            field_dict["reply_policy"] = reply_policy
        if reply is not UNSET:
            field_dict["reply"] = reply
        if secrets is not UNSET:
            field_dict["secrets"] = secrets
        if agent is not UNSET:
            field_dict["agent"] = agent
        if rotate_agent_secret is not UNSET:
            field_dict["rotate_agent_secret"] = rotate_agent_secret
        if secrets_overlap_secs is not UNSET:
            field_dict["secrets_overlap_secs"] = secrets_overlap_secs
        if reply_ttl_secs is not UNSET:
            field_dict["reply_ttl_secs"] = reply_ttl_secs
        if turns is not UNSET:
            field_dict["turns"] = turns

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.agent_setting import AgentSetting # noqa: PLC0415
        from ..models.turns_setting import TurnsSetting # noqa: PLC0415
        d = dict(src_dict)
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


        _reply_policy = d.pop("reply_policy", UNSET)
        reply_policy: ReplyPolicy | Unset
        if isinstance(_reply_policy,  Unset):
            reply_policy = UNSET
        else:
            reply_policy = ReplyPolicy(_reply_policy)




        reply = d.pop("reply", UNSET)

        secrets = d.pop("secrets", UNSET)

        _agent = d.pop("agent", UNSET)
        agent: AgentSetting | Unset
        if isinstance(_agent,  Unset):
            agent = UNSET
        else:
            agent = AgentSetting.from_dict(_agent)




        rotate_agent_secret = d.pop("rotate_agent_secret", UNSET)

        secrets_overlap_secs = d.pop("secrets_overlap_secs", UNSET)

        def _parse_reply_ttl_secs(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        reply_ttl_secs = _parse_reply_ttl_secs(d.pop("reply_ttl_secs", UNSET))


        _turns = d.pop("turns", UNSET)
        turns: TurnsSetting | Unset
        if isinstance(_turns,  Unset):
            turns = UNSET
        else:
            turns = TurnsSetting.from_dict(_turns)




        update_source = cls(
            name=name,
            system_prompt=system_prompt,
            reply_policy=reply_policy,
            reply=reply,
            secrets=secrets,
            agent=agent,
            rotate_agent_secret=rotate_agent_secret,
            secrets_overlap_secs=secrets_overlap_secs,
            reply_ttl_secs=reply_ttl_secs,
            turns=turns,
        )


        update_source.additional_properties = d
        return update_source

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
