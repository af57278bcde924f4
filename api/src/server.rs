//! The HTTP server: hyper under the poem endpoint, with the connection hygiene a public gateway
//! needs and poem's own server lacks (it gives hyper no timer, so there is no header timeout).
//!
//! - A request head must arrive within [`HttpLimits::header_read_timeout`] of the connection
//!   waiting for it, which also closes an idle keep-alive connection after that long.
//! - A connection that neither reads nor writes for [`HttpLimits::idle_timeout`] is closed (an
//!   HTTP/2 connection with no streams, a body that stopped arriving).
//! - HTTP/2 connections run at most [`HttpLimits::http2_max_streams`] streams at once.
//! - At most [`HttpLimits::max_connections`] connections are open; beyond that a new connection is
//!   closed at once, so a flood of idle sockets cannot take every file descriptor.
//! - A request body must arrive within [`HttpLimits::body_read_timeout`] (applied where bodies are
//!   read: see `lib.rs` and `ingress.rs`).
//! - Each request carries its connection's [`ConnectionControl`] in its extensions: how long the
//!   connection has gone without writing, and a way to drop it from the server side. A response
//!   whose client stopped reading is never polled again, so only this can end it: the event
//!   stream uses it to cut off a client that does not read (see `events.rs`).

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use poem::{
    http,
    web::{LocalAddr, RemoteAddr},
    Addr, Endpoint, EndpointExt, IntoEndpoint, Request, Response,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{watch, Notify, Semaphore},
    task::JoinSet,
};

/// Connection limits; see the module documentation. Each has a `SENTINEL_HTTP_*` variable.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub http2_max_streams: u32,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body_read_timeout: Duration::from_secs(30),
            http2_max_streams: 100,
            max_connections: 10_000,
        }
    }
}

/// Serves `endpoint` on `listener` until `shutdown` turns true, then lets open requests finish for
/// up to `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> io::Result<()>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    let endpoint = Arc::new(endpoint.into_endpoint().map_to_response());
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_connections, connections_stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most often: wait a little instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max_connections = limits.max_connections,
                remote = %remote,
                "connection refused: at SENTINEL_HTTP_MAX_CONNECTIONS"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (endpoint, limits, stop) = (endpoint.clone(), limits.clone(), connections_stop.clone());
        connections.spawn(async move {
            serve_connection(stream, local, remote, endpoint, &limits, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_connections.send(true);
    if tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        connections.shutdown().await;
    }
    Ok(())
}

/// A handle on the connection a request arrived on, put into every request's extensions.
#[derive(Clone)]
pub struct ConnectionControl {
    shared: Arc<ConnectionShared>,
}

struct ConnectionShared {
    started: Instant,
    /// When the socket last read or wrote anything, in milliseconds since `started`.
    last_activity_ms: AtomicU64,
    /// When the socket last wrote anything, in milliseconds since `started`.
    last_write_ms: AtomicU64,
    aborted: AtomicBool,
    abort: Notify,
}

impl ConnectionControl {
    fn new() -> Self {
        Self {
            shared: Arc::new(ConnectionShared {
                started: Instant::now(),
                last_activity_ms: AtomicU64::new(0),
                last_write_ms: AtomicU64::new(0),
                aborted: AtomicBool::new(false),
                abort: Notify::new(),
            }),
        }
    }

    /// How long the connection has written nothing to its socket: a client that stopped reading
    /// stops the writes once the kernel's buffers are full.
    pub fn since_last_write(&self) -> Duration {
        let last = Duration::from_millis(self.shared.last_write_ms.load(Ordering::Relaxed));
        self.shared.started.elapsed().saturating_sub(last)
    }

    /// Drops the connection, whatever it is doing, with a reset: what the kernel still holds
    /// for it is discarded too. Every request on it ends.
    pub fn abort(&self) {
        self.shared.aborted.store(true, Ordering::Release);
        self.shared.abort.notify_one();
    }

    fn is_aborted(&self) -> bool {
        self.shared.aborted.load(Ordering::Acquire)
    }

    /// Resolves once [`ConnectionControl::abort`] was called.
    async fn aborted(&self) {
        // `notify_one` keeps a permit when nobody waits, so an abort is never missed.
        while !self.is_aborted() {
            self.shared.abort.notified().await;
        }
    }
}

async fn serve_connection<E>(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    endpoint: Arc<E>,
    limits: &HttpLimits,
    mut stop: watch::Receiver<bool>,
) where
    E: Endpoint<Output = Response> + 'static,
{
    let control = ConnectionControl::new();
    let io = TokioIo::new(Watched {
        inner: stream,
        control: control.clone(),
    });
    let request_control = control.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let endpoint = endpoint.clone();
        let control = request_control.clone();
        async move {
            let mut req: Request = (
                req,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(remote)),
                poem::http::uri::Scheme::HTTP,
            )
                .into();
            req.extensions_mut().insert(control);
            let response = endpoint.get_response(req).await;
            Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, io::Error>>::from(response))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams);
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let idle = idle_for(&control, limits.idle_timeout);
    tokio::pin!(idle);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = &mut idle => {
            tracing::debug!(remote = %remote, "closing an idle connection");
            return;
        }
        _ = control.aborted() => {
            tracing::debug!(remote = %remote, "dropping an aborted connection");
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    // Shutting down: finish the requests in flight, then close.
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection => {}
        _ = idle => {}
        _ = control.aborted() => {}
    }
}

