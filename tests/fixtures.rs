#![cfg(feature = "ssr")]
//! The project index against hand-written Ralph projects (`tests/fixtures/`), field by field.
//!
//! Each test copies one fixture into a temporary directory (the fixtures themselves are never
//! touched), writes what only exists at run time (a pid file naming this test process, file
//! times), opens it with `ProjectState::open` and compares what the dashboard would show with
//! values read by hand from the fixture files and DESIGN.md section 4. The expected numbers are
//! derived in the comments next to them; none were copied from the code's output.
//!
//! | fixture         | what it is                                                              |
//! |-----------------|-------------------------------------------------------------------------|
//! | `finished`      | 8 successful iterations, every task ticked, `STATUS: COMPLETE`, DONE     |
//! | `running`       | 6 rows + a 7th iteration whose header is logged but has no row yet       |
//! | `paused`        | 3 rows + a 4th iteration in progress, `.ralph/pause` present             |
//! | `failing`       | error rows, failed tests, an ERROR notification newer than the last row  |
//! | `mixed-formats` | old and new headers, a restart at 1 (two runs), junk JSONL, CRLF, bad    |
//! |                 | config.json, a notification with an unexpanded `$(date -Iseconds)`       |
//!
//! Tests named `contract_*` probe single rules of the contract with a variant of a fixture; when
//! one fails, the code disagrees with DESIGN.md (its comment says where), not the test.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use loopwatch::{
    contract::{
        ralph::config::{LoopConfig, DEFAULT_PRICE_PER_K_TOKENS},
        ralph::iterations::{IterationStatus, SkipCounts},
        ralph::notification::{log_tail, Notification, NotificationKind, Severity},
        ralph::plan::{normalize_task_id, PlanStatus},
        ralph::stats::{Health, HealthCounts},
    },
    model::{
        api_types::{
            IterationLog, IterationPage, IterationQuery, IterationSort, ProjectDetail, RowSource,
            StatusFilter,
        },
        PhaseStatus, ProjectSummary, Status,
    },
    server::project::{context_files, FileKind, ProjectKind, ProjectState},
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const ALL_FIXTURES: [&str; 5] = ["finished", "running", "paused", "failing", "mixed-formats"];

// ------------------------------------------------------------------------------------ helpers

/// A fixture copied into a temporary directory (deleted on drop).
struct Project {
    _temp: tempfile::TempDir,
    dir: PathBuf,
}

impl Project {
    fn copy(name: &str) -> Self {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join(name);
        copy_tree(&Path::new(FIXTURES).join(name), &dir);
        Self { _temp: temp, dir }
    }

    fn ralph(&self, name: &str) -> PathBuf {
        self.dir.join(".ralph").join(name)
    }

    /// The loop "runs": `ralph.pid` names this test process, which started before the file was
    /// written.
    fn write_pid(&self) {
        fs::write(self.ralph("ralph.pid"), format!("{}\n", std::process::id())).expect("pid");
    }

    fn set_mtime(&self, name: &str, time: SystemTime) {
        fs::OpenOptions::new()
            .append(true)
            .open(self.ralph(name))
            .and_then(|file| file.set_modified(time))
            .expect("set mtime");
    }

    fn append(&self, name: &str, text: &str) {
        fs::OpenOptions::new()
            .append(true)
            .open(self.ralph(name))
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .expect("append");
    }

    fn open(&self) -> ProjectState {
        ProjectState::open("fixture", &self.dir, vec![ProjectKind::Ralph])
    }

