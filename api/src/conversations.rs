//! `/v1/conversations`: a tenant's conversations and their transcripts, as the lanes of
//! `sentinel_queue::conversations` record them. Another tenant's conversation answers 404.

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};
use sentinel_queue::tables::conversations::{self, After, ConversationRow, MessageRow, TurnRow};
use uuid::Uuid;

use crate::{auth::TenantAuth, error::ApiError, ApiTags, AppState};

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum ConversationState {
    /// Nothing unanswered, no turn running.
    Idle,
    /// Messages wait for the conversation to be quiet (`next_start_at`).
    Waiting,
    /// A turn holds the lane (`turn_job_id`); new messages wait for the next turn, or interrupt
    /// it under `turns.on_new_message: interrupt`.
    Running,
}

impl ConversationState {
    fn of(state: &str) -> Self {
        match state {
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            _ => Self::Idle,
        }
    }
}

/// A conversation: one chat, channel or record of a source, answered one turn at a time.
#[derive(Debug, Object)]
pub struct ConversationSummary {
    pub source_id: Uuid,
    pub conversation_id: String,
    pub platform: String,
    pub state: ConversationState,
    /// The job of the turn holding the lane (`agent.reply`, `agent.turn` or `agent.forward`).
    #[oai(nullable)]
    pub turn_job_id: Option<i64>,
    /// When the next turn may start (`waiting`).
    #[oai(nullable)]
    pub next_start_at: Option<DateTime<Utc>>,
    pub last_message_at: DateTime<Utc>,
    /// How many turns it has had.
    pub turns: i64,
    pub created_at: DateTime<Utc>,
}

