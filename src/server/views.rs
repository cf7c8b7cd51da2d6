//! The seed-002 streaming endpoints, as thin views of the same hub: `/ws/instances` (projects as
//! instances), `/ws/instances/{id}/logs` (a log tail) and `/ws/messages` (notification
//! transitions, metadata only). Each sends a snapshot first, then deltas; a client that falls
//! behind gets a fresh snapshot instead of stale deltas.

use std::sync::Arc;

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocketUpgrade},
        Path, Query, State,
    },
    response::Response,
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::{interval_at, Instant},
};

use super::{
    hub::Frame,
    index::Index,
    ws::{fail, next_connection_id, Internal},
    AppState, Keepalive, Shutdown,
};
use crate::model::{
    protocol::{ServerMessage, DEFAULT_BACKLOG, MAX_BACKLOG},
    Topic,
};

/// Which view a socket serves.
enum View {
    Instances {
        include_archived: bool,
    },
    Logs {
        project: String,
    },
    Messages {
        instance: Option<String>,
        correlation: Option<String>,
    },
}

pub async fn instances(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    upgrade(
        ws,
        state,
        View::Instances {
            include_archived: false,
        },
        0,
    )
}

#[derive(Deserialize)]
pub struct LogQuery {
    backlog: Option<u32>,
}

pub async fn logs(
    ws: WebSocketUpgrade,
    Path(project): Path<String>,
    Query(query): Query<LogQuery>,
    State(state): State<AppState>,
) -> Response {
    let backlog = query.backlog.unwrap_or(DEFAULT_BACKLOG).min(MAX_BACKLOG);
    upgrade(ws, state, View::Logs { project }, backlog)
}

#[derive(Deserialize)]
pub struct MessageQuery {
    instance: Option<String>,
    correlation_id: Option<String>,
}

pub async fn messages(
    ws: WebSocketUpgrade,
    Query(query): Query<MessageQuery>,
    State(state): State<AppState>,
) -> Response {
    let view = View::Messages {
        instance: query.instance,
        correlation: query.correlation_id,
    };
    upgrade(ws, state, view, 0)
}

fn upgrade(ws: WebSocketUpgrade, state: AppState, view: View, backlog: u32) -> Response {
    ws.max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            let context = ViewContext {
                id: next_connection_id(),
                index: state.index.clone(),
                events: state.hub.subscribe(),
                shutdown: state.shutdown.clone(),
                keepalive: state.keepalive,
            };
            serve(context, view, backlog, sink, stream)
        })
}

/// What one view socket works with.
struct ViewContext {
    id: u64,
    index: Arc<Index>,
    events: broadcast::Receiver<Arc<Frame>>,
    shutdown: Shutdown,
    keepalive: Keepalive,
}

async fn serve<Tx, Rx, E>(
    context: ViewContext,
    mut view: View,
    backlog: u32,
    mut sink: Tx,
    mut stream: Rx,
) where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    let ViewContext {
        id,
        index,
        mut events,
        shutdown,
        keepalive,
    } = context;
    if let View::Logs { project } = &view {
        if !index.contains(project) {
            let error = json!({"type": "error", "code": 4404, "message": format!("no instance named {project:?}")});
            let _ = sink.send(Message::Text(error.to_string().into())).await;
            let _ = sink.send(close(4404, "unknown instance")).await;
            return;
        }
    }
    let first = match &view {
        View::Logs { project } => {
            let text = index
                .log_backlog(project, backlog)
                .map(|(text, _)| text)
                .unwrap_or_default();
            lines_frame("backlog", &text)
        }
        _ => snapshot(&index, &view),
    };
    if sink
        .send(Message::Text(first.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let heartbeat_every = keepalive.heartbeat;
    let mut heartbeat = interval_at(Instant::now() + heartbeat_every, heartbeat_every);
    let mut last_heard = Instant::now();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let outgoing: Vec<Value> = tokio::select! {
            biased;
            _ = &mut stop => {
                let _ = sink.send(close(1001, "server shutting down")).await;
                return;
            }
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { return };
                last_heard = Instant::now();
                match message {
                    Message::Text(text) => client_message(&index, &mut view, text.as_str()),
                    Message::Close(_) => return,
                    _ => Vec::new(),
                }
            }
            event = events.recv() => match event {
                Ok(frame) => match delta(&view, &frame) {
                    Ok(value) => value.into_iter().collect(),
                    Err(error) => return fail(&mut sink, id, error).await,
                },
                // Too far behind to catch up: start over from a fresh snapshot.
                Err(RecvError::Lagged(_)) => match &view {
                    View::Logs { .. } => vec![json!({"type": "rotated", "reason": "fell behind"})],
                    _ => vec![snapshot(&index, &view)],
                },
                // The server state holds the hub, so its channel cannot close while the server
                // runs; if it does anyway, that is a bug, not a shutdown.
                Err(RecvError::Closed) if !shutdown.is_triggered() => {
                    return fail(&mut sink, id, Internal::HubClosed).await;
                }
                Err(RecvError::Closed) => {
                    let _ = sink.send(close(1001, "server shutting down")).await;
                    return;
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= keepalive.idle_timeout {
                    let _ = sink.send(close(1001, "idle timeout")).await;
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                Vec::new()
            }
        };
        for value in outgoing {
            if sink
                .send(Message::Text(value.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn client_message(index: &Index, view: &mut View, text: &str) -> Vec<Value> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return vec![json!({"type": "error", "code": 4400, "message": "frame is not valid JSON"})];
    };
    let kind = value
        .get("type")
        .or_else(|| value.get("action"))
        .and_then(Value::as_str);
    match (kind, view) {
        (Some("ping"), _) => vec![json!({"type": "pong"})],
        (Some("set_include_archived"), View::Instances { include_archived }) => {
            let Some(flag) = value.get("value").and_then(Value::as_bool) else {
                return vec![
                    json!({"type": "error", "code": 4400, "message": "\"value\" must be true or false"}),
                ];
            };
            *include_archived = flag;
            vec![snapshot(
                index,
                &View::Instances {
                    include_archived: flag,
                },
            )]
        }
        _ => vec![json!({"type": "error", "code": 4400, "message": "unknown message"})],
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
    note: &crate::contract::notification::Notification,
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
        (View::Logs { project }, Topic::Log(id)) => id == project,
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
pub type RecentNotifications = Vec<(String, crate::contract::notification::Notification)>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{Cursor, Topic},
        server::hub::Hub,
    };
    use futures::channel::mpsc;
    use std::{convert::Infallible, time::Duration};

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
        let (events_tx, events) = broadcast::channel(8);
        let context = ViewContext {
            id: 9,
            index: Arc::new(Index::new(Hub::new(8))),
            events,
            shutdown: shutdown.clone(),
            keepalive: Keepalive::default(),
        };
        let (server_tx, client_rx) = mpsc::channel::<Message>(16);
        let (client_tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
        let view = View::Instances {
            include_archived: false,
        };
        let task = tokio::spawn(serve(context, view, 0, server_tx, server_rx));
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
