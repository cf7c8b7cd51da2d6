use super::*;
use crate::contract::ralph::iterations::IterationStatus;
use proptest::prelude::*;

fn record(iteration: u32) -> IterationRecord {
    IterationRecord {
        iteration,
        max: 0,
        start: None,
        end: None,
        duration_seconds: Some(60.0),
        tokens: None,
        status: IterationStatus::Success,
        tasks_completed: vec![format!("{iteration}.1")],
        commit: None,
        commit_message: None,
        test_passed: Some(true),
        test_output: None,
        errors: Vec::new(),
        run: 1,
    }
}

fn facts(finished: &[IterationRecord]) -> LoopFacts<'_> {
    LoopFacts {
        finished,
        running: None,
        last_write: Some(1_000.0),
        now: 1_000.0,
        liveness: Liveness::Running,
    }
}

fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    alerts.iter().map(|a| a.kind).collect()
}

#[test]
fn a_healthy_loop_raises_nothing() {
    let rows: Vec<_> = (1..=10).map(record).collect();
    let mut now = facts(&rows);
    now.running = Some((11, 990.0));
    assert!(evaluate(&now, &Thresholds::default()).is_empty());
}

#[test]
fn a_long_iteration_needs_three_times_the_median_and_ten_minutes() {
    let rows: Vec<_> = (1..=5).map(record).collect(); // 60 s each
    let mut at = facts(&rows);
    // 5 minutes: over 3× the median, but under the 10-minute floor.
    at.running = Some((6, 0.0));
    at.now = 300.0;
    at.last_write = Some(299.0);
    assert!(evaluate(&at, &Thresholds::default()).is_empty());
    at.now = 601.0;
    at.last_write = Some(600.0);
    let alerts = evaluate(&at, &Thresholds::default());
    assert_eq!(kinds(&alerts), [AlertKind::LongIteration]);
    assert_eq!(alerts[0].iteration, Some(6));
    assert!(
        alerts[0].evidence.contains("median of the last 5"),
        "{alerts:?}"
    );
    // Slow iterations raise the bar: a median of 20 min needs an hour.
    let slow: Vec<_> = (1..=5)
        .map(|n| IterationRecord {
            duration_seconds: Some(1_200.0),
            ..record(n)
        })
        .collect();
    let mut slow_at = facts(&slow);
    slow_at.running = Some((6, 0.0));
    slow_at.now = 3_000.0;
    slow_at.last_write = Some(2_999.0);
    assert!(evaluate(&slow_at, &Thresholds::default()).is_empty());
}

#[test]
fn no_history_no_long_iteration_and_a_stopped_loop_is_not_stuck() {
    let mut at = facts(&[]);
    at.running = Some((1, 0.0));
    at.now = 100_000.0;
    at.last_write = Some(99_999.0);
    assert!(evaluate(&at, &Thresholds::default()).is_empty());
    let rows: Vec<_> = (1..=3).map(record).collect();
    let mut stopped = facts(&rows);
    stopped.liveness = Liveness::NotRunning;
    stopped.last_write = Some(0.0);
    stopped.now = 100_000.0;
    assert!(evaluate(&stopped, &Thresholds::default()).is_empty());
}

#[test]
fn a_silent_log_fires_at_its_limit() {
    let rows: Vec<_> = (1..=2).map(record).collect();
    let mut at = facts(&rows);
    at.last_write = Some(100.0);
    at.now = 100.0 + 899.0;
    assert!(evaluate(&at, &Thresholds::default()).is_empty());
    at.now = 100.0 + 900.0;
    assert_eq!(
        kinds(&evaluate(&at, &Thresholds::default())),
        [AlertKind::SilentLog]
    );
}

