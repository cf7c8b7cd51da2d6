//! The operator's archive: which projects are archived, and since when.
//!
//! Archiving is an operator action. loopwatch never writes into a watched project, so the set
//! lives in the server's data directory, in `archived.json` (canonical project path -> RFC 3339
//! time), rewritten whole and atomically (temporary file, fsync, rename) with mode 0600 like the
//! other files there. An archived project is still watched; it is only hidden by default.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

/// The file's name inside the data directory.
pub const FILE: &str = "archived.json";
/// How the temporary files of a save start (a crash can leave one behind).
const TEMP_PREFIX: &str = ".archived.";

/// Whether a project is archived (hidden from dashboards by default, still watched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archival {
    Active,
    Archived,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no project with id {0:?}")]
    UnknownProject(String),
    #[error("{0}")]
    DataDir(io::Error),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, io::Error),
    #[error("{0} is not a valid archive list ({1}); fix or delete it")]
    Invalid(PathBuf, String),
    #[error("cannot save {0}: {1}")]
    Write(PathBuf, io::Error),
    #[error("the project path {0:?} is not valid UTF-8, so it cannot be archived")]
    NotUtf8(PathBuf),
}

#[derive(Debug)]
pub struct ArchiveStore {
    /// Where the set is saved; `None` keeps it in memory only (tests, tools).
    file: Option<PathBuf>,
    /// Canonical project path -> when it was archived. Locked across a save so concurrent
    /// changes are written in the order they are applied.
    entries: Mutex<BTreeMap<String, String>>,
}

impl ArchiveStore {
    /// A store that forgets everything when the process ends.
    pub fn in_memory() -> Self {
        Self {
            file: None,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Reads `archived.json` from `data_dir` (a missing file or directory is an empty set; the
    /// directory is created only when something is first archived). A data directory other
    /// users can write to is refused; temporary files an interrupted save left are removed.
    pub fn load(data_dir: &Path) -> Result<Self, ArchiveError> {
        if super::auth::check_private_dir(data_dir).map_err(ArchiveError::DataDir)? {
            super::auth::remove_temp_files(data_dir, TEMP_PREFIX);
        }
        let file = data_dir.join(FILE);
        let entries = match fs::read(&file) {
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, String>>(&bytes)
                .map_err(|error| ArchiveError::Invalid(file.clone(), error.to_string()))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(ArchiveError::Read(file, error)),
        };
        Ok(Self {
            file: Some(file),
            entries: Mutex::new(entries),
        })
    }

    /// When the project at `dir` was archived, if it is.
    pub fn archived_at(&self, dir: &Path) -> Option<String> {
        let key = dir.to_str()?;
        self.lock().get(key).cloned()
    }

    /// Archives the project at `dir` (as of `at`) or brings it back, and saves the set. Returns
    /// the `archived_at` now in effect: archiving an archived project keeps its first time. When
    /// saving fails nothing changes, in memory or on disk.
    pub fn set(&self, dir: &Path, to: Archival, at: &str) -> Result<Option<String>, ArchiveError> {
        let key = dir
            .to_str()
            .ok_or_else(|| ArchiveError::NotUtf8(dir.to_path_buf()))?;
        let mut entries = self.lock();
        let current = entries.get(key).cloned();
        let archived = to == Archival::Archived;
        if current.is_some() == archived {
            return Ok(current);
        }
        let mut next = entries.clone();
        if archived {
            next.insert(key.to_owned(), at.to_owned());
        } else {
            next.remove(key);
        }
        if let Some(file) = &self.file {
            save(file, &next).map_err(|error| ArchiveError::Write(file.clone(), error))?;
        }
        *entries = next;
        Ok(entries.get(key).cloned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes the set next to `file` and renames it into place, so a crash leaves either the old
/// file or the new one, never half of one.
fn save(file: &Path, entries: &BTreeMap<String, String>) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(entries).map_err(io::Error::other)?;
    super::auth::write_atomically(file, TEMP_PREFIX, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archiving_is_saved_atomically_privately_and_survives_a_reload() {
        let temp = tempfile::tempdir().expect("tempdir");
        let data = temp.path().join("data");
        let project = temp.path().join("proj");
        let store = ArchiveStore::load(&data).expect("no file yet is an empty set");
        assert_eq!(store.archived_at(&project), None);
        assert!(!data.exists(), "nothing is written before the first change");

        let at = store
            .set(&project, Archival::Archived, "2026-01-02T03:04:05Z")
            .expect("archive");
        assert_eq!(at.as_deref(), Some("2026-01-02T03:04:05Z"));
        // Archiving again keeps the first time.
        let again = store
            .set(&project, Archival::Archived, "2027-01-01T00:00:00Z")
            .expect("again");
        assert_eq!(again, at);

        let reloaded = ArchiveStore::load(&data).expect("reload");
        assert_eq!(reloaded.archived_at(&project), at);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data.join(FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "archive readable by others: {mode:o}");
        }
        let leftovers: Vec<_> = fs::read_dir(&data)
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .filter(|name| name.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

        assert_eq!(
            reloaded
                .set(&project, Archival::Active, "t")
                .expect("unarchive"),
            None
        );
        assert_eq!(
            ArchiveStore::load(&data)
                .expect("reload")
                .archived_at(&project),
            None
        );
    }

    #[test]
    fn a_broken_file_is_a_clear_error_and_a_failed_save_changes_nothing() {
        let temp = tempfile::tempdir().expect("tempdir");
        fs::write(temp.path().join(FILE), "{not json").expect("write");
        assert!(matches!(
            ArchiveStore::load(temp.path()),
            Err(ArchiveError::Invalid(..))
        ));

        // The data directory turns into a file after loading: saving must fail and leave the
        // set as it was.
        let data = temp.path().join("data");
        let store = ArchiveStore::load(&data).expect("empty");
        fs::write(&data, "").expect("write");
        let project = temp.path().join("proj");
        assert!(matches!(
            store.set(&project, Archival::Archived, "t"),
            Err(ArchiveError::Write(..))
        ));
        assert_eq!(store.archived_at(&project), None);
    }
}
