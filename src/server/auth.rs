//! Authentication: a login credential and a signing secret, created on first run in the data
//! directory; sessions are HS256 JWTs (`sub`, `iat`, `exp`) carried in an HttpOnly SameSite
//! cookie, or as `?token=` / `Authorization: Bearer` for scripts. Neither secret is ever logged.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::http::{header, HeaderMap};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub const COOKIE: &str = "loopwatch_session";
/// How long a session lasts.
pub const SESSION: Duration = Duration::from_secs(12 * 60 * 60);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no session token")]
    Missing,
    #[error("the session has expired")]
    Expired,
    #[error("the session token is not valid")]
    Invalid,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    credential: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys or the credential.
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
    /// Reads the secret and the credential from `data_dir`, creating them (mode 0600) if absent.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Loaded> {
        create_private_dir(data_dir)?;
        let (secret, _) = read_or_create(&data_dir.join("secret.key"))?;
        let (credential, first_run) = read_or_create(&data_dir.join("login.token"))?;
        Ok(Loaded {
            auth: Auth::from_secrets(&secret, credential),
            first_run,
        })
    }

    fn from_secrets(secret: &str, credential: String) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            credential,
        }
    }

    /// The login credential, for the one-time link.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// Whether `given` is the login credential (compared in constant time).
    pub fn check_credential(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.credential.as_bytes())
    }

    pub fn issue(&self, lifetime: Duration) -> String {
        let now = unix_now();
        self.sign(&Claims {
            sub: "admin".into(),
            iat: now,
            exp: now + lifetime.as_secs(),
        })
    }

    fn sign(&self, claims: &Claims) -> String {
        // Encoding HS256 with an in-memory key cannot fail.
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }

    /// The session token of a request: the cookie, a bearer header, or `?token=`.
    pub fn token_of(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == COOKIE).then(|| value.to_owned())
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
        let token = Self::token_of(headers, query).ok_or(AuthError::Missing)?;
        self.verify(&token)
    }
}

/// The `Set-Cookie` value for a new session (or, with `None`, one that ends it).
pub fn session_cookie(token: Option<&str>) -> String {
    match token {
        Some(token) => format!(
            "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            SESSION.as_secs()
        ),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
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

fn unix_now() -> u64 {
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

pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
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
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
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
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn first_run_creates_private_secrets_and_later_runs_reuse_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = Auth::load_or_create(&data).expect("create");
        assert!(first.first_run);
        let again = Auth::load_or_create(&data).expect("load");
        assert!(!again.first_run);
        assert_eq!(first.auth.credential(), again.auth.credential());
        assert_eq!(first.auth.credential().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data.join("secret.key"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "secret readable by others: {mode:o}");
        }
        // A token from one run verifies in the next (same secret).
        let token = first.auth.issue(SESSION);
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
        let expired = auth.sign(&Claims {
            sub: "admin".into(),
            iat: now - 100,
            exp: now - 50,
        });
        assert_eq!(auth.verify(&expired), Err(AuthError::Expired));
        assert_eq!(auth.verify(&other.issue(SESSION)), Err(AuthError::Invalid));
        assert_eq!(auth.verify("not.a.jwt"), Err(AuthError::Invalid));
        assert_eq!(auth.check(&HeaderMap::new(), None), Err(AuthError::Missing));
    }

    #[test]
    fn tokens_are_found_in_cookie_bearer_and_query() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; loopwatch_session=T1; c=d"),
        );
        assert_eq!(
            Auth::token_of(&headers, Some("token=T3")),
            Some("T1".into())
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer T2"));
        assert_eq!(Auth::token_of(&bearer, None), Some("T2".into()));
        assert_eq!(
            Auth::token_of(&HeaderMap::new(), Some("x=1&token=T3")),
            Some("T3".into())
        );
        assert_eq!(Auth::token_of(&HeaderMap::new(), Some("x=1")), None);
    }
}
