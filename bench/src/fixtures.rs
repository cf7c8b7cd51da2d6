//! Project directories in the on-disk format of a Ralph loop (`.ralph/ralph.log` with iteration
//! headers and `tokens used` lines, `.ralph/iterations.jsonl`, `IMPLEMENTATION_PLAN.md`,
//! `.ralph/config.json`), shaped like `tests/fixtures/` of the main crate.

use std::{
    fs,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

const CONFIG: &str = r#"{
  "cli": "claude",
  "flags": ["-p", "--dangerously-skip-permissions"],
  "max_iterations": 0,
  "test_command": "cargo test --all",
  "model": "sonnet",
  "model_pricing": {"claude": 0.015, "codex": 0.005}
}
"#;

/// The agent output between two headers, cycled.
const OUTPUT: &[&str] = &[
    "\x1b[0;34m[10:00:01]\x1b[0m Running: claude -p --dangerously-skip-permissions < PROMPT.md",
    "Reading IMPLEMENTATION_PLAN.md and specs/api.md to pick the next unchecked task.",
    "exec bash -lc 'cargo test --all' in /srv/bench/project",
    " succeeded in 4.21s:",
    "test result: ok. 42 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.31s",
    "file update",
    "M src/server/routes.rs",
    "A tests/api_links.rs",
    "Implemented the handler, added an integration test, ticked the task in the plan and committed.",
    "\x1b[0;32m[10:04:12] ✅ Tests passed\x1b[0m",
];

fn plan(tasks: usize, done: usize) -> String {
    let mut plan = String::from("# Implementation Plan: bench\n\nSTATUS: IN PROGRESS\n");
    for task in 0..tasks {
        if task % 5 == 0 {
            plan.push_str(&format!("\n## Phase {}: Work\n", task / 5 + 1));
        }
        let mark = if task < done { 'x' } else { ' ' };
        plan.push_str(&format!(
            "- [{mark}] {}.{}: Task number {task} of the benchmark plan\n",
            task / 5 + 1,
            task % 5 + 1
        ));
    }
    plan
}

fn header(iteration: u64) -> String {
    let s = iteration % 86_400;
    format!(
        "\x1b[1;35m[{:02}:{:02}:{:02}] === Iteration {iteration} (loop {iteration}/0) ===\x1b[0m\n",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn row(iteration: u64) -> String {
    let status = if iteration.is_multiple_of(7) {
        "error"
    } else {
        "success"
    };
    format!(
        concat!(
            r#"{{"iteration": {i}, "max": 0, "start": "2025-03-14T09:00:02+01:00", "end": "2025-03-14T09:09:03+01:00", "#,
            r#""duration_seconds": 541, "tokens": 38.412, "status": "{s}", "tasks_completed": ["{t}.1"], "#,
            r#""commit": "{i:07x}", "commit_message": "feat: iteration {i} of the benchmark", "test_passed": {p}, "#,
            r#""test_output": "test result: ok. 42 passed; 0 failed", "errors": []}}"#,
            "\n"
        ),
        i = iteration,
        s = status,
        t = iteration % 20 + 1,
        p = status == "success",
    )
}

fn project_skeleton(dir: &Path, tasks: usize, done: usize) -> io::Result<()> {
    fs::create_dir_all(dir.join(".ralph"))?;
    fs::write(dir.join(".ralph/config.json"), CONFIG)?;
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), plan(tasks, done))?;
    fs::write(
        dir.join("PROMPT.md"),
        "Pick the most important unchecked task.\n",
    )?;
    Ok(())
}

/// One project the writer appends to: a header and nothing else yet. Returns its directory.
pub fn live_project(root: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = root.join(name);
    project_skeleton(&dir, 10, 2)?;
    fs::write(dir.join(".ralph/ralph.log"), header(1))?;
    fs::write(dir.join(".ralph/iterations.jsonl"), "")?;
    Ok(dir)
}

/// `projects` finished-looking projects with `iterations` iterations each (log + JSONL).
pub fn history_projects(root: &Path, projects: usize, iterations: u64) -> io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::with_capacity(projects);
    for p in 0..projects {
        let dir = root.join(format!("project-{p:02}"));
        project_skeleton(&dir, 40, (p * 7) % 40)?;
        let mut log =
            BufWriter::with_capacity(1 << 20, fs::File::create(dir.join(".ralph/ralph.log"))?);
        let mut jsonl = BufWriter::with_capacity(
            1 << 20,
            fs::File::create(dir.join(".ralph/iterations.jsonl"))?,
        );
        for i in 1..=iterations {
            log.write_all(header(i).as_bytes())?;
            for line in &OUTPUT[..6] {
                log.write_all(line.as_bytes())?;
                log.write_all(b"\n")?;
            }
            writeln!(log, "tokens used\n{},{:03}", 30 + i % 50, i % 1000)?;
            jsonl.write_all(row(i).as_bytes())?;
        }
        log.flush()?;
        jsonl.flush()?;
        dirs.push(dir);
    }
    Ok(dirs)
}

/// Agent output of a long iteration (no markers: those appear once per iteration).
const AGENT: &[&str] = &[
    "Reading IMPLEMENTATION_PLAN.md and specs/api.md to pick the next unchecked task; 3.2 is next.",
    "exec bash -lc 'rg -n \"fn handle_redirect\" src/ tests/ | head -50' in /home/dev/src/shortlink",
    " succeeded in 31ms:",
    "src/server/routes.rs:118:pub async fn handle_redirect(State(state): State<AppState>, Path(code): Path<String>)",
    "exec bash -lc 'cargo test --all 2>&1 | tail -20' in /home/dev/src/shortlink",
    "test links::tests::rejects_non_http_urls ... ok      test links::tests::codes_are_base62 ... ok",
    "test result: ok. 42 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.31s",
    "file update: M src/server/routes.rs (+24 -3), A tests/api_redirects.rs (+88), M IMPLEMENTATION_PLAN.md",
];

/// One project whose `ralph.log` is at least `bytes` long: iterations of 5,000 lines of agent
/// output (about 90 bytes a line), each with a header, a test marker and a `tokens used` line,
/// like a long real loop. Returns the directory and the log's size.
pub fn big_log_project(root: &Path, bytes: u64) -> io::Result<(PathBuf, u64)> {
    let dir = root.join("big-log");
    project_skeleton(&dir, 10, 5)?;
    fs::write(dir.join(".ralph/iterations.jsonl"), "")?;
    let mut log =
        BufWriter::with_capacity(4 << 20, fs::File::create(dir.join(".ralph/ralph.log"))?);
    let mut block = String::new();
    block.push_str(OUTPUT[0]);
    block.push('\n');
    for n in 0..5_000 {
        block.push_str(AGENT[n % AGENT.len()]);
        block.push('\n');
    }
    block.push_str(OUTPUT[9]);
    block.push('\n');
    let mut written = 0u64;
    let mut iteration = 0u64;
    while written < bytes {
        iteration += 1;
        let head = header(iteration);
        let tokens = format!(
            "tokens used\n{},{:03}\n",
            40 + iteration % 50,
            iteration % 1000
        );
        for part in [head.as_str(), block.as_str(), tokens.as_str()] {
            log.write_all(part.as_bytes())?;
            written += part.len() as u64;
        }
    }
    log.flush()?;
    Ok((dir, written))
}
