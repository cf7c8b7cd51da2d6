//! The checkpoints of a build in the order they were taken, and what the rollbacks among them
//! did. `br build rollback ID` marks its target `active` and every later checkpoint
//! `rolled_back`; checkpoints taken after that are `created` again. So a rollback reads, in
//! order, as one `active` checkpoint followed by a run of `rolled_back` ones, and the build
//! stands on the last checkpoint that is not rolled back.

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointStamp};
use super::status::CheckpointStatus;

/// One checkpoint file in the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The file name (`checkpoint_20251117_213005_705272.json`), or whatever the caller keyed it by.
    pub file_name: String,
    /// When it was taken: from the file name, else the `id`, else the `timestamp`.
    pub stamp: Option<CheckpointStamp>,
    pub checkpoint: Checkpoint,
}

impl TimelineEntry {
    /// The id to show and to refer to: the checkpoint's own, else its file name without `.json`.
    pub fn id(&self) -> &str {
        if self.checkpoint.id.trim().is_empty() {
            self.file_name
                .strip_suffix(".json")
                .unwrap_or(&self.file_name)
        } else {
            &self.checkpoint.id
        }
    }
}

/// A rollback as the files record it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// Index in [`Timeline::entries`] of the `active` checkpoint rolled back to; `None` when
    /// rolled-back checkpoints follow no active one (the target was deleted).
    pub target: Option<usize>,
    /// Indexes of the checkpoints it undid, in order (empty for a rollback to the newest one).
    pub rolled_back: Vec<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Oldest first. Entries without a stamp come last, by file name.
    pub entries: Vec<TimelineEntry>,
    /// Index of the checkpoint the build stands on: the last one not rolled back.
    pub current: Option<usize>,
    pub rollbacks: Vec<Rollback>,
    /// Files that could not be placed in time, ids that differ from their file names.
    pub warnings: Vec<String>,
}

impl Timeline {
    /// Orders checkpoints, given with the names of their files, and explains their rollbacks.
    pub fn build(checkpoints: Vec<(String, Checkpoint)>) -> Self {
        let mut warnings = Vec::new();
        let mut entries: Vec<TimelineEntry> = checkpoints
            .into_iter()
            .map(|(file_name, checkpoint)| {
                let stamp = CheckpointStamp::from_name(&file_name)
                    .or_else(|| CheckpointStamp::from_name(&checkpoint.id))
                    .or_else(|| {
                        checkpoint
                            .timestamp
                            .as_deref()
                            .and_then(CheckpointStamp::from_timestamp)
                    });
                let stem = file_name.strip_suffix(".json").unwrap_or(&file_name);
                if !checkpoint.id.is_empty()
                    && checkpoint.id != stem
                    && CheckpointStamp::from_name(stem).is_some()
                {
                    // The file name decides the order (as BuildRunner's own loader sorts them).
                    warnings.push(format!("{file_name}: its id is {:?}", checkpoint.id));
                }
                if stamp.is_none() {
                    warnings.push(format!(
                        "{file_name}: no time in its name, id or timestamp; placed last"
                    ));
                }
                TimelineEntry {
                    file_name,
                    stamp,
                    checkpoint,
                }
            })
            .collect();
        // `None` sorts before `Some`, so the key puts unstamped entries last explicitly.
        entries.sort_by(|a, b| {
            (a.stamp.is_none(), a.stamp, &a.file_name).cmp(&(
                b.stamp.is_none(),
                b.stamp,
                &b.file_name,
            ))
        });
        let current = entries
            .iter()
            .rposition(|entry| entry.checkpoint.status != CheckpointStatus::RolledBack);
        let rollbacks = rollbacks(&entries, &mut warnings);
        Timeline {
            entries,
            current,
            rollbacks,
            warnings,
        }
    }

    pub fn current_entry(&self) -> Option<&TimelineEntry> {
        self.current.and_then(|index| self.entries.get(index))
    }

    /// The newest checkpoint, rolled back or not.
    pub fn latest(&self) -> Option<&TimelineEntry> {
        self.entries.last()
    }