    fn log_text(&self) -> String {
        String::from_utf8(fs::read(self.ralph("ralph.log")).expect("read log")).expect("utf-8")
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

fn assert_close_opt(actual: Option<f64>, expected: Option<f64>, what: &str) {
    match (actual, expected) {
        (Some(actual), Some(expected)) => assert_close(actual, expected, what),
        (actual, expected) => assert_eq!(actual, expected, "{what}"),
    }
}

/// `(name, done, total, status)` of every phase on the card.
fn phases(summary: &ProjectSummary) -> Vec<(String, u32, u32, PhaseStatus)> {
    summary
        .plan
        .as_ref()
        .expect("plan progress")
        .phases
        .iter()
        .map(|p| (p.name.clone(), p.done, p.total, p.status))
        .collect()
}

fn phase(
    name: &str,
    done: u32,
    total: u32,
    status: PhaseStatus,
) -> (String, u32, u32, PhaseStatus) {
    (name.to_owned(), done, total, status)
}

/// The detail view of a project. (The only place that knows how `detail` is called.)
fn detail_of(state: &ProjectState) -> ProjectDetail {
    state.detail(loopwatch::model::Cursor::default())
}

/// One page of the iterations table. (The only place that knows how `iterations` is called.)
fn iterations_of(state: &ProjectState, query: &IterationQuery) -> IterationPage {
    state.iterations(query, loopwatch::model::Cursor::default())
}

/// `(run, iteration)` of a page's rows, and the page's total.
fn page(
    state: &ProjectState,
    status: Option<StatusFilter>,
    health: Option<Health>,
    sort: IterationSort,
    offset: u32,
    limit: u32,
) -> (Vec<(u32, u32)>, u32) {
    let page = iterations_of(
        state,
        &IterationQuery {
            status,
            health,
            sort,
            offset,
            limit,
        },
    );
    let keys = page
        .rows
        .iter()
        .map(|row| (row.record.run, row.record.iteration))
        .collect();
    (keys, page.total)
}

fn run1(iterations: &[u32]) -> Vec<(u32, u32)> {
    iterations.iter().map(|&i| (1, i)).collect()
}

/// Byte offset of the start of the line holding the `occurrence`-th (0-based) `needle`.
fn line_start(log: &str, needle: &str, occurrence: usize) -> usize {
    let (at, _) = log
        .match_indices(needle)
        .nth(occurrence)
        .unwrap_or_else(|| panic!("{needle:?} #{occurrence} not in the log"));
    log[..at].rfind('\n').map_or(0, |newline| newline + 1)
}

/// The oracle for an iteration's log text: from the line of its header to the line of the next
/// header (or the end of the file), found by plain text search in the fixture.
fn expected_slice(log: &str, header: (&str, usize), next: Option<(&str, usize)>) -> String {
    let start = line_start(log, header.0, header.1);
    let end = next.map_or(log.len(), |(needle, n)| line_start(log, needle, n));
    log[start..end].to_owned()
}

fn load(state: &ProjectState, run: u32, iteration: u32) -> IterationLog {
    state
        .iteration_location(run, iteration)
        .unwrap_or_else(|| panic!("iteration {iteration} of run {run} is indexed"))
        .load(run, iteration)
        .expect("load iteration")
}

fn completed_in(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|&(id, n)| (id.to_owned(), n)).collect()
}

fn only_notification(state: &ProjectState) -> Notification {
    let notifications = detail_of(state).notifications;
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    notifications.into_iter().next().expect("one notification")
}

// ------------------------------------------------------------------------------------ fixtures

#[test]
fn fixtures_are_complete_and_carry_no_pid_file() {
    for name in ALL_FIXTURES {
        let ralph = Path::new(FIXTURES).join(name).join(".ralph");
        assert!(ralph.join("ralph.log").is_file(), "{name}: ralph.log");
        assert!(ralph.join("iterations.jsonl").is_file(), "{name}: jsonl");
        assert!(
            ralph.join("pending-notification.txt").is_file(),
            "{name}: notification"
        );
        // A committed pid file would name some random process on the next machine.
        assert!(!ralph.join("ralph.pid").exists(), "{name}: no pid file");
        assert_eq!(
            ralph.join("pause").exists(),
            name == "paused",
            "{name}: pause file"
        );
    }
}

// ------------------------------------------------------------------------------------ finished

#[test]
fn finished_summary() {
    let project = Project::copy("finished");
    let state = project.open();
    let summary = state.summary();
    assert_eq!(summary.name, "finished");
    assert_eq!(summary.status, Status::Complete, "plan COMPLETE, no pid");
    assert_eq!(summary.iteration, Some(8));
    assert_eq!(summary.max_iterations, 8, "`loop 8/8`");
    // 38.412 + 52.907 + 61.33 + 44.018 + 70.245 + 35.561 + 29.874 + 18.603 (iterations.jsonl)
    assert_close(summary.tokens, 350.95, "tokens");
    // model_pricing.codex = 0.005 USD per 1k tokens
    assert_close(summary.cost_usd, 350.95 * 0.005, "cost");
    let plan = summary.plan.as_ref().expect("plan");
    assert_eq!((plan.tasks_done, plan.tasks_total), (10, 10));
    assert_eq!(plan.percent(), 100);
    // The plan has `STATUS: IN PROGRESS` near the top and `STATUS: COMPLETE` last: last wins.
    assert_eq!(plan.plan_status.as_deref(), Some("COMPLETE"));
    assert_eq!(
        phases(summary),
        vec![
            phase("Phase 1: Foundation", 3, 3, PhaseStatus::Complete),
            phase("Phase 2: API", 4, 4, PhaseStatus::Complete),
            phase("Phase 3: Hardening", 3, 3, PhaseStatus::Complete),
            // `## Notes` is a heading, so a phase, with plain bullets and no task.
            phase("Notes", 0, 0, PhaseStatus::NotStarted),
        ]
    );
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(summary.recent_health, vec![Health::Productive; 8]);
}

#[test]
fn finished_detail() {
    let project = Project::copy("finished");
    let state = project.open();
    let detail = detail_of(&state);
    let stats = &detail.stats;
    assert_eq!(stats.iterations, 8);
    assert_close(stats.total_tokens, 350.95, "total tokens");
    assert_close_opt(stats.avg_tokens, Some(350.95 / 8.0), "avg tokens");
    assert_close(stats.cost_usd, 350.95 * 0.005, "stats cost");
    assert_close_opt(stats.success_rate, Some(1.0), "success rate");
    assert_eq!((stats.tasks_done, stats.tasks_total), (10, 10));
    assert_eq!(stats.tasks_reported, 10);
    assert_eq!(stats.errors, 0);
    assert_eq!(
        stats.health,
        HealthCounts {
            failed: 0,
            productive: 8,
            partial: 0
        }
    );
    // 541 + 762 + 681 + 526 + 996 + 447 + 393 + 513
    assert_close(stats.agent_seconds, 4859.0, "agent seconds");
    // 09:00:02 -> 10:21:15
    assert_close_opt(stats.wall_seconds, Some(4873.0), "wall seconds");
    assert_eq!(
        stats.projected_iterations_left,
        Some(0),
        "nothing left to do"
    );
    assert_eq!(
        detail.completed_in,
        completed_in(&[
            ("1.1", 1),
            ("1.2", 2),
            ("1.3", 2),
            ("2.1", 3),
            ("2.2", 4),
            ("2.3", 5),
            ("2.4", 5),
            ("3.1", 6),
            ("3.2", 7),
            ("3.3", 8),
        ])
    );
    assert_eq!(detail.skipped_rows, SkipCounts::default());

    let plan = detail.plan.as_ref().expect("plan");
    assert_eq!(plan.status, Some(PlanStatus::Complete));
    let tasks: Vec<(Option<&str>, bool, u32)> = plan
        .phases
        .iter()
        .flat_map(|p| &p.tasks)
        .map(|t| (t.id.as_deref(), t.done, t.depth))
        .collect();
    let ids = [
        "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "3.1", "3.2", "3.3",
    ];
    assert_eq!(
        tasks,
        ids.iter()
            .map(|&id| (Some(id), true, 0))
            .collect::<Vec<_>>()
    );

    assert_eq!(
        detail.config,
        LoopConfig {
            cli: Some("codex".into()),
            flags: vec![
                "exec".into(),
                "--full-auto".into(),
                "-m".into(),
                "gpt-5-codex".into()
            ],
            max_iterations: Some(8),
            test_command: Some("cargo test --all".into()),
            model: Some("gpt-5-codex".into()),
            model_pricing: [("claude".to_owned(), 0.015), ("codex".to_owned(), 0.005)]
                .into_iter()
                .collect(),
        }
    );

    let note = only_notification(&state);
    assert_eq!(
        note.id, "ralph-20250314T102116-done-8",
        "event_id is the id"
    );
    assert_eq!(note.kind, NotificationKind::Done);
    assert_eq!(note.severity, Severity::Success);
    assert_eq!(
        note.message,
        "All 10 tasks in IMPLEMENTATION_PLAN.md are complete; tests pass."
    );
    assert_eq!(
        note.details.as_deref(),
        Some(
            "Final commit 9c41e7a (docs: README with usage examples). 26 tests pass. \
             STATUS: COMPLETE written to the plan."
        )
    );
    assert_eq!(note.timestamp.as_deref(), Some("2025-03-14T10:21:16+01:00"));
    assert_eq!((note.iteration, note.max_iterations), (Some(8), Some(8)));
    assert_eq!(note.cli.as_deref(), Some("codex"));
    assert_eq!(note.status.as_deref(), Some("complete"));
    assert!(note.has_log_tail);
    assert!(note.warnings.is_empty(), "{:?}", note.warnings);
    // log_tail is lines 284-297 of ralph.log (the agent's last words in iteration 8), base64.
    let tail = log_tail(&fs::read(project.ralph("pending-notification.txt")).expect("read"))
        .expect("decodable log_tail");
    assert!(
        tail.starts_with("workdir: /home/dev/src/shortlink\n"),
        "{tail}"
    );
    assert!(tail.contains("\nREADME with curl examples for create, redirect and stats."));
    assert!(tail.ends_with("\ntokens used\n18,603\n"), "{tail}");
    assert_eq!(tail.lines().count(), 14);
}

#[test]
fn finished_context_files_are_listed_and_read() {
    let project = Project::copy("finished");
    let dir = &project.dir;
    assert_eq!(
        context_files::list(dir),
        ["AGENTS.md", "PROMPT.md", "specs/api.md"]
    );
    for name in ["AGENTS.md", "PROMPT.md", "specs/api.md"] {
        let file = context_files::read(dir, name).expect("readable context file");
        assert_eq!(
            file.text,
            fs::read_to_string(dir.join(name)).expect("read"),
            "{name}"
        );
        assert!(!file.truncated);
        assert_eq!(
            FileKind::classify(dir, &dir.join(name)),
            Some(FileKind::Context(name.to_owned()))
        );
    }
    assert!(context_files::read(dir, "IMPLEMENTATION_PLAN.md").is_err());
    assert!(context_files::read(dir, ".ralph/config.json").is_err());
}

#[test]
fn finished_iterations_page() {
    let project = Project::copy("finished");
    let state = project.open();
    let newest = IterationSort::Newest;

    let all = iterations_of(&state, &IterationQuery::default());
    assert_eq!(all.total, 8);
    let order: Vec<u32> = all.rows.iter().map(|r| r.record.iteration).collect();
    assert_eq!(order, [8, 7, 6, 5, 4, 3, 2, 1], "newest first by default");
    let tokens = [
        38.412, 52.907, 61.33, 44.018, 70.245, 35.561, 29.874, 18.603,
    ];
    for row in &all.rows {
        let expected = tokens[row.record.iteration as usize - 1];
        assert_eq!(row.record.run, 1);
        assert_eq!(row.health, Health::Productive);
        assert!(
            row.has_log,
            "iteration {} has a header",
            row.record.iteration
        );
        assert_close_opt(row.record.tokens, Some(expected), "row tokens");
        assert_close_opt(row.cost_usd, Some(expected * 0.005), "row cost");
        assert_eq!(row.record.test_output, None, "test output stays on disk");
    }

    let fifth = &all.rows[3].record;
    assert_eq!(fifth.iteration, 5);
    assert_eq!(fifth.max, 8);
    assert_eq!(fifth.start.as_deref(), Some("2025-03-14T09:42:00+01:00"));
    assert_eq!(fifth.end.as_deref(), Some("2025-03-14T09:58:36+01:00"));
    assert_eq!(fifth.duration_seconds, Some(996.0));
    assert_eq!(fifth.status, IterationStatus::Success);
    assert_eq!(fifth.tasks_completed, ["2.3", "2.4"]);
    assert_eq!(fifth.commit.as_deref(), Some("e91f4b7"));
    assert_eq!(
        fifth.commit_message.as_deref(),
        Some("feat: link stats and URL validation")
    );
    assert_eq!(fifth.test_passed, Some(true));
    assert!(fifth.errors.is_empty());

    let sorted = |sort| page(&state, None, None, sort, 0, 0).0;
    assert_eq!(
        sorted(IterationSort::Oldest),
        run1(&[1, 2, 3, 4, 5, 6, 7, 8])
    );
    // Tokens, largest first: 70.245 61.33 52.907 44.018 38.412 35.561 29.874 18.603
    assert_eq!(
        sorted(IterationSort::Tokens),
        run1(&[5, 3, 2, 4, 1, 6, 7, 8])
    );
    // Durations, longest first: 996 762 681 541 526 513 447 393
    assert_eq!(
        sorted(IterationSort::Duration),
        run1(&[5, 2, 3, 1, 4, 8, 6, 7])
    );
    assert_eq!(
        page(&state, None, None, IterationSort::Oldest, 3, 2),
        (run1(&[4, 5]), 8)
    );
    assert_eq!(
        page(&state, None, None, newest, 1, 3),
        (run1(&[7, 6, 5]), 8)
    );
    assert_eq!(page(&state, None, None, newest, 8, 10), (vec![], 8));
    assert_eq!(page(&state, None, None, newest, 100, 10), (vec![], 8));
    let error = Some(StatusFilter::Error);
    let success = Some(StatusFilter::Success);
    assert_eq!(page(&state, error, None, newest, 0, 0), (vec![], 0));
    assert_eq!(page(&state, success, None, newest, 0, 0).1, 8);
    assert_eq!(
        page(&state, None, Some(Health::Failed), newest, 0, 0),
        (vec![], 0)
    );
    assert_eq!(
        page(&state, None, Some(Health::Productive), newest, 0, 0).1,
        8
    );
}

#[test]
fn finished_iteration_log_is_exactly_its_slice() {
    let project = Project::copy("finished");
    let state = project.open();
    let log = project.log_text();

    let third = load(&state, 1, 3);
    assert_eq!((third.run, third.iteration), (1, 3));
    assert_eq!(
        third.text,
        expected_slice(
            &log,
            ("=== Iteration 3 (loop 3/8) ===", 0),
            Some(("=== Iteration 4 (loop 4/8) ===", 0))
        )
    );
    assert!(third
        .text
        .starts_with("\x1b[1;35m[09:21:49] === Iteration 3 (loop 3/8) ===\x1b[0m\n"));
    assert!(third.text.contains("tokens used\n61,330\n"));
    assert!(third.text.contains("✅ Tests passed"));
    assert!(third
        .text
        .ends_with("\x1b[0;34m[09:33:10]\x1b[0m Iteration 3 finished in 11m21s\n"));
    assert!(!third.text.contains("=== Iteration 4 (loop 4/8) ==="));
    assert!(!third.text.contains("=== Iteration 2 (loop 2/8) ==="));
    assert!(!third.truncated);
    assert_eq!(
        third.test_output.as_deref(),
        Some("test result: ok. 9 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.19s")
    );

    // The last iteration runs to the end of the file, the loop's closing lines included.
    let last = load(&state, 1, 8);
    assert_eq!(
        last.text,
        expected_slice(&log, ("=== Iteration 8 (loop 8/8) ===", 0), None)
    );
    assert!(last
        .text
        .ends_with("Loop finished (8 iterations, 1h21m13s)\n"));

    // The lines before the first header belong to no iteration.
    let first = load(&state, 1, 1);
    assert!(first
        .text
        .starts_with("\x1b[1;35m[09:00:02] === Iteration 1 (loop 1/8) ==="));
    assert!(!first.text.contains("Ralph loop starting"));

    assert!(state.iteration_location(1, 9).is_none());
    assert!(state.iteration_location(1, 0).is_none());
    assert!(state.iteration_location(2, 1).is_none());
}

// ------------------------------------------------------------------------------------ running

#[test]
fn running_summary_counts_the_current_iteration() {
    let project = Project::copy("running");
    project.write_pid();
    let state = project.open();
    let summary = state.summary();
    assert_eq!(summary.status, Status::Running);
    // Iteration 7's header is in the log; its row is not written yet: it is current.
    assert_eq!(summary.iteration, Some(7));
    assert_eq!(summary.max_iterations, 20);
    // Rows: 41.877 + 66.204 + 39.95 + 58.733 + 22.418 + 47.091 = 276.273; iteration 7 has no
    // row yet but the log already says `tokens used` / `27,950`.
    assert_close(summary.tokens, 276.273 + 27.95, "tokens");
    assert_close(summary.cost_usd, (276.273 + 27.95) * 0.004, "cost");
    let plan = summary.plan.as_ref().expect("plan");
    // Nested tasks count: 1.1 1.2 1.2.1 1.2.2 1.3 | 2.1 2.2 2.2.1 2.2.2 2.3 | Task 5, Task 6
    assert_eq!((plan.tasks_done, plan.tasks_total), (7, 12));
    assert_eq!(plan.plan_status.as_deref(), Some("IN PROGRESS"));
    assert_eq!(
        phases(summary),
        vec![
            phase("Phase 1: Core model", 5, 5, PhaseStatus::Complete),
            phase("Phase 2: Reports", 2, 5, PhaseStatus::InProgress),
            phase("Phase 3: Import", 0, 2, PhaseStatus::NotStarted),
        ]
    );
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    use Health::{Partial, Productive};
    assert_eq!(
        summary.recent_health,
        [Productive, Productive, Productive, Productive, Partial, Productive]
    );
}

#[test]
fn running_plan_reads_every_id_form() {
    let project = Project::copy("running");
    project.write_pid();
    let detail = detail_of(&project.open());
    let plan = detail.plan.expect("plan");
    let tasks: Vec<(String, String, bool, u32)> = plan
        .phases
        .iter()
        .flat_map(|p| &p.tasks)
        .map(|t| {
            let id = t.id.as_deref().map(normalize_task_id).unwrap_or_default();
            (id, t.text.clone(), t.done, t.depth)
        })
        .collect();
    let expect = |id: &str, text: &str, done: bool, depth: u32| {
        (id.to_owned(), text.to_owned(), done, depth)
    };
    assert_eq!(
        tasks,
        vec![
            expect(
                "1.1",
                "Account, Posting and Transaction types with exact decimal amounts",
                true,
                0
            ),
            expect(
                "1.2",
                "Balance check: the postings of a transaction sum to zero",
                true,
                0
            ),
            expect(
                "1.2.1",
                "Reject a transaction with a single posting",
                true,
                1
            ),
            expect("1.2.2", "Allow one elided amount and infer it", true, 1),
            // `1.3 -`
            expect(
                "1.3",
                "Parse the journal format (dates, payees, postings, `;` comments)",
                true,
                0
            ),
            // `2.1 –` (en dash)
            expect(
                "2.1",
                "`balance` report with the account tree and subtotals",
                true,
                0
            ),
            // `2.2 —` (em dash)
            expect("2.2", "`register` report with running totals", false, 0),
            expect("2.2.1", "Column layout that fits in 80 columns", true, 1),
            expect("2.2.2", "`--monthly` grouping", false, 1),
            expect("2.3", "CSV export of any report", false, 0),
            // `Task 5:`
            expect(
                "5",
                "Import a bank CSV with a rules file (payee regex -> account)",
                false,
                0
            ),
            expect(
                "6",
                "Skip duplicates on import (same date, amount and payee)",
                false,
                0
            ),
        ]
    );
    assert_eq!(plan.status, Some(PlanStatus::InProgress));
}

#[test]
fn running_detail() {
    let project = Project::copy("running");
    project.write_pid();
    let state = project.open();
    let detail = detail_of(&state);
    let stats = &detail.stats;
    // Statistics are over finished iterations (JSONL rows) only.
    assert_eq!(stats.iterations, 6);
    assert_close(stats.total_tokens, 276.273, "total tokens");
    assert_close(stats.cost_usd, 276.273 * 0.004, "stats cost");
    assert_close_opt(stats.success_rate, Some(1.0), "success rate");
    assert_eq!(stats.errors, 0);
    assert_eq!(
        stats.health,
        HealthCounts {
            failed: 0,
            productive: 5,
            partial: 1
        }
    );
    assert_eq!((stats.tasks_done, stats.tasks_total), (7, 12));
    // 692 + 1041 + 704 + 997 + 406 + 707
    assert_close(stats.agent_seconds, 4547.0, "agent seconds");
    assert_eq!(
        detail.completed_in,
        completed_in(&[
            ("1.1", 1),
            ("1.2", 2),
            ("1.2.1", 2),
            ("1.2.2", 2),
            ("1.3", 3),
            ("2.1", 4),
            ("2.2.1", 6),
        ])
    );
    assert_eq!(detail.skipped_rows, SkipCounts::default());
    assert_eq!(detail.config.cli.as_deref(), Some("codex"));
    assert_eq!(detail.config.max_iterations, Some(20));
    assert_eq!(detail.config.test_command.as_deref(), Some("cargo test"));
    assert_eq!(detail.config.flags, ["exec", "--full-auto"]);

    let note = only_notification(&state);
    assert_eq!(note.kind, NotificationKind::Progress);
    assert_eq!(note.severity, Severity::Info, "PROGRESS is informational");
    assert_eq!(
        note.message,
        "Phase 1 (core model) is complete; the balance report works on the sample journal."
    );
    assert_eq!(
        note.details.as_deref(),
        Some(
            "Next: finish the register report (2.2.2 monthly grouping), then CSV export.\n\
             No blockers."
        )
    );
    assert_eq!(note.timestamp, None, "plain text carries no time");
    assert_eq!(note.iteration, None);
    assert!(!note.has_log_tail);
    // No event_id: the id is derived, and stable across re-reads.
    assert!(!note.id.is_empty());
    assert_eq!(only_notification(&project.open()).id, note.id);
}

#[test]
fn running_iterations_and_current_log() {
    let project = Project::copy("running");
    project.write_pid();
    let state = project.open();
    let newest = IterationSort::Newest;
    // The current iteration has no row, so the table stops at 6.
    assert_eq!(
        page(&state, None, None, newest, 0, 0),
        (run1(&[6, 5, 4, 3, 2, 1]), 6)
    );
    assert_eq!(
        page(&state, None, Some(Health::Partial), newest, 0, 0),
        (run1(&[5]), 1)
    );
    assert_eq!(
        page(
            &state,
            None,
            Some(Health::Productive),
            IterationSort::Oldest,
            0,
            2
        ),
        (run1(&[1, 2]), 5)
    );
    let all = iterations_of(&state, &IterationQuery::default());
    assert!(all.rows.iter().all(|row| row.has_log));
    assert_eq!(all.rows[0].record.tasks_completed, ["2.2.1"]);
    assert_eq!(
        all.rows[4].record.tasks_completed,
        ["1.2", "1.2.1", "1.2.2"]
    );
    assert_close_opt(all.rows[0].cost_usd, Some(47.091 * 0.004), "row cost");

    let log = project.log_text();
    let sixth = load(&state, 1, 6);
    assert_eq!(
        sixth.text,
        expected_slice(
            &log,
            ("=== Iteration 6 (loop 6/20) ===", 0),
            Some(("=== Iteration 7 (loop 7/20) ===", 0))
        )
    );
    assert!(!sixth.text.contains("=== Iteration 7"));
    assert_eq!(
        sixth.test_output.as_deref(),
        Some("test result: ok. 33 passed; 0 failed")
    );

    // The current iteration: its header to the end of the log, no row yet.
    let current = load(&state, 1, 7);
    assert_eq!(
        current.text,
        expected_slice(&log, ("=== Iteration 7 (loop 7/20) ===", 0), None)
    );
    assert!(current.text.contains("tokens used\n27,950\n"));
    assert!(current
        .text
        .ends_with("   Compiling ledgerline v0.3.0 (/home/maya/code/ledgerline)\n"));
    assert_eq!(current.test_output, None);
}

#[test]
fn a_pid_file_older_than_the_process_is_not_a_running_loop() {
    let project = Project::copy("running");
    project.write_pid();
    // This process started long after 2001: the PID was reused, the loop is gone.
    project.set_mtime(
        "ralph.pid",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
    );
    let state = project.open();
    let summary = state.summary();
    assert_eq!(
        summary.status,
        Status::Stopped,
        "not running, not complete, last row fine"
    );
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    assert!(
        summary.warnings[0].contains("ralph.pid"),
        "{:?}",
        summary.warnings
    );
}

// ------------------------------------------------------------------------------------ paused

#[test]
fn paused_summary_and_detail() {
    let project = Project::copy("paused");
    project.write_pid();
    let state = project.open();
    let summary = state.summary();
    assert_eq!(summary.status, Status::Paused, "live pid + pause file");
    assert_eq!(summary.iteration, Some(4));
    assert_eq!(summary.max_iterations, 10);
    // 31.204 + 44.870 + 28.315; iteration 4 has printed no `tokens used` yet.
    assert_close(summary.tokens, 104.389, "tokens");
    // model_pricing.claude = 0.015 (the cli is claude; codex's 0.005 must not be used)
    assert_close(summary.cost_usd, 104.389 * 0.015, "cost");
    let plan = summary.plan.as_ref().expect("plan");
    assert_eq!((plan.tasks_done, plan.tasks_total), (3, 6));
    assert_eq!(
        phases(summary),
        vec![
            phase("Phase 1: Scaffolding", 2, 2, PhaseStatus::Complete),
            phase("Phase 2: UI", 1, 4, PhaseStatus::InProgress),
        ]
    );
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(summary.recent_health, vec![Health::Productive; 3]);

    // "Pausing": the current iteration (4, from its header) has no row yet, so the UI can tell
    // a pause still waiting for the iteration boundary from one already in effect.
    let newest = iterations_of(&state, &IterationQuery::default());
    assert_eq!(newest.rows[0].record.iteration, 3);
    assert!(summary.iteration > Some(newest.rows[0].record.iteration));

    let detail = detail_of(&state);
    assert_eq!(detail.stats.iterations, 3);
    assert_close(
        detail.stats.agent_seconds,
        686.0 + 923.0 + 584.0,
        "agent seconds",
    );
    assert_eq!(
        detail.completed_in,
        completed_in(&[("1.1", 1), ("1.2", 2), ("2.1", 3)])
    );
    assert_eq!(detail.config.cli.as_deref(), Some("claude"));

    let note = only_notification(&state);
    assert_eq!(note.kind, NotificationKind::Question);
    assert_ne!(note.severity, Severity::Error, "a question is no alarm");
    assert_eq!(
        note.message,
        "Should the hourly chart start at the current hour or at midnight?"
    );
    assert_eq!(note.timestamp.as_deref(), Some("2025-05-20T15:41:02+02:00"));
    assert_eq!((note.iteration, note.max_iterations), (Some(4), Some(10)));
    assert_eq!(note.cli.as_deref(), Some("claude"));
    assert!(!note.id.is_empty(), "derived id");
    assert_eq!(only_notification(&project.open()).id, note.id, "stable id");

    let current = load(&state, 1, 4);
    assert_eq!(
        current.text,
        expected_slice(
            &project.log_text(),
            ("=== Iteration 4 (loop 4/10) ===", 0),
            None
        )
    );
}

#[test]
fn a_pause_file_without_a_live_loop_is_not_paused() {
    let project = Project::copy("paused");
    // No pid file: the pause file alone pauses nothing.
    let state = project.open();
    assert_eq!(state.summary().status, Status::Stopped);
}

// ------------------------------------------------------------------------------------ failing

/// The failing fixture with the notification written `notification_age` ago and the JSONL
/// `jsonl_age` ago.
fn failing(notification_age: u64, jsonl_age: u64) -> Project {
    let project = Project::copy("failing");
    let now = SystemTime::now();
    project.set_mtime("iterations.jsonl", now - Duration::from_secs(jsonl_age));
    project.set_mtime(
        "pending-notification.txt",
        now - Duration::from_secs(notification_age),
    );
    project
}

#[test]
fn failing_summary() {
    let project = failing(300, 600);
    let state = project.open();
    let summary = state.summary();
    // No pid; the last row (6) is only partial, but an ERROR notification is newer than it.
    assert_eq!(summary.status, Status::Error);
    assert_eq!(summary.iteration, Some(6));
    assert_eq!(summary.max_iterations, 15);
    // 44.102 + 57.66 + (null) + 61.009 + 49.5 + 18.227
    assert_close(summary.tokens, 230.498, "tokens");
    // No config.json: no configured price, the documented default applies.
    assert_close(
        summary.cost_usd,
        230.498 * DEFAULT_PRICE_PER_K_TOKENS,
        "cost",
    );
    let plan = summary.plan.as_ref().expect("plan");
    assert_eq!((plan.tasks_done, plan.tasks_total), (3, 5));
    assert_eq!(
        phases(summary),
        vec![
            phase("Phase 1: Parsing", 2, 2, PhaseStatus::Complete),
            phase("Phase 2: Output", 1, 3, PhaseStatus::InProgress),
        ]
    );
    // No config.json, so no price: the cost above is the default's, and the card says so.
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    assert!(
        summary.warnings[0].contains("costs use the default $0.01 per 1k tokens"),
        "{:?}",
        summary.warnings
    );
    use Health::{Failed, Partial, Productive};
    // 1, 2: tasks + tests; 3: status error; 4: tests failed, no task; 5: task but tests
    // failed; 6: tests pass, no task.
    assert_eq!(
        summary.recent_health,
        [Productive, Productive, Failed, Failed, Partial, Partial]
    );
}

#[test]
fn failing_status_follows_the_file_times_and_the_last_row() {
    // The ERROR is older than the last row: it was dealt with, and row 6 did not fail.
    let project = failing(600, 300);
    assert_eq!(project.open().summary().status, Status::Stopped);

    // A 7th iteration that failed, after the (older) notification: error by the last row.
    let project = failing(600, 300);
    project.append(
        "ralph.log",
        "\x1b[1;35m[09:40:02] === Iteration 7 (loop 7/15) ===\x1b[0m\n\
         \x1b[0;33m[09:40:09] ⚠️ Agent exited with code 1\x1b[0m\n",
    );
    project.append(
        "iterations.jsonl",
        "{\"iteration\": 7, \"max\": 15, \"start\": \"2025-04-07T09:40:02Z\", \
         \"end\": \"2025-04-07T09:40:09Z\", \"duration_seconds\": 7, \"tokens\": null, \
         \"status\": \"error\", \"tasks_completed\": [], \"test_passed\": null, \
         \"errors\": [\"Agent exited with code 1\"]}\n",
    );
    project.set_mtime(
        "pending-notification.txt",
        SystemTime::now() - Duration::from_secs(900),
    );
    let state = project.open();
    assert_eq!(state.summary().status, Status::Error);
    assert_eq!(state.summary().iteration, Some(7));
    assert_eq!(state.summary().recent_health.last(), Some(&Health::Failed));
}

#[test]
fn failing_detail() {
    let project = failing(300, 600);
    let state = project.open();
    let detail = detail_of(&state);
    let stats = &detail.stats;
    assert_eq!(stats.iterations, 6);
    assert_close(stats.total_tokens, 230.498, "total tokens");
    assert_close_opt(
        stats.avg_tokens,
        Some(230.498 / 5.0),
        "avg over rows with tokens",
    );
    // Rows 1, 2, 4, 5, 6 say success; row 3 says error.
    assert_close_opt(stats.success_rate, Some(5.0 / 6.0), "success rate");
    assert_eq!(stats.errors, 2, "row 3 lists two errors");
    assert_eq!(
        stats.health,
        HealthCounts {
            failed: 2,
            productive: 2,
            partial: 2
        }
    );
    assert_eq!((stats.tasks_done, stats.tasks_total), (3, 5));
    // 672 + 866 + 141 + 882 + 733 + 396
    assert_close(stats.agent_seconds, 3690.0, "agent seconds");
    assert_eq!(
        detail.completed_in,
        completed_in(&[("1.1", 1), ("1.2", 2), ("2.1", 5)])
    );
    assert_eq!(detail.skipped_rows, SkipCounts::default());
    assert_eq!(detail.config, LoopConfig::default(), "no config.json");

    let note = only_notification(&state);
    assert_eq!(note.id, "pdfsplit-6-error-1744018298");
    assert_eq!(note.kind, NotificationKind::Error);
    assert_eq!(note.severity, Severity::Error);
    assert_eq!(
        note.message,
        "Cannot download crates: the sandbox has no network access"
    );
    assert_eq!(
        note.details.as_deref(),
        Some(
            "error: failed to get `lopdf` as a dependency of package `pdfsplit v0.1.0`\n\
             Task 2.2 needs a newer lopdf (outline support). Vendor it or allow network \
             access, then delete this file."
        )
    );
    assert_eq!(note.timestamp.as_deref(), Some("2025-04-07T09:31:38Z"));
    assert_eq!((note.iteration, note.max_iterations), (Some(6), Some(15)));
    assert_eq!(note.status.as_deref(), Some("blocked"));
    assert!(note.has_log_tail);
    let tail = log_tail(&fs::read(project.ralph("pending-notification.txt")).expect("read"))
        .expect("decodable log_tail");
    assert!(tail.starts_with(" exited 101 in 30.1s:\n"), "{tail}");
    assert!(tail.contains("Could not resolve host: index.crates.io"));
}

#[test]
fn failing_iterations_page() {
    let project = failing(300, 600);
    let state = project.open();
    let newest = IterationSort::Newest;
    let (error, success, other) = (
        Some(StatusFilter::Error),
        Some(StatusFilter::Success),
        Some(StatusFilter::Other),
    );
    assert_eq!(page(&state, error, None, newest, 0, 0), (run1(&[3]), 1));
    assert_eq!(
        page(&state, success, None, newest, 0, 0),
        (run1(&[6, 5, 4, 2, 1]), 5)
    );
    assert_eq!(page(&state, other, None, newest, 0, 0), (vec![], 0));
    assert_eq!(
        page(&state, None, Some(Health::Failed), newest, 0, 0),
        (run1(&[4, 3]), 2)
    );
    assert_eq!(
        page(&state, None, Some(Health::Partial), newest, 0, 0),
        (run1(&[6, 5]), 2)
    );
    assert_eq!(
        page(&state, None, Some(Health::Productive), newest, 0, 0),
        (run1(&[2, 1]), 2)
    );
    // Both filters at once: a "success" row can still be a failed iteration (tests failed).
    assert_eq!(
        page(&state, success, Some(Health::Failed), newest, 0, 0),
        (run1(&[4]), 1)
    );
    // Tokens, largest first, the row without tokens last: 61.009 57.66 49.5 44.102 18.227 -
    assert_eq!(
        page(&state, None, None, IterationSort::Tokens, 0, 0).0,
        run1(&[4, 2, 5, 1, 6, 3])
    );
    // Durations: 882 866 733 672 396 141
    assert_eq!(
        page(&state, None, None, IterationSort::Duration, 0, 0).0,
        run1(&[4, 2, 5, 1, 6, 3])
    );
    assert_eq!(
        page(&state, None, None, IterationSort::Oldest, 4, 10),
        (run1(&[5, 6]), 6)
    );
    assert_eq!(
        page(
            &state,
            None,
            Some(Health::Failed),
            IterationSort::Oldest,
            1,
            1
        ),
        (run1(&[4]), 2)
    );

    let all = iterations_of(
        &state,
        &IterationQuery {
            sort: IterationSort::Oldest,
            ..IterationQuery::default()
        },
    );
    let third = &all.rows[2];
    assert_eq!(third.record.status, IterationStatus::Error);
    assert_eq!(
        third.record.errors,
        [
            "Agent exited with code 1",
            "stream disconnected before completion: error sending request for url \
             (https://api.openai.com/v1/responses)"
        ]
    );
    assert_eq!(third.record.tokens, None);
    assert_eq!(third.cost_usd, None, "no tokens, no cost");
    assert_eq!(third.record.test_passed, None);
    assert_eq!(third.record.commit, None);
    let fourth = &all.rows[3];
    assert_eq!(fourth.record.test_passed, Some(false));
    assert!(fourth.record.tasks_completed.is_empty());
    assert!(fourth.record.errors.is_empty());
    assert_close_opt(
        fourth.cost_usd,
        Some(61.009 * DEFAULT_PRICE_PER_K_TOKENS),
        "row cost",
    );
}

#[test]
fn failing_iteration_logs_keep_their_markers() {
    let project = failing(300, 600);
    let state = project.open();
    let log = project.log_text();

    let third = load(&state, 1, 3);
    assert_eq!(
        third.text,
        expected_slice(
            &log,
            ("=== Iteration 3 (loop 3/15) ===", 0),
            Some(("=== Iteration 4 (loop 4/15) ===", 0))
        )
    );
    assert!(third.text.contains("⚠️ Agent exited with code 1"));
    assert!(
        !third.text.contains("❌ Tests failed"),
        "that is iteration 4's"
    );
    assert_eq!(third.test_output, None, "test_output is null");

    let fourth = load(&state, 1, 4);
    assert!(fourth
        .text
        .contains("\x1b[0;31m[09:12:47] ❌ Tests failed\x1b[0m\n"));
    assert!(!fourth.text.contains("=== Iteration 5"));
    assert_eq!(
        fourth.test_output.as_deref(),
        Some(
            "test result: FAILED. 19 passed; 3 failed; 0 ignored\n\nfailures:\n    \
             split::tests::writes_one_file_per_range\n    split::tests::open_ended_range\n    \
             split::tests::names_are_numbered"
        )
    );

    let sixth = load(&state, 1, 6);
    assert!(sixth.text.ends_with("stopping the loop\x1b[0m\n"));
}

// ------------------------------------------------------------------------------------ mixed

#[test]
fn mixed_formats_summary() {
    let project = Project::copy("mixed-formats");
    let state = project.open();
    let summary = state.summary();
    // No pid, plan IN PROGRESS, last row (iteration 8, timeout) is partial, the pending
    // notification is a DECISION: nothing says error.
    assert_eq!(summary.status, Status::Stopped);
    // The last header is `=== Iteration 9 (loop 2/50) ===`; its row is still being written.
    assert_eq!(summary.iteration, Some(2), "iteration 9 is `loop 2/50`");
    assert_eq!(summary.max_iterations, 50);
    // Rows: 12.345 + "69.310" + 55.02 + "62.698" + "41.2" + 47.5 + 38.95 + null = 327.023,
    // plus iteration 9's `tokens used` / `8.102` (already thousands) from the log: its row is
    // truncated.
    assert_close(summary.tokens, 327.023 + 8.102, "tokens");
    // config.json does not parse, so no price is configured: the documented default applies.
    assert_close(
        summary.cost_usd,
        (327.023 + 8.102) * DEFAULT_PRICE_PER_K_TOKENS,
        "cost",
    );
    let plan = summary.plan.as_ref().expect("plan");
    assert_eq!((plan.tasks_done, plan.tasks_total), (4, 5));
    assert_eq!(plan.plan_status.as_deref(), Some("IN PROGRESS"));
    // CRLF plan: no `\r` may leak into the names.
    assert_eq!(
        phases(summary),
        vec![
            phase("1. Storage", 2, 2, PhaseStatus::Complete),
            phase("2. Workers", 2, 3, PhaseStatus::InProgress),
        ]
    );
    // The broken config gives the defaults, its price too: both are said.
    assert_eq!(summary.warnings.len(), 2, "{:?}", summary.warnings);
    assert!(
        summary.warnings[0].contains("config.json is not valid JSON"),
        "{:?}",
        summary.warnings
    );
    assert!(
        summary.warnings[1].contains("costs use the default $0.01 per 1k tokens"),
        "{:?}",
        summary.warnings
    );
    use Health::{Failed, Partial, Productive};
    // run 1: 1 tasks+tests, 2 error | run 2: 1, 2 tasks+tests, 3 nothing done, 4 tests failed,
    // 5 tasks+tests, 8 timeout without result
    assert_eq!(
        summary.recent_health,
        [Productive, Failed, Productive, Productive, Partial, Failed, Productive, Partial]
    );
}

#[test]
fn mixed_formats_detail() {
    let project = Project::copy("mixed-formats");
    let state = project.open();
    let detail = detail_of(&state);
    let stats = &detail.stats;
    assert_eq!(stats.iterations, 8, "two runs, both counted");
    assert_close(stats.total_tokens, 327.023, "total tokens");
    // success: run 1 #1, run 2 #1 #2 #3 #4 #5; error: run 1 #2; other: run 2 #8 (timeout)
    assert_close_opt(stats.success_rate, Some(6.0 / 8.0), "success rate");
    assert_eq!(stats.errors, 1);
    assert_eq!(
        stats.health,
        HealthCounts {
            failed: 2,
            productive: 4,
            partial: 2
        }
    );
    assert_eq!((stats.tasks_done, stats.tasks_total), (4, 5));
    // 809 + 923 + 691 + 951 + "443" + 926 + 761 + 1804
    assert_close(stats.agent_seconds, 7308.0, "agent seconds");
    assert_eq!(
        detail.completed_in,
        completed_in(&[("1.1", 1), ("1.2", 1), ("2.1", 2), ("2.2", 5)])
    );
    // The comment line is not JSON, `[{...}]` is not an object; blank lines are not junk and
    // the unterminated last line is a write in progress.
    assert_eq!(
        detail.skipped_rows,
        SkipCounts {
            not_json: 1,
            not_an_object: 1,
            ..SkipCounts::default()
        }
    );
    assert_eq!(detail.config, LoopConfig::default(), "invalid config.json");

    let note = only_notification(&state);
    assert_eq!(
        note.kind,
        NotificationKind::Decision,
        "prefix inside message"
    );
    assert_ne!(note.severity, Severity::Error, "a decision is no alarm");
    assert!(
        note.message.contains(
            "Dead-letter queue (2.3): a separate dead_jobs table, or a 'dead' status on jobs?"
        ),
        "{:?}",
        note.message
    );
    // `$(date -Iseconds)` was never expanded: it is not a time.
    assert_eq!(note.timestamp, None);
    assert_eq!(note.iteration, Some(9), "\"9\" as a string");
    assert_eq!(note.max_iterations, Some(50));
    assert!(!note.id.is_empty());
    assert_eq!(only_notification(&project.open()).id, note.id, "stable id");
}

#[test]
fn mixed_formats_iterations_page() {
    let project = Project::copy("mixed-formats");
    let state = project.open();
    let newest = IterationSort::Newest;
    let run2_newest = [(2, 8), (2, 5), (2, 4), (2, 3), (2, 2), (2, 1)];
    let mut expected: Vec<(u32, u32)> = run2_newest.to_vec();
    expected.extend([(1, 2), (1, 1)]);
    assert_eq!(
        page(&state, None, None, newest, 0, 0),
        (expected.clone(), 8)
    );
    expected.reverse();
    assert_eq!(
        page(&state, None, None, IterationSort::Oldest, 0, 0),
        (expected, 8)
    );
    assert_eq!(
        page(&state, None, None, newest, 5, 2),
        (vec![(2, 1), (1, 2)], 8),
        "a page across the restart"
    );
    // "69.310" 62.698 55.02 47.5 "41.2" 38.95 12.345 null
    assert_eq!(
        page(&state, None, None, IterationSort::Tokens, 0, 0).0,
        [
            (1, 2),
            (2, 2),
            (2, 1),
            (2, 4),
            (2, 3),
            (2, 5),
            (1, 1),
            (2, 8)
        ]
    );
    // 1804 951 926 923 809 761 691 "443"
    assert_eq!(
        page(&state, None, None, IterationSort::Duration, 0, 0).0,
        [
            (2, 8),
            (2, 2),
            (2, 4),
            (1, 2),
            (1, 1),
            (2, 5),
            (2, 1),
            (2, 3)
        ]
    );
    let status = |filter| page(&state, Some(filter), None, newest, 0, 0);
    assert_eq!(status(StatusFilter::Other), (vec![(2, 8)], 1));
    assert_eq!(status(StatusFilter::Error), (vec![(1, 2)], 1));
    assert_eq!(status(StatusFilter::Success).1, 6);
    assert_eq!(
        page(&state, None, Some(Health::Failed), newest, 0, 0),
        (vec![(2, 4), (1, 2)], 2)
    );
    assert_eq!(
        page(&state, None, Some(Health::Partial), newest, 0, 0),
        (vec![(2, 8), (2, 3)], 2)
    );

    let rows = iterations_of(
        &state,
        &IterationQuery {
            sort: IterationSort::Oldest,
            ..IterationQuery::default()
        },
    )
    .rows;
    assert!(rows.iter().all(|row| row.has_log), "every row has a header");
    // Run 1 #2 (CRLF line): tokens "69.310" are 69.31 thousand, the empty commit is none.
    let interrupted = &rows[1].record;
    assert_eq!((interrupted.run, interrupted.iteration), (1, 2));
    assert_close_opt(interrupted.tokens, Some(69.31), "\"69.310\"");
    assert_eq!(interrupted.status, IterationStatus::Error);
    assert_eq!(
        interrupted.errors,
        ["Interrupted (SIGINT): agent exited with code 130"]
    );
    assert_eq!(interrupted.commit, None);
    assert_eq!(interrupted.test_passed, None);
    // Run 2 #3 was written with every number as a string.
    let stringly = &rows[4].record;
    assert_eq!((stringly.run, stringly.iteration), (2, 3));
    assert_eq!(stringly.max, 50);
    assert_close_opt(stringly.tokens, Some(41.2), "\"41.2\"");
    assert_eq!(stringly.duration_seconds, Some(443.0));
    assert_eq!(stringly.commit.as_deref(), Some("0d6e4b2"));
    let timeout = &rows[7].record;
    assert_eq!((timeout.run, timeout.iteration), (2, 8));
    assert_eq!(timeout.status, IterationStatus::Other("timeout".into()));
    assert_eq!(timeout.tokens, None);
    assert_close_opt(
        rows[2].cost_usd,
        Some(55.02 * DEFAULT_PRICE_PER_K_TOKENS),
        "row cost",
    );
}

#[test]
fn mixed_formats_iteration_logs_keep_runs_apart() {
    let project = Project::copy("mixed-formats");
    let state = project.open();
    let log = project.log_text();
    let old_1 = "=== Iteration 1/50 ===";
    let old_2 = "=== Iteration 2/50 ===";

    // Run 1, iteration 1: CRLF lines, the first `Iteration 1/50` header.
    let first = load(&state, 1, 1);
    assert_eq!(
        first.text,
        expected_slice(&log, (old_1, 0), Some((old_2, 0)))
    );
    assert!(first
        .text
        .starts_with("\x1b[1;33m[14:02:11] === Iteration 1/50 ===\x1b[0m\r\n"));
    assert!(first.text.contains("tokens used\r\n12,345\r\n"));
    assert!(first.text.ends_with("✅ Tests passed\x1b[0m\r\n"));
    assert!(!first.text.contains("Resuming"), "run 2's text");
    assert_eq!(
        first.test_output.as_deref(),
        Some("ok  \tgithub.com/rin/jobq/store\t0.412s")
    );

    // Run 2, iteration 1: the second `Iteration 1/50` header, not the first.
    let again = load(&state, 2, 1);
    assert_eq!((again.run, again.iteration), (2, 1));
    assert_eq!(
        again.text,
        expected_slice(&log, (old_1, 1), Some((old_2, 1)))
    );
    assert!(again
        .text
        .starts_with("\x1b[1;33m[15:02:31] === Iteration 1/50 ===\x1b[0m\n"));
    assert!(again.text.contains("Resuming: 1.1 is ticked, 1.2 is open."));
    assert!(!again.text.contains("[14:02:11]"), "run 1's text");
    assert!(!again.text.contains('\r'), "run 2 was written with LF");
    assert_eq!(
        again.test_output.as_deref(),
        Some("ok  \tgithub.com/rin/jobq/store\t1.803s")
    );

    // Run 1, iteration 2 was interrupted; it ends where run 2 begins.
    let interrupted = load(&state, 1, 2);
    assert_eq!(
        interrupted.text,
        expected_slice(&log, (old_2, 0), Some((old_1, 1)))
    );
    assert!(interrupted.text.contains("⚠️ Agent exited with code 130"));

    // The switch to the new header format inside run 2.
    let fifth = load(&state, 2, 5);
    assert_eq!(
        fifth.text,
        expected_slice(
            &log,
            ("=== Iteration 5/50 ===", 0),
            Some(("=== Iteration 8 (loop 1/50) ===", 0))
        )
    );
    let eighth = load(&state, 2, 8);
    assert_eq!(
        eighth.text,
        expected_slice(
            &log,
            ("=== Iteration 8 (loop 1/50) ===", 0),
            Some(("=== Iteration 9 (loop 2/50) ===", 0))
        )
    );
    assert!(eighth.text.contains("Agent timed out after 30m"));
    assert_eq!(eighth.test_output, None);

    // Iteration 9 has a header but only a truncated row: its log runs to the end of the file.
    let ninth = load(&state, 2, 9);
    assert_eq!(
        ninth.text,
        expected_slice(&log, ("=== Iteration 9 (loop 2/50) ===", 0), None)
    );
    assert!(ninth.text.contains("tokens used\n8.102\n"));
    assert_eq!(ninth.test_output, None);

    let fourth = load(&state, 2, 4);
    assert!(fourth.text.contains("❌ Tests failed"));
    assert!(fourth
        .test_output
        .as_deref()
        .is_some_and(|out| out.contains("TestBackoffCapsAtTenMinutes")));

    for (run, iteration) in [(1, 3), (2, 6), (2, 7), (2, 10), (3, 1), (0, 1)] {
        assert!(
            state.iteration_location(run, iteration).is_none(),
            "run {run} has no iteration {iteration}"
        );
    }
}

// ------------------------------------------------------------------------------------ probes
//
// Variants of the fixtures that probe single contract rules. A test named `contract_*` that
// fails is a place where the code disagrees with DESIGN.md section 4; its comment quotes the
// rule and says what the code does instead. Do not "fix" such a test by changing the expected
// value: fix the code or the contract.

/// A BLOCKED notification whose writer labelled it a warning.
const BLOCKED_AS_WARNING: &str = r#"{
  "event_id": "pdfsplit-6-blocked-1744018298",
  "timestamp": "2025-04-07T09:31:38Z",
  "prefix": "BLOCKED",
  "kind": "BLOCKED",
  "severity": "warning",
  "message": "Task 2.2 needs network access to update lopdf",
  "details": "Vendor lopdf or allow network access, then delete this file.",
  "iteration": 6,
  "max_iterations": 15,
  "cli": "codex",
  "status": "blocked"
}
"#;

