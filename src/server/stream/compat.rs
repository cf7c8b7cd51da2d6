//! The compatible streaming endpoints other dashboards speak, as thin views of the same hub: `/ws/instances` (projects as
//! instances), `/ws/instances/{id}/logs` (a log tail) and `/ws/messages` (notification
//! transitions, metadata only). Each sends a snapshot first, then deltas; a client that falls
//! behind gets a fresh snapshot instead of stale deltas.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Path, Query, State, WebSocketUpgrade},
    response::Response,
    Extension,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::model::{
    protocol::{
        ServerMessage, CODE_BAD_REQUEST, CODE_UNKNOWN_PROJECT, DEFAULT_BACKLOG, MAX_BACKLOG,
    },
    Topic,
};
use crate::server::{
    auth::Claims,
    hub::Frame,
    index::Index,
    stream::connection::{self, Connection, Endpoint, Internal, Out, Refusal, Reply},
    AppState,
};

/// Lines of one backlog frame, JSON-encoded: room is left for the envelope within the bound.
const MAX_BACKLOG_TEXT_BYTES: usize = connection::MAX_REPLY_FRAME_BYTES - 1024;

/// Which view a socket serves.
#[derive(Debug)]
enum View {
    Instances {
        include_archived: bool,
    },
    Logs {
        project: String,
        /// Lines sent first.
        backlog: u32,
    },
    Messages {
        instance: Option<String>,
        correlation: Option<String>,
    },
}

pub async fn instances(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    claims: Option<Extension<Claims>>,
    State(state): State<AppState>,
) -> Response {
    let view = View::Instances {
        include_archived: false,
    };
    upgrade(ws, peer, claims, &state, view)
}

#[derive(Deserialize)]
pub struct LogQuery {
    backlog: Option<u32>,
}

pub async fn logs(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    claims: Option<Extension<Claims>>,
    Path(project): Path<String>,
    Query(query): Query<LogQuery>,
    State(state): State<AppState>,
) -> Response {
    let backlog = query.backlog.unwrap_or(DEFAULT_BACKLOG).min(MAX_BACKLOG);
    upgrade(ws, peer, claims, &state, View::Logs { project, backlog })
}

#[derive(Deserialize)]
pub struct MessageQuery {
    instance: Option<String>,
    correlation_id: Option<String>,
}

pub async fn messages(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    claims: Option<Extension<Claims>>,
    Query(query): Query<MessageQuery>,
    State(state): State<AppState>,
) -> Response {
    let view = View::Messages {
        instance: query.instance,
        correlation: query.correlation_id,
    };
    upgrade(ws, peer, claims, &state, view)
}

fn upgrade(
    ws: WebSocketUpgrade,
    peer: SocketAddr,
    claims: Option<Extension<Claims>>,
    state: &AppState,
    view: View,
) -> Response {
    let claims = claims.map(|Extension(claims)| claims);
    connection::upgrade(ws, peer, claims.as_ref(), state, view)
}

/// Each view is an endpoint of the shared connection loop: it only maps hub events to its own
/// frames.
impl Endpoint for View {
    fn open(&mut self, connection: &Connection) -> Result<Vec<Out>, Refusal> {
        let first = match self {
            View::Logs { project, backlog } => {
                if !connection.index.contains(project) {
                    return Err(Refusal {
                        code: CODE_UNKNOWN_PROJECT,
                        message: format!("no instance named {project:?}"),
                        reason: "unknown instance",
                    });
                }
                let text = connection
                    .index
                    .log_backlog(project, *backlog)
                    .map(|(text, _)| text)
                    .unwrap_or_default();
                // The newest lines that fit one bounded frame (quotes and a comma per line).
                let kept = connection::tail_within(&text, MAX_BACKLOG_TEXT_BYTES, 3);
                let mut frame = lines_frame("backlog", kept);
                if kept.len() < text.len() {
                    frame["truncated"] = json!(true);
                }
                frame
            }
            _ => snapshot(&connection.index, self),
        };
        Ok(vec![Out::Json(first)])
    }

    fn on_text(&mut self, connection: &Connection, text: &str) -> Reply {
        client_message(&connection.index, self, text)
    }

    fn on_event(
        &mut self,
        _connection: &Connection,
        frame: &Arc<Frame>,
    ) -> Result<Option<Out>, Internal> {
        Ok(delta(self, frame)?.map(Out::Json))
    }

    /// Too far behind to catch up: start over from a fresh snapshot.
    fn on_lagged(&mut self, connection: &Connection, _missed: u64) -> Vec<Out> {
        let frame = match self {
            View::Logs { .. } => json!({"type": "rotated", "reason": "fell behind"}),
            _ => snapshot(&connection.index, self),
        };
        vec![Out::Json(frame)]
    }
}