    /// Whether the checkpoint at `index` was undone by a rollback.
    pub fn is_rolled_back(&self, index: usize) -> bool {
        self.entries
            .get(index)
            .is_some_and(|entry| entry.checkpoint.status == CheckpointStatus::RolledBack)
    }
}

fn rollbacks(entries: &[TimelineEntry], warnings: &mut Vec<String>) -> Vec<Rollback> {
    let mut rollbacks: Vec<Rollback> = Vec::new();
    // The active checkpoint a following run of rolled-back ones belongs to, while in that run.
    let mut open: Option<Rollback> = None;
    for (index, entry) in entries.iter().enumerate() {
        match entry.checkpoint.status {
            CheckpointStatus::Active => {
                rollbacks.extend(open.take());
                open = Some(Rollback {
                    target: Some(index),
                    rolled_back: Vec::new(),
                });
            }
            CheckpointStatus::RolledBack => match open.as_mut() {
                Some(rollback) => rollback.rolled_back.push(index),
                None => {
                    warnings.push(format!(
                        "{}: rolled back, but no active checkpoint precedes it",
                        entry.id()
                    ));
                    open = Some(Rollback {
                        target: None,
                        rolled_back: vec![index],
                    });
                }
            },
            CheckpointStatus::Created => {
                rollbacks.extend(open.take());
            }
        }
    }
    rollbacks.extend(open);
    rollbacks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::buildrunner::checkpoint::parse_checkpoint;

    const REAL: [(&str, &str); 4] = [
        (
            "checkpoint_20251117_213005_705272.json",
            include_str!(
                "../../../tests/fixtures/buildrunner/real/checkpoint_20251117_213005_705272.json"
            ),
        ),
        (
            "checkpoint_20251117_215252_008237.json",
            include_str!(
                "../../../tests/fixtures/buildrunner/real/checkpoint_20251117_215252_008237.json"
            ),
        ),
        (
            "checkpoint_20251117_220126_836480.json",
            include_str!(
                "../../../tests/fixtures/buildrunner/real/checkpoint_20251117_220126_836480.json"
            ),
        ),
        (
            "checkpoint_20251117_224022_364548.json",
            include_str!(
                "../../../tests/fixtures/buildrunner/real/checkpoint_20251117_224022_364548.json"
            ),
        ),
    ];

    /// The real checkpoints, in the order given, with the statuses given.
    fn real(order: [usize; 4], statuses: [&str; 4]) -> Vec<(String, Checkpoint)> {
        order
            .iter()
            .zip(statuses)
            .map(|(&index, status)| {
                let (name, text) = REAL[index];
                let text = text.replace(
                    "\"status\": \"created\"",
                    &format!("\"status\": \"{status}\""),
                );
                let (checkpoint, warnings) = parse_checkpoint(text.as_bytes());
                assert!(warnings.is_empty(), "{warnings:?}");
                (name.to_owned(), checkpoint)
            })
            .collect()
    }

    fn ids(timeline: &Timeline) -> Vec<&str> {
        timeline.entries.iter().map(TimelineEntry::id).collect()
    }

    #[test]
    fn real_checkpoints_are_ordered_by_their_names() {
        let timeline = Timeline::build(real([3, 1, 0, 2], ["created"; 4]));
        assert_eq!(
            ids(&timeline),
            [
                "checkpoint_20251117_213005_705272",
                "checkpoint_20251117_215252_008237",
                "checkpoint_20251117_220126_836480",
                "checkpoint_20251117_224022_364548",
            ]
        );
        assert_eq!(timeline.current, Some(3));
        assert_eq!(
            timeline.latest().map(TimelineEntry::id),
            Some("checkpoint_20251117_224022_364548")
        );
        assert!(timeline.rollbacks.is_empty());
        assert!(timeline.warnings.is_empty());
    }

    #[test]
    fn a_rollback_is_its_active_target_and_the_rolled_back_run_after_it() {
        // Rolled back to the second checkpoint; nothing taken since.
        let timeline = Timeline::build(real(
            [0, 1, 2, 3],
            ["created", "active", "rolled_back", "rolled_back"],
        ));
        assert_eq!(
            timeline.rollbacks,
            [Rollback {
                target: Some(1),
                rolled_back: vec![2, 3],
            }]
        );
        assert_eq!(timeline.current, Some(1));
        assert!(timeline.is_rolled_back(2) && !timeline.is_rolled_back(1));
        // Rolled back to the first, then a new checkpoint taken: the build stands on the new one.
        let timeline = Timeline::build(real(
            [2, 0, 3, 1],
            ["rolled_back", "active", "created", "rolled_back"],
        ));
        assert_eq!(
            timeline.rollbacks,
            [Rollback {
                target: Some(0),
                rolled_back: vec![1, 2],
            }]
        );
        assert_eq!(timeline.current, Some(3));
        assert_eq!(
            timeline.current_entry().map(TimelineEntry::id),
            Some("checkpoint_20251117_224022_364548")
        );
        assert!(timeline.warnings.is_empty());
    }

    #[test]
    fn two_rollbacks_and_an_orphan_run_are_told_apart() {
        let timeline = Timeline::build(real(
            [0, 1, 2, 3],
            ["rolled_back", "active", "active", "rolled_back"],
        ));
        assert_eq!(
            timeline.rollbacks,
            [
                Rollback {
                    target: None,
                    rolled_back: vec![0],
                },
                Rollback {
                    target: Some(1),
                    rolled_back: vec![],
                },
                Rollback {
                    target: Some(2),
                    rolled_back: vec![3],
                },
            ]
        );
        assert_eq!(timeline.current, Some(2));
        assert_eq!(timeline.warnings.len(), 1, "{:?}", timeline.warnings);
        assert!(timeline.warnings[0].starts_with("checkpoint_20251117_213005_705272: rolled back"));
        // Everything rolled back: the build stands on none of them.
        let timeline = Timeline::build(real([0, 1, 2, 3], ["rolled_back"; 4]));
        assert_eq!(timeline.current, None);
    }

    #[test]
    fn an_id_that_differs_from_its_file_name_is_a_warning() {
        let mut checkpoints = real([0, 1, 2, 3], ["created"; 4]);
        checkpoints[0].1.id = "checkpoint_20991231_235959_000000".to_owned();
        let timeline = Timeline::build(checkpoints);
        // The name still decides the order.
        assert_eq!(
            timeline.entries[0].file_name,
            "checkpoint_20251117_213005_705272.json"
        );
        assert_eq!(
            timeline.warnings,
            ["checkpoint_20251117_213005_705272.json: its id is \"checkpoint_20991231_235959_000000\""]
        );
    }

    #[test]
    fn files_without_a_stamp_in_the_name_use_the_id_or_the_timestamp() {
        let (by_time, _) = parse_checkpoint(br#"{"timestamp": "2025-11-17T21:40:00"}"#);
        let (by_id, _) = parse_checkpoint(br#"{"id": "checkpoint_20251117_215000_000000"}"#);
        let (nothing, _) = parse_checkpoint(b"{}");
        let mut checkpoints = real([0, 1, 2, 3], ["created"; 4]);
        checkpoints.push(("renamed.json".to_owned(), by_time));
        checkpoints.push(("copy.json".to_owned(), by_id));
        checkpoints.push(("a-unknown.json".to_owned(), nothing));
        let timeline = Timeline::build(checkpoints);
        assert_eq!(
            ids(&timeline),
            [
                "checkpoint_20251117_213005_705272",
                "renamed",
                "checkpoint_20251117_215000_000000",
                "checkpoint_20251117_215252_008237",
                "checkpoint_20251117_220126_836480",
                "checkpoint_20251117_224022_364548",
                "a-unknown",
            ]
        );
        assert_eq!(
            timeline.warnings,
            ["a-unknown.json: no time in its name, id or timestamp; placed last"]
        );
    }
}
