//! The gate in front of every request, before routing and before the session guard: the `Host`
//! must name this server (DNS rebinding), the path must pass the one path rule (and is routed in
//! its normalized form), state-changing requests must prove they come from this server's own
//! pages, and every response carries the anti-framing and content-security headers.
//!
//! The same-origin proof is implemented here once; the session guard uses it for the streams.

use axum::{
    extract::{Request, State},
    http::{header, uri::PathAndQuery, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use leptos::prelude::LeptosOptions;

use crate::contract::{
    request_host::{host_allowed, split_authority},
    request_path,
};
use crate::server::AppState;

/// What a request shows about where it was sent from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// `Origin` names this server, or (without `Origin`) `Sec-Fetch-Site: same-origin`.
    SameOrigin,
    /// A browser says the request comes from another origin.
    CrossOrigin,
    /// Neither header: not a browser (curl, scripts), or a browser navigation.
    Unknown,
}

/// Reads the same-origin proof of a request whose `Host` the gate has already checked.
/// `Origin` is compared with that `Host` (host and port; either scheme, since a TLS-terminating
/// proxy in front speaks plain HTTP to us and one port serves only one scheme).
pub fn origin_proof(headers: &HeaderMap) -> Proof {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("invalid"));
    let Some(origin) = headers.get(header::ORIGIN) else {
        return match fetch_site {
            None | Some("none") => Proof::Unknown,
            Some("same-origin") => Proof::SameOrigin,
            Some(_) => Proof::CrossOrigin,
        };
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let matches = match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin_matches_host(origin, host),
        _ => false,
    };
    // A browser that says "cross-site" is believed even when Origin looks right.
    if matches && matches!(fetch_site, None | Some("same-origin")) {
        Proof::SameOrigin
    } else {
        Proof::CrossOrigin
    }
}

fn origin_matches_host(origin: &str, host: &str) -> bool {
    let (default_port, authority) = if let Some(rest) = origin.strip_prefix("http://") {
        (80, rest)
    } else if let Some(rest) = origin.strip_prefix("https://") {
        (443, rest)
    } else {
        // `null` (sandboxed frames, file: pages) and anything else: not us.
        return false;
    };
    let (Some((origin_host, origin_port)), Some((host, host_port))) =
        (split_authority(authority), split_authority(host))
    else {
        return false;
    };
    origin_host == host && origin_port.unwrap_or(default_port) == host_port.unwrap_or(default_port)
}

/// Requests that change state: everything but reads.
fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses what a browser says comes from another origin: for a stream routed with it (the
/// session guard checks the streams it names; a stream of its own carries this instead).
pub async fn same_origin_stream(request: Request, next: Next) -> Response {
    if matches!(origin_proof(request.headers()), Proof::CrossOrigin) {
        return refuse(StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    next.run(request).await
}

/// Plain HTML forms post here (the sign-in page); every other state change is a JSON request,
/// which a page of another origin cannot send without a CORS preflight this server never grants.
fn is_form_endpoint(path: &str) -> bool {
    matches!(path, "/api/login" | "/api/logout")
}

fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..7))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Why the gate turned a request away: a status and a message for the client.
struct Refusal(StatusCode, String);

fn refuse(status: StatusCode, message: &str) -> Refusal {
    Refusal(status, message.to_owned())
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(status, message) = self;
        let body =
            serde_json::json!({"type": "error", "code": status.as_u16(), "message": message});
        (status, Json(body)).into_response()
    }
}

/// The gate itself: wraps the whole router (see `super::app`), so it runs before routing.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = match check(&state, request) {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    };
    add_security_headers(response.headers_mut(), &state.leptos_options);
    response
}