fn client_message(index: &Index, view: &mut View, text: &str) -> Reply {
    let bad = |message: &str| Reply::Send(vec![Out::error(CODE_BAD_REQUEST, message)]);
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return bad("frame is not valid JSON");
    };
    let kind = value
        .get("type")
        .or_else(|| value.get("action"))
        .and_then(Value::as_str);
    match (kind, view) {
        (Some("ping"), _) => Reply::Send(vec![Out::Json(json!({"type": "pong"}))]),
        // The same re-authentication as on /api/ws, so a view outlives its first session too.
        (Some("auth"), _) => match value.get("token").and_then(Value::as_str) {
            Some(token) => Reply::Reauthenticate(token.to_owned()),
            None => bad("\"token\" must be a string"),
        },
        (Some("set_include_archived"), View::Instances { include_archived }) => {
            let Some(flag) = value.get("value").and_then(Value::as_bool) else {
                return bad("\"value\" must be true or false");
            };
            *include_archived = flag;
            let view = View::Instances {
                include_archived: flag,
            };
            Reply::Send(vec![Out::Json(snapshot(index, &view))])
        }
        _ => bad("unknown message"),
    }
}

fn snapshot(index: &Index, view: &View) -> Value {
    match view {
        View::Instances { include_archived } => {
            let instances: Vec<Value> = index
                .summaries()
                .into_iter()
                .filter(|p| *include_archived || !p.is_archived())
                .map(|p| json!({"name": p.id, "display_name": p.name, "status": p.status, "pid": null, "archived_at": p.archived_at}))
                .collect();
            json!({"type": "snapshot", "instances": instances, "include_archived": include_archived})
        }
        View::Messages {
            instance,
            correlation,
        } => {
            let recent: Vec<Value> = index
                .recent_notifications()
                .into_iter()
                .filter(|(project, note)| wanted(instance, correlation, project, &note.id))
                .map(|(project, note)| message_event(&project, &note, note.timestamp.as_deref()))
                .collect();
            json!({"type": "snapshot", "recent_events": recent})
        }
        View::Logs { .. } => json!({"type": "backlog", "lines": [], "count": 0}),
    }
}

fn wanted(
    instance: &Option<String>,
    correlation: &Option<String>,
    project: &str,
    id: &str,
) -> bool {
    instance.as_deref().is_none_or(|i| i == project)
        && correlation.as_deref().is_none_or(|c| c == id)
}

/// Metadata only: the notification's text is the payload and stays out of the stream.
fn message_event(
    project: &str,
    note: &crate::contract::ralph::notification::Notification,
    timestamp: Option<&str>,
) -> Value {
    json!({
        "type": "message_event",
        "message_id": note.id,
        "event": "raised",
        "from": project,
        "to": null,
        "message_type": note.kind.prefix(),
        "detail": null,
        "timestamp": timestamp,
    })
}

fn lines_frame(kind: &str, text: &str) -> Value {
    let lines: Vec<&str> = text.lines().collect();
    json!({"type": kind, "count": lines.len(), "lines": lines})
}

/// The view's frame for one hub event, if it has one. Every hub frame is a [`ServerMessage`]
/// the hub encoded itself, so one that does not decode is an internal failure.
fn delta(view: &View, frame: &Arc<Frame>) -> Result<Option<Value>, Internal> {
    delta_of(view, frame).map_err(Internal::Decode)
}

fn delta_of(view: &View, frame: &Arc<Frame>) -> Result<Option<Value>, serde_json::Error> {
    let relevant = match (view, &frame.topic) {
        (View::Instances { .. }, Topic::Projects | Topic::Project(_)) => true,
        (View::Logs { project, .. }, Topic::Log(id)) => id == project,
        (View::Messages { .. }, Topic::Project(_)) => true,
        _ => false,
    };
    if !relevant {
        return Ok(None);
    }
    // Archived instances stay out of the deltas unless asked for (the archive transitions
    // themselves are never marked archived, so they always arrive).
    if matches!(
        view,
        View::Instances {
            include_archived: false
        }
    ) && frame.archived
    {
        return Ok(None);
    }
    let message: ServerMessage = serde_json::from_str(frame.text.as_str())?;
    Ok(match (view, message) {
        (
            View::Instances { .. },
            ServerMessage::StatusChanged {
                project,
                timestamp,
                data,
            },
        ) => Some(
            json!({"type": "status_changed", "name": project, "status": data.status, "pid": null, "timestamp": timestamp}),
        ),
        (
            View::Instances { .. },
            ServerMessage::ProjectAdded {
                project,
                timestamp,
                data,
            },
        ) => Some(
            json!({"type": "instance_created", "name": project, "display_name": data.name, "status": data.status, "port": null, "timestamp": timestamp}),
        ),
        (View::Instances { .. }, ServerMessage::ProjectRemoved { project, timestamp }) => {
            Some(json!({"type": "instance_removed", "name": project, "timestamp": timestamp}))
        }
        // Published on `projects` and on `project:ID`: one delta, from the `projects` copy.
        (
            View::Instances { .. },
            ServerMessage::ProjectArchived {
                project,
                timestamp,
                data,
            },
        ) if frame.topic == Topic::Projects => {
            let kind = if data.archived {
                "instance_archived"
            } else {
                "instance_unarchived"
            };
            Some(json!({
                "type": kind,
                "name": project,
                "display_name": data.summary.name,
                "status": data.summary.status,
                "archived_at": data.summary.archived_at,
                "timestamp": timestamp,
            }))
        }
        (View::Logs { .. }, ServerMessage::LogAppend { data, .. }) => {
            Some(lines_frame("lines", &data.lines))
        }
        (View::Logs { .. }, ServerMessage::LogRotated { .. }) => Some(json!({"type": "rotated"})),
        (
            View::Messages {
                instance,
                correlation,
            },
            ServerMessage::Notification {
                project,
                timestamp,
                data,
            },
        ) => wanted(instance, correlation, &project, &data.id)
            .then(|| message_event(&project, &data, Some(&timestamp))),
        _ => None,
    })
}

