//! `GET /v1/events`: the tenant's job events as Server-Sent Events. A reconnect with
//! `Last-Event-ID` first replays the missed rows from `events`, then goes live, with nothing lost
//! or repeated between the two, page by page as the client reads. A comment keep-alive goes out
//! every 15 s. Streams are capped per tenant and per gateway (429 `too_many_streams`).
//!
//! Memory is bounded in bytes per stream, whatever the events hold:
//! - a stream is a producer task feeding the response body through a buffer of at most
//!   `SENTINEL_SSE_MAX_BUFFER_BYTES` (one event larger than that passes alone). It reserves room
//!   for an event before it reads a large one's data, so a full buffer holds the task back
//!   without it holding anything more;
//! - a client that stops reading stops hyper polling the body, so the buffer fills. Once the
//!   producer has waited for room and the connection has written nothing to its socket for
//!   [`STALL_GRACE`], the stream is cut off: its connection is dropped from the server side
//!   (`server::ConnectionControl`), which frees everything held for it, and the cut is counted
//!   (`sentinel_sse_cut_off_total`) and logged. The client resumes with `Last-Event-ID`. A client
//!   that reads, however slowly, keeps its socket writing and is never cut off;
//! - catch-up reads pages of at most [`CATCH_UP_PAGE`] rows and [`CATCH_UP_PAGE_BYTES`] of data
//!   (at least one row); data over `hub::INLINE_DATA_BYTES` is left out of the page and read by
//!   `seq` when its turn comes, as for the hub's live stubs.
//!
//! So a stream holds at most one catch-up page (256 KiB + 8 KiB of data, 500 rows), its buffer
//! (the limit, or one event over it), and the event hyper is writing (with hyper's own write
//! buffer, about 400 KiB), besides its unread entries in the hub's ring (see `hub`).
//!
//! Every [`REAUTH_EVERY`] a stream checks its bearer credential again through
//! `AppState::reauthenticate` (cached lookups, dropped on NOTIFY), so a revoked key or a suspended
//! tenant ends its open streams within seconds.

use std::{
    borrow::Cow,
    collections::{HashSet, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{stream::BoxStream, StreamExt};
use poem::{
    http::StatusCode,
    web::{sse::Event, Data},
    Request,
};
use poem_openapi::{
    param::{Header, Query},
    payload::EventStream,
    Object, OpenApi,
};
use sentinel_queue::tables::events;
use serde_json::Value as JsonValue;
use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc, watch, OwnedSemaphorePermit, Semaphore,
};
use uuid::Uuid;

use crate::{
    auth::{Principal, TenantAuth},
    error::ApiError,
    hub::{StoredEvent, INLINE_DATA_BYTES},
    limits::{Slot, SlotGuard},
    server::ConnectionControl,
    ApiTags, AppState,
};

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
    /// A conversation's turn was made: it holds the conversation's lane; `job_id` is its job.
    #[oai(rename = "turn.started")]
    TurnStarted,
    /// A conversation's turn ended (`status`: answered, unanswered, failed, canceled or
    /// interrupted) and freed the lane.
    #[oai(rename = "turn.ended")]
    TurnEnded,
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
    /// `turn.*`: the turn's conversation.
    #[oai(nullable)]
    pub source_id: Option<Uuid>,
    #[oai(nullable)]
    pub conversation_id: Option<String>,
    /// `turn.*`: how many messages the turn answers.
    #[oai(nullable)]
    pub messages: Option<i64>,
    /// `turn.ended`: the `reply.deliver` job of the reply the turn queued.
    #[oai(nullable)]
    pub reply_job_id: Option<i64>,
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
            "turn.started" => Self::TurnStarted,
            "turn.ended" => Self::TurnEnded,
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

impl SseFrame {
    /// The frame of `event`, whose data is `data`. None for a type this gateway does not know (a
    /// newer worker's), which it does not forward.
    fn new(event: &StoredEvent, data: &str) -> Option<(JobEventType, SseFrame)> {
        let event_type = JobEventType::from_name(&event.event_type)?;
        // The stored data is a JSON object (built by `job_event_data`), so the type goes in as
        // its first member without parsing or serializing it again.
        let name = JsonValue::String(event.event_type.clone());
        let wire = match data.trim_start().strip_prefix('{') {
            Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"type\":{name}}}"),
            Some(rest) => format!("{{\"type\":{name},{rest}"),
            None => return None,
        };
        Some((
            event_type,
            SseFrame {
                seq: event.seq,
                name: event.event_type.clone(),
                data: wire,
            },
        ))
    }
}

/// The bytes an event costs in a stream's buffer: its data, plus the frame around it (`id:`,
/// `event:`, `data:`, the added `type` member, line ends).
fn frame_cost(event: &StoredEvent) -> usize {
    event.data_bytes + 2 * event.event_type.len() + 64
}

