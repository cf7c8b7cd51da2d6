//! Iterations as the log alone tells them: each log iteration no JSONL row stands for becomes a
//! row of its own (number, run, clocks, tokens, markers), so a loop that writes no
//! `iterations.jsonl` (or stopped writing it) still has its iterations listed, counted and
//! announced. A JSONL row always wins over its iteration's log (see [`super::pairing`]).

use std::borrow::Cow;

use crate::contract::ralph::{
    iterations::IterationRecord,
    log::{clock_span, format_clock},
};
use crate::model::protocol::ServerMessage;
use crate::server::clock::now;

use super::pairing::Source;
use super::tracking::{iteration_done, LogIteration};
use super::ProjectState;

impl LogIteration {
    /// The iteration as a row: what its header, lines and markers say. Times are the log's
    /// clocks (`HH:MM:SS`, local, no date); the duration is their difference.
    pub(super) fn record(&self) -> IterationRecord {
        let duration = match (self.start_clock, self.end_clock) {
            (Some(start), Some(end)) => Some(f64::from(clock_span(start, end))),
            _ => None,
        };
        IterationRecord {
            iteration: self.iteration,
            max: self.max,
            start: self.start_clock.map(format_clock),
            end: self.end_clock.map(format_clock),
            duration_seconds: duration,
            tokens: self.tokens,
            status: self.marks.status(),
            tasks_completed: Vec::new(),
            commit: None,
            commit_message: None,
            test_passed: self.marks.tests_passed,
            test_output: None,
            errors: self.marks.errors(),
            run: self.run,
        }
    }
}

impl ProjectState {
    /// Whether log iteration `index` has ended: another header follows it, or the loop said
    /// it is complete. The one still running is not listed.
    fn log_iteration_ended(&self, index: usize) -> bool {
        index + 1 < self.log.iterations.len()
            || self
                .log
                .iterations
                .get(index)
                .is_some_and(|it| it.marks.complete)
    }

    /// Every finished iteration, oldest first: the JSONL rows, and the ended log iterations no
    /// row stands for.
    pub(super) fn sources(&self) -> Vec<Source> {
        self.links.merge(self.log.iterations.len(), |index| {
            self.log_iteration_ended(index)
        })
    }

