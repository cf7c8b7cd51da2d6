//! `/api/ws`: the live protocol (subscribe to topics, resume with cursors, replay or resync) as
//! an [`Endpoint`] of the shared connection loop ([`super::connection`]), which owns the limits,
//! keepalive, expiry, shutdown and failure handling. Also spoken here: the channel form of
//! subscribe (`{"type":"subscribe","channel":"project:ID"}`, acknowledged per channel), and
//! `hello` carries the `clientId` that form's clients expect. A topic outside the session's
//! rights is refused with an error frame (4403), whatever form asked for it.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use axum::response::Response;

use crate::model::{
    protocol::{
        ClientMessage, LogLines, ProtocolError, ServerMessage, CODE_BAD_REQUEST, CODE_FORBIDDEN,
        CODE_UNKNOWN_PROJECT, DEFAULT_BACKLOG,
    },
    Cursor, Topic,
};
use crate::server::{
    hub::{ArchivedProjects, Frame, Replay},
    metrics::{self, METRICS},
    stream::{
        connection::{self, Endpoint, Internal, Out, Refusal, Reply, SocketContext, SocketRequest},
        limits,
    },
};

pub async fn upgrade(socket: SocketRequest) -> Response {
    socket.serve(Live::default())
}

/// What the client asked for on one `/api/ws` connection.
#[derive(Debug, Default)]
pub struct Live {
    /// Subscribed topics and the cursor of the last event this client has of each.
    delivered: HashMap<Topic, Cursor>,
    /// Whether events of archived projects on `projects` reach the client (hidden by default:
    /// the dashboard hides archived projects unless asked).
    archived: ArchivedProjects,
    /// Log backlog bytes sent so far (bounded by [`MAX_CONNECTION_BACKLOG_BYTES`]).
    backlog_sent: usize,
}

/// Log backlog text one subscribe may pull, all its `log:` topics together...
pub const MAX_SUBSCRIBE_BACKLOG_BYTES: usize = 1024 * 1024;
/// ...and one connection over its life (a client that wants more reads the log over HTTP).
pub const MAX_CONNECTION_BACKLOG_BYTES: usize = 8 * 1024 * 1024;
/// Backlog text of one `log_backlog` frame: the newest lines that fit, leaving room for the
/// envelope and the escapes within [`connection::MAX_REPLY_FRAME_BYTES`].
const MAX_BACKLOG_TEXT_BYTES: usize = connection::MAX_REPLY_FRAME_BYTES - 1024;
/// Distinct topics one connection may be subscribed to.
pub const MAX_TOPICS: usize = 1024;
/// Error code when a backlog is cut short or left out because of the limits above.
pub const CODE_BACKLOG_LIMIT: u16 = 4413;

impl Drop for Live {
    fn drop(&mut self) {
        metrics::adjust(&METRICS.subscriptions, -(self.delivered.len() as i64));
    }
}

impl Endpoint for Live {
    fn open(&mut self, socket: &SocketContext) -> Result<Vec<Out>, Refusal> {
        let hello = ServerMessage::Hello {
            connection: socket.id,
            epoch: socket.hub.epoch(),
            heartbeat_seconds: socket.heartbeat.as_secs() as u32,
        };
        let mut frame = serde_json::to_value(&hello).map_err(|error| Refusal {
            code: crate::model::protocol::CODE_INTERNAL,
            message: format!("cannot encode hello: {error}"),
            reason: "internal error",
        })?;
        // The channel clients' `connected {clientId}`, carried by `hello`.
        frame["clientId"] = serde_json::Value::String(socket.id.to_string());
        Ok(vec![Out::Json(frame)])
    }

    fn on_text(&mut self, socket: &SocketContext, text: &str) -> Reply {
        match ClientMessage::parse(text) {
            Ok(ClientMessage::Auth { token }) => Reply::Reauthenticate(token),
            other => Reply::Send(self.handle(socket, other)),
        }
    }

    fn on_event(
        &mut self,
        _socket: &SocketContext,
        frame: &Arc<Frame>,
    ) -> Result<Option<Out>, Internal> {
        let Some(cursor) = self.delivered.get_mut(&frame.topic) else {
            return Ok(None);
        };
        // Skipped when already replayed or older than the cursor.
        if frame.cursor <= *cursor {
            return Ok(None);
        }
        // A hidden frame still moves the cursor: it is not owed later.
        *cursor = frame.cursor;
        Ok(frame
            .visible(self.archived)
            .then(|| Out::Frame(frame.clone())))
    }