impl JobEventData {
    /// A stream item. What goes on the wire is its frame, the stored data as it is with `type`
    /// added; the typed fields describe that data in the OpenAPI spec and are left empty here,
    /// so an event is never parsed, nor held twice, on its way out.
    fn carrying(event_type: JobEventType, job_id: Option<i64>, frame: SseFrame) -> Self {
        JobEventData {
            event_type,
            job_id: job_id.unwrap_or_default(),
            kind: String::new(),
            status: String::new(),
            attempt: 0,
            at: String::new(),
            error: None,
            run_at: None,
            worker_id: None,
            replay_of: None,
            stage: None,
            tokens: None,
            max_tokens: None,
            text: None,
            source_id: None,
            conversation_id: None,
            messages: None,
            reply_job_id: None,
            frame,
        }
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
    /// The tenant's events, of `job_id` and of the comma-separated `types` when given.
    fn new(tenant_id: Uuid, job_id: Option<i64>, types: Option<&str>) -> Self {
        Filter {
            tenant_id,
            job_id,
            types: types.map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
        }
    }

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
/// Bytes of data one catch-up page carries, past which it stops (always after at least one row).
pub const CATCH_UP_PAGE_BYTES: i64 = 256 * 1024;
/// `SENTINEL_SSE_MAX_BUFFER_BYTES`' default.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 1024 * 1024;
/// How long a stream whose buffer is full waits for its connection to write before it is cut off.
pub const STALL_GRACE: Duration = Duration::from_secs(5);
/// How often a producer waiting for room looks at its connection.
const STALL_CHECK: Duration = Duration::from_millis(250);
/// How often an open stream checks its credential again.
pub const REAUTH_EVERY: Duration = Duration::from_secs(2);

/// One page of `(after, up_to]` that the filter accepts, and the seq the next page starts after
/// (`None` when this was the last page). The page is cut by the rows read, not by the rows kept,
/// and by the bytes of the data it carries: data over `INLINE_DATA_BYTES` is not carried (the
/// event comes as a stub, read by seq when it is sent).
async fn read_page(
    state: &AppState,
    filter: &Filter,
    after: i64,
    up_to: i64,
) -> sqlx::Result<(VecDeque<StoredEvent>, Option<i64>)> {
    let types: Option<Vec<String>> = filter
        .types
        .as_ref()
        .map(|types| types.iter().cloned().collect());
    let range = events::TenantRange {
        tenant_id: filter.tenant_id,
        after,
        up_to,
        job_id: filter.job_id,
        types: types.as_deref(),
    };
    let bounds = events::PageBounds {
        rows: CATCH_UP_PAGE,
        inline_data_bytes: INLINE_DATA_BYTES,
        carried_bytes: CATCH_UP_PAGE_BYTES,
    };
    let rows = events::tenant_page(&state.pool, range, bounds).await?;
    // A page cut by rows or by bytes may have more behind it.
    let next = match rows.last() {
        Some(last) if rows.len() as i64 == CATCH_UP_PAGE || last.carried >= CATCH_UP_PAGE_BYTES => {
            Some(last.seq)
        }
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
            data_bytes: usize::try_from(row.bytes).unwrap_or_default(),
        })
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
        place: SlotGuard,
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
            _place: place,
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
        request: &Request,
        job_id: Query<Option<i64>>,
        /// Comma-separated event types, such as `job.succeeded,job.dead`.
        types: Query<Option<String>>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> Result<EventStream<BoxStream<'static, JobEventData>>, ApiError> {
        let filter = Filter::new(auth.0.tenant_id(), job_id.0, types.0.as_deref());
        let resume_after = resume_after(last_event_id.0.as_deref())?;
        // The caller, checked again while the stream lasts. An open stream is not one of the
        // tenant's requests in flight (it has its own caps), so its place there is given back.
        let principal = Principal {
            in_flight: None,
            ..auth.0.clone()
        };
        let state = Arc::clone(&state);
        // The tenant's cap holds across all gateways; this gateway's total is its own.
        let place = state
            .limits
            .slot(
                filter.tenant_id,
                Slot::Streams,
                state.config.sse_max_per_tenant,
            )
            .await
            .map_err(|denied| {
                denied.into_api_error(
                    "too_many_streams",
                    "open event streams",
                    "SENTINEL_SSE_MAX_PER_TENANT",
                    5,
                )
            })?;
        let guard = state.subscribers.open(
            place,
            filter.tenant_id,
            state.config.sse_max_per_tenant,
            state.config.sse_max_total,
            state.metrics.sse_subscribers.clone(),
        )?;
        let (live, delivered) = state.hub.subscribe();
        let (outbox, mut taken_frames) = Outbox::new(
            state.config.sse_max_buffer_bytes,
            request.extensions().get::<ConnectionControl>().cloned(),
        );
        let progress = outbox.progress.clone();
        let feed = Feed {
            state: state.clone(),
            filter,
            buffered: VecDeque::new(),
            // With Last-Event-ID, first read (after, delivered] from the table.
            catch_up: resume_after.map(|after| (after, delivered)),
            last_sent: delivered,
            live,
        };
        let mut shutdown = state.shutdown.clone();
        tokio::spawn(produce(feed, outbox, principal, shutdown.clone(), guard));
        // The body takes what the producer queued; taking a frame gives its bytes' room back.
        let stream = futures::stream::poll_fn(move |cx| {
            taken_frames.poll_recv(cx).map(|frame| {
                frame.map(|(event, _room): (JobEventData, OwnedSemaphorePermit)| {
                    progress.touch();
                    event
                })
            })
        })
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

/// The seq a resumed stream starts after: its `Last-Event-ID`, when given.
fn resume_after(last_event_id: Option<&str>) -> Result<Option<i64>, ApiError> {
    match last_event_id.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be the id of an earlier event",
            )
        }),
    }
}

