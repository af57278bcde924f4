from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.platform_name import PlatformName
from ..models.reply_policy import ReplyPolicy
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.agent_setting import AgentSetting
  from ..models.turns_setting import TurnsSetting





T = TypeVar("T", bound="CreateSource")



@_attrs_define
class CreateSource:
    """ 
        Attributes:
            platform (PlatformName):
            secrets (Any): Verification secrets. telegram: `secret_token` (16+ characters); whatsapp: `app_secret`
                (16+), `verify_token` (8+); slack: `signing_secret` (16+); salesforce: `organization_id`
                (15 or 18 characters; not a secret, so set `ingest_token` too); standard: `secret`
                (`whsec_…` of 24 to 64 bytes, or a list of up to 3 for rotation). Any platform may add
                `ingest_token` (24+ letters, digits, `-`, `_`): the ingest URL must then carry it as
                `?token=`.
            name (str | Unset):
            reply (Any | Unset): Reply credentials. telegram: `bot_token`; whatsapp: `access_token`, `phone_number_id`;
                slack: `bot_token`.
            system_prompt (str | Unset): The agent's system prompt for replies to this source's messages.
            reply_policy (ReplyPolicy | Unset): Which healing steps may trigger the agent's automatic reply; default
                `deterministic`. A message
                healed below it still succeeds, and its job's result says `reply_skipped`.
            agent (AgentSetting | Unset): A source's agent. For `forward`, Sentinel POSTs each healed message with text to
                `url` as a
                Standard Webhook (`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed with the
                source's agent secret): `{"type": "message.received", "timestamp", "data": {"job_id",
                "source_id", "message", "history"}}`. A 2xx `{"reply": "…"}` sends the reply; 429 or 503 with
                `Retry-After` waits that long; other 5xx and timeouts are retried with backoff; other 4xx end
                the job dead. The URL must be public unless the operator's `SENTINEL_FORWARD_ALLOW` names its
                host or address range.
            reply_ttl_secs (int | Unset): How long, in seconds, a reply to this source's conversations keeps being retried
                through
                the platform's outages (network errors, timeouts, 5xx), from when it was queued: 60 to
                604800 (a week); default 3600. After it the reply's job ends `dead` with `reply_expired`,
                and can be replayed.
            turns (TurnsSetting | Unset): When a conversation's next turn starts: once the conversation has been quiet for
                `quiet_ms`
                (0 to 60000; default 1500), or `max_wait_ms` after its first unanswered message (0 to 600000,
                at least `quiet_ms`; default 8000), whichever comes first. The turn carries every unanswered
                message, so a burst ("hi" / "I need help" / "with my order 1234") is answered once. Whatever
                the setting, one turn runs per conversation at a time; `on_new_message` says what a message
                arriving while it runs does (default `wait`). On a change, what is absent stays.
     """

    platform: PlatformName
    secrets: Any
    name: str | Unset = UNSET
    reply: Any | Unset = UNSET
    system_prompt: str | Unset = UNSET
    reply_policy: ReplyPolicy | Unset = UNSET
    agent: AgentSetting | Unset = UNSET
    reply_ttl_secs: int | Unset = UNSET
    turns: TurnsSetting | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.agent_setting import AgentSetting # noqa: PLC0415
        from ..models.turns_setting import TurnsSetting # noqa: PLC0415
        platform = self.platform.value

        secrets = self.secrets

        name = self.name

        reply = self.reply

        system_prompt = self.system_prompt

        reply_policy: str | Unset = UNSET
        if not isinstance(self.reply_policy, Unset):
            reply_policy = self.reply_policy.value


        agent: dict[str, Any] | Unset = UNSET
        if not isinstance(self.agent, Unset):
            agent = self.agent.to_dict()

        reply_ttl_secs = self.reply_ttl_secs

        turns: dict[str, Any] | Unset = UNSET
        if not isinstance(self.turns, Unset):
            turns = self.turns.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "platform": platform,
            "secrets": secrets,
        })
        if name is not UNSET:
            field_dict["name"] = name
        if reply is not UNSET:
            field_dict["reply"] = reply
        if system_prompt is not UNSET:
            field_dict["system_prompt"] = system_prompt
        if reply_policy is not UNSET:
            field_dict["reply_policy"] = reply_policy
        if agent is not UNSET:
            field_dict["agent"] = agent
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
        platform = PlatformName(d.pop("platform"))




        secrets = d.pop("secrets")

        name = d.pop("name", UNSET)

        reply = d.pop("reply", UNSET)

        system_prompt = d.pop("system_prompt", UNSET)

        _reply_policy = d.pop("reply_policy", UNSET)
        reply_policy: ReplyPolicy | Unset
        if isinstance(_reply_policy,  Unset):
            reply_policy = UNSET
        else:
            reply_policy = ReplyPolicy(_reply_policy)




        _agent = d.pop("agent", UNSET)
        agent: AgentSetting | Unset
        if isinstance(_agent,  Unset):
            agent = UNSET
        else:
            agent = AgentSetting.from_dict(_agent)




        reply_ttl_secs = d.pop("reply_ttl_secs", UNSET)

        _turns = d.pop("turns", UNSET)
        turns: TurnsSetting | Unset
        if isinstance(_turns,  Unset):
            turns = UNSET
        else:
            turns = TurnsSetting.from_dict(_turns)




        create_source = cls(
            platform=platform,
            secrets=secrets,
            name=name,
            reply=reply,
            system_prompt=system_prompt,
            reply_policy=reply_policy,
            agent=agent,
            reply_ttl_secs=reply_ttl_secs,
            turns=turns,
        )


        create_source.additional_properties = d
        return create_source

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
