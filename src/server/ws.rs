//! `/api/ws`: one task per socket. The loop is generic over `Sink + Stream` so tests can drive it
//! with channels as well as with a real socket.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    sync::{Mutex, PoisonError},
    time::Duration,
};

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        ConnectInfo, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    Extension,
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::{
    sync::broadcast::{
        self,
        error::{RecvError, TryRecvError},
    },
    time::{interval_at, sleep_until, Instant},
};

use super::{
    auth::{Auth, Claims},
    hub::{Frame, Hub, Replay},
    index::Index,
    metrics::{self, METRICS},
    AppState, Shutdown,
};
use crate::model::{
    protocol::{
        ClientMessage, LogLines, ProtocolError, ServerMessage, CODE_AUTH_EXPIRED, CODE_BAD_REQUEST,
        CODE_INTERNAL, CODE_UNKNOWN_PROJECT,
    },
    Cursor, Topic,
};

/// Largest frame a client may send.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// A client silent this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Events written before one flush when they arrive together.
const MAX_FRAMES_PER_FLUSH: usize = 64;
/// Close code for "going away" (shutdown, idle).
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a policy violation (rate limit).
const CLOSE_POLICY: u16 = 1008;
/// Close code for a message over the size limit.
const CLOSE_TOO_BIG: u16 = 1009;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for a new socket (for `hello` and the logs).
pub(super) fn next_connection_id() -> u64 {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// Messages a client may send in a burst...
const RATE_BURST: f64 = 40.0;
/// ...and per second after it.
const RATE_PER_SECOND: f64 = 10.0;
/// Sockets one address may hold open at once.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// Frames larger than this are not even buffered (the 64 KiB rule is enforced with a 1009).
const HARD_FRAME_LIMIT: usize = 1024 * 1024;

pub async fn upgrade(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    claims: Option<Extension<Claims>>,
    State(state): State<AppState>,
) -> Response {
    let Some(slot) = state.connections.acquire(peer.ip()) else {
        metrics::count(&METRICS.connections_refused);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSocket connections from this address",
        )
            .into_response();
    };
    // Small buffers: an idle socket should cost a few kilobytes, not tungstenite's 128 KiB
    // defaults; a client that stops reading cannot make the server buffer without bound.
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .on_upgrade(move |socket: WebSocket| {
            let (sink, stream) = socket.split();
            let context = Connection {
                id: next_connection_id(),
                index: state.index.clone(),
                events: state.hub.subscribe(),
                hub: state.hub.clone(),
                shutdown: state.shutdown.clone(),
                heartbeat: state.keepalive.heartbeat,
                idle_timeout: state.keepalive.idle_timeout,
                auth: state.auth.clone(),
                expires: claims.map(|Extension(claims)| claims.exp),
            };
            async move {
                metrics::count(&METRICS.connections_total);
                metrics::adjust(&METRICS.connections_open, 1);
                run(context, sink, stream).await;
                metrics::adjust(&METRICS.connections_open, -1);
                drop(slot);
            }
        })
}

/// Counts open sockets per address.
#[derive(Debug, Default)]
pub struct ConnectionLimits {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted socket; releases its place when dropped.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
}

