//! A project's git history, read with the `git` CLI: read-only, time-limited, output capped,
//! and never on the event path (server functions ask; nothing here runs per file change).
//!
//! The CLI rather than a git library: it is on every machine that has a repository, costs no
//! build time, and reads every repository format the user's git reads. Each call gets a fresh
//! process with a deadline; the repository's own configuration cannot make it run programs
//! (no external diff, no text conversion, no fsmonitor, no pager).

mod parse;

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, UNIX_EPOCH},
};

use tokio::{io::AsyncReadExt, process::Command};

use crate::contract::ralph::stats::parse_timestamp;
use crate::model::git::{Commit, CommitList, Diff, Repository};

/// How long one git command may take.
const DEADLINE: Duration = Duration::from_secs(5);
/// Most bytes read of one command's output (a diff's is capped again, per line and file).
const MAX_OUTPUT: usize = 8 * 1024 * 1024;
/// Most commits one iteration's range lists.
const MAX_RANGE: usize = 200;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GitError {
    #[error("the project is not in a git repository")]
    NotARepository,
    #[error("git is not available: {0}")]
    Unavailable(String),
    #[error("git took longer than {} s", DEADLINE.as_secs())]
    TimedOut,
    #[error("git refused: {0}")]
    Refused(String),
    #[error("no commit {0:?} in this repository")]
    UnknownCommit(String),
}

/// One iteration as git needs it: when it ran and the commit its row names.
#[derive(Clone, Debug, PartialEq)]
pub struct IterationSpan {
    pub run: u32,
    pub iteration: u32,
    /// Unix seconds.
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub commit: Option<String>,
}

impl IterationSpan {
    pub fn new(
        run: u32,
        iteration: u32,
        start: Option<&str>,
        end: Option<&str>,
        commit: Option<&str>,
    ) -> Self {
        Self {
            run,
            iteration,
            start: start.and_then(parse_timestamp),
            end: end.and_then(parse_timestamp),
            commit: commit
                .map(str::trim)
                .filter(|c| is_object_name(c))
                .map(str::to_owned),
        }
    }
}

/// A hex object name (abbreviated or full): the only revisions this module passes to git, so
/// nothing a file says can become an option or a revision expression.
fn is_object_name(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Runs `git ARGS` in `dir`, returning its output (at most [`MAX_OUTPUT`] bytes, and whether
/// there was more).
async fn git(dir: &Path, args: &[&str]) -> Result<(String, bool), GitError> {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args([
            "--no-pager",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.quotepath=off",
            "-c",
            "diff.external=",
            "-c",
            "color.ui=false",
        ])
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|error| GitError::Unavailable(error.to_string()))?;
    let work = async {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(out) = child.stdout.take() {
            let limit = u64::try_from(MAX_OUTPUT + 1).unwrap_or(u64::MAX);
            out.take(limit)
                .read_to_end(&mut stdout)
                .await
                .map_err(|error| GitError::Unavailable(error.to_string()))?;
        }
        let cut = stdout.len() > MAX_OUTPUT;
        if cut {
            stdout.truncate(MAX_OUTPUT);
            // The rest is not wanted: stop git rather than wait for it to finish writing.
            let _ = child.start_kill();
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = (&mut err).take(4096).read_to_end(&mut stderr).await;
        }
        let status = child
            .wait()
            .await
            .map_err(|error| GitError::Unavailable(error.to_string()))?;
        if !status.success() && !cut {
            let message = String::from_utf8_lossy(&stderr).trim().to_owned();
            return Err(classify(message));
        }
        Ok((String::from_utf8_lossy(&stdout).into_owned(), cut))
    };
    tokio::time::timeout(DEADLINE, work)
        .await
        .map_err(|_| GitError::TimedOut)?
}

fn classify(message: String) -> GitError {
    if message.contains("not a git repository") {
        GitError::NotARepository
    } else if ["unknown revision", "bad object", "bad revision"]
        .iter()
        .any(|needle| message.contains(needle))
    {
        GitError::UnknownCommit(message)
    } else {
        GitError::Refused(message.lines().next().unwrap_or_default().to_owned())
    }
}

/// Where the project sits in its repository, if it is in one (found upward from `dir`).
pub async fn repository(dir: &Path) -> Repository {
    match git(dir, &["rev-parse", "--show-prefix"]).await {
        Ok((prefix, _)) => Repository::Found {
            subdir: prefix.trim().trim_end_matches('/').to_owned(),
        },
        Err(GitError::NotARepository) => Repository::NotARepository,
        Err(error) => Repository::Unavailable(error.to_string()),
    }
}

/// The newest `limit` commits that touched the project's directory (all of the repository's
/// when the project is its top), each with the iteration that made it when that can be told.
pub async fn recent(dir: &Path, limit: usize, spans: &[IterationSpan]) -> CommitList {
    let repository = repository(dir).await;
    if !matches!(repository, Repository::Found { .. }) {
        return CommitList {
            repository,
            commits: Vec::new(),
        };
    }
    let count = format!("--max-count={}", limit.clamp(1, 500));
    let args = ["log", parse::LOG_FORMAT, "--numstat", &count, "--", "."];
    match git(dir, &args).await {
        Ok((output, _)) => {
            let mut commits = parse::commits(&output);
            attribute(&mut commits, spans);
            CommitList {
                repository,
                commits,
            }
        }
        // A repository without commits yet has nothing to list.
        Err(GitError::Refused(message)) if message.contains("does not have any commits") => {
            CommitList {
                repository,
                commits: Vec::new(),
            }
        }
        Err(error) => CommitList {
            repository: Repository::Unavailable(error.to_string()),
            commits: Vec::new(),
        },
    }
}

/// Names each commit's iteration: the iteration whose row names it, else the one whose time
/// span holds its time.
pub fn attribute(commits: &mut [Commit], spans: &[IterationSpan]) {
    for commit in commits.iter_mut() {
        let named = spans.iter().find(|span| {
            span.commit
                .as_deref()
                .is_some_and(|c| commit.sha.starts_with(&c.to_ascii_lowercase()))
        });
        let time = humantime::parse_rfc3339(&commit.time)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64());
        let during = || {
            let time = time?;
            spans.iter().find(|span| match (span.start, span.end) {
                (Some(start), Some(end)) => start <= time && time <= end,
                _ => false,
            })
        };
        commit.iteration = named.or_else(during).map(|span| (span.run, span.iteration));
    }
}

