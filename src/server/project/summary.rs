//! The project's card ([`ProjectSummary`]): built from what the files say, and compared with the
//! previous one to tell clients what changed on it.

use std::path::Path;

use crate::contract::ralph::{
    config::{PriceSource, DEFAULT_PRICE_PER_K_TOKENS},
    notification::NotificationKind,
    plan::Plan,
    stats::{health, Health},
    status::{derive_status, StatusInputs},
};
use crate::model::{
    protocol::{ServerMessage, StatusChange},
    ProjectSummary, Status,
};
use crate::server::clock::now;

use super::files::{file_name, modified};
use super::kind::{FileKind, ProjectKind};
use super::ProjectState;

/// Iterations shown in a card's health strip.
const HEALTH_STRIP: usize = 20;

impl ProjectState {
    /// Builds the card afresh, stores it, and returns the events for what changed on it.
    /// `announced` are the events of the same update: a client takes an `iteration_started`'s
    /// absolute number for the card, so the card is sent whenever that is not its place.
    pub(super) fn refresh_summary(&mut self, announced: &[ServerMessage]) -> Vec<ServerMessage> {
        let mut events = Vec::new();
        let fresh = self.build_summary();
        let started_elsewhere = announced.iter().any(|event| {
            matches!(event, ServerMessage::IterationStarted { data, .. }
                if Some(data.iteration) != fresh.iteration)
        });
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
        if card_changed(&self.summary, &fresh) || started_elsewhere {
            events.push(ServerMessage::ProjectUpdated {
                project: self.id.clone(),
                timestamp: now(),
                data: fresh.clone(),
            });
        }
        self.summary = fresh;
        events
    }

