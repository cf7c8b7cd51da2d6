//! The one connection loop every WebSocket endpoint runs (`/api/ws` and the compatible views).
//!
//! The loop owns everything that is the same for all of them: limits (sockets per address,
//! message size and rate, control frames included), keepalive pings and the idle timeout, the
//! session's expiry (4401) and re-authentication, shutdown (1001), the close handshake (a close
//! frame is answered, and one the server sends waits briefly for the client's reply, so the
//! client reads it rather than a reset), batching hub events into one flush, lag, and internal
//! failures (4500). An [`Endpoint`] says only what is particular to it: its first
//! frames, its replies to client messages, what a hub event becomes, and what a client that fell
//! behind gets. The loop is generic over `Sink + Stream`, so tests drive it with channels.
//!
//! [`SocketRequest`] (in [`super::request`]) is what every WebSocket handler extracts, and
//! [`SocketContext`] what one socket works with while it is served: its session's rights
//! decide which hub events reach it (a viewer's socket never carries another project's).

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::{
    sync::{
        broadcast::{
            self,
            error::{RecvError, TryRecvError},
        },
        watch,
    },
    time::{interval_at, sleep_until, Instant},
};

use super::limits::RateLimit;
pub use super::request::SocketRequest;
use crate::model::protocol::{ServerMessage, CODE_AUTH_EXPIRED, CODE_BAD_REQUEST, CODE_INTERNAL};
use crate::server::{
    auth::{Access, Auth, Claims},
    hub::{Frame, Hub},
    index::Index,
    metrics::{self, METRICS},
    AppState, Shutdown,
};

/// Largest frame a client may send.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// Hub events written before one flush when they arrive together.
const MAX_FRAMES_PER_FLUSH: usize = 64;
/// Close code for "going away" (shutdown, idle).
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a policy violation (rate limit).
const CLOSE_POLICY: u16 = 1008;
/// Close code for a message over the size limit.
const CLOSE_TOO_BIG: u16 = 1009;
/// Frames larger than this are not even buffered (the 64 KiB rule is enforced with a 1009).
pub(super) const HARD_FRAME_LIMIT: usize = 1024 * 1024;
/// How long a socket the server closes waits for the client's close frame. Until it comes the
/// client's frames are read and dropped: closing a TCP socket with unread input resets it, and a
/// reset makes the client lose the close frame and the replies still in flight.
pub const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);
/// Largest frame the server builds for a reply (a backlog is cut to fit, a long list of topics
/// is acknowledged in several frames).
pub const MAX_REPLY_FRAME_BYTES: usize = 256 * 1024;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for a new socket (for `hello` and the logs).
pub fn next_connection_id() -> u64 {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// What one socket works with, whatever its endpoint.
pub struct SocketContext {
    pub id: u64,
    pub index: Arc<Index>,
    pub hub: Hub,
    pub events: broadcast::Receiver<Arc<Frame>>,
    pub shutdown: Shutdown,
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
    pub write_stall: Duration,
    /// Verifies re-authentication; `None` when authentication is off.
    pub auth: Option<Arc<Auth>>,
    /// When the session ends (unix seconds): the socket is closed with 4401 then.
    pub expires: Option<u64>,
    /// The session's claims, checked again at every heartbeat: a sign-out elsewhere ends the
    /// socket too (4401) instead of leaving it open until `expires`.
    pub claims: Option<Claims>,
    /// What the session may see: a viewer's socket gets only its projects' events.
    pub access: Access,
    /// Changes when sessions end (a sign-out, a revoked share link), so this socket checks
    /// its own at once rather than at the next heartbeat.
    pub endings: Option<watch::Receiver<u64>>,
}

impl SocketContext {
    pub(super) fn new(state: &AppState, claims: Option<&Claims>) -> Self {
        Self {
            id: next_connection_id(),
            index: state.index.clone(),
            hub: state.hub.clone(),
            events: state.hub.subscribe(),
            shutdown: state.shutdown.clone(),
            heartbeat: state.keepalive.heartbeat,
            idle_timeout: state.keepalive.idle_timeout,
            write_stall: state.keepalive.write_stall,
            auth: state.auth.clone(),
            expires: claims.map(|claims| claims.exp),
            claims: claims.cloned(),
            // Without a session (authentication off) there is one local user.
            access: claims.map_or_else(Access::operator, |claims| claims.access.clone()),
            endings: state.auth.as_ref().map(|auth| auth.endings()),
        }
    }

    /// Whether this socket's session may get `frame` (events of projects outside a viewer's
    /// link never reach it, on any topic).
    pub fn shows(&self, frame: &Frame) -> bool {
        frame
            .event
            .project()
            .is_none_or(|project| self.access.may_see(project))
    }
}

/// One frame for the client.
#[derive(Debug)]
pub enum Out {
    /// A hub event exactly as the hub encoded it (the same bytes for every receiver).
    Frame(Arc<Frame>),
    Message(Box<ServerMessage>),
    /// A frame of a view's own shape.
    Json(Value),
}

impl Out {
    pub fn message(message: ServerMessage) -> Self {
        Out::Message(Box::new(message))
    }

    /// `{"type":"error","code":..,"message":..}`, the error frame of every endpoint.
    pub fn error(code: u16, message: impl Into<String>) -> Self {
        Out::Json(error_json(code, &message.into()))
    }
}

/// The answer to one client message.
#[derive(Debug)]
pub enum Reply {
    Send(Vec<Out>),
    /// The client sent a fresh session token (`{"action":"auth","token":..}`): the loop checks it
    /// and moves the session's end.
    Reauthenticate(String),
}

/// Why a socket is refused right after the upgrade (an error frame, then this close code).
#[derive(Debug)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
    pub reason: &'static str,
}

