//! The embedded store: one SQLite database in the data directory (`loopwatch.db`, mode 0600,
//! WAL) for what must outlive a restart and be queried later: the audit trail of control
//! actions, the share links (in [`shares`]), the notification history (in [`notifications`])
//! and the budgets (in [`budgets`]). This module (with its submodules) alone talks SQL.
//!
//! Calls block (a local file, milliseconds): async callers run them on the blocking pool.
//! Schema changes are numbered migrations applied on open (`PRAGMA user_version`), so an older
//! database is brought forward and a newer one (from a later loopwatch) is refused, not damaged.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::model::audit::{AuditEntry, Outcome, Role};

pub mod budgets;
pub mod notifications;
pub mod shares;

/// The database's file inside the data directory.
pub const FILE: &str = "loopwatch.db";

/// Each migration, in order; the database's `user_version` counts how many were applied.
const MIGRATIONS: &[&str] = &[
    // 1: the audit trail.
    "CREATE TABLE audit (
         id       INTEGER PRIMARY KEY AUTOINCREMENT,
         time     TEXT NOT NULL,
         session  TEXT NOT NULL,
         role     TEXT NOT NULL,
         project  TEXT,
         action   TEXT NOT NULL,
         params   TEXT NOT NULL,
         outcome  TEXT NOT NULL,
         detail   TEXT NOT NULL
     );
     CREATE INDEX audit_by_project ON audit (project, id);",
    // 2: share links. Only a hash of each link's key is kept: the database never holds a
    // working link.
    "CREATE TABLE shares (
         id        TEXT PRIMARY KEY,
         key_hash  TEXT NOT NULL UNIQUE,
         projects  TEXT NOT NULL,
         created   TEXT NOT NULL,
         expires   INTEGER NOT NULL,
         revoked   TEXT
     );",
    // 3: the notification history: every notification and alert of every project, once per
    // (project, id), with who acknowledged it.
    "CREATE TABLE notifications (
         row       INTEGER PRIMARY KEY AUTOINCREMENT,
         project   TEXT NOT NULL,
         id        TEXT NOT NULL,
         seen      TEXT NOT NULL,
         data      TEXT NOT NULL,
         acked_by  TEXT,
         acked_at  TEXT,
         UNIQUE (project, id)
     );
     CREATE INDEX notifications_by_project ON notifications (project, row);",
    // 4: budgets, one per project.
    "CREATE TABLE budgets (
         project  TEXT PRIMARY KEY,
         budget   TEXT NOT NULL,
         updated  TEXT NOT NULL
     );",
];

/// Longest detail or parameter text kept per entry: an audit row records what was done, not the
/// text of a whole file.
const MAX_TEXT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {0}: {1}")]
    Open(PathBuf, String),
    #[error("the store {0} was written by a newer loopwatch (schema {1}, this one knows {2})")]
    TooNew(PathBuf, i64, usize),
    #[error("the store failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the data directory: {0}")]
    DataDir(std::io::Error),
}

/// An action to record (the store adds the id and keeps the time given).
#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    pub time: String,
    pub session: String,
    pub role: Role,
    pub project: Option<String>,
    pub action: String,
    pub params: String,
    pub outcome: Outcome,
    pub detail: String,
}

pub struct Store {
    /// One connection, used by one caller at a time: the store's writes are rare and small.
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store { .. }")
    }
}

impl Store {
    /// Opens (creating if needed) `loopwatch.db` in `data_dir`, a private directory, and
    /// brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        super::auth::create_private_dir(data_dir).map_err(StoreError::DataDir)?;
        let file = data_dir.join(FILE);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let connection = Connection::open_with_flags(&file, flags)
            .map_err(|error| StoreError::Open(file.clone(), error.to_string()))?;
        restrict_mode(&file);
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|error| StoreError::Open(file.clone(), error.to_string()))?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&connection, &file)?;
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    /// A store that forgets everything when dropped (tests, tools).
    pub fn in_memory() -> Result<Store, StoreError> {
        let connection = Connection::open_in_memory()?;
        migrate(&connection, Path::new(":memory:"))?;
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (statements are atomic).
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one control action and returns it as stored.
    pub fn record(&self, entry: &NewAuditEntry) -> Result<AuditEntry, StoreError> {
        let params_text = clip(&entry.params);
        let detail = clip(&entry.detail);
        let connection = self.connection();
        connection.execute(
            "INSERT INTO audit (time, session, role, project, action, params, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                entry.time,
                entry.session,
                entry.role.as_str(),
                entry.project,
                entry.action,
                params_text,
                entry.outcome.as_str(),
                detail,
            ],
        )?;
        Ok(AuditEntry {
            id: connection.last_insert_rowid(),
            time: entry.time.clone(),
            session: entry.session.clone(),
            role: entry.role,
            project: entry.project.clone(),
            action: entry.action.clone(),
            params: params_text,
            outcome: entry.outcome,
            detail,
        })
    }

    /// The newest `limit` entries, newest first: of one project, or of all with `None`.
    pub fn audit(
        &self,
        project: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT id, time, session, role, project, action, params, outcome, detail FROM audit
             WHERE ?1 IS NULL OR project = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![project, limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
                row.get::<_, String>(8)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (id, time, session, role, project, action, params, outcome, detail) = row?;
            // A row this version cannot read (edited by hand) is skipped, not fatal.
            let (Some(role), Some(outcome)) = (Role::parse(&role), Outcome::parse(&outcome)) else {
                continue;
            };
            entries.push(AuditEntry {
                id,
                time,
                session,
                role,
                project,
                action,
                params,
                outcome,
                detail,
            });
        }
        Ok(entries)
    }
}

