//! One status vocabulary for everything a BuildRunner build tracks. Checkpoint components write
//! `not_started|in_progress|completed|error|blocked`, checkpoint features
//! `pending|in_progress|completed|failed`, `features.json` `planned|in_progress|complete`; all of
//! them, and their common synonyms, land on [`WorkStatus`].

use serde::{Deserialize, Serialize};

/// The state of a component or feature, whichever vocabulary its file used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkStatus {
    /// `not_started`, `pending`, `planned`, `todo`, `queued`; also the fallback for a missing or
    /// unknown status, since nothing says the work began.
    #[default]
    NotStarted,
    /// `in_progress`, `active`, `running`, `started`, `building`, `wip`.
    InProgress,
    /// `completed`, `complete`, `done`, `success`, `passed`, `finished`.
    Completed,
    /// `failed`, `error`, `errored`, `failure`.
    Failed,
    /// `blocked`: waiting on something else; counted as pending in the statistics.
    Blocked,
}

impl WorkStatus {
    /// Reads a status in any of the vocabularies, ignoring case, surrounding whitespace and the
    /// choice of `_`, `-` or space between words. `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let normal: String = text
            .trim()
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let status = match normal.as_str() {
            "not_started" | "notstarted" | "pending" | "planned" | "todo" | "queued" => {
                WorkStatus::NotStarted
            }
            "in_progress" | "inprogress" | "active" | "running" | "started" | "building"
            | "wip" => WorkStatus::InProgress,
            "completed" | "complete" | "done" | "success" | "passed" | "finished" => {
                WorkStatus::Completed
            }
            "failed" | "error" | "errored" | "failure" => WorkStatus::Failed,
            "blocked" => WorkStatus::Blocked,
            _ => return None,
        };
        Some(status)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkStatus::NotStarted => "not_started",
            WorkStatus::InProgress => "in_progress",
            WorkStatus::Completed => "completed",
            WorkStatus::Failed => "failed",
            WorkStatus::Blocked => "blocked",
        }
    }
}

/// How many items are in each state. Blocked and not-started items both count as pending, so
/// `completed + in_progress + pending + failed == total` always holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub total: u32,
    pub completed: u32,
    pub in_progress: u32,
    pub pending: u32,
    pub failed: u32,
}

impl StatusCounts {
    pub fn add(&mut self, status: WorkStatus) {
        let bucket = match status {
            WorkStatus::Completed => &mut self.completed,
            WorkStatus::InProgress => &mut self.in_progress,
            WorkStatus::NotStarted | WorkStatus::Blocked => &mut self.pending,
            WorkStatus::Failed => &mut self.failed,
        };
        // Totals saturate together: a bucket is never counted without its total.
        if self.total < u32::MAX {
            self.total += 1;
            *bucket += 1;
        }
    }

    /// `completed / total × 100`, rounded to one decimal; 0 when there is nothing to count.
    pub fn completion_percentage(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let exact = f64::from(self.completed) * 100.0 / f64::from(self.total);
        ((exact * 10.0).round() / 10.0).clamp(0.0, 100.0)
    }

    pub fn of(statuses: impl IntoIterator<Item = WorkStatus>) -> Self {
        let mut counts = StatusCounts::default();
        for status in statuses {
            counts.add(status);
        }
        counts
    }

    /// Both sets of counts together. Saturates at `u32::MAX` items in all, filling completed,
    /// in progress, failed, then pending, so the buckets still add up to the total.
    pub fn merged(self, other: StatusCounts) -> Self {
        let mut room = u64::from(u32::MAX);
        let mut take = |a: u32, b: u32| {
            let kept = (u64::from(a) + u64::from(b)).min(room);
            room -= kept;
            // `kept` is at most `u32::MAX` by the `min` above.
            kept as u32
        };
        let completed = take(self.completed, other.completed);
        let in_progress = take(self.in_progress, other.in_progress);
        let failed = take(self.failed, other.failed);
        let pending = take(self.pending, other.pending);
        StatusCounts {
            total: completed + in_progress + failed + pending,
            completed,
            in_progress,
            pending,
            failed,
        }
    }
}

/// What `br build checkpoint` and `br build rollback` write as a checkpoint's `status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStatus {
    /// Written when the checkpoint is taken; also the fallback for a missing or unknown status.
    #[default]
    Created,
    /// The target of the last rollback to it.
    Active,
    /// Undone by a rollback to an earlier checkpoint.
    RolledBack,
}

impl CheckpointStatus {
    /// Case-insensitive, `-` or space for `_`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let normal = text.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        match normal.as_str() {
            "created" => Some(CheckpointStatus::Created),
            "active" => Some(CheckpointStatus::Active),
            "rolled_back" | "rolledback" => Some(CheckpointStatus::RolledBack),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::Created => "created",
            CheckpointStatus::Active => "active",
            CheckpointStatus::RolledBack => "rolled_back",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_lands_on_one_enum() {
        for (text, expected) in [
            ("not_started", WorkStatus::NotStarted),
            ("pending", WorkStatus::NotStarted),
            ("planned", WorkStatus::NotStarted),
            ("in_progress", WorkStatus::InProgress),
            ("In Progress", WorkStatus::InProgress),
            ("in-progress", WorkStatus::InProgress),
            ("completed", WorkStatus::Completed),
            ("complete", WorkStatus::Completed),
            (" COMPLETE ", WorkStatus::Completed),
            ("error", WorkStatus::Failed),
            ("failed", WorkStatus::Failed),
            ("blocked", WorkStatus::Blocked),
        ] {
            assert_eq!(WorkStatus::parse(text), Some(expected), "{text}");
        }
        assert_eq!(WorkStatus::parse("paused"), None);
        assert_eq!(WorkStatus::parse(""), None);
    }

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for status in [
            WorkStatus::NotStarted,
            WorkStatus::InProgress,
            WorkStatus::Completed,
            WorkStatus::Failed,
            WorkStatus::Blocked,
        ] {
            assert_eq!(WorkStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        for status in [
            CheckpointStatus::Created,
            CheckpointStatus::Active,
            CheckpointStatus::RolledBack,
        ] {
            assert_eq!(CheckpointStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(
            CheckpointStatus::parse("Rolled-Back"),
            Some(CheckpointStatus::RolledBack)
        );
        assert_eq!(CheckpointStatus::parse("deleted"), None);
    }
}
