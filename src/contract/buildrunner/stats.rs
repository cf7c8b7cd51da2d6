//! The calculated fields of a build, defined once for the server and the browser:
//! `component_stats` and `feature_stats`, `overall_progress`, and build completion.
//!
//! How items are weighed: every component and every feature counts as one item, whatever its
//! size, and only finished items count as done. Build completion is `completed / total × 100`
//! over those items; a half-done item adds nothing until it completes, and its own `progress`
//! is shown beside it rather than averaged in, so the figure never goes down when an item's
//! estimate is revised. A checkpoint's features are the build's features when it has any;
//! otherwise the features of `features.json` are (the two describe the same features, so they
//! are never added together). Blocked and not-started items are pending.

use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::features::FeaturesFile;
use super::status::{StatusCounts, WorkStatus};

/// `component_stats` / `feature_stats`: counts by state and the completed share.
/// `completed + in_progress + pending + failed == total`; `completion_percentage` in 0..=100.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkStats {
    pub total: u32,
    pub completed: u32,
    pub in_progress: u32,
    pub pending: u32,
    pub failed: u32,
    pub completion_percentage: f64,
}

impl From<StatusCounts> for WorkStats {
    fn from(counts: StatusCounts) -> Self {
        WorkStats {
            total: counts.total,
            completed: counts.completed,
            in_progress: counts.in_progress,
            pending: counts.pending,
            failed: counts.failed,
            completion_percentage: counts.completion_percentage(),
        }
    }
}

/// `overall_progress` of one checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OverallProgress {
    pub tasks_completed: u32,
    pub files_created: u32,
    /// Build completion over the checkpoint's components and features.
    pub completion_percentage: f64,
    pub status: WorkStatus,
}

/// `build_progress`: how many items of the build are done, and the share in percent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildProgress {
    pub total: u32,
    pub completed: u32,
    /// In 0..=100, one decimal.
    pub percent: f64,
}

impl From<StatusCounts> for BuildProgress {
    fn from(counts: StatusCounts) -> Self {
        BuildProgress {
            total: counts.total,
            completed: counts.completed,
            percent: counts.completion_percentage(),
        }
    }
}

/// The calculated fields of one checkpoint together, as a checkpoint summary carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    pub component_stats: WorkStats,
    pub feature_stats: WorkStats,
    pub overall_progress: OverallProgress,
}

fn component_counts(checkpoint: &Checkpoint) -> StatusCounts {
    StatusCounts::of(checkpoint.components.iter().map(|c| c.status))
        .merged(checkpoint.omitted.components)
}

fn feature_counts(checkpoint: &Checkpoint) -> StatusCounts {
    StatusCounts::of(checkpoint.features.iter().map(|f| f.status))
        .merged(checkpoint.omitted.features)
}

/// `component_stats` of a checkpoint (the components not kept included).
pub fn component_stats(checkpoint: &Checkpoint) -> WorkStats {
    component_counts(checkpoint).into()
}

/// `feature_stats` of a checkpoint's own features.
pub fn feature_stats(checkpoint: &Checkpoint) -> WorkStats {
    feature_counts(checkpoint).into()
}

/// `feature_stats` of `features.json`.
pub fn registry_feature_stats(features: &FeaturesFile) -> WorkStats {
    features.counts().into()
}

/// The state that counts stand for: any failure fails the whole; all completed is completed;
/// anything completed or under way is in progress; otherwise nothing has started.
pub fn status_of(counts: &StatusCounts) -> WorkStatus {
    if counts.failed > 0 {
        WorkStatus::Failed
    } else if counts.total > 0 && counts.completed == counts.total {
        WorkStatus::Completed
    } else if counts.completed > 0 || counts.in_progress > 0 {
        WorkStatus::InProgress
    } else {
        WorkStatus::NotStarted
    }
}