/// Applies the migrations the database has not seen, each in its own transaction.
fn migrate(connection: &Connection, file: &Path) -> Result<(), StoreError> {
    let applied: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len();
    let applied_count = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied_count > known {
        return Err(StoreError::TooNew(file.to_path_buf(), applied, known));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied_count) {
        let version = index + 1;
        connection.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;"
        ))?;
    }
    // Whether the table exists is the migrations' promise; check it once so a damaged file
    // fails here with a clear message rather than on the first action.
    connection
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit'",
            [],
            |row| row.get::<_, String>(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::Open(file.to_path_buf(), "the audit table is missing".into()))?;
    Ok(())
}

/// The database holds who did what: readable by its owner only (SQLite creates it with the
/// process umask).
fn restrict_mode(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
}

fn clip(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(project: Option<&str>, action: &str) -> NewAuditEntry {
        NewAuditEntry {
            time: "2026-11-27T10:00:00.000Z".into(),
            session: "ab12cd34".into(),
            role: Role::Operator,
            project: project.map(str::to_owned),
            action: action.into(),
            params: r#"{"max":5}"#.into(),
            outcome: Outcome::Done,
            detail: "started".into(),
        }
    }

    #[test]
    fn entries_come_back_newest_first_and_per_project() {
        let store = Store::in_memory().expect("store");
        store
            .record(&entry(Some("alpha"), "start"))
            .expect("record");
        store
            .record(&entry(Some("bravo"), "pause"))
            .expect("record");
        let last = store.record(&entry(Some("alpha"), "stop")).expect("record");
        let alpha = store.audit(Some("alpha"), 10).expect("audit");
        let actions: Vec<&str> = alpha.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["stop", "start"]);
        assert_eq!(alpha[0], last);
        assert_eq!(store.audit(None, 10).expect("audit").len(), 3);
        assert_eq!(store.audit(None, 1).expect("audit")[0].action, "stop");
    }

    #[test]
    fn the_trail_survives_reopening_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        {
            let store = Store::open(&data).expect("open");
            store.record(&entry(None, "share")).expect("record");
        }
        let store = Store::open(&data).expect("reopen");
        let all = store.audit(None, 10).expect("audit");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].project, None);
        let mode = std::fs::metadata(data.join(FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        let journal: String = store
            .connection()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("journal mode");
        assert_eq!(journal, "wal");
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        drop(Store::open(&data).expect("open"));
        {
            let raw = Connection::open(data.join(FILE)).expect("raw");
            raw.pragma_update(None, "user_version", 99).expect("bump");
        }
        match Store::open(&data) {
            Err(StoreError::TooNew(_, 99, known)) => assert_eq!(known, MIGRATIONS.len()),
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    #[test]
    fn a_symlinked_database_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        let elsewhere = dir.path().join("elsewhere.db");
        std::os::unix::fs::symlink(&elsewhere, data.join(FILE)).expect("symlink");
        assert!(matches!(Store::open(&data), Err(StoreError::Open(..))));
        assert!(!elsewhere.exists(), "nothing was created through the link");
    }

    #[test]
    fn long_texts_are_clipped_on_a_character_boundary() {
        let store = Store::in_memory().expect("store");
        let mut long = entry(Some("alpha"), "inject");
        long.params = "é".repeat(MAX_TEXT);
        let stored = store.record(&long).expect("record");
        assert!(stored.params.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(stored.params.ends_with('…'));
    }
}
