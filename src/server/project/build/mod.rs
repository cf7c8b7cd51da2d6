//! A BuildRunner build's live state, kept up to date part by part ([`BuildFile`]): each part is
//! re-read by comparing its files with what was read last (size and modification time), so an
//! event that names a directory, a lost event or the periodic pass all end in the same state,
//! and what changed becomes [`BuildEvent`]s.
//!
//! - `checkpoints`: the checkpoint files, their timeline, and what a change did to them.
//! - `appended`: context files and logs, read from where the last read stopped.
//! - `view`: the card's build line and the build page's detail.

mod appended;
mod checkpoints;
mod view;

use std::{
    collections::{BTreeMap, VecDeque},
    io::{self, Read, Seek, SeekFrom},
    path::Path,
    time::SystemTime,
};

use crate::contract::buildrunner::{
    features::{parse_features, FeaturesFile},
    stats::{build_progress, BuildProgress},
};
use crate::model::build::{BuildEvent, FileChangeType, OutputEntry, MAX_OUTPUT_ENTRIES};
use crate::server::safe_open;

use super::files::MAX_SMALL_FILE;
use super::kind::BuildFile;
use super::Report;

use appended::Appended;
use checkpoints::Checkpoints;

const FEATURES_FILE: &str = ".buildrunner/features.json";