/// A DECISION whose writer labelled it an error.
const DECISION_AS_ERROR: &str = r#"{
  "event_id": "pdfsplit-6-decision-1744018298",
  "timestamp": "2025-04-07T09:31:38Z",
  "prefix": "DECISION",
  "severity": "error",
  "message": "Vendor lopdf into the repository, or wait for network access?",
  "iteration": 6,
  "max_iterations": 15,
  "cli": "codex"
}
"#;

/// The failing fixture with another pending notification, written after the last row.
fn failing_with_notification(text: &str) -> Project {
    let project = failing(300, 600);
    fs::write(project.ralph("pending-notification.txt"), text).expect("write notification");
    project.set_mtime(
        "pending-notification.txt",
        SystemTime::now() - Duration::from_secs(300),
    );
    project
}

#[test]
fn a_newer_plain_text_blocked_is_an_alarm() {
    let project = failing_with_notification(
        "BLOCKED: Task 2.2 needs network access to update lopdf\n\
         Vendor lopdf or allow network access, then delete this file.\n",
    );
    let state = project.open();
    assert_eq!(only_notification(&state).kind, NotificationKind::Blocked);
    assert_eq!(state.summary().status, Status::Error);
}

/// CONTRACT (DESIGN.md 4, status): "`error` (not running, and the last iteration failed or a
/// pending ERROR/BLOCKED is newer than it)". The notification's kind is BLOCKED, it is newer
/// than the last row, no loop runs: the status is `error`, whatever severity the writer chose.
#[test]
fn contract_a_newer_blocked_is_an_alarm_whatever_its_severity() {
    let project = failing_with_notification(BLOCKED_AS_WARNING);
    let state = project.open();
    let note = only_notification(&state);
    assert_eq!(note.kind, NotificationKind::Blocked);
    assert_eq!(note.severity, Severity::Warning, "kept as written");
    assert_eq!(
        state.summary().status,
        Status::Error,
        "a pending BLOCKED newer than the last row"
    );
}

