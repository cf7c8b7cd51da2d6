//! Against real repositories made here with the `git` CLI, with fixed commit times.

use super::*;
use crate::model::git::LineKind;
use std::path::PathBuf;

const T0: i64 = 1_764_230_400; // 2025-11-27T08:00:00Z

struct Repo {
    _temp: tempfile::TempDir,
    root: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let temp = tempfile::tempdir().expect("tempdir");
        let root = temp.path().join("repo");
        std::fs::create_dir(&root).expect("mkdir");
        let repo = Repo { _temp: temp, root };
        repo.run(&["init", "-q", "-b", "main"]);
        repo
    }

    fn run(&self, args: &[&str]) -> String {
        self.run_at(args, T0)
    }

    fn run_at(&self, args: &[&str], time: i64) -> String {
        let date = format!("@{time} +0000");
        let output = std::process::Command::new("git")
            .current_dir(&self.root)
            .args(args)
            .env("GIT_AUTHOR_NAME", "Loop")
            .env("GIT_AUTHOR_EMAIL", "loop@example.invalid")
            .env("GIT_COMMITTER_NAME", "Loop")
            .env("GIT_COMMITTER_EMAIL", "loop@example.invalid")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.root.parent().expect("parent"))
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Writes `files` and commits them at `time`; returns the commit's name.
    fn commit(&self, time: i64, message: &str, files: &[(&str, &[u8])]) -> String {
        for (name, content) in files {
            let path = self.root.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        self.run_at(&["add", "-A"], time);
        self.run_at(&["commit", "-q", "-m", message], time);
        self.run(&["rev-parse", "HEAD"])
    }
}

fn at(seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).expect("positive"));
    humantime::format_rfc3339_seconds(time).to_string()
}

fn span(iteration: u32, start: i64, end: i64, commit: Option<&str>) -> IterationSpan {
    IterationSpan::new(1, iteration, Some(&at(start)), Some(&at(end)), commit)
}

#[tokio::test]
async fn commits_are_listed_with_stats_and_the_iteration_that_made_them() {
    let repo = Repo::new();
    let before = repo.commit(T0, "setup", &[("README.md", b"hello\n")]);
    let first = repo.commit(T0 + 100, "feat: a", &[("src/a.rs", b"fn a() {}\n")]);
    let second = repo.commit(
        T0 + 150,
        "feat: b",
        &[
            ("src/b.rs", b"fn b() {}\nfn c() {}\n"),
            ("logo.png", &[0, 1, 2, 0, 255]),
        ],
    );
    // Iteration 1 names its commit by a short name; iteration 2 names none but ran when
    // `second` was made.
    let spans = [
        span(1, T0 + 50, T0 + 120, Some(&first[..8])),
        span(2, T0 + 130, T0 + 200, None),
    ];
    let list = recent(&repo.root, 10, &spans).await;
    assert_eq!(
        list.repository,
        Repository::Found {
            subdir: String::new()
        }
    );
    let shas: Vec<&str> = list.commits.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(shas, [second.as_str(), first.as_str(), before.as_str()]);
    let newest = &list.commits[0];
    assert_eq!(
        (newest.files, newest.insertions, newest.deletions),
        (2, 2, 0)
    );
    assert_eq!(newest.subject, "feat: b");
    assert_eq!(newest.author, "Loop");
    assert_eq!(newest.time, at(T0 + 150));
    let made_by: Vec<Option<(u32, u32)>> = list.commits.iter().map(|c| c.iteration).collect();
    assert_eq!(made_by, [Some((1, 2)), Some((1, 1)), None]);
}

#[tokio::test]
async fn a_project_in_a_subdirectory_sees_only_its_own_commits() {
    let repo = Repo::new();
    repo.commit(T0, "other", &[("other/x.txt", b"x\n")]);
    let mine = repo.commit(T0 + 10, "mine", &[("app/.ralph/ralph.log", b"log\n")]);
    let list = recent(&repo.root.join("app"), 10, &[]).await;
    assert_eq!(
        list.repository,
        Repository::Found {
            subdir: "app".into()
        }
    );
    let shas: Vec<&str> = list.commits.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(shas, [mine.as_str()]);
}

#[tokio::test]
async fn a_directory_outside_any_repository_says_so() {
    let temp = tempfile::tempdir().expect("tempdir");
    let list = recent(temp.path(), 10, &[]).await;
    assert_eq!(list.repository, Repository::NotARepository);
    assert!(list.commits.is_empty());
}

