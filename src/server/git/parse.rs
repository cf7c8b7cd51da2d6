//! Reading git's output: the commit list (`git log` in the format [`LOG_FORMAT`] with
//! `--numstat`) and unified diffs, split into files and lines under caps.

use crate::model::git::{Commit, DiffLine, FileDiff, LineKind};

/// Record separator, then fields separated by unit separators: neither occurs in the fields
/// git prints here (names and subjects are single lines of text).
pub const LOG_FORMAT: &str = "--format=%x1e%H%x1f%an%x1f%at%x1f%s";

/// Caps on what one diff carries to the browser.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Lines shown per file.
    pub file_lines: usize,
    /// Lines shown in all.
    pub total_lines: usize,
    /// Characters kept of one line.
    pub line_chars: usize,
}

pub const CAPS: Caps = Caps {
    file_lines: 2_000,
    total_lines: 10_000,
    line_chars: 1_000,
};

/// The commits of `git log LOG_FORMAT --numstat` output, newest first as git prints them.
/// Records that do not parse are skipped.
pub fn commits(output: &str) -> Vec<Commit> {
    output
        .split('\u{1e}')
        .filter_map(|record| {
            let mut lines = record.lines();
            let header = lines.next()?;
            let mut fields = header.splitn(4, '\u{1f}');
            let sha = fields.next()?.trim();
            let author = fields.next()?;
            let seconds: u64 = fields.next()?.trim().parse().ok()?;
            let subject = fields.next().unwrap_or("");
            if sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let (mut files, mut insertions, mut deletions) = (0u32, 0u32, 0u32);
            for line in lines.filter(|line| !line.trim().is_empty()) {
                let mut parts = line.splitn(3, '\t');
                let (Some(added), Some(removed), Some(_path)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                files = files.saturating_add(1);
                // `-` for both counts: a binary file.
                insertions = insertions.saturating_add(added.parse().unwrap_or(0));
                deletions = deletions.saturating_add(removed.parse().unwrap_or(0));
            }
            Some(Commit {
                sha: sha.to_owned(),
                subject: subject.to_owned(),
                author: author.to_owned(),
                time: rfc3339(seconds),
                files,
                insertions,
                deletions,
                iteration: None,
            })
        })
        .collect()
}

fn rfc3339(seconds: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A unified diff (`git diff`/`git show --format=` output, no colour), split into files. Lines
/// beyond the caps are left out and marked; binary files are named only. `cut_short` says git's
/// output itself was cut (the reader's byte cap), which also marks the whole as truncated.
pub fn diff(output: &str, caps: Caps, cut_short: bool) -> (Vec<FileDiff>, bool) {
    let mut files: Vec<FileDiff> = Vec::new();
    let mut shown = 0usize;
    let mut truncated = cut_short;
    let mut in_header = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            files.push(FileDiff {
                path: path_from_header(rest),
                renamed_from: None,
                binary: false,
                lines: Vec::new(),
                truncated: false,
            });
            in_header = true;
            continue;
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        if in_header {
            if let Some(from) = line.strip_prefix("rename from ") {
                file.renamed_from = Some(from.to_owned());
            } else if let Some(to) = line.strip_prefix("rename to ") {
                file.path = to.to_owned();
            } else if let Some(to) = line.strip_prefix("+++ b/") {
                file.path = to.to_owned();
            } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
                file.binary = true;
            }
            if !line.starts_with("@@") {
                continue;
            }
            in_header = false;
        }
        let kind = match line.as_bytes().first() {
            Some(b'@') if line.starts_with("@@") => LineKind::Hunk,
            Some(b'+') => LineKind::Added,
            Some(b'-') => LineKind::Removed,
            Some(b' ') | None => LineKind::Context,
            // `\ No newline at end of file` and anything unforeseen.
            _ => continue,
        };
        if file.lines.len() >= caps.file_lines || shown >= caps.total_lines {
            file.truncated = true;
            truncated = true;
            continue;
        }
        shown += 1;
        file.lines.push(DiffLine {
            kind,
            text: clip(line, caps.line_chars),
        });
    }
    (files, truncated)
}

/// The new path of `a/OLD b/NEW` (a guess for names with spaces, corrected by `+++` or
/// `rename to` when the diff has them).
fn path_from_header(rest: &str) -> String {
    match rest.rfind(" b/") {
        Some(at) => rest[at + 3..].to_owned(),
        None => rest.to_owned(),
    }
}

fn clip(line: &str, chars: usize) -> String {
    match line.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_carry_their_diffstat() {
        let output = "\u{1e}aaaaaaaa11111111\u{1f}Ann\u{1f}1764237600\u{1f}feat: one\n\n3\t1\tsrc/a.rs\n-\t-\tlogo.png\n\
                      \u{1e}bbbbbbbb22222222\u{1f}Bo\u{1f}1764237000\u{1f}subject with \u{1f} odd byte\n";
        let list = commits(output);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].sha, "aaaaaaaa11111111");
        assert_eq!(
            (list[0].files, list[0].insertions, list[0].deletions),
            (2, 3, 1)
        );
        assert_eq!(list[0].time, "2025-11-27T10:00:00Z");
        assert_eq!(list[1].subject, "subject with \u{1f} odd byte");
        assert_eq!(list[1].files, 0);
    }

    #[test]
    fn junk_records_are_skipped() {
        let output =
            "\u{1e}not-a-sha\u{1f}x\u{1f}1\u{1f}s\n\u{1e}\u{1e}abcdef0\u{1f}x\u{1f}nan\u{1f}s";
        assert!(commits(output).is_empty());
    }

    const DIFF: &str = "diff --git a/src/a.rs b/src/a.rs
index 1..2 100644
--- a/src/a.rs
+++ b/src/a.rs
@@ -1,2 +1,2 @@
 keep
-old
+new
\\ No newline at end of file
diff --git a/img.png b/img.png
new file mode 100644
Binary files /dev/null and b/img.png differ
diff --git a/old name.md b/new name.md
similarity index 90%
rename from old name.md
rename to new name.md
";

    #[test]
    fn a_diff_splits_into_files_with_kinds() {
        let (files, truncated) = diff(DIFF, CAPS, false);
        assert!(!truncated);
        assert_eq!(files.len(), 3);
        let kinds: Vec<LineKind> = files[0].lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LineKind::Hunk,
                LineKind::Context,
                LineKind::Removed,
                LineKind::Added
            ]
        );
        assert!(files[1].binary && files[1].lines.is_empty());
        assert_eq!(files[1].path, "img.png");
        assert_eq!(files[2].path, "new name.md");
        assert_eq!(files[2].renamed_from.as_deref(), Some("old name.md"));
    }

    #[test]
    fn caps_cut_files_and_the_whole_and_say_so() {
        let mut big = String::from("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -0,0 +1,50 @@\n");
        for n in 0..50 {
            big.push_str(&format!("+line {n}\n"));
        }
        big.push_str("diff --git a/y b/y\n--- a/y\n+++ b/y\n@@ -0,0 +1,1 @@\n+y\n");
        let caps = Caps {
            file_lines: 10,
            total_lines: 10,
            line_chars: 4,
        };
        let (files, truncated) = diff(&big, caps, false);
        assert!(truncated);
        assert_eq!(files[0].lines.len(), 10);
        assert!(files[0].truncated);
        assert!(files[1].lines.is_empty() && files[1].truncated, "{files:?}");
        assert_eq!(files[0].lines[1].text, "+lin…");
    }
}
