//! The compatible streaming endpoints other dashboards speak, as thin views of the same hub:
//! `/ws/instances` (projects as instances), `/ws/instances/{id}/logs` (a log tail) and
//! `/ws/messages` (notification transitions, metadata only). Each sends a snapshot first, then
//! deltas; a client that falls behind gets a fresh snapshot instead of stale deltas. A delta is
//! made from the event each hub frame carries, never from parsing the frame's text back.
//! A viewer's session sees only its link's projects: other instances are left out, and a log
//! or an instance filter naming another project is refused (4403).

use std::sync::Arc;

use axum::{
    extract::{Path, Query},
    response::Response,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::contract::ralph::notification::Notification;
use crate::model::{
    protocol::{
        ServerMessage, CODE_BAD_REQUEST, CODE_FORBIDDEN, CODE_UNKNOWN_PROJECT, DEFAULT_BACKLOG,
        MAX_BACKLOG,
    },
    Topic,
};
use crate::server::{
    archive::Archival,
    auth::Access,
    hub::{ArchivedProjects, Frame},
    index::Index,
    stream::{
        connection::{self, Endpoint, Internal, Out, Refusal, Reply, SocketContext, SocketRequest},
        limits,
    },
};

/// Lines of one backlog frame, JSON-encoded: room is left for the envelope within the bound.
const MAX_BACKLOG_TEXT_BYTES: usize = connection::MAX_REPLY_FRAME_BYTES - 1024;

/// Which view a socket serves.
#[derive(Debug)]
enum View {
    Instances {
        archived: ArchivedProjects,
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

pub async fn instances(socket: SocketRequest) -> Response {
    socket.serve(View::Instances {
        archived: ArchivedProjects::Hidden,
    })
}

#[derive(Deserialize)]
pub struct LogQuery {
    backlog: Option<u32>,
}

pub async fn logs(
    socket: SocketRequest,
    Path(project): Path<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    let backlog = query.backlog.unwrap_or(DEFAULT_BACKLOG).min(MAX_BACKLOG);
    socket.serve(View::Logs { project, backlog })
}

#[derive(Deserialize)]
pub struct MessageQuery {
    instance: Option<String>,
    correlation_id: Option<String>,
}

pub async fn messages(socket: SocketRequest, Query(query): Query<MessageQuery>) -> Response {
    socket.serve(View::Messages {
        instance: query.instance,
        correlation: query.correlation_id,
    })
}

/// Each view is an endpoint of the shared connection loop: it only maps hub events to its own
/// frames.
impl Endpoint for View {
    fn open(&mut self, socket: &SocketContext) -> Result<Vec<Out>, Refusal> {
        let named = match self {
            View::Logs { project, .. } => Some(project.as_str()),
            View::Messages { instance, .. } => instance.as_deref(),
            View::Instances { .. } => None,
        };
        if let Some(project) = named.filter(|project| !socket.access.may_see(project)) {
            return Err(Refusal {
                code: CODE_FORBIDDEN,
                message: format!("not allowed for this session: {project:?}"),
                reason: "forbidden",
            });
        }
        let first = match self {
            View::Logs { project, backlog } => {
                if !socket.index.contains(project) {
                    return Err(Refusal {
                        code: CODE_UNKNOWN_PROJECT,
                        message: format!("no instance named {project:?}"),
                        reason: "unknown instance",
                    });
                }
                let text = socket
                    .index
                    .log_backlog(project, *backlog)
                    .map(|(text, _)| text)
                    .unwrap_or_default();
                // The newest lines that fit one bounded frame (quotes and a comma per line).
                let kept = limits::tail_within(&text, MAX_BACKLOG_TEXT_BYTES, 3);
                let mut frame = lines_frame("backlog", kept);
                if kept.len() < text.len() {
                    frame["truncated"] = json!(true);
                }
                frame
            }
            _ => snapshot(&socket.index, self, &socket.access),
        };
        Ok(vec![Out::Json(first)])
    }

    fn on_text(&mut self, socket: &SocketContext, text: &str) -> Reply {
        client_message(socket, self, text)
    }

    fn on_event(
        &mut self,
        _socket: &SocketContext,
        frame: &Arc<Frame>,
    ) -> Result<Option<Out>, Internal> {
        Ok(delta(self, frame).map(Out::Json))
    }

    /// Too far behind to catch up: start over from a fresh snapshot.
    fn on_lagged(&mut self, socket: &SocketContext, _missed: u64) -> Vec<Out> {
        let frame = match self {
            View::Logs { .. } => json!({"type": "rotated", "reason": "fell behind"}),
            _ => snapshot(&socket.index, self, &socket.access),
        };
        vec![Out::Json(frame)]
    }
}

fn client_message(socket: &SocketContext, view: &mut View, text: &str) -> Reply {
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
        (Some("set_include_archived"), View::Instances { archived }) => {
            let Some(flag) = value.get("value").and_then(Value::as_bool) else {
                return bad("\"value\" must be true or false");
            };
            *archived = ArchivedProjects::included(flag);
            let view = View::Instances {
                archived: *archived,
            };
            Reply::Send(vec![Out::Json(snapshot(
                &socket.index,
                &view,
                &socket.access,
            ))])
        }
        _ => bad("unknown message"),
    }
}

fn snapshot(index: &Index, view: &View, access: &Access) -> Value {
    match view {
        View::Instances { archived } => {
            let instances: Vec<Value> = index
                .summaries()
                .into_iter()
                .filter(|p| (archived.is_shown() || !p.is_archived()) && access.may_see(&p.id))
                .map(|p| json!({"name": p.id, "display_name": p.name, "status": p.status, "pid": null, "archived_at": p.archived_at}))
                .collect();
            json!({"type": "snapshot", "instances": instances, "include_archived": archived.is_shown()})
        }
        View::Messages {
            instance,
            correlation,
        } => {
            let recent: Vec<Value> = index
                .recent_notifications()
                .into_iter()
                .filter(|(project, note)| {
                    access.may_see(project) && wanted(instance, correlation, project, &note.id)
                })
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
fn message_event(project: &str, note: &Notification, timestamp: Option<&str>) -> Value {
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

/// The view's frame for one hub event, if it has one: made from the event the frame carries.
fn delta(view: &View, frame: &Frame) -> Option<Value> {
    let relevant = match (view, &frame.topic) {
        (View::Instances { .. }, Topic::Projects | Topic::Project(_)) => true,
        (View::Logs { project, .. }, Topic::Log(id)) => id == project,
        (View::Messages { .. }, Topic::Project(_)) => true,
        _ => false,
    };
    if !relevant {
        return None;
    }
    // Archived instances stay out of the deltas unless asked for (the archive transitions
    // themselves are never marked archived, so they always arrive).
    if matches!(
        view,
        View::Instances {
            archived: ArchivedProjects::Hidden
        }
    ) && frame.archival == Archival::Archived
    {
        return None;
    }
    match (view, frame.event.as_ref()) {
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
        ) => wanted(instance, correlation, project, &data.id)
            .then(|| message_event(project, data, Some(timestamp))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{protocol::StatusChange, Cursor, Status},
        server::{
            hub::Hub,
            stream::testing::{self, close_code, next_json, ClientRx, ClientTx},
            Shutdown,
        },
    };
    use axum::extract::ws::Message;
    use tokio::{sync::broadcast, task::JoinHandle};

    type ViewChannels = (
        broadcast::Sender<Arc<Frame>>,
        ClientTx,
        ClientRx,
        JoinHandle<()>,
    );

    /// An instances view over channels, fed by a hub channel the test controls.
    fn instances_view(shutdown: &Shutdown) -> ViewChannels {
        instances_view_with(shutdown, None)
    }

    /// The same, with a session that ends at `expires` (unix seconds).
    fn instances_view_with(shutdown: &Shutdown, expires: Option<u64>) -> ViewChannels {
        let (events_tx, events) = broadcast::channel(8);
        let hub = Hub::new(8);
        let mut socket = testing::context(Arc::new(Index::new(hub.clone())), &hub, shutdown);
        socket.events = events;
        socket.expires = expires;
        let view = View::Instances {
            archived: ArchivedProjects::Hidden,
        };
        let (client_tx, client_rx, task) = testing::serve(socket, view);
        (events_tx, client_tx, client_rx, task)
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

    /// The view reads the event a frame carries: a frame whose text is no event at all still
    /// makes its delta (a view that parsed the text back would fail here).
    #[tokio::test]
    async fn a_delta_is_made_from_the_frames_event_not_its_text() {
        let (events, _client, mut rx, task) = instances_view(&Shutdown::default());
        assert_eq!(next_json(&mut rx).await["type"], "snapshot");
        let status = ServerMessage::StatusChanged {
            project: "p".into(),
            timestamp: "t".into(),
            data: StatusChange {
                status: Status::Paused,
                previous: Status::Running,
            },
        };
        let _ = events.send(Arc::new(Frame {
            topic: Topic::Project("p".into()),
            cursor: Cursor::default(),
            event: Arc::new(status),
            text: "not an event".into(),
            archival: Archival::Active,
        }));
        let delta = next_json(&mut rx).await;
        assert_eq!(delta["type"], "status_changed", "{delta}");
        assert_eq!(delta["name"], "p");
        assert_eq!(delta["status"], "paused");
        drop(events);
        assert_eq!(next_json(&mut rx).await["code"], 4500);
        testing::ended(task).await;
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