#[test]
fn streaks_of_no_tasks_the_same_error_and_failing_tests() {
    let mut rows: Vec<_> = (1..=6).map(record).collect();
    for row in &mut rows[3..] {
        row.tasks_completed.clear();
        row.errors = vec![
            "  cargo test failed ".into(),
            format!("other {}", row.iteration),
        ];
        row.test_passed = Some(false);
    }
    let alerts = evaluate(&facts(&rows), &Thresholds::default());
    assert_eq!(
        kinds(&alerts),
        [
            AlertKind::NoProgress,
            AlertKind::RepeatedError,
            AlertKind::FailingTests
        ]
    );
    assert!(
        alerts[1].message.ends_with("cargo test failed"),
        "{alerts:?}"
    );
    assert!(alerts.iter().all(|a| a.iteration == Some(6)));
    assert!(alerts[0].evidence.starts_with("iterations 4–6"));
    // Different errors each time: no repeated error.
    for (n, row) in rows[3..].iter_mut().enumerate() {
        row.errors = vec![format!("error {n}")];
    }
    assert!(!kinds(&evaluate(&facts(&rows), &Thresholds::default()))
        .contains(&AlertKind::RepeatedError));
}

#[test]
fn a_died_loop_is_told() {
    let rows: Vec<_> = (1..=2).map(record).collect();
    let mut at = facts(&rows);
    at.liveness = Liveness::Died;
    let alerts = evaluate(&at, &Thresholds::default());
    assert_eq!(kinds(&alerts), [AlertKind::Died]);
    assert_eq!(alerts[0].iteration, Some(2));
}

#[test]
fn thresholds_read_partially_keep_their_defaults() {
    let read: Thresholds = serde_json::from_str(r#"{"no_progress_streak":5}"#).expect("json");
    assert_eq!(read.no_progress_streak, 5);
    assert_eq!(read.silent_seconds, Thresholds::default().silent_seconds);
}

fn any_record() -> impl Strategy<Value = IterationRecord> {
    (
        1u32..500,
        proptest::option::of(0.0f64..100_000.0),
        proptest::bool::ANY,
        proptest::option::of(proptest::bool::ANY),
        proptest::collection::vec("[a-c ]{0,3}", 0..3),
    )
        .prop_map(|(n, duration, tasks, tests, errors)| IterationRecord {
            duration_seconds: duration,
            tasks_completed: if tasks { vec!["1".into()] } else { Vec::new() },
            test_passed: tests,
            errors,
            ..record(n)
        })
}

proptest! {
    #[test]
    fn a_streak_rule_fires_exactly_when_its_last_k_iterations_qualify(
        rows in proptest::collection::vec(any_record(), 0..12),
        k in 0usize..6,
    ) {
        let thresholds = Thresholds {
            no_progress_streak: k,
            failing_tests_streak: k,
            repeated_error_streak: k,
            ..Thresholds::default()
        };
        let alerts = kinds(&evaluate(&facts(&rows), &thresholds));
        let tail = (k > 0 && rows.len() >= k).then(|| &rows[rows.len() - k..]);
        let expect_no_progress =
            tail.is_some_and(|t| t.iter().all(|r| r.tasks_completed.is_empty()));
        let expect_failing = tail.is_some_and(|t| t.iter().all(|r| r.test_passed == Some(false)));
        prop_assert_eq!(alerts.contains(&AlertKind::NoProgress), expect_no_progress);
        prop_assert_eq!(alerts.contains(&AlertKind::FailingTests), expect_failing);
        if alerts.contains(&AlertKind::RepeatedError) {
            let tail = tail.expect("a streak needs k rows");
            prop_assert!(tail.iter().all(|r| r.errors.iter().any(|e| !e.trim().is_empty())));
        }
    }

    #[test]
    fn evaluation_never_panics_and_alerts_are_in_kind_order(
        rows in proptest::collection::vec(any_record(), 0..30),
        running in proptest::option::of((1u32..100, -1e9f64..1e9)),
        last_write in proptest::option::of(-1e9f64..1e9),
        now in -1e9f64..1e9,
        died in proptest::bool::ANY,
    ) {
        let at = LoopFacts {
            finished: &rows,
            running,
            last_write,
            now,
            liveness: if died { Liveness::Died } else { Liveness::Running },
        };
        let alerts = evaluate(&at, &Thresholds::default());
        let order = kinds(&alerts);
        let mut sorted = order.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(order, sorted);
    }
}
