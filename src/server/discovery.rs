//! Finding projects under the configured roots, and telling which kinds of agent project each
//! holds (a Ralph loop keeps its files in `.ralph/`, a BuildRunner build in `.buildrunner/`).

use std::path::{Path, PathBuf};

/// How deep below a root a project may sit.
pub const MAX_DEPTH: usize = 4;

/// Directories that never hold projects worth watching and can be huge.
const SKIP: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    "dist",
    "build",
    ".venv",
    "__pycache__",
    ".next",
];

/// Canonicalizes each root, refusing ones that do not exist or are not directories.
pub fn validate_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>, (PathBuf, String)> {
    roots
        .iter()
        .map(|root| {
            let canonical = root
                .canonicalize()
                .map_err(|e| (root.clone(), format!("cannot open: {e}")))?;
            if !canonical.is_dir() {
                return Err((root.clone(), "is not a directory".to_owned()));
            }
            Ok(canonical)
        })
        .collect()
}

/// The kind of agent project a directory holds, told by the directory the tool keeps its files
/// in. What each kind's files are is its other half, in `project::kind`.
pub use crate::model::ProjectKind;

impl ProjectKind {
    /// The directory (relative to the project) whose presence makes a project of this kind.
    pub fn marker(self) -> &'static str {
        match self {
            ProjectKind::Ralph => ".ralph",
            ProjectKind::BuildRunner => ".buildrunner",
        }
    }

    /// The kind of project `dir` is, if any: the first kind whose marker is a real directory
    /// there. A marker that is a symbolic link does not count: the loop's files would live
    /// wherever the link points, outside the directory shown.
    pub fn detect(dir: &Path) -> Option<ProjectKind> {
        Self::detect_all(dir).first().copied()
    }

    /// Every kind of project `dir` holds, in [`ProjectKind::ALL`]'s order (empty: no project).
    pub fn detect_all(dir: &Path) -> Vec<ProjectKind> {
        Self::ALL
            .into_iter()
            .filter(|kind| {
                dir.join(kind.marker())
                    .symlink_metadata()
                    .is_ok_and(|metadata| metadata.is_dir())
            })
            .collect()
    }
}

/// A directory that holds a project of some kind ([`ProjectKind::detect`]).
pub fn is_project(dir: &Path) -> bool {
    ProjectKind::detect(dir).is_some()
}

/// Every project under the roots (a root may itself be one), sorted and without duplicates.
pub fn discover(roots: &[PathBuf]) -> Vec<PathBuf> {
    scan(roots).projects
}

/// What one walk of the roots finds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Project directories, sorted, without duplicates.
    pub projects: Vec<PathBuf>,
    /// The other directories down to [`MAX_DEPTH`] (the roots included, the skipped names and
    /// the insides of projects not): a project can appear in any of them, so the watcher
    /// watches each (non-recursively). Sorted, without duplicates.
    pub dirs: Vec<PathBuf>,
}

/// Walks the roots down to [`MAX_DEPTH`]. Symlinked directories are not followed, so a link
/// cycle cannot trap the walk.
pub fn scan(roots: &[PathBuf]) -> Scan {
    let mut found = Vec::new();
    let mut dirs = Vec::new();
    let mut pending: Vec<(PathBuf, usize)> = roots.iter().map(|r| (r.clone(), 0)).collect();
    while let Some((dir, depth)) = pending.pop() {
        if is_project(&dir) {
            found.push(dir);
            continue;
        }
        // Watched even at the last level: `mkdir DIR/.ralph` there makes DIR a project.
        dirs.push(dir.clone());
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            if is_dir && !SKIP.iter().any(|skip| name == *skip) {
                pending.push((entry.path(), depth + 1));
            }
        }
    }
    found.sort();
    found.dedup();
    dirs.sort();
    dirs.dedup();
    Scan {
        projects: found,
        dirs,
    }
}

/// A readable, stable id: the directory name as a slug plus a short hash of the canonical path,
/// so two projects with the same name in different places never collide.
pub fn project_id(canonical: &Path) -> String {
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut slug = slug(&name);
    if slug.is_empty() {
        slug.push_str("project");
    }
    let hash = fnv1a(canonical.as_os_str().as_encoded_bytes());
    format!("{slug}-{:08x}", (hash ^ (hash >> 32)) as u32)
}

fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// FNV-1a: tiny, and stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_readable_stable_and_distinct() {
        let a = project_id(Path::new("/home/me/Antique Catalogue"));
        assert!(a.starts_with("antique-catalogue-"), "{a}");
        assert_eq!(a, project_id(Path::new("/home/me/Antique Catalogue")));
        assert_ne!(a, project_id(Path::new("/srv/Antique Catalogue")));
        assert!(project_id(Path::new("/")).starts_with("project-"));
        assert!(project_id(Path::new("/x/\u{1f600}")).starts_with("project-"));
        assert_eq!(slug("--Hello,  World!--"), "hello-world");
    }

    #[test]
    fn finds_projects_and_skips_noise() {
        let root = tempfile::tempdir().expect("tempdir");
        let make = |rel: &str| {
            std::fs::create_dir_all(root.path().join(rel)).expect("mkdir");
        };
        make("alpha/.ralph");
        make("group/beta/.ralph");
        make("node_modules/hidden/.ralph");
        make("alpha/nested/.ralph"); // inside a project: not a separate project
        make("a/b/c/d/e/too-deep/.ralph");
        make("plain/dir");
        let roots = validate_roots(&[root.path().to_path_buf()]).expect("root ok");
        let found: Vec<String> = discover(&roots)
            .iter()
            .map(|p| p.strip_prefix(&roots[0]).unwrap_or(p).display().to_string())
            .collect();
        assert_eq!(found, ["alpha", "group/beta"]);

        // The directories a new project could appear in: down to the last level, not inside
        // projects, not under skipped names.
        let relative = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.strip_prefix(&roots[0]).unwrap_or(p).display().to_string())
                .collect()
        };
        assert_eq!(
            relative(scan(&roots).dirs),
            [
                "",
                "a",
                "a/b",
                "a/b/c",
                "a/b/c/d",
                "group",
                "plain",
                "plain/dir"
            ]
        );
    }

    #[test]
    fn bad_roots_are_clear_errors() {
        let missing = PathBuf::from("/definitely/not/here");
        let err = validate_roots(std::slice::from_ref(&missing)).expect_err("missing root");
        assert_eq!(err.0, missing);
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let err = validate_roots(&[file.path().to_path_buf()]).expect_err("file root");
        assert_eq!(err.1, "is not a directory");
    }

    #[test]
    fn a_ralph_directory_is_a_ralph_project_and_a_plain_one_is_none() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("loop/.ralph")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("plain/src")).expect("mkdir");
        // A file named `.ralph` is no marker either.
        std::fs::create_dir_all(root.path().join("file")).expect("mkdir");
        std::fs::write(root.path().join("file/.ralph"), "").expect("write");
        assert_eq!(
            ProjectKind::detect(&root.path().join("loop")),
            Some(ProjectKind::Ralph)
        );
        assert_eq!(ProjectKind::detect(&root.path().join("plain")), None);
        assert_eq!(ProjectKind::detect(&root.path().join("file")), None);
        assert_eq!(ProjectKind::detect(&root.path().join("missing")), None);
        assert!(is_project(&root.path().join("loop")));
        assert!(!is_project(&root.path().join("plain")));
    }

    #[test]
    fn a_buildrunner_directory_is_a_project_and_a_directory_may_be_both_kinds() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("shop/.buildrunner")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("both/.buildrunner")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("both/.ralph")).expect("mkdir");
        let kinds = |rel: &str| ProjectKind::detect_all(&root.path().join(rel));
        assert_eq!(kinds("shop"), [ProjectKind::BuildRunner]);
        assert_eq!(
            kinds("both"),
            [ProjectKind::Ralph, ProjectKind::BuildRunner]
        );
        assert!(kinds("missing").is_empty());
        let roots = validate_roots(&[root.path().to_path_buf()]).expect("root ok");
        assert_eq!(
            discover(&roots),
            [roots[0].join("both"), roots[0].join("shop")]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_ralph_directory_is_not_a_project() {
        let root = tempfile::tempdir().expect("tempdir");
        let elsewhere = root.path().join("elsewhere/.ralph");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::fs::create_dir_all(root.path().join("linked")).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, root.path().join("linked/.ralph")).expect("link");
        let roots = validate_roots(&[root.path().to_path_buf()]).expect("root ok");
        assert!(!is_project(&roots[0].join("linked")));
        assert_eq!(ProjectKind::detect(&roots[0].join("linked")), None);
        let found = discover(&roots);
        assert_eq!(found, [roots[0].join("elsewhere")], "only the real one");
    }
}
