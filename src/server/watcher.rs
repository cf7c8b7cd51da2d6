//! Turns file-system notifications into index updates (the index publishes the events; the
//! watcher only learns from each update's outcome whether the project left).
//!
//! Watches each project directory, the directories its kinds name (`.ralph/`, `specs/`,
//! `.buildrunner/...`), and every directory a new project
//! could appear in (the roots and their subdirectories down to the discovery depth, skipping the
//! same names discovery skips), each non-recursively; watches follow directories as they come
//! and go, so `mkdir -p root/a/b/proj/.ralph` is a live project at once. Each change is
//! classified by file: appends, pid and pause changes are read within
//! milliseconds (only what arrived together is batched, never longer than 50 ms); markdown and
//! config files are read at once when their project was quiet (leading edge), and the changes
//! that follow within the window are read once it closes (trailing edge), so the first change
//! is never held and the last write always wins. A lost-events
//! notice (`Rescan`) or a watch error re-reads everything. A periodic pass catches what no file
//! event announces: a loop process that died without removing its pid file.
//!
//! File reads never run on the async threads: each project's update runs on the blocking pool,
//! one at a time per project (changes that arrive meanwhile wait for it), so a slow project
//! holds up neither requests nor other projects. A file read in bounded passes that has more
//! waiting gets another pass at once, the project's lock released in between. A directory that
//! cannot be watched is logged once per change of its state, not on every retry.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
};

use notify::{
    event::{CreateKind, ModifyKind, RemoveKind},
    EventKind, RecommendedWatcher, RecursiveMode, Watcher,
};
use tokio::{
    sync::mpsc,
    task::JoinHandle,
    time::{interval_at, sleep_until, Instant, MissedTickBehavior},
};

mod pending;

pub use pending::Timing;
use pending::{Batch, Pending};

use super::{
    discovery,
    index::{Index, Update},
    metrics,
    project::{kind::watched_dirs, FileKind},
    Shutdown,
};

/// Walks of the roots in one rescan at most (each walk that had to add watches is followed by
/// another; a tree that keeps growing is left to the watches already added).
const MAX_RESCAN_PASSES: usize = 8;

pub struct ProjectWatcher {
    task: JoinHandle<()>,
}

impl ProjectWatcher {
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub fn spawn(
    index: Arc<Index>,
    roots: Vec<PathBuf>,
    shutdown: Shutdown,
) -> Result<ProjectWatcher, notify::Error> {
    spawn_with(index, roots, shutdown, Timing::default())
}

pub fn spawn_with(
    index: Arc<Index>,
    roots: Vec<PathBuf>,
    shutdown: Shutdown,
    timing: Timing,
) -> Result<ProjectWatcher, notify::Error> {
    let (sender, events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        // The receiver is gone only while shutting down.
        let _ = sender.send(event);
    })?;
    let mut watched = HashSet::new();
    // A root that cannot be watched is a start error, not a warning.
    for root in &roots {
        watcher.watch(root, RecursiveMode::NonRecursive)?;
        watched.insert(root.clone());
    }
    let (done, updates) = mpsc::unbounded_channel();
    let mut state = WatchState {
        watcher,
        watched,
        scanned: HashSet::new(),
        dirs: HashMap::new(),
        index,
        roots,
        busy: HashSet::new(),
        deferred: HashMap::new(),
        done,
        watch_failures: WarnOnce::default(),
    };
    for (id, dir) in state.index.dirs() {
        state.track(id, dir);
    }
    // Watches the directories below the roots, and finds what appeared since the server's own
    // discovery walk (start-up: before the server listens, so blocking here is fine).
    for _ in 0..MAX_RESCAN_PASSES {
        let walk = walk(&state.roots, &state.index);
        if !state.apply_walk(walk) {
            break;
        }
    }
    let task = tokio::spawn(state.run(events, updates, shutdown, timing));
    Ok(ProjectWatcher { task })
}

