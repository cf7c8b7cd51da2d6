//! Questions asked of a project's state: its full detail, a page of its iterations, where one
//! iteration's text lies (served by a seek, off the project's lock) and the published log.

use std::{collections::BTreeMap, io, path::PathBuf, time::SystemTime};

use crate::contract::ralph::{
    alerts::{evaluate, Alert, Liveness, LoopFacts, Thresholds},
    iterations::{parse_line, IterationRecord, LineOutcome},
    plan::normalize_task_id,
    stats::{health, parse_timestamp, stats_over, thin_burndown, MAX_BURNDOWN_POINTS},
    status::Status,
};
use crate::model::{
    api_types::{
        IterationLog, IterationPage, IterationQuery, IterationRow, IterationSort, ProjectDetail,
        RowSource, StatusFilter, MAX_PAGE,
    },
    Cursor,
};
use crate::server::safe_open;

use super::files::MAX_SMALL_FILE;
use super::pairing::Source;
use super::tail::{read_lines, read_range};
use super::ProjectState;

/// Largest iteration log served in one response.
pub const MAX_ITERATION_LOG: u64 = 8 * 1024 * 1024;

impl ProjectState {
    /// What serving the published log needs: taken under the project's lock, read after it.
    pub fn log_view(&self) -> LogView {
        let end = self.log.tail.offset();
        LogView {
            dir: self.log.tail.dir().to_path_buf(),
            rel: self.log.tail.rel().to_owned(),
            end,
            long_lines: self.log.tail.long_lines(0, end),
        }
    }

    /// The project's full state, as of `cursor` (its `project:ID` topic).
    pub fn detail(&self, cursor: Cursor) -> ProjectDetail {
        let plan = self.plan.clone().unwrap_or_default();
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let records: Vec<_> = self.records().into_iter().map(|(_, r)| r).collect();
        let mut stats = stats_over(
            &records,
            &plan,
            self.config.price_per_k_tokens().0,
            now_unix,
        );
        // The page carries it twice (HTML and hydration data): what the chart can show, no more.
        stats.burndown = thin_burndown(&stats.burndown, MAX_BURNDOWN_POINTS);
        let mut completed_in = BTreeMap::new();
        // Rows report their tasks; a tick seen while an iteration ran that wrote no row for it
        // (cut short) fills the rest.
        for record in &self.jsonl.rows {
            for id in &record.tasks_completed {
                completed_in
                    .entry(normalize_task_id(id))
                    .or_insert(record.iteration);
            }
        }
        for (id, iteration) in &self.ticked_in {
            completed_in.entry(id.clone()).or_insert(*iteration);
        }
        ProjectDetail {
            summary: self.summary.clone(),
            plan: self.plan.clone(),
            completed_in,
            stats,
            config: self.config.clone(),
            notifications: self.notifications.iter().rev().cloned().collect(),
            skipped_rows: self.jsonl.skipped,
            cursor,
            build: self.build_detail(cursor),
        }
    }

    /// A page of the iterations table, filtered and sorted as `query` asks.
    pub fn iterations(&self, query: &IterationQuery, cursor: Cursor) -> IterationPage {
        let price = self.config.price_per_k_tokens().0;

        // Filter and sort references to the rows (and the log's own rows, built for this query);
        // only the requested page is cloned.
        let records = self.records();
        let mut rows: Vec<(Source, &IterationRecord)> = records
            .iter()
            .map(|(source, record)| (*source, record.as_ref()))
            .filter(|(_, record)| match query.status {
                None => true,
                Some(StatusFilter::Success) => record.status.is_success(),
                Some(StatusFilter::Error) => record.status.is_error(),
                Some(StatusFilter::Other) => {
                    !record.status.is_success() && !record.status.is_error()
                }
            })
            .filter(|(_, record)| query.health.is_none_or(|h| health(record) == h))
            .collect();
        match query.sort {
            IterationSort::Newest => {
                rows.sort_by_key(|(_, record)| std::cmp::Reverse((record.run, record.iteration)))
            }
            IterationSort::Oldest => rows.sort_by_key(|(_, record)| (record.run, record.iteration)),
            IterationSort::Tokens => rows.sort_by(|(_, a), (_, b)| {
                b.tokens.unwrap_or(0.0).total_cmp(&a.tokens.unwrap_or(0.0))
            }),
            IterationSort::Duration => rows.sort_by(|(_, a), (_, b)| {
                b.duration_seconds
                    .unwrap_or(0.0)
                    .total_cmp(&a.duration_seconds.unwrap_or(0.0))
            }),
        }
        let total = rows.len() as u32;
        let limit = match query.limit {
            0 => 50,
            n => n.min(MAX_PAGE),
        };
        let rows = rows
            .into_iter()
            .skip(query.offset as usize)
            .take(limit as usize)
            .map(|(source, record)| {
                let (has_log, source) = match source {
                    Source::Row(index) => (self.links.header_of(index).is_some(), RowSource::Jsonl),
                    Source::Log(_) => (true, RowSource::Log),
                };
                IterationRow {
                    health: health(record),
                    cost_usd: record.tokens.map(|k| k * price),
                    has_log,
                    source,
                    record: record.clone(),
                }
            })
            .collect();
        IterationPage {
            rows,
            total,
            cursor,
            forgotten: self.jsonl.forgotten,
        }
    }