    pub(super) fn build_summary(&self) -> ProjectSummary {
        let last_row = self.jsonl.rows.last();
        // The finished iterations, rows and log-only ones: only the last few are built.
        let sources = self.sources();
        let latest: Vec<Health> = sources
            .iter()
            .rev()
            .take(HEALTH_STRIP)
            .rev()
            .filter_map(|source| self.record_of(*source))
            .map(|record| health(&record))
            .collect();
        let last_header = self.log.iterations.last();
        // The current iteration starts when its header appears in the log; the card shows its
        // place within the current run, which the max is the max of.
        let iteration = match (last_header, last_row) {
            (Some(header), _) => Some(header.position),
            (None, Some(row)) => Some(row.iteration),
            (None, None) => None,
        };
        let max_iterations = last_header
            .map(|h| h.max)
            .or(last_row.map(|r| r.max))
            .or(self.config.max_iterations)
            .unwrap_or(0);
        let tokens = self.total_tokens();
        let (price, price_source) = self.config.price_per_k_tokens();
        let last_failed = latest.last() == Some(&Health::Failed);
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
        let mut warnings = self.warnings.clone();
        // A loop that completed may leave its pid file: only a loop that did not finish died.
        let completed =
            status == Status::Complete || last_header.is_some_and(|header| header.marks.complete);
        if let Some(left) = self.left_behind.filter(|_| !completed) {
            let pid_file = ProjectKind::Ralph.path(&FileKind::Pid);
            warnings.insert("pid", left.warning(file_name(&pid_file)));
        }
        if price_source == PriceSource::Default {
            // One warning for the project, however many iterations the guess prices.
            let config = ProjectKind::Ralph.path(&FileKind::Config);
            warnings.insert(
                "price",
                format!(
                    "no price for this project (model_pricing in {}): costs use the default \
                     ${DEFAULT_PRICE_PER_K_TOKENS} per 1k tokens",
                    file_name(&config)
                ),
            );
        }
        let recent_health = latest;
        let mut warnings: Vec<String> = warnings.into_values().collect();
        if let Some(build) = &self.build {
            warnings.extend(build.warnings().cloned());
        }
        let last_activity = self
            .last_activity
            .max(self.build.as_ref().and_then(|build| build.last_written()));
        ProjectSummary {
            id: self.id.clone(),
            name: self.summary.name.clone(),
            path: self.dir.display().to_string(),
            status,
            plan: self.plan.as_ref().map(Plan::progress),
            warnings,
            iteration,
            max_iterations,
            tokens,
            cost_usd: tokens * price,
            last_activity: last_activity.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            recent_health,
            pausing,
            archived_at: self.archived_at.clone(),
            kinds: self.kinds.clone(),
            build: self.build.as_ref().map(|build| build.card()),
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
        let modified = |file: FileKind| modified(&self.dir, &ProjectKind::Ralph.path(&file)).ok();
        match (modified(FileKind::Notification), modified(FileKind::Jsonl)) {
            (Some(note), Some(rows)) => note > rows,
            (Some(_), None) => true,
            _ => false,
        }
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
        || minute(&old.last_activity) != minute(&new.last_activity)
        || old.kinds != new.kinds
        || old.build != new.build
}

/// An RFC 3339 time to the minute (`2026-01-31T09:05`): the card shows the last activity to the
/// minute, so clients hear of it once a minute at most however often the loop writes.
fn minute(time: &Option<String>) -> Option<&str> {
    time.as_deref().map(|t| t.get(..16).unwrap_or(t))
}

/// The card of a project not read yet: its name, and nothing known.
pub(super) fn placeholder_summary(id: &str, dir: &Path) -> ProjectSummary {
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
        kinds: Vec::new(),
        build: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, open, project};
    use super::*;
    use std::{
        fs,
        time::{Duration, SystemTime, UNIX_EPOCH},
    };

    /// Sets the modification time of the file at `path`, as if the loop wrote it then.
    fn written_at(path: &Path, time: SystemTime) {
        let file = fs::OpenOptions::new().write(true).open(path).expect("open");
        file.set_modified(time).expect("set mtime");
    }

    #[test]
    fn last_activity_is_when_the_loop_last_wrote_not_when_it_was_read() {
        let (_temp, dir) = project();
        let long_ago = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let log = dir.join(".ralph/ralph.log");
        let files = [
            (log.clone(), "=== Iteration 1/3 ===\nworking\n"),
            (
                dir.join(".ralph/iterations.jsonl"),
                "{\"iteration\":1,\"status\":\"success\"}\n",
            ),
            (dir.join("IMPLEMENTATION_PLAN.md"), "- [x] 1.1: one\n"),
            (
                dir.join(".ralph/pending-notification.txt"),
                "DONE: iteration 1\n",
            ),
        ];
        for (path, text) in &files {
            append(path, text);
        }
        let newest = long_ago + Duration::from_secs(60);
        for (index, (path, _)) in files.iter().enumerate() {
            // The plan is the newest file: every file counts, not only the log.
            let time = if index == 2 { newest } else { long_ago };
            written_at(path, time);
        }
        let mut state = open(&dir);
        assert_eq!(
            state.summary().last_activity.as_deref(),
            Some("2023-11-14T22:14:20Z"),
            "when the plan was written, not when it was indexed"
        );
        // A restart of loopwatch reads the same files: the same time.
        assert_eq!(
            open(&dir).summary().last_activity,
            state.summary().last_activity
        );

        append(&log, "more\n");
        let written = modified(&dir, ".ralph/ralph.log").expect("mtime");
        let events = state.update(&[FileKind::Log]);
        let activity = state.summary().last_activity.clone();
        assert_eq!(
            activity,
            Some(humantime::format_rfc3339_seconds(written).to_string()),
            "the append moves it"
        );
        assert!(
            events.iter().any(|e| matches!(e, ServerMessage::ProjectUpdated { data, .. } if data.last_activity == activity)),
            "clients hear of it"
        );
    }

    /// The card's iteration and max.
    fn n_of_max(state: &ProjectState) -> (Option<u32>, u32) {
        (state.summary().iteration, state.summary().max_iterations)
    }

    #[test]
    fn the_card_counts_iterations_within_the_current_run_in_both_header_formats() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        // The new format: the absolute number keeps counting after a restart.
        append(
            &log,
            "=== Iteration 64 (loop 40/40) ===\n=== Iteration 65 (loop 1/40) ===\n",
        );
        let mut state = open(&dir);
        assert_eq!(n_of_max(&state), (Some(1), 40), "not 65 / 40");

        // Restarted again at once: the place is the same, the absolute number is not, and a
        // client told `iteration_started` 66 must get the card again.
        append(&log, "=== Iteration 66 (loop 1/40) ===\n");
        let events = state.update(&[FileKind::Log]);
        assert_eq!(n_of_max(&state), (Some(1), 40));
        let started = events
            .iter()
            .position(|e| matches!(e, ServerMessage::IterationStarted { .. }));
        let card = events.iter().rposition(
            |e| matches!(e, ServerMessage::ProjectUpdated { data, .. } if data.iteration == Some(1)),
        );
        assert!(started < card && card.is_some(), "{events:?}");

        // The old format starts again at 1 itself.
        let (_old_temp, old) = project();
        append(
            &old.join(".ralph/ralph.log"),
            "=== Iteration 5/50 ===\n=== Iteration 1/50 ===\n=== Iteration 2/50 ===\n",
        );
        assert_eq!(n_of_max(&open(&old)), (Some(2), 50));
    }

