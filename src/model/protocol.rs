//! The WebSocket wire protocol (`/api/ws`): the event envelope, subscriptions with cursors, and
//! every message either side sends.
//!
//! Client frames are parsed by hand from a [`serde_json::Value`] so that every malformed frame
//! gets a precise error instead of a generic serde message, and so both the `action` form
//! (`{"action":"ping"}`) and the alternative `{"type":"ping"}` are accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeMap;

use super::{build::BuildEvent, Cursor, PlanProgress, ProjectSummary, Status, Topic};
use crate::contract::{
    ralph::iterations::IterationStatus, ralph::notification::Notification, ralph::stats::Health,
};

/// Close code and error code for a frame the server cannot act on.
pub const CODE_BAD_REQUEST: u16 = 4400;
/// Close code and error code for an expired (or refused) session.
pub const CODE_AUTH_EXPIRED: u16 = 4401;
/// Error code for a subscription to a project the session may not see (a viewer's link names
/// other projects).
pub const CODE_FORBIDDEN: u16 = 4403;
/// Error code for a subscription to a project the server does not know.
pub const CODE_UNKNOWN_PROJECT: u16 = 4404;
/// Close code and error code for a failure inside the server (the client did nothing wrong;
/// reconnecting is the remedy).
pub const CODE_INTERNAL: u16 = 4500;
/// Seconds between server keepalive pings (announced in `hello`).
pub const HEARTBEAT_SECONDS: u32 = 20;

/// A frame sent by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// Topics to receive; `since` resumes a topic after the given cursor.
    Subscribe {
        topics: Vec<Topic>,
        since: BTreeMap<Topic, Cursor>,
        /// Lines of history for `log:` topics subscribed without a cursor.
        backlog: u32,
    },
    Unsubscribe {
        topics: Vec<Topic>,
    },
    Ping,
    /// A fresh session token, so the socket outlives the one it was opened with.
    Auth {
        token: String,
    },
    /// Whether events of archived projects on the `projects` topic reach this connection
    /// (default: no; `project_archived` itself always does).
    SetIncludeArchived {
        value: bool,
    },
    /// The channel form of subscribe (`{"type":"subscribe","channel":"project:ID"}`): the
    /// channel's topics, acknowledged with `subscribed {channel}`.
    Join {
        channel: String,
        topics: Vec<Topic>,
    },
    /// The channel form of unsubscribe, acknowledged with `unsubscribed {channel}`.
    Leave {
        channel: String,
        topics: Vec<Topic>,
    },
}

/// Why a client frame was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("frame must be a JSON object")]
    NotAnObject,
    #[error("frame has neither \"action\" nor \"type\"")]
    MissingAction,
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("\"{field}\" must be {expected}")]
    BadField {
        field: &'static str,
        expected: &'static str,
    },
    #[error("unknown topic {0:?}: use projects, project:ID or log:ID")]
    BadTopic(String),
    #[error("unknown channel {0:?}: use project:ID or agent:ID")]
    BadChannel(String),
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
        let object = value.as_object().ok_or(ProtocolError::NotAnObject)?;
        let action = match (object.get("action"), object.get("type")) {
            (Some(action), _) => action.as_str().ok_or(ProtocolError::BadField {
                field: "action",
                expected: "a string",
            })?,
            (None, Some(kind)) => kind.as_str().ok_or(ProtocolError::BadField {
                field: "type",
                expected: "a string",
            })?,
            (None, None) => return Err(ProtocolError::MissingAction),
        };
        let channel = object
            .get("channel")
            .filter(|_| object.get("topics").is_none() && object.get("projects").is_none());
        match (action, channel) {
            ("subscribe", Some(channel)) => {
                let (channel, topics) = channel_topics(channel)?;
                return Ok(ClientMessage::Join { channel, topics });
            }
            ("unsubscribe", Some(channel)) => {
                let (channel, topics) = channel_topics(channel)?;
                return Ok(ClientMessage::Leave { channel, topics });
            }
            _ => {}
        }
        match action {
            "ping" => Ok(ClientMessage::Ping),
            "subscribe" => Ok(ClientMessage::Subscribe {
                topics: topic_list(object)?,
                since: since(object)?,
                backlog: backlog(object)?,
            }),
            "unsubscribe" => Ok(ClientMessage::Unsubscribe {
                topics: topic_list(object)?,
            }),
            "auth" => Ok(ClientMessage::Auth {
                token: object
                    .get("token")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(ProtocolError::BadField {
                        field: "token",
                        expected: "a string",
                    })?,
            }),
            "set_include_archived" => Ok(ClientMessage::SetIncludeArchived {
                value: object.get("value").and_then(Value::as_bool).ok_or(
                    ProtocolError::BadField {
                        field: "value",
                        expected: "true or false",
                    },
                )?,
            }),
            other => Err(ProtocolError::UnknownAction(truncate(other, 64))),
        }
    }
}

