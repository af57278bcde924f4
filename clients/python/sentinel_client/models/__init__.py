""" Contains all the data models used in inputs/outputs """

from .agent_mode_name import AgentModeName
from .agent_setting import AgentSetting
from .agent_view import AgentView
from .api_key_created import ApiKeyCreated
from .attachment import Attachment
from .attempt_ended import AttemptEnded
from .attempt_list import AttemptList
from .attempt_view import AttemptView
from .bulk_replay import BulkReplay
from .bulk_replayed import BulkReplayed
from .canonical_event_type import CanonicalEventType
from .canonical_message import CanonicalMessage
from .canonical_platform import CanonicalPlatform
from .claim_request import ClaimRequest
from .claim_response import ClaimResponse
from .claimed_job import ClaimedJob
from .complete_request import CompleteRequest
from .conversation import Conversation
from .conversation_message import ConversationMessage
from .conversation_page import ConversationPage
from .conversation_state import ConversationState
from .conversation_summary import ConversationSummary
from .conversation_turn import ConversationTurn
from .create_job import CreateJob
from .create_source import CreateSource
from .create_tenant import CreateTenant
from .error_body import ErrorBody
from .error_detail import ErrorDetail
from .fail_request import FailRequest
from .healed_by import HealedBy
from .healed_message import HealedMessage
from .heartbeat_request import HeartbeatRequest
from .heartbeat_response import HeartbeatResponse
from .job_accepted import JobAccepted
from .job_event_data import JobEventData
from .job_event_type import JobEventType
from .job_page import JobPage
from .job_payload import JobPayload
from .job_view import JobView
from .kind_list import KindList
from .kind_patch import KindPatch
from .kind_view import KindView
from .minute_counts import MinuteCounts
from .on_new_message_name import OnNewMessageName
from .patch_tenant import PatchTenant
from .payload_encoding import PayloadEncoding
from .platform_name import PlatformName
from .progress_request import ProgressRequest
from .replay_filter import ReplayFilter
from .replayed import Replayed
from .replayed_item import ReplayedItem
from .reply_policy import ReplyPolicy
from .send_message import SendMessage
from .source import Source
from .source_list import SourceList
from .stats import Stats
from .status_counts import StatusCounts
from .tenant import Tenant
from .tenant_created import TenantCreated
from .tenant_page import TenantPage
from .tenant_status import TenantStatus
from .tenant_summary import TenantSummary
from .turns_setting import TurnsSetting
from .turns_view import TurnsView
from .update_source import UpdateSource

__all__ = (
    "AgentModeName",
    "AgentSetting",
    "AgentView",
    "ApiKeyCreated",
    "Attachment",
    "AttemptEnded",
    "AttemptList",
    "AttemptView",
    "BulkReplay",
    "BulkReplayed",
    "CanonicalEventType",
    "CanonicalMessage",
    "CanonicalPlatform",
    "ClaimedJob",
    "ClaimRequest",
    "ClaimResponse",
    "CompleteRequest",
    "Conversation",
    "ConversationMessage",
    "ConversationPage",
    "ConversationState",
    "ConversationSummary",
    "ConversationTurn",
    "CreateJob",
    "CreateSource",
    "CreateTenant",
    "ErrorBody",
    "ErrorDetail",
    "FailRequest",
    "HealedBy",
    "HealedMessage",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "JobAccepted",
    "JobEventData",
    "JobEventType",
    "JobPage",
    "JobPayload",
    "JobView",
    "KindList",
    "KindPatch",
    "KindView",
    "MinuteCounts",
    "OnNewMessageName",
    "PatchTenant",
    "PayloadEncoding",
    "PlatformName",
    "ProgressRequest",
    "Replayed",
    "ReplayedItem",
    "ReplayFilter",
    "ReplyPolicy",
    "SendMessage",
    "Source",
    "SourceList",
    "Stats",
    "StatusCounts",
    "Tenant",
    "TenantCreated",
    "TenantPage",
    "TenantStatus",
    "TenantSummary",
    "TurnsSetting",
    "TurnsView",
    "UpdateSource",
)
