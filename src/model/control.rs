//! What the control actions exchange (start, stop, pause, inject, edit): the forms the page
//! sends, the state it shows, and the `control` event every tab receives.

use serde::{Deserialize, Serialize};

use super::audit::AuditEntry;

/// The start form: the maximum iterations (the command's argument) and the optional
/// environment the loop script reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StartForm {
    /// 0 means unlimited.
    pub max_iterations: u32,
    /// `RALPH_CLI`, `RALPH_FLAGS`, `RALPH_TEST`, `RALPH_MODEL`; empty ones are not set.
    pub cli: String,
    pub flags: String,
    pub test: String,
    pub model: String,
}

/// Where a start stands, as loopwatch saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum StartPhase {
    /// Spawned; the loop has not written its pid file yet.
    Starting { pid: u32 },
    /// The loop wrote its pid file: from here on the project's status tells the story.
    Started { pid: u32 },
    /// The process ended before it wrote its pid file; `output` is the end of what it printed.
    Died {
        pid: u32,
        code: Option<i32>,
        output: String,
    },
}

/// An injection the loop has not consumed yet, or the one it just consumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Injection {
    /// `.ralph/inject.md` holds this text.
    Pending { text: String },
    /// The file vanished: the loop took it, in this iteration (when known).
    Consumed { iteration: Option<u32> },
}

/// What the control panel shows besides the project's card.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlState {
    /// A loop process passes the guard (its pid file names a live process that is the loop).
    pub running: bool,
    /// `.ralph/pause` exists.
    pub paused: bool,
    /// The last start from this server, while it matters (starting, or died before starting).
    pub start: Option<StartPhase>,
    pub injection: Option<Injection>,
    /// The command a start runs (the project's setting, its `ralph.sh`, or the server's).
    pub command: Option<String>,
    /// The newest audit entries of the project, newest first.
    pub audit: Vec<AuditEntry>,
}

/// A file the operator edits, with the version the edit is made against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditableFile {
    /// `.ralph/config.json`, `AGENTS.md`, `PROMPT.md`, `IMPLEMENTATION_PLAN.md` or `specs/NAME.md`.
    pub name: String,
    /// `None`: the file does not exist (saving creates it).
    pub text: Option<String>,
    /// The SHA-256 of the bytes read (hex); a save must name it. Empty when the file is missing.
    pub version: String,
    /// `false` for the plan while a loop runs (the agent ticks it).
    pub editable: bool,
}

/// The known keys of `.ralph/config.json`, as the form edits them (other keys are kept).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigForm {
    pub cli: String,
    /// Space-separated.
    pub flags: String,
    pub max_iterations: u32,
    pub test_command: String,
}

/// `data` of a `control` event on `project:ID`: the audit entry of an action, and what it
/// changed that no other event carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlChange {
    pub entry: Option<AuditEntry>,
    #[serde(default)]
    pub start: Option<StartPhase>,
    #[serde(default)]
    pub injection: Option<Injection>,
}
