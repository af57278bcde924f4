//! `sources`: the ingress endpoints, their secrets, reply credentials and agents.

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{agent::DEFAULT_REPLY_TTL_SECS, conversations::TurnSettings, CONFIG_CHANNEL};

/// A source as the API shows it: no secrets, whether it has reply credentials, and the end of
/// the overlaps still running (`None` once they are over).
#[derive(Debug, Clone)]
pub struct SourceRow {
    pub id: Uuid,
    pub platform: String,
    pub name: Option<String>,
    pub has_reply: bool,
    pub reply_policy: String,
    pub system_prompt: Option<String>,
    pub previous_secrets_until: Option<DateTime<Utc>>,
    pub agent: JsonValue,
    pub previous_agent_secret_until: Option<DateTime<Utc>>,
    /// Seconds; the default when the source sets none.
    pub reply_ttl: i32,
    /// When its conversations' turns start (`crate::conversations::TurnSettings`).
    pub turn_quiet_ms: i32,
    pub turn_max_wait_ms: i32,
    pub turn_on_new_message: String,
    pub turn_typing: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The tenant's live sources (or only `id`), newest first.
pub async fn list(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<SourceRow>> {
    sqlx::query_as!(
        SourceRow,
        r#"SELECT id, platform, name, reply IS NOT NULL AS "has_reply!", reply_policy, system_prompt,
                  CASE WHEN previous_secrets_until > now() THEN previous_secrets_until END AS previous_secrets_until,
                  agent,
                  CASE WHEN previous_agent_secret_until > now() THEN previous_agent_secret_until END AS previous_agent_secret_until,
                  coalesce(reply_ttl, $3::int4) AS "reply_ttl!", turn_quiet_ms, turn_max_wait_ms,
                  turn_on_new_message, turn_typing, created_at, updated_at
           FROM sources
           WHERE tenant_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id = $2)
           ORDER BY created_at DESC"#,
        tenant_id,
        id,
        DEFAULT_REPLY_TTL_SECS
    )
    .fetch_all(executor)
    .await
}

/// A new source's columns.
#[derive(Debug, Clone, Copy)]
pub struct NewSource<'a> {
    pub tenant_id: Uuid,
    pub platform: &'a str,
    pub name: Option<&'a str>,
    pub secrets: &'a JsonValue,
    pub reply: Option<&'a JsonValue>,
    pub system_prompt: Option<&'a str>,
    pub reply_policy: &'a str,
    pub agent: &'a JsonValue,
    pub agent_secret: Option<&'a str>,
    pub reply_ttl: Option<i32>,
    pub turns: TurnSettings,
}

/// What the database chose for a source just made.
#[derive(Debug, Clone)]
pub struct InsertedSource {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub reply_policy: String,
    pub agent: JsonValue,
}

/// Inserts a source.
pub async fn insert(
    executor: impl PgExecutor<'_>,
    source: NewSource<'_>,
) -> sqlx::Result<InsertedSource> {
    sqlx::query_as!(
        InsertedSource,
        "INSERT INTO sources (tenant_id, platform, name, secrets, reply, system_prompt, reply_policy, agent, agent_secret,
                              reply_ttl, turn_quiet_ms, turn_max_wait_ms, turn_on_new_message,
                              turn_typing)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id, created_at, reply_policy, agent",
        source.tenant_id,
        source.platform,
        source.name,
        source.secrets,
        source.reply,
        source.system_prompt,
        source.reply_policy,
        source.agent,
        source.agent_secret,
        source.reply_ttl,
        turn_ms(source.turns.quiet_ms),
        turn_ms(source.turns.max_wait_ms),
        source.turns.on_new_message.as_str(),
        source.turns.typing
    )
    .fetch_one(executor)
    .await
}

/// A live source's platform, agent and turn settings.
#[derive(Debug, Clone)]
pub struct PlatformAndAgent {
    pub platform: String,
    pub agent: JsonValue,
    pub turn_quiet_ms: i32,
    pub turn_max_wait_ms: i32,
    pub turn_on_new_message: String,
    pub turn_typing: Option<bool>,
}

