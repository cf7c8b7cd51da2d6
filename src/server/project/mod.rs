//! One project's live state, kept up to date file by file: [`ProjectState`] and its two entry
//! points, [`ProjectState::open`] (index everything) and [`ProjectState::update`] (re-read what
//! changed and return the events describing it).
//!
//! - `kind`: where a project of each kind keeps its files.
//! - `build`: a BuildRunner build's checkpoints, features, context files and output.
//! - `files`: which file changed, and reading the small ones whole.
//! - `tracking`: the appended log and rows, read by offset and paired.
//! - `logged`: iterations no row stands for, built from the log alone.
//! - `summary`: the card, and the events for what changed on it.
//! - `queries`: detail, iteration pages, one iteration's text, the published log.
//! - `tail`, `pairing`, `liveness`, `context_files`: their helpers.

pub mod build;
pub mod context_files;
pub mod files;
pub mod kind;
pub mod liveness;
pub mod logged;
pub mod pairing;
pub mod queries;
pub mod summary;
pub mod tail;
pub mod tracking;

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    time::SystemTime,
};

use crate::contract::ralph::{config::LoopConfig, notification::Notification, plan::Plan};
use crate::model::{protocol::ServerMessage, ProjectSummary};

pub use kind::FileKind;
pub use kind::ProjectKind;
pub use queries::{IterationLocation, LogView};

use pairing::Links;
use summary::placeholder_summary;
use tail::{Tail, MAX_LINE_BYTES};
use tracking::{JsonlTracker, LogTracker};

/// Passes that reading a start window may take (each at most `tail::PASS_BYTES`).
const START_PASSES: usize = 64;

/// Whether reading a file returns the events for what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    /// Clients are listening: say what changed.
    Changes,
    /// The first index, or a re-read from scratch: there is no one to tell, or nothing new.
    Quiet,
}

#[derive(Debug)]
pub struct ProjectState {
    id: String,
    dir: PathBuf,
    /// The kinds of project the directory holds (one or more).
    kinds: Vec<ProjectKind>,
    /// The build, for a BuildRunner project.
    build: Option<build::BuildState>,
    log: LogTracker,
    jsonl: JsonlTracker,
    plan: Option<Plan>,
    /// Tasks seen ticked while an iteration ran, by normalized id: that iteration's number
    /// (rows report their own tasks and win).
    ticked_in: BTreeMap<String, u32>,
    config: LoopConfig,
    notifications: Vec<Notification>,
    seen_notifications: HashSet<String>,
    /// Which log iteration each JSONL row belongs to.
    links: Links,
    loop_alive: bool,
    /// The pid file names a loop that is gone.
    left_behind: Option<files::LeftBehind>,
    pause_requested: bool,
    warnings: BTreeMap<&'static str, String>,
    summary: ProjectSummary,
    last_activity: Option<SystemTime>,
    /// Set by the operator (kept in the data directory, never in the project).
    archived_at: Option<String>,
}

impl ProjectState {
    /// Indexes every file of the project, a project of `kinds` (streaming: a huge log is read
    /// once, not kept).
    pub fn open(id: &str, dir: &Path, kinds: Vec<ProjectKind>) -> Self {
        let tail =
            |file: FileKind| Tail::beneath(dir, ProjectKind::Ralph.path(&file), MAX_LINE_BYTES);
        let build = kinds
            .contains(&ProjectKind::BuildRunner)
            .then(|| build::BuildState::open(dir));
        let mut state = Self {
            id: id.to_owned(),
            dir: dir.to_path_buf(),
            kinds: kinds.clone(),
            build,
            log: LogTracker::new(tail(FileKind::Log)),
            jsonl: JsonlTracker::new(tail(FileKind::Jsonl)),
            plan: None,
            ticked_in: BTreeMap::new(),
            config: LoopConfig::default(),
            notifications: Vec::new(),
            seen_notifications: HashSet::new(),
            links: Links::default(),
            loop_alive: false,
            left_behind: None,
            pause_requested: false,
            warnings: BTreeMap::new(),
            summary: placeholder_summary(id, dir),
            last_activity: None,
            archived_at: None,
        };
        state.start_near_end();
        for file in ProjectKind::Ralph.files() {
            let _ = state.read(&file, Report::Quiet);
        }
        // The start windows are bounded: read them whole now (the rest of a file that keeps
        // growing is caught up by later passes).
        for _ in 0..START_PASSES {
            let files = state.unfinished();
            if files.is_empty() {
                break;
            }
            for file in files {
                let _ = state.read(&file, Report::Quiet);
            }
        }
        state.relink();
        state.summary = state.build_summary();
        state
    }

