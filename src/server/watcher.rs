//! Turns file-system notifications into index refreshes and hub events.
//!
//! Watches each project directory and its `.ralph/` (non-recursively) and the discovery roots.
//! Changes are batched per project with a short trailing delay (bounded, so a file written
//! continuously still refreshes), and a slow periodic pass catches what no file event announces:
//! a loop process that died without removing its pid file.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::{
    sync::mpsc,
    task::JoinHandle,
    time::{interval, sleep_until, Instant, MissedTickBehavior},
};

use super::{discovery, hub::Hub, index::Index, Shutdown};

/// Quiet time after the last change before a project is re-read.
const SETTLE: Duration = Duration::from_millis(50);
/// Longest a change waits while the files keep changing.
const MAX_DELAY: Duration = Duration::from_millis(200);
/// How often every project is re-read regardless of events (process liveness).
const LIVENESS_PERIOD: Duration = Duration::from_secs(2);

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
    hub: Hub,
    roots: Vec<PathBuf>,
    shutdown: Shutdown,
) -> Result<ProjectWatcher, notify::Error> {
    let (sender, events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        // The receiver is gone only while shutting down.
        let _ = sender.send(event);
    })?;
    for root in &roots {
        watcher.watch(root, RecursiveMode::NonRecursive)?;
    }
    let mut state = WatchState {
        watcher,
        watched: HashSet::new(),
        dirs: HashMap::new(),
        index,
        hub,
        roots,
    };
    for (id, dir) in state.index.dirs() {
        state.track(id, dir);
    }
    let task = tokio::spawn(state.run(events, shutdown));
    Ok(ProjectWatcher { task })
}

struct WatchState {
    watcher: RecommendedWatcher,
    watched: HashSet<PathBuf>,
    /// Project directory -> project id.
    dirs: HashMap<PathBuf, String>,
    index: Arc<Index>,
    hub: Hub,
    roots: Vec<PathBuf>,
}

#[derive(Default)]
struct Pending {
    projects: HashSet<String>,
    rescan_roots: bool,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Pending {
    fn deadline(&self) -> Option<Instant> {
        Some((self.last? + SETTLE).min(self.first? + MAX_DELAY))
    }

    fn touch(&mut self) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
    }
}

impl WatchState {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
        shutdown: Shutdown,
    ) {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut liveness = interval(LIVENESS_PERIOD);
        liveness.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pending = Pending::default();
        loop {
            let deadline = pending.deadline();
            tokio::select! {
                _ = &mut stop => return,
                event = events.recv() => match event {
                    Some(event) => self.note(event, &mut pending),
                    None => return,
                },
                _ = async { sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                    self.flush(std::mem::take(&mut pending));
                }
                _ = liveness.tick() => {
                    let all: HashSet<String> = self.dirs.values().cloned().collect();
                    self.flush(Pending { projects: all, ..Pending::default() });
                }
            }
        }
    }

    fn note(&mut self, event: notify::Result<notify::Event>, pending: &mut Pending) {
        match event {
            Ok(event) if !event.need_rescan() => {
                for path in &event.paths {
                    if let Some(id) = self.project_of(path) {
                        pending.projects.insert(id);
                    }
                    if path
                        .parent()
                        .is_some_and(|p| self.roots.iter().any(|r| r == p))
                    {
                        pending.rescan_roots = true;
                    }
                }
            }
            Ok(_) => {
                tracing::warn!("file events were lost; re-reading every project");
                pending.projects.extend(self.dirs.values().cloned());
                pending.rescan_roots = true;
            }
            Err(error) => {
                tracing::warn!(%error, "watch error; re-reading every project");
                pending.projects.extend(self.dirs.values().cloned());
                pending.rescan_roots = true;
            }
        }
        pending.touch();
    }

    /// The project a changed path belongs to: the project directory itself, a file in it, or a
    /// file in its `.ralph/`.
    fn project_of(&self, path: &Path) -> Option<String> {
        path.ancestors()
            .take(3)
            .find_map(|candidate| self.dirs.get(candidate).cloned())
    }

    fn flush(&mut self, pending: Pending) {
        if pending.rescan_roots {
            for dir in discovery::discover(&self.roots) {
                if let Some(event) = self.index.add(dir.clone()) {
                    if let Some(id) = event.project().map(str::to_owned) {
                        tracing::info!(project = %id, "project appeared");
                        self.track(id, dir);
                    }
                    self.hub.publish(&event);
                }
            }
        }
        for id in pending.projects {
            for event in self.index.refresh(&id) {
                if matches!(
                    event,
                    crate::model::protocol::ServerMessage::ProjectRemoved { .. }
                ) {
                    tracing::info!(project = %id, "project left");
                    self.untrack(&id);
                }
                self.hub.publish(&event);
            }
            if let Some(dir) = self.dir_of(&id) {
                // `.ralph/` may have been deleted or (re-)created since the last look.
                let ralph = dir.join(".ralph");
                if ralph.is_dir() {
                    self.watch(&ralph);
                } else {
                    self.watched.remove(&ralph);
                }
            }
        }
    }

    fn dir_of(&self, id: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .find(|(_, known)| known.as_str() == id)
            .map(|(dir, _)| dir.clone())
    }

    fn track(&mut self, id: String, dir: PathBuf) {
        self.watch(&dir);
        self.watch(&dir.join(".ralph"));
        self.dirs.insert(dir, id);
    }

    fn untrack(&mut self, id: &str) {
        if let Some(dir) = self.dir_of(id) {
            for path in [dir.join(".ralph"), dir.clone()] {
                if self.watched.remove(&path) {
                    // The kernel drops watches of deleted directories by itself.
                    let _ = self.watcher.unwatch(&path);
                }
            }
            self.dirs.remove(&dir);
        }
    }

    fn watch(&mut self, path: &Path) {
        if self.watched.contains(path) || !path.is_dir() {
            return;
        }
        match self.watcher.watch(path, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(path.to_path_buf());
            }
            Err(error) => tracing::warn!(path = %path.display(), %error, "cannot watch"),
        }
    }
}
