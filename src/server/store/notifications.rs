//! The notification history: every notification and alert once per (project, id), paged
//! newest first by row (a cursor, so a page never shifts when new ones arrive), and
//! acknowledged once.

use rusqlite::{params, OptionalExtension, Row};

use super::{Store, StoreError};
use crate::contract::ralph::notification::Notification;
use crate::model::insight::{HistoryPage, NotificationAck, StoredNotification};

const COLUMNS: &str = "row, id, seen, data, acked_by, acked_at";

/// A row; `None` when its data is not a notification this version reads (edited by hand).
fn stored_of(row: &Row<'_>) -> rusqlite::Result<Option<StoredNotification>> {
    let id: String = row.get(1)?;
    let data: String = row.get(3)?;
    let ack = match (
        row.get::<_, Option<String>>(4)?,
        row.get::<_, Option<String>>(5)?,
    ) {
        (Some(by), Some(at)) => Some(NotificationAck {
            id: id.clone(),
            by,
            at,
        }),
        _ => None,
    };
    let Ok(notification) = serde_json::from_str::<Notification>(&data) else {
        return Ok(None);
    };
    Ok(Some(StoredNotification {
        row: row.get(0)?,
        seen: row.get(2)?,
        notification,
        ack,
    }))
}

impl Store {
    /// Keeps a notification of `project` seen at `seen`; `false` when it was kept already.
    pub fn keep_notification(
        &self,
        project: &str,
        notification: &Notification,
        seen: &str,
    ) -> Result<bool, StoreError> {
        let data = serde_json::to_string(notification)
            .map_err(|error| StoreError::Open("notifications".into(), error.to_string()))?;
        let added = self.connection().execute(
            "INSERT OR IGNORE INTO notifications (project, id, seen, data) VALUES (?1, ?2, ?3, ?4)",
            params![project, notification.id, seen, data],
        )?;
        Ok(added > 0)
    }

    /// Up to `limit` notifications of `project` older than row `before` (the newest without
    /// it), newest first, with the cursor of the next page.
    pub fn notifications(
        &self,
        project: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let limit = limit.max(1);
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let connection = self.connection();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications
             WHERE project = ?1 AND (?2 IS NULL OR row < ?2) ORDER BY row DESC LIMIT ?3"
        ))?;
        let rows = statement.query_map(params![project, before, fetch], |row| {
            Ok((row.get::<_, i64>(0)?, stored_of(row)?))
        })?;
        let mut items = Vec::new();
        let (mut older, mut previous) = (None, None);
        for (index, row) in rows.enumerate() {
            let (number, stored) = row?;
            if index == limit {
                // One more exists: the next page starts below the last row this one read
                // (an unreadable row is skipped, yet still passed).
                older = previous;
                break;
            }
            previous = Some(number);
            items.extend(stored);
        }
        Ok(HistoryPage { items, older })
    }

    /// Marks a notification acknowledged; the acknowledgement as stored (the first one, when
    /// it was acknowledged before), or `None` when the project has no such notification.
    pub fn ack_notification(
        &self,
        project: &str,
        id: &str,
        by: &str,
        at: &str,
    ) -> Result<Option<NotificationAck>, StoreError> {
        let connection = self.connection();
        connection.execute(
            "UPDATE notifications SET acked_by = ?3, acked_at = ?4
             WHERE project = ?1 AND id = ?2 AND acked_at IS NULL",
            params![project, id, by, at],
        )?;
        Ok(connection
            .query_row(
                "SELECT acked_by, acked_at FROM notifications WHERE project = ?1 AND id = ?2",
                params![project, id],
                |row| {
                    Ok(match (row.get::<_, Option<String>>(0)?, row.get(1)?) {
                        (Some(by), Some(at)) => Some(NotificationAck {
                            id: id.to_owned(),
                            by,
                            at,
                        }),
                        _ => None,
                    })
                },
            )
            .optional()?
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ralph::notification::parse_notification;

    fn note(text: &str) -> Notification {
        parse_notification(text.as_bytes()).expect("notification")
    }

    #[test]
    fn kept_once_paged_by_cursor_and_acked_once() {
        let store = Store::in_memory().expect("store");
        for n in 0..5 {
            let added = store
                .keep_notification("alpha", &note(&format!("ERROR: {n}")), "t")
                .expect("keep");
            assert!(added);
        }
        assert!(!store
            .keep_notification("alpha", &note("ERROR: 4"), "t")
            .expect("keep"));
        // The same notification in another project is that project's.
        assert!(store
            .keep_notification("bravo", &note("ERROR: 4"), "t")
            .expect("keep"));
        let first = store.notifications("alpha", None, 2).expect("page");
        let messages = |page: &HistoryPage| -> Vec<String> {
            page.items
                .iter()
                .map(|s| s.notification.message.clone())
                .collect()
        };
        assert_eq!(messages(&first), ["4", "3"]);
        // A newer one arriving between pages does not shift the next page.
        store
            .keep_notification("alpha", &note("ERROR: 5"), "t")
            .expect("keep");
        let second = store.notifications("alpha", first.older, 2).expect("page");
        assert_eq!(messages(&second), ["2", "1"]);
        let last = store.notifications("alpha", second.older, 2).expect("page");
        assert_eq!(messages(&last), ["0"]);
        assert_eq!(last.older, None);

        let id = first.items[0].notification.id.clone();
        let ack = store
            .ack_notification("alpha", &id, "ab12", "t1")
            .expect("ack")
            .expect("known");
        assert_eq!((ack.by.as_str(), ack.at.as_str()), ("ab12", "t1"));
        let again = store
            .ack_notification("alpha", &id, "cd34", "t2")
            .expect("ack");
        assert_eq!(again, Some(ack), "the first acknowledgement stands");
        assert_eq!(
            store
                .ack_notification("alpha", "nope", "ab12", "t")
                .expect("ack"),
            None
        );
        let all = store.notifications("alpha", None, 10).expect("page");
        assert_eq!(all.items.len(), 6);
        assert_eq!(
            all.items[1].ack.as_ref().map(|a| a.by.as_str()),
            Some("ab12")
        );
        let bravo = store.notifications("bravo", None, 10).expect("page");
        assert_eq!(bravo.items[0].ack, None, "an ack is per project");
    }
}
