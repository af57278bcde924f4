//! `GET /v1/events`: the tenant's job events as Server-Sent Events. A reconnect with
//! `Last-Event-ID` first replays the missed rows from `events`, then goes live, with nothing lost
//! or repeated between the two, page by page as the client reads. A comment keep-alive goes out
//! every 15 s. Streams are capped per tenant and per gateway (429 `too_many_streams`).

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::{stream::BoxStream, StreamExt};
use poem::web::{sse::Event, Data};
use poem_openapi::{
    param::{Header, Query},
    payload::EventStream,
    Object, OpenApi,
};
use serde_json::Value as JsonValue;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::{auth::TenantAuth, error::ApiError, hub::StoredEvent, ApiTags, AppState};

/// The SSE `event` name of an event, also its `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
pub enum JobEventType {
    #[oai(rename = "job.queued")]
    Queued,
    #[oai(rename = "job.running")]
    Running,
    #[oai(rename = "job.progress")]
    Progress,
    #[oai(rename = "job.succeeded")]
    Succeeded,
    #[oai(rename = "job.retrying")]
    Retrying,
    #[oai(rename = "job.dead")]
    Dead,
    #[oai(rename = "job.canceled")]
    Canceled,
}

/// The `data` of every event, which names its own `type` (the SSE `event` name).
#[derive(Debug, Clone, Object)]
pub struct JobEventData {
    #[oai(rename = "type")]
    pub event_type: JobEventType,
    pub job_id: i64,
    pub kind: String,
    pub status: String,
    pub attempt: i32,
    /// When the change happened (RFC 3339).
    pub at: String,
    /// Present on `job.retrying` and `job.dead`.
    #[oai(nullable)]
    pub error: Option<JsonValue>,
    /// When a requeued job runs again.
    #[oai(nullable)]
    pub run_at: Option<String>,
    #[oai(nullable)]
    pub worker_id: Option<String>,
    #[oai(nullable)]
    pub replay_of: Option<i64>,
    /// `job.progress`: the step that is generating: `generate` (an `llm.generate` job), `heal` (the
    /// LLM healing step) or `reply` (the agent's reply).
    #[oai(nullable)]
    pub stage: Option<String>,
    /// `job.progress`: tokens generated so far.
    #[oai(nullable)]
    pub tokens: Option<i64>,
    /// `job.progress`: the token budget of the generation.
    #[oai(nullable)]
    pub max_tokens: Option<i64>,
    /// `job.progress`: the text generated so far.
    #[oai(nullable)]
    pub text: Option<String>,
    #[oai(skip)]
    pub frame: SseFrame,
}

impl JobEventType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "job.queued" => Self::Queued,
            "job.running" => Self::Running,
            "job.progress" => Self::Progress,
            "job.succeeded" => Self::Succeeded,
            "job.retrying" => Self::Retrying,
            "job.dead" => Self::Dead,
            "job.canceled" => Self::Canceled,
            _ => return None,
        })
    }
}

/// An event as it goes on the wire: `id`, `event` and the stored `data` with its `type` added.
#[derive(Debug, Clone, Default)]
pub struct SseFrame {
    seq: i64,
    name: String,
    data: String,
}

impl JobEventData {
    /// None for a type this gateway does not know (a newer worker's), which it does not forward.
    fn from_stored(event: &StoredEvent) -> Option<Self> {
        let event_type = JobEventType::from_name(&event.event_type)?;
        let data: JsonValue = serde_json::from_str(&event.data).ok()?;
        let text = |field: &str| {
            data.get(field)
                .and_then(JsonValue::as_str)
                .map(str::to_owned)
        };
        let number = |field: &str| data.get(field).and_then(JsonValue::as_i64);
        // The stored data is a JSON object (built by `job_event_data`), so the type goes in as
        // its first member without serializing it again.
        let name = JsonValue::String(event.event_type.clone());
        let wire = match event.data.trim_start().strip_prefix('{') {
            Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"type\":{name}}}"),
            Some(rest) => format!("{{\"type\":{name},{rest}"),
            None => return None,
        };
        Some(JobEventData {
            event_type,
            job_id: event.job_id.unwrap_or_default(),
            kind: text("kind").unwrap_or_default(),
            status: text("status").unwrap_or_default(),
            attempt: number("attempt").unwrap_or_default() as i32,
            at: text("at").unwrap_or_default(),
            error: data.get("error").cloned(),
            run_at: text("run_at"),
            worker_id: text("worker_id"),
            replay_of: number("replay_of"),
            stage: text("stage"),
            tokens: number("tokens"),
            max_tokens: number("max_tokens"),
            text: text("text"),
            frame: SseFrame {
                seq: event.seq,
                name: event.event_type.clone(),
                data: wire,
            },
        })
    }
}