/// Notifications seen so far, per project, keyed for the snapshot.

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{Cursor, Topic},
        server::{hub::Hub, Keepalive, Shutdown},
    };
    use axum::extract::ws::Message;
    use futures::{channel::mpsc, StreamExt};
    use std::{convert::Infallible, time::Duration};
    use tokio::sync::broadcast;

    type ClientRx = mpsc::Receiver<Message>;
    type ClientTx = mpsc::Sender<Result<Message, Infallible>>;
    type ViewChannels = (
        broadcast::Sender<Arc<Frame>>,
        ClientTx,
        ClientRx,
        tokio::task::JoinHandle<()>,
    );

    /// An instances view over channels, fed by a hub channel the test controls.
    fn instances_view(shutdown: &Shutdown) -> ViewChannels {
        instances_view_with(shutdown, None)
    }

    /// The same, with a session that ends at `expires` (unix seconds).
    fn instances_view_with(shutdown: &Shutdown, expires: Option<u64>) -> ViewChannels {
        let (events_tx, events) = broadcast::channel(8);
        let hub = Hub::new(8);
        let keepalive = Keepalive::default();
        let connection = Connection {
            id: 9,
            index: Arc::new(Index::new(hub.clone())),
            hub,
            events,
            shutdown: shutdown.clone(),
            heartbeat: keepalive.heartbeat,
            idle_timeout: keepalive.idle_timeout,
            write_stall: keepalive.write_stall,
            auth: None,
            expires,
            claims: None,
        };
        let (server_tx, client_rx) = mpsc::channel::<Message>(16);
        let (client_tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let view = View::Instances {
            include_archived: false,
        };
        let task = tokio::spawn(connection::run(connection, view, server_tx, server_rx));
        (events_tx, client_tx, client_rx, task)
    }

    async fn next(rx: &mut ClientRx) -> Message {
        tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
    }

    async fn next_json(rx: &mut ClientRx) -> Value {
        match next(rx).await {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    async fn close_code(rx: &mut ClientRx) -> Option<u16> {
        match next(rx).await {
            Message::Close(frame) => frame.map(|f| f.code),
            other => panic!("expected close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn views_share_the_loops_expiry_and_size_limit() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (events, _client, mut rx, _task) = instances_view_with(&Shutdown::default(), Some(now));
        assert_eq!(next_json(&mut rx).await["type"], "snapshot");
        assert_eq!(next_json(&mut rx).await["code"], 4401);
        assert_eq!(close_code(&mut rx).await, Some(4401));
        drop(events);

        let (_events, mut client, mut rx, _task) = instances_view(&Shutdown::default());
        assert_eq!(next_json(&mut rx).await["type"], "snapshot");
        let big = "x".repeat(connection::MAX_INBOUND_BYTES + 1);
        futures::SinkExt::send(&mut client, Ok(Message::Text(big.into())))
            .await
            .expect("send");
        assert_eq!(next_json(&mut rx).await["code"], 1009);
        assert_eq!(close_code(&mut rx).await, Some(1009));
    }

    #[tokio::test]
    async fn an_unreadable_hub_frame_closes_with_4500() {
        let shutdown = Shutdown::default();
        let (events, _client, mut rx, task) = instances_view(&shutdown);
        assert_eq!(next_json(&mut rx).await["type"], "snapshot");
        let _ = events.send(Arc::new(Frame {
            topic: Topic::Projects,
            cursor: Cursor::default(),
            text: "not an event".into(),
            archived: false,
        }));
        let error = next_json(&mut rx).await;
        assert_eq!(error["code"], 4500, "{error}");
        assert_eq!(close_code(&mut rx).await, Some(4500));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("task ends")
            .expect("task did not panic");
    }

    #[tokio::test]
    async fn a_closed_hub_is_4500_unless_the_server_is_stopping() {
        let shutdown = Shutdown::default();
        let (events, _client, mut rx, _task) = instances_view(&shutdown);
        assert_eq!(next_json(&mut rx).await["type"], "snapshot");
        drop(events);
        assert_eq!(next_json(&mut rx).await["code"], 4500);
        assert_eq!(close_code(&mut rx).await, Some(4500));

        let stopping = Shutdown::default();
        let (events, _client, mut rx, _task) = instances_view(&stopping);
        assert_eq!(next_json(&mut rx).await["type"], "snapshot");
        stopping.trigger();
        drop(events);
        assert_eq!(close_code(&mut rx).await, Some(1001));
    }
}
