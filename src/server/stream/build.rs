//! `/api/build/stream/{session_id}`: a BuildRunner build's own protocol, as an [`Endpoint`] of
//! the shared connection loop (limits, keepalive, expiry, re-authentication, shutdown and close
//! codes are the loop's). The session id is the project's id.
//!
//! The server sends `connection` first, then one frame per build event of the project's topic:
//! `checkpoint_update`, `component_update`, `feature_update`, `build_progress`,
//! `terminal_output`, `file_change` and `error`, each with a `timestamp` and the `cursor` it
//! sits at. The client may send `ping` (`pong`), `subscribe {topics: [types]}` (only those
//! types from then on; an empty list means all), `request_status` (`status`: the build as it is
//! now) and `auth`. `?epoch=E&seq=N` resumes after a cursor a previous connection saw; a
//! cursor the server no longer has, or a client that fell behind, gets a `status` frame instead
//! of the events it missed.

use std::{collections::BTreeSet, sync::Arc};

use axum::{
    extract::{Path, Query},
    response::Response,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::model::{
    build::BuildEvent,
    protocol::{ServerMessage, CODE_BAD_REQUEST, CODE_UNKNOWN_PROJECT},
    Cursor, Topic,
};
use crate::server::{
    clock::now,
    hub::{Frame, Replay},
    index::Index,
    stream::connection::{Endpoint, Internal, Out, Refusal, Reply, SocketContext, SocketRequest},
};

/// The message types a client may narrow the stream to.
pub const MESSAGE_TYPES: [&str; 7] = [
    "component_update",
    "feature_update",
    "checkpoint_update",
    "terminal_output",
    "build_progress",
    "file_change",
    "error",
];

#[derive(Debug, Deserialize)]
pub struct ResumeQuery {
    epoch: Option<u64>,
    seq: Option<u64>,
}

pub async fn stream(
    socket: SocketRequest,
    Path(session): Path<String>,
    Query(query): Query<ResumeQuery>,
) -> Response {
    let since = query
        .epoch
        .zip(query.seq)
        .map(|(epoch, seq)| Cursor { epoch, seq });
    socket.serve(BuildStream::new(session, since))
}

/// One client of a build's stream.
#[derive(Debug)]
pub struct BuildStream {
    session: String,
    /// The message types wanted; all when `None`.
    wanted: Option<BTreeSet<&'static str>>,
    /// Where the client is in the project's topic.
    delivered: Cursor,
    /// The cursor to resume after, until the stream opens.
    since: Option<Cursor>,
}

impl BuildStream {
    pub fn new(session: String, since: Option<Cursor>) -> Self {
        BuildStream {
            session,
            wanted: None,
            delivered: Cursor::default(),
            since,
        }
    }

    fn topic(&self) -> Topic {
        Topic::Project(self.session.clone())
    }

    /// `status`: the build as it is now, and the cursor it is at (the client's cursor moves
    /// there: the events before it are in the state).
    fn status(&mut self, index: &Index) -> Option<Out> {
        let (frame, cursor) = status_frame(index, &self.session)?;
        self.delivered = self.delivered.max(cursor);
        Some(Out::Json(frame))
    }

    /// The frame for one event of the project's topic, if the client wants it.
    fn frame_for(&self, event: &ServerMessage, cursor: Cursor) -> Option<Value> {
        let ServerMessage::Build {
            timestamp, data, ..
        } = event
        else {
            return None;
        };
        let mut frame = seed_frame(data)?;
        let kind = frame["type"].as_str().unwrap_or_default();
        if self
            .wanted
            .as_ref()
            .is_some_and(|wanted| !wanted.contains(kind))
        {
            return None;
        }
        frame["session_id"] = json!(self.session);
        frame["timestamp"] = json!(timestamp);
        frame["cursor"] = json!(cursor);
        Some(frame)
    }

    fn subscribe(&mut self, value: &Value) -> Vec<Out> {
        let Some(topics) = value.get("topics").and_then(Value::as_array) else {
            return vec![bad("\"topics\" must be an array of message types")];
        };
        let mut wanted = BTreeSet::new();
        for topic in topics {
            let known = topic
                .as_str()
                .and_then(|name| MESSAGE_TYPES.iter().find(|known| **known == name));
            match known {
                Some(name) => {
                    wanted.insert(*name);
                }
                None => {
                    let shown: String = topic.to_string().chars().take(64).collect();
                    return vec![bad(&format!(
                        "unknown message type {shown}: use {}",
                        MESSAGE_TYPES.join(", ")
                    ))];
                }
            }
        }
        let topics: Vec<&str> = wanted.iter().copied().collect();
        self.wanted = (!wanted.is_empty()).then_some(wanted);
        vec![Out::Json(json!({
            "type": "subscribed",
            "topics": topics,
            "timestamp": now(),
        }))]
    }
}

impl Endpoint for BuildStream {
    fn open(&mut self, socket: &SocketContext) -> Result<Vec<Out>, Refusal> {
        let unknown = || Refusal {
            code: CODE_UNKNOWN_PROJECT,
            message: format!("no build session named {:?}", self.session),
            reason: "unknown session",
        };
        let cursor = socket
            .index
            .with_project_at(&self.session, |state, cursor| state.build().map(|_| cursor))
            .flatten()
            .ok_or_else(unknown)?;
        let mut out = vec![Out::Json(json!({
            "type": "connection",
            "status": "connected",
            "session_id": self.session,
            "timestamp": now(),
            "cursor": cursor,
        }))];
        self.delivered = cursor;
        if let Some(since) = self.since.take() {
            match socket.hub.replay(&self.topic(), since) {
                (Replay::Frames(frames), now) => {
                    self.delivered = now;
                    out.extend(
                        frames
                            .iter()
                            .filter_map(|frame| self.frame_for(&frame.event, frame.cursor))
                            .map(Out::Json),
                    );
                }
                (Replay::Resync, _) => out.extend(self.status(&socket.index)),
            }
        }
        Ok(out)
    }

    fn on_text(&mut self, socket: &SocketContext, text: &str) -> Reply {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return Reply::Send(vec![bad("frame is not valid JSON")]);
        };
        let kind = value
            .get("type")
            .or_else(|| value.get("action"))
            .and_then(Value::as_str);
        let out = match kind {
            Some("ping") => vec![Out::Json(json!({"type": "pong", "timestamp": now()}))],
            Some("subscribe") => self.subscribe(&value),
            Some("request_status") => match self.status(&socket.index) {
                Some(status) => vec![status],
                None => vec![Out::Json(error_frame(
                    CODE_UNKNOWN_PROJECT,
                    "the build is gone",
                    "unknown_session",
                ))],
            },
            Some("auth") => match value.get("token").and_then(Value::as_str) {
                Some(token) => return Reply::Reauthenticate(token.to_owned()),
                None => vec![bad("\"token\" must be a string")],
            },
            Some(other) => {
                let shown: String = other.chars().take(64).collect();
                vec![bad(&format!("unknown message type {shown:?}"))]
            }
            None => vec![bad("a message needs a \"type\"")],
        };
        Reply::Send(out)
    }

    fn on_event(
        &mut self,
        _socket: &SocketContext,
        frame: &Arc<Frame>,
    ) -> Result<Option<Out>, Internal> {
        if frame.topic != self.topic() || frame.cursor <= self.delivered {
            return Ok(None);
        }
        self.delivered = frame.cursor;
        Ok(self.frame_for(&frame.event, frame.cursor).map(Out::Json))
    }

    /// The events missed are lost to the client: it gets the state instead.
    fn on_lagged(&mut self, socket: &SocketContext, _missed: u64) -> Vec<Out> {
        self.status(&socket.index).into_iter().collect()
    }
}