    /// Re-reads the changed files and returns the events for what changed.
    pub fn update(&mut self, files: &[FileKind]) -> Vec<ServerMessage> {
        let mut events = Vec::new();
        // A tick in the plan belongs to the iteration running when it was written, which a
        // header or row of the same batch may have ended since: the plan is read first.
        let plan_first = files
            .iter()
            .filter(|file| **file == FileKind::Plan)
            .chain(files.iter().filter(|file| **file != FileKind::Plan));
        for file in plan_first {
            events.extend(self.read(file, Report::Changes));
        }
        // The periodic liveness pass re-reads the build too: a file written before its
        // directory was watched is found then.
        if files.contains(&FileKind::Pid) {
            events.extend(self.read_build(kind::BuildFile::Everything, Report::Changes));
        }
        if files.contains(&FileKind::Log) {
            // A header read after its row (different batches) pairs up now.
            self.relink();
        }
        // Only once paired: an iteration whose row arrived in the same batch is not log-only.
        events.extend(self.announce_ended());
        let card = self.refresh_summary(&events);
        events.extend(card);
        events
    }

    fn read(&mut self, file: &FileKind, report: Report) -> Vec<ServerMessage> {
        match file {
            FileKind::Log => self.read_log(report),
            FileKind::Jsonl => self.read_jsonl(report),
            FileKind::Build(part) => self.read_build(*part, report),
            _ => self.read_small_file(file, report),
        }
    }

    /// Re-reads a part of the build (nothing for a project without one).
    fn read_build(&mut self, part: kind::BuildFile, report: Report) -> Vec<ServerMessage> {
        let Some(build) = self.build.as_mut() else {
            return Vec::new();
        };
        build
            .sync(&self.dir, part, report)
            .into_iter()
            .map(|data| ServerMessage::Build {
                project: self.id.clone(),
                timestamp: crate::server::clock::now(),
                data,
            })
            .collect()
    }

    /// Follows the kinds the directory holds now: a build that appeared is read (its files are
    /// announced as new), one that went is dropped.
    pub fn set_kinds(&mut self, kinds: Vec<ProjectKind>) -> Vec<ServerMessage> {
        if kinds == self.kinds {
            return Vec::new();
        }
        let has_build = kinds.contains(&ProjectKind::BuildRunner);
        self.kinds = kinds;
        let mut events = Vec::new();
        match (has_build, self.build.is_some()) {
            (true, false) => {
                self.build = Some(build::BuildState::default_for_new());
                events = self.read_build(kind::BuildFile::Everything, Report::Changes);
            }
            (false, true) => self.build = None,
            _ => {}
        }
        events.extend(self.refresh_summary(&events));
        events
    }

    /// The build, for a BuildRunner project.
    pub fn build(&self) -> Option<&build::BuildState> {
        self.build.as_ref()
    }

    /// The build page's detail, with the `project:ID` cursor it continues from.
    pub fn build_detail(
        &self,
        cursor: crate::model::Cursor,
    ) -> Option<crate::model::build::BuildDetail> {
        self.build
            .as_ref()
            .map(|build| build.detail(&self.id, &self.summary.name, cursor))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kinds of project the directory holds.
    pub fn kinds(&self) -> &[ProjectKind] {
        &self.kinds
    }

    pub fn summary(&self) -> &ProjectSummary {
        &self.summary
    }

    /// Marks the project archived (since `at`) or not; the card reflects it at once.
    pub fn set_archived_at(&mut self, at: Option<String>) {
        self.summary.archived_at.clone_from(&at);
        self.archived_at = at;
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

    fn warn(&mut self, key: &'static str, message: String) {
        self.warnings.insert(key, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        api_types::{IterationQuery, IterationSort, MAX_PAGE},
        Cursor,
    };
    use std::{fs, io::Write};

    /// A project directory with an empty `.ralph/` (the temporary directory holds it).
    pub(super) fn project() -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("p");
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        (temp, dir)
    }

    /// A Ralph project's state, as the index opens it.
    pub(super) fn open(dir: &Path) -> ProjectState {
        ProjectState::open("p", dir, vec![ProjectKind::Ralph])
    }

    /// Appends `text` to the file at `path` (created if missing), as a loop writes it.
    pub(super) fn append(path: &Path, text: &str) {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("append");
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
            let mut state = open(&dir);
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
            let fresh = open(&dir);
            proptest::prop_assert_eq!(paired_view(&state), paired_view(&fresh));
        }
    }
}