/// What is particular to one WebSocket endpoint.
pub trait Endpoint {
    /// The frames sent first (`hello`, a snapshot, a backlog), or a refusal.
    fn open(&mut self, socket: &SocketContext) -> Result<Vec<Out>, Refusal>;
    /// The reply to one text message (within the size and rate limits).
    fn on_text(&mut self, socket: &SocketContext, text: &str) -> Reply;
    /// What one hub event becomes for this client, if anything.
    fn on_event(
        &mut self,
        socket: &SocketContext,
        frame: &Arc<Frame>,
    ) -> Result<Option<Out>, Internal>;
    /// What a client gets after falling `missed` events behind: they are lost to it.
    fn on_lagged(&mut self, socket: &SocketContext, missed: u64) -> Vec<Out>;
}

/// A failure inside the server while serving a socket: the client did nothing wrong. It gets an
/// error frame and close code 4500 (reconnecting is the remedy) rather than a socket that just
/// drops or a frame silently skipped.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error("cannot encode a frame: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the event hub closed while the server is running")]
    HubClosed,
}

/// How a connection ends.
#[derive(Debug)]
enum End {
    /// The socket broke or stalled: nobody is left to tell.
    Quiet,
    /// The client sent a close frame: it gets one back with the same code.
    Echo(Option<CloseFrame>),
    /// A close frame with `code`, after an error frame when there is a message.
    Close {
        code: u16,
        reason: &'static str,
        message: Option<String>,
    },
    Internal(Internal),
}

impl From<Internal> for End {
    fn from(error: Internal) -> Self {
        End::Internal(error)
    }
}

/// Serves one connection until either side ends it.
pub async fn run<P, Tx, Rx, E>(socket: SocketContext, mut endpoint: P, mut sink: Tx, mut stream: Rx)
where
    P: Endpoint,
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let id = socket.id;
    let stall = socket.write_stall;
    let Err(end) = serve(socket, &mut endpoint, &mut sink, &mut stream).await;
    let (code, reason, message) = match end {
        End::Quiet => return,
        End::Echo(frame) => {
            // The client started the close handshake: finish it by echoing its close code.
            let echo = frame.map(|frame| CloseFrame {
                code: frame.code,
                reason: Default::default(),
            });
            let _ = bounded(stall, async {
                // A WebSocket has queued the echo itself and refuses another frame after a
                // close: closing the sink sends what it queued.
                if sink.send(Message::Close(echo)).await.is_err() {
                    let _ = sink.close().await;
                }
                Ok::<(), End>(())
            })
            .await;
            return;
        }
        End::Close {
            code,
            reason,
            message,
        } => (code, reason, message),
        End::Internal(error) => {
            tracing::error!(connection = id, %error, "closing a socket after an internal failure");
            metrics::count(&METRICS.internal_errors);
            let message = format!("internal server error ({error}); reconnect");
            (CODE_INTERNAL, "internal error", Some(message))
        }
    };
    let closing = async {
        if let Some(message) = message {
            sink.feed(text(error_json(code, &message)))
                .await
                .map_err(|_| End::Quiet)?;
        }
        close(&mut sink, code, reason).await
    };
    if bounded(stall, closing).await.is_ok() {
        await_close_reply(&mut stream).await;
    }
}

/// Reads (and drops) what the client still sends until its close frame arrives, the socket
/// ends, or [`CLOSE_HANDSHAKE`] passes.
async fn await_close_reply<Rx, E>(stream: &mut Rx)
where
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    let reply = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, reply).await;
}

