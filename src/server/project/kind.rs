//! A project's files ([`FileKind`]) and what each kind says about them: where each lives,
//! relative to the project, and which relative paths are its files. Telling a directory's kind
//! is discovery's half of the seam ([`ProjectKind::detect`]).

use std::path::Path;

pub use crate::server::discovery::ProjectKind;

/// Which of a project's files changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    Log,
    Jsonl,
    Plan,
    Pid,
    Pause,
    Notification,
    Config,
    /// `AGENTS.md`, `PROMPT.md` or `specs/*.md` (the name relative to the project).
    Context(String),
    /// A file of a BuildRunner build, under `.buildrunner/`.
    Build(BuildFile),
}

/// Which part of a BuildRunner build changed. A build re-reads a part by comparing each of its
/// files with what it read last, so a part names a set of files, not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuildFile {
    /// `.buildrunner/` itself came or went: everything.
    Everything,
    /// `checkpoints/*.json`, or the directory.
    Checkpoints,
    /// `features.json`.
    Features,
    /// `context/*.md`, or the directory.
    Context,
    /// `*.log` directly in `.buildrunner/`.
    Logs,
}

impl BuildFile {
    /// Written whole rather than appended (a JSON file is parsed only once its writer is done).
    pub fn is_rewritten_whole(self) -> bool {
        matches!(self, BuildFile::Checkpoints | BuildFile::Features)
    }
}

impl FileKind {
    /// What `path` (inside the project at `dir`) is, if loopwatch cares about it: the file of
    /// whichever kind claims the path ([`ProjectKind::classify`]). The project directory itself
    /// counts as the pid file: when it comes or goes, liveness is re-checked.
    pub fn classify(dir: &Path, path: &Path) -> Option<FileKind> {
        let relative = path.strip_prefix(dir).ok()?;
        if relative.as_os_str().is_empty() {
            return Some(FileKind::Pid);
        }
        ProjectKind::ALL
            .into_iter()
            .find_map(|kind| kind.classify(relative))
    }

    /// Every kind, for a full re-read (of a project of any kind).
    pub fn all() -> Vec<FileKind> {
        let mut all: Vec<FileKind> = ProjectKind::ALL
            .into_iter()
            .flat_map(ProjectKind::files)
            .collect();
        let mut seen = std::collections::HashSet::new();
        all.retain(|file| seen.insert(file.clone()));
        all
    }
}

