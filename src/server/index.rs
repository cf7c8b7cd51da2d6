//! Every watched project's live state. The files stay the source of truth: each project's state
//! is built from them and kept current by the watcher; readers get copies.
//!
//! Events are published to the hub by the index itself, while the project is locked: a reader
//! that takes a project's state and its topic cursor under that lock gets a consistent pair (the
//! live stream continues exactly after that state). Events flow one way, index to hub: the
//! watcher learns what an update did from its [`Update`] outcome.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use crate::model::{
    protocol::{ArchiveChange, ServerMessage},
    Cursor, ProjectSummary, Topic,
};

use crate::contract::ralph::notification::Notification;

use super::{
    archive::{Archival, ArchiveError, ArchiveStore},
    clock::now,
    discovery,
    hub::Hub,
    project::{FileKind, ProjectState},
};

type Shared = Arc<Mutex<ProjectState>>;

/// The newest notifications of every project, as (project id, notification) pairs.
pub type RecentNotifications = Vec<(String, Notification)>;

/// What [`Index::update`] did to a project (its events went to the hub).
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Update {
    /// The project was re-read; `unfinished` are the files with more to read than one pass
    /// takes.
    Updated { unfinished: Vec<FileKind> },
    /// Its directory or every kind's marker (`.ralph/`, `.buildrunner/`) is gone: the project
    /// left the index.
    Removed,
    /// No project has this id (it left meanwhile).
    Unknown,
}

#[derive(Debug)]
pub struct Index {
    projects: RwLock<BTreeMap<String, Shared>>,
    hub: Hub,
    archive: ArchiveStore,
    /// Projects watched elsewhere (by an agent of the cluster engine), by their cards.
    remote: RwLock<BTreeMap<String, ProjectSummary>>,
}

impl Index {
    /// An index whose archive lives in memory only.
    pub fn new(hub: Hub) -> Self {
        Self::with_archive(hub, ArchiveStore::in_memory())
    }