    /// The row `source` stands for (a kept JSONL row is borrowed, a log iteration's is built).
    pub(super) fn record_of(&self, source: Source) -> Option<Cow<'_, IterationRecord>> {
        match source {
            Source::Row(index) => self.jsonl.rows.get(index).map(Cow::Borrowed),
            Source::Log(index) => self
                .log
                .iterations
                .get(index)
                .map(|it| Cow::Owned(it.record())),
        }
    }

    /// Every finished iteration as a row, oldest first (see [`ProjectState::sources`]).
    pub(super) fn records(&self) -> Vec<(Source, Cow<'_, IterationRecord>)> {
        self.sources()
            .into_iter()
            .filter_map(|source| self.record_of(source).map(|record| (source, record)))
            .collect()
    }

    /// `iteration_completed` for the log iterations that ended since the last call and that no
    /// row stands for. A project that writes rows announces its iterations by its rows, so this
    /// speaks only while no row has been read (a row arriving after the next header would
    /// otherwise announce the same iteration twice).
    pub(super) fn announce_ended(&mut self) -> Vec<ServerMessage> {
        let ended = std::mem::take(&mut self.log.ended);
        if !self.jsonl.rows.is_empty() || self.jsonl.forgotten > 0 {
            return Vec::new();
        }
        let price = self.config.price_per_k_tokens().0;
        ended
            .into_iter()
            .filter(|&index| !self.links.has_row(index))
            .filter_map(|index| self.log.iterations.get(index))
            .map(|it| ServerMessage::IterationCompleted {
                project: self.id.clone(),
                timestamp: now(),
                data: iteration_done(&it.record(), price),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, open, project};
    use super::*;
    use crate::contract::ralph::{iterations::IterationStatus, stats::Health};
    use crate::model::{
        api_types::{IterationQuery, IterationSort, RowSource, MAX_PAGE},
        Cursor,
    };
    use crate::server::project::FileKind;

    /// Every listed row, oldest first: (run, iteration, source).
    fn listed(state: &ProjectState) -> Vec<(u32, u32, RowSource)> {
        let page = state.iterations(
            &IterationQuery {
                sort: IterationSort::Oldest,
                limit: MAX_PAGE,
                ..IterationQuery::default()
            },
            Cursor::default(),
        );
        page.rows
            .iter()
            .map(|row| (row.record.run, row.record.iteration, row.source))
            .collect()
    }

    const LOG: &str = "\
[09:00:00] === Iteration 1/5 ===\n\
[09:00:30] tokens used\n\
12,000\n\
[09:01:00] \u{2705} Tests passed\n\
[09:02:00] === Iteration 2 (loop 2/5) ===\n\
[09:02:10] \u{26a0}\u{fe0f} Agent exited with code 3\n\
[09:03:00] === Iteration 3/5 ===\n\
[09:03:40] still working\n";

    #[test]
    fn a_log_only_project_lists_its_ended_iterations() {
        let (_temp, dir) = project();
        append(&dir.join(".ralph/ralph.log"), LOG);
        let state = open(&dir);
        use RowSource::Log;
        assert_eq!(
            listed(&state),
            [(1, 1, Log), (1, 2, Log)],
            "iteration 3 is still running"
        );
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        let second = &page.rows[0];
        assert_eq!(second.record.iteration, 2);
        assert_eq!(second.record.status, IterationStatus::Error);
        assert_eq!(second.record.errors, ["agent exited with code 3"]);
        assert_eq!(second.health, Health::Failed);
        assert!(second.has_log);
        let first = &page.rows[1].record;
        assert_eq!(first.start.as_deref(), Some("09:00:00"));
        assert_eq!(first.end.as_deref(), Some("09:02:00"), "the next header");
        assert_eq!(first.duration_seconds, Some(120.0));
        assert_eq!(first.tokens, Some(12.0));
        assert_eq!(first.test_passed, Some(true));
        assert_eq!(first.status, IterationStatus::Success);
        assert_eq!(first.max, 5);

        let detail = state.detail(Cursor::default());
        assert_eq!(detail.stats.iterations, 2);
        assert_eq!(detail.stats.total_tokens, 12.0);
        assert_eq!(detail.stats.agent_seconds, 180.0);
        assert_eq!(
            state.summary().recent_health,
            [Health::Partial, Health::Failed]
        );
        assert!(state.iteration_location(1, 2).is_some());
    }

    #[test]
    fn a_completion_marker_ends_the_last_iteration_at_its_last_line() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(&log, LOG);
        let mut state = open(&dir);
        append(
            &log,
            "[09:05:00] \u{1f389} All tasks COMPLETE\n[09:05:02] bye\n",
        );
        let events = state.update(&[FileKind::Log]);
        let done: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                ServerMessage::IterationCompleted { data, .. } => Some(data.iteration),
                _ => None,
            })
            .collect();
        assert_eq!(done, [3]);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        let third = &page.rows[0].record;
        assert_eq!(third.iteration, 3);
        assert_eq!(
            third.end.as_deref(),
            Some("09:05:02"),
            "the last line's time"
        );
        assert_eq!(third.duration_seconds, Some(122.0));
        assert_eq!(third.status, IterationStatus::Success);

        // The next header does not announce it twice.
        append(&log, "[09:06:00] === Iteration 1/5 ===\n");
        let events = state.update(&[FileKind::Log]);
        assert!(!events
            .iter()
            .any(|e| matches!(e, ServerMessage::IterationCompleted { .. })));
    }

    #[test]
    fn the_next_header_announces_the_previous_iteration() {
        let (_temp, dir) = project();
        let log = dir.join(".ralph/ralph.log");
        append(&log, LOG);
        let mut state = open(&dir);
        append(
            &log,
            "tokens used: 2,000\n[09:04:00] === Iteration 4/5 ===\n",
        );
        let events = state.update(&[FileKind::Log]);
        let done: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ServerMessage::IterationCompleted { data, .. } => Some(data),
                _ => None,
            })
            .collect();
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].run, done[0].iteration), (1, 3));
        assert_eq!(done[0].tokens, Some(2.0));
        assert_eq!(done[0].duration_seconds, Some(60.0));
    }

    #[test]
    fn rows_win_and_the_log_fills_the_rest() {
        let (_temp, dir) = project();
        append(&dir.join(".ralph/ralph.log"), LOG);
        append(
            &dir.join(".ralph/iterations.jsonl"),
            "{\"iteration\":2,\"tokens\":7.0,\"status\":\"success\"}\n",
        );
        let mut state = open(&dir);
        use RowSource::{Jsonl, Log};
        assert_eq!(listed(&state), [(1, 1, Log), (1, 2, Jsonl)]);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert_eq!(
            page.rows[0].record.tokens,
            Some(7.0),
            "the row, not the log"
        );
        assert_eq!(page.total, 2);

        // A project that writes rows announces its iterations by its rows only.
        append(
            &dir.join(".ralph/ralph.log"),
            "[09:04:00] === Iteration 4/5 ===\n",
        );
        let events = state.update(&[FileKind::Log]);
        assert!(!events
            .iter()
            .any(|e| matches!(e, ServerMessage::IterationCompleted { .. })));
        assert_eq!(listed(&state).len(), 3, "iteration 3 ended, from the log");
    }

    #[test]
    fn restarted_numbers_start_a_new_run() {
        let (_temp, dir) = project();
        append(
            &dir.join(".ralph/ralph.log"),
            "=== Iteration 1/2 ===\n=== Iteration 2/2 ===\n=== Iteration 1/2 ===\n=== Iteration 2/2 ===\n",
        );
        let state = open(&dir);
        use RowSource::Log;
        assert_eq!(listed(&state), [(1, 1, Log), (1, 2, Log), (2, 1, Log)]);
        let page = state.iterations(&IterationQuery::default(), Cursor::default());
        assert_eq!(page.rows[0].record.start, None, "no clock, no time");
        assert_eq!(page.rows[0].record.duration_seconds, None);
    }
}
