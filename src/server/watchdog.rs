//! The watchdog: applies the stuck-loop rules and each project's budget to every project and
//! publishes each alert that newly holds as a notification of kind `alert`, so it reaches every
//! page like the loop's own notifications (toast, feed, browser notification). It looks again
//! when an iteration ends (streak rules, budgets) and on a steady tick (time rules: a long
//! iteration, a silent log). It also keeps every notification, the loop's and its own, in the
//! store's history ([`history`]), and pauses a loop whose budget says so ([`budget`]).
//!
//! An alert is published once while it holds; when its condition clears it may fire again.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use crate::contract::ralph::{
    alerts::{Alert, AlertKind, Thresholds},
    notification::{Notification, NotificationKind, Severity},
};
use crate::model::protocol::ServerMessage;
use crate::server::{clock, control::Control, index::Index, shutdown::Shutdown, store::Store};

mod budget;
mod history;

/// How often the time rules are checked by default.
pub const TICK: Duration = Duration::from_secs(30);

/// What holds for one project: each alert by its rule and iteration.
type Holding = BTreeSet<(AlertKind, Option<u32>)>;

/// What the watchdog reads and acts through.
#[derive(Clone)]
pub struct Watch {
    pub index: Arc<Index>,
    /// The history and the budgets.
    pub store: Arc<Store>,
    /// Pauses a loop whose budget is used up.
    pub control: Arc<Control>,
}

/// Starts the watchdog; it ends with the server.
pub fn spawn(watch: Watch, tick: Duration, shutdown: Shutdown) -> JoinHandle<()> {
    let mut events = watch.index.hub().subscribe();
    tokio::spawn(async move {
        let thresholds = Thresholds::default();
        let mut holding: HashMap<String, Holding> = HashMap::new();
        let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the projects' files held before the first event.
        history::keep_all(&watch).await;
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = ticker.tick() => {
                    let ids: Vec<String> =
                        watch.index.dirs().into_iter().map(|(id, _)| id).collect();
                    holding.retain(|id, _| ids.contains(id));
                    for id in ids {
                        check(&watch, &id, &thresholds, &mut holding).await;
                    }
                }
                event = events.recv() => match event {
                    Ok(frame) => match frame.event.as_ref() {
                        ServerMessage::IterationCompleted { project, .. }
                        | ServerMessage::StatusChanged { project, .. }
                        | ServerMessage::BudgetChanged { project, .. } => {
                            check(&watch, project, &thresholds, &mut holding).await;
                        }
                        ServerMessage::Notification { project, timestamp, data } => {
                            history::keep(&watch, project, data, timestamp).await;
                        }
                        _ => {}
                    },
                    // Missed events: the next tick catches the rules; the files' notifications
                    // are kept again (each once).
                    Err(RecvError::Lagged(_)) => history::keep_all(&watch).await,
                    Err(RecvError::Closed) => break,
                },
            }
        }
    })
}

async fn check(
    watch: &Watch,
    id: &str,
    thresholds: &Thresholds,
    holding: &mut HashMap<String, Holding>,
) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let Some(mut alerts) = watch
        .index
        .with_project(id, |state| state.alerts(now, thresholds))
    else {
        holding.remove(id);
        return;
    };
    let budget = budget::load(watch, id).await;
    alerts.extend(budget::alert(watch, id, &budget));
    let before = holding.entry(id.to_owned()).or_default();
    let (fresh, now_holding) = newly_holding(before, &alerts);
    for alert in fresh {
        let data = notification(alert);
        // Kept before it is published, so the history has it even if the watchdog's own
        // subscription falls behind.
        history::keep(watch, id, &data, &clock::now()).await;
        watch.index.raise(id, data);
        if alert.kind == AlertKind::BudgetExceeded {
            budget::pause_if_asked(watch, id, &budget, alert).await;
        }
    }
    *before = now_holding;
}

/// What an alert is told apart by: a streak is one alert however long it grows; a long
/// iteration or a silent log is about one iteration.
fn key(alert: &Alert) -> (AlertKind, Option<u32>) {
    match alert.kind {
        AlertKind::NoProgress
        | AlertKind::RepeatedError
        | AlertKind::FailingTests
        | AlertKind::BudgetWarning
        | AlertKind::BudgetExceeded => (alert.kind, None),
        AlertKind::LongIteration | AlertKind::SilentLog | AlertKind::Died => {
            (alert.kind, alert.iteration)
        }
    }
}

/// The alerts not already holding, and what holds now.
fn newly_holding<'a>(before: &Holding, alerts: &'a [Alert]) -> (Vec<&'a Alert>, Holding) {
    let fresh = alerts
        .iter()
        .filter(|alert| !before.contains(&key(alert)))
        .collect();
    (fresh, alerts.iter().map(key).collect())
}

/// An alert in the shape every notification has.
pub fn notification(alert: &Alert) -> Notification {
    let iteration = alert.iteration.map(|n| n.to_string()).unwrap_or_default();
    Notification {
        id: format!("alert-{:?}-{iteration}-{}", alert.kind, clock::now()),
        timestamp: Some(clock::now()),
        kind: NotificationKind::Alert(alert.kind),
        severity: match alert.kind {
            AlertKind::Died | AlertKind::RepeatedError | AlertKind::BudgetExceeded => {
                Severity::Error
            }
            _ => Severity::Warning,
        },
        message: alert.message.clone(),
        details: Some(alert.evidence.clone()),
        iteration: alert.iteration,
        max_iterations: None,
        cli: None,
        status: None,
        has_log_tail: false,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: AlertKind, iteration: u32) -> Alert {
        Alert {
            kind,
            message: String::new(),
            evidence: String::new(),
            iteration: Some(iteration),
        }
    }

    /// How many alerts are new, and what holds after.
    fn step(before: &Holding, alerts: &[Alert]) -> (usize, Holding) {
        let (fresh, holding) = newly_holding(before, alerts);
        (fresh.len(), holding)
    }

    #[test]
    fn a_growing_streak_is_told_once_and_again_after_it_clears() {
        let (fresh, holding) = step(&Holding::new(), &[alert(AlertKind::FailingTests, 3)]);
        assert_eq!(fresh, 1);
        let (fresh, holding) = step(&holding, &[alert(AlertKind::FailingTests, 4)]);
        assert_eq!(fresh, 0, "the same streak, one iteration longer");
        let (_, holding) = step(&holding, &[]);
        let (fresh, _) = step(&holding, &[alert(AlertKind::FailingTests, 8)]);
        assert_eq!(fresh, 1, "a new streak after the tests passed");
    }

    #[test]
    fn a_long_iteration_is_told_per_iteration() {
        let (_, holding) = step(&Holding::new(), &[alert(AlertKind::LongIteration, 5)]);
        assert_eq!(step(&holding, &[alert(AlertKind::LongIteration, 5)]).0, 0);
        assert_eq!(step(&holding, &[alert(AlertKind::LongIteration, 6)]).0, 1);
    }

    #[test]
    fn an_alert_reads_as_a_notification_with_its_evidence() {
        let mut died = alert(AlertKind::Died, 2);
        died.evidence = "pid 42 gone".into();
        let note = notification(&died);
        assert_eq!(note.kind, NotificationKind::Alert(AlertKind::Died));
        assert_eq!(note.severity, Severity::Error);
        assert_eq!(note.details.as_deref(), Some("pid 42 gone"));
        assert!(note.kind.toast_worthy());
        assert_eq!(note.kind.prefix(), "ALERT");
    }
}
