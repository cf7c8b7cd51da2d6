//! Who may do what, and the record of what operators did: shared by the server (which checks
//! and records) and the page (which shows controls and the audit trail).

use serde::{Deserialize, Serialize};

/// What a session may do. The first-run sign-in gives an operator; share links give viewers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything and may act: start, stop, pause, inject, edit, archive, share.
    Operator,
    /// Read-only, and only the projects its link names.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// The stored name back; anything else is not a role.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// How a control action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It was done.
    Done,
    /// A check turned it away (role, precondition, running loop, ...); nothing changed.
    Refused,
    /// It was allowed but did not work (an I/O error, a process that would not start).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "done" => Some(Outcome::Done),
            "refused" => Some(Outcome::Refused),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// One recorded control action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing; the order actions were recorded in.
    pub id: i64,
    /// RFC 3339, UTC.
    pub time: String,
    /// A short, non-secret tag of the session that acted (enough to tell sessions apart).
    pub session: String,
    pub role: Role,
    /// The project acted on; `None` for server-wide actions (share links).
    pub project: Option<String>,
    /// What was done: `start`, `stop`, `pause`, `resume`, `inject`, `edit`, `archive`, ...
    pub action: String,
    /// The action's parameters as JSON text (never a secret or a file's whole content).
    pub params: String,
    pub outcome: Outcome,
    /// What happened, in words ("SIGTERM sent to group 4242", "the file changed meanwhile").
    pub detail: String,
}
