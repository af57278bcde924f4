//! `/v1/sources`: a tenant's ingress endpoints. Secrets go in and never come out.

use std::{num::NonZeroU32, sync::Arc};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::{
    param::Path, payload::Json, types::MaybeUndefined, ApiResponse, Enum, Object, OpenApi,
};
use sentinel_queue::{
    agent::{self, AgentMode, AgentSettings},
    conversations::{OnNewMessage, TurnSettings},
    kinds::reply_deliver,
    platform::{self, Platform, INGEST_TOKEN_FIELD},
    tables::sources,
};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use crate::{
    admin::Deleted,
    admission,
    auth::TenantAuth,
    error::ApiError,
    jobs::{self, JobCreated},
    ApiTags, AppState,
};

// The platforms a source can be for, from the registry in `sentinel_queue::platform`.
macro_rules! platform_names {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
        #[oai(rename_all = "lowercase")]
        pub enum PlatformName {
            $($variant),+
        }

        impl From<PlatformName> for Platform {
            fn from(name: PlatformName) -> Self {
                match name {
                    $(PlatformName::$variant => Platform::$variant),+
                }
            }
        }
    };
}

sentinel_queue::with_platforms!(platform_names);

/// Which healing steps may trigger the agent's automatic reply; default `deterministic`. A message
/// healed below it still succeeds, and its job's result says `reply_skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ReplyPolicy {
    /// Only messages the platform's adapter or repair healed (the default): the model's heal is a
    /// guess, and a guessed id must never receive a reply.
    Deterministic,
    /// The generic extractor's heals too (it answers only when every field is unambiguous).
    Extracted,
    /// The model's heals too.
    Any,
    /// No automatic replies.
    Never,
}

impl ReplyPolicy {
    fn as_str(self) -> &'static str {
        match self {
            ReplyPolicy::Deterministic => "deterministic",
            ReplyPolicy::Extracted => "extracted",
            ReplyPolicy::Any => "any",
            ReplyPolicy::Never => "never",
        }
    }
}

/// Who answers a source's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum AgentModeName {
    /// The built-in worker's reply, from the source's system prompt (the default).
    Builtin,
    /// No one: messages are healed and kept.
    None,
    /// An `agent.turn` job for your workers (`/v1/worker/claim`); `complete` with `reply` answers.
    External,
    /// A signed POST to your agent's `url`; a 2xx `{"reply": "…"}` answers.
    Forward,
}

impl From<AgentModeName> for AgentMode {
    fn from(name: AgentModeName) -> Self {
        match name {
            AgentModeName::Builtin => AgentMode::Builtin,
            AgentModeName::None => AgentMode::None,
            AgentModeName::External => AgentMode::External,
            AgentModeName::Forward => AgentMode::Forward,
        }
    }
}

/// A source's agent. For `forward`, Sentinel POSTs each healed message with text to `url` as a
/// Standard Webhook (`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed with the
/// source's agent secret): `{"type": "message.received", "timestamp", "data": {"job_id",
/// "source_id", "message", "history"}}`. A 2xx `{"reply": "…"}` sends the reply; 429 or 503 with
/// `Retry-After` waits that long; other 5xx and timeouts are retried with backoff; other 4xx end
/// the job dead. The URL must be public unless the operator's `SENTINEL_FORWARD_ALLOW` names its
/// host or address range.
#[derive(Debug, Clone, Object)]
pub struct AgentSetting {
    pub mode: AgentModeName,
    /// `forward` only: where messages are POSTed (http or https).
    #[oai(validator(max_length = 2000))]
    pub url: Option<String>,
    /// `forward` only: the most requests outstanding to the agent at once, across all workers;
    /// default 4.
    #[oai(validator(minimum(value = "1"), maximum(value = "256")))]
    pub max_in_flight: Option<u32>,
    /// `forward` only: how long a request may take before it is retried; default 10000.
    #[oai(validator(minimum(value = "100"), maximum(value = "60000")))]
    pub timeout_ms: Option<u32>,
}

impl AgentSetting {
    fn checked(&self, state: &AppState) -> Result<AgentSettings, ApiError> {
        AgentSettings {
            mode: self.mode.into(),
            url: self.url.clone(),
            max_in_flight: self.max_in_flight,
            timeout_ms: self.timeout_ms,
        }
        .checked(&state.config.forward_allow)
        .map_err(|message| ApiError::unprocessable("invalid_agent", message))
    }
}