/// `"topics": [...]`, or the short form `"projects": [ids]`, which means each project's state
/// and its log.
fn topic_list(object: &serde_json::Map<String, Value>) -> Result<Vec<Topic>, ProtocolError> {
    let mut topics = Vec::new();
    if let Some(projects) = object.get("projects") {
        for id in strings(projects, "projects")? {
            topics.push(Topic::Project(id.clone()));
            topics.push(Topic::Log(id));
        }
    }
    if let Some(names) = object.get("topics") {
        for name in strings(names, "topics")? {
            topics.push(
                Topic::parse(&name).ok_or_else(|| ProtocolError::BadTopic(truncate(&name, 64)))?,
            );
        }
    }
    if object.get("projects").is_none() && object.get("topics").is_none() {
        return Err(ProtocolError::BadField {
            field: "topics",
            expected: "an array of topics (or \"projects\": an array of project ids)",
        });
    }
    Ok(topics)
}

/// A channel's name and topics: `project:ID` is the project's state (its loop), `agent:ID` its
/// loop and its log; a topic's own name (`projects`, `log:ID`) is a channel of that topic.
fn channel_topics(value: &Value) -> Result<(String, Vec<Topic>), ProtocolError> {
    let name = value.as_str().ok_or(ProtocolError::BadField {
        field: "channel",
        expected: "a string",
    })?;
    let bad = || ProtocolError::BadChannel(truncate(name, 64));
    let topics = match name.split_once(':') {
        Some(("agent", id)) => {
            let state = Topic::parse(&format!("project:{id}")).ok_or_else(bad)?;
            vec![state, Topic::Log(id.to_owned())]
        }
        _ => vec![Topic::parse(name).ok_or_else(bad)?],
    };
    Ok((name.to_owned(), topics))
}

/// `"since": {"TOPIC": {"epoch": E, "seq": N}}`.
fn since(
    object: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<Topic, Cursor>, ProtocolError> {
    let bad = ProtocolError::BadField {
        field: "since",
        expected: "an object of topic -> {\"epoch\": number, \"seq\": number}",
    };
    let Some(value) = object.get("since") else {
        return Ok(BTreeMap::new());
    };
    let map = value.as_object().ok_or(bad.clone())?;
    map.iter()
        .map(|(name, cursor)| {
            let topic =
                Topic::parse(name).ok_or_else(|| ProtocolError::BadTopic(truncate(name, 64)))?;
            let field = |key: &str| cursor.get(key).and_then(Value::as_u64);
            match (field("epoch"), field("seq")) {
                (Some(epoch), Some(seq)) => Ok((topic, Cursor { epoch, seq })),
                _ => Err(bad.clone()),
            }
        })
        .collect()
}

/// Lines of log history sent when a `log:` topic is subscribed without a cursor.
pub const DEFAULT_BACKLOG: u32 = 100;
pub const MAX_BACKLOG: u32 = 1000;

fn backlog(object: &serde_json::Map<String, Value>) -> Result<u32, ProtocolError> {
    match object.get("backlog") {
        None => Ok(DEFAULT_BACKLOG),
        Some(value) => value
            .as_u64()
            .filter(|n| *n <= u64::from(MAX_BACKLOG))
            .map(|n| n as u32)
            .ok_or(ProtocolError::BadField {
                field: "backlog",
                expected: "a number of lines from 0 to 1000",
            }),
    }
}

fn strings(value: &Value, field: &'static str) -> Result<Vec<String>, ProtocolError> {
    let bad = ProtocolError::BadField {
        field,
        expected: "an array of strings",
    };
    let items = value.as_array().ok_or(bad.clone())?;
    items
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or(bad.clone()))
        .collect()
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// `data` of a `status_changed` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: Status,
    pub previous: Status,
}

