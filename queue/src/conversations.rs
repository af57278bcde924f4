//! Conversations as lanes (migrations/…_conversations.sql): at most one turn runs per
//! `(source, conversation)` at a time, whatever agent answers it; turns take the conversation's
//! unanswered messages in the user's order, a burst as one turn; each turn reads the history,
//! with every earlier reply, when it starts.
//!
//! - [`append`]: an inbound message joins its conversation (the agent lane, for every mode).
//! - [`start_due_turns`]: the turn starter. It locks the free lanes whose quiet time has passed
//!   (`FOR UPDATE SKIP LOCKED`, so any number of starters split them), makes one turn job per lane
//!   (`agent.reply`, `agent.turn` or `agent.forward`, by the source's agent) carrying every
//!   unanswered message, and binds the messages to it.
//! - The lane is freed by the trigger `jobs_turn_end` in the transaction that ends the turn's job
//!   (finish, rescue, cancel, delete); a retry keeps it.
//! - [`record_reply`]: the reply a turn queued, in the transaction that queued it, so the next
//!   turn's [`history`] holds it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{
    agent::{AgentMode, AgentSettings, HISTORY_MESSAGES, HISTORY_TEXT_BYTES},
    canonical::CanonicalMessage,
    enqueue_many,
    kinds::{agent_forward, agent_reply, agent_turn, agent_turn::Turn},
    storable, NewJob,
};

/// NOTIFY channel that wakes the turn starters: a message was appended or a lane was freed.
pub const TURNS_CHANNEL: &str = "sentinel_turns";

/// The most messages one turn carries; a longer burst is answered by the turns after it.
pub const MAX_TURN_MESSAGES: i64 = 32;

/// A source's `turns` setting: when a conversation's next turn starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnSettings {
    /// A turn starts once the conversation has been quiet this long...
    pub quiet_ms: u32,
    /// ...or this long after its first unanswered message, whichever comes first.
    pub max_wait_ms: u32,
    /// What a message arriving while a turn holds the lane does.
    pub on_new_message: OnNewMessage,
    /// Whether the platform shows "typing…" while a turn runs; `None`: only while the built-in
    /// agent answers.
    pub typing: Option<bool>,
}

/// What a message arriving while a turn holds its conversation's lane does (the column
/// `sources.turn_on_new_message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnNewMessage {
    /// It waits for the next turn, which starts once the running one has ended.
    #[default]
    Wait,
    /// It cancels the running turn (a queued one at once, a running one at its worker's next
    /// heartbeat; a forward is abandoned), and the next turn answers the interrupted turn's
    /// messages with it.
    Interrupt,
}

impl OnNewMessage {
    /// The column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Interrupt => "interrupt",
        }
    }

    /// The column's value read back; anything else (which its CHECK refuses) is `wait`.
    pub fn from_column(value: &str) -> Self {
        if value == "interrupt" {
            Self::Interrupt
        } else {
            Self::Wait
        }
    }
}

impl TurnSettings {
    /// The most `quiet_ms` a source may set (the column's CHECK too).
    pub const MAX_QUIET_MS: u32 = 60_000;
    /// The most `max_wait_ms` a source may set (the column's CHECK too).
    pub const MAX_WAIT_MS: u32 = 600_000;

    /// Checks a setting a tenant sent, naming what is wrong.
    pub fn checked(self) -> Result<Self, String> {
        if self.quiet_ms > Self::MAX_QUIET_MS {
            return Err(format!(
                "turns.quiet_ms is {}; at most {} (a minute)",
                self.quiet_ms,
                Self::MAX_QUIET_MS
            ));
        }
        if self.max_wait_ms > Self::MAX_WAIT_MS {
            return Err(format!(
                "turns.max_wait_ms is {}; at most {} (ten minutes)",
                self.max_wait_ms,
                Self::MAX_WAIT_MS
            ));
        }
        if self.max_wait_ms < self.quiet_ms {
            return Err(format!(
                "turns.max_wait_ms ({}) must be at least turns.quiet_ms ({})",
                self.max_wait_ms, self.quiet_ms
            ));
        }
        Ok(self)
    }
}

