//! Iteration health and loop statistics, in one place for the server and the browser, with the
//! ISO-8601 timestamp parser their durations need ([`parse_timestamp`]).
//!
//! Every number here is finite: an undefined ratio is `None`, and a sum too large for `f64`
//! saturates at `f64::MAX` instead of turning into infinity (which JSON cannot carry).

use std::{
    borrow::Borrow,
    collections::{HashMap, HashSet},
};

use serde::{Deserialize, Serialize};

use crate::contract::ralph::iterations::{IterationRecord, IterationStatus};
use crate::contract::ralph::plan::{normalize_task_id, Plan};

mod thin;

pub use thin::{thin_burndown, MAX_BURNDOWN_POINTS};

/// How many of the latest iterations set the pace of the projection.
pub const PROJECTION_WINDOW: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Failed,
    Productive,
    Partial,
}

/// `Failed`: status error, any error entry, or tests failed while no task was completed.
/// `Productive`: tasks completed and tests not failed. `Partial`: everything else.
pub fn health(record: &IterationRecord) -> Health {
    let tests_failed = record.test_passed == Some(false);
    let completed = !record.tasks_completed.is_empty();
    if record.status == IterationStatus::Error
        || !record.errors.is_empty()
        || (tests_failed && !completed)
    {
        Health::Failed
    } else if completed && !tests_failed {
        Health::Productive
    } else {
        Health::Partial
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    pub failed: u32,
    pub productive: u32,
    pub partial: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseTokens {
    /// Plan phase name; `""` collects iterations that completed no task known to the plan (and
    /// the plan's tasks written before its first heading, which also live in phase `""`).
    pub phase: String,
    /// Thousands of tokens.
    pub tokens: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurndownPoint {
    pub iteration: u32,
    pub run: u32,
    pub remaining: u32,
    /// Position in the full series (the starting point is 0): the chart's x, which stays right
    /// when the series is thinned ([`thin_burndown`]).
    #[serde(default)]
    pub at: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub iterations: u32,
    /// Thousands of tokens over the iterations that reported them.
    pub total_tokens: f64,
    /// Average over the iterations that reported tokens; `None` when none did.
    pub avg_tokens: Option<f64>,
    pub cost_usd: f64,
    /// Share (0..=1) of iterations whose status is success; `None` without iterations.
    pub success_rate: Option<f64>,
    /// Checked tasks in the plan.
    pub tasks_done: u32,
    /// All tasks in the plan, nested ones included.
    pub tasks_total: u32,
    /// Distinct task ids the iterations reported completed (plan or not): the velocity numerator.
    pub tasks_reported: u32,
    /// Error entries across all iterations.
    pub errors: u32,
    pub health: HealthCounts,
    /// Sum of iteration durations (`duration_seconds`, else `end - start`).
    pub agent_seconds: f64,
    /// Earliest start to latest end; `None` when either is unknown or they are out of order.
    pub wall_seconds: Option<f64>,
    pub velocity_per_agent_hour: Option<f64>,
    pub velocity_per_wall_hour: Option<f64>,
    pub projected_iterations_left: Option<u32>,
    pub projected_seconds_left: Option<f64>,
    /// Unix seconds.
    pub projected_completion: Option<f64>,
    /// Cost so far plus the projected iterations at the average token count.
    pub projected_total_cost: Option<f64>,
    /// Plan phases in plan order (only those that received tokens), then `""`.
    pub tokens_by_phase: Vec<PhaseTokens>,
    /// A starting point (one iteration before the first row, or 0/0 without rows), then one point
    /// per iteration.
    pub burndown: Vec<BurndownPoint>,
}

/// Statistics of `records` (in file order, runs assigned) against `plan`.
///
/// `price_per_k_tokens` is USD per thousand tokens (a negative or non-finite price counts as 0).
/// Projections divide the plan's unchecked tasks by the average number of newly reported task ids
/// per iteration over the last [`PROJECTION_WINDOW`] iterations; they are `None` when that pace is
/// 0 or the plan has no tasks, and 0 when every plan task is checked.
pub fn compute_stats(
    records: &[IterationRecord],
    plan: &Plan,
    price_per_k_tokens: f64,
    now_unix: f64,
) -> Stats {
    stats_over(records, plan, price_per_k_tokens, now_unix)
}

/// [`compute_stats`] over records held or borrowed (the server mixes the rows it keeps with
/// iterations built from the log).
pub fn stats_over<R: Borrow<IterationRecord>>(
    records: &[R],
    plan: &Plan,
    price_per_k_tokens: f64,
    now_unix: f64,
) -> Stats {
    let price = if price_per_k_tokens.is_finite() && price_per_k_tokens > 0.0 {
        price_per_k_tokens
    } else {
        0.0
    };
    let progress = plan.progress();
    let index = PlanIndex::new(plan);

    let mut health_counts = HealthCounts::default();
    let mut successes = 0usize;
    let mut errors = 0u32;
    let mut total_tokens = 0.0;
    let mut token_rows = 0usize;
    let mut agent_seconds = 0.0;
    let mut duration_rows = 0usize;
    let mut first_start: Option<f64> = None;
    let mut last_end: Option<f64> = None;
    let mut reported: HashSet<String> = HashSet::new();
    let mut burned: HashSet<String> = HashSet::new();
    // Newly reported ids per iteration, for the projection window.
    let mut new_per_row: Vec<usize> = Vec::with_capacity(records.len());
    let mut phase_tokens = vec![0.0; index.buckets.len()];
    let mut phase_used = vec![false; index.buckets.len()];
    let mut burndown = Vec::with_capacity(records.len().saturating_add(1));
    burndown.push(BurndownPoint {
        iteration: records
            .first()
            .map_or(0, |r| r.borrow().iteration.saturating_sub(1)),
        run: records.first().map_or(0, |r| r.borrow().run),
        remaining: progress.tasks_total,
        at: 0,
    });

    for record in records {
        let record: &IterationRecord = record.borrow();
        match health(record) {
            Health::Failed => health_counts.failed = health_counts.failed.saturating_add(1),
            Health::Productive => {
                health_counts.productive = health_counts.productive.saturating_add(1)
            }
            Health::Partial => health_counts.partial = health_counts.partial.saturating_add(1),
        }
        if record.status == IterationStatus::Success {
            successes += 1;
        }
        errors = errors.saturating_add(saturating_u32(record.errors.len()));

        let start = record.start.as_deref().and_then(parse_timestamp);
        let end = record.end.as_deref().and_then(parse_timestamp);
        first_start = min_option(first_start, start);
        last_end = max_option(last_end, end);
        let duration = record.duration_seconds.or(match (start, end) {
            (Some(start), Some(end)) if end >= start => Some(end - start),
            _ => None,
        });
        if let Some(duration) = duration {
            agent_seconds = saturate(agent_seconds + duration);
            duration_rows += 1;
        }

        let ids = row_ids(record);
        let mut new_ids = 0;
        for id in &ids {
            if reported.insert(id.clone()) {
                new_ids += 1;
            }
            if index.phase_of.contains_key(id) {
                burned.insert(id.clone());
            }
        }
        new_per_row.push(new_ids);
        burndown.push(BurndownPoint {
            iteration: record.iteration,
            run: record.run,
            remaining: progress
                .tasks_total
                .saturating_sub(saturating_u32(burned.len())),
            at: saturating_u32(burndown.len()),
        });

        if let Some(tokens) = record.tokens {
            total_tokens = saturate(total_tokens + tokens);
            token_rows += 1;
            let mut phases: Vec<usize> = ids
                .iter()
                .filter_map(|id| index.phase_of.get(id).copied())
                .collect();
            phases.sort_unstable();
            phases.dedup();
            if phases.is_empty() {
                phases.push(index.unmatched);
            }
            let share = tokens / phases.len() as f64;
            for bucket in phases {
                if let (Some(sum), Some(used)) =
                    (phase_tokens.get_mut(bucket), phase_used.get_mut(bucket))
                {
                    *sum = saturate(*sum + share);
                    *used = true;
                }
            }
        }
    }

    let iterations = records.len();
    let avg_tokens = ratio(total_tokens, token_rows as f64);
    let avg_seconds = ratio(agent_seconds, duration_rows as f64);
    let cost_usd = saturate(total_tokens * price);
    let wall_seconds = match (first_start, last_end) {
        (Some(start), Some(end)) if end >= start => Some(end - start),
        _ => None,
    };
    let tasks_reported = saturating_u32(reported.len());
    let per_hour = |seconds: f64| ratio(f64::from(tasks_reported), seconds / 3600.0);

    let window = new_per_row
        .get(new_per_row.len().saturating_sub(PROJECTION_WINDOW)..)
        .unwrap_or_default();
    let pace = ratio(window.iter().sum::<usize>() as f64, window.len() as f64);
    let remaining = progress.tasks_total.saturating_sub(progress.tasks_done);
    let projected_iterations_left = if progress.tasks_total == 0 {
        None
    } else if remaining == 0 {
        Some(0)
    } else {
        pace.filter(|&pace| pace > 0.0)
            // `as` saturates, and the quotient is finite and positive here.
            .map(|pace| (f64::from(remaining) / pace).ceil() as u32)
    };
    let projected_seconds_left = projected_iterations_left.and_then(|left| match left {
        0 => Some(0.0),
        _ => avg_seconds.and_then(|avg| finite(f64::from(left) * avg)),
    });
    let projected_completion =
        projected_seconds_left.and_then(|seconds| finite(now_unix + seconds));
    let projected_total_cost = projected_iterations_left.and_then(|left| match left {
        0 => Some(cost_usd),
        _ => avg_tokens.and_then(|avg| finite(cost_usd + f64::from(left) * avg * price)),
    });

    let tokens_by_phase = index
        .buckets
        .into_iter()
        .zip(phase_tokens.into_iter().zip(phase_used))
        .filter(|(_, (_, used))| *used)
        .map(|(phase, (tokens, _))| PhaseTokens { phase, tokens })
        .collect();

    Stats {
        iterations: saturating_u32(iterations),
        total_tokens,
        avg_tokens,
        cost_usd,
        success_rate: ratio(successes as f64, iterations as f64),
        tasks_done: progress.tasks_done,
        tasks_total: progress.tasks_total,
        tasks_reported,
        errors,
        health: health_counts,
        agent_seconds,
        wall_seconds,
        velocity_per_agent_hour: per_hour(agent_seconds),
        velocity_per_wall_hour: wall_seconds.and_then(per_hour),
        projected_iterations_left,
        projected_seconds_left,
        projected_completion,
        projected_total_cost,
        tokens_by_phase,
        burndown,
    }
}

/// Where each plan task id lives, by bucket: one bucket per distinct phase name in plan order,
/// with `""` (no heading, or no matching task) last.
struct PlanIndex {
    buckets: Vec<String>,
    phase_of: HashMap<String, usize>,
    unmatched: usize,
}

impl PlanIndex {
    fn new(plan: &Plan) -> Self {
        let mut buckets: Vec<String> = Vec::new();
        for phase in &plan.phases {
            if !phase.name.is_empty() && !buckets.contains(&phase.name) {
                buckets.push(phase.name.clone());
            }
        }
        let unmatched = buckets.len();
        buckets.push(String::new());
        let mut phase_of = HashMap::new();
        for phase in &plan.phases {
            let bucket = buckets
                .iter()
                .position(|name| *name == phase.name)
                .unwrap_or(unmatched);
            for id in phase.tasks.iter().filter_map(|task| task.id.as_deref()) {
                let id = normalize_task_id(id);
                if !id.is_empty() {
                    // A duplicated id belongs to its first phase.
                    phase_of.entry(id).or_insert(bucket);
                }
            }
        }
        PlanIndex {
            buckets,
            phase_of,
            unmatched,
        }
    }
}

/// The record's completed ids, normalized, without empties or repeats.
fn row_ids(record: &IterationRecord) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in &record.tasks_completed {
        let id = normalize_task_id(id);
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    if denominator > 0.0 {
        finite(numerator / denominator)
    } else {
        None
    }
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// Sums of finite, non-negative inputs can only overflow upwards.
fn saturate(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.min(f64::MAX)
    }
}

fn saturating_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn min_option(current: Option<f64>, candidate: Option<f64>) -> Option<f64> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_option(current: Option<f64>, candidate: Option<f64>) -> Option<f64> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

// ISO-8601 timestamps as loop scripts write them (`date -Iseconds`, Python `isoformat()`),
// turned into unix seconds for durations. Pure arithmetic: no clock, no time zone database.

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM|±HHMM|±HH]`.
///
/// A space (or lower-case `t`) may replace the `T`, `,` may replace the `.` of the fraction, and
/// surrounding whitespace is ignored. A timestamp without an offset is taken as UTC: the loop
/// scripts' local zone is unknown here, and durations between two such timestamps stay right.
/// Anything else (a bare date, out-of-range fields, trailing text) is `None`.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let bytes = text.trim().as_bytes();
    let mut cursor = Cursor { bytes, pos: 0 };

    let year = cursor.digits(4)?;
    cursor.expect(b'-')?;
    let month = cursor.digits(2)?;
    cursor.expect(b'-')?;
    let day = cursor.digits(2)?;
    match cursor.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let hour = cursor.digits(2)?;
    cursor.expect(b':')?;
    let minute = cursor.digits(2)?;
    cursor.expect(b':')?;
    let second = cursor.digits(2)?;

    let mut fraction = 0.0;
    if matches!(cursor.peek(), Some(b'.' | b',')) {
        cursor.pos += 1;
        fraction = cursor.fraction()?;
    }

    let offset_seconds = match cursor.next() {
        None => 0,
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hours = cursor.digits(2)?;
            let minutes = match cursor.peek() {
                None => 0,
                Some(b':') => {
                    cursor.pos += 1;
                    cursor.digits(2)?
                }
                Some(_) => cursor.digits(2)?,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = i64::from(hours) * 3600 + i64::from(minutes) * 60;
            if sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        Some(_) => return None,
    };
    if cursor.peek().is_some() {
        return None;
    }

    // 60 admits a leap second; it lands on the next minute, which is what durations want.
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
            - offset_seconds;
    // Years are four digits, so these magnitudes are far inside f64's exact integer range.
    Some(seconds as f64 + fraction)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// Exactly `count` ASCII digits (count <= 4, so the value fits a u32).
    fn digits(&mut self, count: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..count {
            let byte = self.next()?;
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        Some(value)
    }

    /// One or more digits after the decimal mark; digits past nanoseconds are read but ignored.
    fn fraction(&mut self) -> Option<f64> {
        let start = self.pos;
        let mut value = 0.0;
        let mut scale = 1.0;
        while let Some(byte) = self.peek().filter(u8::is_ascii_digit) {
            if self.pos - start < 9 {
                scale /= 10.0;
                value += f64::from(byte - b'0') * scale;
            }
            self.pos += 1;
        }
        (self.pos > start).then_some(value)
    }
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ralph::iterations::tests::FIXTURE;
    use crate::contract::ralph::iterations::{parse_all, parse_line, LineOutcome};
    use crate::contract::ralph::plan::parse_plan;
    use proptest::prelude::*;

    const PLAN: &str = "# Plan
## Phase 1: Setup
- [x] 1.1: Scaffold
- [x] 1.2: Config
- [x] 1.3: CI
## Phase 2: Features
- [x] 2.1: Feature A
- [ ] 2.2: Feature B
- [ ] 2.3: Feature C
  - [ ] sub detail
## Phase 3: Docs
- [ ] 3.1 - Docs
STATUS: IN PROGRESS
";
    const PRICE: f64 = 0.01;
    const NOW: f64 = 1_705_330_000.0;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    #[track_caller]
    fn assert_close(actual: Option<f64>, expected: f64) {
        match actual {
            Some(value) if close(value, expected) => {}
            _ => panic!("expected {expected}, got {actual:?}"),
        }
    }

    fn fixture_stats() -> Stats {
        let (records, _) = parse_all(FIXTURE);
        compute_stats(&records, &parse_plan(PLAN), PRICE, NOW)
    }

    #[test]
    fn borrowed_records_give_the_same_stats() {
        let (records, _) = parse_all(FIXTURE);
        let borrowed: Vec<std::borrow::Cow<'_, IterationRecord>> =
            records.iter().map(std::borrow::Cow::Borrowed).collect();
        assert_eq!(
            stats_over(&borrowed, &parse_plan(PLAN), PRICE, NOW),
            compute_stats(&records, &parse_plan(PLAN), PRICE, NOW)
        );
    }

    #[test]
    fn health_of_each_fixture_row() {
        let (records, _) = parse_all(FIXTURE);
        let healths: Vec<Health> = records.iter().map(health).collect();
        assert_eq!(
            healths,
            [
                Health::Productive, // 1.1, tests passed
                Health::Productive, // 1.2 and 1.3
                Health::Failed,     // status error
                Health::Failed,     // tests failed, nothing done
                Health::Partial,    // tasks done but tests failed
                Health::Partial,    // "timeout", nothing done, no errors
                Health::Productive, // upper-case SUCCESS, 2.2
            ]
        );
    }

    #[test]
    fn health_rules() {
        let LineOutcome::Record(base) = parse_line(b"{\"iteration\":1}") else {
            panic!("minimal row should parse");
        };
        assert_eq!(health(&base), Health::Partial);
        let done = IterationRecord {
            tasks_completed: vec!["1.1".into()],
            ..base.clone()
        };
        assert_eq!(health(&done), Health::Productive);
        let errored = IterationRecord {
            errors: vec!["boom".into()],
            ..done.clone()
        };
        assert_eq!(
            health(&errored),
            Health::Failed,
            "errors fail even with progress"
        );
        let status_error = IterationRecord {
            status: IterationStatus::Error,
            ..done.clone()
        };
        assert_eq!(health(&status_error), Health::Failed);
        let red = IterationRecord {
            test_passed: Some(false),
            ..base
        };
        assert_eq!(health(&red), Health::Failed);
    }

    #[test]
    fn fixture_counts_and_money() {
        let stats = fixture_stats();
        assert_eq!(stats.iterations, 7);
        assert!(
            close(stats.total_tokens, 1462.698),
            "{}",
            stats.total_tokens
        );
        assert_close(stats.avg_tokens, 1462.698 / 6.0);
        assert!(close(stats.cost_usd, 14.62698), "{}", stats.cost_usd);
        assert_close(stats.success_rate, 5.0 / 7.0);
        assert_eq!((stats.tasks_done, stats.tasks_total), (4, 8));
        // 1.1, 1.2, 1.3, 2.1, 9 (not in the plan) and 2.2; 1.1 again in run 2 is no new task.
        assert_eq!(stats.tasks_reported, 6);
        assert_eq!(stats.errors, 2);
        assert_eq!(
            stats.health,
            HealthCounts {
                failed: 2,
                productive: 3,
                partial: 2,
            }
        );
    }

    #[test]
    fn fixture_time_and_velocity() {
        let stats = fixture_stats();
        // Row 5 has no duration_seconds; its 20 minutes come from start and end.
        assert!(
            close(stats.agent_seconds, 5100.0),
            "{}",
            stats.agent_seconds
        );
        // 10:00:00Z to 11:45:00Z, across the restart and the offset-less timestamps.
        assert_close(stats.wall_seconds, 6300.0);
        assert_close(stats.velocity_per_agent_hour, 6.0 / (5100.0 / 3600.0));
        assert_close(stats.velocity_per_wall_hour, 6.0 / (6300.0 / 3600.0));
    }

    #[test]
    fn fixture_projection() {
        let stats = fixture_stats();
        // 4 unchecked tasks at 6 new ids per 7 iterations: 4.67, rounded up.
        assert_eq!(stats.projected_iterations_left, Some(5));
        let seconds = 5.0 * 5100.0 / 7.0;
        assert_close(stats.projected_seconds_left, seconds);
        assert_close(stats.projected_completion, NOW + seconds);
        assert_close(
            stats.projected_total_cost,
            14.62698 + 5.0 * (1462.698 / 6.0) * PRICE,
        );
    }

    #[test]
    fn fixture_tokens_by_phase() {
        let stats = fixture_stats();
        let phases: Vec<&str> = stats
            .tokens_by_phase
            .iter()
            .map(|p| p.phase.as_str())
            .collect();
        assert_eq!(phases, ["Phase 1: Setup", "Phase 2: Features", ""]);
        let tokens: Vec<f64> = stats.tokens_by_phase.iter().map(|p| p.tokens).collect();
        // Row 7 (45k) is split between 1.1 and 2.2; row 5 (40k) has 2.1 and an unknown id;
        // rows 3 and 6 completed nothing; row 4 reported no tokens.
        let expected = [50.5 + 62.698 + 22.5, 40.0 + 22.5, 1234.5 + 30.0];
        for (actual, expected) in tokens.iter().zip(expected) {
            assert!(close(*actual, expected), "{tokens:?}");
        }
        assert_eq!(tokens.len(), 3);
    }

    #[test]
    fn tokens_split_by_phase_not_by_task() {
        let line =
            br#"{"iteration":1,"tokens":30,"tasks_completed":["1.1","1.2","Task 2.1","1.1"]}"#;
        let LineOutcome::Record(record) = parse_line(&line[..]) else {
            panic!("row should parse");
        };
        let stats = compute_stats(&[record], &parse_plan(PLAN), PRICE, NOW);
        let split: Vec<(&str, f64)> = stats
            .tokens_by_phase
            .iter()
            .map(|p| (p.phase.as_str(), p.tokens))
            .collect();
        assert_eq!(
            split,
            [("Phase 1: Setup", 15.0), ("Phase 2: Features", 15.0)]
        );
        assert_eq!(
            stats.tasks_reported, 3,
            "a repeated id in one row counts once"
        );
    }

    #[test]
    fn fixture_burndown() {
        let stats = fixture_stats();
        let point = |iteration, run, remaining, at| BurndownPoint {
            iteration,
            run,
            remaining,
            at,
        };
        assert_eq!(
            stats.burndown,
            [
                point(0, 1, 8, 0),
                point(1, 1, 7, 1),
                point(2, 1, 5, 2),
                point(3, 1, 5, 3),
                point(4, 1, 5, 4),
                point(1, 2, 4, 5), // 2.1 counts, task 9 is not in the plan
                point(2, 2, 4, 6),
                point(3, 2, 3, 7), // 1.1 again is not counted twice
            ]
        );
    }

    #[test]
    fn empty_inputs() {
        let stats = compute_stats(&[], &Plan::default(), PRICE, NOW);
        assert_eq!(
            stats,
            Stats {
                iterations: 0,
                total_tokens: 0.0,
                avg_tokens: None,
                cost_usd: 0.0,
                success_rate: None,
                tasks_done: 0,
                tasks_total: 0,
                tasks_reported: 0,
                errors: 0,
                health: HealthCounts::default(),
                agent_seconds: 0.0,
                wall_seconds: None,
                velocity_per_agent_hour: None,
                velocity_per_wall_hour: None,
                projected_iterations_left: None,
                projected_seconds_left: None,
                projected_completion: None,
                projected_total_cost: None,
                tokens_by_phase: vec![],
                burndown: vec![BurndownPoint {
                    iteration: 0,
                    run: 0,
                    remaining: 0,
                    at: 0,
                }],
            }
        );
    }

    #[test]
    fn projection_edges() {
        let (records, _) = parse_all(FIXTURE);
        let finished = parse_plan("## P\n- [x] 1.1: a\n- [x] 1.2: b\n");
        let stats = compute_stats(&records, &finished, PRICE, NOW);
        assert_eq!(stats.projected_iterations_left, Some(0));
        assert_eq!(stats.projected_seconds_left, Some(0.0));
        assert_eq!(stats.projected_completion, Some(NOW));
        assert_eq!(stats.projected_total_cost, Some(stats.cost_usd));

        // The last ten iterations completed nothing: no pace, no projection, even though the
        // first one did.
        let mut stalled = records[..1].to_vec();
        for _ in 0..PROJECTION_WINDOW {
            stalled.push(records[5].clone());
        }
        let stats = compute_stats(&stalled, &parse_plan(PLAN), PRICE, f64::NAN);
        assert_eq!(stats.tasks_reported, 1);
        assert_eq!(stats.projected_iterations_left, None);
        assert_eq!(stats.projected_completion, None);
        assert_eq!(stats.projected_total_cost, None);

        // A non-finite "now" or price never leaks.
        let stats = compute_stats(&records, &parse_plan(PLAN), f64::INFINITY, f64::NAN);
        assert_eq!(stats.cost_usd, 0.0);
        assert_eq!(stats.projected_iterations_left, Some(5));
        assert!(stats.projected_seconds_left.is_some());
        assert_eq!(stats.projected_completion, None);
    }

    #[test]
    fn huge_values_saturate() {
        let LineOutcome::Record(mut record) = parse_line(b"{\"iteration\":1}") else {
            panic!("minimal row should parse");
        };
        record.tokens = Some(f64::MAX);
        record.duration_seconds = Some(f64::MAX);
        record.tasks_completed = vec!["1.1".into()];
        let records = vec![record.clone(), record];
        let stats = compute_stats(&records, &parse_plan(PLAN), 2.0, NOW);
        assert_eq!(stats.total_tokens, f64::MAX);
        assert_eq!(stats.agent_seconds, f64::MAX);
        assert_eq!(stats.cost_usd, f64::MAX);
        assert_eq!(
            stats.projected_seconds_left, None,
            "overflows instead of lying"
        );
        assert_eq!(stats.projected_total_cost, None);
        assert_eq!(stats.tokens_by_phase[0].tokens, f64::MAX);
    }

    #[test]
    fn serializes_snake_case() {
        assert_eq!(
            serde_json::to_string(&Health::Productive).ok().as_deref(),
            Some("\"productive\"")
        );
        let stats = fixture_stats();
        let json = serde_json::to_string(&stats).unwrap_or_default();
        assert!(json.contains("\"velocity_per_wall_hour\":"), "{json}");
        let back: Option<Stats> = serde_json::from_str(&json).ok();
        // serde_json may round the last bit of a float, so compare the exact parts.
        let back = back.unwrap_or_else(|| panic!("does not read back: {json}"));
        assert_eq!(back.burndown, stats.burndown);
        assert_eq!(back.health, stats.health);
        assert_eq!(back.projected_iterations_left, Some(5));
        assert_close(back.projected_total_cost, 26.81613);
    }

    fn arbitrary_record() -> impl Strategy<Value = IterationRecord> {
        (
            (0u32..8, 0u32..3),
            proptest::option::of(prop_oneof![0.0..1e4f64, Just(f64::MAX)]),
            proptest::option::of(prop_oneof![0.0..1e4f64, Just(f64::MAX)]),
            prop_oneof![
                Just(IterationStatus::Success),
                Just(IterationStatus::Error),
                Just(IterationStatus::Other(String::new())),
            ],
            proptest::collection::vec(
                prop_oneof![Just("1.1"), Just("1.2"), Just("2.1"), Just("9"), Just("**")],
                0..4,
            ),
            proptest::option::of(any::<bool>()),
            0usize..3,
            proptest::option::of(prop_oneof![
                Just("2024-01-15T10:00:00Z"),
                Just("2024-01-15T12:00:00+01:00"),
                Just("garbage"),
            ]),
        )
            .prop_map(
                |((iteration, run), duration, tokens, status, ids, passed, errors, stamp)| {
                    IterationRecord {
                        iteration,
                        max: 0,
                        start: stamp.map(str::to_owned),
                        end: Some("2024-01-15T10:30:00Z".to_owned()),
                        duration_seconds: duration,
                        tokens,
                        status,
                        tasks_completed: ids.into_iter().map(str::to_owned).collect(),
                        commit: None,
                        commit_message: None,
                        test_passed: passed,
                        test_output: None,
                        errors: vec!["e".to_owned(); errors],
                        run,
                    }
                },
            )
    }

    fn check_invariants(records: &[IterationRecord], stats: &Stats) -> Result<(), TestCaseError> {
        let health = &stats.health;
        prop_assert_eq!(
            u64::from(health.failed) + u64::from(health.productive) + u64::from(health.partial),
            records.len() as u64
        );
        prop_assert_eq!(stats.burndown.len(), records.len() + 1);
        for pair in stats.burndown.windows(2) {
            prop_assert!(pair[1].remaining <= pair[0].remaining);
        }
        prop_assert!(stats
            .burndown
            .iter()
            .all(|p| p.remaining <= stats.tasks_total));
        if let Some(rate) = stats.success_rate {
            prop_assert!((0.0..=1.0).contains(&rate));
        }
        prop_assert!(stats.tasks_done <= stats.tasks_total);
        let phase_sum: f64 = stats.tokens_by_phase.iter().map(|p| p.tokens).sum();
        if stats.total_tokens < 1e300 {
            prop_assert!(
                (phase_sum - stats.total_tokens).abs() <= 1e-6 * stats.total_tokens.max(1.0)
            );
        }
        let floats = [stats.total_tokens, stats.cost_usd, stats.agent_seconds]
            .into_iter()
            .chain(stats.tokens_by_phase.iter().map(|p| p.tokens))
            .map(Some)
            .chain([
                stats.avg_tokens,
                stats.success_rate,
                stats.wall_seconds,
                stats.velocity_per_agent_hour,
                stats.velocity_per_wall_hour,
                stats.projected_seconds_left,
                stats.projected_completion,
                stats.projected_total_cost,
            ]);
        for value in floats.flatten() {
            prop_assert!(value.is_finite() && value >= 0.0, "{:?}", stats);
        }
        // What the server sends, the browser can read.
        let json = serde_json::to_string(stats).unwrap_or_default();
        prop_assert!(serde_json::from_str::<Stats>(&json).is_ok(), "{}", json);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_records_keep_invariants(
            records in proptest::collection::vec(arbitrary_record(), 0..25),
            price in prop_oneof![0.0..1.0f64, Just(f64::NAN), Just(-1.0)],
            now in prop_oneof![0.0..2e9f64, Just(f64::INFINITY)],
        ) {
            let plan = parse_plan(PLAN);
            let stats = compute_stats(&records, &plan, price, now);
            check_invariants(&records, &stats)?;
        }

        #[test]
        fn random_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (records, _) = parse_all(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let stats = compute_stats(&records, &parse_plan(&text), PRICE, NOW);
            check_invariants(&records, &stats)?;
        }
    }

    // ---- timestamps ----

    #[test]
    fn known_instants() {
        // Reference values from `date -u -d ... +%s`.
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_timestamp("2024-01-15T10:30:00Z"),
            Some(1_705_314_600.0)
        );
        assert_eq!(parse_timestamp("2000-02-29T23:59:59Z"), Some(951_868_799.0));
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59Z"),
            Some(-1.0),
            "before the epoch"
        );
        assert_eq!(
            parse_timestamp("2038-01-19T03:14:08Z"),
            Some(2_147_483_648.0)
        );
    }

    #[test]
    fn offsets_separators_and_fractions() {
        let utc = 1_705_314_600.0;
        assert_eq!(parse_timestamp("2024-01-15T11:30:00+01:00"), Some(utc));
        assert_eq!(parse_timestamp("2024-01-15T11:30:00+0100"), Some(utc));
        assert_eq!(parse_timestamp("2024-01-15T11:30:00+01"), Some(utc));
        assert_eq!(parse_timestamp("2024-01-15T05:00:00-05:30"), Some(utc));
        assert_eq!(
            parse_timestamp("2024-01-15 10:30:00"),
            Some(utc),
            "no offset is UTC"
        );
        assert_eq!(parse_timestamp("  2024-01-15t10:30:00z \n"), Some(utc));
        assert_eq!(parse_timestamp("2024-01-15T10:30:00.25Z"), Some(utc + 0.25));
        assert_eq!(parse_timestamp("2024-01-15T10:30:00,5"), Some(utc + 0.5));
        let micros = parse_timestamp("2024-01-15T10:30:00.123456").unwrap_or(0.0);
        assert!((micros - (utc + 0.123_456)).abs() < 1e-6, "{micros}");
        let long = parse_timestamp("2024-01-15T10:30:00.1234567890123+00:00").unwrap_or(0.0);
        assert!((long - (utc + 0.123_456_789)).abs() < 1e-6, "{long}");
        assert_eq!(
            parse_timestamp("2016-12-31T23:59:60Z"),
            parse_timestamp("2017-01-01T00:00:00Z"),
            "a leap second rolls over"
        );
    }

    #[test]
    fn rejects_malformed() {
        for text in [
            "",
            "2024",
            "2024-01-15",
            "2024-01-15T10:30",
            "2024-01-15T10:30:00.",
            "2024-01-15T10:30:00Zjunk",
            "2024-01-15T10:30:00+1",
            "2024-01-15T10:30:00+01:",
            "2024-01-15T10:30:00+24:00",
            "2024-01-15T10:30:00+01:60",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-15T24:00:00Z",
            "2024-01-15T10:60:00Z",
            "2024-01-15T10:30:61Z",
            "2024-01-15X10:30:00Z",
            "2024/01/15T10:30:00Z",
            "+2024-01-15T10:30:00Z",
            "２０２４-01-15T10:30:00Z",
            "1705314600",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text:?}");
        }
        assert!(
            parse_timestamp("2000-02-29T00:00:00Z").is_some(),
            "2000 is leap"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
            if let Some(value) = parse_timestamp(&text) {
                prop_assert!(value.is_finite());
            }
        }

        #[test]
        fn fields_add_up(
            year in 0u32..=9999,
            month in 1u32..=12,
            day in 1u32..=28,
            hour in 0u32..=23,
            minute in 0u32..=59,
            second in 0u32..=59,
            offset_minutes in -1439i32..=1439,
        ) {
            let midnight = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
            let base = parse_timestamp(&midnight);
            prop_assert!(base.is_some());
            let base = base.unwrap_or(0.0);
            prop_assert_eq!(base.rem_euclid(86_400.0), 0.0);
            let time = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
            let in_day = f64::from(hour * 3600 + minute * 60 + second);
            prop_assert_eq!(parse_timestamp(&format!("{time}Z")), Some(base + in_day));
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            let magnitude = offset_minutes.unsigned_abs();
            let zoned = format!("{time}{sign}{:02}:{:02}", magnitude / 60, magnitude % 60);
            let expected = base + in_day - f64::from(offset_minutes) * 60.0;
            prop_assert_eq!(parse_timestamp(&zoned), Some(expected));
        }

        #[test]
        fn consecutive_days_are_one_day_apart(year in 0u32..=9998, month in 1u32..=12) {
            // The last day of a month is followed by the first of the next one.
            let last = days_in_month(year, month);
            let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
            let end = parse_timestamp(&format!("{year:04}-{month:02}-{last:02}T00:00:00Z"));
            let start = parse_timestamp(&format!("{next_year:04}-{next_month:02}-01T00:00:00Z"));
            prop_assert!(end.is_some() && start.is_some());
            prop_assert_eq!(start.unwrap_or(0.0) - end.unwrap_or(0.0), 86_400.0);
            let past_end = format!("{year:04}-{month:02}-{:02}T00:00:00Z", last + 1);
            prop_assert_eq!(parse_timestamp(&past_end), None);
        }
    }
}
