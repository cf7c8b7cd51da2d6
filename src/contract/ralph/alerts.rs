//! Stuck and struggling loops, told from what the loop wrote: pure rules over the finished
//! iterations, the running one, the log's last write and the loop's liveness. Each alert says
//! what it saw (its evidence), so an operator can judge it without opening the log.

use serde::{Deserialize, Serialize};

use super::iterations::IterationRecord;

/// Which rule fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The running iteration has taken far longer than the recent ones.
    LongIteration,
    /// The loop runs but its log has been silent.
    SilentLog,
    /// Iterations in a row completed no task.
    NoProgress,
    /// The same error in consecutive iterations.
    RepeatedError,
    /// Tests failed in consecutive iterations.
    FailingTests,
    /// The loop's process is gone without a completion or a stop.
    Died,
    /// A budget is 80 % used.
    BudgetWarning,
    /// A budget is used up.
    BudgetExceeded,
}

impl AlertKind {
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::LongIteration => "long iteration",
            AlertKind::SilentLog => "silent log",
            AlertKind::NoProgress => "no progress",
            AlertKind::RepeatedError => "repeated error",
            AlertKind::FailingTests => "failing tests",
            AlertKind::Died => "loop died",
            AlertKind::BudgetWarning => "budget warning",
            AlertKind::BudgetExceeded => "budget exceeded",
        }
    }
}

/// One alert: the rule, a sentence, and what it is based on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub message: String,
    pub evidence: String,
    /// The iteration it is about (the running one, or the last of a streak).
    pub iteration: Option<u32>,
}

/// When the rules fire. Every field has a sensible default; a project may set its own.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// A running iteration is long past this many times the median of the recent ones...
    pub long_factor: f64,
    /// ...and at least this long (seconds).
    pub long_minimum_seconds: f64,
    /// How many finished iterations the median is taken over.
    pub median_window: usize,
    /// A running loop's log silent this long (seconds).
    pub silent_seconds: f64,
    /// Iterations in a row without a completed task.
    pub no_progress_streak: usize,
    /// Iterations in a row with the same error.
    pub repeated_error_streak: usize,
    /// Iterations in a row with failing tests.
    pub failing_tests_streak: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            long_factor: 3.0,
            long_minimum_seconds: 600.0,
            median_window: 20,
            silent_seconds: 900.0,
            no_progress_streak: 3,
            repeated_error_streak: 3,
            failing_tests_streak: 3,
        }
    }
}

/// Whether the loop's process is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Running,
    /// Stopped, finished, or never started: nothing to watch.
    NotRunning,
    /// The pid file names a process that is gone, and the loop wrote no completion or stop.
    Died,
}

/// What the rules look at.
#[derive(Clone, Debug)]
pub struct LoopFacts<'a> {
    /// The finished iterations, oldest first.
    pub finished: &'a [IterationRecord],
    /// The running iteration: its number and when it started (Unix seconds).
    pub running: Option<(u32, f64)>,
    /// When the log was last written (Unix seconds).
    pub last_write: Option<f64>,
    pub now: f64,
    pub liveness: Liveness,
}