/// When a stream's body last took a frame.
#[derive(Clone)]
struct Progress {
    opened: Instant,
    last_take_ms: Arc<AtomicU64>,
}

impl Progress {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_take_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        self.last_take_ms
            .store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn since_last_take(&self) -> Duration {
        let last = Duration::from_millis(self.last_take_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

/// A stream's buffer, from the producer's side: frames queued for the body, each holding its
/// bytes' worth of `room` until the body takes it.
struct Outbox {
    frames: mpsc::UnboundedSender<(JobEventData, OwnedSemaphorePermit)>,
    room: Arc<Semaphore>,
    limit: usize,
    progress: Progress,
    /// The connection the stream is served on, which a cut-off drops.
    connection: Option<ConnectionControl>,
}

impl Outbox {
    /// An outbox of at most `limit` bytes (within 1 and `u32::MAX`), and the body's end of it.
    fn new(
        limit: usize,
        connection: Option<ConnectionControl>,
    ) -> (
        Self,
        mpsc::UnboundedReceiver<(JobEventData, OwnedSemaphorePermit)>,
    ) {
        let limit = limit.clamp(1, u32::MAX as usize);
        let (frames, taken_frames) = mpsc::unbounded_channel();
        let outbox = Outbox {
            frames,
            room: Arc::new(Semaphore::new(limit)),
            limit,
            progress: Progress::new(),
            connection,
        };
        (outbox, taken_frames)
    }

    fn buffered_bytes(&self) -> usize {
        self.limit.saturating_sub(self.room.available_permits())
    }

    /// Room for `cost` bytes (all of it for an event over the limit, which then goes alone).
    /// Waits while the client reads; gives up when the buffer has stayed full and nothing was
    /// written or taken for [`STALL_GRACE`].
    async fn reserve(&self, cost: usize) -> Result<OwnedSemaphorePermit, Ended> {
        let wanted = u32::try_from(cost.clamp(1, self.limit)).unwrap_or(u32::MAX);
        loop {
            match tokio::time::timeout(STALL_CHECK, self.room.clone().acquire_many_owned(wanted))
                .await
            {
                Ok(Ok(room)) => return Ok(room),
                Ok(Err(_closed)) => return Err(Ended::ClientGone),
                Err(_waited) if self.stalled_for() >= STALL_GRACE => return Err(Ended::Stalled),
                Err(_waited) => {}
            }
        }
    }

    /// How long the stream has made no progress: neither did its body take a frame nor did its
    /// connection write (a body can sit behind a frame hyper is still writing).
    fn stalled_for(&self) -> Duration {
        let taken = self.progress.since_last_take();
        match &self.connection {
            Some(connection) => taken.min(connection.since_last_write()),
            None => taken,
        }
    }
}

/// Why a stream's producer stopped.
enum Ended {
    /// The hub stopped (the gateway is shutting down).
    HubClosed,
    /// The client went away.
    ClientGone,
    /// The client stopped reading and the buffer is full.
    Stalled,
    /// The key was revoked, the tenant suspended, or the JWT expired.
    Revoked,
    /// Reading the table failed; the client resumes with `Last-Event-ID`.
    Failed(sqlx::Error),
}

/// A stream's producer: events from the feed into the buffer, until the client goes, stalls, or
/// its credential stops being valid, or the gateway shuts down.
async fn produce(
    mut feed: Feed,
    outbox: Outbox,
    principal: Principal,
    mut shutdown: watch::Receiver<bool>,
    guard: SubscriberGuard,
) {
    let state = feed.state.clone();
    let tenant_id = feed.filter.tenant_id;
    let ended = tokio::select! {
        ended = pump(&mut feed, &outbox) => ended,
        () = outbox.frames.closed() => Ended::ClientGone,
        () = revoked(&state, &principal) => Ended::Revoked,
        _ = shutdown.wait_for(|stop| *stop) => Ended::HubClosed,
    };
    // The stream's slot comes back before anything else, so a resume is let in at once.
    drop(guard);
    match ended {
        Ended::Stalled => {
            state.metrics.sse_cut_off.inc();
            tracing::info!(
                tenant.id = %tenant_id,
                buffered_bytes = outbox.buffered_bytes(),
                limit_bytes = outbox.limit,
                "event stream cut off: its client stopped reading (SENTINEL_SSE_MAX_BUFFER_BYTES)"
            );
            // The body is not being polled, so only dropping the connection frees it. (Served
            // outside `server::serve` there is none: the stream ends once what it queued is taken.)
            if let Some(connection) = &outbox.connection {
                connection.abort();
            }
        }
        Ended::Failed(error) => {
            tracing::warn!(tenant.id = %tenant_id, %error, "event stream ended: reading events failed");
        }
        Ended::Revoked => {
            tracing::info!(tenant.id = %tenant_id, "event stream ended: its credential is no longer valid");
        }
        Ended::HubClosed | Ended::ClientGone => {}
    }
}

/// Moves events into the buffer: room first, then a large event's data, then the frame.
async fn pump(feed: &mut Feed, outbox: &Outbox) -> Ended {
    loop {
        let event = match feed.next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ended::HubClosed,
            Err(error) => return Ended::Failed(error),
        };
        if JobEventType::from_name(&event.event_type).is_none() {
            continue;
        }
        let room = match outbox.reserve(frame_cost(&event)).await {
            Ok(room) => room,
            Err(ended) => return ended,
        };
        let data = match &event.data {
            Some(data) => Cow::Borrowed(data.as_str()),
            None => match events::read_data(&feed.state.pool, event.seq).await {
                Ok(Some(data)) => Cow::Owned(data),
                // Deleted by retention since it was read: nothing left to send.
                Ok(None) => continue,
                Err(error) => return Ended::Failed(error),
            },
        };
        let Some((event_type, frame)) = SseFrame::new(&event, &data) else {
            continue;
        };
        drop(data);
        let item = JobEventData::carrying(event_type, event.job_id, frame);
        if outbox.frames.send((item, room)).is_err() {
            return Ended::ClientGone;
        }
    }
}

/// Resolves once the principal's credential no longer authenticates (a revoked key, a suspended
/// tenant, an expired JWT). A check that fails for another reason (the database, the lookup
/// budget) keeps the stream.
async fn revoked(state: &AppState, principal: &Principal) {
    let mut every =
        tokio::time::interval_at(tokio::time::Instant::now() + REAUTH_EVERY, REAUTH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match state.reauthenticate(principal).await {
            Ok(()) => {}
            Err(error)
                if matches!(
                    error.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) =>
            {
                return
            }
            Err(error) => {
                tracing::debug!(status = %error.status(), "an event stream's credential could not be checked again; keeping the stream");
            }
        }
    }
}

/// One subscriber's position: rows to read from the table, then the live feed.
struct Feed {
    state: Arc<AppState>,
    filter: Filter,
    /// The catch-up page being sent.
    buffered: VecDeque<StoredEvent>,
    /// `(after, up_to)`: the range still to read from the table before going live.
    catch_up: Option<(i64, i64)>,
    /// Live events at or below this seq were covered by the table.
    last_sent: i64,
    live: broadcast::Receiver<Arc<StoredEvent>>,
}

impl Feed {
    /// The next event the filter accepts; its data may be a stub, to read by seq.
    async fn next(&mut self) -> sqlx::Result<Option<Arc<StoredEvent>>> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Ok(Some(Arc::new(event)));
            }
            if let Some((after, up_to)) = self.catch_up {
                let (rows, next) = read_page(&self.state, &self.filter, after, up_to).await?;
                self.catch_up = next.map(|next| (next, up_to));
                self.buffered = rows;
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    if event.seq > self.last_sent && self.filter.accepts(&event) {
                        self.last_sent = event.seq;
                        return Ok(Some(event));
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow for the broadcast buffer: resubscribe and read what was missed.
                    let (fresh, delivered) = self.state.hub.subscribe();
                    self.live = fresh;
                    self.catch_up = Some((self.last_sent, delivered));
                    self.last_sent = delivered;
                }
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }
}

/// An open stream's slot; given back when the stream ends.
struct SubscriberGuard {
    /// The tenant's place among its streams on all gateways.
    _place: SlotGuard,
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