impl From<ConversationRow> for ConversationSummary {
    fn from(row: ConversationRow) -> Self {
        Self {
            source_id: row.source_id,
            conversation_id: row.conversation_id,
            platform: row.platform,
            state: ConversationState::of(&row.state),
            turn_job_id: row.turn_job_id,
            next_start_at: row.next_start_at,
            last_message_at: row.last_message_at,
            turns: row.turns,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct ConversationPage {
    pub items: Vec<ConversationSummary>,
    /// Pass as `cursor` for the next (less recent) page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A user's message in a transcript.
#[derive(Debug, Object)]
pub struct ConversationMessage {
    /// Its place in the history the agent sees; absent while no turn has taken it.
    #[oai(nullable)]
    pub position: Option<i64>,
    /// The `webhook.inbound` job that carried it (`GET /v1/jobs/{id}/message`: its healed
    /// message and raw payload).
    pub inbound_job_id: i64,
    pub text: String,
    /// When the gateway acknowledged it.
    pub arrived_at: DateTime<Utc>,
    /// The platform's order (Telegram's `update_id`, WhatsApp's timestamp, Slack's `ts`), as a
    /// decimal; absent: the order of arrival.
    #[oai(nullable)]
    pub order_key: Option<String>,
    /// The turn that answers it.
    #[oai(nullable)]
    pub turn_job_id: Option<i64>,
    /// Why no turn answers it (the reply policy refused it, the source's agent is `none`).
    #[oai(nullable)]
    pub dropped: Option<String>,
}

impl From<MessageRow> for ConversationMessage {
    fn from(row: MessageRow) -> Self {
        Self {
            position: row.position,
            inbound_job_id: row.inbound_job_id,
            text: row.text,
            arrived_at: row.arrived_at,
            order_key: row.order_key,
            turn_job_id: row.turn_job_id,
            dropped: row.dropped,
        }
    }
}

/// One turn: the messages it answered (history positions `first_position` to `last_position`)
/// and its reply.
#[derive(Debug, Object)]
pub struct ConversationTurn {
    /// Its job (`GET /v1/jobs/{id}`).
    pub job_id: i64,
    /// `agent.reply` (the built-in agent), `agent.turn` (your workers) or `agent.forward`.
    pub kind: String,
    /// `open` (it holds the lane), `answered`, `unanswered` (it ended without a reply),
    /// `failed` (its job is dead), `canceled`, or `interrupted` (a newer message canceled it;
    /// its messages went to the next turn).
    pub status: String,
    /// Its job's status; absent once retention deleted the job.
    #[oai(nullable)]
    pub job_status: Option<String>,
    pub first_position: i64,
    pub last_position: i64,
    #[oai(nullable)]
    pub reply: Option<String>,
    /// The `reply.deliver` job sending the reply, and its status.
    #[oai(nullable)]
    pub reply_job_id: Option<i64>,
    #[oai(nullable)]
    pub reply_status: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<TurnRow> for ConversationTurn {
    fn from(row: TurnRow) -> Self {
        Self {
            job_id: row.job_id,
            kind: row.kind,
            status: row.status,
            job_status: row.job_status,
            first_position: row.first_position,
            last_position: row.last_position,
            reply: row.reply,
            reply_job_id: row.reply_job_id,
            reply_status: row.reply_status,
            created_at: row.created_at,
            ended_at: row.ended_at,
        }
    }
}

/// A conversation and a window of its transcript: the unanswered messages and the last `limit`
/// answered ones (oldest first), with the turns that answered them.
#[derive(Debug, Object)]
pub struct Conversation {
    #[oai(flatten)]
    pub summary: ConversationSummary,
    /// Oldest first: answered messages by position, then the unanswered ones in the order the
    /// next turn takes them.
    pub messages: Vec<ConversationMessage>,
    /// Oldest first.
    pub turns: Vec<ConversationTurn>,
    /// Pass as `before` for the older part of the transcript; absent when there is none.
    #[oai(skip_serializing_if_is_none)]
    pub next_before: Option<i64>,
}

pub struct ConversationsApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl ConversationsApi {
    /// The tenant's conversations (of `source_id` when given), most recent message first, a page
    /// at a time: follow `next_cursor` until it is absent.
    #[oai(
        path = "/v1/conversations",
        method = "get",
        operation_id = "listConversations"
    )]
    async fn list(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        source_id: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<ConversationPage>, ApiError> {
        let after = match cursor.0.as_deref() {
            None | Some("") => None,
            Some(text) => Some(decode_cursor(text).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor must be a next_cursor from an earlier page",
                )
            })?),
        };
        let limit = limit.0.unwrap_or(50);
        let mut rows = conversations::list(
            &state.pool,
            auth.0.tenant_id(),
            source_id.0,
            after.as_ref(),
            limit + 1,
        )
        .await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = has_more.then(|| rows.last().map(encode_cursor)).flatten();
        Ok(Json(ConversationPage {
            items: rows.into_iter().map(ConversationSummary::from).collect(),
            next_cursor,
        }))
    }

    /// One conversation: where it stands, its messages and its turns with their jobs and
    /// replies. `limit` answered messages (default 50) before `before` (a history position, from
    /// `next_before`), with every unanswered one.
    #[oai(
        path = "/v1/conversations/:source_id/:conversation_id",
        method = "get",
        operation_id = "getConversation"
    )]
    async fn get(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        source_id: Path<Uuid>,
        conversation_id: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1")))] before: Query<Option<i64>>,
    ) -> Result<Json<Conversation>, ApiError> {
        let tenant_id = auth.0.tenant_id();
        let head = conversations::get(&state.pool, tenant_id, source_id.0, &conversation_id.0)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    "conversation_not_found",
                    format!(
                        "no conversation {:?} of source {}",
                        conversation_id.0, source_id.0
                    ),
                )
            })?;
        let limit = limit.0.unwrap_or(50);
        // One more answered message than the limit says whether older ones exist.
        let mut messages = conversations::messages(
            &state.pool,
            source_id.0,
            &conversation_id.0,
            before.0,
            limit + 1,
        )
        .await?;
        let (mut answered, mut unanswered): (Vec<MessageRow>, Vec<MessageRow>) =
            messages.drain(..).partition(|m| m.position.is_some());
        let has_older = answered.len() as i64 > limit;
        answered.truncate(usize::try_from(limit).unwrap_or(0));
        unanswered.truncate(usize::try_from(limit).unwrap_or(0));
        let from = answered.last().and_then(|m| m.position).unwrap_or(i64::MAX);
        let next_before = has_older.then_some(from);
        let mut turns = conversations::turns(
            &state.pool,
            source_id.0,
            &conversation_id.0,
            from,
            before.0,
            2 * limit + 1,
        )
        .await?;
        turns.reverse();
        answered.reverse();
        unanswered.reverse();
        Ok(Json(Conversation {
            summary: head.into(),
            messages: answered
                .into_iter()
                .chain(unanswered)
                .map(ConversationMessage::from)
                .collect(),
            turns: turns.into_iter().map(ConversationTurn::from).collect(),
            next_before,
        }))
    }
}

/// A page's cursor: the last conversation's place in the order, opaque to clients.
fn encode_cursor(row: &ConversationRow) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}:{}:{}",
        row.last_message_at.timestamp_micros(),
        row.source_id,
        row.conversation_id
    ))
}

fn decode_cursor(text: &str) -> Option<After> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, ':');
    let micros: i64 = parts.next()?.parse().ok()?;
    let source_id: Uuid = parts.next()?.parse().ok()?;
    let conversation_id = parts.next()?.to_owned();
    Some(After {
        last_message_at: DateTime::from_timestamp_micros(micros)?,
        source_id,
        conversation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        let row = ConversationRow {
            source_id: Uuid::new_v4(),
            conversation_id: "C1:with:colons".into(),
            platform: "slack".into(),
            state: "idle".into(),
            turn_job_id: None,
            next_start_at: None,
            last_message_at: DateTime::from_timestamp_micros(1_764_900_000_123_456).unwrap(),
            turns: 3,
            created_at: Utc::now(),
        };
        let after = decode_cursor(&encode_cursor(&row)).unwrap();
        assert_eq!(after.last_message_at, row.last_message_at);
        assert_eq!(after.source_id, row.source_id);
        assert_eq!(after.conversation_id, row.conversation_id);
        for bad in ["", "not base64!", "MTIz", "eDp5Ono"] {
            assert!(decode_cursor(bad).is_none(), "{bad}");
        }
    }
}
