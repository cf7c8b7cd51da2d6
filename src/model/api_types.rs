//! What the server functions return. Every response that feeds live state carries the cursor of
//! the topic it reflects: subscribing with `since` = that cursor continues exactly after it.

use std::collections::BTreeMap;

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

use super::{Cursor, ProjectSummary, Topic};

/// The dashboard's data: every project and the cursors of `projects` and each `project:ID`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectList {
    pub projects: Vec<ProjectSummary>,
    pub cursors: BTreeMap<Topic, Cursor>,
}
use crate::contract::ralph::{
    config::LoopConfig,
    iterations::{IterationRecord, SkipCounts},
    notification::Notification,
    plan::Plan,
    stats::{Health, Stats},
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectDetail {
    pub summary: ProjectSummary,
    pub plan: Option<Plan>,
    /// Normalized task id -> the iteration that completed it.
    pub completed_in: BTreeMap<String, u32>,
    pub stats: Stats,
    pub config: LoopConfig,
    /// Notifications seen since the server started, newest first.
    pub notifications: Vec<Notification>,
    /// Lines of `iterations.jsonl` that could not be used, by reason.
    pub skipped_rows: SkipCounts,
    /// The `project:ID` cursor this detail reflects.
    pub cursor: Cursor,
    /// The build, for a BuildRunner project (its cursor is this detail's).
    #[serde(default)]
    pub build: Option<super::build::BuildDetail>,
}

/// One row of the iterations table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationRow {
    /// The JSONL row, without `test_output` (fetched with the iteration's log).
    pub record: IterationRecord,
    pub health: Health,
    pub cost_usd: Option<f64>,
    /// The iteration's slice of `ralph.log` is known.
    pub has_log: bool,
    /// Where the row comes from: `iterations.jsonl`, or the log alone (no row was written).
    #[serde(default)]
    pub source: RowSource,
}

/// Where an iterations-table row comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowSource {
    /// A row of `iterations.jsonl` (it wins when the log shows the same iteration).
    #[default]
    Jsonl,
    /// Built from the iteration's header and lines in `ralph.log`: its number, times, tokens and
    /// markers; no tasks, commit or test output.
    Log,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IterationSort {
    #[default]
    Newest,
    Oldest,
    Tokens,
    Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Success,
    Error,
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationQuery {
    pub status: Option<StatusFilter>,
    pub health: Option<Health>,
    pub sort: IterationSort,
    pub offset: u32,
    /// At most [`MAX_PAGE`]; 0 means the default of 50.
    pub limit: u32,
}

pub const MAX_PAGE: u32 = 500;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationPage {
    pub rows: Vec<IterationRow>,
    /// Rows matching the filter, before offset/limit.
    pub total: u32,
    /// The `project:ID` cursor this page reflects.
    pub cursor: Cursor,
    /// The oldest rows of the file the server no longer keeps in memory (its bound on rows is
    /// reached); they are in none of the pages.
    #[serde(default)]
    pub forgotten: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterationLog {
    pub run: u32,
    pub iteration: u32,
    /// The log text (ANSI codes kept for colouring), lossily decoded.
    pub text: String,
    /// The slice was longer than the limit and was cut.
    pub truncated: bool,
    pub test_output: Option<String>,
}

/// The most of the log one [`LogText`] carries (its end): the server's cap, and what the log tab
/// asks for once it is open.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;

/// The log as published so far: load it, then subscribe to `log:ID` with `since` = `cursor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogText {
    pub text: String,
    /// Only the end of a very long log is returned.
    pub truncated: bool,
    pub cursor: Cursor,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextFile {
    /// `AGENTS.md`, `PROMPT.md` or `specs/NAME.md`.
    pub name: String,
    pub text: String,
    pub truncated: bool,
}

/// Why a server function failed, as the browser receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("no project with id {0:?}")]
    UnknownProject(String),
    #[error("project has no iteration {iteration} in run {run}")]
    UnknownIteration { run: u32, iteration: u32 },
    #[error("only AGENTS.md, PROMPT.md and specs/*.md can be shown, not {0:?}")]
    FileNotAllowed(String),
    #[error("{0} does not exist in this project")]
    FileMissing(String),
    #[error("cannot read {0}")]
    Io(String),
    #[error("{0}")]
    ServerFn(ServerFnErrorErr),
    #[error("cannot save the archive: {0}")]
    Archive(String),
    /// The session may not do this (a viewer acting, or a project outside its links).
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("no commit {0:?} in this project's repository")]
    UnknownCommit(String),
    /// git failed, timed out or is missing.
    #[error("{0}")]
    Git(String),
    /// A share link that cannot be made as asked (no project, a bad lifetime).
    #[error("{0}")]
    BadShare(String),
    #[error("no share link {0:?}")]
    UnknownShare(String),
    /// A start while a loop runs (or starts), or an edit of the plan while one runs.
    #[error("a loop is running: {0}")]
    LoopRunning(String),
    /// A stop, pause or resume with no loop to act on.
    #[error("no loop: {0}")]
    NoLoop(String),
    /// The PID in the pid file is not the loop's (dead, reused, or another program): nothing
    /// was signalled.
    #[error("the pid file does not name the loop: {0}")]
    NotTheLoop(String),
    /// The file changed since the operator loaded it; `current` is its text now (`None`: it was
    /// deleted), `version` the version to save against.
    #[error("{name} changed meanwhile")]
    Changed {
        name: String,
        current: Option<String>,
        version: String,
    },
    #[error("{name} is larger than {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    /// A form or file content that cannot be used (bad JSON, a bad value).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The action was allowed but failed (a write, a spawn, a signal).
    #[error("failed: {0}")]
    Control(String),
}

impl ApiError {
    /// The HTTP status a server function answers with when it fails this way.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::UnknownProject(_)
            | ApiError::UnknownIteration { .. }
            | ApiError::FileMissing(_)
            | ApiError::UnknownCommit(_)
            | ApiError::UnknownShare(_) => 404,
            ApiError::FileNotAllowed(_) | ApiError::BadShare(_) | ApiError::Invalid(_) => 400,
            ApiError::LoopRunning(_)
            | ApiError::NoLoop(_)
            | ApiError::NotTheLoop(_)
            | ApiError::Changed { .. } => 409,
            ApiError::TooLarge { .. } => 413,
            ApiError::Forbidden(_) => 403,
            ApiError::Io(_)
            | ApiError::ServerFn(_)
            | ApiError::Archive(_)
            | ApiError::Git(_)
            | ApiError::Control(_) => 500,
        }
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        ApiError::ServerFn(value)
    }
}
