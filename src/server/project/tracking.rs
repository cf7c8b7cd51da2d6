//! The appended files, `ralph.log` and `iterations.jsonl`, read incrementally by byte offset (an
//! append costs only the appended bytes): each log iteration remembers its byte range so its text
//! is served by a seek, and each row its line's offset; the rows are paired with the log's
//! iterations as they arrive.

use std::io;

use crate::contract::ralph::{
    iterations::{
        parse_line, IterationRecord, IterationStatus, LineOutcome, RunTracker, SkipCounts,
    },
    log::{clock_seconds, IterationMarks, LogEvent, LogScanner, Marker},
    stats::health,
};
use crate::model::protocol::{IterationDone, IterationStart, LogLines, ServerMessage};
use crate::server::clock::now;

use super::files::file_name;
use super::kind::{FileKind, ProjectKind};
use super::tail::{ReadOutcome, Tail};
use super::{ProjectState, Report};

/// Largest `log_append` payload; more text is split over several events.
const MAX_APPEND_BYTES: usize = 128 * 1024;
/// Memory the JSONL rows of one project may take (estimated): past it the oldest rows are
/// forgotten (counted, and said on the iterations tab), down to three quarters of it so the
/// next rows do not trim again at once.
pub const MAX_ROW_BYTES: usize = 16 * 1024 * 1024;
/// A log bigger than this is indexed from its last this-many bytes when the project is opened, so
/// one huge (or sparse) file cannot hold up start-up; older iterations are then not listed.
const LOG_START_WINDOW: u64 = 64 * 1024 * 1024;
/// The same for `iterations.jsonl` (rows are the history: more of it is worth reading).
const JSONL_START_WINDOW: u64 = 256 * 1024 * 1024;

/// One iteration as the log shows it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LogIteration {
    pub(super) run: u32,
    pub(super) iteration: u32,
    /// Its place within the current run (see [`crate::contract::ralph::log::IterationHeader::position`]).
    pub(super) position: u32,
    pub(super) max: u32,
    pub(super) start: u64,
    pub(super) end: Option<u64>,
    pub(super) tokens: Option<f64>,
    /// The header's clock (seconds since midnight).
    pub(super) start_clock: Option<u32>,
    /// The next header's clock, else the clock of the iteration's last line that has one.
    pub(super) end_clock: Option<u32>,
    pub(super) marks: IterationMarks,
}

#[derive(Debug)]
pub(super) struct LogTracker {
    pub(super) tail: Tail,
    scanner: LogScanner,
    runs: RunTracker,
    pub(super) iterations: Vec<LogIteration>,
    pub(super) lines: u64,
    /// Iterations that ended (the next header, or a completion marker) since the last update
    /// took them: announced once the rows are paired, if no row stands for them.
    pub(super) ended: Vec<usize>,
}

