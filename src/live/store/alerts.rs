//! Alerts from every project: the tab watches every known project (not only what the open page
//! shows), so a notification that needs the operator toasts wherever the operator is.

use leptos::prelude::*;

use super::{LiveStore, Toast, MAX_TOASTS, TOAST_MEMORY};
use crate::contract::ralph::notification::Notification;
use crate::model::{api_types::ProjectList, Cursor, Topic};

impl LiveStore {
    /// Watches every project in `list` for alerts (their `project:ID` topics and the list's),
    /// resuming each topic from the cursor the page already holds, else from the list's.
    pub fn watch(&self, list: &ProjectList) {
        let names = list
            .projects
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        self.watched.set_value(Some(names));
        self.cursors.update_value(|cursors| {
            for (topic, cursor) in &list.cursors {
                cursors.entry(topic.clone()).or_insert(*cursor);
            }
        });
        self.wanted_version.try_update(|v| *v += 1);
    }

    /// Whether every project is watched already (else the socket task fetches the list).
    pub fn watching(&self) -> bool {
        self.watched.with_value(Option::is_some)
    }

    /// A project's name for toasts: from the open page, a card, or the watched list.
    fn project_name(&self, id: &str) -> String {
        if let Some(view) = self.open_view(id) {
            if let Some(name) = view.detail.try_with_untracked(|d| d.summary.name.clone()) {
                return name;
            }
        }
        if let Some(name) = self
            .find_card(id)
            .and_then(|s| s.try_with_untracked(|s| s.name.clone()))
        {
            return name;
        }
        self.watched
            .with_value(|w| w.as_ref().and_then(|w| w.get(id).cloned()))
            .unwrap_or_else(|| id.to_owned())
    }

    /// A project found after the list was fetched is watched from its first event.
    pub(super) fn watch_added(&self, id: &str, name: &str) {
        let added = self.watched.try_update_value(|w| match w {
            Some(w) => w.insert(id.to_owned(), name.to_owned()).is_none(),
            None => false,
        });
        if added != Some(true) {
            return;
        }
        if let Some(epoch) = self.server_epoch.get_value() {
            self.cursors.update_value(|cursors| {
                cursors
                    .entry(Topic::Project(id.to_owned()))
                    .or_insert(Cursor { epoch, seq: 0 });
            });
        }
        self.wanted_version.try_update(|v| *v += 1);
    }

    pub(super) fn toast(&self, project: String, notification: Notification) {
        if !notification.kind.toast_worthy() {
            return;
        }
        let fresh = self.toasted.try_update_value(|seen| {
            if seen.contains(&notification.id) {
                return false;
            }
            seen.push_back(notification.id.clone());
            if seen.len() > TOAST_MEMORY {
                seen.pop_front();
            }
            true
        });
        if fresh != Some(true) {
            return;
        }
        let name = self.project_name(&project);
        self.toasts.try_update(|toasts| {
            toasts.push(Toast {
                project,
                name,
                notification,
            });
            if toasts.len() > MAX_TOASTS {
                toasts.remove(0);
            }
        });
    }

    pub fn dismiss_toast(&self, id: &str) {
        self.toasts
            .update(|toasts| toasts.retain(|t| t.notification.id != id));
    }

    pub fn dismiss_all_toasts(&self) {
        self.toasts.update(Vec::clear);
    }
}