    fn on_lagged(&mut self, _socket: &SocketContext, missed: u64) -> Vec<Out> {
        metrics::count(&METRICS.resyncs);
        vec![Out::message(ServerMessage::Resync {
            topic: None,
            reason: format!("fell behind by {missed} events"),
        })]
    }
}

impl Live {
    /// The replies to one client frame. Bad frames get an error frame; the socket stays open.
    fn handle(
        &mut self,
        socket: &SocketContext,
        parsed: Result<ClientMessage, ProtocolError>,
    ) -> Vec<Out> {
        match parsed {
            Ok(ClientMessage::SetIncludeArchived { value }) => {
                self.archived = ArchivedProjects::included(value);
                vec![Out::message(ServerMessage::IncludeArchived { value })]
            }
            // Answered by the connection loop, which owns the session's expiry.
            Ok(ClientMessage::Auth { .. }) => Vec::new(),
            Ok(ClientMessage::Ping) => vec![Out::message(ServerMessage::Pong)],
            Ok(ClientMessage::Subscribe {
                topics,
                since,
                backlog,
            }) => self.subscribe(socket, topics, &since, backlog),
            Ok(ClientMessage::Unsubscribe { topics }) => {
                self.unsubscribe(&topics);
                vec![Out::message(ServerMessage::Unsubscribed { topics })]
            }
            Ok(ClientMessage::Join { channel, topics }) => {
                let replies = self.subscribe(socket, topics, &BTreeMap::new(), DEFAULT_BACKLOG);
                // The acknowledgement names the channel; one that got no topic (refused) has
                // only the error frame.
                replies
                    .into_iter()
                    .filter_map(|out| match out {
                        Out::Message(message) => match *message {
                            ServerMessage::Subscribed { topics, .. } if topics.is_empty() => None,
                            ServerMessage::Subscribed { topics, cursors } => Some(Out::Json(
                                serde_json::json!({"type": "subscribed", "channel": channel, "topics": topics, "cursors": cursors}),
                            )),
                            other => Some(Out::message(other)),
                        },
                        other => Some(other),
                    })
                    .collect()
            }
            Ok(ClientMessage::Leave { channel, topics }) => {
                self.unsubscribe(&topics);
                vec![Out::Json(
                    serde_json::json!({"type": "unsubscribed", "channel": channel, "topics": topics}),
                )]
            }
            Err(error) => vec![Out::message(ServerMessage::error(
                CODE_BAD_REQUEST,
                error.to_string(),
            ))],
        }
    }

    fn unsubscribe(&mut self, topics: &[Topic]) {
        for topic in topics {
            if self.delivered.remove(topic).is_some() {
                metrics::adjust(&METRICS.subscriptions, -1);
            }
        }
    }

