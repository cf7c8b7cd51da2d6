//! The server-side session list: each live session's end and rights, saved atomically to
//! `sessions.json` so sessions survive a restart. A revoked session is removed: an unknown id
//! is never valid. Ending sessions bumps a counter that long-lived streams watch, so a sign-out
//! or a revoked share link reaches open sockets at once.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, PoisonError},
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{random_hex, remove_temp_files, unix_now, write_atomically, SESSIONS_FILE};
use crate::model::access::Access;

/// Live sessions kept at most; the one closest to its end goes first when a new one needs room.
pub(super) const MAX_SESSIONS: usize = 1000;

/// One live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Session {
    /// When it ends (Unix seconds).
    pub end: u64,
    #[serde(flatten)]
    pub access: Access,
}

/// A session as `sessions.json` holds it: files written before roles existed hold only the
/// end, and those sessions were the operator's (the only sign-in there was).
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Session(Session),
    EndOnly(u64),
}

impl From<Stored> for Session {
    fn from(stored: Stored) -> Self {
        match stored {
            Stored::Session(session) => session,
            Stored::EndOnly(end) => Session {
                end,
                access: Access::operator(),
            },
        }
    }
}

/// What `sessions.json` holds: this instance's id (the cookie name's suffix) and the live
/// sessions by id.
#[derive(Default, Deserialize)]
struct StoredList {
    #[serde(default)]
    instance: String,
    #[serde(default)]
    sessions: BTreeMap<String, Stored>,
}

#[derive(Serialize)]
struct SavedList<'a> {
    instance: &'a str,
    sessions: &'a BTreeMap<String, Session>,
}

pub(super) struct Sessions {
    /// Where the list is saved; `None` keeps it in memory only (unit tests).
    file: Option<PathBuf>,
    pub instance: String,
    /// Session id -> session. Locked across a save so saves happen in order.
    live: Mutex<BTreeMap<String, Session>>,
    /// Counts the endings (sign-outs, revoked links): streams wake up and check their session.
    ended: watch::Sender<u64>,
}

impl Sessions {
    fn with(file: Option<PathBuf>, instance: String, live: BTreeMap<String, Session>) -> Self {
        Self {
            file,
            instance,
            live: Mutex::new(live),
            ended: watch::Sender::new(0),
        }
    }

    #[cfg(test)]
    pub fn in_memory() -> Self {
        let instance = random_hex(4).unwrap_or_else(|_| "00000000".into());
        Self::with(None, instance, BTreeMap::new())
    }

