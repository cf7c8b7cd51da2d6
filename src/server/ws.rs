//! `/api/ws`: one task per socket. The loop is generic over `Sink + Stream` so tests can drive it
//! with channels as well as with a real socket.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::{interval_at, Instant},
};

use super::{hub::Frame, index::Index, AppState, Shutdown};
use crate::model::protocol::{
    ClientMessage, ServerMessage, CODE_BAD_REQUEST, CODE_UNKNOWN_PROJECT, HEARTBEAT_SECONDS,
};

/// Largest frame a client may send.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// A client silent this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Close code for "going away" (shutdown, idle).
const CLOSE_GOING_AWAY: u16 = 1001;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .on_upgrade(move |socket: WebSocket| {
            let (sink, stream) = socket.split();
            let context = Connection {
                id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
                index: state.index.clone(),
                events: state.hub.subscribe(),
                shutdown: state.shutdown.clone(),
                heartbeat: Duration::from_secs(u64::from(HEARTBEAT_SECONDS)),
                idle_timeout: IDLE_TIMEOUT,
            };
            run(context, sink, stream)
        })
}

/// What one connection works with.
pub struct Connection {
    pub id: u64,
    pub index: Arc<Index>,
    pub events: broadcast::Receiver<Arc<Frame>>,
    pub shutdown: Shutdown,
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
}