    fn subscribe(
        &mut self,
        socket: &SocketContext,
        topics: Vec<Topic>,
        since: &BTreeMap<Topic, Cursor>,
        backlog: u32,
    ) -> Vec<Out> {
        let mut out = Vec::new();
        let mut accepted = Vec::new();
        let mut cursors = BTreeMap::new();
        let mut unknown = Vec::new();
        let mut forbidden = Vec::new();
        let mut refused = 0usize;
        let mut without_backlog = Vec::new();
        let mut replayed = Vec::new();
        // What this subscribe may still pull from the logs: its own share, within what the
        // connection has left.
        let mut budget = MAX_SUBSCRIBE_BACKLOG_BYTES.min(self.backlog_left());
        let mut seen = HashSet::new();
        for topic in topics {
            // A topic named twice is served once (a subscribe naming one log 200 times would
            // otherwise pull its backlog 200 times).
            if !seen.insert(topic.clone()) {
                continue;
            }
            if let Some(id) = topic.project() {
                // Before the existence check: a viewer learns nothing of other projects.
                if !socket.access.may_see(id) {
                    forbidden.push(topic.to_string());
                    continue;
                }
                if !socket.index.contains(id) {
                    unknown.push(topic.to_string());
                    continue;
                }
            }
            if !self.delivered.contains_key(&topic) && self.delivered.len() >= MAX_TOPICS {
                refused += 1;
                continue;
            }
            let (now, frames) = match since.get(&topic) {
                Some(cursor) => match socket.hub.replay(&topic, *cursor) {
                    (Replay::Frames(frames), now) => (now, frames),
                    (Replay::Resync, now) => {
                        metrics::count(&METRICS.resyncs);
                        out.push(Out::message(ServerMessage::Resync {
                            topic: Some(topic.clone()),
                            reason: "the cursor is unknown or too old".into(),
                        }));
                        (now, Vec::new())
                    }
                },
                None => match (&topic, backlog) {
                    (Topic::Log(id), lines) if lines > 0 && budget == 0 => {
                        without_backlog.push(id.clone());
                        (socket.hub.cursor(&topic), Vec::new())
                    }
                    (Topic::Log(id), lines) if lines > 0 => {
                        match socket.index.log_backlog(id, lines) {
                            Some((text, cursor)) => {
                                let room = budget.min(MAX_BACKLOG_TEXT_BYTES);
                                let kept = limits::tail_within(&text, room, 0);
                                budget = budget.saturating_sub(kept.len());
                                self.backlog_sent = self.backlog_sent.saturating_add(kept.len());
                                if kept.len() < text.len() {
                                    without_backlog.push(id.clone());
                                }
                                out.push(Out::message(ServerMessage::LogBacklog {
                                    project: id.clone(),
                                    data: LogLines {
                                        lines: kept.to_owned(),
                                    },
                                }));
                                (cursor, Vec::new())
                            }
                            None => (socket.hub.cursor(&topic), Vec::new()),
                        }
                    }
                    _ => (socket.hub.cursor(&topic), Vec::new()),
                },
            };
            if self.delivered.insert(topic.clone(), now).is_none() {
                metrics::adjust(&METRICS.subscriptions, 1);
            }
            cursors.insert(topic.clone(), now);
            accepted.push(topic);
            replayed.extend(frames);
        }
        let mut replies = subscribed_frames(accepted, cursors);
        if !forbidden.is_empty() {
            replies.push(Out::message(ServerMessage::error(
                CODE_FORBIDDEN,
                format!("not allowed for this session: {}", listed(&forbidden)),
            )));
        }
        if !unknown.is_empty() {
            replies.push(Out::message(ServerMessage::error(
                CODE_UNKNOWN_PROJECT,
                format!("unknown project(s): {}", listed(&unknown)),
            )));
        }
        if refused > 0 {
            replies.push(Out::message(ServerMessage::error(
                CODE_BAD_REQUEST,
                format!(
                    "{refused} topic(s) not subscribed: a connection holds at most {MAX_TOPICS}"
                ),
            )));
        }
        if !without_backlog.is_empty() {
            replies.push(Out::message(ServerMessage::error(
                CODE_BACKLOG_LIMIT,
                format!(
                    "log backlog limited ({} KiB per frame, {} KiB per subscribe, {} KiB per \
                     connection): cut or left out for {}; the whole log is served by /api/log",
                    MAX_BACKLOG_TEXT_BYTES / 1024,
                    MAX_SUBSCRIBE_BACKLOG_BYTES / 1024,
                    MAX_CONNECTION_BACKLOG_BYTES / 1024,
                    listed(&without_backlog)
                ),
            )));
        }
        replies.extend(out);
        let archived = self.archived;
        replies.extend(
            replayed
                .into_iter()
                .filter(|frame| frame.visible(archived) && socket.shows(frame))
                .map(Out::Frame),
        );
        replies
    }

    /// Backlog bytes this connection may still be sent.
    fn backlog_left(&self) -> usize {
        MAX_CONNECTION_BACKLOG_BYTES.saturating_sub(self.backlog_sent)
    }
}