/// A source's agent as the API shows it.
#[derive(Debug, Object)]
pub struct AgentView {
    /// `builtin`, `none`, `external` or `forward`.
    pub mode: String,
    #[oai(skip_serializing_if_is_none)]
    pub url: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub max_in_flight: Option<u32>,
    #[oai(skip_serializing_if_is_none)]
    pub timeout_ms: Option<u32>,
    /// The signing secret of forward requests (`whsec_…`), only in the answer that made it: the
    /// creation of a forwarding source, a switch to `forward`, or `rotate_agent_secret`. It is
    /// never shown again.
    #[oai(skip_serializing_if_is_none)]
    pub secret: Option<String>,
    /// After a rotation, the previous secret also signs forward requests until this time.
    #[oai(skip_serializing_if_is_none)]
    pub previous_secret_until: Option<DateTime<Utc>>,
}

impl AgentView {
    fn of(stored: &JsonValue, previous_secret_until: Option<DateTime<Utc>>) -> Self {
        let settings = AgentSettings::from_json(stored);
        AgentView {
            mode: settings.mode.as_str().to_owned(),
            url: settings.url,
            max_in_flight: settings.max_in_flight,
            timeout_ms: settings.timeout_ms,
            secret: None,
            previous_secret_until,
        }
    }
}

/// When a conversation's next turn starts: once the conversation has been quiet for `quiet_ms`
/// (0 to 60000; default 1500), or `max_wait_ms` after its first unanswered message (0 to 600000,
/// at least `quiet_ms`; default 8000), whichever comes first. The turn carries every unanswered
/// message, so a burst ("hi" / "I need help" / "with my order 1234") is answered once. Whatever
/// the setting, one turn runs per conversation at a time; `on_new_message` says what a message
/// arriving while it runs does (default `wait`). On a change, what is absent stays.
#[derive(Debug, Clone, Copy, Object)]
pub struct TurnsSetting {
    #[oai(validator(maximum(value = "60000")))]
    pub quiet_ms: Option<u32>,
    #[oai(validator(maximum(value = "600000")))]
    pub max_wait_ms: Option<u32>,
    pub on_new_message: Option<OnNewMessageName>,
    /// Whether the platform shows "typing…" while a turn runs (Telegram `sendChatAction`, the
    /// WhatsApp Cloud API's typing indicator; Slack and Salesforce have none). Default: on while
    /// the built-in agent answers, off for your own agents until you turn it on.
    pub typing: Option<bool>,
}

/// What a message arriving while a turn of its conversation runs does. `wait`: it is answered by
/// the next turn, once this one has ended. `interrupt`: the running turn is canceled (a queued
/// turn at once; a running one when its worker next heartbeats, and a forward is abandoned) and
/// the next turn answers the interrupted turn's messages together with the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum OnNewMessageName {
    Wait,
    Interrupt,
}

impl OnNewMessageName {
    fn of(value: OnNewMessage) -> Self {
        match value {
            OnNewMessage::Wait => Self::Wait,
            OnNewMessage::Interrupt => Self::Interrupt,
        }
    }

    fn setting(self) -> OnNewMessage {
        match self {
            Self::Wait => OnNewMessage::Wait,
            Self::Interrupt => OnNewMessage::Interrupt,
        }
    }
}

impl TurnsSetting {
    /// The setting over `current`, checked.
    fn over(self, current: TurnSettings) -> Result<TurnSettings, ApiError> {
        TurnSettings {
            quiet_ms: self.quiet_ms.unwrap_or(current.quiet_ms),
            max_wait_ms: self.max_wait_ms.unwrap_or(current.max_wait_ms),
            on_new_message: self
                .on_new_message
                .map_or(current.on_new_message, OnNewMessageName::setting),
            typing: self.typing.or(current.typing),
        }
        .checked()
        .map_err(|message| ApiError::unprocessable("invalid_turns", message))
    }
}

/// A source's turn setting as the API shows it (see `TurnsSetting`).
#[derive(Debug, Clone, Copy, Object)]
pub struct TurnsView {
    pub quiet_ms: u32,
    pub max_wait_ms: u32,
    pub on_new_message: OnNewMessageName,
    /// Whether "typing…" shows while its turns run, with the default for its agent applied.
    pub typing: bool,
}

