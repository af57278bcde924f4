//! `conversations`, `conversation_messages` and `conversation_turns` as the API reads them:
//! a tenant's conversations, most recent first, and one conversation's transcript. What writes
//! them is [`crate::conversations`].

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A conversation's head: where it stands.
#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub source_id: Uuid,
    pub conversation_id: String,
    pub platform: String,
    /// `running` (a turn holds the lane), `waiting` (messages wait for quiet or a free lane) or
    /// `idle`.
    pub state: String,
    pub turn_job_id: Option<i64>,
    pub next_start_at: Option<DateTime<Utc>>,
    pub last_message_at: DateTime<Utc>,
    pub turns: i64,
    pub created_at: DateTime<Utc>,
}

/// Where a page of [`list`] starts: after this conversation in its order.
#[derive(Debug, Clone)]
pub struct After {
    pub last_message_at: DateTime<Utc>,
    pub source_id: Uuid,
    pub conversation_id: String,
}

/// Up to `limit` of the tenant's conversations (of `source_id` when given), most recent message
/// first, after `after` (through the index `conversations_recent`).
pub async fn list(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    source_id: Option<Uuid>,
    after: Option<&After>,
    limit: i64,
) -> sqlx::Result<Vec<ConversationRow>> {
    sqlx::query_as!(
        ConversationRow,
        r#"SELECT c.source_id, c.conversation_id, s.platform,
                  CASE WHEN c.turn_job_id IS NOT NULL THEN 'running'
                       WHEN c.next_start_at IS NOT NULL THEN 'waiting'
                       ELSE 'idle' END AS "state!",
                  c.turn_job_id, c.next_start_at, c.last_message_at, c.turns, c.created_at
           FROM conversations c JOIN sources s ON s.id = c.source_id
           WHERE c.tenant_id = $1 AND ($2::uuid IS NULL OR c.source_id = $2)
             AND ($3::timestamptz IS NULL
                  OR (c.last_message_at, $4::uuid, $5::text) < ($3, c.source_id, c.conversation_id))
           ORDER BY c.last_message_at DESC, c.source_id, c.conversation_id
           LIMIT $6"#,
        tenant_id,
        source_id,
        after.map(|a| a.last_message_at),
        after.map(|a| a.source_id),
        after.map(|a| a.conversation_id.as_str()),
        limit
    )
    .fetch_all(executor)
    .await
}

/// The tenant's conversation `(source_id, conversation_id)`.
pub async fn get(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    source_id: Uuid,
    conversation_id: &str,
) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as!(
        ConversationRow,
        r#"SELECT c.source_id, c.conversation_id, s.platform,
                  CASE WHEN c.turn_job_id IS NOT NULL THEN 'running'
                       WHEN c.next_start_at IS NOT NULL THEN 'waiting'
                       ELSE 'idle' END AS "state!",
                  c.turn_job_id, c.next_start_at, c.last_message_at, c.turns, c.created_at
           FROM conversations c JOIN sources s ON s.id = c.source_id
           WHERE c.tenant_id = $1 AND c.source_id = $2 AND c.conversation_id = $3"#,
        tenant_id,
        source_id,
        conversation_id
    )
    .fetch_optional(executor)
    .await
}

/// A message of a transcript.
#[derive(Debug, Clone)]
pub struct MessageRow {
    /// Its place in the history; `None` while no turn has taken it.
    pub position: Option<i64>,
    pub inbound_job_id: i64,
    pub text: String,
    pub arrived_at: DateTime<Utc>,
    /// The platform's order (update_id, timestamp, ts) as a decimal.
    pub order_key: Option<String>,
    pub turn_job_id: Option<i64>,
    /// Why no turn answers it.
    pub dropped: Option<String>,
}

/// The conversation's messages: its unanswered ones (in the order they will be answered) and
/// the last `limit` with a place in the history before `before` (a position), newest first.
pub async fn messages(
    executor: impl PgExecutor<'_>,
    source_id: Uuid,
    conversation_id: &str,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as!(
        MessageRow,
        r#"(SELECT position, inbound_job_id AS "inbound_job_id!", text AS "text!",
                   arrived_at AS "arrived_at!", order_key::text AS order_key, turn_job_id, dropped
            FROM conversation_messages
            WHERE source_id = $1 AND conversation_id = $2 AND position IS NULL AND $3::int8 IS NULL
            ORDER BY order_key DESC, id DESC
            LIMIT $4)
           UNION ALL
           (SELECT position, inbound_job_id, text, arrived_at, order_key::text AS order_key,
                   turn_job_id, dropped
            FROM conversation_messages
            WHERE source_id = $1 AND conversation_id = $2 AND position IS NOT NULL
              AND position < coalesce($3, 9223372036854775807)
            ORDER BY position DESC
            LIMIT $4)"#,
        source_id,
        conversation_id,
        before,
        limit
    )
    .fetch_all(executor)
    .await
}

/// A turn of a transcript, with its job's and its reply's state.
#[derive(Debug, Clone)]
pub struct TurnRow {
    pub job_id: i64,
    pub kind: String,
    /// open, answered, unanswered, failed, canceled or interrupted.
    pub status: String,
    /// Its job's status (`None` once retention deleted the job).
    pub job_status: Option<String>,
    pub first_position: i64,
    pub last_position: i64,
    pub reply: Option<String>,
    pub reply_job_id: Option<i64>,
    /// The reply's delivery (its `reply.deliver` job's status).
    pub reply_status: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// The conversation's turns that answered positions from `from` to before `before` (and the
/// one open, if any), newest first, at most `limit`.
pub async fn turns(
    executor: impl PgExecutor<'_>,
    source_id: Uuid,
    conversation_id: &str,
    from: i64,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<TurnRow>> {
    sqlx::query_as!(
        TurnRow,
        r#"SELECT t.job_id, t.kind, t.status, j.status AS "job_status?", t.first_position,
                  t.last_position, t.reply, t.reply_job_id, r.status AS "reply_status?",
                  t.created_at, t.ended_at
           FROM conversation_turns t
           LEFT JOIN jobs j ON j.id = t.job_id
           LEFT JOIN jobs r ON r.id = t.reply_job_id
           WHERE t.source_id = $1 AND t.conversation_id = $2
             AND (t.status = 'open'
                  OR (t.last_position >= $3 AND t.first_position < coalesce($4, 9223372036854775807)))
           ORDER BY t.job_id DESC
           LIMIT $5"#,
        source_id,
        conversation_id,
        from,
        before,
        limit
    )
    .fetch_all(executor)
    .await
}