/// A turn setting as its column stores it (the setting is checked to at most ten minutes).
fn turn_ms(ms: u32) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// The platform and agent of the tenant's live source `id`.
pub async fn platform_and_agent(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    tenant_id: Uuid,
) -> sqlx::Result<Option<PlatformAndAgent>> {
    sqlx::query_as!(
        PlatformAndAgent,
        "SELECT platform, agent, turn_quiet_ms, turn_max_wait_ms, turn_on_new_message, turn_typing
         FROM sources
         WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        id,
        tenant_id
    )
    .fetch_optional(executor)
    .await
}

/// A column [`update`] sets: `None` keeps it, `Some(None)` clears it.
pub type Set<T> = Option<Option<T>>;

/// What [`update`] changes.
#[derive(Debug, Clone, Copy)]
pub struct SourceChange<'a> {
    pub name: Set<&'a str>,
    pub system_prompt: Set<&'a str>,
    pub reply_policy: Option<&'a str>,
    pub reply: Set<&'a JsonValue>,
    /// New secrets; the replaced ones stay valid for `overlap_secs`.
    pub secrets: Option<&'a JsonValue>,
    pub overlap_secs: f64,
    pub agent: Option<&'a JsonValue>,
    /// Rotate the agent's signing secret (the replaced one signs too for `overlap_secs`).
    pub rotate_agent_secret: bool,
    /// The source forwards after the change, so it needs a signing secret if it has none.
    pub forwarding: bool,
    /// The signing secret a rotation, or a source that starts forwarding, takes.
    pub new_agent_secret: &'a str,
    pub reply_ttl: Set<i32>,
    /// New turn settings, checked against each other.
    pub turns: Option<TurnSettings>,
}

/// How [`update`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChanged {
    NotFound,
    /// Changed; `secret_shown` when the source took `new_agent_secret`.
    Changed {
        secret_shown: bool,
    },
}

/// Changes the tenant's live source `id` and tells every gateway (`source:<id>` on
/// [`CONFIG_CHANNEL`]).
pub async fn update(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    tenant_id: Uuid,
    change: SourceChange<'_>,
) -> sqlx::Result<SourceChanged> {
    let changed = sqlx::query!(
        r#"WITH changed AS (
                   UPDATE sources SET
                       name = CASE WHEN $3 THEN $4 ELSE name END,
                       system_prompt = CASE WHEN $5 THEN $6 ELSE system_prompt END,
                       reply_policy = coalesce($7, reply_policy),
                       reply = CASE WHEN $8 THEN $9 ELSE reply END,
                       previous_secrets = CASE WHEN $10::jsonb IS NULL THEN previous_secrets ELSE secrets END,
                       previous_secrets_until = CASE WHEN $10::jsonb IS NULL THEN previous_secrets_until
                                                     ELSE now() + make_interval(secs => $11) END,
                       secrets = coalesce($10, secrets),
                       agent = coalesce($13, agent),
                       previous_agent_secret = CASE WHEN $14 AND agent_secret IS NOT NULL THEN agent_secret
                                                    ELSE previous_agent_secret END,
                       previous_agent_secret_until = CASE WHEN $14 AND agent_secret IS NOT NULL
                                                          THEN now() + make_interval(secs => $11)
                                                          ELSE previous_agent_secret_until END,
                       agent_secret = CASE WHEN $14 OR ($15 AND agent_secret IS NULL) THEN $16
                                           ELSE agent_secret END,
                       reply_ttl = CASE WHEN $17 THEN $18 ELSE reply_ttl END,
                       turn_quiet_ms = coalesce($19, turn_quiet_ms),
                       turn_max_wait_ms = coalesce($20, turn_max_wait_ms),
                       turn_on_new_message = coalesce($21, turn_on_new_message),
                       turn_typing = coalesce($22, turn_typing),
                       updated_at = now()
                   WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
                   RETURNING id, agent_secret = $16 AS shown
               )
               SELECT count(pg_notify($12, 'source:' || id::text)) AS "n!", bool_or(shown) AS "secret_shown"
               FROM changed"#,
        id,
        tenant_id,
        change.name.is_some(),
        change.name.flatten(),
        change.system_prompt.is_some(),
        change.system_prompt.flatten(),
        change.reply_policy,
        change.reply.is_some(),
        change.reply.flatten(),
        change.secrets,
        change.overlap_secs,
        CONFIG_CHANNEL,
        change.agent,
        change.rotate_agent_secret,
        change.forwarding,
        change.new_agent_secret,
        change.reply_ttl.is_some(),
        change.reply_ttl.flatten(),
        change.turns.map(|turns| turn_ms(turns.quiet_ms)),
        change.turns.map(|turns| turn_ms(turns.max_wait_ms)),
        change.turns.map(|turns| turns.on_new_message.as_str()),
        change.turns.and_then(|turns| turns.typing)
    )
    .fetch_one(executor)
    .await?;
    Ok(if changed.n == 0 {
        SourceChanged::NotFound
    } else {
        SourceChanged::Changed {
            secret_shown: changed.secret_shown == Some(true),
        }
    })
}