impl TurnsView {
    fn of(settings: TurnSettings, agent: AgentMode) -> Self {
        Self {
            quiet_ms: settings.quiet_ms,
            max_wait_ms: settings.max_wait_ms,
            on_new_message: OnNewMessageName::of(settings.on_new_message),
            typing: settings
                .typing
                .unwrap_or(matches!(agent, AgentMode::Builtin)),
        }
    }
}

/// A source's turn settings as its columns store them.
fn stored_turns(
    quiet_ms: i32,
    max_wait_ms: i32,
    on_new_message: &str,
    typing: Option<bool>,
) -> TurnSettings {
    TurnSettings {
        quiet_ms: u32::try_from(quiet_ms).unwrap_or(0),
        max_wait_ms: u32::try_from(max_wait_ms).unwrap_or(0),
        on_new_message: OnNewMessage::from_column(on_new_message),
        typing,
    }
}

/// A new agent secret: 32 random bytes, as Standard Webhooks writes a secret.
fn new_agent_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[derive(Debug, Object)]
pub struct CreateSource {
    pub platform: PlatformName,
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// Verification secrets. telegram: `secret_token` (16+ characters); whatsapp: `app_secret`
    /// (16+), `verify_token` (8+); slack: `signing_secret` (16+); salesforce: `organization_id`
    /// (15 or 18 characters; not a secret, so set `ingest_token` too); standard: `secret`
    /// (`whsec_…` of 24 to 64 bytes, or a list of up to 3 for rotation). Any platform may add
    /// `ingest_token` (24+ letters, digits, `-`, `_`): the ingest URL must then carry it as
    /// `?token=`.
    pub secrets: JsonValue,
    /// Reply credentials. telegram: `bot_token`; whatsapp: `access_token`, `phone_number_id`;
    /// slack: `bot_token`.
    pub reply: Option<JsonValue>,
    /// The agent's system prompt for replies to this source's messages.
    #[oai(validator(max_length = 20000))]
    pub system_prompt: Option<String>,
    // Documented on `ReplyPolicy`: a doc comment here would make the field an `allOf`, which
    // some client generators (openapi-python-client) cannot read.
    pub reply_policy: Option<ReplyPolicy>,
    // Documented on `AgentSetting`; default `{"mode": "builtin"}`.
    pub agent: Option<AgentSetting>,
    /// How long, in seconds, a reply to this source's conversations keeps being retried through
    /// the platform's outages (network errors, timeouts, 5xx), from when it was queued: 60 to
    /// 604800 (a week); default 3600. After it the reply's job ends `dead` with `reply_expired`,
    /// and can be replayed.
    pub reply_ttl_secs: Option<i64>,
    // Documented on `TurnsSetting`.
    pub turns: Option<TurnsSetting>,
}