/// Which events a subscriber wants.
#[derive(Clone)]
struct Filter {
    tenant_id: Uuid,
    job_id: Option<i64>,
    types: Option<HashSet<String>>,
}

impl Filter {
    fn accepts(&self, event: &StoredEvent) -> bool {
        event.tenant_id == self.tenant_id
            && self
                .job_id
                .is_none_or(|job_id| event.job_id == Some(job_id))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.contains(&event.event_type))
    }
}

pub struct EventsApi;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Rows of one catch-up page. The next page is read only once the client has taken this one, so a
/// resuming subscriber holds at most one page in memory.
pub const CATCH_UP_PAGE: i64 = 500;

/// One page of `(after, up_to]` that the filter accepts, and the seq the next page starts after
/// (`None` when this was the last page). The page is cut by the rows read, not by the rows kept.
async fn read_page(
    state: &AppState,
    filter: &Filter,
    after: i64,
    up_to: i64,
) -> Result<(Vec<StoredEvent>, Option<i64>), ApiError> {
    let types: Option<Vec<String>> = filter
        .types
        .as_ref()
        .map(|types| types.iter().cloned().collect());
    let rows = sqlx::query!(
        r#"SELECT seq, tenant_id, job_id, type, data::text AS "data!" FROM events
           WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 AND ($4::bigint IS NULL OR job_id = $4)
             AND ($6::text[] IS NULL OR type = ANY($6))
           ORDER BY seq LIMIT $5"#,
        filter.tenant_id,
        after,
        up_to,
        filter.job_id,
        CATCH_UP_PAGE,
        types.as_deref()
    )
    .fetch_all(&state.pool)
    .await?;
    let next = match rows.last() {
        Some(last) if rows.len() as i64 == CATCH_UP_PAGE => Some(last.seq),
        _ => None,
    };
    let events = rows
        .into_iter()
        .map(|row| StoredEvent {
            seq: row.seq,
            tenant_id: row.tenant_id,
            job_id: row.job_id,
            event_type: row.r#type,
            data: row.data,
        })
        .filter(|event| filter.accepts(event))
        .collect();
    Ok((events, next))
}

/// Open event streams, per tenant and in all, under the configured caps.
#[derive(Default)]
pub struct Subscribers {
    open: std::sync::Mutex<std::collections::HashMap<Uuid, usize>>,
}