    /// The stuck-loop rules' verdict as of `now` (Unix seconds): the finished rows, the running
    /// iteration (started when the previous row ended), the last write, and whether the loop
    /// runs, finished, or died leaving its pid file.
    pub fn alerts(&self, now: f64, thresholds: &Thresholds) -> Vec<Alert> {
        let status = self.summary.status;
        let finished = &self.jsonl.rows;
        let last_header = self.log.iterations.last();
        let current_unfinished = self
            .log
            .iterations
            .len()
            .checked_sub(1)
            .is_some_and(|last| !self.links.has_row(last));
        let running = match last_header {
            Some(header) if current_unfinished && status == Status::Running => {
                let started = finished
                    .last()
                    .and_then(|row| row.end.as_deref())
                    .and_then(parse_timestamp);
                started.map(|started| (header.position, started))
            }
            _ => None,
        };
        let completed =
            status == Status::Complete || last_header.is_some_and(|header| header.marks.complete);
        let liveness = if status == Status::Running {
            Liveness::Running
        } else if self.left_behind.is_some() && !completed {
            Liveness::Died
        } else {
            Liveness::NotRunning
        };
        let last_write = self
            .last_activity
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_secs_f64());
        let facts = LoopFacts {
            finished,
            running,
            last_write,
            now,
            liveness,
        };
        evaluate(&facts, thresholds)
    }

    /// Every iteration's run, number, times and named commit, oldest first: what reading its
    /// git history needs.
    pub fn iteration_spans(&self) -> Vec<crate::server::git::IterationSpan> {
        let mut spans: Vec<_> = self
            .records()
            .iter()
            .map(|(_, record)| {
                crate::server::git::IterationSpan::new(
                    record.run,
                    record.iteration,
                    record.start.as_deref(),
                    record.end.as_deref(),
                    record.commit.as_deref(),
                )
            })
            .collect();
        spans.sort_by_key(|span| (span.run, span.iteration));
        spans
    }

    /// Where iteration `iteration` of run `run` lives: its log range and its JSONL line.
    pub fn iteration_location(&self, run: u32, iteration: u32) -> Option<IterationLocation> {
        let row_index = self
            .jsonl
            .rows
            .iter()
            .position(|row| row.run == run && row.iteration == iteration);
        let log_index = match row_index {
            Some(r) => self.links.header_of(r),
            // No row yet (the current iteration): the log's own numbering.
            None => self
                .log
                .iterations
                .iter()
                .enumerate()
                .rev()
                .find(|(i, it)| {
                    !self.links.has_row(*i) && it.run == run && it.iteration == iteration
                })
                .map(|(i, _)| i),
        };
        let log = log_index
            .and_then(|i| self.log.iterations.get(i))
            .map(|it| (it.start, it.end));
        let row = row_index.and_then(|i| self.jsonl.offsets.get(i).copied());
        let long_lines = match log {
            Some((start, end)) => self.log.tail.long_lines(start, end.unwrap_or(u64::MAX)),
            None => Vec::new(),
        };
        (log.is_some() || row.is_some()).then(|| IterationLocation {
            dir: self.dir.clone(),
            log_rel: self.log.tail.rel().to_owned(),
            log,
            long_lines,
            jsonl_rel: self.jsonl.tail.rel().to_owned(),
            row,
        })
    }
}

/// What is needed to serve one iteration's details without holding the project's lock.
#[derive(Clone, Debug)]
pub struct IterationLocation {
    dir: PathBuf,
    log_rel: String,
    log: Option<(u64, Option<u64>)>,
    /// The over-long lines of the slice: read only as far as their cut.
    long_lines: Vec<(u64, u64)>,
    jsonl_rel: String,
    row: Option<u64>,
}

impl IterationLocation {
    /// Reads the iteration's log slice and its test output (file I/O: call off the lock).
    pub fn load(&self, run: u32, iteration: u32) -> io::Result<IterationLog> {
        let (text, truncated) = match self.log {
            Some((start, end)) => {
                // The current iteration runs to the end of the file (its unfinished line too).
                let end = match end {
                    Some(end) => end,
                    None => safe_open::open(&self.dir, &self.log_rel)?.metadata()?.len(),
                };
                let truncated = end.saturating_sub(start) > MAX_ITERATION_LOG;
                let stop = end.min(start.saturating_add(MAX_ITERATION_LOG));
                let text = read_lines(&self.dir, &self.log_rel, start, stop, &self.long_lines)?;
                (text, truncated)
            }
            None => (String::new(), false),
        };
        let test_output = match self.row {
            Some(offset) => {
                let bytes = read_range(&self.dir, &self.jsonl_rel, offset, None, MAX_SMALL_FILE)?;
                let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
                match parse_line(line) {
                    LineOutcome::Record(record) => record.test_output,
                    _ => None,
                }
            }
            None => None,
        };
        Ok(IterationLog {
            run,
            iteration,
            text,
            truncated,
            test_output,
        })
    }
}