/// The loop itself; it only ever ends with an [`End`].
async fn serve<P, Tx, Rx, E>(
    mut socket: SocketContext,
    endpoint: &mut P,
    sink: &mut Tx,
    stream: &mut Rx,
) -> Result<Infallible, End>
where
    P: Endpoint,
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let first = endpoint.open(&socket).map_err(|refusal| End::Close {
        code: refusal.code,
        reason: refusal.reason,
        message: Some(refusal.message),
    })?;
    for out in first {
        feed(sink, out, socket.write_stall).await?;
    }
    flush(sink, socket.write_stall).await?;

    let mut last_heard = Instant::now();
    let mut expiry = socket.expires.and_then(deadline_at);
    let mut session = socket.claims.clone();
    let mut rate = RateLimit::new();
    let mut heartbeat = interval_at(Instant::now() + socket.heartbeat, socket.heartbeat);
    let mut endings = socket.endings.take();
    let stop = socket.shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // Shutdown first: when the server stops, the hub closes too, and the client must get
            // the 1001 close frame rather than a dropped socket.
            biased;
            _ = &mut stop => return Err(going_away("server shutting down")),
            _ = async { sleep_until(expiry.unwrap_or_else(Instant::now)).await }, if expiry.is_some() => {
                return Err(End::Close {
                    code: CODE_AUTH_EXPIRED,
                    reason: "session expired",
                    message: Some("the session has expired; sign in again".into()),
                });
            }
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    // tungstenite refuses frames over the hard limit before they are buffered.
                    Some(Err(error)) if error.to_string().contains("too long") => {
                        return Err(End::Close { code: CLOSE_TOO_BIG, reason: "message too big", message: None });
                    }
                    Some(Err(_)) | None => return Err(End::Quiet),
                };
                last_heard = Instant::now();
                // Every frame but a close costs a token: a flood of pings costs the server a
                // pong each, as much as a flood of messages costs it replies.
                if !matches!(message, Message::Close(_)) && !rate.allow() {
                    return Err(End::Close {
                        code: CLOSE_POLICY,
                        reason: "rate limit",
                        message: Some("too many messages; slow down".into()),
                    });
                }
                let reply = match message {
                    Message::Text(text) if text.len() > MAX_INBOUND_BYTES => {
                        return Err(End::Close {
                            code: CLOSE_TOO_BIG,
                            reason: "message too big",
                            message: Some(format!("messages are limited to {MAX_INBOUND_BYTES} bytes")),
                        });
                    }
                    Message::Text(text) => endpoint.on_text(&socket, text.as_str()),
                    Message::Binary(_) => Reply::Send(vec![Out::error(CODE_BAD_REQUEST, "binary frames are not supported; send JSON text")]),
                    Message::Close(frame) => return Err(End::Echo(frame)),
                    // Protocol pings are answered by the socket layer; pongs only prove life.
                    Message::Ping(_) | Message::Pong(_) => Reply::Send(Vec::new()),
                };
                let outgoing = match reply {
                    Reply::Send(outgoing) => outgoing,
                    Reply::Reauthenticate(token) => match socket.auth.as_ref().map(|auth| auth.verify(&token)) {
                        // The socket's subscriptions were checked against its first rights.
                        Some(Ok(claims)) if claims.access != socket.access => vec![Out::error(CODE_AUTH_EXPIRED, "that token has other rights; open a new connection")],
                        Some(Ok(claims)) => {
                            expiry = deadline_at(claims.exp);
                            session = Some(claims);
                            Vec::new()
                        }
                        Some(Err(error)) => vec![Out::error(CODE_AUTH_EXPIRED, error.to_string())],
                        None => Vec::new(),
                    },
                };
                if !outgoing.is_empty() {
                    for out in outgoing {
                        if matches!(out, Out::Frame(_)) {
                            // Replayed events.
                            metrics::count(&METRICS.frames_sent);
                        }
                        feed(sink, out, socket.write_stall).await?;
                    }
                    flush(sink, socket.write_stall).await?;
                }
            }
            event = socket.events.recv() => {
                // Whatever else is already waiting goes out in the same flush (bursts cost one
                // write, not one per event).
                let mut next = Some(event);
                let mut handled = 0;
                while let Some(event) = next.take() {
                    match event {
                        Ok(frame) if !socket.shows(&frame) => {}
                        Ok(frame) => {
                            if let Some(out) = endpoint.on_event(&socket, &frame)? {
                                metrics::count(&METRICS.frames_sent);
                                feed(sink, out, socket.write_stall).await?;
                            }
                        }
                        Err(RecvError::Lagged(missed)) => {
                            metrics::count(&METRICS.lagged_clients);
                            // Too slow to keep up: not waited for; the endpoint says how to
                            // start over.
                            for out in endpoint.on_lagged(&socket, missed) {
                                feed(sink, out, socket.write_stall).await?;
                            }
                        }
                        Err(RecvError::Closed) => {
                            let _ = sink.flush().await;
                            // The connection holds the hub, so its channel cannot close while
                            // the server runs; if it does anyway, that is a bug, not a shutdown.
                            return Err(if socket.shutdown.is_triggered() {
                                going_away("server shutting down")
                            } else {
                                End::Internal(Internal::HubClosed)
                            });
                        }
                    }
                    handled += 1;
                    if handled < MAX_FRAMES_PER_FLUSH {
                        next = match socket.events.try_recv() {
                            Ok(frame) => Some(Ok(frame)),
                            Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
                            Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                            Err(TryRecvError::Empty) => None,
                        };
                    }
                }
                flush(sink, socket.write_stall).await?;
            }
            watching = ended(&mut endings) => {
                if !watching {
                    endings = None;
                }
                session_live(&socket, &session)?;
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= socket.idle_timeout {
                    return Err(going_away("idle timeout"));
                }
                session_live(&socket, &session)?;
                let ping = async { sink.send(Message::Ping(Default::default())).await.map_err(|_| End::Quiet) };
                bounded(socket.write_stall, ping).await?;
            }
        }
    }
}

