//! The layout that `src/lib.rs` describes, checked: every `crate::`/`super::` path in a file's
//! code (before its tests) points down the data path, and no file grows past
//! [`MAX_CODE_LINES`] lines of code. `scripts/layout-check.sh` runs this test alone.
//!
//! Ranks, highest first (a module may use only modules of a lower rank, or its own):
//!   cli > site > app > live > api > server > model > contract
//! and inside `server`:
//!   stream (but stream::limits) > state, watcher, watchdog > engine > index, control > hub,
//!   project > every other module

use std::{
    fs,
    path::{Path, PathBuf},
};

const MAX_CODE_LINES: usize = 600;

const TOP: [&str; 8] = [
    "contract", "model", "server", "api", "live", "app", "site", "cli",
];

/// The rank of a module path such as `["server", "stream", "live"]`; `None` for the crate root.
fn rank(path: &[String]) -> Option<(usize, usize)> {
    let top = TOP
        .iter()
        .position(|name| path.first().is_some_and(|p| p == name))?;
    let inner = if path[0] == "server" {
        let second = path.get(1).map(String::as_str).unwrap_or("");
        let third = path.get(2).map(String::as_str).unwrap_or("");
        match (second, third) {
            ("stream", "limits") => 1,
            ("stream", _) => 6,
            ("state" | "watcher" | "watchdog", _) => 5,
            ("engine", _) => 4,
            ("index" | "control", _) => 3,
            ("hub" | "project", _) => 2,
            _ => 1,
        }
    } else {
        0
    };
    Some((top, inner))
}

/// The module a file defines: `src/server/stream/mod.rs` -> `["server", "stream"]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib" || last == "main")
    {
        parts.pop();
    }
    parts
}

/// The code of a file: up to its first `#[cfg(test)]`, line comments removed.
fn code(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .take_while(|line| line.trim_start() != "#[cfg(test)]")
        .enumerate()
        .map(|(at, line)| {
            let code = match line.find("//") {
                Some(comment) => &line[..comment],
                None => line,
            };
            (at + 1, code.to_owned())
        })
        .collect()
}

/// Every path a `crate::` or `super::` expression names, braces expanded:
/// `crate::server::{auth::Auth, hub}` -> `[server, auth, Auth]`, `[server, hub]`.
fn paths_from(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let (base, skip) = if rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if rest.starts_with("super::") {
            let mut base = module.to_vec();
            base.pop();
            (base, "super::".len())
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let preceded_by_ident = at > 0
            && (bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':');
        at += skip;
        if preceded_by_ident {
            continue;
        }
        let end = expand(text, at, base, &mut found);
        at = end.max(at);
    }
    found
}

/// Reads a path from `start` (segments, `super::` steps and `{...}` groups) and pushes each
/// full path; returns where it ended.
fn expand(text: &str, start: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let bytes = text.as_bytes();
    let mut at = start;
    loop {
        let ident_end = text[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| at + n);
        if ident_end > at {
            let ident = &text[at..ident_end];
            if ident == "super" {
                prefix.pop();
            } else if ident != "self" {
                prefix.push(ident.to_owned());
            }
            at = ident_end;
            if text[at..].starts_with("::") {
                at += 2;
                continue;
            }
            out.push(prefix);
            return at;
        }
        if bytes.get(at) == Some(&b'{') {
            at += 1;
            loop {
                while bytes
                    .get(at)
                    .is_some_and(|b| b.is_ascii_whitespace() || *b == b',')
                {
                    at += 1;
                }
                match bytes.get(at) {
                    None => return at,
                    Some(b'}') => return at + 1,
                    _ => {}
                }
                let before = at;
                at = expand(text, at, prefix.clone(), out);
                // `Name as Other`: skip the alias.
                let tail = text[at..].trim_start();
                if let Some(alias) = tail.strip_prefix("as ") {
                    let skipped = text.len() - alias.len();
                    at = alias
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(text.len(), |n| skipped + n);
                }
                if at == before {
                    at += 1;
                }
            }
        }
        out.push(prefix);
        return at;
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// What the layout rules say about one file.
fn violations(relative: &Path, text: &str) -> Vec<String> {
    let module = module_of(relative);
    let mut problems = Vec::new();
    let code = code(text);
    if code.len() > MAX_CODE_LINES {
        problems.push(format!(
            "{}: {} lines before its tests (at most {MAX_CODE_LINES})",
            relative.display(),
            code.len()
        ));
    }
    let Some(own) = rank(&module) else {
        return problems;
    };
    // Joined, so a `use` split over several lines reads as one expression.
    let joined: String = code.iter().map(|(_, line)| format!("{line}\n")).collect();
    for used in paths_from(&joined, &module) {
        let Some(theirs) = rank(&used) else {
            continue;
        };
        let same_top = used.first() == module.first();
        let above = if same_top {
            theirs.1 > own.1
        } else {
            theirs.0 > own.0
        };
        if above {
            problems.push(format!(
                "{}: {} uses {}, which is above it",
                relative.display(),
                module.join("::"),
                used.join("::")
            ));
        }
    }
    problems
}

#[test]
fn every_import_points_down_and_no_file_is_too_long() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let mut problems = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("read a source file");
        let relative = file.strip_prefix(&src).expect("under src/");
        problems.extend(violations(relative, &text));
    }
    assert!(problems.is_empty(), "layout:\n{}", problems.join("\n"));
}

#[test]
fn an_upward_import_is_caught() {
    let server = violations(
        Path::new("server/index.rs"),
        "use crate::{app::App, model::Topic};\nuse super::{hub::Hub, stream::{live, compat}};\n",
    );
    assert_eq!(server.len(), 3, "{server:?}");
    assert!(server[0].contains("uses app::App"), "{server:?}");
    assert!(
        server[1].contains("uses server::stream::live"),
        "{server:?}"
    );

    let contract = violations(
        Path::new("contract/ralph/plan.rs"),
        "use crate::model::Status;",
    );
    assert_eq!(contract.len(), 1, "{contract:?}");
    // Comments and tests do not count; going down does not either.
    let fine = violations(
        Path::new("server/stream/live.rs"),
        "// crate::site::x\nuse super::{connection, limits::Slot};\nuse crate::server::index::Index;\n#[cfg(test)]\nmod tests { use crate::cli::run; }\n",
    );
    assert!(fine.is_empty(), "{fine:?}");
    // stream::limits is below the state that holds it; the rest of stream is above.
    let state = violations(
        Path::new("server/state.rs"),
        "use super::stream::limits::ConnectionLimits;\nuse super::stream::connection::IDLE;",
    );
    assert_eq!(state.len(), 1, "{state:?}");
}

#[test]
fn a_long_file_is_caught() {
    let long: String = (0..=MAX_CODE_LINES)
        .map(|n| format!("const C{n}: u8 = 0;\n"))
        .collect();
    assert_eq!(violations(Path::new("model/topic.rs"), &long).len(), 1);
    let with_tests = format!("{}#[cfg(test)]\nmod tests {{\n{long}}}\n", "fn f() {}\n");
    assert!(violations(Path::new("model/topic.rs"), &with_tests).is_empty());
}
