//! Budgets in the watchdog: what a project has spent against its budget, and the pause at the
//! limit when the operator asked for it, done as loopwatch's own audited action.

use crate::contract::ralph::{
    alerts::Alert,
    budget::{self, AtLimit, Budget},
};
use crate::model::{
    audit::{Outcome, Role},
    control::ControlChange,
    insight::usage,
};
use crate::server::{
    clock,
    control::files::{is_paused, set_pause, Pause},
    store::NewAuditEntry,
};

use super::Watch;

/// The session tag of loopwatch's own actions in the audit trail.
pub const ACTOR: &str = "loopwatch";

/// The project's budget (none when the store cannot say).
pub async fn load(watch: &Watch, id: &str) -> Budget {
    let (store, id) = (watch.store.clone(), id.to_owned());
    match tokio::task::spawn_blocking(move || store.budget(&id)).await {
        Ok(Ok(budget)) => budget,
        Ok(Err(error)) => {
            tracing::error!(%error, "a budget could not be read");
            Budget::default()
        }
        Err(_) => Budget::default(),
    }
}

/// The budget's alert for what the project has spent now.
pub fn alert(watch: &Watch, id: &str, budget: &Budget) -> Option<Alert> {
    if budget.is_unlimited() {
        return None;
    }
    let wanted_wall = budget.max_minutes.is_some();
    watch
        .index
        .with_project_at(id, |state, cursor| {
            let summary = state.summary();
            // The wall-clock time needs the stats: computed only when it is limited.
            let wall = wanted_wall
                .then(|| state.detail(cursor).stats.wall_seconds)
                .flatten();
            budget::alert(budget, &usage(summary, wall), summary.iteration)
        })
        .flatten()
}

/// Pauses the loop (`.ralph/pause`) when its budget asks for it and it runs unpaused; the
/// action is recorded in the audit trail as loopwatch's and told to every tab.
pub async fn pause_if_asked(watch: &Watch, id: &str, budget: &Budget, alert: &Alert) {
    if budget.at_limit != AtLimit::Pause {
        return;
    }
    let Some(dir) = watch
        .index
        .with_project(id, |state| state.dir().to_path_buf())
    else {
        return;
    };
    let (store, project, evidence) = (watch.store.clone(), id.to_owned(), alert.evidence.clone());
    let entry = tokio::task::spawn_blocking(move || {
        if is_paused(&dir) {
            return None;
        }
        let (outcome, detail) = match set_pause(&dir, Pause::Pause) {
            Ok(()) => (Outcome::Done, format!("budget used up: {evidence}")),
            Err(error) => (Outcome::Failed, error.to_string()),
        };
        let entry = NewAuditEntry {
            time: clock::now(),
            session: ACTOR.into(),
            role: Role::Operator,
            project: Some(project),
            action: "pause".into(),
            params: serde_json::json!({ "reason": "budget" }).to_string(),
            outcome,
            detail,
        };
        Some(store.record(&entry))
    })
    .await;
    match entry {
        Ok(Some(Ok(entry))) => watch.control.publish(
            id,
            ControlChange {
                entry: Some(entry),
                start: None,
                injection: None,
            },
        ),
        Ok(Some(Err(error))) => tracing::error!(%error, "the budget's pause was not audited"),
        _ => {}
    }
}