/// `data` of an `iteration_started` event: a header appeared in `ralph.log`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterationStart {
    pub iteration: u32,
    /// 0 means unlimited.
    pub max: u32,
    /// `i` of `loop i/M` in the new header format.
    pub loop_index: Option<u32>,
    /// Which run of the loop (iteration numbers restart when a loop is restarted).
    pub run: u32,
}

/// `data` of an `iteration_completed` event: a row landed in `iterations.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationDone {
    pub iteration: u32,
    pub max: u32,
    pub run: u32,
    pub duration_seconds: Option<f64>,
    /// Thousands of tokens.
    pub tokens: Option<f64>,
    pub cost_usd: Option<f64>,
    pub status: IterationStatus,
    pub health: Health,
    pub tasks_completed: Vec<String>,
    pub commit: Option<String>,
    pub test_passed: Option<bool>,
    pub errors: Vec<String>,
}

/// `data` of a `log_append` event: complete lines, each ending in `\n`, ANSI codes kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLines {
    pub lines: String,
}

/// `data` of a `file_changed` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub file: String,
}

/// `data` of a `project_archived` event: the project's card as it is now, and which way it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchiveChange {
    /// `true` when the project was archived, `false` when it was brought back.
    pub archived: bool,
    /// The card (its `archived_at` is set when `archived`).
    #[serde(flatten)]
    pub summary: ProjectSummary,
}

/// A frame sent by the server. Events use the envelope
/// `{"type","project","timestamp","data"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello {
        connection: u64,
        /// The epoch topics start in on this server run.
        epoch: u64,
        heartbeat_seconds: u32,
    },
    /// The topics now subscribed, each with the cursor the stream continues from.
    Subscribed {
        topics: Vec<Topic>,
        cursors: BTreeMap<Topic, Cursor>,
    },
    Unsubscribed {
        topics: Vec<Topic>,
    },
    Pong,
    Error {
        code: u16,
        message: String,
    },
    /// Events of `topic` (of every topic when `None`) cannot be served: refetch the state, then
    /// subscribe again from the cursor the fetch returns.
    Resync {
        topic: Option<Topic>,
        reason: String,
    },
    StatusChanged {
        project: String,
        timestamp: String,
        data: StatusChange,
    },
    PlanUpdated {
        project: String,
        timestamp: String,
        data: PlanProgress,
    },
    IterationStarted {
        project: String,
        timestamp: String,
        data: IterationStart,
    },
    IterationCompleted {
        project: String,
        timestamp: String,
        data: IterationDone,
    },
    LogAppend {
        project: String,
        timestamp: String,
        data: LogLines,
    },
    /// The last lines of `ralph.log` when a `log:` topic is subscribed without a cursor; live
    /// `log_append` events continue right after them.
    LogBacklog {
        project: String,
        data: LogLines,
    },
    /// `ralph.log` was truncated or replaced: drop the log you hold and refetch.
    LogRotated {
        project: String,
        timestamp: String,
    },
    Notification {
        project: String,
        timestamp: String,
        data: Notification,
    },
    FileChanged {
        project: String,
        timestamp: String,
        data: FileChange,
    },
    ProjectAdded {
        project: String,
        timestamp: String,
        data: ProjectSummary,
    },
    /// A project's card changed in a way no smaller event describes (its warnings).
    ProjectUpdated {
        project: String,
        timestamp: String,
        data: ProjectSummary,
    },
    ProjectRemoved {
        project: String,
        timestamp: String,
    },
    /// The operator archived a project or brought it back. Published on `projects` and on
    /// `project:ID`; connections that hide archived projects still get it.
    ProjectArchived {
        project: String,
        timestamp: String,
        data: ArchiveChange,
    },
    /// An operator acted on the project (start, stop, pause, inject, edit): the audit entry,
    /// and what changed that no other event carries (a start's phase, an injection's state).
    Control {
        project: String,
        timestamp: String,
        data: super::control::ControlChange,
    },
    /// An operator acknowledged a stored notification: every tab marks it.
    NotificationAcked {
        project: String,
        timestamp: String,
        data: super::insight::NotificationAck,
    },
    /// An operator set the project's budget.
    BudgetChanged {
        project: String,
        timestamp: String,
        data: crate::contract::ralph::budget::Budget,
    },
    /// Acknowledges `set_include_archived`.
    IncludeArchived {
        value: bool,
    },
    /// Something changed in a BuildRunner build: a checkpoint, a feature, output, a file.
    Build {
        project: String,
        timestamp: String,
        data: BuildEvent,
    },
}