impl LogTracker {
    pub(super) fn new(tail: Tail) -> Self {
        Self {
            tail,
            scanner: LogScanner::default(),
            runs: RunTracker::default(),
            iterations: Vec::new(),
            lines: 0,
            ended: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub(super) struct JsonlTracker {
    pub(super) tail: Tail,
    runs: RunTracker,
    /// Rows kept in memory without their (possibly large) test output...
    pub(super) rows: Vec<IterationRecord>,
    /// ...which stays on disk at these line offsets.
    pub(super) offsets: Vec<u64>,
    /// The run each row's own numbering gives it; a row paired with a log iteration takes the
    /// log's run instead (see [`super::pairing::Links`]), and gets this one back if it loses its
    /// pair.
    own_runs: Vec<u32>,
    pub(super) skipped: SkipCounts,
    /// What the rows take in memory (estimated, see [`row_bytes`]).
    pub(super) bytes: usize,
    /// The oldest rows dropped to stay within [`MAX_ROW_BYTES`].
    pub(super) forgotten: u64,
}

impl JsonlTracker {
    pub(super) fn new(tail: Tail) -> Self {
        Self {
            tail,
            runs: RunTracker::default(),
            rows: Vec::new(),
            offsets: Vec::new(),
            own_runs: Vec::new(),
            skipped: SkipCounts::default(),
            bytes: 0,
            forgotten: 0,
        }
    }
}

/// Forgets the oldest rows (and their offsets and own runs) once the rows pass
/// [`MAX_ROW_BYTES`]; returns how many (their pairing with the log must then be redone).
fn trim_rows(
    rows: &mut Vec<IterationRecord>,
    offsets: &mut Vec<u64>,
    own_runs: &mut Vec<u32>,
    bytes: &mut usize,
) -> usize {
    if *bytes <= MAX_ROW_BYTES {
        return 0;
    }
    let target = MAX_ROW_BYTES / 4 * 3;
    let mut dropped = 0;
    for record in rows.iter() {
        if *bytes <= target {
            break;
        }
        *bytes = bytes.saturating_sub(row_bytes(record));
        dropped += 1;
    }
    rows.drain(..dropped);
    offsets.drain(..dropped.min(offsets.len()));
    own_runs.drain(..dropped.min(own_runs.len()));
    dropped
}

/// What one kept row costs: the record, its strings, and its entries in the parallel vectors
/// and the pairing.
fn row_bytes(record: &IterationRecord) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
    let list = |v: &Vec<String>| {
        v.capacity() * std::mem::size_of::<String>() + v.iter().map(String::capacity).sum::<usize>()
    };
    let status = match &record.status {
        IterationStatus::Other(text) => text.capacity(),
        _ => 0,
    };
    std::mem::size_of::<IterationRecord>()
        + 64
        + text(&record.start)
        + text(&record.end)
        + text(&record.commit)
        + text(&record.commit_message)
        + text(&record.test_output)
        + list(&record.tasks_completed)
        + list(&record.errors)
        + status
}

/// One of the two appended files, for the bookkeeping they share.
#[derive(Clone, Copy)]
enum Appended {
    Log,
    Jsonl,
}

impl Appended {
    /// The keys of its read warning and of its start-window warning.
    fn warning_keys(self) -> (&'static str, &'static str) {
        match self {
            Appended::Log => ("log", "log_start"),
            Appended::Jsonl => ("jsonl", "jsonl_start"),
        }
    }

    fn file(self) -> FileKind {
        match self {
            Appended::Log => FileKind::Log,
            Appended::Jsonl => FileKind::Jsonl,
        }
    }
}

/// What a read pass of an appended file came to.
#[derive(PartialEq, Eq)]
enum Pass {
    /// New lines (or none) after the ones already read.
    Continued,
    /// The file started over from byte 0: what was derived from it means nothing now.
    Restarted,
}

impl ProjectState {
    /// Starts each appended file near its end when it is huge (a bounded read whatever its
    /// size), with a warning that says how much was skipped.
    pub(super) fn start_near_end(&mut self) {
        let skipped = [
            (
                Appended::Log,
                self.log.tail.start_near_end(LOG_START_WINDOW),
            ),
            (
                Appended::Jsonl,
                self.jsonl.tail.start_near_end(JSONL_START_WINDOW),
            ),
        ];
        for (file, skipped) in skipped {
            if let Ok(skipped @ 1..) = skipped {
                let path = ProjectKind::Ralph.path(&file.file());
                self.warn(
                    file.warning_keys().1,
                    format!(
                        "{} is too big to index whole: its first {} were skipped \
                         (older iterations are not listed)",
                        file_name(&path),
                        human_bytes(skipped)
                    ),
                );
            }
        }
    }

    /// The appended files whose last pass stopped at its byte budget: they want another pass.
    pub fn unfinished(&self) -> Vec<FileKind> {
        let mut kinds = Vec::new();
        if self.log.tail.behind() {
            kinds.push(FileKind::Log);
        }
        if self.jsonl.tail.behind() {
            kinds.push(FileKind::Jsonl);
        }
        kinds
    }

    /// The bookkeeping after a read pass of an appended file: its read warning, the time of the
    /// last activity and, when it started over, its start-window warning and the pairing (the
    /// caller then re-reads it from scratch).
    fn settle(&mut self, file: Appended, result: io::Result<ReadOutcome>) -> Pass {
        let (read_key, start_key) = file.warning_keys();
        match result {
            Ok(outcome) => {
                self.warnings.remove(read_key);
                if outcome.restarted.is_some() {
                    self.warnings.remove(start_key);
                    // The headers or rows are new: pair every row again.
                    self.links.reset();
                    return Pass::Restarted;
                }
                if outcome.bytes > 0 {
                    self.note_written(&file.file());
                }
            }
            Err(error) => {
                let path = ProjectKind::Ralph.path(&file.file());
                let name = file_name(&path);
                self.warn(read_key, format!("cannot read {name}: {error}"));
            }
        }
        Pass::Continued
    }

    pub(super) fn read_log(&mut self, report: Report) -> Vec<ServerMessage> {
        let mut events = Vec::new();
        let mut appended = String::new();
        let log = &mut self.log;
        let id = &self.id;
        let mut started = Vec::new();
        let result = log.tail.read_new(|offset, bytes| {
            let line = String::from_utf8_lossy(bytes);
            let scanned = log.scanner.scan(offset, &line);
            if let (Some(clock), Some(current)) = (scanned.clock, log.iterations.last_mut()) {
                current.end_clock = Some(clock);
            }
            match scanned.event {
                Some(LogEvent::IterationStarted { header, offset }) => {
                    let start_clock = header.clock.as_deref().and_then(clock_seconds);
                    let last = log.iterations.len().checked_sub(1);
                    if let Some((index, previous)) = last.zip(log.iterations.last_mut()) {
                        previous.end.get_or_insert(offset);
                        // The header's clock was just taken as the previous one's last line.
                        previous.end_clock = start_clock.or(previous.end_clock);
                        if !previous.marks.complete {
                            log.ended.push(index);
                        }
                    }
                    let run = log.runs.assign(header.iteration);
                    log.iterations.push(LogIteration {
                        run,
                        iteration: header.iteration,
                        position: header.position(),
                        max: header.max,
                        start: offset,
                        end: None,
                        tokens: None,
                        start_clock,
                        end_clock: start_clock,
                        marks: IterationMarks::default(),
                    });
                    started.push((header, run));
                }
                Some(LogEvent::Tokens { thousands }) => {
                    if let Some(current) = log.iterations.last_mut() {
                        current.tokens = Some(current.tokens.unwrap_or(0.0) + thousands);
                    }
                }
                Some(LogEvent::Marker(marker)) => {
                    let last = log.iterations.len().checked_sub(1);
                    if let Some((index, current)) = last.zip(log.iterations.last_mut()) {
                        if marker == Marker::Complete && !current.marks.complete {
                            log.ended.push(index);
                        }
                        current.marks.note(&marker);
                    }
                }
                None => {}
            }
            log.lines += 1;
            if report == Report::Changes {
                if appended.len() + line.len() + 1 > MAX_APPEND_BYTES && !appended.is_empty() {
                    events.push(log_append(id, std::mem::take(&mut appended)));
                }
                appended.push_str(&line);
                appended.push('\n');
            }
        });
        if self.settle(Appended::Log, result) == Pass::Restarted {
            // The old iteration ranges mean nothing now, and the lines just read were scanned
            // into the old state: rebuild from scratch.
            self.log = LogTracker::new(self.log.tail.fresh());
            let _ = self.read_log(Report::Quiet);
            return match report {
                Report::Changes => vec![ServerMessage::LogRotated {
                    project: self.id.clone(),
                    timestamp: now(),
                }],
                Report::Quiet => Vec::new(),
            };
        }
        if report == Report::Quiet {
            // Nobody to tell: these iterations ended before anyone listened.
            self.log.ended.clear();
        }
        if report == Report::Changes {
            for (header, run) in started {
                events.push(ServerMessage::IterationStarted {
                    project: self.id.clone(),
                    timestamp: now(),
                    data: IterationStart {
                        iteration: header.iteration,
                        max: header.max,
                        loop_index: header.loop_index,
                        run,
                    },
                });
            }
            if !appended.is_empty() {
                events.push(log_append(&self.id, appended));
            }
        }
        events
    }

    pub(super) fn read_jsonl(&mut self, report: Report) -> Vec<ServerMessage> {
        let jsonl = &mut self.jsonl;
        let mut fresh: Vec<usize> = Vec::new();
        let mut trimmed = false;
        let result = jsonl
            .tail
            .read_new(|offset, bytes| match parse_line(bytes) {
                LineOutcome::Record(mut record) => {
                    record.run = jsonl.runs.assign(record.iteration);
                    // Kept on disk, not in memory: served with the iteration's log.
                    record.test_output = None;
                    fresh.push(jsonl.rows.len());
                    jsonl.own_runs.push(record.run);
                    jsonl.bytes = jsonl.bytes.saturating_add(row_bytes(&record));
                    jsonl.rows.push(record);
                    jsonl.offsets.push(offset);
                    // Trimmed as rows arrive, so one huge read pass stays within the bound too.
                    let dropped = trim_rows(
                        &mut jsonl.rows,
                        &mut jsonl.offsets,
                        &mut jsonl.own_runs,
                        &mut jsonl.bytes,
                    );
                    if dropped > 0 {
                        trimmed = true;
                        jsonl.forgotten = jsonl.forgotten.saturating_add(dropped as u64);
                        fresh.retain(|&index| index >= dropped);
                        fresh.iter_mut().for_each(|index| *index -= dropped);
                    }
                }
                LineOutcome::Blank => {}
                LineOutcome::Skipped(reason) => jsonl.skipped.add(reason),
            });
        if trimmed {
            // Row indices moved: pair every kept row again.
            self.links.reset();
        }
        if self.settle(Appended::Jsonl, result) == Pass::Restarted {
            self.jsonl = JsonlTracker::new(self.jsonl.tail.fresh());
            // Re-read from scratch; clients get the new rows as a whole-card update.
            let _ = self.read_jsonl(Report::Quiet);
            return Vec::new();
        }
        self.relink();
        if report == Report::Quiet {
            return Vec::new();
        }
        let price = self.config.price_per_k_tokens().0;
        fresh
            .into_iter()
            .filter_map(|i| self.jsonl.rows.get(i))
            .map(|record| ServerMessage::IterationCompleted {
                project: self.id.clone(),
                timestamp: now(),
                data: iteration_done(record, price),
            })
            .collect()
    }

    /// Pairs the JSONL rows with the log's iterations (see [`super::pairing::Links`]:
    /// incrementally, so an append costs the rows it re-pairs). A paired row takes the log's
    /// run, since the log has every header and so the true count of restarts; an unpaired one
    /// keeps its own.
    pub(super) fn relink(&mut self) {
        let first_changed = self.links.update(
            &self.log.iterations,
            |header| header.iteration,
            &self.jsonl.rows,
            |row| row.iteration,
        );
        for index in first_changed..self.jsonl.rows.len() {
            let run = match self.links.header_of(index) {
                Some(header) => self.log.iterations.get(header).map(|it| it.run),
                None => None,
            };
            let own = self.jsonl.own_runs.get(index).copied();
            if let (Some(record), Some(run)) = (self.jsonl.rows.get_mut(index), run.or(own)) {
                record.run = run;
            }
        }
    }
}

/// The `iteration_completed` payload for a finished iteration's row.
pub(super) fn iteration_done(record: &IterationRecord, price_per_k_tokens: f64) -> IterationDone {
    IterationDone {
        iteration: record.iteration,
        max: record.max,
        run: record.run,
        duration_seconds: record.duration_seconds,
        tokens: record.tokens,
        cost_usd: record.tokens.map(|k| k * price_per_k_tokens),
        status: record.status.clone(),
        health: health(record),
        tasks_completed: record.tasks_completed.clone(),
        commit: record.commit.clone(),
        test_passed: record.test_passed,
        errors: record.errors.clone(),
    }
}

fn log_append(project: &str, lines: String) -> ServerMessage {
    ServerMessage::LogAppend {
        project: project.to_owned(),
        timestamp: now(),
        data: LogLines { lines },
    }
}

/// A byte count for a warning: `20.0 GiB`, `512.0 MiB`, `900 bytes`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    UNITS.iter().find(|(_, size)| bytes >= *size).map_or_else(
        || format!("{bytes} bytes"),
        |(unit, size)| format!("{:.1} {unit}", bytes as f64 / *size as f64),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, open, project};
    use super::*;
    use crate::contract::ralph::stats::Health;
    use crate::model::{
        api_types::{IterationQuery, IterationSort},
        Cursor,
    };
    use std::fs;