/// Waits until sessions end somewhere; `false` when nobody can end them any more.
async fn ended(endings: &mut Option<watch::Receiver<u64>>) -> bool {
    match endings {
        Some(endings) => endings.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Closes with 4401 when the session ended (signed out, its share link revoked).
fn session_live(socket: &SocketContext, session: &Option<Claims>) -> Result<(), End> {
    match (&socket.auth, session) {
        (Some(auth), Some(claims)) if !auth.is_live(claims) => Err(End::Close {
            code: CODE_AUTH_EXPIRED,
            reason: "session ended",
            message: Some(
                "the session has ended (signed out or its link revoked); sign in again".into(),
            ),
        }),
        _ => Ok(()),
    }
}

fn going_away(reason: &'static str) -> End {
    End::Close {
        code: CLOSE_GOING_AWAY,
        reason,
        message: None,
    }
}

/// Runs one write, giving up on a client that stalls it.
async fn bounded<F, E>(stall: Duration, write: F) -> Result<(), End>
where
    F: std::future::Future<Output = Result<(), E>>,
    End: From<E>,
{
    match tokio::time::timeout(stall, write).await {
        Ok(result) => result.map_err(End::from),
        Err(_) => {
            metrics::count(&METRICS.stalled_clients);
            Err(End::Quiet)
        }
    }
}

async fn flush<Tx: Sink<Message> + Unpin>(sink: &mut Tx, stall: Duration) -> Result<(), End> {
    bounded(stall, async { sink.flush().await.map_err(|_| End::Quiet) }).await
}

/// Queues one frame (without flushing).
async fn feed<Tx: Sink<Message> + Unpin>(
    sink: &mut Tx,
    out: Out,
    stall: Duration,
) -> Result<(), End> {
    let message = match out {
        Out::Frame(frame) => Message::Text(frame.text.clone()),
        Out::Message(message) => Message::Text(
            serde_json::to_string(&message)
                .map_err(Internal::Encode)?
                .into(),
        ),
        Out::Json(value) => text(value),
    };
    bounded(stall, async {
        sink.feed(message).await.map_err(|_| End::Quiet)
    })
    .await
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

/// Built from plain values: this frame cannot fail to encode.
fn error_json(code: u16, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message})
}

async fn close<Tx: Sink<Message> + Unpin>(
    sink: &mut Tx,
    code: u16,
    reason: &'static str,
) -> Result<(), End> {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    sink.send(Message::Close(Some(frame)))
        .await
        .map_err(|_| End::Quiet)
}

/// The moment a unix time (seconds) is reached, on the runtime's clock; `None` when that is
/// too far ahead for the clock to represent (such a moment never comes).
pub fn deadline_at(unix_seconds: u64) -> Option<Instant> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Instant::now().checked_add(Duration::from_secs(unix_seconds.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_far_expiry_is_never_rather_than_a_panic() {
        assert!(deadline_at(u64::MAX).is_none());
        assert!(deadline_at(0).is_some_and(|at| at <= Instant::now()));
    }
}