/// The `subscribed` acknowledgement, in as many frames as keep each under the frame bound (the
/// client merges their cursors).
fn subscribed_frames(topics: Vec<Topic>, mut cursors: BTreeMap<Topic, Cursor>) -> Vec<Out> {
    // A topic costs its name twice (in the list and as a key) plus a cursor's few numbers.
    const CURSOR_BYTES: usize = 80;
    let frame = |topics: Vec<Topic>, cursors: BTreeMap<Topic, Cursor>| {
        Out::message(ServerMessage::Subscribed { topics, cursors })
    };
    let mut frames = Vec::new();
    let (mut chunk, mut chunk_cursors, mut size) = (Vec::new(), BTreeMap::new(), 0usize);
    for topic in topics {
        let cost = 2 * (topic.to_string().len() + 4) + CURSOR_BYTES;
        if !chunk.is_empty() && size + cost > connection::MAX_REPLY_FRAME_BYTES / 2 {
            frames.push(frame(
                std::mem::take(&mut chunk),
                std::mem::take(&mut chunk_cursors),
            ));
            size = 0;
        }
        if let Some(cursor) = cursors.remove(&topic) {
            chunk_cursors.insert(topic.clone(), cursor);
        }
        chunk.push(topic);
        size += cost;
    }
    if frames.is_empty() || !chunk.is_empty() {
        frames.push(frame(chunk, chunk_cursors));
    }
    frames
}

