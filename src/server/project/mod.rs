//! One project's live state, kept up to date file by file.
//!
//! `ralph.log` and `iterations.jsonl` are read incrementally by byte offset (an append costs only
//! the appended bytes); each log iteration remembers its byte range so its text is served by a
//! seek. Small files (plan, config, pid, pause, notification) are re-read whole when they change.
//! Every update returns the events describing what changed.

pub mod context_files;
pub mod liveness;
pub mod pairing;
pub mod tail;

use std::{
    collections::{BTreeMap, HashSet},
    io::{self, Read},
    path::{Path, PathBuf},
    time::SystemTime,
};

use crate::contract::{
    ralph::config::{parse_config, LoopConfig},
    ralph::iterations::{parse_line, IterationRecord, LineOutcome, RunTracker, SkipCounts},
    ralph::log::{LogEvent, LogScanner},
    ralph::notification::{parse_notification, Notification, NotificationKind},
    ralph::pid::parse_pid,
    ralph::plan::{normalize_task_id, parse_plan, Plan},
    ralph::stats::{compute_stats, health, Health},
    ralph::status::{derive_status, StatusInputs},
};
use crate::model::{
    api_types::{
        IterationLog, IterationPage, IterationQuery, IterationRow, IterationSort, ProjectDetail,
        StatusFilter, MAX_PAGE,
    },
    protocol::{ServerMessage, StatusChange},
    Cursor, ProjectSummary, Status,
};

use crate::server::{clock::now, safe_open};
use liveness::{loop_liveness, Liveness};
use pairing::Links;
use tail::{read_lines, read_range, Tail, MAX_LINE_BYTES};

pub const PLAN_FILE: &str = "IMPLEMENTATION_PLAN.md";
const LOG_FILE: &str = "ralph.log";
const JSONL_FILE: &str = "iterations.jsonl";
const NOTIFICATION_FILE: &str = "pending-notification.txt";
const CONFIG_FILE: &str = "config.json";
/// A plan, config or notification bigger than this is read only up to here.
const MAX_SMALL_FILE: u64 = 4 * 1024 * 1024;
/// Largest `log_append` payload; more text is split over several events.
const MAX_APPEND_BYTES: usize = 128 * 1024;
/// Largest iteration log served in one response.
pub const MAX_ITERATION_LOG: u64 = 8 * 1024 * 1024;
/// Memory the JSONL rows of one project may take (estimated): past it the oldest rows are
/// forgotten (counted, and said on the iterations tab), down to three quarters of it so the
/// next rows do not trim again at once.
pub const MAX_ROW_BYTES: usize = 16 * 1024 * 1024;
/// Notifications remembered per project.
const NOTIFICATION_HISTORY: usize = 200;
/// Iterations shown in a card's health strip.
const HEALTH_STRIP: usize = 20;
/// A log bigger than this is indexed from its last this-many bytes when the project is opened, so
/// one huge (or sparse) file cannot hold up start-up; older iterations are then not listed.
const LOG_START_WINDOW: u64 = 64 * 1024 * 1024;
/// The same for `iterations.jsonl` (rows are the history: more of it is worth reading).
const JSONL_START_WINDOW: u64 = 256 * 1024 * 1024;
/// Passes that reading a start window may take (each at most `tail::PASS_BYTES`).
const START_PASSES: usize = 64;

/// Which of a project's files changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    Log,
    Jsonl,
    Plan,
    Pid,
    Pause,
    Notification,
    Config,
    /// `AGENTS.md`, `PROMPT.md` or `specs/*.md` (the name relative to the project).
    Context(String),
}

impl FileKind {
    /// What `path` (inside the project at `dir`) is, if loopwatch cares about it.
    pub fn classify(dir: &Path, path: &Path) -> Option<FileKind> {
        let relative = path.strip_prefix(dir).ok()?;
        let parts: Vec<&str> = relative.iter().filter_map(|p| p.to_str()).collect();
        match parts.as_slice() {
            [".ralph", LOG_FILE] => Some(FileKind::Log),
            [".ralph", JSONL_FILE] => Some(FileKind::Jsonl),
            [".ralph", "ralph.pid"] => Some(FileKind::Pid),
            [".ralph", "pause"] => Some(FileKind::Pause),
            [".ralph", NOTIFICATION_FILE] => Some(FileKind::Notification),
            [".ralph", CONFIG_FILE] => Some(FileKind::Config),
            [PLAN_FILE] => Some(FileKind::Plan),
            [name @ ("AGENTS.md" | "PROMPT.md")] => Some(FileKind::Context((*name).to_owned())),
            ["specs", name] if is_spec_name(name) => {
                Some(FileKind::Context(format!("specs/{name}")))
            }
            _ => None,
        }
    }

    /// Every kind, for a full re-read.
    pub fn all() -> Vec<FileKind> {
        vec![
            FileKind::Config,
            FileKind::Plan,
            FileKind::Log,
            FileKind::Jsonl,
            FileKind::Notification,
            FileKind::Pid,
            FileKind::Pause,
        ]
    }
}

