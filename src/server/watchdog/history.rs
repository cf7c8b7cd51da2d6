//! Keeping notifications in the store's history: each one as it is published, and, at start
//! and after the watchdog fell behind the hub, whatever the projects' files hold (the store
//! keeps each notification once, so keeping one again is harmless).

use crate::contract::ralph::notification::Notification;
use crate::server::clock;

use super::Watch;

/// Keeps one notification of `project`, seen at `seen`.
pub async fn keep(watch: &Watch, project: &str, notification: &Notification, seen: &str) {
    let (store, project, notification, seen) = (
        watch.store.clone(),
        project.to_owned(),
        notification.clone(),
        seen.to_owned(),
    );
    let kept = tokio::task::spawn_blocking(move || {
        store.keep_notification(&project, &notification, &seen)
    })
    .await;
    if let Ok(Err(error)) = kept {
        tracing::error!(%error, "a notification could not be kept in the history");
    }
}

/// Keeps every notification the projects' files hold now.
pub async fn keep_all(watch: &Watch) {
    let notes = watch.index.recent_notifications();
    if notes.is_empty() {
        return;
    }
    let store = watch.store.clone();
    let seen = clock::now();
    let kept = tokio::task::spawn_blocking(move || {
        notes
            .iter()
            .try_for_each(|(project, note)| store.keep_notification(project, note, &seen).map(drop))
    })
    .await;
    if let Ok(Err(error)) = kept {
        tracing::error!(%error, "notifications could not be kept in the history");
    }
}
