//! The in-memory state of every watched project. The files stay the source of truth: the index
//! is rebuilt from them on demand and only remembers what it last told clients, to emit changes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{PoisonError, RwLock},
    time::SystemTime,
};

use crate::model::{
    protocol::{ServerMessage, StatusChange},
    ProjectSummary,
};

use super::{discovery, snapshot};

#[derive(Debug)]
struct Entry {
    dir: PathBuf,
    summary: ProjectSummary,
}

#[derive(Debug, Default)]
pub struct Index {
    projects: RwLock<BTreeMap<String, Entry>>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.read(|projects| projects.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn summaries(&self) -> Vec<ProjectSummary> {
        self.read(|projects| projects.values().map(|e| e.summary.clone()).collect())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.read(|projects| projects.contains_key(id))
    }

    /// `(id, directory)` of every project.
    pub fn dirs(&self) -> Vec<(String, PathBuf)> {
        self.read(|projects| {
            projects
                .iter()
                .map(|(id, e)| (id.clone(), e.dir.clone()))
                .collect()
        })
    }

    /// Adds a project directory (canonical). Returns the `project_added` event, or `None` when
    /// it was already known.
    pub fn add(&self, dir: PathBuf) -> Option<ServerMessage> {
        let id = discovery::project_id(&dir);
        if self.contains(&id) {
            return None;
        }
        let summary = snapshot::read_project(&id, &dir);
        let event = ServerMessage::ProjectAdded {
            project: id.clone(),
            timestamp: now(),
            data: summary.clone(),
        };
        let mut projects = self
            .projects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if projects.contains_key(&id) {
            return None;
        }
        projects.insert(id, Entry { dir, summary });
        Some(event)
    }

    /// Re-reads a project's files and returns the events describing what changed. A project whose
    /// directory or `.ralph/` is gone is removed.
    pub fn refresh(&self, id: &str) -> Vec<ServerMessage> {
        let Some(dir) = self.read(|projects| projects.get(id).map(|e| e.dir.clone())) else {
            return Vec::new();
        };
        if !discovery::is_project(&dir) {
            return self.remove(id).into_iter().collect();
        }
        // Read outside the lock: file I/O must not block readers.
        let fresh = snapshot::read_project(id, &dir);
        let mut projects = self
            .projects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = projects.get_mut(id) else {
            return Vec::new();
        };
        let events = changes(&entry.summary, &fresh);
        entry.summary = fresh;
        events
    }

    pub fn remove(&self, id: &str) -> Option<ServerMessage> {
        let mut projects = self
            .projects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        projects.remove(id).map(|_| ServerMessage::ProjectRemoved {
            project: id.to_owned(),
            timestamp: now(),
        })
    }

    /// The id of the project whose directory is `dir`, if any.
    pub fn id_of(&self, dir: &Path) -> Option<String> {
        self.read(|projects| {
            projects
                .iter()
                .find(|(_, e)| e.dir == dir)
                .map(|(id, _)| id.clone())
        })
    }

    fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, Entry>) -> T) -> T {
        f(&self.projects.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The events that turn `old` into `new`.
fn changes(old: &ProjectSummary, new: &ProjectSummary) -> Vec<ServerMessage> {
    let mut events = Vec::new();
    if old.status != new.status {
        events.push(ServerMessage::StatusChanged {
            project: new.id.clone(),
            timestamp: now(),
            data: StatusChange {
                status: new.status,
                previous: old.status,
            },
        });
    }
    if old.plan != new.plan {
        events.push(ServerMessage::PlanUpdated {
            project: new.id.clone(),
            timestamp: now(),
            data: new.plan.clone().unwrap_or_default(),
        });
    }
    if old.warnings != new.warnings || old.name != new.name {
        // Nothing smaller describes it: send the whole card.
        events.push(ServerMessage::ProjectUpdated {
            project: new.id.clone(),
            timestamp: now(),
            data: new.clone(),
        });
    }
    events
}

/// ISO-8601 timestamp (UTC) for event envelopes.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use std::fs;

    #[test]
    fn refresh_reports_status_and_plan_changes_then_removal() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("proj");
        fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
        fs::write(dir.join(".ralph/ralph.pid"), std::process::id().to_string()).expect("pid");
        let dir = dir.canonicalize().expect("canonical");
        let index = Index::default();
        assert!(index.add(dir.clone()).is_some());
        assert!(index.add(dir.clone()).is_none(), "added once");
        let id = index.id_of(&dir).expect("known");
        assert!(index.refresh(&id).is_empty(), "nothing changed");

        fs::write(dir.join(".ralph/pause"), "").expect("pause");
        fs::write(dir.join(snapshot::PLAN_FILE), "- [x] 1: a\n- [ ] 2: b\n").expect("plan");
        let events = index.refresh(&id);
        assert_eq!(events.len(), 2, "{events:?}");
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

        fs::remove_dir_all(&dir).expect("delete project");
        let events = index.refresh(&id);
        assert!(matches!(
            &events[..],
            [ServerMessage::ProjectRemoved { .. }]
        ));
        assert!(index.is_empty());
    }
}
