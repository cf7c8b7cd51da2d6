//! Authentication: a login credential and a signing secret, created on first run in the data
//! directory, and the server-side sessions behind every token. A token is an HS256 JWT (`sub`,
//! `sid`, `iat`, `exp`) carried in an HttpOnly SameSite cookie named per instance, or as
//! `?token=` / `Authorization: Bearer` for scripts; it is only valid while its session id is
//! in the session list (`sessions.json`, saved atomically), so logout revokes it for good.
//! The session list, not the token, holds what a session may do (its [`Access`]): the login
//! credential starts an operator session, a share link a viewer session.
//! Also here: the data directory's permission rules and the per-address limit on sign-in tries.
//! Neither secret nor any token is ever logged.

mod limiter;
mod sessions;

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::http::{header, HeaderMap};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use self::limiter::{LoginLimiter, LOGIN_FAILURES, LOGIN_WINDOW};
use self::sessions::Sessions;
pub use crate::model::access::Access;

/// The start of the session cookie's name; each instance adds its own suffix so two servers on
/// one host (cookies ignore the port) never overwrite each other's session.
pub const COOKIE: &str = "loopwatch_session";
/// How long a session lasts, and the longest life a token may claim.
pub const SESSION: Duration = Duration::from_secs(12 * 60 * 60);
/// How far ahead of this server's clock a token's `iat` or `nbf` may be (clock skew).
pub const CLOCK_LEEWAY: u64 = 60;
/// The session list's file inside the data directory.
pub const SESSIONS_FILE: &str = "sessions.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    /// The server-side session this token belongs to.
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// What the session may do, from the session list (never from the token): filled in by
    /// [`Auth::verify`]; the default is the narrowest.
    #[serde(skip)]
    pub access: Access,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no session token")]
    Missing,
    #[error("the session has expired")]
    Expired,
    #[error("the session token is not valid")]
    Invalid,
    #[error("the session has ended")]
    Revoked,
}

/// The session cookie's kind: plain over HTTP; over HTTPS `Secure` and named `__Host-...`, so
/// it cannot be set or read by plain-HTTP pages of the same host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cookies {
    Plain,
    Secure,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    credential: String,
    sessions: Sessions,
    limiter: LoginLimiter,
    /// Cookies get `Secure` and the `__Host-` prefix (the server speaks HTTPS).
    cookies: Cookies,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys, the credential or the session ids.
        f.write_str("Auth { .. }")
    }
}

/// What the data directory held, or now holds.
pub struct Loaded {
    pub auth: Auth,
    /// The credential was created just now: show the operator the login link once.
    pub first_run: bool,
}