impl ServerMessage {
    /// The project an event belongs to; `None` for control frames.
    pub fn project(&self) -> Option<&str> {
        match self {
            ServerMessage::StatusChanged { project, .. }
            | ServerMessage::PlanUpdated { project, .. }
            | ServerMessage::IterationStarted { project, .. }
            | ServerMessage::IterationCompleted { project, .. }
            | ServerMessage::LogAppend { project, .. }
            | ServerMessage::LogRotated { project, .. }
            | ServerMessage::Notification { project, .. }
            | ServerMessage::FileChanged { project, .. }
            | ServerMessage::ProjectAdded { project, .. }
            | ServerMessage::ProjectUpdated { project, .. }
            | ServerMessage::ProjectRemoved { project, .. }
            | ServerMessage::ProjectArchived { project, .. }
            | ServerMessage::Build { project, .. }
            | ServerMessage::NotificationAcked { project, .. }
            | ServerMessage::BudgetChanged { project, .. }
            | ServerMessage::Control { project, .. } => Some(project),
            _ => None,
        }
    }

    /// The topic an event is published on; `None` for control frames.
    pub fn topic(&self) -> Option<Topic> {
        let project = self.project()?.to_owned();
        Some(match self {
            // `project_archived` is also published on `project:ID`, explicitly (see the hub).
            ServerMessage::ProjectAdded { .. }
            | ServerMessage::ProjectRemoved { .. }
            | ServerMessage::ProjectArchived { .. } => Topic::Projects,
            ServerMessage::LogAppend { .. } | ServerMessage::LogRotated { .. } => {
                Topic::Log(project)
            }
            _ => Topic::Project(project),
        })
    }