impl Default for TurnSettings {
    /// 1.5 s of quiet: the messages of a burst ("hi" / "I need help" / "with my order 1234")
    /// follow each other within a second or two, and a lone message waits 1.5 s more, little
    /// beside a generation or an agent's call. At most 8 s: a conversation that never goes quiet
    /// is still answered. New messages wait: a turn half done is not thrown away unless the
    /// source asks for it. "typing…" shows while the built-in agent answers, whose generation
    /// takes seconds; your own agent's code may answer faster than the indicator could matter.
    fn default() -> Self {
        Self {
            quiet_ms: 1_500,
            max_wait_ms: 8_000,
            on_new_message: OnNewMessage::Wait,
            typing: None,
        }
    }
}

/// An inbound message joining its conversation.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    pub tenant_id: Uuid,
    pub source_id: Uuid,
    pub conversation_id: &'a str,
    /// The `webhook.inbound` job that carried it: appending it twice appends it once.
    pub inbound_job_id: i64,
    /// The platform's order, as a decimal (Telegram's `update_id`, WhatsApp's timestamp, Slack's
    /// `ts`); `None`: the order of arrival.
    pub order_key: Option<&'a str>,
    /// When the gateway acknowledged it: quiet time is counted from these.
    pub arrived_at: DateTime<Utc>,
    /// The canonical message.
    pub message: &'a JsonValue,
    pub text: &'a str,
    /// Where its reply goes (the platform's form).
    pub address: &'a JsonValue,
    /// Why no turn answers it (it is still in the history), if none does.
    pub dropped: Option<&'a str>,
}

/// The platform's order of a message, as a decimal: Telegram's `update_id` (its `event_id`),
/// which grows with every update of a bot; otherwise the time the platform says it was sent, in
/// seconds with their fraction (WhatsApp's `timestamp`, Slack's `ts`). `None` when it has neither:
/// then the order of arrival.
pub fn order_key(message: &CanonicalMessage) -> Option<String> {
    if message.platform == "telegram" {
        if let Some(update_id) = message
            .event_id
            .as_deref()
            .filter(|id| !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Some(update_id.to_owned());
        }
    }
    let sent_at = DateTime::parse_from_rfc3339(message.sent_at.as_deref()?).ok()?;
    Some(format!(
        "{}.{:09}",
        sent_at.timestamp(),
        sent_at.timestamp_subsec_nanos()
    ))
}

/// Appends `arrival` to its conversation, making the conversation if it is new, and sets when
/// the conversation's next turn may start. False when the message was already appended (a retried
/// attempt of its inbound job). Under `on_new_message: interrupt`, a message that arrives while a
/// turn holds the lane then interrupts that turn ([`interrupt`]).
pub async fn append(pool: &PgPool, arrival: &Arrival<'_>) -> sqlx::Result<bool> {
    if arrival.dropped.is_some() {
        return append_dropped(pool, arrival).await;
    }
    // One statement, so one round trip: the message, and the head made or moved (only when the
    // message is new), then the starters woken. The message's foreign key is checked at the end of
    // the statement, when the head exists.
    let row = sqlx::query!(
        r#"WITH settings AS (
               SELECT turn_quiet_ms, turn_max_wait_ms, turn_on_new_message FROM sources WHERE id = $1
           ),
           appended AS (
               INSERT INTO conversation_messages
                   (source_id, conversation_id, tenant_id, inbound_job_id, order_key, arrived_at,
                    message, text, address)
               VALUES ($1, $2, $3, $4, $5::text::numeric, $6, $7, $8, $9)
               ON CONFLICT (source_id, inbound_job_id) DO NOTHING
               RETURNING id
           ),
           head AS (
               INSERT INTO conversations AS c
                   (source_id, conversation_id, tenant_id, last_message_at, first_unanswered_at,
                    next_start_at)
               SELECT $1, $2, $3, $6, $6,
                      turn_start_at($6, $6, s.turn_quiet_ms, s.turn_max_wait_ms)
               FROM settings s
               WHERE EXISTS (SELECT 1 FROM appended)
               ON CONFLICT (source_id, conversation_id) DO UPDATE
               SET first_unanswered_at = least(c.first_unanswered_at, EXCLUDED.last_message_at),
                   last_message_at = greatest(c.last_message_at, EXCLUDED.last_message_at),
                   next_start_at = turn_start_at(
                       least(c.first_unanswered_at, EXCLUDED.last_message_at),
                       greatest(c.last_message_at, EXCLUDED.last_message_at),
                       (SELECT turn_quiet_ms FROM settings), (SELECT turn_max_wait_ms FROM settings)),
                   updated_at = now()
               RETURNING c.turn_job_id, pg_notify('sentinel_turns', '') AS notified
           )
           SELECT EXISTS (SELECT 1 FROM appended) AS "appended!",
                  (SELECT turn_job_id FROM head) AS held_by,
                  (SELECT turn_on_new_message = 'interrupt' FROM settings) AS interrupts"#,
        arrival.source_id,
        arrival.conversation_id,
        arrival.tenant_id,
        arrival.inbound_job_id,
        arrival.order_key,
        arrival.arrived_at,
        arrival.message,
        arrival.text,
        arrival.address
    )
    .fetch_one(pool)
    .await?;
    if !row.appended {
        return Ok(false);
    }
    if let (Some(job_id), Some(true)) = (row.held_by, row.interrupts) {
        interrupt(pool, arrival.tenant_id, job_id).await?;
    }
    Ok(true)
}