struct WatchState {
    watcher: RecommendedWatcher,
    watched: HashSet<PathBuf>,
    /// The directories watched because a project could appear in them ([`discovery::Scan`]).
    scanned: HashSet<PathBuf>,
    /// Project directory -> project id.
    dirs: HashMap<PathBuf, String>,
    index: Arc<Index>,
    roots: Vec<PathBuf>,
    /// Projects whose update is running on the blocking pool.
    busy: HashSet<String>,
    /// Changes to busy projects, read once their running update is done.
    deferred: HashMap<String, BTreeSet<FileKind>>,
    /// Where finished updates report.
    done: mpsc::UnboundedSender<Updated>,
    watch_failures: WarnOnce,
}

/// One project's finished update.
struct Updated {
    id: String,
    outcome: Update,
}

/// What a walk of the roots found (see [`walk`]).
struct Walk {
    dirs: Vec<PathBuf>,
    /// Projects that were added to the index: (id, directory).
    added: Vec<(String, PathBuf)>,
}

/// Walks the roots and adds the projects found to the index (blocking: file reads).
fn walk(roots: &[PathBuf], index: &Index) -> Walk {
    let scan = discovery::scan(roots);
    let added = scan
        .projects
        .into_iter()
        .filter_map(|dir| Some((index.add(dir.clone())?, dir)))
        .collect();
    Walk {
        dirs: scan.dirs,
        added,
    }
}

/// Failing paths and why, so a failure is logged when it starts or changes and a recovery once,
/// instead of on every retry.
#[derive(Debug, Default)]
struct WarnOnce {
    failing: HashMap<PathBuf, String>,
}

impl WarnOnce {
    /// Records a failure; true when it is news (the path was fine, or failed differently).
    fn failed(&mut self, path: &Path, why: &str) -> bool {
        if self.failing.get(path).is_some_and(|known| known == why) {
            return false;
        }
        self.failing.insert(path.to_path_buf(), why.to_owned());
        true
    }

    /// Records a success (or that the path is gone); true when the path was failing.
    fn recovered(&mut self, path: &Path) -> bool {
        self.failing.remove(path).is_some()
    }
}

/// A directory itself, not a link to one: links are never followed into.
fn is_real_dir(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|metadata| metadata.is_dir())
}

