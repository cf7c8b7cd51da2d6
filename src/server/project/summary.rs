//! The project's card ([`ProjectSummary`]): built from what the files say, and compared with the
//! previous one to tell clients what changed on it.

use std::path::Path;

use crate::contract::ralph::{
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

use super::files::modified;
use super::kind::FileKind;
use super::ProjectState;

/// Iterations shown in a card's health strip.
const HEALTH_STRIP: usize = 20;

impl ProjectState {
    /// Builds the card afresh, stores it, and returns the events for what changed on it.
    pub(super) fn refresh_summary(&mut self) -> Vec<ServerMessage> {
        let mut events = Vec::new();
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
        let recent_health = latest;
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
        let modified = |file: FileKind| modified(&self.dir, &self.kind.path(&file)).ok();
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
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, open, project};
    use super::*;
    use std::fs;

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