impl Auth {
    /// Reads the secret, the credential and the sessions from `data_dir`, creating them (mode
    /// 0600) if absent. Expired sessions and leftover temporary files are removed.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Loaded> {
        create_private_dir(data_dir)?;
        let (secret, _) = read_or_create(&data_dir.join("secret.key"))?;
        let (credential, first_run) = read_or_create(&data_dir.join("login.token"))?;
        let sessions = Sessions::load(data_dir)?;
        Ok(Loaded {
            auth: Auth::with_sessions(&secret, credential, sessions),
            first_run,
        })
    }

    #[cfg(test)]
    fn from_secrets(secret: &str, credential: String) -> Self {
        Self::with_sessions(secret, credential, Sessions::in_memory())
    }

    fn with_sessions(secret: &str, credential: String, sessions: Sessions) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            credential,
            sessions,
            limiter: LoginLimiter::default(),
            cookies: Cookies::Plain,
        }
    }

    /// How the session cookie is set: `Secure` and named `__Host-...` for a server reached over
    /// HTTPS.
    pub fn with_cookies(mut self, cookies: Cookies) -> Self {
        self.cookies = cookies;
        self
    }

    /// Replaces the sign-in limits (the default is [`LoginLimiter::default`]).
    pub fn with_login_limiter(mut self, limiter: LoginLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// The per-address limit on failed sign-ins.
    pub fn login_limiter(&self) -> &LoginLimiter {
        &self.limiter
    }

    /// The login credential, for the one-time link.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// Whether `given` is the login credential (compared in constant time).
    pub fn check_credential(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.credential.as_bytes())
    }

    /// Starts an operator session lasting `lifetime` (at most [`SESSION`]) and returns its
    /// token.
    pub fn issue(&self, lifetime: Duration) -> String {
        self.issue_for(Access::operator(), lifetime)
    }

    /// Starts a session with `access` lasting `lifetime` (at most [`SESSION`]).
    pub fn issue_for(&self, access: Access, lifetime: Duration) -> String {
        let now = unix_now();
        let exp = now.saturating_add(lifetime.min(SESSION).as_secs());
        let sub = match access.share {
            Some(_) => "viewer",
            None => "admin",
        };
        let sid = self.sessions.start(now, exp, access);
        self.sign(&Claims {
            sub: sub.into(),
            sid,
            iat: now,
            exp,
            nbf: None,
            access: Access::default(),
        })
    }

    fn sign(&self, claims: &Claims) -> String {
        // Encoding HS256 with an in-memory key cannot fail.
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap_or_default()
    }

    /// The claims of a token signed by this server whose session is still live, with sane
    /// times: not issued (or valid from) in the future, not expired, no longer than a session.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let now = unix_now();
        let latest_start = now.saturating_add(CLOCK_LEEWAY);
        if claims.iat > latest_start || claims.nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(AuthError::Invalid);
        }
        match claims.exp.checked_sub(claims.iat) {
            Some(life) if life <= SESSION.as_secs() => {}
            _ => return Err(AuthError::Invalid),
        }
        if claims.exp <= now {
            return Err(AuthError::Expired);
        }
        let mut claims = claims;
        claims.access = self
            .sessions
            .access(&claims.sid, now)
            .ok_or(AuthError::Revoked)?;
        Ok(claims)
    }

    /// Whether the session behind already verified `claims` is still live (not ended by a
    /// logout since): long-lived streams ask this now and then.
    pub fn is_live(&self, claims: &Claims) -> bool {
        let now = unix_now();
        claims.exp > now && self.sessions.is_live(&claims.sid, now)
    }

    /// Ends every session opened with the share link `share`; returns how many ended. Their
    /// streams hear of it through [`Auth::endings`].
    pub fn end_share(&self, share: &str) -> usize {
        self.sessions
            .end_where(|_, session| session.access.share.as_deref() == Some(share))
    }

    /// Ends the viewer sessions whose share link `is_gone` (revoked or expired meanwhile, e.g.
    /// while the server was down); returns how many ended.
    pub fn end_shares_where(&self, is_gone: impl Fn(&str) -> bool) -> usize {
        self.sessions
            .end_where(|_, session| session.access.share.as_deref().is_some_and(&is_gone))
    }

    /// Changes each time sessions end (a sign-out, a revoked link): long-lived streams wait on
    /// it and then ask [`Auth::is_live`].
    pub fn endings(&self) -> watch::Receiver<u64> {
        self.sessions.endings()
    }

    /// Ends the session of `token` (signed by this server; expired or not). Returns whether a
    /// live session was ended.
    pub fn revoke(&self, token: &str) -> bool {
        #[derive(Deserialize)]
        struct SessionOnly {
            sid: String,
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_required_spec_claims::<&str>(&[]);
        match decode::<SessionOnly>(token, &self.decoding, &validation) {
            Ok(data) => self.sessions.end(&data.claims.sid),
            Err(_) => false,
        }
    }

    /// The session cookie's name on this instance.
    pub fn cookie_name(&self) -> String {
        let prefix = if self.cookies == Cookies::Secure {
            "__Host-"
        } else {
            ""
        };
        format!("{prefix}{COOKIE}_{}", self.sessions.instance)
    }

    /// The `Set-Cookie` value for a new session (or, with `None`, one that ends it).
    pub fn cookie(&self, token: Option<&str>) -> String {
        let name = self.cookie_name();
        // `__Host-` requires `Secure` and `Path=/` and forbids `Domain`.
        let secure = if self.cookies == Cookies::Secure {
            "; Secure"
        } else {
            ""
        };
        match token {
            Some(token) => format!(
                "{name}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                SESSION.as_secs()
            ),
            None => format!("{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
        }
    }

    /// The session token of a request: this instance's cookie, a bearer header, or `?token=`.
    pub fn token_of(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        let wanted = self.cookie_name();
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == wanted).then(|| value.to_owned())
            });
        let from_bearer = || {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned)
        };
        let from_query = || {
            query?.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name == "token").then(|| value.to_owned())
            })
        };
        from_cookie.or_else(from_bearer).or_else(from_query)
    }

    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Claims, AuthError> {
        let token = self.token_of(headers, query).ok_or(AuthError::Missing)?;
        self.verify(&token)
    }
}