fn check(state: &AppState, mut request: Request) -> Result<Request, Refusal> {
    // HTTP/2 carries the authority in the URI instead of `Host`; absolute-form HTTP/1.1 in both.
    let host = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_owned),
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    };
    let bound = state.leptos_options.site_addr;
    let named_us = |authority: &str| host_allowed(authority, bound, &state.allowed_hosts);
    let uri_authority_ok = request
        .uri()
        .authority()
        .is_none_or(|authority| named_us(authority.as_str()));
    let host = match host {
        Some(host) if uri_authority_ok && named_us(&host) => host,
        _ => {
            return Err(refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "this server does not answer to that host name (see --allowed-host)",
            ))
        }
    };
    if !request.headers().contains_key(header::HOST) {
        if let Ok(value) = HeaderValue::from_str(&host) {
            request.headers_mut().insert(header::HOST, value);
        }
    }

    let raw = request.uri().path();
    let path = match request_path::normalize(raw) {
        Ok(path) => path,
        Err(why) => return Err(refuse(StatusCode::BAD_REQUEST, &why.to_string())),
    };
    if path != raw {
        let rewritten = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = PathAndQuery::try_from(rewritten).ok();
        match Uri::from_parts(parts) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return Err(refuse(StatusCode::BAD_REQUEST, "malformed request target")),
        }
    }

    if is_state_changing(request.method()) {
        let headers = request.headers();
        let bearer = has_bearer(headers);
        match origin_proof(headers) {
            Proof::SameOrigin => {}
            // A script with its own token: no ambient credential a page could borrow.
            Proof::Unknown if bearer => {}
            Proof::Unknown | Proof::CrossOrigin => {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "cross-origin request refused: send Origin (browsers do) or an Authorization: Bearer token",
                ))
            }
        }
        if !bearer && !is_form_endpoint(&path) && !is_json(headers) {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "state-changing requests must be application/json",
            ));
        }
    }
    Ok(request)
}

/// The Content-Security-Policy of every response; pages add the nonce of their inline
/// hydration and streaming scripts.
pub fn content_security_policy(nonce: Option<&str>, options: &LeptosOptions) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    // `cargo leptos watch` reloads the page over its own socket.
    let reload = if std::env::var_os("LEPTOS_WATCH").is_some() {
        let port = options.reload_external_port.unwrap_or(options.reload_port);
        format!(" ws://localhost:{port} ws://127.0.0.1:{port}")
    } else {
        String::new()
    };
    // wasm-unsafe-eval: compiling the client's WebAssembly (no JavaScript eval).
    // Inline styles: the UI sets `style` attributes (chart sizes, bar widths); styles cannot
    // run code.
    format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'{reload}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Called while a page renders: its CSP names the nonce Leptos put on the page's inline scripts.
pub fn provide_page_policy(options: &LeptosOptions) {
    use leptos::prelude::use_context;
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(Some(&nonce), options)) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

fn add_security_headers(headers: &mut HeaderMap, options: &LeptosOptions) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(value) = HeaderValue::from_str(&content_security_policy(None, options)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn origin_is_compared_with_the_host() {
        let host = ("host", "127.0.0.1:3000");
        assert_eq!(origin_proof(&headers(&[host])), Proof::Unknown);
        for same in ["http://127.0.0.1:3000", "https://127.0.0.1:3000"] {
            assert_eq!(
                origin_proof(&headers(&[host, ("origin", same)])),
                Proof::SameOrigin
            );
        }
        for foreign in [
            "http://evil.example",
            "http://127.0.0.1:3001",
            "http://127.0.0.1",
            "null",
            "127.0.0.1:3000",
        ] {
            assert_eq!(
                origin_proof(&headers(&[host, ("origin", foreign)])),
                Proof::CrossOrigin,
                "{foreign}"
            );
        }
        assert_eq!(
            origin_proof(&headers(&[
                ("host", "dash.example"),
                ("origin", "https://dash.example")
            ])),
            Proof::SameOrigin
        );
        assert_eq!(
            origin_proof(&headers(&[host, ("sec-fetch-site", "same-origin")])),
            Proof::SameOrigin
        );
        for site in ["cross-site", "same-site"] {
            assert_eq!(
                origin_proof(&headers(&[host, ("sec-fetch-site", site)])),
                Proof::CrossOrigin
            );
            assert_eq!(
                origin_proof(&headers(&[
                    host,
                    ("origin", "http://127.0.0.1:3000"),
                    ("sec-fetch-site", site)
                ])),
                Proof::CrossOrigin
            );
        }
    }

    #[test]
    fn only_json_and_bearer_are_recognized() {
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(has_bearer(&headers(&[("authorization", "Bearer abc")])));
        assert!(!has_bearer(&headers(&[("authorization", "Basic abc")])));
    }
}