/// Serves one connection until either side ends it.
pub async fn run<Tx, Rx, E>(mut connection: Connection, mut sink: Tx, mut stream: Rx)
where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    let hello = ServerMessage::Hello {
        connection: connection.id,
        heartbeat_seconds: connection.heartbeat.as_secs() as u32,
    };
    if send(&mut sink, &hello).await.is_err() {
        return;
    }
    let mut subscriptions: HashSet<String> = HashSet::new();
    let mut last_heard = Instant::now();
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
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { return };
                last_heard = Instant::now();
                let reply = match message {
                    Message::Text(text) => handle(&connection.index, &mut subscriptions, text.as_str()),
                    Message::Binary(_) => vec![ServerMessage::error(CODE_BAD_REQUEST, "binary frames are not supported; send JSON text")],
                    Message::Close(_) => return,
                    // Protocol pings are answered by the socket layer; pongs only prove life.
                    Message::Ping(_) | Message::Pong(_) => Vec::new(),
                };
                for message in reply {
                    if send(&mut sink, &message).await.is_err() {
                        return;
                    }
                }
            }
            event = connection.events.recv() => {
                let outcome = match event {
                    Ok(frame) => {
                        let wanted = frame.project.as_ref().is_none_or(|p| subscriptions.contains(p));
                        if wanted {
                            sink.send(Message::Text(frame.text.clone())).await.map_err(|_| ())
                        } else {
                            Ok(())
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        let resync = ServerMessage::Resync { reason: format!("missed {missed} events") };
                        send(&mut sink, &resync).await
                    }
                    Err(RecvError::Closed) => {
                        close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await;
                        return;
                    }
                };
                if outcome.is_err() {
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

/// The replies to one client frame. Bad frames get an error frame; the socket stays open.
fn handle(index: &Index, subscriptions: &mut HashSet<String>, text: &str) -> Vec<ServerMessage> {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Ping) => vec![ServerMessage::Pong],
        Ok(ClientMessage::Subscribe { projects }) => {
            let (known, unknown): (Vec<String>, Vec<String>) =
                projects.into_iter().partition(|id| index.contains(id));
            subscriptions.extend(known.iter().cloned());
            let mut replies = vec![ServerMessage::Subscribed { projects: known }];
            if !unknown.is_empty() {
                replies.push(ServerMessage::error(
                    CODE_UNKNOWN_PROJECT,
                    format!("unknown project(s): {}", unknown.join(", ")),
                ));
            }
            replies
        }
        Ok(ClientMessage::Unsubscribe { projects }) => {
            for id in &projects {
                subscriptions.remove(id);
            }
            vec![ServerMessage::Unsubscribed { projects }]
        }
        Err(error) => vec![ServerMessage::error(CODE_BAD_REQUEST, error.to_string())],
    }
}

async fn send<Tx: Sink<Message> + Unpin>(sink: &mut Tx, message: &ServerMessage) -> Result<(), ()> {
    let text = serde_json::to_string(message).map_err(|_| ())?;
    sink.send(Message::Text(text.into())).await.map_err(|_| ())
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
    use crate::server::hub::Hub;
    use futures::channel::mpsc;
    use std::convert::Infallible;

    async fn next_json(rx: &mut mpsc::Receiver<Message>) -> serde_json::Value {
        let message = tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open");
        match message {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("valid JSON"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_frames_get_errors_and_the_socket_stays_open() {
        let hub = Hub::new(8);
        let shutdown = Shutdown::default();
        let connection = Connection {
            id: 7,
            index: Arc::new(Index::default()),
            events: hub.subscribe(),
            shutdown: shutdown.clone(),
            heartbeat: Duration::from_secs(20),
            idle_timeout: IDLE_TIMEOUT,
        };
        let (server_tx, mut client_rx) = mpsc::channel::<Message>(16);
        let (mut client_tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let task = tokio::spawn(run(connection, server_tx, server_rx));

        let hello = next_json(&mut client_rx).await;
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["connection"], 7);

        for bad in ["{oops", "[]", r#"{"action":"fly"}"#] {
            client_tx
                .send(Ok(Message::Text(bad.into())))
                .await
                .expect("send");
            let reply = next_json(&mut client_rx).await;
            assert_eq!(reply["type"], "error", "{bad}");
            assert_eq!(reply["code"], 4400);
        }
        client_tx
            .send(Ok(Message::Text(
                r#"{"action":"subscribe","projects":["nope"]}"#.into(),
            )))
            .await
            .expect("send");
        assert_eq!(next_json(&mut client_rx).await["type"], "subscribed");
        let unknown = next_json(&mut client_rx).await;
        assert_eq!(unknown["code"], 4404);

        client_tx
            .send(Ok(Message::Text(r#"{"type":"ping"}"#.into())))
            .await
            .expect("send");
        assert_eq!(next_json(&mut client_rx).await["type"], "pong");

        shutdown.trigger();
        let close = tokio::time::timeout(Duration::from_secs(5), client_rx.next())
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
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("p");
        std::fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        let index = Arc::new(Index::default());
        index.add(dir.canonicalize().expect("canonical"));
        let id = index.summaries()[0].id.clone();

        let hub = Hub::new(2);
        let connection = Connection {
            id: 1,
            index,
            events: hub.subscribe(),
            shutdown: Shutdown::default(),
            heartbeat: Duration::from_secs(20),
            idle_timeout: IDLE_TIMEOUT,
        };
        let (server_tx, mut client_rx) = mpsc::channel::<Message>(64);
        let (mut client_tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let _task = tokio::spawn(run(connection, server_tx, server_rx));
        assert_eq!(next_json(&mut client_rx).await["type"], "hello");

        let status = |project: &str| ServerMessage::StatusChanged {
            project: project.to_owned(),
            timestamp: "t".into(),
            data: crate::model::protocol::StatusChange {
                status: crate::model::Status::Paused,
                previous: crate::model::Status::Running,
            },
        };
        let sub = format!(r#"{{"action":"subscribe","projects":["{id}"]}}"#);
        client_tx
            .send(Ok(Message::Text(sub.into())))
            .await
            .expect("send");
        assert_eq!(next_json(&mut client_rx).await["type"], "subscribed");

        hub.publish(&status("someone-else"));
        hub.publish(&status(&id));
        let event = next_json(&mut client_rx).await;
        assert_eq!(event["type"], "status_changed");
        assert_eq!(event["project"], id.as_str());

        // Overflow the 2-slot ring before the connection can read: it must be told to resync.
        for _ in 0..5 {
            hub.publish(&status(&id));
        }
        let mut saw_resync = false;
        for _ in 0..4 {
            if next_json(&mut client_rx).await["type"] == "resync" {
                saw_resync = true;
                break;
            }
        }
        assert!(saw_resync, "a lagging connection gets resync");
    }
}