/// What a file looked like when it was last read: a different size or time means it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// The stamp of the file `rel` of the project; `None` when it does not exist.
fn stamp(dir: &Path, rel: &str) -> io::Result<Option<Stamp>> {
    let file = match safe_open::open(dir, rel) {
        Ok(file) => file,
        Err(safe_open::OpenError::Missing(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let metadata = file.metadata()?;
    Ok(Some(Stamp {
        len: metadata.len(),
        modified: metadata.modified().ok(),
    }))
}

/// The bytes of `rel` from `offset`, at most `max` of them.
fn read_from(dir: &Path, rel: &str, offset: u64, max: u64) -> io::Result<Vec<u8>> {
    let mut file = safe_open::open(dir, rel).map_err(io::Error::from)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The names of the files in `rel` that end in `suffix`; none when the directory is missing.
fn list(dir: &Path, rel: &str, suffix: &str) -> io::Result<Vec<String>> {
    match safe_open::list_files(dir, rel) {
        Ok(names) => Ok(names
            .into_iter()
            .filter(|name| name.ends_with(suffix) && !name.starts_with('.'))
            .collect()),
        Err(safe_open::OpenError::Missing(_)) => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}

#[derive(Debug, Default)]
pub struct BuildState {
    checkpoints: Checkpoints,
    features: Option<(Stamp, FeaturesFile)>,
    context: Appended,
    logs: Appended,
    /// The newest terminal output, oldest first.
    output: VecDeque<OutputEntry>,
    /// Problems with the build's files, by file.
    warnings: BTreeMap<String, String>,
    /// When the build last wrote one of its files.
    last_written: Option<SystemTime>,
}

impl BuildState {
    /// Reads every file of the build in `dir` (quietly: no one is listening yet).
    pub fn open(dir: &Path) -> Self {
        let mut state = Self::default_for_new();
        state.sync(dir, BuildFile::Everything, Report::Quiet);
        state
    }

    /// A build that appeared in a project already watched: read by the first `sync`, whose
    /// events announce its files.
    pub fn default_for_new() -> Self {
        BuildState {
            context: Appended::context(),
            logs: Appended::logs(),
            ..BuildState::default()
        }
    }

    /// Re-reads one part of the build and returns the events for what changed.
    pub(super) fn sync(&mut self, dir: &Path, part: BuildFile, report: Report) -> Vec<BuildEvent> {
        let progress_before = self.progress();
        let mut events = Vec::new();
        let everything = part == BuildFile::Everything;
        if everything || part == BuildFile::Checkpoints {
            let changes = self.checkpoints.sync(dir, &mut self.warnings);
            events.extend(changes);
        }
        if everything || part == BuildFile::Features {
            events.extend(self.sync_features(dir));
        }
        if everything || part == BuildFile::Context {
            let (changes, output) = self.context.sync(dir, &mut self.warnings, report);
            events.extend(changes);
            self.remember(&output);
            events.extend(output);
        }
        if everything || part == BuildFile::Logs {
            let (changes, output) = self.logs.sync(dir, &mut self.warnings, report);
            events.extend(changes);
            self.remember(&output);
            events.extend(output);
        }
        let progress = self.progress();
        if progress != progress_before {
            events.push(BuildEvent::Progress(progress));
        }
        self.last_written = [
            self.last_written,
            self.checkpoints.last_written(),
            self.features.as_ref().and_then(|(stamp, _)| stamp.modified),
            self.context.last_written(),
            self.logs.last_written(),
        ]
        .into_iter()
        .max()
        .flatten();
        match report {
            Report::Changes => events,
            Report::Quiet => Vec::new(),
        }
    }

    /// Keeps the output among the events, for pages opened later.
    fn remember(&mut self, events: &[BuildEvent]) {
        for event in events {
            if let BuildEvent::Output(entry) = event {
                self.output.push_back(entry.clone());
            }
        }
        while self.output.len() > MAX_OUTPUT_ENTRIES {
            self.output.pop_front();
        }
    }

    /// Build completion (see `contract::buildrunner::stats`).
    pub fn progress(&self) -> BuildProgress {
        build_progress(
            self.checkpoints.current(),
            self.features.as_ref().map(|(_, file)| file),
        )
    }

    /// When the build last wrote one of its files.
    pub fn last_written(&self) -> Option<SystemTime> {
        self.last_written
    }

    fn sync_features(&mut self, dir: &Path) -> Vec<BuildEvent> {
        let seen = match stamp(dir, FEATURES_FILE) {
            Ok(seen) => seen,
            Err(error) => {
                self.warnings.insert(
                    FEATURES_FILE.into(),
                    format!("cannot read features.json: {error}"),
                );
                return Vec::new();
            }
        };
        let previous = self.features.as_ref().map(|(stamp, _)| *stamp);
        if seen == previous {
            return Vec::new();
        }
        let Some(seen) = seen else {
            self.features = None;
            self.warnings.remove(FEATURES_FILE);
            return vec![
                file_change(FEATURES_FILE, FileChangeType::Deleted, None),
                BuildEvent::Features { features: None },
            ];
        };
        let bytes = match read_from(dir, FEATURES_FILE, 0, MAX_SMALL_FILE) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.warnings.insert(
                    FEATURES_FILE.into(),
                    format!("cannot read features.json: {error}"),
                );
                return Vec::new();
            }
        };
        let (file, mut warnings) = parse_features(&bytes);
        warnings.extend(file.metric_disagreements());
        if warnings.is_empty() {
            self.warnings.remove(FEATURES_FILE);
        } else {
            self.warnings.insert(
                FEATURES_FILE.into(),
                format!("features.json: {}", warnings.join("; ")),
            );
        }
        let before = self.features.as_ref().map(|(_, file)| file);
        let mut events = vec![file_change(
            FEATURES_FILE,
            if before.is_some() {
                FileChangeType::Modified
            } else {
                FileChangeType::Created
            },
            None,
        )];
        if before != Some(&file) {
            events.extend(view::feature_changes(before, &file));
            events.push(BuildEvent::Features {
                features: Some(file.clone()),
            });
        }
        self.features = Some((seen, file));
        events
    }
}

fn file_change(path: &str, change_type: FileChangeType, content: Option<String>) -> BuildEvent {
    BuildEvent::FileChange {
        file_path: path.to_owned(),
        change_type,
        content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::buildrunner::status::{CheckpointStatus, WorkStatus};
    use crate::model::build::{CheckpointChange, OutputType};
    use std::{fs, io::Write, path::PathBuf};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/buildrunner");

    fn build_dir() -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("b");
        fs::create_dir_all(dir.join(".buildrunner/checkpoints")).expect("mkdir");
        fs::create_dir_all(dir.join(".buildrunner/context")).expect("mkdir");
        (temp, dir)
    }

    fn fixture(rel: &str) -> String {
        fs::read_to_string(format!("{FIXTURES}/{rel}")).expect("fixture")
    }

    fn checkpoint(name: &str, phase: &str, status: &str) -> String {
        format!(
            r#"{{"id":"{name}","timestamp":"2025-11-17T21:30:05","phase":"{phase}","tasks_completed":["t"],"files_created":[],"status":"{status}","metadata":{{"name":"{phase}"}}}}"#
        )
    }

    fn append(path: &Path, text: &str) {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("append");
    }

    fn checkpoint_changes(events: &[BuildEvent]) -> Vec<(CheckpointChange, String)> {
        events
            .iter()
            .filter_map(|event| match event {
                BuildEvent::Checkpoint { change, checkpoint } => {
                    Some((*change, checkpoint.id.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn real_checkpoints_and_features_make_the_card() {
        let (_temp, dir) = build_dir();
        for name in [
            "checkpoint_20251117_213005_705272.json",
            "checkpoint_20251117_224022_364548.json",
        ] {
            fs::write(
                dir.join(".buildrunner/checkpoints").join(name),
                fixture(&format!("real/{name}")),
            )
            .expect("write");
        }
        fs::write(
            dir.join(".buildrunner/features.json"),
            fixture("real/features-metrics-disagree.json"),
        )
        .expect("write");
        let state = BuildState::open(&dir);
        let card = state.card();
        let last = card.last_checkpoint.expect("a last checkpoint");
        assert_eq!(last.id, "checkpoint_20251117_224022_364548");
        assert!(card.features_total > 0);
        assert_eq!(card.progress.total, card.features_total);
        assert_eq!(card.progress.completed, card.features_done);
        // The file's own metrics disagree with its list: a warning, the list wins.
        assert!(
            state.warnings().any(|w| w.contains("features.json")),
            "{:?}",
            state.warnings().collect::<Vec<_>>()
        );
    }

    #[test]
    fn checkpoints_new_changed_rolled_back_and_deleted_become_events() {
        let (_temp, dir) = build_dir();
        let checkpoints = dir.join(".buildrunner/checkpoints");
        let first = "checkpoint_20251117_213005_000001";
        let second = "checkpoint_20251117_213006_000001";
        fs::write(
            checkpoints.join(format!("{first}.json")),
            checkpoint(first, "one", "created"),
        )
        .expect("write");
        let mut state = BuildState::open(&dir);
        assert!(state
            .sync(&dir, BuildFile::Checkpoints, Report::Changes)
            .is_empty());

        fs::write(
            checkpoints.join(format!("{second}.json")),
            checkpoint(second, "two", "created"),
        )
        .expect("write");
        let events = state.sync(&dir, BuildFile::Checkpoints, Report::Changes);
        assert_eq!(
            checkpoint_changes(&events),
            [(CheckpointChange::New, second.to_owned())]
        );
        assert!(events.iter().any(|e| matches!(
            e,
            BuildEvent::FileChange { change_type: FileChangeType::Created, file_path, .. }
                if file_path.ends_with(&format!("{second}.json"))
        )));
        assert_eq!(state.card().phase.as_deref(), Some("two"));

        // `br build rollback FIRST`: the target active, the later one rolled back.
        fs::write(
            checkpoints.join(format!("{first}.json")),
            checkpoint(first, "one", "active"),
        )
        .expect("write");
        fs::write(
            checkpoints.join(format!("{second}.json")),
            checkpoint(second, "two", "rolled_back"),
        )
        .expect("write");
        let events = state.sync(&dir, BuildFile::Everything, Report::Changes);
        assert_eq!(
            checkpoint_changes(&events),
            [
                (CheckpointChange::Changed, first.to_owned()),
                (CheckpointChange::RolledBack, second.to_owned())
            ]
        );
        let card = state.card();
        assert_eq!(card.phase.as_deref(), Some("one"), "stands on the target");
        assert_eq!(
            card.last_checkpoint.map(|c| c.status),
            Some(CheckpointStatus::RolledBack)
        );

        fs::remove_file(checkpoints.join(format!("{second}.json"))).expect("rm");
        let events = state.sync(&dir, BuildFile::Checkpoints, Report::Changes);
        assert_eq!(
            checkpoint_changes(&events),
            [(CheckpointChange::Deleted, second.to_owned())]
        );
        // Nothing changed since: nothing to say.
        assert!(state
            .sync(&dir, BuildFile::Everything, Report::Changes)
            .is_empty());
    }

    #[test]
    fn a_checkpoint_with_components_announces_them_and_the_progress() {
        let (_temp, dir) = build_dir();
        let mut state = BuildState::open(&dir);
        fs::write(
            dir.join(".buildrunner/checkpoints/checkpoint_20251119_101500_000001.json"),
            fixture("seed/checkpoint_20251119_101500_000001.json"),
        )
        .expect("write");
        let events = state.sync(&dir, BuildFile::Checkpoints, Report::Changes);
        let components: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Component { component_id, .. } => Some(component_id.as_str()),
                _ => None,
            })
            .collect();
        assert!(components.contains(&"auth_service"), "{components:?}");
        assert!(events
            .iter()
            .any(|e| matches!(e, BuildEvent::Feature { .. })));
        let progress = events.iter().find_map(|e| match e {
            BuildEvent::Progress(progress) => Some(*progress),
            _ => None,
        });
        assert_eq!(progress, Some(state.progress()));
        assert!(state.progress().total > 0);
    }

    #[test]
    fn a_feature_that_changes_is_announced_alone() {
        let (_temp, dir) = build_dir();
        let path = dir.join(".buildrunner/features.json");
        let registry = |status: &str| {
            format!(
                r#"{{"features":[{{"id":"a","name":"A","status":"complete"}},{{"id":"b","name":"B","status":"{status}","priority":"high"}}]}}"#
            )
        };
        fs::write(&path, registry("planned")).expect("write");
        let mut state = BuildState::open(&dir);
        assert_eq!(state.progress().completed, 1);
        fs::write(&path, registry("complete")).expect("write");
        let events = state.sync(&dir, BuildFile::Features, Report::Changes);
        let features: Vec<(&str, WorkStatus)> = events
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Feature {
                    feature_id, status, ..
                } => Some((feature_id.as_str(), *status)),
                _ => None,
            })
            .collect();
        assert_eq!(features, [("b", WorkStatus::Completed)]);
        assert!(events.iter().any(|e| matches!(
            e,
            BuildEvent::Progress(progress) if progress.completed == 2 && progress.percent == 100.0
        )));
    }

    #[test]
    fn context_appends_are_output_and_errors_and_logs_stream_complete_lines() {
        let (_temp, dir) = build_dir();
        let blockers = dir.join(".buildrunner/context/blockers.md");
        fs::write(&blockers, fixture("real/blockers.md")).expect("write");
        let log = dir.join(".buildrunner/build.log");
        fs::write(&log, "old line\n").expect("write");
        let mut state = BuildState::open(&dir);
        append(
            &blockers,
            "\n---\n## Auto-Detected Error - 2025-11-17 21:30:05\n\n**Source:** `api/app.py`\n\n### SyntaxError\n```\ninvalid syntax (app.py, line 3)\n```\n",
        );
        let events = state.sync(&dir, BuildFile::Context, Report::Changes);
        assert!(
            events.iter().any(|e| matches!(
                e,
                BuildEvent::Error { error_type, error_message, .. }
                    if error_type == "SyntaxError" && error_message.contains("api/app.py")
            )),
            "{events:?}"
        );
        assert!(events.iter().any(|e| matches!(
            e,
            BuildEvent::Output(entry) if entry.output_type == OutputType::Stderr
                && entry.output.contains("invalid syntax")
        )));
        // Only what the append touched: the new error block, from its offset on.
        assert!(events.iter().any(|e| matches!(
            e,
            BuildEvent::Context { view, from: Some(_) }
                if view.name == "blockers.md" && view.blocks.len() == 1 && view.blocks[0].is_error()
        )), "{events:?}");

        append(&log, "compiling\nhalf a li");
        let events = state.sync(&dir, BuildFile::Logs, Report::Changes);
        let output: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Output(entry) => Some(entry.output.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            output,
            ["compiling\n"],
            "old lines and the unfinished one wait"
        );
        append(&log, "ne\n");
        let events = state.sync(&dir, BuildFile::Logs, Report::Changes);
        assert!(events.iter().any(
            |e| matches!(e, BuildEvent::Output(entry) if entry.output == "half a line\n" && entry.source == "build.log")
        ));
    }

    #[test]
    fn junk_files_are_warnings_not_failures() {
        let (_temp, dir) = build_dir();
        fs::write(
            dir.join(".buildrunner/checkpoints/checkpoint_20251117_213005_000001.json"),
            fixture("junk/truncated.json"),
        )
        .expect("write");
        fs::write(
            dir.join(".buildrunner/features.json"),
            fixture("junk/array.json"),
        )
        .expect("write");
        fs::write(dir.join(".buildrunner/context/x.md"), [0xff, 0xfe, b'\n']).expect("write");
        let state = BuildState::open(&dir);
        let warnings: Vec<&String> = state.warnings().collect();
        assert!(
            warnings.iter().any(|w| w.contains("checkpoint_")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("features.json")),
            "{warnings:?}"
        );
        assert_eq!(
            state.card().last_checkpoint.map(|c| c.file_name).as_deref(),
            Some("checkpoint_20251117_213005_000001.json")
        );
    }
}
