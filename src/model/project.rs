//! The card the dashboard shows for one project.

use serde::{Deserialize, Serialize};

use crate::contract::ralph::{plan::PlanProgress, stats::Health, status::Status};

use super::{build::BuildCard, ProjectKind};

/// What the dashboard shows of one project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub id: String,
    pub name: String,
    pub path: String,
    pub status: Status,
    /// `None` when the project has no readable `IMPLEMENTATION_PLAN.md`.
    pub plan: Option<PlanProgress>,
    /// Problems with the project's files, shown to the operator (never fatal).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The current (or last) iteration: a header in the log starts it. Its place within the
    /// current run (`i` of `(loop i/M)`), so it compares with `max_iterations` after a restart.
    pub iteration: Option<u32>,
    /// 0 means unlimited.
    pub max_iterations: u32,
    /// Thousands of tokens used so far.
    pub tokens: f64,
    pub cost_usd: f64,
    /// When the loop last wrote its log, rows, plan or notification (the newest of the files'
    /// modification times, RFC 3339): the same after a restart of loopwatch.
    pub last_activity: Option<String>,
    /// Health of the last iterations, oldest first.
    pub recent_health: Vec<Health>,
    /// Paused, but the current iteration is still running (the pause takes effect after it).
    #[serde(default)]
    pub pausing: bool,
    /// When the operator archived the project (RFC 3339); `None` when it is not archived.
    /// Archived projects are still watched; dashboards hide them unless asked to show them.
    #[serde(default)]
    pub archived_at: Option<String>,
    /// The kinds of project the directory holds (a directory may hold several).
    #[serde(default)]
    pub kinds: Vec<ProjectKind>,
    /// The build's line on the card, for a BuildRunner project.
    #[serde(default)]
    pub build: Option<BuildCard>,
}

impl ProjectSummary {
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_handles_empty_and_large_plans() {
        let empty = PlanProgress::default();
        assert_eq!(empty.percent(), 0);
        let big = PlanProgress {
            tasks_done: u32::MAX / 2,
            tasks_total: u32::MAX,
            ..PlanProgress::default()
        };
        assert_eq!(big.percent(), 49);
    }

    #[test]
    fn status_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Status::Paused).ok().as_deref(),
            Some("\"paused\"")
        );
    }

    #[test]
    fn summaries_written_before_archiving_existed_still_parse() {
        let old = r#"{"id":"a-1","name":"a","path":"/a","status":"running","plan":null,
            "iteration":null,"max_iterations":0,"tokens":0.0,"cost_usd":0.0,
            "last_activity":null,"recent_health":[]}"#;
        let summary: ProjectSummary = serde_json::from_str(old).expect("old summary parses");
        assert_eq!(summary.archived_at, None);
        assert!(!summary.is_archived());
    }
}