#[derive(Debug, Object)]
pub struct Source {
    pub id: Uuid,
    pub platform: String,
    #[oai(nullable)]
    pub name: Option<String>,
    /// Where the platform must send its webhooks. With an `ingest_token`, the creation answer's URL
    /// carries `?token=`; listings leave it out.
    pub ingest_url: String,
    /// Whether reply credentials were given (they are never returned).
    pub has_reply_credentials: bool,
    /// `deterministic`, `extracted`, `any` or `never`.
    pub reply_policy: String,
    /// The agent's system prompt for replies to this source's messages.
    #[oai(nullable)]
    pub system_prompt: Option<String>,
    /// After a rotation, the replaced secrets are still taken until this time.
    #[oai(nullable)]
    pub previous_secrets_until: Option<DateTime<Utc>>,
    // Documented on `AgentView`.
    pub agent: AgentView,
    /// How long, in seconds, a reply keeps being retried through the platform's outages before
    /// its job ends `dead` with `reply_expired`; 3600 unless set.
    pub reply_ttl_secs: i64,
    // Documented on `TurnsView`.
    pub turns: TurnsView,
    pub created_at: DateTime<Utc>,
    /// When the source was last changed; null when never.
    #[oai(nullable)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A change to a source; what is absent stays as it is. The ingest URL never changes.
#[derive(Debug, Object)]
pub struct UpdateSource {
    #[oai(nullable, validator(max_length = 200))]
    pub name: MaybeUndefined<String>,
    /// `null` removes it (replies then use the default prompt).
    #[oai(nullable, validator(max_length = 20000))]
    pub system_prompt: MaybeUndefined<String>,
    // Documented on `ReplyPolicy` (a doc comment here would make the field an `allOf`).
    pub reply_policy: Option<ReplyPolicy>,
    /// New reply credentials, as on creation; `null` removes them (no more replies).
    #[oai(nullable)]
    pub reply: MaybeUndefined<JsonValue>,
    /// New verification secrets, checked as on creation. The secrets they replace stay valid for
    /// `secrets_overlap_secs`, so webhooks signed while the platform switches over are taken.
    pub secrets: Option<JsonValue>,
    // Documented on `AgentSetting`. Switching to `forward` makes a signing secret when the source
    // has none, and the answer shows it once.
    pub agent: Option<AgentSetting>,
    /// Make a new forward signing secret (the agent must be `forward`); the answer shows it once,
    /// and the previous one keeps signing for `secrets_overlap_secs`.
    pub rotate_agent_secret: Option<bool>,
    /// How long the replaced secrets (verification secrets, and the agent's signing secret) stay
    /// valid; default 86400 (a day), 0 ends them at once.
    #[oai(validator(minimum(value = "0"), maximum(value = "2592000")))]
    pub secrets_overlap_secs: Option<u32>,
    /// As on creation (60 to 604800); `null` goes back to the default, 3600. Replies already
    /// queued are held to the new value too.
    #[oai(nullable)]
    pub reply_ttl_secs: MaybeUndefined<i64>,
    // Documented on `TurnsSetting`: what is absent stays as it is.
    pub turns: Option<TurnsSetting>,
}

/// A message to send through the source's platform, with its reply credentials.
#[derive(Debug, Object)]
pub struct SendMessage {
    /// The conversation, as the platform names it: Telegram's chat id, WhatsApp's customer number
    /// (`wa_id`), Slack's channel id.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub conversation_id: String,
    /// At most 4096 characters.
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub text: String,
    /// The message it answers: Telegram's `message_id`, WhatsApp's message id (`wamid…`), or the
    /// Slack thread's `ts`.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub reply_to: Option<String>,
}

#[derive(Debug, Object)]
pub struct SourceList {
    pub items: Vec<Source>,
}

#[derive(ApiResponse)]
pub enum CreatedSource {
    #[oai(status = 201)]
    Created(Json<Source>),
}

pub struct SourcesApi;

/// Free-text fields must not hold U+0000, which PostgreSQL's text cannot store.
fn check_texts(fields: &[(&str, Option<&str>)]) -> Result<(), ApiError> {
    for (field, text) in fields {
        if text.is_some_and(|text| text.contains('\0')) {
            return Err(ApiError::unprocessable(
                "invalid_source",
                format!("{field} must not contain U+0000"),
            ));
        }
    }
    Ok(())
}

fn check_secrets(platform: Platform, secrets: &JsonValue) -> Result<(), ApiError> {
    if !secrets.is_object() {
        return Err(ApiError::unprocessable(
            "invalid_secrets",
            "secrets must be an object",
        ));
    }
    platform
        .validate_secrets(secrets)
        .map_err(|message| ApiError::unprocessable("invalid_secrets", message))
}

fn check_reply(platform: Platform, reply: &JsonValue) -> Result<(), ApiError> {
    platform
        .validate_reply_credentials(reply)
        .map_err(|message| ApiError::unprocessable("invalid_reply", message))?;
    if reply.to_string().contains("\\u0000") {
        return Err(ApiError::unprocessable(
            "invalid_reply",
            "reply must not contain U+0000",
        ));
    }
    Ok(())
}

/// `reply_ttl_secs`, when given, is within [`agent::REPLY_TTL_SECS_RANGE`]; as the column stores it.
fn check_reply_ttl(reply_ttl_secs: Option<i64>) -> Result<Option<i32>, ApiError> {
    let Some(secs) = reply_ttl_secs else {
        return Ok(None);
    };
    let range = agent::REPLY_TTL_SECS_RANGE;
    if !range.contains(&secs) {
        return Err(ApiError::unprocessable(
            "invalid_source",
            format!(
                "reply_ttl_secs must be from {} to {} seconds (a minute to a week), not {secs}",
                range.start(),
                range.end()
            ),
        ));
    }
    i32::try_from(secs)
        .map(Some)
        .map_err(|_| ApiError::unprocessable("invalid_source", "reply_ttl_secs is too large"))
}

/// A `MaybeUndefined` field as a column change: absent keeps the column, `null` clears it.
fn set<T>(field: &MaybeUndefined<T>) -> sources::Set<&T> {
    (!field.is_undefined()).then(|| field.value())
}

/// The agent part of a source's change, checked.
struct AgentChange {
    /// New agent settings, if the change sets them.
    settings: Option<AgentSettings>,
    /// The source forwards after the change.
    forwarding: bool,
    /// The change rotates the signing secret.
    rotate: bool,
}

impl AgentChange {
    /// Checks the new agent settings against the operator's allowlist, and refuses a rotation of
    /// the signing secret of a source that does not forward (after the change).
    fn checked(
        state: &AppState,
        body: &UpdateSource,
        current_agent: &JsonValue,
    ) -> Result<Self, ApiError> {
        let settings = body
            .agent
            .as_ref()
            .map(|agent| agent.checked(state))
            .transpose()?;
        let forwarding = settings
            .as_ref()
            .map_or(AgentSettings::from_json(current_agent).mode, |agent| {
                agent.mode
            })
            == AgentMode::Forward;
        let rotate = body.rotate_agent_secret == Some(true);
        if rotate && !forwarding {
            return Err(ApiError::unprocessable(
                "invalid_agent",
                "rotate_agent_secret is for a source whose agent is forward",
            ));
        }
        Ok(Self {
            settings,
            forwarding,
            rotate,
        })
    }
}

/// Checks a change's texts, secrets, reply credentials and reply ttl, as on creation: the reply
/// ttl as the column stores it.
fn check_update(platform: Platform, body: &UpdateSource) -> Result<Option<i32>, ApiError> {
    check_texts(&[
        ("name", body.name.value().map(String::as_str)),
        (
            "system_prompt",
            body.system_prompt.value().map(String::as_str),
        ),
    ])?;
    if let Some(secrets) = &body.secrets {
        check_secrets(platform, secrets)?;
    }
    if let MaybeUndefined::Value(reply) = &body.reply {
        check_reply(platform, reply)?;
    }
    check_reply_ttl(body.reply_ttl_secs.value().copied())
}

/// The source as changed, read back; as on creation, the one answer that shows a new ingest
/// token: the URL to give the platform.
async fn updated_source(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    body: &UpdateSource,
) -> Result<Source, ApiError> {
    let mut source = tenant_sources(state, tenant_id, Some(id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("source_not_found", format!("no source {id}")))?;
    if let Some(token) = body
        .secrets
        .as_ref()
        .and_then(|secrets| secrets.get(INGEST_TOKEN_FIELD))
        .and_then(JsonValue::as_str)
    {
        source.ingest_url = format!("{}?token={token}", state.ingest_url(id));
    }
    Ok(source)
}

/// The one answer that shows a new signing secret.
fn shown_once(mut source: Source, new_secret: Option<String>) -> Source {
    if new_secret.is_some() {
        source.agent.secret = new_secret;
    }
    source
}

/// The tenant's sources (or only `id`), newest first, as the API shows them.
async fn tenant_sources(
    state: &AppState,
    tenant_id: Uuid,
    id: Option<Uuid>,
) -> Result<Vec<Source>, ApiError> {
    let rows = sources::list(&state.pool, tenant_id, id).await?;
    Ok(rows
        .into_iter()
        .map(|row| Source {
            id: row.id,
            ingest_url: state.ingest_url(row.id),
            platform: row.platform,
            name: row.name,
            has_reply_credentials: row.has_reply,
            reply_policy: row.reply_policy,
            system_prompt: row.system_prompt,
            previous_secrets_until: row.previous_secrets_until,
            agent: AgentView::of(&row.agent, row.previous_agent_secret_until),
            reply_ttl_secs: i64::from(row.reply_ttl),
            turns: TurnsView::of(
                stored_turns(
                    row.turn_quiet_ms,
                    row.turn_max_wait_ms,
                    &row.turn_on_new_message,
                    row.turn_typing,
                ),
                AgentSettings::from_json(&row.agent).mode,
            ),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect())
}

#[OpenApi(prefix_path = "/v1/sources", tag = "ApiTags::Sources")]
impl SourcesApi {
    /// Create an ingress endpoint for one platform.
    #[oai(path = "/", method = "post", operation_id = "createSource")]
    async fn create(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateSource>,
    ) -> Result<CreatedSource, ApiError> {
        admission::spend(&auth.0.tenant, NonZeroU32::MIN).await?;
        let platform: Platform = body.platform.into();
        check_texts(&[
            ("name", body.name.as_deref()),
            ("system_prompt", body.system_prompt.as_deref()),
        ])?;
        check_secrets(platform, &body.secrets)?;
        if let Some(reply) = &body.reply {
            check_reply(platform, reply)?;
        }
        let agent = match &body.agent {
            Some(agent) => agent.checked(&state)?,
            None => AgentSettings::default(),
        };
        let reply_ttl = check_reply_ttl(body.reply_ttl_secs)?;
        let turns = match body.turns {
            Some(turns) => turns.over(TurnSettings::default())?,
            None => TurnSettings::default(),
        };
        let agent_secret = (agent.mode == AgentMode::Forward).then(new_agent_secret);
        let agent_json = agent.to_json();
        let new_source = sources::NewSource {
            tenant_id: auth.0.tenant_id(),
            platform: platform.as_str(),
            name: body.name.as_deref(),
            secrets: &body.secrets,
            reply: body.reply.as_ref(),
            system_prompt: body.system_prompt.as_deref(),
            reply_policy: body
                .reply_policy
                .unwrap_or(ReplyPolicy::Deterministic)
                .as_str(),
            agent: &agent_json,
            agent_secret: agent_secret.as_deref(),
            reply_ttl,
            turns,
        };
        let row = sources::insert(&state.pool, new_source).await?;
        let mut agent = AgentView::of(&row.agent, None);
        // The one answer that shows the signing secret.
        agent.secret = agent_secret;
        Ok(CreatedSource::Created(Json(Source {
            id: row.id,
            platform: platform.as_str().to_owned(),
            name: body.name.clone(),
            // The one answer that shows an ingest token: the URL to give the platform.
            ingest_url: match body
                .secrets
                .get(INGEST_TOKEN_FIELD)
                .and_then(JsonValue::as_str)
            {
                Some(token) => format!("{}?token={token}", state.ingest_url(row.id)),
                None => state.ingest_url(row.id),
            },
            has_reply_credentials: body.reply.is_some(),
            reply_policy: row.reply_policy,
            system_prompt: body.system_prompt.clone(),
            previous_secrets_until: None,
            agent,
            reply_ttl_secs: i64::from(reply_ttl.unwrap_or(agent::DEFAULT_REPLY_TTL_SECS)),
            turns: TurnsView::of(turns, AgentSettings::from_json(&row.agent).mode),
            created_at: row.created_at,
            updated_at: None,
        })))
    }

    /// The tenant's sources, without their secrets.
    #[oai(path = "/", method = "get", operation_id = "listSources")]
    async fn list(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
    ) -> Result<Json<SourceList>, ApiError> {
        let items = tenant_sources(&state, auth.0.tenant_id(), None).await?;
        Ok(Json(SourceList { items }))
    }

    /// One source, without its secrets.
    #[oai(path = "/:id", method = "get", operation_id = "getSource")]
    async fn get(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
    ) -> Result<Json<Source>, ApiError> {
        tenant_sources(&state, auth.0.tenant_id(), Some(id.0))
            .await?
            .pop()
            .map(Json)
            .ok_or_else(|| ApiError::not_found("source_not_found", format!("no source {}", id.0)))
    }

    /// Change a source's name, system prompt, reply policy or reply credentials, or rotate its
    /// secrets (the replaced ones stay valid for `secrets_overlap_secs`). The ingest URL stays.
    #[oai(path = "/:id", method = "patch", operation_id = "updateSource")]
    async fn update(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
        body: Json<UpdateSource>,
    ) -> Result<Json<Source>, ApiError> {
        admission::spend(&auth.0.tenant, NonZeroU32::MIN).await?;
        let tenant_id = auth.0.tenant_id();
        let current = sources::platform_and_agent(&state.pool, id.0, tenant_id)
            .await?
            .ok_or_else(|| {
                ApiError::not_found("source_not_found", format!("no source {}", id.0))
            })?;
        let platform: Platform = current.platform.parse().map_err(ApiError::internal)?;
        let agent = AgentChange::checked(&state, &body, &current.agent)?;
        let new_secret = new_agent_secret();
        let reply_ttl = check_update(platform, &body)?;
        let current_turns = stored_turns(
            current.turn_quiet_ms,
            current.turn_max_wait_ms,
            &current.turn_on_new_message,
            current.turn_typing,
        );
        let turns = body
            .turns
            .map(|turns| turns.over(current_turns))
            .transpose()?;
        let agent_json = agent.settings.as_ref().map(AgentSettings::to_json);
        let change = sources::SourceChange {
            name: set(&body.name).map(|name| name.map(String::as_str)),
            system_prompt: set(&body.system_prompt).map(|prompt| prompt.map(String::as_str)),
            reply_policy: body.reply_policy.map(ReplyPolicy::as_str),
            reply: set(&body.reply),
            secrets: body.secrets.as_ref(),
            overlap_secs: f64::from(body.secrets_overlap_secs.unwrap_or(86_400)),
            agent: agent_json.as_ref(),
            rotate_agent_secret: agent.rotate,
            forwarding: agent.forwarding,
            new_agent_secret: &new_secret,
            reply_ttl: set(&body.reply_ttl_secs).map(|_| reply_ttl),
            turns,
        };
        let sources::SourceChanged::Changed { secret_shown } =
            sources::update(&state.pool, id.0, tenant_id, change).await?
        else {
            return Err(ApiError::not_found(
                "source_not_found",
                format!("no source {}", id.0),
            ));
        };
        // At once on this gateway; the notification does the same on every other.
        state
            .directory
            .invalidate(&format!("source:{}", id.0))
            .await;
        let source = updated_source(&state, tenant_id, id.0, &body).await?;
        Ok(Json(shown_once(source, secret_shown.then_some(new_secret))))
    }

    /// Send a message through the source's platform with its reply credentials: a `reply.deliver`
    /// job in the outbox, retried and audited like the agent's replies. With an `Idempotency-Key`,
    /// a repeated request returns the first job.
    #[oai(path = "/:id/messages", method = "post", operation_id = "sendMessage")]
    async fn send(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key", validator(max_length = 200))] idempotency_key: Header<
            Option<String>,
        >,
        body: Json<SendMessage>,
    ) -> Result<JobCreated, ApiError> {
        let tenant_id = auth.0.tenant_id();
        let source = sources::sending(&state.pool, id.0, tenant_id)
            .await?
            .ok_or_else(|| {
                ApiError::not_found("source_not_found", format!("no source {}", id.0))
            })?;
        let platform: Platform = source.platform.parse().map_err(ApiError::internal)?;
        agent::check_reply_text(&body.text)
            .map_err(|message| ApiError::unprocessable("invalid_message", message))?;
        for (field, text) in [
            ("conversation_id", Some(body.conversation_id.as_str())),
            ("reply_to", body.reply_to.as_deref()),
        ] {
            if text.is_some_and(|text| text.contains('\0')) {
                return Err(ApiError::unprocessable(
                    "invalid_message",
                    format!("{field} must not contain U+0000"),
                ));
            }
        }
        let address =
            platform::send_address(platform, &body.conversation_id, body.reply_to.as_deref())
                .map_err(|message| ApiError::unprocessable("no_send_api", message))?;
        if !source.has_reply {
            return Err(ApiError::conflict(
                "no_reply_credentials",
                format!(
                    "source {} has no reply credentials to send with; set them with PATCH /v1/sources/{}",
                    id.0, id.0
                ),
            ));
        }
        admission::admit(&state.queue_counts, &auth.0.tenant, 1).await?;
        let job = reply_deliver::job(
            tenant_id,
            id.0,
            reply_deliver::Input {
                platform: Some(platform.as_str().to_owned()),
                text: body.text.clone(),
                address,
                conversation_id: Some(body.conversation_id.clone()),
                inbound_job_id: None,
                agent_job_id: None,
            },
        );
        jobs::submit(&state, job, idempotency_key.0.as_deref()).await
    }

    /// Delete a source. Its ingress answers 404 afterwards, on every gateway.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteSource")]
    async fn delete(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        admission::spend(&auth.0.tenant, NonZeroU32::MIN).await?;
        if !sources::delete(&state.pool, id.0, auth.0.tenant_id()).await? {
            return Err(ApiError::not_found(
                "source_not_found",
                format!("no source {}", id.0),
            ));
        }
        // At once on this gateway; the notification does the same on every other.
        state
            .directory
            .invalidate(&format!("source:{}", id.0))
            .await;
        Ok(Deleted::NoContent)
    }
}