impl WatchState {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
        mut updates: mpsc::UnboundedReceiver<Updated>,
        shutdown: Shutdown,
        timing: Timing,
    ) {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        // The projects were read just now: the first check is one period away.
        let mut liveness = interval_at(Instant::now() + timing.liveness, timing.liveness);
        liveness.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pending = Pending::new(timing.slow);
        loop {
            let deadline = pending.deadline();
            tokio::select! {
                _ = &mut stop => return,
                event = events.recv() => match event {
                    Some(event) => self.note(event, &mut pending),
                    None => return,
                },
                Some(updated) = updates.recv() => self.finished(updated, &mut pending).await,
                _ = async { sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                    for batch in pending.take_due(Instant::now()) {
                        self.flush(batch).await;
                    }
                }
                _ = liveness.tick() => {
                    let mut batch = Batch::default();
                    for id in self.dirs.values() {
                        batch.changes.insert(id.clone(), BTreeSet::from([FileKind::Pid]));
                    }
                    self.flush(batch).await;
                }
            }
        }
    }

    fn note(&mut self, event: notify::Result<notify::Event>, pending: &mut Pending) {
        let now = Instant::now();
        match event {
            // Opening or closing a file changes nothing, and loopwatch's own reads cause them:
            // treating them as changes re-read every project about once a millisecond.
            Ok(event) if !is_change(&event.kind) => {}
            Ok(event) if !event.need_rescan() => {
                for path in &event.paths {
                    if let Some((id, dir)) = self.project_of(path) {
                        // The project directory and its marker classify too: their coming or
                        // going re-checks the loop.
                        if let Some(kind) = FileKind::classify(&dir, path) {
                            pending.add(id, kind, now);
                        }
                    }
                    // A directory came or went where a project could appear (or one of those
                    // directories itself went).
                    let in_scanned = self.scanned.contains(path)
                        || path.parent().is_some_and(|p| self.scanned.contains(p));
                    if in_scanned && self.may_add_or_remove_a_dir(&event.kind, path) {
                        pending.slow.rescan_roots = true;
                        pending.slow.touch(now);
                    }
                }
            }
            Ok(_) => {
                metrics::count(&metrics::METRICS.watcher_errors);
                tracing::warn!("file events were lost; re-reading every project");
                self.everything(pending);
            }
            Err(error) => {
                metrics::count(&metrics::METRICS.watcher_errors);
                tracing::warn!(%error, "watch error; re-reading every project");
                self.everything(pending);
            }
        }
    }

    /// Whether an event may mean that a directory appeared or went (so a project may have).
    /// Files written in a watched discovery directory do not count: a busy tree that holds no
    /// project must not cost a walk of the roots on every save.
    fn may_add_or_remove_a_dir(&self, kind: &EventKind, path: &Path) -> bool {
        match kind {
            EventKind::Create(CreateKind::File) | EventKind::Remove(RemoveKind::File) => false,
            EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
            // Editors save by renaming a file over another; a directory renamed away is gone by
            // now, but it was a watched one.
            EventKind::Modify(ModifyKind::Name(_)) => {
                is_real_dir(path) || self.scanned.contains(path)
            }
            _ => false,
        }
    }

    fn everything(&self, pending: &mut Pending) {
        let now = Instant::now();
        for id in self.dirs.values() {
            for kind in FileKind::all() {
                pending.add(id.clone(), kind, now);
            }
        }
        pending.slow.rescan_roots = true;
        pending.slow.touch(now);
    }

    /// The project a changed path belongs to: the project directory itself, a file in it, or a
    /// file in one of the directories its kinds watch (`.ralph/`, `.buildrunner/checkpoints/`).
    fn project_of(&self, path: &Path) -> Option<(String, PathBuf)> {
        path.ancestors().take(4).find_map(|candidate| {
            self.dirs
                .get(candidate)
                .map(|id| (id.clone(), candidate.to_path_buf()))
        })
    }

    /// Starts an update of each changed project on the blocking pool (a busy project's changes
    /// wait for its running update); its result comes back through [`WatchState::finished`].
    async fn flush(&mut self, batch: Batch) {
        for (id, kinds) in batch.changes {
            if self.busy.contains(&id) {
                self.deferred.entry(id).or_default().extend(kinds);
                continue;
            }
            self.busy.insert(id.clone());
            let index = self.index.clone();
            let done = self.done.clone();
            tokio::task::spawn_blocking(move || {
                let kinds: Vec<FileKind> = kinds.into_iter().collect();
                // A panic must not leave the project marked busy for ever.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    index.update(&id, &kinds)
                }));
                let outcome = result.unwrap_or_else(|_| {
                    tracing::error!(project = %id, "updating the project panicked");
                    Update::Updated {
                        unfinished: Vec::new(),
                    }
                });
                // The receiver is gone only while shutting down.
                let _ = done.send(Updated { id, outcome });
            });
        }
        if batch.rescan_roots {
            self.rescan().await;
        }
    }

    /// Takes in a finished update: follows a project leaving, queues another pass for files
    /// with more to read and the changes that waited, and watches `.ralph/` and `specs/`.
    async fn finished(&mut self, updated: Updated, pending: &mut Pending) {
        let Updated { id, outcome } = updated;
        self.busy.remove(&id);
        let waited = self.deferred.remove(&id).unwrap_or_default();
        let unfinished = match outcome {
            Update::Updated { unfinished } => unfinished,
            // Gone before this update (the changes that waited were for it too).
            Update::Unknown => Vec::new(),
            Update::Removed => {
                tracing::info!(project = %id, "project left");
                self.untrack(&id);
                // Its directory may still be there, and may become a project again: it needs a
                // discovery watch now.
                self.rescan().await;
                return;
            }
        };
        let now = Instant::now();
        for kind in unfinished {
            pending.add(id.clone(), kind, now);
        }
        // Their batch was due already: they waited only for the project, not for another window.
        for kind in waited {
            pending.leading.add(id.clone(), kind, now);
        }
        if let Some(dir) = self.dir_of(&id) {
            // Its directories (`.ralph/`, `specs/`) may have been deleted or (re-)created since
            // the last look.
            for sub in watched_dirs() {
                let path = dir.join(sub);
                if is_real_dir(&path) {
                    self.watch(&path);
                } else {
                    self.watched.remove(&path);
                    self.watch_failures.recovered(&path);
                }
            }
        }
    }

    /// Walks the roots (on the blocking pool): adds the projects that appeared, watches every
    /// directory a project could appear in, and drops the watches of directories that are gone
    /// or no longer candidates. A walk that added watches is followed by another: whatever was
    /// created in a directory before its watch existed is found then, and once a walk adds no
    /// watch, every later change is seen by one.
    async fn rescan(&mut self) {
        for _ in 0..MAX_RESCAN_PASSES {
            let roots = self.roots.clone();
            let index = self.index.clone();
            let walked = match tokio::task::spawn_blocking(move || walk(&roots, &index)).await {
                Ok(walked) => walked,
                Err(error) => {
                    tracing::error!(%error, "walking the roots failed");
                    return;
                }
            };
            if !self.apply_walk(walked) {
                return;
            }
        }
    }

    /// Follows what a walk found; true when it added watches (another walk is due).
    fn apply_walk(&mut self, walked: Walk) -> bool {
        for (id, dir) in walked.added {
            tracing::info!(project = %id, "project appeared");
            self.track(id, dir);
        }
        let current: HashSet<PathBuf> = walked.dirs.into_iter().collect();
        let stale: Vec<PathBuf> = self.scanned.difference(&current).cloned().collect();
        for dir in stale {
            self.scanned.remove(&dir);
            // A directory that became a project keeps its watch: it is the project's now.
            // The kernel drops the watches of deleted directories by itself.
            if !self.dirs.contains_key(&dir) {
                self.watch_failures.recovered(&dir);
                if self.watched.remove(&dir) {
                    let _ = self.watcher.unwatch(&dir);
                }
            }
        }
        let mut added = false;
        for dir in current {
            if self.scanned.insert(dir.clone()) {
                self.watch(&dir);
                added = true;
            }
        }
        added
    }

    fn dir_of(&self, id: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .find(|(_, known)| known.as_str() == id)
            .map(|(dir, _)| dir.clone())
    }

    fn track(&mut self, id: String, dir: PathBuf) {
        self.watch(&dir);
        for sub in watched_dirs() {
            self.watch(&dir.join(sub));
        }
        self.dirs.insert(dir, id);
    }

    fn untrack(&mut self, id: &str) {
        if let Some(dir) = self.dir_of(id) {
            let inside = watched_dirs().into_iter().map(|sub| dir.join(sub));
            for path in inside.chain([dir.clone()]) {
                self.watch_failures.recovered(&path);
                if self.watched.remove(&path) {
                    // The kernel drops watches of deleted directories by itself.
                    let _ = self.watcher.unwatch(&path);
                }
            }
            self.dirs.remove(&dir);
        }
    }

    /// Watches a directory (non-recursively). A failure is logged when it starts or changes, not
    /// on every retry (the liveness pass retries a project's `.ralph/` and `specs/` every 2 s).
    fn watch(&mut self, path: &Path) {
        if self.watched.contains(path) || !is_real_dir(path) {
            return;
        }
        match self.watcher.watch(path, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(path.to_path_buf());
                if self.watch_failures.recovered(path) {
                    tracing::info!(path = %path.display(), "watching again");
                }
            }
            Err(error) if matches!(error.kind, notify::ErrorKind::MaxFilesWatch) => {
                if self.watch_failures.failed(path, "limit") {
                    tracing::warn!(
                        path = %path.display(),
                        "cannot watch: the system's limit of watches is reached \
                         (raise fs.inotify.max_user_watches); changes there are seen on the next rescan"
                    );
                }
            }
            Err(error) => {
                if self.watch_failures.failed(path, &error.to_string()) {
                    tracing::warn!(path = %path.display(), %error, "cannot watch");
                }
            }
        }
    }
}

