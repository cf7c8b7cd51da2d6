//! What the notification history and the budgets exchange: a stored notification with its
//! acknowledgement, a page of history with the cursor to the older ones, a project's budget
//! with what it has used.

use serde::{Deserialize, Serialize};

use crate::contract::ralph::{budget::Usage, notification::Notification};
use crate::model::ProjectSummary;

/// Who acknowledged a notification, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationAck {
    /// The notification's id.
    pub id: String,
    /// The operator's session tag.
    pub by: String,
    pub at: String,
}

/// One notification as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredNotification {
    /// The store's row: the cursor to page from (newer rows have larger numbers).
    pub row: i64,
    /// When loopwatch saw it (server clock).
    pub seen: String,
    pub notification: Notification,
    pub ack: Option<NotificationAck>,
}

/// A page of the history, newest first.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct HistoryPage {
    pub items: Vec<StoredNotification>,
    /// Pass as `before` for the next (older) page; `None` when this page is the last.
    pub older: Option<i64>,
}

/// A history page holds at most this many notifications.
pub const HISTORY_PAGE: usize = 50;

/// What a loop has spent, as far as its card tells (`wall_seconds` from its stats, when known).
pub fn usage(summary: &ProjectSummary, wall_seconds: Option<f64>) -> Usage {
    Usage {
        cost_usd: summary.cost_usd,
        tokens: summary.tokens,
        iterations: summary.iteration.unwrap_or(0),
        minutes: wall_seconds.map(|seconds| seconds / 60.0),
    }
}
