//! The HTTP side of authentication: the guard in front of every route, the login, share-link
//! and logout endpoints, and the Origin check for the streaming endpoints.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    Form, Json,
};
use serde::Deserialize;

use crate::contract::percent::encode_query_value;
use crate::server::{
    auth::{Access, Auth, AuthError, SESSION},
    share::{self, ShareError},
    AppState,
};

/// Paths anyone may load: the login page and the site's own files. Decided on the path the gate
/// normalized; under `/pkg/` only the exact names of embedded files are public.
fn is_public(path: &str) -> bool {
    is_public_with(path, super::assets::is_site_file)
}

fn is_public_with(path: &str, is_site_file: impl Fn(&str) -> bool) -> bool {
    matches!(
        path,
        "/login" | "/api/login" | "/api/share" | "/api/logout" | "/favicon.svg"
    ) || path
        .strip_prefix('/')
        .is_some_and(|file| file.starts_with("pkg/") && is_site_file(file))
}

/// Endpoints answered with 401 (not a redirect to the login page) when unauthenticated.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics" || path.starts_with("/ws/")
}

fn unauthorized(error: AuthError) -> Response {
    let body = serde_json::json!({"type": "error", "code": 401, "message": error.to_string()});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

/// Refuses requests without a valid session, and cross-site requests to the streams.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let is_stream = matches!(path.as_str(), "/api/ws" | "/api/events") || path.starts_with("/ws/");
    if is_stream && !same_origin(request.headers()) {
        let body = serde_json::json!({"type": "error", "code": 403, "message": "cross-origin request refused"});
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    let Some(auth) = state.auth.clone() else {
        return next.run(request).await;
    };
    if is_public(&path) {
        return next.run(request).await;
    }
    match auth.check(request.headers(), request.uri().query()) {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(error) if is_api(&path) => unauthorized(error),
        Err(_) => {
            let wanted = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            Redirect::to(&format!("/login?next={}", encode_query_value(&wanted))).into_response()
        }
    }
}

/// `GET /api/session`: 204 while signed in (the guard answers 401 otherwise). The client asks it
/// when its socket fails, because a refused upgrade and a down server look the same to a browser.
pub async fn check() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// A browser sends `Origin` on WebSocket and cross-site requests; it must name this server (the
/// gate's one implementation of the check). Without it and without `Sec-Fetch-Site`, this is
/// not a browser (curl, websocat): nothing to check.
fn same_origin(headers: &HeaderMap) -> bool {
    !matches!(
        super::gate::origin_proof(headers),
        super::gate::Proof::CrossOrigin
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(alias = "token")]
    credential: String,
    next: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential is a password: never printed.
        f.debug_struct("LoginForm")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// `GET /api/login?token=...` (the link printed on first start) and `POST /api/login` (the form).
pub async fn login_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(form): Query<LoginForm>,
) -> Response {
    login(state, peer, form)
}

pub async fn login_form(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    login(state, peer, form)
}

/// Checks the credential, within the per-address limit on failed tries; every failure is
/// logged with the address (never with what was tried).
fn login(state: AppState, peer: SocketAddr, form: LoginForm) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(auth) = state.auth else {
        return Redirect::to(&next).into_response();
    };
    let address = peer.ip();
    if let Err(retry_after) = auth.login_limiter().check(address) {
        tracing::warn!(%address, "sign-in refused: too many failed tries from this address");
        return too_many_tries(retry_after);
    }
    if !auth.check_credential(form.credential.trim()) {
        auth.login_limiter().failed(address);
        tracing::warn!(%address, "sign-in failed: wrong credential");
        return Redirect::to(&format!(
            "/login?error=1&next={}",
            encode_query_value(&next)
        ))
        .into_response();
    }
    auth.login_limiter().succeeded(address);
    tracing::info!(%address, "signed in");
    signed_in(&auth, &next)
}

fn too_many_tries(retry_after: std::time::Duration) -> Response {
    let seconds = retry_after.as_secs().max(1);
    let body = serde_json::json!({
        "type": "error",
        "code": 429,
        "message": format!("too many failed sign-ins; try again in {seconds} s"),
    });
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        Json(body),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct ShareQuery {
    key: String,
}

impl std::fmt::Debug for ShareQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key opens the link: never printed.
        f.write_str("ShareQuery { .. }")
    }
}