/// Every alert the facts call for, in [`AlertKind`] order.
pub fn evaluate(facts: &LoopFacts<'_>, thresholds: &Thresholds) -> Vec<Alert> {
    [
        long_iteration(facts, thresholds),
        silent_log(facts, thresholds),
        no_progress(facts, thresholds),
        repeated_error(facts, thresholds),
        failing_tests(facts, thresholds),
        died(facts),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn long_iteration(facts: &LoopFacts<'_>, thresholds: &Thresholds) -> Option<Alert> {
    if facts.liveness != Liveness::Running {
        return None;
    }
    let (iteration, started) = facts.running?;
    let recent: Vec<f64> = facts
        .finished
        .iter()
        .rev()
        .filter_map(|record| record.duration_seconds)
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .take(thresholds.median_window.max(1))
        .collect();
    let median = median(recent.clone())?;
    let running_for = facts.now - started;
    let limit = (median * thresholds.long_factor).max(thresholds.long_minimum_seconds);
    (running_for.is_finite() && running_for > limit).then(|| Alert {
        kind: AlertKind::LongIteration,
        message: format!(
            "Iteration {iteration} has run {} ({}× the usual {}).",
            minutes(running_for),
            (running_for / median.max(1.0)).floor(),
            minutes(median)
        ),
        evidence: format!(
            "median of the last {} iterations: {}; limit {}",
            recent.len(),
            minutes(median),
            minutes(limit)
        ),
        iteration: Some(iteration),
    })
}

/// How long a running loop's log has been silent, once that reaches the threshold (the card's
/// hint and the alert use the same rule).
pub fn silence(
    liveness: Liveness,
    last_write: Option<f64>,
    now: f64,
    thresholds: &Thresholds,
) -> Option<f64> {
    if liveness != Liveness::Running {
        return None;
    }
    let silent_for = now - last_write?;
    (silent_for.is_finite() && silent_for >= thresholds.silent_seconds).then_some(silent_for)
}

fn silent_log(facts: &LoopFacts<'_>, thresholds: &Thresholds) -> Option<Alert> {
    let silent_for = silence(facts.liveness, facts.last_write, facts.now, thresholds)?;
    Some(Alert {
        kind: AlertKind::SilentLog,
        message: format!(
            "The loop runs but its log has been silent for {}.",
            minutes(silent_for)
        ),
        evidence: format!(
            "last write to ralph.log {} ago (limit {})",
            minutes(silent_for),
            minutes(thresholds.silent_seconds)
        ),
        iteration: facts.running.map(|(n, _)| n),
    })
}

/// The last `count` finished iterations, if there are that many (and `count` is not zero).
fn last<'a>(facts: &LoopFacts<'a>, count: usize) -> Option<&'a [IterationRecord]> {
    let len = facts.finished.len();
    (count > 0 && len >= count).then(|| &facts.finished[len - count..])
}

fn streak_label(streak: &[IterationRecord]) -> String {
    match (streak.first(), streak.last()) {
        (Some(first), Some(last)) => format!("iterations {}–{}", first.iteration, last.iteration),
        _ => String::new(),
    }
}

fn no_progress(facts: &LoopFacts<'_>, thresholds: &Thresholds) -> Option<Alert> {
    let streak = last(facts, thresholds.no_progress_streak)?;
    streak
        .iter()
        .all(|record| record.tasks_completed.is_empty())
        .then(|| Alert {
            kind: AlertKind::NoProgress,
            message: format!("{} iterations in a row completed no task.", streak.len()),
            evidence: format!("{}: tasks_completed empty", streak_label(streak)),
            iteration: streak.last().map(|r| r.iteration),
        })
}

fn repeated_error(facts: &LoopFacts<'_>, thresholds: &Thresholds) -> Option<Alert> {
    let streak = last(facts, thresholds.repeated_error_streak)?;
    let (first, rest) = streak.split_first()?;
    let shared = first.errors.iter().map(|e| e.trim()).find(|error| {
        !error.is_empty()
            && rest
                .iter()
                .all(|record| record.errors.iter().any(|other| other.trim() == *error))
    })?;
    Some(Alert {
        kind: AlertKind::RepeatedError,
        message: format!(
            "The same error in {} iterations in a row: {}",
            streak.len(),
            clip(shared, 200)
        ),
        evidence: format!(
            "{}: errors include {:?}",
            streak_label(streak),
            clip(shared, 200)
        ),
        iteration: streak.last().map(|r| r.iteration),
    })
}

fn failing_tests(facts: &LoopFacts<'_>, thresholds: &Thresholds) -> Option<Alert> {
    let streak = last(facts, thresholds.failing_tests_streak)?;
    streak
        .iter()
        .all(|record| record.test_passed == Some(false))
        .then(|| Alert {
            kind: AlertKind::FailingTests,
            message: format!("Tests failed in {} iterations in a row.", streak.len()),
            evidence: format!("{}: test_passed false", streak_label(streak)),
            iteration: streak.last().map(|r| r.iteration),
        })
}

fn died(facts: &LoopFacts<'_>) -> Option<Alert> {
    (facts.liveness == Liveness::Died).then(|| Alert {
        kind: AlertKind::Died,
        message: "The loop died: its process is gone without a completion or a stop.".into(),
        evidence: "ralph.pid names a process that is not running; no completion or stop marker"
            .into(),
        iteration: facts
            .running
            .map(|(n, _)| n)
            .or_else(|| facts.finished.last().map(|r| r.iteration)),
    })
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// A duration as the alerts word it: seconds under a minute and a half, else minutes.
pub fn minutes(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{} s", seconds.max(0.0).round())
    } else {
        format!("{} min", (seconds / 60.0).round())
    }
}

fn clip(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