impl Subscribers {
    /// Takes a slot for `tenant_id`, or refuses with 429 `too_many_streams`.
    fn open(
        self: &Arc<Self>,
        tenant_id: Uuid,
        per_tenant: usize,
        total: usize,
        gauge: prometheus::IntGauge,
    ) -> Result<SubscriberGuard, ApiError> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| ApiError::internal("the subscriber table is poisoned"))?;
        let all: usize = open.values().sum();
        let mine = open.get(&tenant_id).copied().unwrap_or(0);
        if mine >= per_tenant || all >= total {
            let message = if mine >= per_tenant {
                format!("the tenant already has {mine} open event streams, the most allowed (SENTINEL_SSE_MAX_PER_TENANT)")
            } else {
                format!("the gateway already serves {all} event streams, the most allowed (SENTINEL_SSE_MAX_TOTAL)")
            };
            return Err(ApiError::too_many("too_many_streams", message, 5));
        }
        *open.entry(tenant_id).or_insert(0) += 1;
        gauge.inc();
        Ok(SubscriberGuard {
            subscribers: self.clone(),
            tenant_id,
            gauge,
        })
    }
}

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// Stream job events (SSE). Reconnect with `Last-Event-ID` to resume without a gap.
    #[oai(path = "/v1/events", method = "get", operation_id = "streamEvents")]
    async fn events(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        job_id: Query<Option<i64>>,
        /// Comma-separated event types, such as `job.succeeded,job.dead`.
        types: Query<Option<String>>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> Result<EventStream<BoxStream<'static, JobEventData>>, ApiError> {
        let filter = Filter {
            tenant_id: auth.0.tenant_id(),
            job_id: job_id.0,
            types: types.0.as_deref().map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
        };
        let resume_after: Option<i64> = match last_event_id.0.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(text.parse().map_err(|_| {
                ApiError::bad_request(
                    "invalid_last_event_id",
                    "Last-Event-ID must be the id of an earlier event",
                )
            })?),
        };
        let state = Arc::clone(&state);
        let guard = state.subscribers.open(
            filter.tenant_id,
            state.config.sse_max_per_tenant,
            state.config.sse_max_total,
            state.metrics.sse_subscribers.clone(),
        )?;
        let (live, delivered) = state.hub.subscribe();
        let mut shutdown = state.shutdown.clone();
        let feed = Feed {
            state,
            filter,
            buffered: VecDeque::new(),
            // With Last-Event-ID, first read (after, delivered] from the table.
            catch_up: resume_after.map(|after| (after, delivered)),
            last_sent: delivered,
            live,
            _guard: guard,
        };
        let stream = futures::stream::unfold(feed, |mut feed| async move {
            let event = feed.next().await?;
            Some((JobEventData::from_stored(&event), feed))
        })
        .filter_map(|event| async move { event })
        .take_until(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .boxed();
        Ok(EventStream::new(stream)
            .keep_alive(KEEP_ALIVE)
            .to_event(|event| {
                Event::message(event.frame.data)
                    .id(event.frame.seq.to_string())
                    .event_type(event.frame.name)
            }))
    }
}

/// One subscriber's position: rows to read from the table, then the live feed.
struct Feed {
    state: Arc<AppState>,
    filter: Filter,
    buffered: VecDeque<StoredEvent>,
    /// `(after, up_to)`: the range still to read from the table before going live.
    catch_up: Option<(i64, i64)>,
    /// Live events at or below this seq were covered by the table.
    last_sent: i64,
    live: broadcast::Receiver<Arc<StoredEvent>>,
    _guard: SubscriberGuard,
}

impl Feed {
    async fn next(&mut self) -> Option<StoredEvent> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Some(event);
            }
            if let Some((after, up_to)) = self.catch_up {
                let (rows, next) = read_page(&self.state, &self.filter, after, up_to)
                    .await
                    .ok()?;
                self.catch_up = next.map(|next| (next, up_to));
                self.buffered.extend(rows);
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    if event.seq > self.last_sent && self.filter.accepts(&event) {
                        self.last_sent = event.seq;
                        return Some((*event).clone());
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow for the broadcast buffer: resubscribe and read what was missed.
                    let (fresh, delivered) = self.state.hub.subscribe();
                    self.live = fresh;
                    self.catch_up = Some((self.last_sent, delivered));
                    self.last_sent = delivered;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// An open stream's slot; given back when the stream ends.
struct SubscriberGuard {
    subscribers: Arc<Subscribers>,
    tenant_id: Uuid,
    gauge: prometheus::IntGauge,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.gauge.dec();
        if let Ok(mut open) = self.subscribers.open.lock() {
            if let Some(mine) = open.get_mut(&self.tenant_id) {
                *mine = mine.saturating_sub(1);
                if *mine == 0 {
                    open.remove(&self.tenant_id);
                }
            }
        }
    }
}