    pub fn with_archive(hub: Hub, archive: ArchiveStore) -> Self {
        Self {
            projects: RwLock::new(BTreeMap::new()),
            hub,
            archive,
            remote: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn len(&self) -> usize {
        self.read(|projects| projects.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: &str) -> bool {
        self.read(|projects| projects.contains_key(id))
            || self
                .remote
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(id)
    }

    /// Records the card of a project watched elsewhere, or forgets it (`None`).
    pub fn set_remote(&self, id: &str, summary: Option<ProjectSummary>) {
        let mut remote = self.remote.write().unwrap_or_else(PoisonError::into_inner);
        match summary {
            Some(summary) => remote.insert(id.to_owned(), summary),
            None => remote.remove(id),
        };
    }

    fn remote_summaries(&self) -> Vec<ProjectSummary> {
        let remote = self.remote.read().unwrap_or_else(PoisonError::into_inner);
        remote.values().cloned().collect()
    }

    pub fn summaries(&self) -> Vec<ProjectSummary> {
        self.all()
            .into_iter()
            .map(|(_, project)| lock(&project).summary().clone())
            .chain(self.remote_summaries())
            .collect()
    }

    /// `(id, directory)` of every project.
    pub fn dirs(&self) -> Vec<(String, PathBuf)> {
        self.all()
            .into_iter()
            .map(|(id, project)| (id, lock(&project).dir().to_path_buf()))
            .collect()
    }

    /// Adds a project directory (canonical), indexing its files, and publishes `project_added`.
    /// Returns the new project's id, or `None` when it was already known (or is no project any
    /// more).
    pub fn add(&self, dir: PathBuf) -> Option<String> {
        let id = discovery::project_id(&dir);
        if self.contains(&id) {
            return None;
        }
        // Index outside the map's lock: a big log takes a while and must not block readers.
        let kinds = discovery::ProjectKind::detect_all(&dir);
        if kinds.is_empty() {
            return None;
        }
        let mut state = ProjectState::open(&id, &dir, kinds);
        state.set_archived_at(self.archive.archived_at(&dir));
        let archival = archival_of(&state);
        let event = ServerMessage::ProjectAdded {
            project: id.clone(),
            timestamp: now(),
            data: state.summary().clone(),
        };
        let mut projects = self
            .projects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if projects.contains_key(&id) {
            return None;
        }
        projects.insert(id.clone(), Arc::new(Mutex::new(state)));
        self.publish(event, archival);
        Some(id)
    }

    /// [`Index::add`] for every directory, on every core (each project is indexed outside the
    /// map's lock, so start-up with many large projects takes the longest one's time per core,
    /// not their sum). Returns how many were added.
    pub fn add_all(&self, dirs: Vec<PathBuf>) -> usize {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(dirs.len().max(1));
        let queue = Mutex::new(dirs.into_iter());
        let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        std::iter::from_fn(next)
                            .filter(|dir| self.add(dir.clone()).is_some())
                            .count()
                    })
                })
                .collect();
            // A worker that panicked indexed nothing more; the others went on.
            handles.into_iter().filter_map(|h| h.join().ok()).sum()
        })
    }

    /// Re-reads the given files of a project and publishes the events for what changed. A
    /// project whose directory or `.ralph/` is gone is removed.
    pub fn update(&self, id: &str, kinds: &[FileKind]) -> Update {
        let Some(project) = self.get(id) else {
            return Update::Unknown;
        };
        let dir = lock(&project).dir().to_path_buf();
        let found = discovery::ProjectKind::detect_all(&dir);
        if found.is_empty() {
            return self.remove(id);
        }
        let mut state = lock(&project);
        let mut events = state.set_kinds(found);
        events.extend(state.update(kinds));
        let archival = archival_of(&state);
        for event in events {
            self.publish(event, archival);
        }
        Update::Updated {
            unfinished: state.unfinished(),
        }
    }

    /// Archives a project or brings it back: saves the choice, updates the card and publishes
    /// `project_archived` on `projects` and `project:ID`. Returns the card as it now is (asking
    /// for the state the project is already in changes nothing and publishes nothing).
    pub fn set_archived(&self, id: &str, to: Archival) -> Result<ProjectSummary, ArchiveError> {
        let archived = to == Archival::Archived;
        let project = self
            .get(id)
            .ok_or_else(|| ArchiveError::UnknownProject(id.to_owned()))?;
        // The project stays locked across the save so two concurrent requests leave the card,
        // the file and the order of the events in agreement.
        let mut state = lock(&project);
        if state.summary().is_archived() == archived {
            return Ok(state.summary().clone());
        }
        let at = self.archive.set(state.dir(), to, &now())?;
        state.set_archived_at(at);
        let summary = state.summary().clone();
        let event = Arc::new(ServerMessage::ProjectArchived {
            project: id.to_owned(),
            timestamp: now(),
            data: ArchiveChange {
                archived,
                summary: summary.clone(),
            },
        });
        // Never marked archived: the transition reaches every connection.
        self.hub
            .publish_on(Topic::Projects, event.clone(), Archival::Active);
        self.hub
            .publish_on(Topic::Project(id.to_owned()), event, Archival::Active);
        Ok(summary)
    }

    /// Publishes an event on its topic, marked with whether its project is archived.
    fn publish(&self, event: ServerMessage, archival: Archival) {
        if let Some(topic) = event.topic() {
            self.hub.publish_on(topic, Arc::new(event), archival);
        }
    }

    /// Drops a project and publishes `project_removed`.
    fn remove(&self, id: &str) -> Update {
        let mut projects = self
            .projects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(removed) = projects.remove(id) else {
            return Update::Unknown;
        };
        let event = ServerMessage::ProjectRemoved {
            project: id.to_owned(),
            timestamp: now(),
        };
        self.publish(event, archival_of(&lock(&removed)));
        Update::Removed
    }

    /// Runs `f` on one project's state together with the cursor of its `project:ID` topic.
    pub fn with_project_at<T>(
        &self,
        id: &str,
        f: impl FnOnce(&ProjectState, Cursor) -> T,
    ) -> Option<T> {
        self.get(id).map(|project| {
            let state = lock(&project);
            f(&state, self.hub.cursor(&Topic::Project(id.to_owned())))
        })
    }

    /// The last lines of a project's log and the `log:ID` cursor they end at. The file is read
    /// after the project's lock is released (the text ends where the cursor does either way).
    pub fn log_backlog(&self, id: &str, lines: u32) -> Option<(String, Cursor)> {
        let (view, cursor) = self.log_view(id)?;
        let text = view.backlog(lines).unwrap_or_else(|error| {
            tracing::warn!(project = id, %error, "cannot read the log backlog");
            String::new()
        });
        Some((text, cursor))
    }

    /// A project's whole published log (the last `max` bytes of it) and the `log:ID` cursor it
    /// ends at: what a client loads after `log_rotated` or `resync`. Read without the lock.
    pub fn log_snapshot(
        &self,
        id: &str,
        max: u64,
    ) -> Option<std::io::Result<(String, bool, Cursor)>> {
        let (view, cursor) = self.log_view(id)?;
        Some(view.text(max).map(|(text, cut)| (text, cut, cursor)))
    }

    /// Where the published log ends, with its cursor: taken together under the project's lock.
    fn log_view(&self, id: &str) -> Option<(super::project::LogView, Cursor)> {
        self.get(id).map(|project| {
            let state = lock(&project);
            let cursor = self.hub.cursor(&Topic::Log(id.to_owned()));
            (state.log_view(), cursor)
        })
    }

    /// Every project's notifications (oldest first), for the messages view's snapshot.
    pub fn recent_notifications(&self) -> RecentNotifications {
        self.all()
            .into_iter()
            .flat_map(|(id, project)| {
                let state = lock(&project);
                state
                    .notifications()
                    .iter()
                    .map(|note| (id.clone(), note.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every project's summary with its cursor, and the cursor of the `projects` topic.
    pub fn summaries_at(&self) -> (Vec<(ProjectSummary, Cursor)>, Cursor) {
        let projects = self.projects.read().unwrap_or_else(PoisonError::into_inner);
        let list_cursor = self.hub.cursor(&Topic::Projects);
        let summaries = projects
            .iter()
            .map(|(id, project)| {
                let state = lock(project);
                (
                    state.summary().clone(),
                    self.hub.cursor(&Topic::Project(id.clone())),
                )
            })
            .chain(self.remote_summaries().into_iter().map(|summary| {
                let cursor = self.hub.cursor(&Topic::Project(summary.id.clone()));
                (summary, cursor)
            }))
            .collect();
        (summaries, list_cursor)
    }

    /// Adds a notification loopwatch raised itself (an alert) to the project's state and
    /// publishes it under the project's lock, as the loop's own notifications are: a state
    /// fetched at any cursor then holds exactly the alerts published before that cursor (a page
    /// that refetched after an iteration ended lost an alert published meanwhile).
    pub fn raise(&self, id: &str, notification: Notification) -> bool {
        let Some(project) = self.get(id) else {
            return false;
        };
        let mut state = lock(&project);
        let archival = archival_of(&state);
        match state.add_notification(notification) {
            Some(event) => {
                self.publish(event, archival);
                true
            }
            None => false,
        }
    }

    /// Runs `f` on one project's state (briefly: the watcher waits meanwhile).
    pub fn with_project<T>(&self, id: &str, f: impl FnOnce(&ProjectState) -> T) -> Option<T> {
        self.get(id).map(|project| f(&lock(&project)))
    }

    fn get(&self, id: &str) -> Option<Shared> {
        self.read(|projects| projects.get(id).cloned())
    }

    fn all(&self) -> Vec<(String, Shared)> {
        self.read(|projects| {
            projects
                .iter()
                .map(|(id, project)| (id.clone(), project.clone()))
                .collect()
        })
    }

    fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, Shared>) -> T) -> T {
        f(&self.projects.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn lock(project: &Shared) -> std::sync::MutexGuard<'_, ProjectState> {
    project.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a project's events are marked: by whether it is archived now.
fn archival_of(state: &ProjectState) -> Archival {
    if state.summary().is_archived() {
        Archival::Archived
    } else {
        Archival::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{protocol::StatusChange, Status};
    use std::fs;
    use tokio::sync::broadcast;

    /// The events published since the last call, in order.
    fn published(
        receiver: &mut broadcast::Receiver<Arc<super::super::hub::Frame>>,
    ) -> Vec<ServerMessage> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|frame| (*frame.event).clone())
            .collect()
    }

    #[test]
    fn a_raised_alert_is_in_every_state_fetched_at_or_after_its_cursor_and_raised_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("proj");
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        let hub = Hub::new(16);
        let mut receiver = hub.subscribe();
        let index = Index::new(hub);
        let id = index
            .add(dir.canonicalize().expect("canonical"))
            .expect("added");
        let _ = published(&mut receiver);
        let alert = crate::contract::ralph::notification::parse_notification(
            b"ERROR: tests failed three times",
        )
        .expect("parses");
        assert!(index.raise(&id, alert.clone()));
        assert!(!index.raise(&id, alert.clone()), "once per id");
        let events = published(&mut receiver);
        assert_eq!(events.len(), 1, "{events:?}");
        let (held, cursor) = index
            .with_project_at(&id, |state, cursor| {
                (state.detail(cursor).notifications, cursor)
            })
            .expect("known");
        assert!(held.iter().any(|n| n.id == alert.id), "{held:?}");
        assert_eq!(cursor.seq, 1, "the alert's event is at the fetched cursor");
        assert!(!index.raise("nobody", alert));
    }

    #[test]
    fn add_all_indexes_every_project_once_on_every_core() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut dirs = Vec::new();
        for n in 0..9 {
            let dir = root.path().join(format!("p{n}"));
            fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
            fs::write(dir.join(".ralph/ralph.log"), format!("log of {n}\n")).expect("log");
            dirs.push(dir.canonicalize().expect("canonical"));
        }
        let not_a_project = root.path().join("plain");
        fs::create_dir_all(&not_a_project).expect("mkdir");
        let hub = Hub::new(64);
        let mut receiver = hub.subscribe();
        let index = Index::new(hub);
        let mut given = dirs.clone();
        given.push(dirs[3].clone());
        given.push(not_a_project);
        assert_eq!(
            index.add_all(given),
            9,
            "each project once, the plain directory not"
        );
        assert_eq!(index.len(), 9);
        let added = published(&mut receiver)
            .into_iter()
            .filter(|e| matches!(e, ServerMessage::ProjectAdded { .. }))
            .count();
        assert_eq!(added, 9);
        assert_eq!(index.add_all(Vec::new()), 0);
    }

    #[test]
    fn updates_publish_status_and_plan_changes_then_say_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("proj");
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        fs::write(dir.join(".ralph/ralph.pid"), std::process::id().to_string()).expect("pid");
        let dir = dir.canonicalize().expect("canonical");
        let hub = Hub::new(16);
        let mut receiver = hub.subscribe();
        let index = Index::new(hub);
        let id = index.add(dir.clone()).expect("added");
        assert_eq!(index.add(dir.clone()), None, "added once");
        assert!(index.contains(&id));
        assert!(matches!(
            &published(&mut receiver)[..],
            [ServerMessage::ProjectAdded { project, .. }] if *project == id
        ));
        assert_eq!(
            index.update(&id, &FileKind::all()),
            Update::Updated {
                unfinished: Vec::new()
            }
        );
        assert!(published(&mut receiver).is_empty(), "nothing changed");

        fs::write(dir.join(".ralph/pause"), "").expect("pause");
        fs::write(
            dir.join("IMPLEMENTATION_PLAN.md"),
            "- [x] 1: a\n- [ ] 2: b\n",
        )
        .expect("plan");
        assert!(matches!(
            index.update(&id, &[FileKind::Pause, FileKind::Plan]),
            Update::Updated { .. }
        ));
        let events = published(&mut receiver);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(
            &events[0],
            ServerMessage::StatusChanged {
                data: StatusChange {
                    status: Status::Paused,
                    previous: Status::Running
                },
                ..
            }
        ));
        assert!(matches!(
            &events[1],
            ServerMessage::PlanUpdated { data, .. } if data.tasks_done == 1 && data.tasks_total == 2
        ));
        // Writing the plan is the loop's first activity the card knows of.
        assert!(matches!(
            &events[2],
            ServerMessage::ProjectUpdated { data, .. } if data.last_activity.is_some()
        ));
        let (summaries, _) = index.summaries_at();
        assert_eq!(
            summaries[0].1.seq, 3,
            "three events published on project:ID"
        );

        fs::remove_dir_all(&dir).expect("delete project");
        assert_eq!(index.update(&id, &[FileKind::Pid]), Update::Removed);
        assert!(matches!(
            &published(&mut receiver)[..],
            [ServerMessage::ProjectRemoved { .. }]
        ));
        assert!(index.is_empty());
        assert_eq!(index.update(&id, &[FileKind::Pid]), Update::Unknown);
    }
}