/// Appends a message no turn answers: in the history at its place of arrival, in no turn.
async fn append_dropped(pool: &PgPool, arrival: &Arrival<'_>) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    // Takes no lock on an existing head: the message's foreign key needs it to exist.
    sqlx::query!(
        "INSERT INTO conversations (source_id, conversation_id, tenant_id, last_message_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        arrival.source_id,
        arrival.conversation_id,
        arrival.tenant_id,
        arrival.arrived_at
    )
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO conversation_messages
               (source_id, conversation_id, tenant_id, inbound_job_id, order_key, arrived_at,
                message, text, address, dropped)
           VALUES ($1, $2, $3, $4, $5::text::numeric, $6, $7, $8, $9, $10)
           ON CONFLICT (source_id, inbound_job_id) DO NOTHING
           RETURNING id"#,
        arrival.source_id,
        arrival.conversation_id,
        arrival.tenant_id,
        arrival.inbound_job_id,
        arrival.order_key,
        arrival.arrived_at,
        arrival.message,
        arrival.text,
        arrival.address,
        arrival.dropped
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(message_id) = inserted else {
        tx.rollback().await?;
        return Ok(false);
    };
    sqlx::query!(
        "WITH head AS (
             UPDATE conversations
             SET next_position = next_position + 1, updated_at = now(),
                 last_message_at = greatest(last_message_at, $4)
             WHERE source_id = $1 AND conversation_id = $2
             RETURNING next_position - 1 AS position
         )
         UPDATE conversation_messages SET position = head.position FROM head WHERE id = $3",
        arrival.source_id,
        arrival.conversation_id,
        message_id,
        arrival.arrived_at
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Interrupts the turn `job_id`, which held the lane when a message was appended under
/// `on_new_message: interrupt`: its job is canceled (a queued one at once, a running one at its
/// worker's next heartbeat) and the turn marked interrupted, so that its messages go to the next
/// turn with the new one. A turn that has ended meanwhile is left as it is. The job's row is
/// locked first, then the turn's and the head's (in the trigger that frees the lane): the order
/// every path that ends a job takes.
async fn interrupt(pool: &PgPool, tenant_id: Uuid, job_id: i64) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    // A queued turn is canceled at once, and the trigger frees its lane in this transaction:
    // this setting tells it the turn was interrupted.
    sqlx::query!(
        r#"SELECT set_config('sentinel.interrupting', $1, true) AS "set!""#,
        job_id.to_string()
    )
    .fetch_one(&mut *tx)
    .await?;
    crate::job::cancel(&mut *tx, tenant_id, job_id).await?;
    sqlx::query!(
        "UPDATE conversation_turns SET interrupted_at = coalesce(interrupted_at, now())
         WHERE job_id = $1 AND status = 'open'",
        job_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A turn the starter made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedTurn {
    pub job_id: i64,
    pub kind: &'static str,
    pub tenant_id: Uuid,
    pub source_id: Uuid,
    pub conversation_id: String,
    /// The messages it answers, by their inbound jobs, oldest first.
    pub inbound_job_ids: Vec<i64>,
}

/// What one pass of the starter did.
#[derive(Debug, Default)]
pub struct Started {
    pub turns: Vec<StartedTurn>,
    /// Due lanes whose messages no turn answers (the source is deleted or its agent is `none`):
    /// their messages were dropped.
    pub dropped: usize,
    /// When the earliest lane not yet due will be, if any: the starter sleeps until then.
    pub next_due: Option<DateTime<Utc>>,
}

/// A due lane, locked, with its unanswered messages.
struct DueLane {
    source_id: Uuid,
    conversation_id: String,
    tenant_id: Uuid,
    platform: String,
    agent: AgentMode,
    deleted: bool,
    /// How many turns the conversation has had.
    turns: i64,
    messages: Vec<Pending>,
}

/// An unanswered message of a due lane.
struct Pending {
    id: i64,
    inbound_job_id: i64,
    message: JsonValue,
    address: JsonValue,
}

/// Starts the turns of up to `limit` conversations whose lane is free and whose quiet time has
/// passed, in one transaction: each gets one job, by its source's agent, carrying its unanswered
/// messages (at most [`MAX_TURN_MESSAGES`], oldest first by the platform's order, then arrival),
/// and those messages are bound to it. Lanes another starter holds are skipped.
pub async fn start_due_turns(pool: &PgPool, limit: i64) -> sqlx::Result<Started> {
    let mut tx = pool.begin().await?;
    let mut lanes = lock_due_lanes(&mut tx, limit).await?;
    let mut started = Started::default();
    if !lanes.is_empty() {
        read_unanswered(&mut tx, &mut lanes).await?;
        let (answered, unanswered): (Vec<DueLane>, Vec<DueLane>) = lanes
            .into_iter()
            .partition(|lane| !lane.deleted && lane.agent != AgentMode::None);
        started.dropped = drop_unanswered(&mut tx, &unanswered).await?;
        started.turns = make_turns(&mut tx, answered).await?;
    }
    started.next_due = sqlx::query_scalar!(
        "SELECT min(next_start_at) FROM conversations
         WHERE turn_job_id IS NULL AND next_start_at IS NOT NULL"
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(started)
}

/// Locks up to `limit` free lanes that are due, earliest first, skipping those another starter
/// holds.
async fn lock_due_lanes(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<DueLane>> {
    Ok(sqlx::query!(
        r#"SELECT c.source_id, c.conversation_id, c.tenant_id, s.platform, s.agent,
                  s.deleted_at IS NOT NULL AS "deleted!", c.turns
           FROM conversations c JOIN sources s ON s.id = c.source_id
           WHERE c.turn_job_id IS NULL AND c.next_start_at <= now()
           ORDER BY c.next_start_at
           LIMIT $1
           FOR UPDATE OF c SKIP LOCKED"#,
        limit
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| DueLane {
        source_id: row.source_id,
        conversation_id: row.conversation_id,
        tenant_id: row.tenant_id,
        platform: row.platform,
        agent: AgentSettings::from_json(&row.agent).mode,
        deleted: row.deleted,
        turns: row.turns,
        messages: Vec::new(),
    })
    .collect())
}

/// Reads the unanswered messages of `lanes`, oldest first, at most [`MAX_TURN_MESSAGES`] each.
/// Their heads are locked, so a message committed before that is here and one committed after it
/// is left for the next turn.
async fn read_unanswered(conn: &mut PgConnection, lanes: &mut [DueLane]) -> sqlx::Result<()> {
    let sources: Vec<Uuid> = lanes.iter().map(|lane| lane.source_id).collect();
    let conversations: Vec<String> = lanes
        .iter()
        .map(|lane| lane.conversation_id.clone())
        .collect();
    let rows = sqlx::query!(
        r#"SELECT h.n AS "lane!", m.id AS "id!", m.inbound_job_id AS "inbound_job_id!",
                  m.message AS "message!", m.address AS "address!"
           FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS h (source_id, conversation_id, n)
           CROSS JOIN LATERAL (
               SELECT id, inbound_job_id, message, address, order_key FROM conversation_messages m
               WHERE m.source_id = h.source_id AND m.conversation_id = h.conversation_id
                 AND m.turn_job_id IS NULL AND m.dropped IS NULL
               ORDER BY m.order_key, m.id
               LIMIT $3
           ) m
           ORDER BY h.n, m.order_key, m.id"#,
        &sources,
        &conversations,
        MAX_TURN_MESSAGES
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let lane = usize::try_from(row.lane - 1)
            .ok()
            .and_then(|i| lanes.get_mut(i));
        if let Some(lane) = lane {
            lane.messages.push(Pending {
                id: row.id,
                inbound_job_id: row.inbound_job_id,
                message: row.message,
                address: row.address,
            });
        }
    }
    Ok(())
}

/// Drops the unanswered messages of lanes no agent answers (their place in the history kept) and
/// clears when those lanes are due. Returns how many lanes.
async fn drop_unanswered(conn: &mut PgConnection, lanes: &[DueLane]) -> sqlx::Result<usize> {
    if lanes.is_empty() {
        return Ok(0);
    }
    let sources: Vec<Uuid> = lanes.iter().map(|lane| lane.source_id).collect();
    let conversations: Vec<String> = lanes
        .iter()
        .map(|lane| lane.conversation_id.clone())
        .collect();
    let reasons: Vec<String> = lanes
        .iter()
        .map(|lane| {
            if lane.deleted {
                "the source was deleted".to_owned()
            } else {
                "the source's agent is none".to_owned()
            }
        })
        .collect();
    sqlx::query!(
        "WITH lanes AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) AS l (source_id, conversation_id, reason)
         ),
         unanswered AS (
             SELECT m.id, l.reason, m.source_id, m.conversation_id,
                    row_number() OVER (PARTITION BY m.source_id, m.conversation_id ORDER BY m.order_key, m.id) AS n
             FROM lanes l
             JOIN conversation_messages m
               ON m.source_id = l.source_id AND m.conversation_id = l.conversation_id
                  AND m.turn_job_id IS NULL AND m.dropped IS NULL
         ),
         heads AS (
             UPDATE conversations c
             SET next_position = c.next_position + coalesce(u.count, 0),
                 first_unanswered_at = NULL, next_start_at = NULL, updated_at = now()
             FROM lanes l
             LEFT JOIN (SELECT source_id, conversation_id, count(*) AS count FROM unanswered
                        GROUP BY source_id, conversation_id) u
               USING (source_id, conversation_id)
             WHERE c.source_id = l.source_id AND c.conversation_id = l.conversation_id
             RETURNING c.source_id, c.conversation_id, c.next_position - coalesce(u.count, 0) AS first_position
         )
         UPDATE conversation_messages m
         SET dropped = u.reason, position = h.first_position + u.n - 1
         FROM unanswered u JOIN heads h USING (source_id, conversation_id)
         WHERE m.id = u.id",
        &sources,
        &conversations,
        &reasons
    )
    .execute(&mut *conn)
    .await?;
    Ok(lanes.len())
}

/// Makes one turn job per lane and binds the lanes' messages to it.
async fn make_turns(
    conn: &mut PgConnection,
    lanes: Vec<DueLane>,
) -> sqlx::Result<Vec<StartedTurn>> {
    let lanes: Vec<DueLane> = lanes
        .into_iter()
        .filter(|lane| !lane.messages.is_empty())
        .collect();
    if lanes.is_empty() {
        return Ok(Vec::new());
    }
    let jobs: Vec<NewJob> = lanes.iter().map(turn_job).collect();
    let enqueued = enqueue_many(&mut *conn, &jobs).await?;
    let (mut job_ids, mut message_ids, mut message_turns, mut ordinals) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut sources, mut conversations, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    let mut turns = Vec::new();
    for ((lane, job), enqueued) in lanes.iter().zip(&jobs).zip(&enqueued) {
        for (ordinal, message) in (1_i64..).zip(&lane.messages) {
            message_ids.push(message.id);
            message_turns.push(enqueued.id);
            ordinals.push(ordinal);
        }
        job_ids.push(enqueued.id);
        sources.push(lane.source_id);
        conversations.push(lane.conversation_id.clone());
        kinds.push(job.kind.clone());
        turns.push(StartedTurn {
            job_id: enqueued.id,
            kind: turn_kind(lane.agent),
            tenant_id: lane.tenant_id,
            source_id: lane.source_id,
            conversation_id: lane.conversation_id.clone(),
            inbound_job_ids: lane.messages.iter().map(|m| m.inbound_job_id).collect(),
        });
    }
    sqlx::query!(
        "WITH t AS (
             SELECT * FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::text[])
                 AS t (job_id, source_id, conversation_id, kind)
         ),
         b AS (
             SELECT * FROM unnest($5::int8[], $6::int8[], $7::int8[]) AS b (message_id, job_id, ordinal)
         ),
         n AS (SELECT job_id, count(*) AS count FROM b GROUP BY job_id),
         heads AS (
             UPDATE conversations c
             SET turn_job_id = t.job_id, turns = c.turns + 1, updated_at = now(),
                 next_position = c.next_position + n.count,
                 -- What the turn does not carry (past MAX_TURN_MESSAGES) is due once the lane is free.
                 first_unanswered_at = rest.first, next_start_at = rest.first
             FROM t
             JOIN n USING (job_id)
             CROSS JOIN LATERAL (
                 SELECT min(m.arrived_at) AS first FROM conversation_messages m
                 WHERE m.source_id = t.source_id AND m.conversation_id = t.conversation_id
                   AND m.turn_job_id IS NULL AND m.dropped IS NULL
                   AND m.id <> ALL ($5::int8[])
             ) rest
             WHERE c.source_id = t.source_id AND c.conversation_id = t.conversation_id
             RETURNING c.source_id, c.conversation_id, c.tenant_id, t.job_id, t.kind,
                       c.next_position - n.count AS first_position, n.count
         ),
         bound AS (
             UPDATE conversation_messages m
             SET turn_job_id = b.job_id, position = h.first_position + b.ordinal - 1
             FROM b JOIN heads h USING (job_id)
             WHERE m.id = b.message_id
         ),
         turns AS (
             INSERT INTO conversation_turns
                 (job_id, source_id, conversation_id, tenant_id, kind, first_position, last_position)
             SELECT job_id, source_id, conversation_id, tenant_id, kind, first_position,
                    first_position + count - 1
             FROM heads
             RETURNING *
         )
         INSERT INTO events (tenant_id, job_id, type, data)
         SELECT tenant_id, job_id, 'turn.started',
                turn_event_data(job_id, kind, status, source_id, conversation_id,
                                last_position - first_position + 1, reply_job_id)
         FROM turns
         RETURNING pg_notify('sentinel_events', '')",
        &job_ids,
        &sources,
        &conversations,
        &kinds,
        &message_ids,
        &message_turns,
        &ordinals
    )
    .execute(&mut *conn)
    .await?;
    Ok(turns)
}

/// The kind of a turn answered by `agent`.
fn turn_kind(agent: AgentMode) -> &'static str {
    match agent {
        AgentMode::External => agent_turn::KIND.name,
        AgentMode::Forward => agent_forward::KIND.name,
        AgentMode::Builtin | AgentMode::None => agent_reply::KIND.name,
    }
}