    /// The PID of a process that has exited (and been reaped).
    fn gone_pid() -> u32 {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        child.wait().expect("wait");
        child.id()
    }

    #[test]
    fn a_pid_file_left_by_a_dead_loop_says_the_loop_died_unless_it_completed() {
        let (_temp, dir) = project();
        let pid = dir.join(".ralph/ralph.pid");
        let gone = gone_pid();
        fs::write(&pid, gone.to_string()).expect("pid");
        append(
            &dir.join(".ralph/ralph.log"),
            "=== Iteration 1/3 ===\nworking\n",
        );
        let plan = dir.join("IMPLEMENTATION_PLAN.md");
        fs::write(&plan, "- [ ] 1.1: one\nSTATUS: IN PROGRESS\n").expect("plan");
        let mut state = open(&dir);
        assert_eq!(state.summary().status, Status::Stopped);
        let died = |state: &ProjectState| {
            state.summary().warnings.iter().any(|w| {
                w.starts_with("the loop died: ralph.pid names process ")
                    && w.contains(&gone.to_string())
            })
        };
        assert!(died(&state), "{:?}", state.summary().warnings);

        // A loop that completed may leave its pid file behind: it did not die.
        fs::write(&plan, "- [x] 1.1: one\nSTATUS: COMPLETE\n").expect("plan");
        state.update(&[FileKind::Plan]);
        assert_eq!(state.summary().status, Status::Complete);
        assert!(!died(&state), "{:?}", state.summary().warnings);

        // Nor does a loop that removed its pid file, or a live one.
        fs::write(&plan, "- [ ] 1.1: one\n").expect("plan");
        state.update(&[FileKind::Plan]);
        assert!(died(&state));
        fs::remove_file(&pid).expect("remove pid");
        state.update(&[FileKind::Pid]);
        assert_eq!(state.summary().status, Status::Stopped);
        assert!(!died(&state), "{:?}", state.summary().warnings);
        fs::write(&pid, std::process::id().to_string()).expect("pid");
        state.update(&[FileKind::Pid]);
        assert_eq!(state.summary().status, Status::Running);
        assert!(!died(&state));
    }

    #[test]
    fn a_project_without_a_price_says_its_cost_uses_the_default_once() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(&log, "=== Iteration 1/3 ===\ntokens used\n2,000\n");
        append(&log, "=== Iteration 2/3 ===\ntokens used\n3,000\n");
        let config = dir.join(".ralph/config.json");
        fs::write(&config, r#"{"cli":"claude","max_iterations":3}"#).expect("config");
        let mut state = open(&dir);
        let defaulted = |state: &ProjectState| {
            state
                .summary()
                .warnings
                .iter()
                .filter(|w| w.contains("costs use the default $0.01 per 1k tokens"))
                .count()
        };
        assert!((state.summary().cost_usd - 0.05).abs() < 1e-12);
        assert_eq!(defaulted(&state), 1, "{:?}", state.summary().warnings);

        fs::write(
            &config,
            r#"{"cli":"claude","max_iterations":3,"model_pricing":{"claude":0.02}}"#,
        )
        .expect("config");
        state.update(&[FileKind::Config]);
        assert!((state.summary().cost_usd - 0.1).abs() < 1e-12);
        assert_eq!(defaulted(&state), 0, "{:?}", state.summary().warnings);

        // No config at all configures no price either.
        fs::remove_file(&config).expect("remove config");
        state.update(&[FileKind::Config]);
        assert_eq!(defaulted(&state), 1, "{:?}", state.summary().warnings);
    }

    #[test]
    fn an_empty_project_has_zero_tokens_not_negative_zero() {
        let (_temp, dir) = project();
        let state = open(&dir);
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
        let mut state = open(&dir);
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
}