/// `GET /api/share?key=...`: a read-only link. Starts a viewer session limited to the link's
/// projects, ending with the link at the latest; wrong keys count as failed sign-ins.
pub async fn share_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<ShareQuery>,
) -> Response {
    let Some(auth) = state.auth else {
        return Redirect::to("/").into_response();
    };
    let address = peer.ip();
    if let Err(retry_after) = auth.login_limiter().check(address) {
        tracing::warn!(%address, "share link refused: too many failed tries from this address");
        return too_many_tries(retry_after);
    }
    let store = state.store.clone();
    let opened = tokio::task::spawn_blocking(move || share::open(&store, &query.key)).await;
    let link = match opened {
        Ok(Ok(link)) => link,
        Ok(Err(ShareError::NotValid)) => {
            auth.login_limiter().failed(address);
            tracing::warn!(%address, "a share link that does not open was tried");
            let body = serde_json::json!({"type": "error", "code": 403, "message": ShareError::NotValid.to_string()});
            return (StatusCode::FORBIDDEN, Json(body)).into_response();
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot open a share link");
            let body = serde_json::json!({"type": "error", "code": 500, "message": "the share links cannot be read"});
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    auth.login_limiter().succeeded(address);
    tracing::info!(%address, share = %link.id, "signed in with a share link");
    let next = match link.projects.as_slice() {
        [only] => format!("/projects/{}", encode_query_value(only)),
        _ => "/".to_owned(),
    };
    let lifetime = share::session_lifetime(&link, SESSION);
    let access = Access::viewer(link.projects.iter().cloned().collect(), link.id);
    let token = auth.issue_for(access, lifetime);
    (
        [(header::SET_COOKIE, auth.cookie(Some(&token)))],
        Redirect::to(&next),
    )
        .into_response()
}

fn signed_in(auth: &Arc<Auth>, next: &str) -> Response {
    let token = auth.issue(SESSION);
    (
        [(header::SET_COOKIE, auth.cookie(Some(&token)))],
        Redirect::to(next),
    )
        .into_response()
}

/// `POST /api/logout`: ends the session of the cookie and of a bearer token (both, when a
/// script sends both), so the token is refused from now on, then clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(auth) = state.auth else {
        return Redirect::to("/login").into_response();
    };
    let mut ended = false;
    if let Some(token) = auth.token_of(&headers, None) {
        ended |= auth.revoke(&token);
    }
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        ended |= auth.revoke(bearer);
    }
    if ended {
        tracing::info!("signed out: session ended");
    }
    (
        [(header::SET_COOKIE, auth.cookie(None))],
        Redirect::to("/login"),
    )
        .into_response()
}

/// Only local paths: never an open redirect to another site.
fn safe_next(next: Option<&str>) -> String {
    next.and_then(local_target)
        .unwrap_or_else(|| "/".to_owned())
}

/// `next` as a path of this server, or `None`. Browsers drop tabs and newlines from URLs and
/// read `\` as `/`, so `/<TAB>/evil` becomes `//evil` (another host): only visible ASCII is
/// accepted, and the path part must pass the same rule as request paths (no `//`, no dot
/// segments, no encoded separators or controls).
fn local_target(next: &str) -> Option<String> {
    const MAX_NEXT_BYTES: usize = 2048;
    if next.len() > MAX_NEXT_BYTES
        || !next.bytes().all(|b| b.is_ascii_graphic())
        || next.contains('\\')
    {
        return None;
    }
    let split = next.find(['?', '#']).unwrap_or(next.len());
    let (path, rest) = next.split_at(split);
    let path = crate::contract::request_path::normalize(path).ok()?;
    Some(format!("{path}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn next_is_always_a_local_path() {
        assert_eq!(safe_next(Some("/p/x?tab=log")), "/p/x?tab=log");
        assert_eq!(safe_next(Some("/p/x?next=//a#b")), "/p/x?next=//a#b");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "/\t/evil:1234/x",
            "/\n/evil",
            "/%09/evil:1234/x",
            "/\r\nSet-Cookie: x=1",
            "/%2F/evil",
            "/%2f%2fevil",
            "/x/../../evil",
            " //evil",
            "/ x",
            "/caf\u{e9}",
            "evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(4096)))), "/");
    }

    #[test]
    fn origin_must_match_host_when_present() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers), "no Origin: not a browser");
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers), "a browser that says cross-site");
    }

    #[test]
    fn the_login_page_and_exact_site_files_are_public_and_nothing_else() {
        let site = |file: &str| matches!(file, "pkg/loopwatch.wasm" | "pkg/loopwatch.js");
        for path in [
            "/login",
            "/api/login",
            "/api/share",
            "/pkg/loopwatch.wasm",
            "/pkg/loopwatch.js",
            "/favicon.svg",
        ] {
            assert!(is_public_with(path, site), "{path}");
        }
        for path in [
            "/",
            "/api/projects",
            "/api/ws",
            "/metrics",
            "/p/x",
            "/loginx",
            "/pkg/",
            "/pkg/nope.js",
            "/pkg/loopwatch.js/x",
            "/pkg/../projects/x/log",
            "/pkgx/loopwatch.js",
        ] {
            assert!(!is_public_with(path, site), "{path}");
        }
    }
}
