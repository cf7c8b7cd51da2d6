//! A project's files: which one changed ([`FileKind`]), and reading the small ones (plan,
//! config, pid, pause, notification), which are re-read whole when they change.

use std::{
    io::{self, Read},
    path::Path,
    time::SystemTime,
};

use crate::contract::ralph::{
    config::{parse_config, LoopConfig},
    notification::{parse_notification, Notification},
    pid::parse_pid,
    plan::{parse_plan, Plan},
};
use crate::model::protocol::{FileChange, ServerMessage};
use crate::server::{clock::now, safe_open};

use super::kind::{FileKind, ProjectKind};
use super::liveness::{loop_liveness, Liveness};
use super::{ProjectState, Report};

/// A plan, config or notification bigger than this is read only up to here.
pub const MAX_SMALL_FILE: u64 = 4 * 1024 * 1024;
/// Notifications remembered per project.
const NOTIFICATION_HISTORY: usize = 200;

/// The last part of a relative path, as warnings name a file: `.ralph/ralph.pid` -> `ralph.pid`.
pub fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
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
pub fn modified(dir: &Path, rel: &str) -> io::Result<SystemTime> {
    safe_open::open(dir, rel)
        .map_err(io::Error::from)?
        .metadata()?
        .modified()
}

/// A pid file whose loop is gone: killed or crashed, it had no chance to remove the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LeftBehind {
    pid: u32,
    /// [`Liveness::Dead`] or [`Liveness::Reused`].
    liveness: Liveness,
}

impl LeftBehind {
    /// The card's warning: `pid_file` names the process.
    pub(super) fn warning(self, pid_file: &str) -> String {
        let pid = self.pid;
        let now = match self.liveness {
            Liveness::Reused => "which now belongs to another process",
            Liveness::Alive | Liveness::Dead => "which is not running",
        };
        format!("the loop died: {pid_file} names process {pid}, {now}")
    }
}

impl ProjectState {
    /// Moves the last activity up to when the loop last wrote `file`: the loop's own writes date
    /// it, never the moment loopwatch read them (which after a restart of loopwatch, or for a
    /// project found late, says nothing about the loop).
    pub(super) fn note_written(&mut self, file: &FileKind) {
        if let Ok(written) = modified(&self.dir, &ProjectKind::Ralph.path(file)) {
            self.last_activity = self.last_activity.max(Some(written));
        }
    }

    /// Re-reads one of the small files; only a context file and a notification have events.
    pub(super) fn read_small_file(
        &mut self,
        file: &FileKind,
        report: Report,
    ) -> Vec<ServerMessage> {
        match file {
            FileKind::Plan => self.read_plan(report),
            FileKind::Config => self.read_config(),
            FileKind::Pid => {
                self.loop_alive = self.check_pid();
                // The periodic liveness pass re-checks `specs/` too: no file event announces a
                // directory swapped for a link.
                self.check_specs();
            }
            FileKind::Pause => {
                let pause = ProjectKind::Ralph.path(&FileKind::Pause);
                self.pause_requested = self.dir.join(pause).exists();
            }
            FileKind::Notification => return self.read_notification(report),
            FileKind::Context(name) => {
                if report == Report::Changes && self.dir.join(name).exists() {
                    return vec![ServerMessage::FileChanged {
                        project: self.id.clone(),
                        timestamp: now(),
                        data: FileChange { file: name.clone() },
                    }];
                }
            }
            // Appended files, read by offset (see `tracking`); the build's own (see `build`).
            FileKind::Log | FileKind::Jsonl | FileKind::Build(_) => {}
        }
        Vec::new()
    }

    fn read_plan(&mut self, report: Report) {
        let rel = ProjectKind::Ralph.path(&FileKind::Plan);
        match read_small(&self.dir, &rel) {
            Ok(bytes) => {
                if bytes.is_some() {
                    self.note_written(&FileKind::Plan);
                }
                let plan = bytes.map(|bytes| parse_plan(&String::from_utf8_lossy(&bytes)));
                if report == Report::Changes {
                    self.note_ticks(plan.as_ref());
                }
                self.plan = plan;
                self.warnings.remove("plan");
            }
            Err(error) => self.warn("plan", format!("cannot read {rel}: {error}")),
        }
    }

