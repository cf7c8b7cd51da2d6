//! Read-only share links: each names some projects and an end; opening one starts a viewer
//! session limited to them. The link's key is random, shown once, and kept only as a SHA-256
//! hash in the store, so the database alone opens nothing. Revoking a link ends its sessions.

use std::{collections::BTreeSet, time::Duration};

use sha2::{Digest, Sha256};

use super::{
    auth::{random_hex, unix_now},
    clock,
    store::{shares::NewShare, Store, StoreError},
};
use crate::model::access::{NewShareLink, ShareLink};

/// How long a link opens when no end is given.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The longest life a link may have.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 60 * 60);
/// Projects one link may name.
pub const MAX_PROJECTS: usize = 100;
/// The path a link opens (its key follows as `?key=`).
pub const PATH: &str = "/api/share";

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("a share link needs at least one project")]
    NoProject,
    #[error("a share link names at most {MAX_PROJECTS} projects")]
    TooManyProjects,
    #[error("{0:?} is not a project id")]
    BadProject(String),
    #[error("a share link lasts from one minute to 366 days")]
    BadLifetime,
    #[error("this share link does not open: it was revoked, has expired or is mistyped")]
    NotValid,
    #[error("no randomness for a link key")]
    NoRandomness,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a link to `projects` that opens for `lifetime`; the answer holds its key, once.
pub fn create(
    store: &Store,
    projects: &BTreeSet<String>,
    lifetime: Duration,
) -> Result<NewShareLink, ShareError> {
    if projects.is_empty() {
        return Err(ShareError::NoProject);
    }
    if projects.len() > MAX_PROJECTS {
        return Err(ShareError::TooManyProjects);
    }
    if let Some(bad) = projects.iter().find(|id| !is_project_id(id)) {
        return Err(ShareError::BadProject(bad.chars().take(64).collect()));
    }
    if lifetime < Duration::from_secs(60) || lifetime > MAX_LIFETIME {
        return Err(ShareError::BadLifetime);
    }
    let key = random_hex(32).map_err(|_| ShareError::NoRandomness)?;
    let id = random_hex(6).map_err(|_| ShareError::NoRandomness)?;
    let share = store.add_share(&NewShare {
        id,
        key_hash: key_hash(&key),
        projects: projects.iter().cloned().collect(),
        created: clock::now(),
        expires: unix_now().saturating_add(lifetime.as_secs()),
    })?;
    Ok(NewShareLink {
        share,
        path: format!("{PATH}?key={key}"),
    })
}

/// The live link whose key is `key`.
pub fn open(store: &Store, key: &str) -> Result<ShareLink, ShareError> {
    // Keys are 64 hex digits: anything else is not looked up.
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ShareError::NotValid);
    }
    match store.share_by_key(&key_hash(&key.to_ascii_lowercase()))? {
        Some(share) if share.is_live(unix_now()) => Ok(share),
        _ => Err(ShareError::NotValid),
    }
}

/// How long a viewer session opened now with `share` may last: until the link's end, at most
/// `session`.
pub fn session_lifetime(share: &ShareLink, session: Duration) -> Duration {
    Duration::from_secs(share.expires.saturating_sub(unix_now())).min(session)
}

/// Whether `share` (an id from a session) no longer opens: revoked, expired or unknown. A
/// store that cannot be read keeps the session (the check runs again on the next start).
pub fn is_gone(store: &Store, share: &str) -> bool {
    match store.share(share) {
        Ok(Some(link)) => !link.is_live(unix_now()),
        Ok(None) => true,
        Err(error) => {
            tracing::warn!(%error, "cannot read the share links");
            false
        }
    }
}

/// A project id as discovery makes them: short, printable, no separators that could make a
/// path or a topic of it.
fn is_project_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| !c.is_control() && !matches!(c, '/' | '\\' | ',' | ' '))
}

/// What the store keeps of a key (SHA-256, hex).
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `7d`, `12h`, `90m`, `2w` (any form `humantime` reads).
pub fn parse_lifetime(text: &str) -> Result<Duration, ShareError> {
    humantime::parse_duration(text.trim()).map_err(|_| ShareError::BadLifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn projects(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn a_link_opens_with_its_key_only_and_the_store_never_holds_the_key() {
        let store = Store::in_memory().expect("store");
        let new = create(&store, &projects(&["alpha"]), DEFAULT_LIFETIME).expect("create");
        let key = new.path.strip_prefix("/api/share?key=").expect("path");
        assert_eq!(key.len(), 64);
        assert_eq!(open(&store, key).expect("opens"), new.share);
        let mut wrong = key.to_owned();
        wrong.replace_range(0..1, if key.starts_with('0') { "1" } else { "0" });
        assert!(matches!(open(&store, &wrong), Err(ShareError::NotValid)));
        assert!(matches!(open(&store, "short"), Err(ShareError::NotValid)));
        assert!(store.share_by_key(key).expect("lookup").is_none());
        assert!(!is_gone(&store, &new.share.id));
        assert!(store
            .revoke_share(&new.share.id, &clock::now())
            .expect("revoke"));
        assert!(matches!(open(&store, key), Err(ShareError::NotValid)));
        assert!(is_gone(&store, &new.share.id));
        assert!(is_gone(&store, "unknown"));
    }

    #[test]
    fn bad_requests_are_refused() {
        let store = Store::in_memory().expect("store");
        let day = Duration::from_secs(86_400);
        assert!(matches!(
            create(&store, &projects(&[]), day),
            Err(ShareError::NoProject)
        ));
        assert!(matches!(
            create(&store, &projects(&["a/b"]), day),
            Err(ShareError::BadProject(_))
        ));
        assert!(matches!(
            create(&store, &projects(&["a"]), Duration::from_secs(5)),
            Err(ShareError::BadLifetime)
        ));
        assert!(matches!(
            create(&store, &projects(&["a"]), 400 * day),
            Err(ShareError::BadLifetime)
        ));
        assert_eq!(parse_lifetime("7d").expect("7d"), 7 * day);
        assert!(parse_lifetime("soon").is_err());
    }
}