/// The turn job of a due lane: its messages, oldest first, with the last as `message` and its
/// inbound job and address as the turn's. The history is read when the turn starts.
fn turn_job(lane: &DueLane) -> NewJob {
    let last = lane.messages.last();
    let input = agent_turn::Input {
        source_id: lane.source_id,
        platform: lane.platform.clone(),
        inbound_job_id: last.map_or(0, |m| m.inbound_job_id),
        message: last.map_or(JsonValue::Null, |m| m.message.clone()),
        messages: lane.messages.iter().map(|m| m.message.clone()).collect(),
        history: Vec::new(),
        address: last.map_or(JsonValue::Null, |m| m.address.clone()),
    };
    let job = match lane.agent {
        AgentMode::External => agent_turn::job(lane.tenant_id, input),
        AgentMode::Forward => agent_forward::job(lane.tenant_id, input),
        AgentMode::Builtin | AgentMode::None => agent_reply::job(lane.tenant_id, input),
    };
    // The conversation's next turn, starting at its first message: a key no earlier job has
    // (an interrupted turn's messages start the next turn again).
    job.with_dedupe_key(format!(
        "turn:{}:{}",
        lane.messages.first().map_or(0, |m| m.id),
        lane.turns + 1
    ))
}

/// How many lanes one pass of the starter takes at most: a pass that takes this many runs again at
/// once.
pub const START_BATCH: i64 = 256;