/// Resolves once the connection has neither read nor written for `timeout`.
async fn idle_for(control: &ConnectionControl, timeout: Duration) {
    let shared = &control.shared;
    loop {
        let last = Duration::from_millis(shared.last_activity_ms.load(Ordering::Relaxed));
        let quiet = shared.started.elapsed().saturating_sub(last);
        if quiet >= timeout {
            return;
        }
        tokio::time::sleep(timeout - quiet).await;
    }
}

/// A socket that records when it last read or wrote anything, and closes with a reset when its
/// connection was aborted.
struct Watched {
    inner: TcpStream,
    control: ConnectionControl,
}

impl Watched {
    fn now_ms(&self) -> u64 {
        self.control.shared.started.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        let now = self.now_ms();
        self.control
            .shared
            .last_activity_ms
            .store(now, Ordering::Relaxed);
    }

    fn wrote(&self) {
        let now = self.now_ms();
        let shared = &self.control.shared;
        shared.last_activity_ms.store(now, Ordering::Relaxed);
        shared.last_write_ms.store(now, Ordering::Relaxed);
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.control.is_aborted() {
            // A reset instead of a FIN: the unsent bytes a client that stopped reading left in
            // the kernel's send buffer are discarded now, not kept until it reads or times out.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether a request's `Content-Length` says its body is over `limit`: refused before any of it
/// is read.
pub fn declares_more_than(headers: &http::HeaderMap, limit: usize) -> bool {
    headers
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
        .is_some_and(|declared| declared > limit)
}

/// Reads a body under the limits: at most `limit` bytes, within the body deadline.
pub async fn read_body(
    body: poem::Body,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(deadline, body.into_bytes_limit(limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => Err(BodyError::TooLarge),
        Ok(Err(error)) => Err(BodyError::Unreadable(error.to_string())),
        Err(_elapsed) => Err(BodyError::TimedOut),
    }
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    TimedOut,
    Unreadable(String),
}

/// The error texts a [`limited_body`] stream fails with, recognised again in the error handler.
const TOO_LARGE_TEXT: &str = "the request body is over its limit";
const TIMED_OUT_TEXT: &str = "the request body did not arrive in time";

impl BodyError {
    /// The limit a handler's body read broke, from the read error's text.
    pub fn from_read_error(text: &str) -> Option<BodyError> {
        if text.contains(TOO_LARGE_TEXT) {
            Some(BodyError::TooLarge)
        } else if text.contains(TIMED_OUT_TEXT) {
            Some(BodyError::TimedOut)
        } else {
            None
        }
    }
}

/// The body as a stream that fails once more than `limit` bytes arrive, or when it has not ended
/// by `deadline` from now. Nothing is read until the handler reads it.
pub fn limited_body(body: poem::Body, limit: usize, deadline: Duration) -> poem::Body {
    use futures::StreamExt;

    let ends_by = tokio::time::Instant::now() + deadline;
    let stream = Box::pin(body.into_bytes_stream());
    let limited = futures::stream::unfold(
        (stream, 0usize, false),
        move |(mut stream, seen, failed)| async move {
            if failed {
                return None;
            }
            match tokio::time::timeout_at(ends_by, stream.next()).await {
                Err(_elapsed) => Some((
                    Err(io::Error::new(io::ErrorKind::TimedOut, TIMED_OUT_TEXT)),
                    (stream, seen, true),
                )),
                Ok(None) => None,
                Ok(Some(Err(error))) => Some((Err(error), (stream, seen, true))),
                Ok(Some(Ok(bytes))) => {
                    let seen = seen + bytes.len();
                    if seen > limit {
                        Some((Err(io::Error::other(TOO_LARGE_TEXT)), (stream, seen, true)))
                    } else {
                        Some((Ok(bytes), (stream, seen, false)))
                    }
                }
            }
        },
    );
    poem::Body::from_bytes_stream(limited)
}