    pub fn error(code: u16, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_frames_are_aliases_of_topics() {
        let join = ClientMessage::parse(r#"{"type":"subscribe","channel":"project:a"}"#);
        assert_eq!(
            join,
            Ok(ClientMessage::Join {
                channel: "project:a".into(),
                topics: vec![Topic::Project("a".into())],
            })
        );
        let agent = ClientMessage::parse(r#"{"type":"unsubscribe","channel":"agent:a"}"#);
        assert_eq!(
            agent,
            Ok(ClientMessage::Leave {
                channel: "agent:a".into(),
                topics: vec![Topic::Project("a".into()), Topic::Log("a".into())],
            })
        );
        for bad in [
            r#"{"type":"subscribe","channel":"issue:1"}"#,
            r#"{"type":"subscribe","channel":"agent:"}"#,
            r#"{"type":"subscribe","channel":7}"#,
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
        // With topics, the topic form wins.
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"subscribe","channel":"x","topics":["projects"]}"#),
            Ok(ClientMessage::Subscribe { .. })
        ));
    }

    fn subscribe(topics: &[&str]) -> ClientMessage {
        ClientMessage::Subscribe {
            topics: topics.iter().filter_map(|t| Topic::parse(t)).collect(),
            since: BTreeMap::new(),
            backlog: DEFAULT_BACKLOG,
        }
    }

    #[test]
    fn parses_short_forms() {
        assert_eq!(
            ClientMessage::parse(r#"{"action":"subscribe","projects":["a"]}"#),
            Ok(subscribe(&["project:a", "log:a"]))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"unsubscribe","projects":[]}"#),
            Ok(ClientMessage::Unsubscribe { topics: vec![] })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
    }

    #[test]
    fn parses_set_include_archived() {
        assert_eq!(
            ClientMessage::parse(r#"{"action":"set_include_archived","value":true}"#),
            Ok(ClientMessage::SetIncludeArchived { value: true })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"set_include_archived","value":false}"#),
            Ok(ClientMessage::SetIncludeArchived { value: false })
        );
        for bad in [
            r#"{"action":"set_include_archived"}"#,
            r#"{"action":"set_include_archived","value":"yes"}"#,
        ] {
            assert!(
                matches!(
                    ClientMessage::parse(bad),
                    Err(ProtocolError::BadField { field: "value", .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn project_archived_carries_the_card_and_the_direction() {
        let summary: ProjectSummary = serde_json::from_value(serde_json::json!({
            "id": "a-1", "name": "a", "path": "/a", "status": "stopped", "plan": null,
            "iteration": null, "max_iterations": 0, "tokens": 0.0, "cost_usd": 0.0,
            "last_activity": null, "recent_health": [], "archived_at": "2026-01-01T00:00:00Z"
        }))
        .expect("summary");
        let event = ServerMessage::ProjectArchived {
            project: "a-1".into(),
            timestamp: "t".into(),
            data: ArchiveChange {
                archived: true,
                summary,
            },
        };
        let json: Value = serde_json::to_value(&event).unwrap_or(Value::Null);
        assert_eq!(json["type"], "project_archived");
        assert_eq!(json["data"]["archived"], true);
        assert_eq!(json["data"]["archived_at"], "2026-01-01T00:00:00Z");
        assert_eq!(json["data"]["id"], "a-1");
        let back: ServerMessage = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, event);
        assert_eq!(event.topic(), Some(Topic::Projects));
    }

    #[test]
    fn parses_topics_and_cursors() {
        let parsed = ClientMessage::parse(
            r#"{"action":"subscribe","topics":["projects","project:x"],"since":{"project:x":{"epoch":7,"seq":42}}}"#,
        );
        let mut since = BTreeMap::new();
        since.insert(Topic::Project("x".into()), Cursor { epoch: 7, seq: 42 });
        assert_eq!(
            parsed,
            Ok(ClientMessage::Subscribe {
                topics: vec![Topic::Projects, Topic::Project("x".into())],
                since,
                backlog: DEFAULT_BACKLOG,
            })
        );
    }

    #[test]
    fn refuses_malformed_frames_precisely() {
        assert!(matches!(
            ClientMessage::parse("{not json"),
            Err(ProtocolError::NotJson(_))
        ));
        assert_eq!(
            ClientMessage::parse("[1,2]"),
            Err(ProtocolError::NotAnObject)
        );
        assert_eq!(
            ClientMessage::parse("{}"),
            Err(ProtocolError::MissingAction)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"dance"}"#),
            Err(ProtocolError::UnknownAction("dance".into()))
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"action":"subscribe","projects":"a"}"#),
            Err(ProtocolError::BadField {
                field: "projects",
                ..
            })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"action":"subscribe","projects":[1]}"#),
            Err(ProtocolError::BadField { .. })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"action":"subscribe"}"#),
            Err(ProtocolError::BadField { .. })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"action":7}"#),
            Err(ProtocolError::BadField {
                field: "action",
                ..
            })
        ));
        assert_eq!(
            ClientMessage::parse(r#"{"action":"subscribe","topics":["weather"]}"#),
            Err(ProtocolError::BadTopic("weather".into()))
        );
        for since in [
            r#"[]"#,
            r#"{"project:x":{"epoch":1}}"#,
            r#"{"project:x":{"epoch":-1,"seq":0}}"#,
        ] {
            let frame =
                format!(r#"{{"action":"subscribe","topics":["project:x"],"since":{since}}}"#);
            assert!(
                matches!(
                    ClientMessage::parse(&frame),
                    Err(ProtocolError::BadField { field: "since", .. })
                ),
                "{since}"
            );
        }
    }

    #[test]
    fn events_use_the_envelope_and_know_their_topic() {
        let event = ServerMessage::StatusChanged {
            project: "p".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            data: StatusChange {
                status: Status::Paused,
                previous: Status::Running,
            },
        };
        let json: Value = serde_json::to_value(&event).unwrap_or(Value::Null);
        assert_eq!(json["type"], "status_changed");
        assert_eq!(json["project"], "p");
        assert_eq!(json["timestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(json["data"]["status"], "paused");
        assert_eq!(json["data"]["previous"], "running");
        let back: ServerMessage = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, event);
        assert_eq!(event.topic(), Some(Topic::Project("p".into())));
        let log = ServerMessage::LogRotated {
            project: "p".into(),
            timestamp: "t".into(),
        };
        assert_eq!(log.topic(), Some(Topic::Log("p".into())));
        assert_eq!(ServerMessage::Pong.topic(), None);
    }
}