/// Runs the turn starter until `shutdown` turns true: a pass at once, then one each time a
/// message is appended or a lane freed ([`TURNS_CHANNEL`]), when the earliest waiting lane is due,
/// and at least every `poll_interval`. Any number of starters (in workers and gateways) split the
/// due lanes between them.
pub async fn run_starter(
    pool: PgPool,
    mut turns: crate::wakeup::Waiter,
    poll_interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        turns.mark_seen();
        let nap = match start_due_turns(&pool, START_BATCH).await {
            Ok(started) if started.turns.len() + started.dropped >= START_BATCH as usize => {
                std::time::Duration::ZERO
            }
            Ok(started) => {
                if !started.turns.is_empty() {
                    tracing::debug!(turns = started.turns.len(), "started turns");
                }
                started
                    .next_due
                    .and_then(|due| (due - Utc::now()).to_std().ok())
                    .map_or(poll_interval, |until| until.min(poll_interval))
            }
            Err(error) => {
                tracing::warn!(%error, "the turn starter's pass failed; trying again");
                poll_interval
            }
        };
        if nap.is_zero() {
            continue;
        }
        tokio::select! {
            _ = turns.wait(nap) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// A running turn whose platform should show "typing…" now.
#[derive(Debug, Clone)]
pub struct Typing {
    pub job_id: i64,
    pub platform: String,
    /// The source's reply credentials.
    pub credentials: JsonValue,
    /// The turn's reply address (its last message's).
    pub address: JsonValue,
}

/// Takes up to `limit` running turns whose source shows typing and whose indicator was last
/// sent `every` ago or more (or never), and marks them sent now. Turns another worker is marking
/// are skipped, so any number of workers send each indicator once per `every`.
pub async fn typing_due(
    pool: &PgPool,
    every: std::time::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Typing>> {
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_as!(
        Typing,
        r#"WITH due AS (
               SELECT t.job_id FROM conversation_turns t
               JOIN jobs j ON j.id = t.job_id
               JOIN sources s ON s.id = t.source_id
               WHERE t.status = 'open' AND j.status = 'running'
                 AND s.reply IS NOT NULL AND s.deleted_at IS NULL
                 AND coalesce(s.turn_typing, t.kind = 'agent.reply')
                 AND (t.typing_at IS NULL OR t.typing_at <= now() - $1 * interval '1 ms')
               LIMIT $2
               FOR UPDATE OF t SKIP LOCKED
           )
           UPDATE conversation_turns t SET typing_at = now()
           FROM due, jobs j, sources s
           WHERE t.job_id = due.job_id AND j.id = t.job_id AND s.id = t.source_id
           RETURNING t.job_id, s.platform, s.reply AS "credentials!",
                     coalesce(j.input -> 'address', 'null') AS "address!""#,
        every_ms as f64,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Records the reply the turn `turn_job_id` queued (`reply_job_id`, a `reply.deliver`), in the
/// transaction that queued it. The first reply recorded stays (a retried attempt's is the same
/// job's).
pub async fn record_reply(
    executor: impl PgExecutor<'_>,
    turn_job_id: i64,
    text: &str,
    reply_job_id: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE conversation_turns
         SET reply = coalesce(reply, $2), reply_job_id = coalesce(reply_job_id, $3)
         WHERE job_id = $1",
        turn_job_id,
        text,
        reply_job_id
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// How the message carried by inbound job `inbound_job_id` was answered, through the turn that
/// answered it: the reply's text and its delivery (`{job_id}` of its `reply.deliver`, or the
/// turn's own `{skipped}`, as when the source has no reply credentials). `None` until a turn has
/// answered it. The reply of a burst is the reply to each of its messages.
pub async fn reply_to(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    inbound_job_id: i64,
) -> sqlx::Result<Option<(Option<String>, Option<JsonValue>)>> {
    let row = sqlx::query!(
        r#"SELECT coalesce(t.reply, j.result ->> 'reply') AS reply,
                  CASE WHEN t.reply_job_id IS NOT NULL THEN jsonb_build_object('job_id', t.reply_job_id)
                       ELSE j.result -> 'delivery' END AS delivery
           FROM conversation_messages m
           JOIN conversation_turns t ON t.job_id = m.turn_job_id
           LEFT JOIN jobs j ON j.id = t.job_id AND j.status = 'succeeded'
           WHERE m.tenant_id = $1 AND m.inbound_job_id = $2
             AND (t.reply IS NOT NULL OR j.id IS NOT NULL)
           LIMIT 1"#,
        tenant_id,
        inbound_job_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| (row.reply, row.delivery)))
}

/// The history of each turn in `turn_job_ids`, read now: the last [`HISTORY_MESSAGES`] entries of
/// its conversation before its own messages, oldest first, each message followed by the reply of
/// the turn it ended. Turns without a lane (made before conversations were lanes) are left out.
pub async fn history(
    executor: impl PgExecutor<'_>,
    turn_job_ids: &[i64],
) -> sqlx::Result<HashMap<i64, Vec<Turn>>> {
    let rows = sqlx::query!(
        r#"SELECT t.job_id AS "turn!", r.text AS "text!", ended.reply
           FROM conversation_turns t
           CROSS JOIN LATERAL (
               SELECT m.position, m.text, m.turn_job_id FROM conversation_messages m
               WHERE m.source_id = t.source_id AND m.conversation_id = t.conversation_id
                 AND m.position < t.first_position
               ORDER BY m.position DESC
               LIMIT $2
           ) r
           LEFT JOIN conversation_turns ended
             ON ended.job_id = r.turn_job_id AND ended.last_position = r.position
           WHERE t.job_id = ANY ($1)
           ORDER BY t.job_id, r.position"#,
        turn_job_ids,
        HISTORY_MESSAGES as i64
    )
    .fetch_all(executor)
    .await?;
    let mut histories: HashMap<i64, Vec<Turn>> = HashMap::new();
    for row in rows {
        let turns = histories.entry(row.turn).or_default();
        for (role, text) in [("user", Some(row.text)), ("agent", row.reply)] {
            if let Some(text) = text.filter(|text| !text.is_empty()) {
                turns.push(Turn {
                    role: role.to_owned(),
                    text: storable::clip(&text, HISTORY_TEXT_BYTES).to_owned(),
                });
            }
        }
    }
    for turns in histories.values_mut() {
        let keep_from = turns.len().saturating_sub(HISTORY_MESSAGES);
        turns.drain(..keep_from);
    }
    Ok(histories)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_order_is_telegrams_update_id_else_the_send_time() {
        let mut telegram = CanonicalMessage::new("telegram", "message");
        telegram.event_id = Some("734911".into());
        telegram.sent_at = Some("2026-12-05T10:00:00Z".into());
        assert_eq!(order_key(&telegram).as_deref(), Some("734911"));
        let mut slack = CanonicalMessage::new("slack", "message");
        slack.event_id = Some("Ev08ABC".into());
        slack.sent_at = Some("2026-12-05T10:00:00.000200Z".into());
        assert_eq!(order_key(&slack).as_deref(), Some("1796464800.000200000"));
        assert_eq!(
            order_key(&CanonicalMessage::new("standard", "message")),
            None
        );
    }

    #[test]
    fn turn_settings_name_what_is_wrong() {
        assert_eq!(
            TurnSettings::default().checked(),
            Ok(TurnSettings::default())
        );
        let zero = TurnSettings {
            quiet_ms: 0,
            max_wait_ms: 0,
            on_new_message: OnNewMessage::Interrupt,
            typing: Some(false),
        };
        assert_eq!(zero.checked(), Ok(zero));
        for (bad, says) in [
            ((60_001, 60_001), "turns.quiet_ms"),
            ((0, 600_001), "turns.max_wait_ms is"),
            ((2_000, 1_000), "at least turns.quiet_ms"),
        ] {
            let error = TurnSettings {
                quiet_ms: bad.0,
                max_wait_ms: bad.1,
                on_new_message: OnNewMessage::Wait,
                typing: None,
            }
            .checked()
            .unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