/// Whether a notify event can mean a file's content, presence or name changed.
fn is_change(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::protocol::ServerMessage, server::hub::Hub};
    use notify::event::{AccessKind, AccessMode, DataChange};
    use std::{fs, io::Write, time::Duration};
    use tokio::sync::broadcast;

    /// Saves the plan the way editors do: a new file renamed over the old one.
    fn save_plan(dir: &Path, done: usize) {
        let text: String = (1..=3)
            .map(|n| format!("- [{}] {n}: task\n", if n <= done { 'x' } else { ' ' }))
            .collect();
        let temp = dir.join("plan.tmp");
        fs::write(&temp, text).expect("write the plan");
        fs::rename(&temp, dir.join("IMPLEMENTATION_PLAN.md")).expect("rename the plan");
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Plan(u32),
        Log,
    }

    /// The next plan or log event published (other events are skipped).
    async fn next(published: &mut broadcast::Receiver<Arc<crate::server::hub::Frame>>) -> Seen {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), published.recv())
                .await
                .expect("an event within 30 s")
                .expect("the hub is open");
            match &*frame.event {
                ServerMessage::PlanUpdated { data, .. } => return Seen::Plan(data.tasks_done),
                ServerMessage::LogAppend { .. } => return Seen::Log,
                _ => {}
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_projects_first_plan_change_comes_before_its_window_closes_and_the_last_always_comes(
    ) {
        let root = tempfile::tempdir().expect("tempdir");
        let root_path = root.path().canonicalize().expect("canonical root");
        let dir = root_path.join("proj");
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        let log = dir.join(".ralph/ralph.log");
        fs::write(&log, "start\n").expect("log");
        save_plan(&dir, 0);
        let hub = Hub::new(1024);
        let mut published = hub.subscribe();
        let index = Arc::new(Index::new(hub));
        index.add(dir.clone()).expect("a project");
        let shutdown = Shutdown::default();
        // A window of a second: a first change held for it would come after the log line written
        // right after it (log lines are read within milliseconds).
        let timing = Timing {
            slow: (Duration::from_secs(1), Duration::from_secs(2)),
            liveness: Duration::from_secs(3600),
        };
        let watcher = spawn_with(index, vec![root_path], shutdown.clone(), timing).expect("watch");

        save_plan(&dir, 1);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open log");
        file.write_all(b"after the plan\n").expect("append");
        let mut seen = Vec::new();
        while !seen.contains(&Seen::Log) {
            seen.push(next(&mut published).await);
        }
        assert_eq!(
            seen[0],
            Seen::Plan(1),
            "the first change is read at once: {seen:?}"
        );

        // Two more saves while the window is open: the last one is read when it closes.
        save_plan(&dir, 2);
        save_plan(&dir, 3);
        while seen.last() != Some(&Seen::Plan(3)) {
            seen.push(next(&mut published).await);
        }
        shutdown.trigger();
        watcher.stop().await;
    }

    #[test]
    fn reads_are_not_changes_but_writes_renames_and_removals_are() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            notify::event::RenameMode::To
        ))));
        assert!(is_change(&EventKind::Any));
    }

    #[test]
    fn a_failure_is_news_once_until_it_changes_or_recovers() {
        let mut warnings = WarnOnce::default();
        let dir = Path::new("/root/unreadable");
        assert!(warnings.failed(dir, "Permission denied"), "first failure");
        for _ in 0..100 {
            // The liveness pass retries every 2 s: the same failure is not news.
            assert!(!warnings.failed(dir, "Permission denied"));
        }
        assert!(warnings.failed(dir, "limit"), "a different failure is");
        assert!(
            warnings.failed(Path::new("/other"), "limit"),
            "paths are separate"
        );
        assert!(warnings.recovered(dir), "recovery is news once");
        assert!(!warnings.recovered(dir));
        assert!(
            warnings.failed(dir, "Permission denied"),
            "failing again is news"
        );
    }
}