/// `specs/NAME.md` with a plain name (no hidden files, no separators).
pub fn is_spec_name(name: &str) -> bool {
    name.ends_with(".md")
        && name.len() > 3
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

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
                    FileKind::Build(_) => ProjectKind::BuildRunner.path(file),
                }
            }
            ProjectKind::BuildRunner => {
                let build_file = |name: &str| format!("{}/{name}", self.marker());
                match file {
                    FileKind::Build(BuildFile::Everything) => self.marker().to_owned(),
                    FileKind::Build(BuildFile::Checkpoints) => build_file("checkpoints"),
                    FileKind::Build(BuildFile::Features) => build_file("features.json"),
                    FileKind::Build(BuildFile::Context) => build_file("context"),
                    // The logs are many files: their directory stands for them.
                    FileKind::Build(BuildFile::Logs) => self.marker().to_owned(),
                    // A file of another kind lives where that kind keeps it.
                    other => ProjectKind::Ralph.path(other),
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
            ProjectKind::BuildRunner => {
                let part = match parts.as_slice() {
                    [marker, rest @ ..] if *marker == self.marker() => match rest {
                        [] => BuildFile::Everything,
                        ["checkpoints"] => BuildFile::Checkpoints,
                        ["checkpoints", name] if name.ends_with(".json") => BuildFile::Checkpoints,
                        ["features.json"] => BuildFile::Features,
                        ["context"] => BuildFile::Context,
                        ["context", name] if name.ends_with(".md") => BuildFile::Context,
                        [name] if name.ends_with(".log") => BuildFile::Logs,
                        _ => return None,
                    },
                    _ => return None,
                };
                Some(FileKind::Build(part))
            }
        }
    }

    /// The directories inside the project whose changes matter to this kind; each is watched.
    pub fn dirs(self) -> &'static [&'static str] {
        match self {
            ProjectKind::Ralph => &[".ralph", "specs"],
            ProjectKind::BuildRunner => &[
                ".buildrunner",
                ".buildrunner/checkpoints",
                ".buildrunner/context",
            ],
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
            ProjectKind::BuildRunner => vec![FileKind::Build(BuildFile::Everything)],
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
    fn context_paths_are_classified_and_nothing_else() {
        let dir = Path::new("/p");
        let kind = |rel: &str| FileKind::classify(dir, &dir.join(rel));
        assert_eq!(kind(".ralph/ralph.log"), Some(FileKind::Log));
        assert_eq!(kind("IMPLEMENTATION_PLAN.md"), Some(FileKind::Plan));
        assert_eq!(
            kind("specs/a.md"),
            Some(FileKind::Context("specs/a.md".into()))
        );
        assert_eq!(kind("specs/deep/a.md"), None);
        assert_eq!(kind("src/main.rs"), None);
        assert_eq!(kind(".ralph/other"), None);
        // The project or its loop directory came or went: a liveness re-check.
        assert_eq!(kind(""), Some(FileKind::Pid));
        assert_eq!(kind(".ralph"), Some(FileKind::Pid));
        assert_eq!(
            FileKind::classify(dir, Path::new("/elsewhere/AGENTS.md")),
            None
        );
    }

    #[test]
    fn buildrunner_files_are_classified_as_parts_of_the_build() {
        let dir = Path::new("/p");
        let kind = |rel: &str| FileKind::classify(dir, &dir.join(rel));
        let build = |part| Some(FileKind::Build(part));
        assert_eq!(kind(".buildrunner"), build(BuildFile::Everything));
        assert_eq!(
            kind(".buildrunner/checkpoints/checkpoint_20251117_213005_705272.json"),
            build(BuildFile::Checkpoints)
        );
        assert_eq!(
            kind(".buildrunner/checkpoints"),
            build(BuildFile::Checkpoints)
        );
        assert_eq!(
            kind(".buildrunner/features.json"),
            build(BuildFile::Features)
        );
        assert_eq!(
            kind(".buildrunner/context/blockers.md"),
            build(BuildFile::Context)
        );
        assert_eq!(kind(".buildrunner/build.log"), build(BuildFile::Logs));
        assert_eq!(kind(".buildrunner/checkpoints/notes.txt"), None);
        assert_eq!(kind(".buildrunner/context/deep/a.md"), None);
        assert_eq!(kind(".buildrunner/config.yaml"), None);
        assert_eq!(kind("features.json"), None);
        // A directory of both kinds: each file is its own kind's.
        assert_eq!(kind(".ralph/ralph.log"), Some(FileKind::Log));
        assert!(watched_dirs().contains(&".buildrunner/checkpoints"));
        assert!(watched_dirs().contains(&".ralph"));
    }

    #[test]
    fn a_full_reread_covers_each_file_once() {
        let all = FileKind::all();
        assert_eq!(
            all,
            ProjectKind::ALL
                .into_iter()
                .flat_map(ProjectKind::files)
                .collect::<Vec<_>>()
        );
        assert!(!all.iter().any(|file| matches!(file, FileKind::Context(_))));
    }

    #[test]
    fn every_file_is_classified_back_from_its_path() {
        for kind in ProjectKind::ALL {
            let context = match kind {
                ProjectKind::Ralph => vec![
                    FileKind::Context("AGENTS.md".into()),
                    FileKind::Context("specs/api.md".into()),
                ],
                ProjectKind::BuildRunner => Vec::new(),
            };
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