/// `specs/NAME.md` with a plain name (no hidden files, no separators).
pub fn is_spec_name(name: &str) -> bool {
    name.ends_with(".md")
        && name.len() > 3
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

/// One iteration as the log shows it.
#[derive(Clone, Debug, PartialEq)]
struct LogIteration {
    run: u32,
    iteration: u32,
    max: u32,
    start: u64,
    end: Option<u64>,
    tokens: Option<f64>,
}

#[derive(Debug)]
struct LogTracker {
    tail: Tail,
    scanner: LogScanner,
    runs: RunTracker,
    iterations: Vec<LogIteration>,
    lines: u64,
}

impl LogTracker {
    fn new(tail: Tail) -> Self {
        Self {
            tail,
            scanner: LogScanner::default(),
            runs: RunTracker::default(),
            iterations: Vec::new(),
            lines: 0,
        }
    }
}

#[derive(Debug)]
struct JsonlTracker {
    tail: Tail,
    runs: RunTracker,
    /// Rows kept in memory without their (possibly large) test output...
    rows: Vec<IterationRecord>,
    /// ...which stays on disk at these line offsets.
    offsets: Vec<u64>,
    /// The run each row's own numbering gives it; a row paired with a log iteration takes the
    /// log's run instead (see [`Links`]), and gets this one back if it loses its pair.
    own_runs: Vec<u32>,
    skipped: SkipCounts,
    /// What the rows take in memory (estimated, see [`row_bytes`]).
    bytes: usize,
    /// The oldest rows dropped to stay within [`MAX_ROW_BYTES`].
    forgotten: u64,
}

impl JsonlTracker {
    fn new(tail: Tail) -> Self {
        Self {
            tail,
            runs: RunTracker::default(),
            rows: Vec::new(),
            offsets: Vec::new(),
            own_runs: Vec::new(),
            skipped: SkipCounts::default(),
            bytes: 0,
            forgotten: 0,
        }
    }
}

/// Forgets the oldest rows (and their offsets and own runs) once the rows pass
/// [`MAX_ROW_BYTES`]; returns how many (their pairing with the log must then be redone).
fn trim_rows(
    rows: &mut Vec<IterationRecord>,
    offsets: &mut Vec<u64>,
    own_runs: &mut Vec<u32>,
    bytes: &mut usize,
) -> usize {
    if *bytes <= MAX_ROW_BYTES {
        return 0;
    }
    let target = MAX_ROW_BYTES / 4 * 3;
    let mut dropped = 0;
    for record in rows.iter() {
        if *bytes <= target {
            break;
        }
        *bytes = bytes.saturating_sub(row_bytes(record));
        dropped += 1;
    }
    rows.drain(..dropped);
    offsets.drain(..dropped.min(offsets.len()));
    own_runs.drain(..dropped.min(own_runs.len()));
    dropped
}

/// What one kept row costs: the record, its strings, and its entries in the parallel vectors
/// and the pairing.
fn row_bytes(record: &IterationRecord) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
    let list = |v: &Vec<String>| {
        v.capacity() * std::mem::size_of::<String>() + v.iter().map(String::capacity).sum::<usize>()
    };
    let status = match &record.status {
        crate::contract::ralph::iterations::IterationStatus::Other(text) => text.capacity(),
        _ => 0,
    };
    std::mem::size_of::<IterationRecord>()
        + 64
        + text(&record.start)
        + text(&record.end)
        + text(&record.commit)
        + text(&record.commit_message)
        + text(&record.test_output)
        + list(&record.tasks_completed)
        + list(&record.errors)
        + status
}

#[derive(Debug)]
pub struct ProjectState {
    id: String,
    dir: PathBuf,
    log: LogTracker,
    jsonl: JsonlTracker,
    plan: Option<Plan>,
    config: LoopConfig,
    notifications: Vec<Notification>,
    seen_notifications: HashSet<String>,
    /// Which log iteration each JSONL row belongs to.
    links: Links,
    loop_alive: bool,
    pause_requested: bool,
    warnings: BTreeMap<&'static str, String>,
    summary: ProjectSummary,
    last_activity: Option<SystemTime>,
    /// Set by the operator (kept in the data directory, never in the project).
    archived_at: Option<String>,
}