    #[test]
    fn appends_cost_only_the_appended_lines_and_ranges_are_exact() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(&log, "=== Iteration 1/3 ===\none\n");
        let mut state = open(&dir);
        assert_eq!(state.log_lines(), 2);

        append(&log, "two\n=== Iteration 2/3 ===\nthree\npartial");
        let events = state.update(&[FileKind::Log]);
        assert_eq!(
            state.log_lines(),
            5,
            "only the new complete lines were read"
        );
        let appended: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                ServerMessage::LogAppend { data, .. } => Some(data.lines.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(appended, ["two\n=== Iteration 2/3 ===\nthree\n"]);
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerMessage::IterationStarted { data, .. } if data.iteration == 2 && data.max == 3)));
        assert_eq!(state.summary().iteration, Some(2));

        let first = state.iteration_location(1, 1).expect("iteration 1 known");
        let text = first.load(1, 1).expect("load").text;
        assert_eq!(text, "=== Iteration 1/3 ===\none\ntwo\n");
        let second = state.iteration_location(1, 2).expect("iteration 2 known");
        assert_eq!(
            second.load(1, 2).expect("load").text,
            "=== Iteration 2/3 ===\nthree\npartial"
        );
    }

    #[test]
    fn a_truncated_log_is_reindexed_and_reported() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(
            &log,
            "=== Iteration 1/3 ===\n=== Iteration 2/3 ===\nlots of text here\n",
        );
        let mut state = open(&dir);
        assert_eq!(state.log_iterations(), 2);

        fs::write(&log, "=== Iteration 7/9 ===\n").expect("truncate");
        let events = state.update(&[FileKind::Log]);
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerMessage::LogRotated { .. })));
        assert_eq!(state.log_iterations(), 1);
        assert_eq!(state.summary().iteration, Some(7));
        assert!(
            state.iteration_location(1, 1).is_none(),
            "old ranges are gone"
        );
    }

    #[test]
    fn rows_past_the_memory_bound_forget_the_oldest_and_count_them() {
        let (_temp, dir) = project();
        let path = dir.join(".ralph/iterations.jsonl");
        let per_row = row_bytes(
            &crate::contract::ralph::iterations::parse_all(b"{\"iteration\":1}\n")
                .0
                .remove(0),
        );
        let written = MAX_ROW_BYTES / per_row + 1000;
        let text: String = (1..=written)
            .map(|n| format!("{{\"iteration\":{n}}}\n"))
            .collect();
        append(&path, &text);
        let mut state = open(&dir);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert!(page.forgotten > 0, "the oldest rows are forgotten");
        assert_eq!(page.forgotten + u64::from(page.total), written as u64);
        assert!(state.jsonl.bytes <= MAX_ROW_BYTES);
        assert_eq!(
            page.rows[0].record.iteration as usize, written,
            "the newest is kept"
        );

        append(&path, &format!("{{\"iteration\":{}}}\n", written + 1));
        state.update(&[FileKind::Jsonl]);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert_eq!(page.rows[0].record.iteration as usize, written + 1);
        assert_eq!(page.forgotten + u64::from(page.total), written as u64 + 1);
    }

    #[test]
    fn replaced_jsonl_is_reread_and_rows_keep_no_test_output_in_memory() {
        let (_temp, dir) = project();
        let rows = dir.join(".ralph/iterations.jsonl");
        append(
            &rows,
            "{\"iteration\":1,\"status\":\"success\",\"test_output\":\"big\"}\n",
        );
        let mut state = open(&dir);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert_eq!(page.total, 1);
        assert_eq!(page.rows[0].record.test_output, None);

        let replacement = dir.join(".ralph/new.jsonl");
        fs::write(
            &replacement,
            "{\"iteration\":1,\"status\":\"error\"}\n{\"iteration\":2,\"status\":\"success\"}\n",
        )
        .expect("write");
        fs::rename(&replacement, &rows).expect("replace");
        state.update(&[FileKind::Jsonl]);
        let page = state.iterations(
            &IterationQuery {
                sort: IterationSort::Oldest,
                ..IterationQuery::default()
            },
            Cursor::default(),
        );
        assert_eq!(page.total, 2);
        assert!(page.rows[0].record.status.is_error());
        assert_eq!(
            state.summary().recent_health,
            [Health::Failed, Health::Partial]
        );
    }
}
