//! What a project's kind says about its files: where each [`FileKind`] lives, relative to the
//! project, and which relative paths are its files. Telling a directory's kind is discovery's
//! half of the seam ([`ProjectKind::detect`]).

use std::path::Path;

use super::files::{is_spec_name, FileKind};
pub use crate::server::discovery::ProjectKind;

/// The plan a Ralph loop works through, at the project's top.
const PLAN_FILE: &str = "IMPLEMENTATION_PLAN.md";

impl ProjectKind {
    /// Where `file` lives, relative to the project directory.
    pub fn path(self, file: &FileKind) -> String {
        match self {
            ProjectKind::Ralph => {
                let loop_file = |name: &str| format!("{}/{name}", self.marker());
                match file {
                    FileKind::Log => loop_file("ralph.log"),
                    FileKind::Jsonl => loop_file("iterations.jsonl"),
                    FileKind::Pid => loop_file("ralph.pid"),
                    FileKind::Pause => loop_file("pause"),
                    FileKind::Notification => loop_file("pending-notification.txt"),
                    FileKind::Config => loop_file("config.json"),
                    FileKind::Plan => PLAN_FILE.to_owned(),
                    FileKind::Context(name) => name.clone(),
                }
            }
        }
    }

    /// What the file at `relative` (a path inside the project) is to a project of this kind, if
    /// loopwatch cares about it. The marker directory itself counts as the pid file: when it
    /// comes or goes, the loop's liveness (and whether this is a project at all) is re-checked.
    pub fn classify(self, relative: &Path) -> Option<FileKind> {
        let parts: Vec<&str> = relative.iter().filter_map(|p| p.to_str()).collect();
        match self {
            ProjectKind::Ralph => match parts.as_slice() {
                [marker] if *marker == self.marker() => Some(FileKind::Pid),
                [marker, name] if *marker == self.marker() => match *name {
                    "ralph.log" => Some(FileKind::Log),
                    "iterations.jsonl" => Some(FileKind::Jsonl),
                    "ralph.pid" => Some(FileKind::Pid),
                    "pause" => Some(FileKind::Pause),
                    "pending-notification.txt" => Some(FileKind::Notification),
                    "config.json" => Some(FileKind::Config),
                    _ => None,
                },
                [PLAN_FILE] => Some(FileKind::Plan),
                [name @ ("AGENTS.md" | "PROMPT.md")] => Some(FileKind::Context((*name).to_owned())),
                ["specs", name] if is_spec_name(name) => {
                    Some(FileKind::Context(format!("specs/{name}")))
                }
                _ => None,
            },
        }
    }

    /// The directories inside the project whose changes matter to this kind; each is watched.
    pub fn dirs(self) -> &'static [&'static str] {
        match self {
            ProjectKind::Ralph => &[".ralph", "specs"],
        }
    }

    /// The files a full re-read covers (context files are read on request, not kept).
    pub fn files(self) -> Vec<FileKind> {
        match self {
            ProjectKind::Ralph => vec![
                FileKind::Config,
                FileKind::Plan,
                FileKind::Log,
                FileKind::Jsonl,
                FileKind::Notification,
                FileKind::Pid,
                FileKind::Pause,
            ],
        }
    }
}

/// Every directory some kind watches inside a project, each once, so the watcher needs to know
/// no kind.
pub fn watched_dirs() -> Vec<&'static str> {
    let mut dirs: Vec<&'static str> = ProjectKind::ALL
        .into_iter()
        .flat_map(|kind| kind.dirs().iter().copied())
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_classified_back_from_its_path() {
        for kind in ProjectKind::ALL {
            let context = [
                FileKind::Context("AGENTS.md".into()),
                FileKind::Context("specs/api.md".into()),
            ];
            for file in kind.files().into_iter().chain(context) {
                let path = kind.path(&file);
                assert_eq!(kind.classify(Path::new(&path)), Some(file), "{path}");
            }
        }
    }

    #[test]
    fn ralph_files_are_where_the_loop_writes_them() {
        let ralph = ProjectKind::Ralph;
        assert_eq!(ralph.path(&FileKind::Log), ".ralph/ralph.log");
        assert_eq!(ralph.path(&FileKind::Jsonl), ".ralph/iterations.jsonl");
        assert_eq!(ralph.path(&FileKind::Plan), "IMPLEMENTATION_PLAN.md");
        assert_eq!(ralph.classify(Path::new(".ralph/specs/a.md")), None);
        assert_eq!(ralph.classify(Path::new("ralph.log")), None);
        assert_eq!(ralph.classify(Path::new(".ralph")), Some(FileKind::Pid));
    }
}