/// A live source's platform and whether it has reply credentials.
#[derive(Debug, Clone)]
pub struct SendingSource {
    pub platform: String,
    pub has_reply: bool,
}

/// The platform of the tenant's live source `id`, and whether it can send.
pub async fn sending(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    tenant_id: Uuid,
) -> sqlx::Result<Option<SendingSource>> {
    sqlx::query_as!(
        SendingSource,
        r#"SELECT platform, reply IS NOT NULL AS "has_reply!" FROM sources
               WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"#,
        id,
        tenant_id
    )
    .fetch_optional(executor)
    .await
}

/// Marks the tenant's live source `id` deleted and tells every gateway (`source:<id>` on
/// [`CONFIG_CHANNEL`]): false when there was no such source.
pub async fn delete(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    tenant_id: Uuid,
) -> sqlx::Result<bool> {
    let deleted = sqlx::query_scalar!(
        r#"WITH deleted AS (
                   UPDATE sources SET deleted_at = now()
                   WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING id
               )
               SELECT count(pg_notify($3, 'source:' || id::text)) AS "n!" FROM deleted"#,
        id,
        tenant_id,
        CONFIG_CHANNEL
    )
    .fetch_one(executor)
    .await?;
    Ok(deleted != 0)
}

/// What ingress needs of a live source: its tenant, platform and secrets (and the replaced ones,
/// with the end of their overlap).
#[derive(Debug, Clone)]
pub struct IngressSource {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub platform: String,
    pub secrets: JsonValue,
    pub previous_secrets: Option<JsonValue>,
    pub previous_secrets_until: Option<DateTime<Utc>>,
}

/// The live source `id`, as ingress checks a webhook with it.
pub async fn for_ingress(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<IngressSource>> {
    sqlx::query_as!(
        IngressSource,
        "SELECT id, tenant_id, platform, secrets, previous_secrets, previous_secrets_until
                     FROM sources WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .fetch_optional(executor)
    .await
}

/// What a forward needs of its source: the agent settings and the signing secrets (the previous
/// one only while its overlap runs).
#[derive(Debug, Clone)]
pub struct ForwardSource {
    pub agent: JsonValue,
    pub agent_secret: Option<String>,
    pub previous_secret: Option<String>,
}

/// The live source `id`, as a forward signs with it.
pub async fn for_forward(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<ForwardSource>> {
    sqlx::query_as!(
        ForwardSource,
        r#"SELECT agent, agent_secret,
                  CASE WHEN previous_agent_secret_until > now() THEN previous_agent_secret END AS previous_secret
           FROM sources WHERE id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_optional(executor)
    .await
}

/// What answering a message needs of its source.
#[derive(Debug, Clone)]
pub struct ReplySource {
    pub system_prompt: Option<String>,
    pub has_credentials: bool,
    pub reply_policy: String,
    pub agent: JsonValue,
}

/// Source `id` (deleted or not), as the reply to one of its messages is decided.
pub async fn for_reply(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<ReplySource>> {
    sqlx::query_as!(
        ReplySource,
        r#"SELECT system_prompt, reply IS NOT NULL AS "has_credentials!", reply_policy, agent
           FROM sources WHERE id = $1"#,
        id
    )
    .fetch_optional(executor)
    .await
}
