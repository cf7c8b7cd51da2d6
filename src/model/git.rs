//! What the page shows of a project's git history: commits with their diffstat and the
//! iteration that made them, and diffs split into files and lines (capped, binary files named).

use serde::{Deserialize, Serialize};

/// One commit, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The full object name.
    pub sha: String,
    pub subject: String,
    pub author: String,
    /// The author time, RFC 3339 in UTC.
    pub time: String,
    /// Files changed, and lines added and removed (binary files count as files only).
    pub files: u32,
    pub insertions: u32,
    pub deletions: u32,
    /// The loop iteration that made it, when one can be told (`(run, iteration)`).
    pub iteration: Option<(u32, u32)>,
}

/// Whether there is a history to show, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Repository {
    /// The project is in a git work tree; `subdir` is its path inside it ("" at the top).
    Found { subdir: String },
    /// Not inside any git repository.
    NotARepository,
    /// git is missing, timed out, or refused (for example a repository owned by another user).
    Unavailable(String),
}

/// The Commits tab: the project's newest commits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitList {
    pub repository: Repository,
    pub commits: Vec<Commit>,
}

/// How one line of a diff reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineKind {
    /// `@@ -a,b +c,d @@`
    Hunk,
    Added,
    Removed,
    Context,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    pub kind: LineKind,
    pub text: String,
}

/// One file of a diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    pub path: String,
    /// The old name of a renamed file.
    pub renamed_from: Option<String>,
    /// A binary file: named, never shown.
    pub binary: bool,
    pub lines: Vec<DiffLine>,
    /// Lines were left out: this file's share of the diff was used up.
    pub truncated: bool,
}

/// A commit's (or an iteration's) changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The commits it covers, oldest first.
    pub commits: Vec<Commit>,
    pub files: Vec<FileDiff>,
    /// Files or lines were left out: the whole diff was over its cap.
    pub truncated: bool,
}