#[tokio::test]
async fn an_empty_repository_lists_nothing_without_an_error() {
    let repo = Repo::new();
    let list = recent(&repo.root, 10, &[]).await;
    assert_eq!(
        list.repository,
        Repository::Found {
            subdir: String::new()
        }
    );
    assert!(list.commits.is_empty());
}

#[tokio::test]
async fn an_iteration_diff_covers_its_commits_since_it_started() {
    let repo = Repo::new();
    repo.commit(T0, "before", &[("a.txt", b"one\n")]);
    let during = repo.commit(T0 + 100, "during", &[("a.txt", b"two\n")]);
    let end = repo.commit(T0 + 110, "end", &[("b.txt", b"bee\n")]);
    let diff = iteration_diff(&repo.root, &span(3, T0 + 60, T0 + 120, Some(&end)), None)
        .await
        .expect("diff")
        .expect("the iteration names a commit");
    let shas: Vec<&str> = diff.commits.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(shas, [during.as_str(), end.as_str()]);
    assert!(diff.commits.iter().all(|c| c.iteration == Some((1, 3))));
    let paths: Vec<&str> = diff.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["a.txt", "b.txt"]);
    let a: Vec<(LineKind, &str)> = diff.files[0]
        .lines
        .iter()
        .map(|l| (l.kind, l.text.as_str()))
        .collect();
    assert!(a.contains(&(LineKind::Removed, "-one")) && a.contains(&(LineKind::Added, "+two")));
    assert!(!diff.truncated);
}

#[tokio::test]
async fn an_iteration_without_a_start_time_begins_after_the_previous_commit() {
    let repo = Repo::new();
    let previous = repo.commit(T0, "previous", &[("a.txt", b"1\n")]);
    let end = repo.commit(T0 + 10, "this", &[("a.txt", b"2\n")]);
    let span = IterationSpan::new(1, 4, None, None, Some(&end));
    let diff = iteration_diff(&repo.root, &span, Some(&previous))
        .await
        .expect("diff")
        .expect("diff");
    assert_eq!(diff.commits.len(), 1);
    assert_eq!(diff.commits[0].sha, end);
}

#[tokio::test]
async fn a_huge_diff_is_capped_and_says_so_and_binary_files_are_named() {
    let repo = Repo::new();
    repo.commit(T0, "start", &[("keep.txt", b"k\n")]);
    let line = "x".repeat(99) + "\n";
    let big = line.repeat(50_000); // 5 MB
    let sha = repo.commit(
        T0 + 1,
        "big",
        &[
            ("big.txt", big.as_bytes()),
            ("blob.bin", &[0u8, 159, 146, 150, 0]),
        ],
    );
    let diff = commit_diff(&repo.root, &sha).await.expect("diff");
    assert!(diff.truncated);
    let total: usize = diff.files.iter().map(|f| f.lines.len()).sum();
    assert!(total <= parse::CAPS.total_lines, "{total}");
    let big = diff
        .files
        .iter()
        .find(|f| f.path == "big.txt")
        .expect("big");
    assert!(big.truncated && big.lines.len() <= parse::CAPS.file_lines);
    let blob = diff
        .files
        .iter()
        .find(|f| f.path == "blob.bin")
        .expect("blob");
    assert!(blob.binary && blob.lines.is_empty());
    assert_eq!(diff.commits.len(), 1);
    assert_eq!(diff.commits[0].subject, "big");
}

#[tokio::test]
async fn only_object_names_reach_git() {
    let repo = Repo::new();
    repo.commit(T0, "one", &[("a.txt", b"1\n")]);
    for bad in [
        "HEAD",
        "--output=/tmp/owned",
        "main~1",
        "abc",
        "zzzzzzz",
        "a b c d e",
    ] {
        assert!(
            matches!(
                commit_diff(&repo.root, bad).await,
                Err(GitError::UnknownCommit(_))
            ),
            "{bad}"
        );
    }
    assert!(!std::path::Path::new("/tmp/owned").exists());
    let unknown = commit_diff(&repo.root, "0123456789abcdef").await;
    assert!(
        matches!(unknown, Err(GitError::UnknownCommit(_))),
        "{unknown:?}"
    );
    // A row's commit that is not an object name is ignored, not passed on.
    let span = IterationSpan::new(1, 1, None, None, Some("--exec=rm"));
    assert_eq!(span.commit, None);
}