/// CONTRACT (DESIGN.md 4, status): only a pending ERROR or BLOCKED turns a stopped loop into
/// `error`. A DECISION is a question to the operator, even when its writer says "severity":
/// "error"; the last row (6) did not fail, so the loop is `stopped`.
#[test]
fn contract_a_decision_is_no_alarm_whatever_its_severity() {
    let project = failing_with_notification(DECISION_AS_ERROR);
    let state = project.open();
    let note = only_notification(&state);
    assert_eq!(note.kind, NotificationKind::Decision);
    assert_eq!(note.severity, Severity::Error, "kept as written");
    assert_eq!(state.summary().status, Status::Stopped);
}

/// mixed-formats as it looks when the v1 script, before the restart, wrote no JSONL at all:
/// the rows are run 2's only (iterations 1-5 and 8), the log still holds both runs.
fn mixed_without_run_one_rows() -> Project {
    let project = Project::copy("mixed-formats");
    let path = project.ralph("iterations.jsonl");
    let text = String::from_utf8(fs::read(&path).expect("read jsonl")).expect("utf-8");
    let restart = text.find("# ralph.sh restarted").expect("restart comment");
    fs::write(&path, &text[restart..]).expect("write jsonl");
    project
}

/// CONTRACT (DESIGN.md 4, iterations.jsonl: rows "repeat an iteration number (older loop
/// scripts restart at 1)"; DESIGN.md 7: "a row expands to that iteration's log"). The first
/// row started at 15:02:31, after the restart: it must expand to the `[15:02:31] === Iteration
/// 1/50 ===` slice, not to the run before the restart, which has no row.
#[test]
fn contract_a_row_after_a_restart_expands_to_its_own_log() {
    let project = mixed_without_run_one_rows();
    let state = project.open();
    let rows = iterations_of(
        &state,
        &IterationQuery {
            sort: IterationSort::Oldest,
            ..IterationQuery::default()
        },
    )
    .rows;
    // Run 1 has no rows: its two ended iterations are listed from the log, before run 2's.
    let (rows, logged): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|row| row.source == RowSource::Jsonl);
    assert_eq!(rows.len(), 6);
    let logged: Vec<_> = logged
        .iter()
        .map(|row| {
            (
                row.record.run,
                row.record.iteration,
                row.record.start.clone(),
            )
        })
        .collect();
    assert_eq!(
        logged,
        [
            (1, 1, Some("14:02:11".to_owned())),
            (1, 2, Some("14:15:42".to_owned()))
        ]
    );
    let first = &rows[0].record;
    assert_eq!(first.iteration, 1);
    assert_eq!(first.start.as_deref(), Some("2025-02-10T15:02:31+01:00"));
    let text = load(&state, first.run, first.iteration).text;
    assert!(
        text.starts_with("\x1b[1;33m[15:02:31] === Iteration 1/50 ===\x1b[0m\n"),
        "the row that started at 15:02:31 expands to: {:?}",
        text.lines().next()
    );
}

