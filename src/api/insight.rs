//! The notification history and the budgets: a page of a project's stored notifications, an
//! operator's acknowledgement (told to every tab), and each project's budget, set by an
//! operator. Writes are audited.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::ApiError;
use crate::contract::ralph::budget::Budget;
use crate::model::insight::{HistoryPage, NotificationAck};

/// A page of the project's notifications, newest first: the newest ones, or those older than
/// row `before` (the `older` cursor of the previous page).
#[server(prefix = "/api", endpoint = "notification_history", input = Json)]
pub async fn load_history(project: String, before: Option<i64>) -> Result<HistoryPage, ApiError> {
    let store = ssr::project_store(&project)?;
    ssr::blocking(move || {
        store.notifications(&project, before, crate::model::insight::HISTORY_PAGE)
    })
    .await
}

/// Acknowledges a notification (the first acknowledgement stands); every tab hears of it.
#[server(prefix = "/api", endpoint = "ack_notification", input = Json)]
pub async fn ack_notification(project: String, id: String) -> Result<NotificationAck, ApiError> {
    use crate::model::{audit::Outcome, protocol::ServerMessage};
    let actor = super::ssr::operator()?;
    let store = ssr::project_store(&project)?;
    let (key, by, at) = (
        id.clone(),
        actor.session.clone(),
        crate::server::clock::now(),
    );
    let target = project.clone();
    let acked = ssr::blocking(move || store.ack_notification(&target, &key, &by, &at))
        .await
        .and_then(|ack| {
            ack.ok_or_else(|| ApiError::Invalid(format!("no notification {id:?} in this project")))
        });
    let (outcome, detail) = match &acked {
        Ok(_) => (Outcome::Done, String::new()),
        Err(error) => (Outcome::Refused, error.to_string()),
    };
    let params = serde_json::json!({ "id": id });
    super::ssr::record(&actor, Some(&project), "ack", params, outcome, detail).await;
    let ack = acked.map_err(super::ssr::fail)?;
    super::ssr::state()?
        .hub
        .publish(ServerMessage::NotificationAcked {
            project,
            timestamp: crate::server::clock::now(),
            data: ack.clone(),
        });
    Ok(ack)
}

/// Every budget the caller may see, by project.
#[server(prefix = "/api", endpoint = "budgets", input = Json)]
pub async fn load_budgets() -> Result<BTreeMap<String, Budget>, ApiError> {
    let access = super::ssr::actor()?.access;
    let store = super::ssr::state()?.store;
    let all = ssr::blocking(move || store.budgets()).await?;
    Ok(all
        .into_iter()
        .filter(|(project, _)| access.may_see(project))
        .collect())
}

/// Sets the project's budget (all limits empty: none); every tab hears of it. The watchdog
/// applies it at the next iteration or tick.
#[server(prefix = "/api", endpoint = "set_budget", input = Json)]
pub async fn set_budget(project: String, budget: Budget) -> Result<Budget, ApiError> {
    use crate::model::{audit::Outcome, protocol::ServerMessage};
    let actor = super::ssr::operator()?;
    let params = serde_json::to_value(budget).unwrap_or_default();
    let result = match (budget.check(), ssr::project_store(&project)) {
        (Err(why), _) => Err(ApiError::Invalid(why)),
        (_, Err(error)) => Err(error),
        (Ok(()), Ok(store)) => {
            let (target, time) = (project.clone(), crate::server::clock::now());
            ssr::blocking(move || store.set_budget(&target, &budget, &time)).await
        }
    };
    let (outcome, detail) = match &result {
        Ok(()) => (Outcome::Done, String::new()),
        Err(error) if error.status() < 500 => (Outcome::Refused, error.to_string()),
        Err(error) => (Outcome::Failed, error.to_string()),
    };
    super::ssr::record(
        &actor,
        Some(&project),
        "set_budget",
        params,
        outcome,
        detail,
    )
    .await;
    result.map_err(super::ssr::fail)?;
    super::ssr::state()?
        .hub
        .publish(ServerMessage::BudgetChanged {
            project,
            timestamp: crate::server::clock::now(),
            data: budget,
        });
    Ok(budget)
}

#[cfg(feature = "ssr")]
mod ssr {
    use std::sync::Arc;

    use crate::model::api_types::ApiError;
    use crate::server::store::{Store, StoreError};

    /// The store, for a caller that may see `project` (which must exist).
    pub fn project_store(project: &str) -> Result<Arc<Store>, ApiError> {
        crate::api::ssr::project_dir(project).map_err(crate::api::ssr::fail)?;
        Ok(crate::api::ssr::state()?.store)
    }

    /// Runs a store call on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        tokio::task::spawn_blocking(call)
            .await
            .map_err(|_| ApiError::Io("the store call was interrupted".into()))?
            .map_err(|error| crate::api::ssr::fail(ApiError::Io(error.to_string())))
    }
}