impl ProjectState {
    /// Indexes every file of the project (streaming: a huge log is read once, not kept).
    pub fn open(id: &str, dir: &Path) -> Self {
        let mut state = Self {
            id: id.to_owned(),
            dir: dir.to_path_buf(),
            log: LogTracker::new(Tail::beneath(dir, ralph_path(LOG_FILE), MAX_LINE_BYTES)),
            jsonl: JsonlTracker::new(Tail::beneath(dir, ralph_path(JSONL_FILE), MAX_LINE_BYTES)),
            plan: None,
            config: LoopConfig::default(),
            notifications: Vec::new(),
            seen_notifications: HashSet::new(),
            links: Links::default(),
            loop_alive: false,
            pause_requested: false,
            warnings: BTreeMap::new(),
            summary: placeholder_summary(id, dir),
            last_activity: None,
            archived_at: None,
        };
        // A huge file is indexed from near its end only (a bounded read whatever its size).
        let skipped = [
            (
                "log_start",
                LOG_FILE,
                state.log.tail.start_near_end(LOG_START_WINDOW),
            ),
            (
                "jsonl_start",
                JSONL_FILE,
                state.jsonl.tail.start_near_end(JSONL_START_WINDOW),
            ),
        ];
        for (key, name, skipped) in skipped {
            if let Ok(skipped @ 1..) = skipped {
                state.warnings.insert(
                    key,
                    format!(
                        "{name} is too big to index whole: its first {} were skipped \
                         (older iterations are not listed)",
                        human_bytes(skipped)
                    ),
                );
            }
        }
        for kind in FileKind::all() {
            // The initial read reports nothing: there is no one to tell yet.
            let _ = state.read(&kind, false);
        }
        // The start windows are bounded: read them whole now (the rest of a file that keeps
        // growing is caught up by later passes).
        for _ in 0..START_PASSES {
            let kinds = state.unfinished();
            if kinds.is_empty() {
                break;
            }
            for kind in kinds {
                let _ = state.read(&kind, false);
            }
        }
        state.relink();
        state.summary = state.build_summary();
        state
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn summary(&self) -> &ProjectSummary {
        &self.summary
    }

    /// Marks the project archived (since `at`) or not; the card reflects it at once.
    pub fn set_archived_at(&mut self, at: Option<String>) {
        self.summary.archived_at.clone_from(&at);
        self.archived_at = at;
    }

    /// The last `lines` lines of `ralph.log` that have been published (at most 1 MiB of them).
    pub fn log_backlog(&self, lines: u32) -> io::Result<String> {
        self.log_view().backlog(lines)
    }

    /// The published part of `ralph.log` (up to `tail.offset()`), at most `max` bytes: the last
    /// ones, starting at a line boundary. Returns the text and whether it was cut.
    pub fn log_text(&self, max: u64) -> io::Result<(String, bool)> {
        self.log_view().text(max)
    }

    /// What serving the published log needs: taken under the project's lock, read after it.
    pub fn log_view(&self) -> LogView {
        let end = self.log.tail.offset();
        LogView {
            dir: self.log.tail.dir().to_path_buf(),
            rel: self.log.tail.rel().to_owned(),
            end,
            long_lines: self.log.tail.long_lines(0, end),
        }
    }

    /// The files whose last pass stopped at its byte budget: they want another pass soon.
    pub fn unfinished(&self) -> Vec<FileKind> {
        let mut kinds = Vec::new();
        if self.log.tail.behind() {
            kinds.push(FileKind::Log);
        }
        if self.jsonl.tail.behind() {
            kinds.push(FileKind::Jsonl);
        }
        kinds
    }

    /// Notifications seen since the server started, oldest first.
    pub fn notifications(&self) -> &[Notification] {
        &self.notifications
    }

    /// Lines of `ralph.log` read so far.
    pub fn log_lines(&self) -> u64 {
        self.log.lines
    }

    /// Iteration headers found in `ralph.log`.
    pub fn log_iterations(&self) -> usize {
        self.log.iterations.len()
    }

    /// Re-reads the changed files and returns the events for what changed.
    pub fn update(&mut self, kinds: &[FileKind]) -> Vec<ServerMessage> {
        let mut events = Vec::new();
        for kind in kinds {
            events.extend(self.read(kind, true));
        }
        if kinds.contains(&FileKind::Log) {
            // A header read after its row (different batches) pairs up now.
            self.relink();
        }
        let fresh = self.build_summary();
        if fresh.status != self.summary.status {
            events.push(ServerMessage::StatusChanged {
                project: self.id.clone(),
                timestamp: now(),
                data: StatusChange {
                    status: fresh.status,
                    previous: self.summary.status,
                },
            });
        }
        if fresh.plan != self.summary.plan {
            events.push(ServerMessage::PlanUpdated {
                project: self.id.clone(),
                timestamp: now(),
                data: fresh.plan.clone().unwrap_or_default(),
            });
        }
        if card_changed(&self.summary, &fresh) {
            events.push(ServerMessage::ProjectUpdated {
                project: self.id.clone(),
                timestamp: now(),
                data: fresh.clone(),
            });
        }
        self.summary = fresh;
        events
    }

    fn read(&mut self, kind: &FileKind, report: bool) -> Vec<ServerMessage> {
        let ralph = self.dir.join(".ralph");
        match kind {
            FileKind::Log => self.read_log(report),
            FileKind::Jsonl => self.read_jsonl(report),
            FileKind::Plan => {
                self.plan = match read_small(&self.dir, PLAN_FILE) {
                    Ok(None) => None,
                    Ok(Some(bytes)) => Some(parse_plan(&String::from_utf8_lossy(&bytes))),
                    Err(error) => {
                        self.warn("plan", format!("cannot read {PLAN_FILE}: {error}"));
                        return Vec::new();
                    }
                };
                self.warnings.remove("plan");
                Vec::new()
            }
            FileKind::Config => {
                match read_small(&self.dir, &ralph_path(CONFIG_FILE)) {
                    Ok(None) => {
                        self.config = LoopConfig::default();
                        self.warnings.remove("config");
                    }
                    Ok(Some(bytes)) => {
                        let (config, warnings) = parse_config(&bytes);
                        self.config = config;
                        if warnings.is_empty() {
                            self.warnings.remove("config");
                        } else {
                            self.warn("config", format!("config.json: {}", warnings.join("; ")));
                        }
                    }
                    Err(error) => self.warn("config", format!("cannot read config.json: {error}")),
                }
                Vec::new()
            }
            FileKind::Pid => {
                self.loop_alive = self.check_pid();
                // The periodic liveness pass re-checks `specs/` too: no file event announces a
                // directory swapped for a link.
                self.check_specs();
                Vec::new()
            }
            FileKind::Pause => {
                self.pause_requested = ralph.join("pause").exists();
                Vec::new()
            }
            FileKind::Notification => self.read_notification(report),
            FileKind::Context(name) => {
                if report && self.dir.join(name).exists() {
                    vec![ServerMessage::FileChanged {
                        project: self.id.clone(),
                        timestamp: now(),
                        data: crate::model::protocol::FileChange { file: name.clone() },
                    }]
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn warn(&mut self, key: &'static str, message: String) {
        self.warnings.insert(key, message);
    }

    /// Warns when `specs/` exists but is refused (a link, another file system).
    fn check_specs(&mut self) {
        match safe_open::dir_ok(&self.dir, "specs") {
            Ok(_) => {
                self.warnings.remove("specs");
            }
            Err(safe_open::OpenError::Refused(refused)) => {
                self.warn("specs", format!("specs/ is not listed: {refused}"))
            }
            Err(error) => self.warn("specs", format!("cannot read specs/: {error}")),
        }
    }

    fn check_pid(&mut self) -> bool {
        let path = ralph_path("ralph.pid");
        let bytes = match read_small(&self.dir, &path) {
            Ok(None) => {
                self.warnings.remove("pid");
                return false;
            }
            Ok(Some(bytes)) => bytes,
            Err(error) => {
                self.warn("pid", format!("cannot read ralph.pid: {error}"));
                return false;
            }
        };
        let pid = match parse_pid(&String::from_utf8_lossy(&bytes)) {
            Ok(pid) => pid,
            Err(error) => {
                self.warn("pid", error.to_string());
                return false;
            }
        };
        let written = modified(&self.dir, &path);
        match written.map(|written| loop_liveness(pid, written)) {
            Ok(Liveness::Alive) => {
                self.warnings.remove("pid");
                true
            }
            Ok(Liveness::Dead) => {
                self.warnings.remove("pid");
                false
            }
            Ok(Liveness::Reused) => {
                self.warn(
                    "pid",
                    format!("ralph.pid names PID {pid}, which now belongs to another process"),
                );
                false
            }
            Err(error) => {
                self.warn("pid", format!("cannot read ralph.pid's time: {error}"));
                false
            }
        }
    }

    fn read_log(&mut self, report: bool) -> Vec<ServerMessage> {
        let mut events = Vec::new();
        let mut appended = String::new();
        let log = &mut self.log;
        let id = &self.id;
        let mut started = Vec::new();
        let result = log.tail.read_new(|offset, bytes| {
            let line = String::from_utf8_lossy(bytes);
            match log.scanner.push(offset, &line) {
                Some(LogEvent::IterationStarted { header, offset }) => {
                    if let Some(previous) = log.iterations.last_mut() {
                        previous.end.get_or_insert(offset);
                    }
                    let run = log.runs.assign(header.iteration);
                    log.iterations.push(LogIteration {
                        run,
                        iteration: header.iteration,
                        max: header.max,
                        start: offset,
                        end: None,
                        tokens: None,
                    });
                    started.push((header, run));
                }
                Some(LogEvent::Tokens { thousands }) => {
                    if let Some(current) = log.iterations.last_mut() {
                        current.tokens = Some(current.tokens.unwrap_or(0.0) + thousands);
                    }
                }
                Some(LogEvent::Marker(_)) | None => {}
            }
            log.lines += 1;
            if report {
                if appended.len() + line.len() + 1 > MAX_APPEND_BYTES && !appended.is_empty() {
                    events.push(log_append(id, std::mem::take(&mut appended)));
                }
                appended.push_str(&line);
                appended.push('\n');
            }
        });
        match result {
            Ok(outcome) => {
                self.warnings.remove("log");
                if outcome.restarted.is_some() {
                    // Restarted from byte 0: the old iteration ranges mean nothing now. The lines
                    // just read were scanned into the old state, so rebuild from scratch.
                    self.log = LogTracker::new(self.log.tail.fresh());
                    self.warnings.remove("log_start");
                    // The headers are new: pair every row again.
                    self.links.reset();
                    let _ = self.read_log(false);
                    if report {
                        return vec![ServerMessage::LogRotated {
                            project: self.id.clone(),
                            timestamp: now(),
                        }];
                    }
                    return Vec::new();
                }
                if outcome.bytes > 0 {
                    self.last_activity = Some(SystemTime::now());
                }
            }
            Err(error) => self.warn("log", format!("cannot read ralph.log: {error}")),
        }
        if report {
            for (header, run) in started {
                events.push(ServerMessage::IterationStarted {
                    project: self.id.clone(),
                    timestamp: now(),
                    data: crate::model::protocol::IterationStart {
                        iteration: header.iteration,
                        max: header.max,
                        loop_index: header.loop_index,
                        run,
                    },
                });
            }
            if !appended.is_empty() {
                events.push(log_append(&self.id, appended));
            }
        }
        events
    }

    fn read_jsonl(&mut self, report: bool) -> Vec<ServerMessage> {
        let jsonl = &mut self.jsonl;
        let mut fresh: Vec<usize> = Vec::new();
        let mut trimmed = false;
        let result = jsonl
            .tail
            .read_new(|offset, bytes| match parse_line(bytes) {
                LineOutcome::Record(mut record) => {
                    record.run = jsonl.runs.assign(record.iteration);
                    // Kept on disk, not in memory: served with the iteration's log.
                    record.test_output = None;
                    fresh.push(jsonl.rows.len());
                    jsonl.own_runs.push(record.run);
                    jsonl.bytes = jsonl.bytes.saturating_add(row_bytes(&record));
                    jsonl.rows.push(record);
                    jsonl.offsets.push(offset);
                    // Trimmed as rows arrive, so one huge read pass stays within the bound too.
                    let dropped = trim_rows(
                        &mut jsonl.rows,
                        &mut jsonl.offsets,
                        &mut jsonl.own_runs,
                        &mut jsonl.bytes,
                    );
                    if dropped > 0 {
                        trimmed = true;
                        jsonl.forgotten = jsonl.forgotten.saturating_add(dropped as u64);
                        fresh.retain(|&index| index >= dropped);
                        fresh.iter_mut().for_each(|index| *index -= dropped);
                    }
                }
                LineOutcome::Blank => {}
                LineOutcome::Skipped(reason) => jsonl.skipped.add(reason),
            });
        if trimmed {
            // Row indices moved: pair every kept row again.
            self.links.reset();
        }
        match result {
            Ok(outcome) => {
                self.warnings.remove("jsonl");
                if outcome.restarted.is_some() {
                    self.jsonl = JsonlTracker::new(self.jsonl.tail.fresh());
                    self.warnings.remove("jsonl_start");
                    // The rows are new: pair them all again.
                    self.links.reset();
                    // Re-read from scratch; clients get the new rows as a whole-card update.
                    let _ = self.read_jsonl(false);
                    return Vec::new();
                }
                if outcome.bytes > 0 {
                    self.last_activity = Some(SystemTime::now());
                }
            }
            Err(error) => self.warn("jsonl", format!("cannot read iterations.jsonl: {error}")),
        }
        self.relink();
        if !report {
            return Vec::new();
        }
        let price = self.config.price_per_k_tokens().0;
        fresh
            .into_iter()
            .filter_map(|i| self.jsonl.rows.get(i))
            .map(|record| ServerMessage::IterationCompleted {
                project: self.id.clone(),
                timestamp: now(),
                data: crate::model::protocol::IterationDone {
                    iteration: record.iteration,
                    max: record.max,
                    run: record.run,
                    duration_seconds: record.duration_seconds,
                    tokens: record.tokens,
                    cost_usd: record.tokens.map(|k| k * price),
                    status: record.status.clone(),
                    health: health(record),
                    tasks_completed: record.tasks_completed.clone(),
                    commit: record.commit.clone(),
                    test_passed: record.test_passed,
                    errors: record.errors.clone(),
                },
            })
            .collect()
    }

    fn read_notification(&mut self, report: bool) -> Vec<ServerMessage> {
        let bytes = match read_small(&self.dir, &ralph_path(NOTIFICATION_FILE)) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Vec::new(),
            Err(error) => {
                self.warn(
                    "notification",
                    format!("cannot read {NOTIFICATION_FILE}: {error}"),
                );
                return Vec::new();
            }
        };
        self.warnings.remove("notification");
        let Ok(notification) = parse_notification(&bytes) else {
            // An empty file: nothing pending.
            return Vec::new();
        };
        if !self.seen_notifications.insert(notification.id.clone()) {
            return Vec::new();
        }
        self.notifications.push(notification.clone());
        if self.notifications.len() > NOTIFICATION_HISTORY {
            let excess = self.notifications.len() - NOTIFICATION_HISTORY;
            self.notifications.drain(..excess);
        }
        self.last_activity = Some(SystemTime::now());
        if report {
            vec![ServerMessage::Notification {
                project: self.id.clone(),
                timestamp: now(),
                data: notification,
            }]
        } else {
            Vec::new()
        }
    }

    fn build_summary(&self) -> ProjectSummary {
        let last_row = self.jsonl.rows.last();
        let last_header = self.log.iterations.last();
        // The current iteration starts when its header appears in the log.
        let iteration = match (last_header, last_row) {
            (Some(header), _) => Some(header.iteration),
            (None, Some(row)) => Some(row.iteration),
            (None, None) => None,
        };
        let max_iterations = last_header
            .map(|h| h.max)
            .or(last_row.map(|r| r.max))
            .or(self.config.max_iterations)
            .unwrap_or(0);
        let tokens = self.total_tokens();
        let price = self.config.price_per_k_tokens().0;
        let last_failed = last_row.is_some_and(|row| health(row) == Health::Failed);
        let alarm_is_newer = self.pending_alarm_is_newer();
        let status = derive_status(StatusInputs {
            loop_alive: self.loop_alive,
            pause_requested: self.pause_requested,
            plan_complete: self.plan.as_ref().is_some_and(Plan::is_complete),
            last_iteration_failed: last_failed || alarm_is_newer,
        });
        // The loop honours a pause at the next iteration boundary: until the current
        // iteration's row lands, it is still working.
        let current_unfinished = self
            .log
            .iterations
            .len()
            .checked_sub(1)
            .is_some_and(|last| !self.links.has_row(last));
        let pausing = status == Status::Paused && current_unfinished;
        let recent_health = self
            .jsonl
            .rows
            .iter()
            .rev()
            .take(HEALTH_STRIP)
            .rev()
            .map(health)
            .collect();
        ProjectSummary {
            id: self.id.clone(),
            name: self.summary.name.clone(),
            path: self.dir.display().to_string(),
            status,
            plan: self.plan.as_ref().map(Plan::progress),
            warnings: self.warnings.values().cloned().collect(),
            iteration,
            max_iterations,
            tokens,
            cost_usd: tokens * price,
            last_activity: self
                .last_activity
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            recent_health,
            pausing,
            archived_at: self.archived_at.clone(),
        }
    }

    /// Pairs the JSONL rows with the log's iterations (see [`Links`]: incrementally, so an
    /// append costs the rows it re-pairs). A paired row takes the log's run, since the log has
    /// every header and so the true count of restarts; an unpaired one keeps its own.
    fn relink(&mut self) {
        let first_changed = self.links.update(
            &self.log.iterations,
            |header| header.iteration,
            &self.jsonl.rows,
            |row| row.iteration,
        );
        for index in first_changed..self.jsonl.rows.len() {
            let run = match self.links.header_of(index) {
                Some(header) => self.log.iterations.get(header).map(|it| it.run),
                None => None,
            };
            let own = self.jsonl.own_runs.get(index).copied();
            if let (Some(record), Some(run)) = (self.jsonl.rows.get_mut(index), run.or(own)) {
                record.run = run;
            }
        }
    }

    /// Tokens from the JSONL rows, plus the log's count for iterations that have no row yet.
    fn total_tokens(&self) -> f64 {
        let from_rows: f64 = self.jsonl.rows.iter().filter_map(|row| row.tokens).sum();
        let from_log: f64 = self
            .log
            .iterations
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.links.has_row(*i))
            .filter_map(|(_, it)| it.tokens)
            .sum();
        // Starting from +0.0: an empty f64 sum is -0.0, which would show as "-0k".
        0.0 + from_rows + from_log
    }

    /// A pending ERROR/BLOCKED notification written after the last iteration row.
    fn pending_alarm_is_newer(&self) -> bool {
        let Some(latest) = self.notifications.last() else {
            return false;
        };
        if !matches!(
            latest.kind,
            NotificationKind::Error | NotificationKind::Blocked
        ) {
            return false;
        }
        let modified = |name: &str| modified(&self.dir, &ralph_path(name)).ok();
        match (modified(NOTIFICATION_FILE), modified(JSONL_FILE)) {
            (Some(note), Some(rows)) => note > rows,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The project's full state, as of `cursor` (its `project:ID` topic).
    pub fn detail(&self, cursor: Cursor) -> ProjectDetail {
        let records = &self.jsonl.rows;
        let plan = self.plan.clone().unwrap_or_default();
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let stats = compute_stats(records, &plan, self.config.price_per_k_tokens().0, now_unix);
        let mut completed_in = BTreeMap::new();
        for record in records {
            for id in &record.tasks_completed {
                completed_in
                    .entry(normalize_task_id(id))
                    .or_insert(record.iteration);
            }
        }
        ProjectDetail {
            summary: self.summary.clone(),
            plan: self.plan.clone(),
            completed_in,
            stats,
            config: self.config.clone(),
            notifications: self.notifications.iter().rev().cloned().collect(),
            skipped_rows: self.jsonl.skipped,
            cursor,
        }
    }

    pub fn iterations(&self, query: &IterationQuery, cursor: Cursor) -> IterationPage {
        let price = self.config.price_per_k_tokens().0;

        // Filter and sort references; only the requested page is cloned.
        let mut rows: Vec<(usize, &IterationRecord)> = self
            .jsonl
            .rows
            .iter()
            .enumerate()
            .filter(|(_, record)| match query.status {
                None => true,
                Some(StatusFilter::Success) => record.status.is_success(),
                Some(StatusFilter::Error) => record.status.is_error(),
                Some(StatusFilter::Other) => {
                    !record.status.is_success() && !record.status.is_error()
                }
            })
            .filter(|(_, record)| query.health.is_none_or(|h| health(record) == h))
            .collect();
        match query.sort {
            IterationSort::Newest => {
                rows.sort_by_key(|(_, record)| std::cmp::Reverse((record.run, record.iteration)))
            }
            IterationSort::Oldest => rows.sort_by_key(|(_, record)| (record.run, record.iteration)),
            IterationSort::Tokens => rows.sort_by(|(_, a), (_, b)| {
                b.tokens.unwrap_or(0.0).total_cmp(&a.tokens.unwrap_or(0.0))
            }),
            IterationSort::Duration => rows.sort_by(|(_, a), (_, b)| {
                b.duration_seconds
                    .unwrap_or(0.0)
                    .total_cmp(&a.duration_seconds.unwrap_or(0.0))
            }),
        }
        let total = rows.len() as u32;
        let limit = match query.limit {
            0 => 50,
            n => n.min(MAX_PAGE),
        };
        let rows = rows
            .into_iter()
            .skip(query.offset as usize)
            .take(limit as usize)
            .map(|(index, record)| IterationRow {
                health: health(record),
                cost_usd: record.tokens.map(|k| k * price),
                has_log: self.links.header_of(index).is_some(),
                record: record.clone(),
            })
            .collect();
        IterationPage {
            rows,
            total,
            cursor,
            forgotten: self.jsonl.forgotten,
        }
    }

    /// Where iteration `iteration` of run `run` lives: its log range and its JSONL line.
    pub fn iteration_location(&self, run: u32, iteration: u32) -> Option<IterationLocation> {
        let row_index = self
            .jsonl
            .rows
            .iter()
            .position(|row| row.run == run && row.iteration == iteration);
        let log_index = match row_index {
            Some(r) => self.links.header_of(r),
            // No row yet (the current iteration): the log's own numbering.
            None => self
                .log
                .iterations
                .iter()
                .enumerate()
                .rev()
                .find(|(i, it)| {
                    !self.links.has_row(*i) && it.run == run && it.iteration == iteration
                })
                .map(|(i, _)| i),
        };
        let log = log_index
            .and_then(|i| self.log.iterations.get(i))
            .map(|it| (it.start, it.end));
        let row = row_index.and_then(|i| self.jsonl.offsets.get(i).copied());
        let long_lines = match log {
            Some((start, end)) => self.log.tail.long_lines(start, end.unwrap_or(u64::MAX)),
            None => Vec::new(),
        };
        (log.is_some() || row.is_some()).then(|| IterationLocation {
            dir: self.dir.clone(),
            log_rel: self.log.tail.rel().to_owned(),
            log,
            long_lines,
            jsonl_rel: self.jsonl.tail.rel().to_owned(),
            row,
        })
    }
}

/// What is needed to serve one iteration's details without holding the project's lock.
#[derive(Clone, Debug)]
pub struct IterationLocation {
    dir: PathBuf,
    log_rel: String,
    log: Option<(u64, Option<u64>)>,
    /// The over-long lines of the slice: read only as far as their cut.
    long_lines: Vec<(u64, u64)>,
    jsonl_rel: String,
    row: Option<u64>,
}

impl IterationLocation {
    /// Reads the iteration's log slice and its test output (file I/O: call off the lock).
    pub fn load(&self, run: u32, iteration: u32) -> io::Result<IterationLog> {
        let (text, truncated) = match self.log {
            Some((start, end)) => {
                // The current iteration runs to the end of the file (its unfinished line too).
                let end = match end {
                    Some(end) => end,
                    None => safe_open::open(&self.dir, &self.log_rel)?.metadata()?.len(),
                };
                let truncated = end.saturating_sub(start) > MAX_ITERATION_LOG;
                let stop = end.min(start.saturating_add(MAX_ITERATION_LOG));
                let text = read_lines(&self.dir, &self.log_rel, start, stop, &self.long_lines)?;
                (text, truncated)
            }
            None => (String::new(), false),
        };
        let test_output = match self.row {
            Some(offset) => {
                let bytes = read_range(&self.dir, &self.jsonl_rel, offset, None, MAX_SMALL_FILE)?;
                let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
                match parse_line(line) {
                    LineOutcome::Record(record) => record.test_output,
                    _ => None,
                }
            }
            None => None,
        };
        Ok(IterationLog {
            run,
            iteration,
            text,
            truncated,
            test_output,
        })
    }
}

fn log_append(project: &str, lines: String) -> ServerMessage {
    ServerMessage::LogAppend {
        project: project.to_owned(),
        timestamp: now(),
        data: crate::model::protocol::LogLines { lines },
    }
}

/// Card fields other than status and plan (those have their own events).
fn card_changed(old: &ProjectSummary, new: &ProjectSummary) -> bool {
    old.warnings != new.warnings
        || old.iteration != new.iteration
        || old.max_iterations != new.max_iterations
        || old.tokens != new.tokens
        || old.cost_usd != new.cost_usd
        || old.recent_health != new.recent_health
        || old.pausing != new.pausing
}

fn placeholder_summary(id: &str, dir: &Path) -> ProjectSummary {
    ProjectSummary {
        id: id.to_owned(),
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string()),
        path: dir.display().to_string(),
        status: Status::Stopped,
        plan: None,
        warnings: Vec::new(),
        iteration: None,
        max_iterations: 0,
        tokens: 0.0,
        cost_usd: 0.0,
        last_activity: None,
        recent_health: Vec::new(),
        pausing: false,
        archived_at: None,
    }
}

/// Reads a small project file (`rel` inside `dir`) whole, at most [`MAX_SMALL_FILE`] of it.
/// `Ok(None)` when it does not exist; a refused file (link, FIFO, ...) is an error.
pub fn read_small(dir: &Path, rel: &str) -> io::Result<Option<Vec<u8>>> {
    let file = match safe_open::open(dir, rel) {
        Ok(file) => file,
        Err(safe_open::OpenError::Missing(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SMALL_FILE).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// When a project file was last written (read from its handle, under the same rules).
fn modified(dir: &Path, rel: &str) -> io::Result<SystemTime> {
    safe_open::open(dir, rel)
        .map_err(io::Error::from)?
        .metadata()?
        .modified()
}

/// `.ralph/NAME`, the path of a loop file inside the project.
fn ralph_path(name: &str) -> String {
    format!(".ralph/{name}")
}

/// A byte count for a warning: `20.0 GiB`, `512.0 MiB`, `900 bytes`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    UNITS.iter().find(|(_, size)| bytes >= *size).map_or_else(
        || format!("{bytes} bytes"),
        |(unit, size)| format!("{:.1} {unit}", bytes as f64 / *size as f64),
    )
}

/// What serving the published log needs, copied out of the project's state so the file is read
/// without holding the project's lock.
#[derive(Clone, Debug)]
pub struct LogView {
    dir: PathBuf,
    rel: String,
    /// The published offset: every byte before it was delivered as whole lines.
    end: u64,
    long_lines: Vec<(u64, u64)>,
}

impl LogView {
    /// The last `max` published bytes as whole lines (each cut at the line limit like the live
    /// stream), and whether earlier text was left out.
    pub fn text(&self, max: u64) -> io::Result<(String, bool)> {
        if self.end == 0 {
            // Nothing published (perhaps because the file is refused): nothing to open.
            return Ok((String::new(), false));
        }
        let start = self.end.saturating_sub(max);
        match read_lines(&self.dir, &self.rel, start, self.end, &self.long_lines) {
            Ok(text) => Ok((text, start > 0)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok((String::new(), false)),
            Err(error) => Err(error),
        }
    }

    /// The last `lines` published lines (from at most the last 1 MiB).
    pub fn backlog(&self, lines: u32) -> io::Result<String> {
        const MAX_BACKLOG_BYTES: u64 = 1024 * 1024;
        if lines == 0 || self.end == 0 {
            return Ok(String::new());
        }
        let (text, _) = self.text(MAX_BACKLOG_BYTES)?;
        // The text ends at a line boundary; count newlines back from it.
        let bytes = text.as_bytes();
        let mut seen = 0;
        for (index, byte) in bytes.iter().enumerate().rev().skip(1) {
            if *byte == b'\n' {
                seen += 1;
                if seen == lines {
                    return Ok(text[index + 1..].to_owned());
                }
            }
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{fs, io::Write};

    fn project() -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("p");
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        (temp, dir)
    }

    fn append(path: &Path, text: &str) {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("append");
    }

    #[test]
    fn appends_cost_only_the_appended_lines_and_ranges_are_exact() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(&log, "=== Iteration 1/3 ===\none\n");
        let mut state = ProjectState::open("p", &dir);
        assert_eq!(state.log_lines(), 2);

        append(&log, "two\n=== Iteration 2/3 ===\nthree\npartial");
        let events = state.update(&[FileKind::Log]);
        assert_eq!(
            state.log_lines(),
            5,
            "only the new complete lines were read"
        );
        let appended: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                ServerMessage::LogAppend { data, .. } => Some(data.lines.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(appended, ["two\n=== Iteration 2/3 ===\nthree\n"]);
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerMessage::IterationStarted { data, .. } if data.iteration == 2 && data.max == 3)));
        assert_eq!(state.summary().iteration, Some(2));

        let first = state.iteration_location(1, 1).expect("iteration 1 known");
        let text = first.load(1, 1).expect("load").text;
        assert_eq!(text, "=== Iteration 1/3 ===\none\ntwo\n");
        let second = state.iteration_location(1, 2).expect("iteration 2 known");
        assert_eq!(
            second.load(1, 2).expect("load").text,
            "=== Iteration 2/3 ===\nthree\npartial"
        );
    }

    #[test]
    fn a_truncated_log_is_reindexed_and_reported() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(
            &log,
            "=== Iteration 1/3 ===\n=== Iteration 2/3 ===\nlots of text here\n",
        );
        let mut state = ProjectState::open("p", &dir);
        assert_eq!(state.log_iterations(), 2);

        fs::write(&log, "=== Iteration 7/9 ===\n").expect("truncate");
        let events = state.update(&[FileKind::Log]);
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerMessage::LogRotated { .. })));
        assert_eq!(state.log_iterations(), 1);
        assert_eq!(state.summary().iteration, Some(7));
        assert!(
            state.iteration_location(1, 1).is_none(),
            "old ranges are gone"
        );
    }

