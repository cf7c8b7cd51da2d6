//! Acknowledgements and budgets in the live store: an acknowledgement marks the notification
//! on the open page and takes its toast away; a budget change reaches cards and the page.

use std::collections::BTreeMap;

use leptos::prelude::*;

use super::LiveStore;
use crate::contract::ralph::budget::Budget;
use crate::model::protocol::ServerMessage;

impl LiveStore {
    pub(super) fn apply_insight(&self, message: ServerMessage) {
        match message {
            ServerMessage::NotificationAcked { project, data, .. } => {
                self.dismiss_toast(&data.id);
                if let Some(view) = self.open_view(&project) {
                    view.acked.try_update(|acked| {
                        acked.insert(data.id.clone(), data);
                    });
                }
            }
            ServerMessage::BudgetChanged { project, data, .. } => {
                self.budgets.try_update(|budgets| {
                    if data.is_unlimited() {
                        budgets.remove(&project);
                    } else {
                        budgets.insert(project, data);
                    }
                });
            }
            _ => {}
        }
    }

    /// Replaces the known budgets with a fetched set.
    pub fn set_budgets(&self, budgets: BTreeMap<String, Budget>) {
        self.budgets.try_set(budgets);
    }

    /// A project's budget (unlimited when none is known).
    pub fn budget(&self, project: &str) -> Budget {
        self.budgets
            .with(|budgets| budgets.get(project).copied())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ralph::notification::parse_notification;
    use crate::model::insight::NotificationAck;

    #[test]
    fn an_ack_from_another_tab_marks_the_page_and_takes_the_toast_away() {
        let owner = Owner::new();
        owner.set();
        let store = LiveStore::new();
        let data = parse_notification(b"ERROR: disk full").expect("notification");
        let id = data.id.clone();
        store.apply(ServerMessage::Notification {
            project: "a".into(),
            timestamp: String::new(),
            data,
        });
        assert_eq!(store.toasts.get_untracked().len(), 1);
        store.apply(ServerMessage::NotificationAcked {
            project: "a".into(),
            timestamp: String::new(),
            data: NotificationAck {
                id: id.clone(),
                by: "ab12".into(),
                at: "t".into(),
            },
        });
        assert!(store.toasts.get_untracked().is_empty());
        store.apply(ServerMessage::BudgetChanged {
            project: "a".into(),
            timestamp: String::new(),
            data: Budget {
                max_iterations: Some(3),
                ..Budget::default()
            },
        });
        assert_eq!(store.budget("a").max_iterations, Some(3));
        store.apply(ServerMessage::BudgetChanged {
            project: "a".into(),
            timestamp: String::new(),
            data: Budget::default(),
        });
        assert!(store.budgets.get_untracked().is_empty());
    }
}