    /// Remembers the iteration running when tasks were ticked in `plan`: a row reports the
    /// tasks of its iteration, but an iteration cut short (SIGTERM, kill) writes no row, or one
    /// without them. Ticks are seen only as they happen, while the loop runs an iteration no row
    /// has ended; a task no longer done is forgotten.
    fn note_ticks(&mut self, plan: Option<&Plan>) {
        let done = plan.map(Plan::done_task_ids).unwrap_or_default();
        self.ticked_in.retain(|id, _| done.contains(id));
        let Some(before) = self.plan.as_ref().map(Plan::done_task_ids) else {
            // The plan just appeared: its ticks were not seen happening.
            return;
        };
        let last = self.log.iterations.len().checked_sub(1);
        let running = last
            .zip(self.log.iterations.last())
            .filter(|(index, it)| !self.links.has_row(*index) && !it.marks.complete)
            .map(|(_, it)| it.iteration);
        let Some(iteration) = running.filter(|_| self.loop_alive) else {
            return;
        };
        for id in done.difference(&before) {
            self.ticked_in.insert(id.clone(), iteration);
        }
    }

    fn read_config(&mut self) {
        let rel = ProjectKind::Ralph.path(&FileKind::Config);
        let name = file_name(&rel);
        match read_small(&self.dir, &rel) {
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
                    self.warn("config", format!("{name}: {}", warnings.join("; ")));
                }
            }
            Err(error) => self.warn("config", format!("cannot read {name}: {error}")),
        }
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

    /// Whether the loop in the pid file is alive; a pid file whose loop is gone is remembered
    /// in `left_behind` (the card says the loop died, unless it completed).
    fn check_pid(&mut self) -> bool {
        self.left_behind = None;
        let path = ProjectKind::Ralph.path(&FileKind::Pid);
        let name = file_name(&path);
        let bytes = match read_small(&self.dir, &path) {
            Ok(None) => {
                self.warnings.remove("pid");
                return false;
            }
            Ok(Some(bytes)) => bytes,
            Err(error) => {
                self.warn("pid", format!("cannot read {name}: {error}"));
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
            Ok(liveness @ (Liveness::Dead | Liveness::Reused)) => {
                self.warnings.remove("pid");
                self.left_behind = Some(LeftBehind { pid, liveness });
                false
            }
            Err(error) => {
                self.warn("pid", format!("cannot read {name}'s time: {error}"));
                false
            }
        }
    }

    fn read_notification(&mut self, report: Report) -> Vec<ServerMessage> {
        let rel = ProjectKind::Ralph.path(&FileKind::Notification);
        let bytes = match read_small(&self.dir, &rel) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Vec::new(),
            Err(error) => {
                let name = file_name(&rel);
                self.warn("notification", format!("cannot read {name}: {error}"));
                return Vec::new();
            }
        };
        self.warnings.remove("notification");
        self.note_written(&FileKind::Notification);
        let Ok(notification) = parse_notification(&bytes) else {
            // An empty file: nothing pending.
            return Vec::new();
        };
        match (self.add_notification(notification), report) {
            (Some(event), Report::Changes) => vec![event],
            _ => Vec::new(),
        }
    }

    /// Keeps a notification (the loop's, or an alert loopwatch raised) in the project's recent
    /// ones, once per id; returns its event, or `None` if it was already kept.
    pub fn add_notification(&mut self, notification: Notification) -> Option<ServerMessage> {
        if !self.seen_notifications.insert(notification.id.clone()) {
            return None;
        }
        self.notifications.push(notification.clone());
        if self.notifications.len() > NOTIFICATION_HISTORY {
            let excess = self.notifications.len() - NOTIFICATION_HISTORY;
            self.notifications.drain(..excess);
        }
        Some(ServerMessage::Notification {
            project: self.id.clone(),
            timestamp: now(),
            data: notification,
        })
    }
}