    #[test]
    fn rows_past_the_memory_bound_forget_the_oldest_and_count_them() {
        let (_temp, dir) = project();
        let path = dir.join(".ralph/iterations.jsonl");
        let per_row = row_bytes(
            &crate::contract::ralph::iterations::parse_all(b"{\"iteration\":1}\n")
                .0
                .remove(0),
        );
        let written = MAX_ROW_BYTES / per_row + 1000;
        let text: String = (1..=written)
            .map(|n| format!("{{\"iteration\":{n}}}\n"))
            .collect();
        append(&path, &text);
        let mut state = ProjectState::open("p", &dir);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert!(page.forgotten > 0, "the oldest rows are forgotten");
        assert_eq!(page.forgotten + u64::from(page.total), written as u64);
        assert!(state.jsonl.bytes <= MAX_ROW_BYTES);
        assert_eq!(
            page.rows[0].record.iteration as usize, written,
            "the newest is kept"
        );

        append(&path, &format!("{{\"iteration\":{}}}\n", written + 1));
        state.update(&[FileKind::Jsonl]);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert_eq!(page.rows[0].record.iteration as usize, written + 1);
        assert_eq!(page.forgotten + u64::from(page.total), written as u64 + 1);
    }

    #[test]
    fn replaced_jsonl_is_reread_and_rows_keep_no_test_output_in_memory() {
        let (_temp, dir) = project();
        let rows = dir.join(".ralph/iterations.jsonl");
        append(
            &rows,
            "{\"iteration\":1,\"status\":\"success\",\"test_output\":\"big\"}\n",
        );
        let mut state = ProjectState::open("p", &dir);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert_eq!(page.total, 1);
        assert_eq!(page.rows[0].record.test_output, None);

        let replacement = dir.join(".ralph/new.jsonl");
        fs::write(
            &replacement,
            "{\"iteration\":1,\"status\":\"error\"}\n{\"iteration\":2,\"status\":\"success\"}\n",
        )
        .expect("write");
        fs::rename(&replacement, &rows).expect("replace");
        state.update(&[FileKind::Jsonl]);
        let page = state.iterations(
            &IterationQuery {
                sort: IterationSort::Oldest,
                ..IterationQuery::default()
            },
            Cursor::default(),
        );
        assert_eq!(page.total, 2);
        assert!(page.rows[0].record.status.is_error());
        assert_eq!(
            state.summary().recent_health,
            [Health::Failed, Health::Partial]
        );
    }