/// One commit's changes.
pub async fn commit_diff(dir: &Path, sha: &str) -> Result<Diff, GitError> {
    if !is_object_name(sha) {
        return Err(GitError::UnknownCommit(sha.to_owned()));
    }
    let header = ["log", "-1", parse::LOG_FORMAT, "--numstat", sha, "--"];
    let (log, _) = git(dir, &header).await?;
    let commits = parse::commits(&log);
    let patch = [
        "show",
        "--format=",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "-M",
        "--patch",
        sha,
        "--",
    ];
    let (output, cut) = git(dir, &patch).await?;
    let (files, truncated) = parse::diff(&output, parse::CAPS, cut);
    Ok(Diff {
        commits,
        files,
        truncated,
    })
}

/// An iteration's changes: from the commit before it started to the commit its row names.
/// Without a start time, the commit after the previous iteration's commit is the start.
pub async fn iteration_diff(
    dir: &Path,
    span: &IterationSpan,
    previous_commit: Option<&str>,
) -> Result<Option<Diff>, GitError> {
    let Some(end) = span.commit.as_deref() else {
        return Ok(None);
    };
    let base = match span.start {
        Some(start) => {
            // git's dates are whole seconds: a commit in the second the iteration started
            // belongs to it.
            let before = format!("--before={}", start.floor() as i64 - 1);
            let (base, _) = git(dir, &["rev-list", "-1", &before, end, "--"]).await?;
            Some(base.trim().to_owned()).filter(|b| is_object_name(b))
        }
        None => previous_commit
            .filter(|c| is_object_name(c))
            .map(str::to_owned),
    };
    let range = match &base {
        Some(base) => format!("{base}..{end}"),
        None => end.to_owned(),
    };
    let count = format!("--max-count={MAX_RANGE}");
    let (log, _) = git(
        dir,
        &["log", parse::LOG_FORMAT, "--numstat", &count, &range, "--"],
    )
    .await?;
    let mut commits = parse::commits(&log);
    commits.reverse();
    let (output, cut) = match &base {
        Some(base) => {
            let args = [
                "diff",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                "-M",
                base.as_str(),
                end,
                "--",
            ];
            git(dir, &args).await?
        }
        // No earlier commit: the repository began in this iteration; its root commit's patch
        // and those after it are shown one after another.
        None => {
            let args = [
                "log",
                "--format=",
                "--reverse",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                "-M",
                "--patch",
                &count,
                end,
                "--",
            ];
            git(dir, &args).await?
        }
    };
    let (files, truncated) = parse::diff(&output, parse::CAPS, cut);
    for commit in &mut commits {
        commit.iteration = Some((span.run, span.iteration));
    }
    Ok(Some(Diff {
        commits,
        files,
        truncated,
    }))
}

#[cfg(test)]
mod tests;
