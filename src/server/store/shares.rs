//! The share links' table: what each link shows, until when, and whether it was revoked.
//! Rows are found by the hash of a link's key; the key itself is never stored.

use rusqlite::{params, OptionalExtension, Row};

use super::{Store, StoreError};
use crate::model::access::ShareLink;

/// A link to record.
#[derive(Clone, Debug)]
pub struct NewShare {
    pub id: String,
    pub key_hash: String,
    pub projects: Vec<String>,
    pub created: String,
    /// Unix seconds.
    pub expires: u64,
}

const COLUMNS: &str = "id, projects, created, expires, revoked";

fn share_of(row: &Row<'_>) -> rusqlite::Result<ShareLink> {
    let projects: String = row.get(1)?;
    let expires: i64 = row.get(3)?;
    Ok(ShareLink {
        id: row.get(0)?,
        // Written by this module as a JSON list; a row edited by hand into something else
        // shows no project (and so opens nothing).
        projects: serde_json::from_str(&projects).unwrap_or_default(),
        created: row.get(2)?,
        expires: u64::try_from(expires).unwrap_or(0),
        revoked: row.get(4)?,
    })
}

impl Store {
    pub fn add_share(&self, share: &NewShare) -> Result<ShareLink, StoreError> {
        let projects = serde_json::to_string(&share.projects)
            .map_err(|error| StoreError::Open("shares".into(), error.to_string()))?;
        let expires = i64::try_from(share.expires).unwrap_or(i64::MAX);
        self.connection().execute(
            "INSERT INTO shares (id, key_hash, projects, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![share.id, share.key_hash, projects, share.created, expires],
        )?;
        Ok(ShareLink {
            id: share.id.clone(),
            projects: share.projects.clone(),
            created: share.created.clone(),
            expires: share.expires,
            revoked: None,
        })
    }

    /// Every link, newest first (revoked and expired ones too: the operator sees what was
    /// shared).
    pub fn shares(&self) -> Result<Vec<ShareLink>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM shares ORDER BY created DESC, id"
        ))?;
        let rows = statement.query_map([], share_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The link whose key hashes to `key_hash`.
    pub fn share_by_key(&self, key_hash: &str) -> Result<Option<ShareLink>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                &format!("SELECT {COLUMNS} FROM shares WHERE key_hash = ?1"),
                params![key_hash],
                share_of,
            )
            .optional()?)
    }

    pub fn share(&self, id: &str) -> Result<Option<ShareLink>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                &format!("SELECT {COLUMNS} FROM shares WHERE id = ?1"),
                params![id],
                share_of,
            )
            .optional()?)
    }

    /// Marks a link revoked at `time`; `false` when there is no such link or it already was.
    pub fn revoke_share(&self, id: &str, time: &str) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "UPDATE shares SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
            params![id, time],
        )?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_by_key_hash_listed_and_revoked_once() {
        let store = Store::in_memory().expect("store");
        let new = NewShare {
            id: "s1".into(),
            key_hash: "h1".into(),
            projects: vec!["alpha".into(), "bravo".into()],
            created: "2026-11-27T10:00:00.000Z".into(),
            expires: 2_000_000_000,
        };
        let added = store.add_share(&new).expect("add");
        assert!(
            store.add_share(&new).is_err(),
            "ids and key hashes are unique"
        );
        assert_eq!(store.share_by_key("h1").expect("find"), Some(added.clone()));
        assert_eq!(store.share_by_key("nope").expect("find"), None);
        assert_eq!(store.shares().expect("list"), vec![added]);
        assert!(store.revoke_share("s1", "later").expect("revoke"));
        assert!(!store.revoke_share("s1", "again").expect("revoke"));
        assert!(!store.revoke_share("s2", "never").expect("revoke"));
        let revoked = store.share("s1").expect("get").expect("present");
        assert_eq!(revoked.revoked.as_deref(), Some("later"));
        assert_eq!(revoked.projects, ["alpha", "bravo"]);
    }
}