    #[test]
    fn context_paths_are_classified_and_nothing_else() {
        let dir = Path::new("/p");
        let kind = |rel: &str| FileKind::classify(dir, &dir.join(rel));
        assert_eq!(kind(".ralph/ralph.log"), Some(FileKind::Log));
        assert_eq!(kind("IMPLEMENTATION_PLAN.md"), Some(FileKind::Plan));
        assert_eq!(
            kind("specs/a.md"),
            Some(FileKind::Context("specs/a.md".into()))
        );
        assert_eq!(kind("specs/deep/a.md"), None);
        assert_eq!(kind("src/main.rs"), None);
        assert_eq!(kind(".ralph/other"), None);
        assert_eq!(
            FileKind::classify(dir, Path::new("/elsewhere/AGENTS.md")),
            None
        );
    }

    #[test]
    fn backlog_is_the_last_published_lines() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(&log, "one\ntwo\nthree\nunfinished");
        let state = ProjectState::open("p", &dir);
        assert_eq!(state.log_backlog(2).expect("backlog"), "two\nthree\n");
        assert_eq!(state.log_backlog(10).expect("backlog"), "one\ntwo\nthree\n");
        assert_eq!(state.log_backlog(0).expect("backlog"), "");
    }

    #[test]
    fn an_empty_project_has_zero_tokens_not_negative_zero() {
        let (_temp, dir) = project();
        let state = ProjectState::open("p", &dir);
        assert!(state.summary().tokens.is_sign_positive());
        assert!(state.summary().cost_usd.is_sign_positive());
    }

    #[test]
    fn a_pause_shows_as_pausing_until_the_current_iteration_ends() {
        let (_temp, dir) = project();
        fs::write(dir.join(".ralph/ralph.pid"), std::process::id().to_string()).expect("pid");
        fs::write(dir.join(".ralph/pause"), "").expect("pause");
        append(
            &dir.join(".ralph/ralph.log"),
            "=== Iteration 1/3 ===\nworking\n",
        );
        let mut state = ProjectState::open("p", &dir);
        assert_eq!(state.summary().status, Status::Paused);
        assert!(state.summary().pausing, "iteration 1 is still running");

        append(
            &dir.join(".ralph/iterations.jsonl"),
            "{\"iteration\":1,\"status\":\"success\"}\n",
        );
        let events = state.update(&[FileKind::Jsonl]);
        assert!(
            !state.summary().pausing,
            "the iteration ended: now really paused"
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerMessage::ProjectUpdated { .. })));
    }

    /// Each row's (run, iteration, has a log slice), then the card's tokens, pausing and
    /// iteration.
    type PairedView = (Vec<(u32, u32, bool)>, f64, bool, Option<u32>);

    /// What pairing decides, as the iterations table and the card show it.
    fn paired_view(state: &ProjectState) -> PairedView {
        let page = state.iterations(
            &IterationQuery {
                sort: IterationSort::Oldest,
                limit: MAX_PAGE,
                ..IterationQuery::default()
            },
            Cursor::default(),
        );
        let rows = page
            .rows
            .iter()
            .map(|row| (row.record.run, row.record.iteration, row.has_log))
            .collect();
        let summary = state.summary();
        (rows, summary.tokens, summary.pausing, summary.iteration)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Headers and rows appended in any order and read in any batches (the incremental
        /// pairing) end in the state a fresh index of the same files has (the full pairing).
        #[test]
        fn appends_read_in_batches_pair_like_a_fresh_index(
            steps in proptest::collection::vec((0u8..4, 1u32..5), 0..40)
        ) {
            let (_temp, dir) = project();
            fs::write(dir.join(".ralph/ralph.pid"), std::process::id().to_string()).expect("pid");
            fs::write(dir.join(".ralph/pause"), "").expect("pause");
            let log = dir.join(".ralph/ralph.log");
            let rows = dir.join(".ralph/iterations.jsonl");
            let mut state = ProjectState::open("p", &dir);
            for (action, number) in steps {
                match action {
                    // A header (old format: numbers restarting at 1 start a new run).
                    0 => append(&log, &format!("=== Iteration {number}/9 ===\ntokens used\n1,000\n")),
                    1 => append(&rows, &format!("{{\"iteration\":{number},\"tokens\":2.0,\"status\":\"success\"}}\n")),
                    2 => {
                        state.update(&[FileKind::Log]);
                    }
                    _ => {
                        state.update(&[FileKind::Jsonl]);
                    }
                }
            }
            state.update(&[FileKind::Log, FileKind::Jsonl]);
            let fresh = ProjectState::open("p", &dir);
            proptest::prop_assert_eq!(paired_view(&state), paired_view(&fresh));
        }
    }
}