    pub fn load(data_dir: &Path) -> io::Result<Self> {
        remove_temp_files(data_dir, ".sessions.");
        let file = data_dir.join(SESSIONS_FILE);
        let (list, fresh) = match fs::read(&file) {
            Ok(bytes) => {
                let list: StoredList = serde_json::from_slice(&bytes).map_err(|error| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} is not a valid session list ({error}); delete it (everyone \
                             signs in again)",
                            file.display()
                        ),
                    )
                })?;
                (list, false)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => (StoredList::default(), true),
            Err(error) => return Err(error),
        };
        let valid_instance =
            list.instance.len() == 8 && list.instance.bytes().all(|b| b.is_ascii_hexdigit());
        let instance = if valid_instance {
            list.instance
        } else {
            random_hex(4)?
        };
        let now = unix_now();
        let before = list.sessions.len();
        let live: BTreeMap<String, Session> = list
            .sessions
            .into_iter()
            .map(|(id, stored)| (id, Session::from(stored)))
            .filter(|(_, session)| session.end > now)
            .collect();
        let changed = live.len() != before;
        let sessions = Self::with(Some(file), instance, live);
        if fresh || !valid_instance || changed {
            // Saved now so the cookie name stays the same across restarts.
            let live = sessions.lock();
            if let Err(error) = sessions.save(&live) {
                // A read-only data directory still serves; the name may change on restart.
                tracing::warn!(%error, "cannot save the session list");
            }
        }
        Ok(sessions)
    }

    /// Records a new session ending at `end` with `access` and returns its id.
    pub fn start(&self, now: u64, end: u64, access: Access) -> String {
        // Without randomness no session can be made safe; an empty id is never accepted.
        let Ok(sid) = random_hex(16) else {
            tracing::error!("no randomness for a session id: sign-in refused");
            return String::new();
        };
        let mut live = self.lock();
        live.retain(|_, session| session.end > now);
        while live.len() >= MAX_SESSIONS {
            let Some(oldest) = live
                .iter()
                .min_by_key(|(_, session)| session.end)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            live.remove(&oldest);
        }
        live.insert(sid.clone(), Session { end, access });
        if let Err(error) = self.save(&live) {
            // The session still works until the server restarts.
            tracing::warn!(%error, "cannot save the session list");
        }
        sid
    }

    /// The rights of a live session.
    pub fn access(&self, sid: &str, now: u64) -> Option<Access> {
        if sid.is_empty() {
            return None;
        }
        self.lock()
            .get(sid)
            .filter(|session| session.end > now)
            .map(|session| session.access.clone())
    }

    pub fn is_live(&self, sid: &str, now: u64) -> bool {
        self.access(sid, now).is_some()
    }

    pub fn end(&self, sid: &str) -> bool {
        self.end_where(|id, _| id == sid) > 0
    }

    /// Ends every session `doomed` picks; returns how many ended.
    pub fn end_where(&self, doomed: impl Fn(&str, &Session) -> bool) -> usize {
        let mut live = self.lock();
        let before = live.len();
        live.retain(|id, session| !doomed(id, session));
        let ended = before - live.len();
        if ended > 0 {
            if let Err(error) = self.save(&live) {
                tracing::warn!(%error, "cannot save the session list: the ended sessions stay ended until a restart");
            }
            drop(live);
            self.ended
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        ended
    }

    /// Changes whenever sessions end.
    pub fn endings(&self) -> watch::Receiver<u64> {
        self.ended.subscribe()
    }

    fn save(&self, live: &BTreeMap<String, Session>) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let list = SavedList {
            instance: &self.instance,
            sessions: live,
        };
        let json = serde_json::to_vec_pretty(&list).map_err(io::Error::other)?;
        write_atomically(file, ".sessions.", &json)
    }

    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Session>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::audit::Role;

    #[test]
    fn a_session_list_from_before_roles_loads_as_operator_sessions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        super::super::create_private_dir(&data).expect("data dir");
        let end = unix_now() + 3600;
        let old = format!(
            r#"{{"instance":"0123abcd","sessions":{{"aa11":{end},"bb22":{}}}}}"#,
            unix_now() - 10
        );
        fs::write(data.join(SESSIONS_FILE), old).expect("write");
        let sessions = Sessions::load(&data).expect("load");
        assert_eq!(sessions.instance, "0123abcd");
        let access = sessions.access("aa11", unix_now()).expect("live");
        assert_eq!(access, Access::operator());
        assert!(sessions.access("bb22", unix_now()).is_none(), "expired");
        // Saved again in the new form, which loads the same.
        let viewer = Access::viewer(["p".to_owned()].into(), "share1".into());
        let sid = sessions.start(unix_now(), end, viewer.clone());
        let again = Sessions::load(&data).expect("reload");
        assert_eq!(again.access(&sid, unix_now()), Some(viewer));
        assert_eq!(
            again.access("aa11", unix_now()).map(|a| a.role),
            Some(Role::Operator)
        );
    }

    #[test]
    fn ending_sessions_wakes_the_watchers() {
        let sessions = Sessions::in_memory();
        let now = unix_now();
        let viewer = Access::viewer(["p".to_owned()].into(), "s1".into());
        let a = sessions.start(now, now + 60, viewer.clone());
        let b = sessions.start(now, now + 60, viewer);
        let c = sessions.start(now, now + 60, Access::operator());
        let mut endings = sessions.endings();
        assert!(!endings.has_changed().unwrap_or(true));
        let ended = sessions.end_where(|_, s| s.access.share.as_deref() == Some("s1"));
        assert_eq!(ended, 2);
        assert!(endings.has_changed().unwrap_or(false));
        endings.mark_unchanged();
        assert!(!sessions.is_live(&a, now) && !sessions.is_live(&b, now));
        assert!(sessions.is_live(&c, now));
        assert_eq!(sessions.end_where(|_, _| false), 0);
        assert!(!endings.has_changed().unwrap_or(true), "nothing ended");
    }
}