/// An `error` frame: the build protocol's fields, and the code every socket's errors carry.
fn error_frame(code: u16, message: &str, error_type: &str) -> Value {
    json!({
        "type": "error",
        "code": code,
        "message": message,
        "error_message": message,
        "error_type": error_type,
        "timestamp": now(),
    })
}

fn bad(message: &str) -> Out {
    Out::Json(error_frame(CODE_BAD_REQUEST, message, "bad_request"))
}

/// A build event in the build protocol's shape (without `timestamp` and `cursor`); `None` for
/// events the protocol has no message for (whole registries and context files: the page's).
fn seed_frame(event: &BuildEvent) -> Option<Value> {
    Some(match event {
        BuildEvent::Checkpoint { change, checkpoint } => json!({
            "type": "checkpoint_update",
            "checkpoint_id": checkpoint.id,
            "phase": checkpoint.phase,
            "tasks_completed": checkpoint.tasks_completed,
            "files_created": checkpoint.files_created,
            "metadata": checkpoint.metadata,
            "change": change,
            "status": checkpoint.status,
        }),
        BuildEvent::Component {
            component_id,
            status,
            progress,
            component,
        } => json!({
            "type": "component_update",
            "component_id": component_id,
            "status": status,
            "progress": progress,
            "metadata": component,
        }),
        BuildEvent::Feature {
            feature_id,
            name,
            status,
            progress,
            priority,
        } => json!({
            "type": "feature_update",
            "feature_id": feature_id,
            "status": status,
            "progress": progress,
            "metadata": {"name": name, "priority": priority},
        }),
        BuildEvent::Progress(progress) => json!({
            "type": "build_progress",
            "total": progress.total,
            "completed": progress.completed,
            "percent": progress.percent,
        }),
        BuildEvent::Output(entry) => json!({
            "type": "terminal_output",
            "output": entry.output,
            "output_type": entry.output_type,
            "source": entry.source,
        }),
        BuildEvent::FileChange {
            file_path,
            change_type,
            content,
        } => {
            let mut frame = json!({
                "type": "file_change",
                "file_path": file_path,
                "change_type": change_type,
            });
            if let Some(content) = content {
                frame["content"] = json!(content);
            }
            frame
        }
        BuildEvent::Error {
            error_message,
            error_type,
            traceback,
        } => json!({
            "type": "error",
            "error_message": error_message,
            "error_type": error_type,
            "traceback": traceback,
        }),
        BuildEvent::Features { .. } | BuildEvent::Context { .. } => return None,
    })
}