impl ConnectionLimits {
    pub fn acquire(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Slot {
            limits: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// A token bucket: `RATE_BURST` messages at once, then `RATE_PER_SECOND`.
struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new() -> Self {
        Self {
            tokens: RATE_BURST,
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * RATE_PER_SECOND;
        self.tokens = (self.tokens + refill).min(RATE_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What one connection works with.
pub struct Connection {
    pub id: u64,
    pub index: Arc<Index>,
    pub hub: Hub,
    pub events: broadcast::Receiver<Arc<Frame>>,
    pub shutdown: Shutdown,
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
    /// Verifies re-authentication; `None` when authentication is off.
    pub auth: Option<Arc<Auth>>,
    /// When the session ends (unix seconds): the socket is closed with 4401 then.
    pub expires: Option<u64>,
}

/// Serves one connection until either side ends it.
pub async fn run<Tx, Rx, E>(connection: Connection, sink: Tx, stream: Rx)
where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut session = Session::default();
    serve(connection, sink, stream, &mut session).await;
    metrics::adjust(&METRICS.subscriptions, -(session.delivered.len() as i64));
}

/// What the client asked for on this connection.
#[derive(Debug, Default)]
struct Session {
    /// Subscribed topics and the cursor of the last event this client has of each.
    delivered: HashMap<Topic, Cursor>,
    /// Events of archived projects on `projects` reach the client too (off by default: the
    /// dashboard hides archived projects unless asked).
    include_archived: bool,
}

async fn serve<Tx, Rx, E>(
    mut connection: Connection,
    mut sink: Tx,
    mut stream: Rx,
    session: &mut Session,
) where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let hello = ServerMessage::Hello {
        connection: connection.id,
        epoch: connection.hub.epoch(),
        heartbeat_seconds: connection.heartbeat.as_secs() as u32,
    };
    match send(&mut sink, &hello).await {
        Ok(()) => {}
        Err(SendError::Gone) => return,
        Err(SendError::Internal(error)) => return fail(&mut sink, connection.id, error).await,
    }
    let mut last_heard = Instant::now();
    let mut expiry = connection.expires.map(instant_at);
    let mut rate = RateLimit::new();
    let mut heartbeat = interval_at(Instant::now() + connection.heartbeat, connection.heartbeat);
    let stop = connection.shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // Shutdown first: when the server stops, the hub closes too, and the client must get
            // the 1001 close frame rather than a dropped connection.
            biased;
            _ = &mut stop => {
                close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await;
                return;
            }
            _ = async { sleep_until(expiry.unwrap_or_else(Instant::now)).await }, if expiry.is_some() => {
                let _ = send(&mut sink, &ServerMessage::error(CODE_AUTH_EXPIRED, "the session has expired; sign in again")).await;
                close(&mut sink, CODE_AUTH_EXPIRED, "session expired").await;
                return;
            }
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        if error.to_string().contains("too long") {
                            close(&mut sink, CLOSE_TOO_BIG, "message too big").await;
                        }
                        return;
                    }
                    None => return,
                };
                last_heard = Instant::now();
                if matches!(message, Message::Text(_) | Message::Binary(_)) && !rate.allow() {
                    let _ = send(&mut sink, &ServerMessage::error(CLOSE_POLICY, "too many messages; slow down")).await;
                    close(&mut sink, CLOSE_POLICY, "rate limit").await;
                    return;
                }
                let outgoing = match message {
                    Message::Text(text) if text.len() > MAX_INBOUND_BYTES => {
                        let _ = send(&mut sink, &ServerMessage::error(CLOSE_TOO_BIG, format!("messages are limited to {MAX_INBOUND_BYTES} bytes"))).await;
                        close(&mut sink, CLOSE_TOO_BIG, "message too big").await;
                        return;
                    }
                    Message::Text(text) => match ClientMessage::parse(text.as_str()) {
                        Ok(ClientMessage::Auth { token }) => {
                            match connection.auth.as_ref().map(|auth| auth.verify(&token)) {
                                Some(Ok(claims)) => {
                                    expiry = Some(instant_at(claims.exp));
                                    Vec::new()
                                }
                                Some(Err(error)) => vec![reply(ServerMessage::error(CODE_AUTH_EXPIRED, error.to_string()))],
                                None => Vec::new(),
                            }
                        }
                        other => handle(&connection, session, other),
                    },
                    Message::Binary(_) => vec![reply(ServerMessage::error(CODE_BAD_REQUEST, "binary frames are not supported; send JSON text"))],
                    Message::Close(_) => return,
                    // Protocol pings are answered by the socket layer; pongs only prove life.
                    Message::Ping(_) | Message::Pong(_) => Vec::new(),
                };
                for item in outgoing {
                    let sent = match item {
                        Outgoing::Message(message) => send(&mut sink, &message).await,
                        Outgoing::Frame(frame) => {
                            metrics::count(&METRICS.frames_sent);
                            sink.send(Message::Text(frame.text.clone())).await.map_err(|_| SendError::Gone)
                        }
                    };
                    match sent {
                        Ok(()) => {}
                        Err(SendError::Gone) => return,
                        Err(SendError::Internal(error)) => return fail(&mut sink, connection.id, error).await,
                    }
                }
            }
            event = connection.events.recv() => {
                // Whatever else is already waiting goes out in the same flush (bursts cost one
                // write, not one per event).
                let mut next = Some(event);
                let mut queued = 0;
                let mut outcome: Result<(), SendError> = Ok(());
                while let Some(event) = next.take() {
                    match event {
                        Ok(frame) => {
                            if let Some(cursor) = session.delivered.get_mut(&frame.topic) {
                                // Skipped when already replayed or older than the cursor; a
                                // hidden frame still moves the cursor (it is not owed later).
                                if frame.cursor > *cursor {
                                    *cursor = frame.cursor;
                                    if frame.visible(session.include_archived) {
                                        metrics::count(&METRICS.frames_sent);
                                        outcome = sink.feed(Message::Text(frame.text.clone())).await.map_err(|_| SendError::Gone);
                                    }
                                }
                            }
                        }
                        Err(RecvError::Lagged(missed)) => {
                            metrics::count(&METRICS.lagged_clients);
                            metrics::count(&METRICS.resyncs);
                            // Too slow to keep up: do not wait for it, tell it to refetch.
                            let resync = ServerMessage::Resync { topic: None, reason: format!("fell behind by {missed} events") };
                            outcome = match serde_json::to_string(&resync) {
                                Ok(text) => sink.feed(Message::Text(text.into())).await.map_err(|_| SendError::Gone),
                                Err(error) => Err(SendError::Internal(Internal::Encode(error))),
                            };
                        }
                        Err(RecvError::Closed) => {
                            let _ = sink.flush().await;
                            // Each connection holds the hub, so its channel cannot close while
                            // the server runs; if it does anyway, that is a bug, not a shutdown.
                            if connection.shutdown.is_triggered() {
                                close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await;
                            } else {
                                fail(&mut sink, connection.id, Internal::HubClosed).await;
                            }
                            return;
                        }
                    }
                    match outcome {
                        Ok(()) => {}
                        Err(SendError::Gone) => return,
                        Err(SendError::Internal(error)) => return fail(&mut sink, connection.id, error).await,
                    }
                    queued += 1;
                    if queued < MAX_FRAMES_PER_FLUSH {
                        next = match connection.events.try_recv() {
                            Ok(frame) => Some(Ok(frame)),
                            Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
                            Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                            Err(TryRecvError::Empty) => None,
                        };
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= connection.idle_timeout {
                    close(&mut sink, CLOSE_GOING_AWAY, "idle timeout").await;
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

enum Outgoing {
    Message(Box<ServerMessage>),
    Frame(Arc<Frame>),
}

/// The moment a unix time (seconds) is reached, on the runtime's clock.
fn instant_at(unix_seconds: u64) -> Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Instant::now() + Duration::from_secs(unix_seconds.saturating_sub(now))
}

fn reply(message: ServerMessage) -> Outgoing {
    Outgoing::Message(Box::new(message))
}

/// The replies to one client frame. Bad frames get an error frame; the socket stays open.
fn handle(
    connection: &Connection,
    session: &mut Session,
    parsed: Result<ClientMessage, ProtocolError>,
) -> Vec<Outgoing> {
    let delivered = &mut session.delivered;
    match parsed {
        Ok(ClientMessage::SetIncludeArchived { value }) => {
            session.include_archived = value;
            vec![reply(ServerMessage::IncludeArchived { value })]
        }
        // Handled by the connection loop, which owns the session's expiry.
        Ok(ClientMessage::Auth { .. }) => Vec::new(),
        Ok(ClientMessage::Ping) => vec![reply(ServerMessage::Pong)],
        Ok(ClientMessage::Subscribe {
            topics,
            since,
            backlog,
        }) => {
            let mut out = Vec::new();
            let mut accepted = Vec::new();
            let mut cursors = BTreeMap::new();
            let mut unknown = Vec::new();
            let mut replayed = Vec::new();
            for topic in topics {
                if let Some(id) = topic.project() {
                    if !connection.index.contains(id) {
                        unknown.push(topic.to_string());
                        continue;
                    }
                }
                let (now, frames) = match since.get(&topic) {
                    Some(cursor) => match connection.hub.replay(&topic, *cursor) {
                        (Replay::Frames(frames), now) => (now, frames),
                        (Replay::Resync, now) => {
                            metrics::count(&METRICS.resyncs);
                            out.push(reply(ServerMessage::Resync {
                                topic: Some(topic.clone()),
                                reason: "the cursor is unknown or too old".into(),
                            }));
                            (now, Vec::new())
                        }
                    },
                    None => match (&topic, backlog) {
                        (Topic::Log(id), lines) if lines > 0 => {
                            match connection.index.log_backlog(id, lines) {
                                Some((text, cursor)) => {
                                    out.push(reply(ServerMessage::LogBacklog {
                                        project: id.clone(),
                                        data: LogLines { lines: text },
                                    }));
                                    (cursor, Vec::new())
                                }
                                None => (connection.hub.cursor(&topic), Vec::new()),
                            }
                        }
                        _ => (connection.hub.cursor(&topic), Vec::new()),
                    },
                };
                if delivered.insert(topic.clone(), now).is_none() {
                    metrics::adjust(&METRICS.subscriptions, 1);
                }
                cursors.insert(topic.clone(), now);
                accepted.push(topic);
                replayed.extend(frames);
            }
            let mut replies = vec![reply(ServerMessage::Subscribed {
                topics: accepted,
                cursors,
            })];
            if !unknown.is_empty() {
                replies.push(reply(ServerMessage::error(
                    CODE_UNKNOWN_PROJECT,
                    format!("unknown project(s): {}", unknown.join(", ")),
                )));
            }
            replies.extend(out);
            let include_archived = session.include_archived;
            replies.extend(
                replayed
                    .into_iter()
                    .filter(|frame| frame.visible(include_archived))
                    .map(Outgoing::Frame),
            );
            replies
        }
        Ok(ClientMessage::Unsubscribe { topics }) => {
            for topic in &topics {
                if delivered.remove(topic).is_some() {
                    metrics::adjust(&METRICS.subscriptions, -1);
                }
            }
            vec![reply(ServerMessage::Unsubscribed { topics })]
        }
        Err(error) => vec![reply(ServerMessage::error(
            CODE_BAD_REQUEST,
            error.to_string(),
        ))],
    }
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
    #[error("an event from the hub cannot be read: {0}")]
    Decode(serde_json::Error),
}

/// Why a frame did not go out.
#[derive(Debug)]
enum SendError {
    /// The socket is closed or broken: nobody is left to tell.
    Gone,
    Internal(Internal),
}

async fn send<Tx: Sink<Message> + Unpin>(
    sink: &mut Tx,
    message: &ServerMessage,
) -> Result<(), SendError> {
    let text = serde_json::to_string(message).map_err(|e| SendError::Internal(e.into()))?;
    sink.send(Message::Text(text.into()))
        .await
        .map_err(|_| SendError::Gone)
}

/// Ends a connection after an internal failure: logged, an error frame, then close 4500.
pub(super) async fn fail<Tx: Sink<Message> + Unpin>(
    sink: &mut Tx,
    connection: u64,
    error: Internal,
) {
    tracing::error!(connection, %error, "closing a socket after an internal failure");
    metrics::count(&METRICS.internal_errors);
    // Built from plain values: this frame cannot fail to encode.
    let frame = serde_json::json!({
        "type": "error",
        "code": CODE_INTERNAL,
        "message": format!("internal server error ({error}); reconnect"),
    });
    let _ = sink.send(Message::Text(frame.to_string().into())).await;
    close(sink, CODE_INTERNAL, "internal error").await;
}

async fn close<Tx: Sink<Message> + Unpin>(sink: &mut Tx, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{protocol::StatusChange, Status};
    use futures::channel::mpsc;
    use std::convert::Infallible;

    type ClientRx = mpsc::Receiver<Message>;
    type ClientTx = mpsc::Sender<Result<Message, Infallible>>;

    async fn next_json(rx: &mut ClientRx) -> serde_json::Value {
        let message = tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open");
        match message {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("valid JSON"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    async fn say(tx: &mut ClientTx, text: &str) {
        tx.send(Ok(Message::Text(text.into()))).await.expect("send");
    }

    /// A connection knowing one project (in a temporary directory kept alive by the caller).
    fn one_project_connection(
        hub: &Hub,
        shutdown: &Shutdown,
    ) -> (String, Connection, tempfile::TempDir) {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("p");
        std::fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        let index = Arc::new(Index::new(hub.clone()));
        index.add(dir.canonicalize().expect("canonical"));
        let id = index.summaries()[0].id.clone();
        let connection = Connection {
            id: 7,
            index,
            events: hub.subscribe(),
            hub: hub.clone(),
            shutdown: shutdown.clone(),
            heartbeat: Duration::from_secs(20),
            idle_timeout: IDLE_TIMEOUT,
            auth: None,
            expires: None,
        };
        (id, connection, root)
    }

    /// A connection over channels, with one known project; returns the project id.
    fn connect(
        hub: &Hub,
        shutdown: &Shutdown,
    ) -> (
        String,
        ClientTx,
        ClientRx,
        tokio::task::JoinHandle<()>,
        tempfile::TempDir,
    ) {
        let (id, connection, root) = one_project_connection(hub, shutdown);
        let (server_tx, client_rx) = mpsc::channel::<Message>(64);
        let (client_tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let task = tokio::spawn(run(connection, server_tx, server_rx));
        (id, client_tx, client_rx, task, root)
    }

    fn status(project: &str) -> ServerMessage {
        ServerMessage::StatusChanged {
            project: project.to_owned(),
            timestamp: "t".into(),
            data: StatusChange {
                status: Status::Paused,
                previous: Status::Running,
            },
        }
    }

    #[tokio::test]
    async fn bad_frames_get_errors_and_the_socket_stays_open() {
        let hub = Hub::new(8);
        let shutdown = Shutdown::default();
        let (_id, mut tx, mut rx, task, _root) = connect(&hub, &shutdown);
        let hello = next_json(&mut rx).await;
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["connection"], 7);
        assert_eq!(hello["epoch"], hub.epoch());

        for bad in [
            "{oops",
            "[]",
            r#"{"action":"fly"}"#,
            r#"{"action":"subscribe","topics":["x"]}"#,
        ] {
            say(&mut tx, bad).await;
            let reply = next_json(&mut rx).await;
            assert_eq!(reply["type"], "error", "{bad}");
            assert_eq!(reply["code"], 4400);
        }
        say(&mut tx, r#"{"action":"subscribe","projects":["nope"]}"#).await;
        assert_eq!(next_json(&mut rx).await["type"], "subscribed");
        assert_eq!(next_json(&mut rx).await["code"], 4404);

        say(&mut tx, r#"{"type":"ping"}"#).await;
        assert_eq!(next_json(&mut rx).await["type"], "pong");

        shutdown.trigger();
        let close = tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .expect("close within 5 s");
        match close {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("task ends")
            .expect("task did not panic");
    }

    #[tokio::test]
    async fn events_reach_only_subscribers_and_lag_means_resync() {
        let hub = Hub::new(2);
        let shutdown = Shutdown::default();
        let (id, mut tx, mut rx, _task, _root) = connect(&hub, &shutdown);
        assert_eq!(next_json(&mut rx).await["type"], "hello");
        say(
            &mut tx,
            &format!(r#"{{"action":"subscribe","topics":["project:{id}"]}}"#),
        )
        .await;
        let ack = next_json(&mut rx).await;
        assert_eq!(ack["type"], "subscribed");
        assert_eq!(ack["topics"][0], format!("project:{id}"));
        assert_eq!(ack["cursors"][format!("project:{id}")]["seq"], 0);

        hub.publish(&status("someone-else"));
        hub.publish(&status(&id));
        let event = next_json(&mut rx).await;
        assert_eq!(event["type"], "status_changed");
        assert_eq!(event["project"], id.as_str());
        assert_eq!(event["seq"], 1);

        // Overflow the 2-slot channel before the connection can read: it must be told to resync.
        for _ in 0..5 {
            hub.publish(&status(&id));
        }
        let mut saw_resync = false;
        for _ in 0..4 {
            if next_json(&mut rx).await["type"] == "resync" {
                saw_resync = true;
                break;
            }
        }
        assert!(saw_resync, "a lagging connection gets resync");
    }

    #[tokio::test]
    async fn a_resuming_client_gets_exactly_what_it_missed() {
        let hub = Hub::new(64);
        let shutdown = Shutdown::default();
        let (id, mut tx, mut rx, _task, _root) = connect(&hub, &shutdown);
        assert_eq!(next_json(&mut rx).await["type"], "hello");
        for _ in 0..3 {
            hub.publish(&status(&id));
        }
        let epoch = hub.epoch();
        say(
            &mut tx,
            &format!(r#"{{"action":"subscribe","topics":["project:{id}"],"since":{{"project:{id}":{{"epoch":{epoch},"seq":1}}}}}}"#),
        )
        .await;
        let ack = next_json(&mut rx).await;
        assert_eq!(ack["cursors"][format!("project:{id}")]["seq"], 3);
        let replayed: Vec<u64> = vec![
            next_json(&mut rx).await["seq"].as_u64().unwrap_or(0),
            next_json(&mut rx).await["seq"].as_u64().unwrap_or(0),
        ];
        assert_eq!(replayed, [2, 3]);
        hub.publish(&status(&id));
        // Events 2 and 3 also sat in the channel: they must not arrive twice.
        assert_eq!(next_json(&mut rx).await["seq"], 4);

        // A cursor from another epoch cannot be served.
        say(
            &mut tx,
            &format!(r#"{{"action":"subscribe","topics":["project:{id}"],"since":{{"project:{id}":{{"epoch":1,"seq":1}}}}}}"#),
        )
        .await;
        assert_eq!(next_json(&mut rx).await["type"], "subscribed");
        let resync = next_json(&mut rx).await;
        assert_eq!(resync["type"], "resync");
        assert_eq!(resync["topic"], format!("project:{id}"));
    }

    async fn next_close(rx: &mut ClientRx) -> u16 {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), rx.next())
                .await
                .expect("a frame within 5 s");
            match message {
                Some(Message::Close(Some(frame))) => return frame.code,
                Some(_) => continue,
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    #[tokio::test]
    async fn a_hub_that_closes_while_the_server_runs_is_an_internal_error() {
        let hub = Hub::new(8);
        let shutdown = Shutdown::default();
        let (_id, mut connection, _root) = one_project_connection(&hub, &shutdown);
        // The connection's own hub cannot close while it holds it; a channel from a hub that
        // is gone stands in for the impossible.
        let gone = Hub::new(8);
        connection.events = gone.subscribe();
        drop(gone);
        let (server_tx, mut rx) = mpsc::channel::<Message>(64);
        let (_tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let task = tokio::spawn(run(connection, server_tx, server_rx));
        assert_eq!(next_json(&mut rx).await["type"], "hello");
        let error = next_json(&mut rx).await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], 4500);
        assert_eq!(next_close(&mut rx).await, 4500);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("task ends")
            .expect("task did not panic");
        assert!(METRICS.internal_errors.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_with_1009() {
        let hub = Hub::new(8);
        let (_id, mut tx, mut rx, _task, _root) = connect(&hub, &Shutdown::default());
        assert_eq!(next_json(&mut rx).await["type"], "hello");
        say(&mut tx, &"x".repeat(MAX_INBOUND_BYTES + 1)).await;
        let error = next_json(&mut rx).await;
        assert_eq!(error["code"], 1009);
        assert_eq!(next_close(&mut rx).await, 1009);
    }

    #[tokio::test]
    async fn a_flooding_client_is_closed_with_1008() {
        let hub = Hub::new(8);
        let (_id, mut tx, mut rx, _task, _root) = connect(&hub, &Shutdown::default());
        assert_eq!(next_json(&mut rx).await["type"], "hello");
        for _ in 0..(RATE_BURST as usize + 5) {
            if tx
                .send(Ok(Message::Text(r#"{"action":"ping"}"#.into())))
                .await
                .is_err()
            {
                break;
            }
        }
        assert_eq!(next_close(&mut rx).await, 1008);
    }

    #[test]
    fn connections_per_address_are_capped_and_released() {
        let limits = Arc::new(ConnectionLimits::default());
        let address: IpAddr = "192.0.2.7".parse().expect("ip");
        let slots: Vec<Slot> = (0..MAX_CONNECTIONS_PER_ADDRESS)
            .filter_map(|_| limits.acquire(address))
            .collect();
        assert_eq!(slots.len(), MAX_CONNECTIONS_PER_ADDRESS);
        assert!(limits.acquire(address).is_none(), "one more is refused");
        assert!(
            limits.acquire("192.0.2.8".parse().expect("ip")).is_some(),
            "others unaffected"
        );
        drop(slots);
        assert!(limits.acquire(address).is_some(), "closing frees the place");
    }

    /// A sink that counts flushes, to see how many writes a burst costs.
    struct CountingSink {
        inner: mpsc::Sender<Message>,
        flushes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Sink<Message> for CountingSink {
        type Error = mpsc::SendError;

        fn poll_ready(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::pin::Pin::new(&mut self.inner).poll_ready(cx)
        }

        fn start_send(
            mut self: std::pin::Pin<&mut Self>,
            item: Message,
        ) -> Result<(), Self::Error> {
            std::pin::Pin::new(&mut self.inner).start_send(item)
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_close(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::pin::Pin::new(&mut self.inner).poll_close(cx)
        }
    }

    #[tokio::test]
    async fn a_burst_of_events_goes_out_in_one_flush() {
        let hub = Hub::new(64);
        let (id, connection, _root) = one_project_connection(&hub, &Shutdown::default());
        let flushes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (server_tx, mut rx) = mpsc::channel::<Message>(64);
        let sink = CountingSink {
            inner: server_tx,
            flushes: flushes.clone(),
        };
        let (mut tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let _task = tokio::spawn(run(connection, sink, server_rx));
        assert_eq!(next_json(&mut rx).await["type"], "hello");
        say(
            &mut tx,
            &format!(r#"{{"action":"subscribe","topics":["project:{id}"]}}"#),
        )
        .await;
        assert_eq!(next_json(&mut rx).await["type"], "subscribed");

        let before = flushes.load(Ordering::Relaxed);
        // Published while the connection task cannot run (one thread, no await in between).
        for _ in 0..10 {
            hub.publish(&status(&id));
        }
        for seq in 1..=10 {
            assert_eq!(next_json(&mut rx).await["seq"], seq);
        }
        assert_eq!(
            flushes.load(Ordering::Relaxed) - before,
            1,
            "ten events, one flush"
        );
    }
}