/// Writes `bytes` next to `file` (mode 0600, fsynced) and renames it into place, so a crash
/// leaves either the old file or the new one, never half of one.
pub(crate) fn write_atomically(file: &Path, temp_prefix: &str, bytes: &[u8]) -> io::Result<()> {
    let dir = file
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no data directory"))?;
    create_private_dir(dir)?;
    // `tempfile` creates the file with mode 0600 and a random name in the same directory (the
    // rename must not cross file systems).
    let mut temp = tempfile::Builder::new()
        .prefix(temp_prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.write_all(b"\n")?;
    temp.as_file().sync_all()?;
    temp.persist(file).map_err(|error| error.error)?;
    // The rename itself is durable once the directory is synced.
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes `{prefix}*.tmp` files a crash left behind in `dir` (a save in progress is never
/// running at start-up). Failures are only logged: they cost disk space, not correctness.
pub(crate) fn remove_temp_files(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_temp = name.starts_with(prefix) && name.ends_with(".tmp");
        if !is_temp || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::info!(file = %entry.path().display(), "removed a temporary file left by an interrupted save")
            }
            Err(error) => {
                tracing::warn!(file = %entry.path().display(), %error, "cannot remove a leftover temporary file")
            }
        }
    }
}

/// The default data directory: `$LOOPWATCH_DATA_DIR`, else `$XDG_DATA_HOME/loopwatch`, else
/// `~/.local/share/loopwatch`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOOPWATCH_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("loopwatch");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/loopwatch")
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates the data directory (mode 0700) when it is absent. An existing directory is never
/// chmodded (it may be shared, like `/tmp`); see [`check_private_dir`] for what is refused.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    if check_private_dir(dir)? {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Whether the data directory exists (`Ok(false)`: not yet). One that other users could write
/// to, or that belongs to someone else, is an error: they could replace the secrets in it.
pub(crate) fn check_private_dir(dir: &Path) -> io::Result<bool> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", dir.display()),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o7777;
        let refuse = |why: String| {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "data directory {} {why} (mode {mode:o}); use a directory only you can                      write to (a new one is created with mode 700), or run `chmod go-w {}` if                      it is yours alone",
                    dir.display(),
                    dir.display()
                ),
            ))
        };
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return refuse(format!(
                "belongs to another user (uid {}, not {me})",
                meta.uid()
            ));
        }
        if mode & 0o022 != 0 {
            return refuse("is writable by other users".into());
        }
    }
    Ok(true)
}

/// Reads a secret file, or creates it with 32 random bytes (hex). Returns (value, created).
fn read_or_create(path: &Path) -> io::Result<(String, bool)> {
    match fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 32 => return Ok((text.trim().to_owned(), false)),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is too short to be a secret; delete it to make a new one",
                    path.display()
                ),
            ))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let value = random_hex(32)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(value.as_bytes())?;
    Ok((value, true))
}

#[cfg(test)]
mod tests {
    use super::sessions::MAX_SESSIONS;
    use super::*;
    use axum::http::HeaderValue;
    use std::net::IpAddr;