/// `status`: the build now (progress, statistics, the current and newest checkpoints, the
/// components and features), with the cursor it is at; `None` when the project or its build
/// is gone.
fn status_frame(index: &Index, session: &str) -> Option<(Value, Cursor)> {
    let detail = index
        .with_project_at(session, |state, cursor| state.build_detail(cursor))
        .flatten()?;
    let current = detail
        .current
        .and_then(|index| detail.checkpoints.get(index));
    let features: Vec<Value> = detail
        .features
        .iter()
        .flat_map(|file| &file.features)
        .map(|feature| {
            json!({
                "feature_id": feature.id,
                "name": feature.name,
                "status": feature.status,
                "progress": feature.progress,
                "priority": feature.priority,
            })
        })
        .collect();
    let frame = json!({
        "type": "status",
        "session_id": session,
        "timestamp": now(),
        "cursor": detail.cursor,
        "build_progress": detail.card.progress,
        "component_stats": detail.component_stats,
        "feature_stats": detail.feature_stats,
        "phase": detail.card.phase,
        "current_checkpoint": current,
        "last_checkpoint": detail.card.last_checkpoint,
        "checkpoints": detail.checkpoints.len(),
        "components": detail.components,
        "features": features,
        "warnings": detail.warnings,
    });
    Some((frame, detail.cursor))
}