/// What serving the published log needs, copied out of the project's state so the file is read
/// without holding the project's lock.
#[derive(Clone, Debug)]
pub struct LogView {
    dir: PathBuf,
    rel: String,
    /// The published offset: every byte before it was delivered as whole lines.
    end: u64,
    long_lines: Vec<(u64, u64)>,
}

impl LogView {
    /// The last `max` published bytes as whole lines (each cut at the line limit like the live
    /// stream), and whether earlier text was left out.
    pub fn text(&self, max: u64) -> io::Result<(String, bool)> {
        if self.end == 0 {
            // Nothing published (perhaps because the file is refused): nothing to open.
            return Ok((String::new(), false));
        }
        let start = self.end.saturating_sub(max);
        match read_lines(&self.dir, &self.rel, start, self.end, &self.long_lines) {
            Ok(text) => Ok((text, start > 0)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok((String::new(), false)),
            Err(error) => Err(error),
        }
    }

    /// The last `lines` published lines (from at most the last 1 MiB).
    pub fn backlog(&self, lines: u32) -> io::Result<String> {
        const MAX_BACKLOG_BYTES: u64 = 1024 * 1024;
        if lines == 0 || self.end == 0 {
            return Ok(String::new());
        }
        let (text, _) = self.text(MAX_BACKLOG_BYTES)?;
        // The text ends at a line boundary; count newlines back from it.
        let bytes = text.as_bytes();
        let mut seen = 0;
        for (index, byte) in bytes.iter().enumerate().rev().skip(1) {
            if *byte == b'\n' {
                seen += 1;
                if seen == lines {
                    return Ok(text[index + 1..].to_owned());
                }
            }
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, open, project};
    use super::super::FileKind;
    use crate::model::Cursor;
    use std::fs;

    /// A plan whose task `1.N` is ticked for each N in `ticked`.
    fn plan(ticked: &[u32]) -> String {
        (1..=3)
            .map(|n| {
                let mark = if ticked.contains(&n) { 'x' } else { ' ' };
                format!("- [{mark}] 1.{n}: task {n}\n")
            })
            .collect()
    }

    #[test]
    fn a_task_ticked_in_an_iteration_cut_short_gets_that_iteration() {
        let (_temp, dir) = project();
        let pid = dir.join(".ralph/ralph.pid");
        fs::write(&pid, std::process::id().to_string()).expect("pid");
        let log = dir.join(".ralph/ralph.log");
        append(&log, "=== Iteration 1/5 ===\n=== Iteration 2/5 ===\n");
        append(
            &dir.join(".ralph/iterations.jsonl"),
            "{\"iteration\":1,\"status\":\"success\"}\n",
        );
        let plan_file = dir.join("IMPLEMENTATION_PLAN.md");
        fs::write(&plan_file, plan(&[])).expect("plan");
        let mut state = open(&dir);
        let completed_in = |state: &super::ProjectState| {
            state
                .detail(Cursor::default())
                .completed_in
                .into_iter()
                .collect::<Vec<_>>()
        };

        // Ticked during iteration 2, read in the same batch as the next header.
        fs::write(&plan_file, plan(&[1])).expect("plan");
        append(&log, "=== Iteration 3/5 ===\n");
        state.update(&[FileKind::Log, FileKind::Plan]);
        assert_eq!(completed_in(&state), [("1.1".to_owned(), 2)]);

        // Iteration 3 ticks 1.2, then is killed: no row ever says so.
        fs::write(&plan_file, plan(&[1, 2])).expect("plan");
        state.update(&[FileKind::Plan]);
        append(&log, "^C\n\u{1f6d1} Interrupted by user\n");
        fs::remove_file(&pid).expect("remove pid");
        state.update(&[FileKind::Log, FileKind::Pid]);
        let expected = [("1.1".to_owned(), 2), ("1.2".to_owned(), 3)];
        assert_eq!(completed_in(&state), expected);

        // Ticked by hand with no loop running: no iteration did it.
        fs::write(&plan_file, plan(&[1, 2, 3])).expect("plan");
        state.update(&[FileKind::Plan]);
        assert_eq!(completed_in(&state), expected);

        // Unticked: forgotten.
        fs::write(&plan_file, plan(&[2, 3])).expect("plan");
        state.update(&[FileKind::Plan]);
        assert_eq!(completed_in(&state), [("1.2".to_owned(), 3)]);
    }

    #[test]
    fn backlog_is_the_last_published_lines() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(&log, "one\ntwo\nthree\nunfinished");
        let state = open(&dir);
        assert_eq!(
            state.log_view().backlog(2).expect("backlog"),
            "two\nthree\n"
        );
        assert_eq!(
            state.log_view().backlog(10).expect("backlog"),
            "one\ntwo\nthree\n"
        );
        assert_eq!(state.log_view().backlog(0).expect("backlog"), "");
    }
}