/// `overall_progress` of a checkpoint. One without components or features (what `br build
/// checkpoint` writes) is in progress once it lists completed tasks or created files, and not
/// started otherwise; its completion is 0.
pub fn overall_progress(checkpoint: &Checkpoint) -> OverallProgress {
    let items = component_counts(checkpoint).merged(feature_counts(checkpoint));
    let tasks_completed = checkpoint.tasks_completed_count();
    let files_created = checkpoint.files_created_count();
    let status = if items.total == 0 {
        if tasks_completed > 0 || files_created > 0 {
            WorkStatus::InProgress
        } else {
            WorkStatus::NotStarted
        }
    } else {
        status_of(&items)
    };
    OverallProgress {
        tasks_completed,
        files_created,
        completion_percentage: items.completion_percentage(),
        status,
    }
}

pub fn summarize(checkpoint: &Checkpoint) -> CheckpointSummary {
    CheckpointSummary {
        component_stats: component_stats(checkpoint),
        feature_stats: feature_stats(checkpoint),
        overall_progress: overall_progress(checkpoint),
    }
}

/// Build completion of a project: the current checkpoint's components, plus its features when
/// it has any, else the features of `features.json` (see the module doc).
pub fn build_progress(
    current: Option<&Checkpoint>,
    features: Option<&FeaturesFile>,
) -> BuildProgress {
    let components = current.map(component_counts).unwrap_or_default();
    let checkpoint_features = current.map(feature_counts).unwrap_or_default();
    let features = if checkpoint_features.total > 0 {
        checkpoint_features
    } else {
        features.map(FeaturesFile::counts).unwrap_or_default()
    };
    components.merged(features).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::buildrunner::checkpoint::parse_checkpoint;
    use crate::contract::buildrunner::features::parse_features;
    use proptest::prelude::*;

    const REAL: &str = include_str!(
        "../../../tests/fixtures/buildrunner/real/checkpoint_20251117_224022_364548.json"
    );
    const RICH: &str = include_str!(
        "../../../tests/fixtures/buildrunner/seed/checkpoint_20251119_101500_000001.json"
    );
    const FEATURES: &str =
        include_str!("../../../tests/fixtures/buildrunner/real/features-metrics-disagree.json");

    fn stats(
        total: u32,
        completed: u32,
        in_progress: u32,
        pending: u32,
        failed: u32,
        pct: f64,
    ) -> WorkStats {
        WorkStats {
            total,
            completed,
            in_progress,
            pending,
            failed,
            completion_percentage: pct,
        }
    }

    #[test]
    fn the_seed_shape_gives_the_seed_fields() {
        let (checkpoint, _) = parse_checkpoint(RICH.as_bytes());
        let summary = summarize(&checkpoint);
        // Blocked counts as pending.
        assert_eq!(summary.component_stats, stats(5, 1, 1, 2, 1, 20.0));
        assert_eq!(summary.feature_stats, stats(4, 1, 1, 1, 1, 25.0));
        assert_eq!(
            summary.overall_progress,
            OverallProgress {
                tasks_completed: 3,
                files_created: 2,
                completion_percentage: 22.2,
                status: WorkStatus::Failed,
            }
        );
        let json = serde_json::to_value(summary).unwrap_or_default();
        assert_eq!(json["overall_progress"]["status"], "failed");
        assert_eq!(json["component_stats"]["pending"], 2);
    }

    #[test]
    fn a_plain_checkpoint_has_no_items_to_complete() {
        let (checkpoint, _) = parse_checkpoint(REAL.as_bytes());
        assert_eq!(component_stats(&checkpoint), WorkStats::default());
        let overall = overall_progress(&checkpoint);
        assert_eq!(
            (overall.completion_percentage, overall.status),
            (0.0, WorkStatus::NotStarted)
        );
        let (busy, _) = parse_checkpoint(br#"{"files_created": ["a.rs"]}"#);
        assert_eq!(overall_progress(&busy).status, WorkStatus::InProgress);
    }

    #[test]
    fn build_progress_counts_features_once() {
        let (rich, _) = parse_checkpoint(RICH.as_bytes());
        let (plain, _) = parse_checkpoint(REAL.as_bytes());
        let (features, _) = parse_features(FEATURES.as_bytes());
        // The checkpoint's own features win over the registry's.
        let progress = build_progress(Some(&rich), Some(&features));
        assert_eq!(
            (progress.total, progress.completed, progress.percent),
            (9, 2, 22.2)
        );
        let progress = build_progress(Some(&plain), Some(&features));
        assert_eq!(
            (progress.total, progress.completed, progress.percent),
            (17, 17, 100.0)
        );
        assert_eq!(
            registry_feature_stats(&features),
            stats(17, 17, 0, 0, 0, 100.0)
        );
        assert_eq!(build_progress(None, None), BuildProgress::default());
    }

    #[test]
    fn status_of_counts() {
        let of = |statuses: &[WorkStatus]| status_of(&StatusCounts::of(statuses.iter().copied()));
        assert_eq!(of(&[]), WorkStatus::NotStarted);
        assert_eq!(
            of(&[WorkStatus::Blocked, WorkStatus::NotStarted]),
            WorkStatus::NotStarted
        );
        assert_eq!(
            of(&[WorkStatus::Completed, WorkStatus::NotStarted]),
            WorkStatus::InProgress
        );
        assert_eq!(
            of(&[WorkStatus::Completed, WorkStatus::Completed]),
            WorkStatus::Completed
        );
        assert_eq!(
            of(&[WorkStatus::Completed, WorkStatus::Failed]),
            WorkStatus::Failed
        );
    }

    fn any_status() -> impl Strategy<Value = WorkStatus> {
        prop::sample::select(vec![
            WorkStatus::NotStarted,
            WorkStatus::InProgress,
            WorkStatus::Completed,
            WorkStatus::Failed,
            WorkStatus::Blocked,
        ])
    }

    fn consistent(stats: &WorkStats) -> bool {
        u64::from(stats.completed)
            + u64::from(stats.in_progress)
            + u64::from(stats.pending)
            + u64::from(stats.failed)
            == u64::from(stats.total)
            && (0.0..=100.0).contains(&stats.completion_percentage)
    }

    fn any_counts() -> impl Strategy<Value = StatusCounts> {
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c, d)| {
            // Four quarters of the range, so their sum is a valid total.
            let (completed, in_progress, pending, failed) = (a / 4, b / 4, c / 4, d / 4);
            StatusCounts {
                total: completed + in_progress + pending + failed,
                completed,
                in_progress,
                pending,
                failed,
            }
        })
    }

    proptest! {
        #[test]
        fn stats_are_consistent(
            components in proptest::collection::vec(any_status(), 0..60),
            features in proptest::collection::vec(any_status(), 0..60),
        ) {
            let component_list: Vec<String> = components
                .iter()
                .map(|s| format!(r#"{{"status": "{}"}}"#, s.as_str()))
                .collect();
            let feature_list: Vec<String> = features
                .iter()
                .map(|s| format!(r#"{{"status": "{}"}}"#, s.as_str()))
                .collect();
            let json = format!(
                r#"{{"components": [{}], "features": [{}]}}"#,
                component_list.join(","),
                feature_list.join(",")
            );
            let (checkpoint, _) = parse_checkpoint(json.as_bytes());
            let summary = summarize(&checkpoint);
            prop_assert!(consistent(&summary.component_stats));
            prop_assert!(consistent(&summary.feature_stats));
            prop_assert_eq!(summary.component_stats.total as usize, components.len());
            let overall = summary.overall_progress.completion_percentage;
            prop_assert!((0.0..=100.0).contains(&overall));
            let progress = build_progress(Some(&checkpoint), None);
            prop_assert_eq!(progress.total as usize, components.len() + features.len());
            prop_assert!(progress.completed <= progress.total);
        }

        #[test]
        fn merged_counts_stay_consistent_even_when_saturating(a in any_counts(), b in any_counts()) {
            let merged = a.merged(b);
            prop_assert!(consistent(&merged.into()));
            prop_assert!(merged.total >= a.total.max(b.total));
            if a.total.checked_add(b.total).is_some() {
                prop_assert_eq!(merged.total, a.total + b.total);
                prop_assert_eq!(merged.completed, a.completed + b.completed);
            }
        }
    }
}
