//! The gate in front of every request, before routing and before the session guard: the `Host`
//! must name this server (DNS rebinding), the path must pass the one path rule (and is routed in
//! its normalized form), state-changing requests must prove they come from this server's own
//! pages, and every response carries the anti-framing and content-security headers.
//!
//! The same-origin proof is implemented here once; the session guard uses it for the streams.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use axum::{
    extract::{Request, State},
    http::{header, uri::PathAndQuery, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use leptos::prelude::LeptosOptions;

use super::AppState;
use crate::contract::request_path;

/// A name (and optionally a port) the operator allows in `Host`, for a reverse proxy or a DNS
/// name of this machine: `--allowed-host NAME[:PORT]`. Without a port, any port matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    name: String,
    port: Option<u16>,
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, port) = split_authority(text)
            .ok_or_else(|| format!("{text:?} is not a host name or HOST:PORT"))?;
        Ok(Self { name, port })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Splits `host[:port]` (`[v6]:port` for IPv6) into a lower-cased host and its port. `None` for
/// anything that is not a plain authority (user info, paths, spaces, empty parts).
fn split_authority(text: &str) -> Option<(String, Option<u16>)> {
    if text.is_empty() || text.len() > 255 {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&text[..inside.len() + 2], port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let name_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !name_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

fn host_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// Whether `authority` (a `Host` value) names this server: bound to `bound`, with the
/// operator's extra names.
pub fn host_allowed(authority: &str, bound: SocketAddr, extra: &[AllowedHost]) -> bool {
    let Some((host, port)) = split_authority(authority) else {
        return false;
    };
    // Without a port the client used its scheme's default one.
    let port_matches = |wanted: u16| match port {
        Some(port) => port == wanted,
        None => wanted == 80 || wanted == 443,
    };
    if extra
        .iter()
        .any(|allowed| allowed.name == host && allowed.port.is_none_or(port_matches))
    {
        return true;
    }
    if !port_matches(bound.port()) {
        return false;
    }
    if host == "localhost" {
        return true;
    }
    // An address literal cannot be rebound by DNS: a page served from another machine at that
    // address is another origin. A name is only accepted when the operator allowed it.
    match host_ip(&host) {
        Some(ip) if ip.is_loopback() || ip == bound.ip() => true,
        // Listening on every interface: any of this machine's addresses may be used.
        Some(_) => bound.ip().is_unspecified(),
        None => false,
    }
}

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

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn only_this_servers_names_are_accepted_as_host() {
        let bound = addr("127.0.0.1:3000");
        for good in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST:3000",
            "[::1]:3000",
        ] {
            assert!(host_allowed(good, bound, &[]), "{good}");
        }
        for bad in [
            "evil.example:3000",
            "evil.example:1234",
            "127.0.0.1:3001",
            "localhost",
            "10.0.0.1:3000",
            "user@127.0.0.1:3000",
            "127.0.0.1:3000/x",
            "127.0.0.1:",
            "",
            "[::1",
        ] {
            assert!(!host_allowed(bad, bound, &[]), "{bad}");
        }
        let any = addr("0.0.0.0:3000");
        assert!(host_allowed("192.168.1.5:3000", any, &[]));
        assert!(!host_allowed("dash.example:3000", any, &[]));
        assert!(host_allowed("localhost", addr("127.0.0.1:80"), &[]));

        let extra: Vec<AllowedHost> = ["dash.example", "other.example:8443"]
            .iter()
            .map(|s| s.parse().expect("allowed host"))
            .collect();
        assert!(host_allowed("dash.example", bound, &extra));
        assert!(host_allowed("Dash.Example:443", bound, &extra));
        assert!(host_allowed("other.example:8443", bound, &extra));
        assert!(!host_allowed("other.example:3000", bound, &extra));
        assert!(!host_allowed("evil.example:3000", bound, &extra));
        for bad in ["", "a b", "x/y", "h:port", "u@h", "[zz]:1"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
    }

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