/// The first few names of a list, and how many more there are.
fn listed(names: &[String]) -> String {
    const SHOWN: usize = 20;
    let shown = names
        .iter()
        .take(SHOWN)
        .map(|name| name.chars().take(210).collect::<String>())
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{protocol::StatusChange, Status};
    use crate::server::{
        hub::Hub,
        index::Index,
        stream::connection::MAX_INBOUND_BYTES,
        stream::limits::RATE_BURST,
        stream::testing::{self, next_close, next_json, ClientRx, ClientTx},
        Shutdown,
    };
    use axum::extract::ws::Message;
    use futures::{channel::mpsc, Sink, SinkExt};
    use std::{convert::Infallible, sync::atomic::Ordering};

    async fn say(tx: &mut ClientTx, text: &str) {
        tx.send(Ok(Message::Text(text.into()))).await.expect("send");
    }

    /// A socket knowing one project (in a temporary directory kept alive by the caller).
    fn one_project_socket(
        hub: &Hub,
        shutdown: &Shutdown,
    ) -> (String, SocketContext, tempfile::TempDir) {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("p");
        std::fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        let index = Arc::new(Index::new(hub.clone()));
        let id = index
            .add(dir.canonicalize().expect("canonical"))
            .expect("a new project");
        (id, testing::context(index, hub, shutdown), root)
    }

    /// A `/api/ws` socket over channels, with one known project, past its `hello`; returns the
    /// project id.
    async fn connect(
        hub: &Hub,
        shutdown: &Shutdown,
    ) -> (
        String,
        ClientTx,
        ClientRx,
        tokio::task::JoinHandle<()>,
        tempfile::TempDir,
    ) {
        let (id, socket, root) = one_project_socket(hub, shutdown);
        let (client_tx, mut client_rx, task) = testing::serve(socket, Live::default());
        let hello = next_json(&mut client_rx).await;
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["connection"], 7);
        assert_eq!(hello["epoch"], hub.epoch());
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

    #[test]
    fn a_long_subscribed_list_is_split_into_bounded_frames() {
        let topics: Vec<Topic> = (0..5000)
            .map(|n| Topic::Log(format!("{n:0>150}")))
            .collect();
        let cursors: BTreeMap<Topic, Cursor> = topics
            .iter()
            .map(|t| (t.clone(), Cursor { epoch: 1, seq: 2 }))
            .collect();
        let frames = subscribed_frames(topics, cursors);
        assert!(frames.len() > 1);
        let mut seen = 0;
        for frame in frames {
            let Out::Message(message) = frame else {
                panic!("a subscribed message");
            };
            let text = serde_json::to_string(&message).expect("encode");
            assert!(
                text.len() <= connection::MAX_REPLY_FRAME_BYTES,
                "{}",
                text.len()
            );
            let ServerMessage::Subscribed { topics, cursors } = *message else {
                panic!("subscribed");
            };
            assert_eq!(topics.len(), cursors.len(), "each topic has its cursor");
            seen += topics.len();
        }
        assert_eq!(seen, 5000);
        assert_eq!(subscribed_frames(Vec::new(), BTreeMap::new()).len(), 1);
    }

    #[tokio::test]
    async fn a_topic_named_many_times_is_served_once_and_a_close_is_echoed() {
        let hub = Hub::new(8);
        let (id, mut tx, mut rx, task, root) = connect(&hub, &Shutdown::default()).await;
        let topics: Vec<String> = (0..50).map(|_| format!("log:{id}")).collect();
        say(
            &mut tx,
            &serde_json::json!({"action": "subscribe", "topics": topics, "backlog": 10})
                .to_string(),
        )
        .await;
        let ack = next_json(&mut rx).await;
        assert_eq!(ack["type"], "subscribed");
        assert_eq!(ack["topics"].as_array().map(Vec::len), Some(1));
        say(&mut tx, r#"{"action":"ping"}"#).await;
        // One backlog (of the empty log), not fifty.
        assert_eq!(next_json(&mut rx).await["type"], "log_backlog");
        assert_eq!(next_json(&mut rx).await["type"], "pong");
        tx.send(Ok(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 4000,
            reason: "bye".into(),
        }))))
        .await
        .expect("send");
        assert_eq!(next_close(&mut rx).await, 4000, "the code is echoed");
        testing::ended(task).await;
        drop(root);
    }

    #[tokio::test]
    async fn bad_frames_get_errors_and_the_socket_stays_open() {
        let hub = Hub::new(8);
        let shutdown = Shutdown::default();
        let (_id, mut tx, mut rx, task, _root) = connect(&hub, &shutdown).await;

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
        assert_eq!(testing::close_code(&mut rx).await, Some(1001));
        testing::ended(task).await;
    }

    #[tokio::test]
    async fn events_reach_only_subscribers_and_lag_means_resync() {
        let hub = Hub::new(2);
        let shutdown = Shutdown::default();
        let (id, mut tx, mut rx, _task, _root) = connect(&hub, &shutdown).await;
        say(
            &mut tx,
            &format!(r#"{{"action":"subscribe","topics":["project:{id}"]}}"#),
        )
        .await;
        let ack = next_json(&mut rx).await;
        assert_eq!(ack["type"], "subscribed");
        assert_eq!(ack["topics"][0], format!("project:{id}"));
        assert_eq!(ack["cursors"][format!("project:{id}")]["seq"], 0);

        hub.publish(status("someone-else"));
        hub.publish(status(&id));
        let event = next_json(&mut rx).await;
        assert_eq!(event["type"], "status_changed");
        assert_eq!(event["project"], id.as_str());
        assert_eq!(event["seq"], 1);

        // Overflow the 2-slot channel before the connection can read: it must be told to resync.
        for _ in 0..5 {
            hub.publish(status(&id));
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
        let (id, mut tx, mut rx, _task, _root) = connect(&hub, &shutdown).await;
        for _ in 0..3 {
            hub.publish(status(&id));
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
        hub.publish(status(&id));
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

    #[tokio::test]
    async fn a_hub_that_closes_while_the_server_runs_is_an_internal_error() {
        let hub = Hub::new(8);
        let shutdown = Shutdown::default();
        let (_id, mut socket, _root) = one_project_socket(&hub, &shutdown);
        // The socket's own hub cannot close while it holds it; a channel from a hub that is
        // gone stands in for the impossible.
        let gone = Hub::new(8);
        socket.events = gone.subscribe();
        drop(gone);
        let (_tx, mut rx, task) = testing::serve(socket, Live::default());
        assert_eq!(next_json(&mut rx).await["type"], "hello");
        let error = next_json(&mut rx).await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], 4500);
        assert_eq!(next_close(&mut rx).await, 4500);
        testing::ended(task).await;
        assert!(METRICS.internal_errors.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_with_1009() {
        let hub = Hub::new(8);
        let (_id, mut tx, mut rx, _task, _root) = connect(&hub, &Shutdown::default()).await;
        say(&mut tx, &"x".repeat(MAX_INBOUND_BYTES + 1)).await;
        let error = next_json(&mut rx).await;
        assert_eq!(error["code"], 1009);
        assert_eq!(next_close(&mut rx).await, 1009);
    }

    #[tokio::test]
    async fn a_flooding_client_is_closed_with_1008() {
        let hub = Hub::new(8);
        let (_id, mut tx, mut rx, _task, _root) = connect(&hub, &Shutdown::default()).await;
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
        let (id, socket, _root) = one_project_socket(&hub, &Shutdown::default());
        let flushes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (server_tx, mut rx) = mpsc::channel::<Message>(64);
        let sink = CountingSink {
            inner: server_tx,
            flushes: flushes.clone(),
        };
        let (mut tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let _task = tokio::spawn(connection::run(socket, Live::default(), sink, server_rx));
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
            hub.publish(status(&id));
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
