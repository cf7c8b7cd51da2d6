//! The checkpoint files of a build (`.buildrunner/checkpoints/*.json`), their timeline, and the
//! events for what a re-read found: checkpoints new, changed, rolled back and deleted, and the
//! components and features of the checkpoint the build stands on that changed.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::SystemTime,
};

use crate::contract::buildrunner::{
    checkpoint::{parse_checkpoint, Checkpoint, CheckpointStamp},
    status::CheckpointStatus,
    timeline::{Timeline, TimelineEntry},
};
use crate::model::build::{BuildEvent, CheckpointChange, CheckpointView, FileChangeType};

use super::{file_change, list, read_from, stamp, view, Stamp, MAX_SMALL_FILE};

const CHECKPOINT_DIR: &str = ".buildrunner/checkpoints";
/// Checkpoint files kept: the newest by name (their names start with the time they were taken).
pub const MAX_CHECKPOINTS: usize = 1000;

#[derive(Debug, Default)]
pub struct Checkpoints {
    /// By file name: when it was read, and what it said.
    files: BTreeMap<String, (Stamp, Checkpoint)>,
    timeline: Timeline,
}

impl Checkpoints {
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The checkpoint the build stands on.
    pub fn current(&self) -> Option<&Checkpoint> {
        self.timeline.current_entry().map(|entry| &entry.checkpoint)
    }

    pub fn last_written(&self) -> Option<SystemTime> {
        self.files
            .values()
            .filter_map(|(stamp, _)| stamp.modified)
            .max()
    }

    /// Re-reads the checkpoint files that changed and returns the events for what changed.
    pub fn sync(&mut self, dir: &Path, warnings: &mut BTreeMap<String, String>) -> Vec<BuildEvent> {
        let key = CHECKPOINT_DIR.to_owned();
        let mut names = match list(dir, CHECKPOINT_DIR, ".json") {
            Ok(names) => {
                warnings.remove(&key);
                names
            }
            Err(error) => {
                warnings.insert(key, format!("cannot list checkpoints/: {error}"));
                return Vec::new();
            }
        };
        if names.len() > MAX_CHECKPOINTS {
            let skip = names.len() - MAX_CHECKPOINTS;
            names.drain(..skip);
            warnings.insert(
                key,
                format!("checkpoints/: the {skip} oldest checkpoints are not shown"),
            );
        }
        let mut events = Vec::new();
        let listed: BTreeSet<&String> = names.iter().collect();
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|name| !listed.contains(name))
            .cloned()
            .collect();
        for name in gone {
            if let Some((_, checkpoint)) = self.files.remove(&name) {
                warnings.remove(&warning_key(&name));
                let entry = entry(&name, checkpoint);
                events.push(file_change(&rel(&name), FileChangeType::Deleted, None));
                events.push(BuildEvent::Checkpoint {
                    change: CheckpointChange::Deleted,
                    checkpoint: CheckpointView::of(&entry),
                });
            }
        }
        for name in &names {
            events.extend(self.read(dir, name, warnings));
        }
        let current_before = self.current().cloned();
        self.timeline = Timeline::build(
            self.files
                .iter()
                .map(|(name, (_, checkpoint))| (name.clone(), checkpoint.clone()))
                .collect(),
        );
        for warning in &self.timeline.warnings {
            if let Some((name, _)) = warning.split_once(": ") {
                warnings.insert(warning_key(name), warning.clone());
            }
        }
        events.extend(view::current_changes(
            current_before.as_ref(),
            self.current(),
        ));
        events
    }

    /// Reads one checkpoint file when it changed since the last read.
    fn read(
        &mut self,
        dir: &Path,
        name: &str,
        warnings: &mut BTreeMap<String, String>,
    ) -> Vec<BuildEvent> {
        let path = rel(name);
        let key = warning_key(name);
        let seen = match stamp(dir, &path) {
            Ok(Some(seen)) => seen,
            // Deleted since the listing: the next listing says so.
            Ok(None) => return Vec::new(),
            Err(error) => {
                warnings.insert(key, format!("cannot read {name}: {error}"));
                return Vec::new();
            }
        };
        let before = self.files.get(name);
        if before.is_some_and(|(stamp, _)| *stamp == seen) {
            return Vec::new();
        }
        let bytes = match read_from(dir, &path, 0, MAX_SMALL_FILE) {
            Ok(bytes) => bytes,
            Err(error) => {
                warnings.insert(key, format!("cannot read {name}: {error}"));
                return Vec::new();
            }
        };
        let (checkpoint, problems) = parse_checkpoint(&bytes);
        if problems.is_empty() {
            warnings.remove(&key);
        } else {
            warnings.insert(key, format!("{name}: {}", problems.join("; ")));
        }
        let change = match before {
            None => Some((CheckpointChange::New, FileChangeType::Created)),
            Some((_, old)) if *old == checkpoint => None,
            Some((_, old))
                if checkpoint.status == CheckpointStatus::RolledBack
                    && old.status != CheckpointStatus::RolledBack =>
            {
                Some((CheckpointChange::RolledBack, FileChangeType::Modified))
            }
            Some(_) => Some((CheckpointChange::Changed, FileChangeType::Modified)),
        };
        let mut events = Vec::new();
        if let Some((change, file)) = change {
            events.push(file_change(&path, file, None));
            events.push(BuildEvent::Checkpoint {
                change,
                checkpoint: CheckpointView::of(&entry(name, checkpoint.clone())),
            });
        }
        self.files.insert(name.to_owned(), (seen, checkpoint));
        events
    }
}

fn rel(name: &str) -> String {
    format!("{CHECKPOINT_DIR}/{name}")
}

fn warning_key(name: &str) -> String {
    rel(name)
}

/// A checkpoint placed on its own, as an event shows it.
fn entry(name: &str, checkpoint: Checkpoint) -> TimelineEntry {
    TimelineEntry {
        file_name: name.to_owned(),
        stamp: CheckpointStamp::from_name(name),
        checkpoint,
    }
}