    #[test]
    fn first_run_creates_private_secrets_and_later_runs_reuse_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = Auth::load_or_create(&data).expect("create");
        assert!(first.first_run);
        // A token issued before the restart is still valid after it (same secret, same list).
        let token = first.auth.issue(SESSION);
        let again = Auth::load_or_create(&data).expect("load");
        assert!(!again.first_run);
        assert_eq!(first.auth.credential(), again.auth.credential());
        assert_eq!(first.auth.credential().len(), 64);
        assert_eq!(first.auth.cookie_name(), again.auth.cookie_name());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for file in ["secret.key", SESSIONS_FILE] {
                let mode = fs::metadata(data.join(file))
                    .expect("meta")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o077, 0, "{file} readable by others: {mode:o}");
            }
            let mode = fs::metadata(&data).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "data directory mode {mode:o}");
        }
        assert_eq!(
            again.auth.verify(&token).map(|c| c.sub),
            Ok("admin".to_owned())
        );
        assert!(again.auth.check_credential(first.auth.credential()));
        assert!(!again.auth.check_credential("guess"));
        assert!(
            format!("{:?}", again.auth).len() < 20,
            "debug output hides secrets"
        );
    }

    #[test]
    fn expired_forged_and_missing_tokens_are_refused() {
        let auth = Auth::from_secrets(&"k".repeat(64), "c".repeat(64));
        let other = Auth::from_secrets(&"x".repeat(64), "c".repeat(64));
        let now = unix_now();
        let sid = auth.sessions.start(now, now + 100, Access::operator());
        let expired = auth.sign(&Claims {
            sub: "admin".into(),
            sid,
            iat: now - 100,
            exp: now - 50,
            nbf: None,
            access: Access::default(),
        });
        assert_eq!(auth.verify(&expired), Err(AuthError::Expired));
        assert_eq!(auth.verify(&other.issue(SESSION)), Err(AuthError::Invalid));
        assert_eq!(auth.verify("not.a.jwt"), Err(AuthError::Invalid));
        assert_eq!(auth.check(&HeaderMap::new(), None), Err(AuthError::Missing));
    }

    #[test]
    fn times_in_the_future_and_overlong_lives_are_refused_without_overflow() {
        let auth = Auth::from_secrets(&"k".repeat(64), "c".repeat(64));
        let now = unix_now();
        let sid = auth.sessions.start(now, u64::MAX, Access::operator());
        let claims = |iat: u64, exp: u64, nbf: Option<u64>| Claims {
            sub: "admin".into(),
            sid: sid.clone(),
            iat,
            exp,
            nbf,
            access: Access::default(),
        };
        let hour = 3600;
        assert!(auth
            .verify(&auth.sign(&claims(now, now + hour, None)))
            .is_ok());
        assert!(auth
            .verify(&auth.sign(&claims(now, now + hour, Some(now))))
            .is_ok());
        for (what, bad) in [
            ("100 years", claims(now, now + 100 * 365 * 24 * hour, None)),
            ("u64::MAX", claims(now, u64::MAX, None)),
            ("iat u64::MAX", claims(u64::MAX, u64::MAX, None)),
            ("future iat", claims(now + hour, now + 2 * hour, None)),
            ("future nbf", claims(now, now + hour, Some(now + 600))),
            ("exp before iat", claims(now + 10, now + 5, None)),
            ("13 hours", claims(now, now + 13 * hour, None)),
        ] {
            assert_eq!(
                auth.verify(&auth.sign(&bad)),
                Err(AuthError::Invalid),
                "{what}"
            );
        }
    }

    #[test]
    fn a_revoked_session_stays_revoked_and_unknown_sessions_are_refused() {
        let auth = Auth::from_secrets(&"k".repeat(64), "c".repeat(64));
        let token = auth.issue(SESSION);
        let kept = auth.issue(SESSION);
        let claims = auth.verify(&token).expect("valid");
        assert!(auth.is_live(&claims));
        assert!(auth.revoke(&token));
        assert!(
            !auth.is_live(&claims),
            "a stream holding these claims learns of the logout"
        );
        assert_eq!(auth.verify(&token), Err(AuthError::Revoked));
        assert!(!auth.revoke(&token), "already ended");
        assert!(auth.verify(&kept).is_ok(), "other sessions live on");
        // A validly signed token whose session this server never started.
        let now = unix_now();
        let unknown = auth.sign(&Claims {
            sub: "admin".into(),
            sid: "0".repeat(32),
            iat: now,
            exp: now + 60,
            nbf: None,
            access: Access::default(),
        });
        assert_eq!(auth.verify(&unknown), Err(AuthError::Revoked));
        // Not signed by this server: nothing is revoked.
        let other = Auth::from_secrets(&"x".repeat(64), "c".repeat(64));
        assert!(!auth.revoke(&other.issue(SESSION)));
    }

    #[test]
    fn a_session_carries_its_role_and_scope_and_a_revoked_share_ends_its_sessions() {
        use crate::model::audit::Role;
        let auth = Auth::from_secrets(&"k".repeat(64), "c".repeat(64));
        let operator = auth.verify(&auth.issue(SESSION)).expect("operator");
        assert_eq!(operator.access, Access::operator());
        let viewer = Access::viewer(["alpha".to_owned()].into(), "share1".into());
        let token = auth.issue_for(viewer.clone(), SESSION);
        let claims = auth.verify(&token).expect("viewer");
        assert_eq!(claims.access, viewer);
        assert_eq!(claims.access.role, Role::Viewer);
        let other = auth.issue_for(
            Access::viewer(["bravo".to_owned()].into(), "share2".into()),
            SESSION,
        );
        let endings = auth.endings();
        assert_eq!(auth.end_share("share1"), 1);
        assert!(endings.has_changed().unwrap_or(false));
        assert!(!auth.is_live(&claims));
        assert_eq!(auth.verify(&token), Err(AuthError::Revoked));
        assert!(auth.verify(&other).is_ok());
        assert_eq!(auth.end_shares_where(|share| share == "share2"), 1);
        assert!(auth.is_live(&operator), "operators have no share link");
    }

    #[test]
    fn the_session_list_is_bounded() {
        let auth = Auth::from_secrets(&"k".repeat(64), "c".repeat(64));
        let first = auth.issue(Duration::from_secs(60));
        for _ in 0..MAX_SESSIONS {
            auth.issue(SESSION);
        }
        assert_eq!(auth.sessions.lock().len(), MAX_SESSIONS);
        assert_eq!(
            auth.verify(&first),
            Err(AuthError::Revoked),
            "the session closest to its end made room"
        );
    }

    #[test]
    fn tokens_are_found_in_the_instance_cookie_bearer_and_query() {
        let auth = Auth::from_secrets(&"k".repeat(64), "c".repeat(64));
        let name = auth.cookie_name();
        assert!(name.starts_with("loopwatch_session_") && name.len() == COOKIE.len() + 9);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; loopwatch_session=T0; {name}=T1; c=d"))
                .expect("header"),
        );
        assert_eq!(auth.token_of(&headers, Some("token=T3")), Some("T1".into()));
        let mut other_instance = HeaderMap::new();
        other_instance.insert(
            header::COOKIE,
            HeaderValue::from_static("loopwatch_session=T0; loopwatch_session_00000000=T9"),
        );
        assert_eq!(auth.token_of(&other_instance, None), None);
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer T2"));
        assert_eq!(auth.token_of(&bearer, None), Some("T2".into()));
        assert_eq!(
            auth.token_of(&HeaderMap::new(), Some("x=1&token=T3")),
            Some("T3".into())
        );
        assert_eq!(auth.token_of(&HeaderMap::new(), Some("x=1")), None);
    }

    #[test]
    fn cookies_over_https_are_secure_and_host_prefixed() {
        let plain = Auth::from_secrets(&"k".repeat(64), "c".repeat(64));
        let cookie = plain.cookie(Some("T"));
        assert!(cookie.starts_with(&format!("{}=T;", plain.cookie_name())));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        let secure = plain.with_cookies(Cookies::Secure);
        let cookie = secure.cookie(Some("T"));
        assert!(cookie.starts_with("__Host-loopwatch_session_"), "{cookie}");
        assert!(cookie.contains("; Secure") && cookie.contains("Path=/"));
        assert!(!cookie.contains("Domain"));
        assert!(secure.cookie(None).contains("Max-Age=0"));
    }

    #[test]
    fn failed_sign_ins_are_limited_per_address_in_bounded_memory() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60), 100);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            limiter.failed(a);
        }
        let retry = limiter.check(a).expect_err("limited");
        assert!(retry >= Duration::from_secs(1) && retry <= Duration::from_secs(60));
        assert!(limiter.check(b).is_ok(), "another address is not limited");
        // One host's IPv6 /64 counts as one client.
        for last in 1..=3u16 {
            limiter.failed(IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 0, last,
            )));
        }
        let neighbour = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 9, 9, 9, 9));
        assert!(limiter.check(neighbour).is_err());
        // A flood of addresses never tracks more than the capacity.
        for n in 0..10_000u32 {
            limiter.failed(IpAddr::V4(n.into()));
        }
        assert!(limiter.tracked() <= 100, "{}", limiter.tracked());
        // A success clears the count.
        let fresh = LoginLimiter::new(2, Duration::from_secs(60), 10);
        fresh.failed(b);
        fresh.succeeded(b);
        fresh.failed(b);
        assert!(fresh.check(b).is_ok());
        // The window passes.
        let short = LoginLimiter::new(1, Duration::ZERO, 10);
        short.failed(a);
        assert!(short.check(a).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_shared_data_directory_is_refused_and_left_as_it_was() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        for mode in [0o1777, 0o777, 0o770, 0o720] {
            fs::set_permissions(&shared, fs::Permissions::from_mode(mode)).expect("chmod");
            let Err(error) = Auth::load_or_create(&shared) else {
                panic!("shared directory {mode:o} accepted");
            };
            let text = error.to_string();
            assert!(text.contains(&shared.display().to_string()), "{text}");
            assert!(text.contains("writable by other users"), "{text}");
            let now = fs::metadata(&shared).expect("meta").permissions().mode() & 0o7777;
            assert_eq!(now, mode, "mode changed");
            assert!(!shared.join("secret.key").exists());
        }
        // An existing private directory keeps its mode (750 stays 750).
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o750)).expect("chmod");
        Auth::load_or_create(&shared).expect("private enough");
        let now = fs::metadata(&shared).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(now, 0o750);
    }
}