/// CONTRACT (DESIGN.md 4: tokens per iteration come from the JSONL row or, for an iteration
/// without one, from the log's `tokens used` line; a restart repeats iteration numbers). Each
/// iteration counts once: run 1 from the log (12,345 + 69.310 = 81.655, no rows), run 2 from
/// its rows (55.02 + 62.698 + 41.2 + 47.5 + 38.95 + null = 245.368) and iteration 9 from the
/// log (8.102): 335.125, the same total as with run 1's rows present.
#[test]
fn contract_tokens_after_a_restart_are_counted_once() {
    let project = mixed_without_run_one_rows();
    let state = project.open();
    assert_close(state.summary().tokens, 335.125, "tokens");
}

// ------------------------------------------------------------------------------------ big log

/// Slow-ish (it writes about 200 MB to the temporary directory), so it is ignored by default.
/// Run it with `cargo test --features ssr --test fixtures -- --ignored big_log` (add `--release`
/// to make it faster). Timings are not asserted: they belong in the benchmark.
#[test]
#[ignore = "writes a ~200 MB log; run with --ignored"]
fn big_log_indexes_every_iteration() {
    const ITERATIONS: u32 = 2000;
    const LINES_PER_ITERATION: u32 = 96;
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("big");
    fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
    let path = dir.join(".ralph/ralph.log");

    // About 1 KiB of agent output per line.
    let filler = "warning: unused variable `response` in src/handlers/upload.rs; \
                  consider prefixing it with an underscore. "
        .repeat(10);
    let mut out = Counting {
        out: BufWriter::with_capacity(1 << 20, fs::File::create(&path).expect("create")),
        offset: 0,
    };
    let mut starts = Vec::with_capacity(ITERATIONS as usize);
    let mut tokens = 0.0;
    out.put("[00:00:00] Ralph loop starting\n");
    for i in 1..=ITERATIONS {
        starts.push(out.offset);
        let (h, m, s) = (i / 3600 % 24, i / 60 % 60, i % 60);
        out.put(&format!(
            "\x1b[1;35m[{h:02}:{m:02}:{s:02}] === Iteration {i} (loop {i}/{ITERATIONS}) ===\x1b[0m\n"
        ));
        for line in 0..LINES_PER_ITERATION {
            out.put(&format!("{i:>5}.{line:<3} {filler}\n"));
        }
        // `12,345`-style counts of raw tokens: (10 + i % 50) thousand and (i % 1000).
        let whole = 10 + i % 50;
        let part = i % 1000;
        tokens += f64::from(whole) + f64::from(part) / 1000.0;
        out.put(&format!("tokens used\n{whole},{part:03}\n"));
        out.put("\x1b[0;32m[00:00:00] ✅ Tests passed\x1b[0m\n");
    }
    out.out.flush().expect("flush");
    let size = out.offset;
    drop(out);
    assert_eq!(fs::metadata(&path).expect("stat").len(), size);
    assert!(size > 200_000_000, "{size} bytes");

    let state = ProjectState::open("big", &dir, vec![ProjectKind::Ralph]);
    let summary = state.summary();
    assert_eq!(summary.iteration, Some(ITERATIONS));
    assert_eq!(summary.max_iterations, ITERATIONS);
    assert!(
        (summary.tokens - tokens).abs() < 1e-6,
        "{} != {tokens}",
        summary.tokens
    );
    for i in 1..=ITERATIONS {
        assert!(state.iteration_location(1, i).is_some(), "iteration {i}");
    }
    assert!(state.iteration_location(1, ITERATIONS + 1).is_none());
    assert!(state.iteration_location(2, 1).is_none());

    let last = load(&state, 1, ITERATIONS);
    assert_eq!(
        last.text.len() as u64,
        size - starts[ITERATIONS as usize - 1]
    );
    assert!(last
        .text
        .starts_with("\x1b[1;35m[00:33:20] === Iteration 2000 (loop 2000/2000) ===\x1b[0m\n"));
    assert!(last
        .text
        .ends_with("tokens used\n10,000\n\x1b[0;32m[00:00:00] ✅ Tests passed\x1b[0m\n"));
    assert!(!last.truncated);

    let middle = load(&state, 1, 1000);
    assert_eq!(middle.text.len() as u64, starts[1000] - starts[999]);
    assert!(middle
        .text
        .contains("=== Iteration 1000 (loop 1000/2000) ==="));
    assert!(!middle.text.contains("=== Iteration 1001 "));
}

/// A writer that knows how many bytes it wrote: the byte offsets of the headers are the oracle.
struct Counting {
    out: BufWriter<fs::File>,
    offset: u64,
}

impl Counting {
    fn put(&mut self, text: &str) {
        self.out.write_all(text.as_bytes()).expect("write");
        self.offset += text.len() as u64;
    }
}
