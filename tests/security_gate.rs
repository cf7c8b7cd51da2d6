//! The request gate over real sockets, as an attacker would try it: raw paths with dot segments
//! (no client-side normalization), cross-origin state changes with the victim's cookie, open
//! redirects through the sign-in `next`, and DNS-rebinding `Host` names.
#![cfg(feature = "ssr")]

use std::{fs, net::SocketAddr, path::Path, sync::Arc};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use loopwatch::contract::request_host::AllowedHost;
use loopwatch::server::{auth::Auth, discovery::project_id};
use loopwatch::site::{start, RunningServer, ServerConfig};

mod common;
use common::{get, get_signed_in, post_json, raw_request, start_server, token, Response, WAIT};

/// Text that appears only in the project's files: finding it in a response means project data
/// was served.
const LOG_SECRET: &str = "log-secret-7f3a";
const PLAN_SECRET: &str = "plan-secret-91c2";
const AGENTS_SECRET: &str = "agents-secret-55d0";

fn secrets_in(text: &str) -> Vec<&'static str> {
    [LOG_SECRET, PLAN_SECRET, AGENTS_SECRET]
        .into_iter()
        .filter(|secret| text.contains(secret))
        .collect()
}

/// A project whose log, plan and AGENTS.md carry the secrets; returns its id.
fn project(root: &Path) -> String {
    let dir = root.join("alpha");
    common::write_project(&dir, &format!("## Phase 1\n- [ ] 1.1: {PLAN_SECRET}\n"));
    fs::write(
        dir.join(".ralph/ralph.log"),
        format!("[09:00:00] === Iteration 1 (loop 1/10) ===\n[09:00:01] {LOG_SECRET}\n"),
    )
    .expect("log");
    fs::write(
        dir.join("AGENTS.md"),
        format!("# Agents\n{AGENTS_SECRET}\n"),
    )
    .expect("agents");
    project_id(&dir)
}

/// A server with the given options (auth on unless `no_auth`).
async fn server_with(root: &Path, no_auth: bool, allowed: &[&str]) -> RunningServer {
    let data_dir = root.join(".data");
    let auth = if no_auth {
        None
    } else {
        Some(Arc::new(
            Auth::load_or_create(&data_dir).expect("auth secrets").auth,
        ))
    };
    let server = start(ServerConfig {
        allowed_hosts: allowed
            .iter()
            .map(|name| name.parse::<AllowedHost>().expect("allowed host"))
            .collect(),
        ..common::server_config(vec![root.to_path_buf()], auth, Some(data_dir))
    })
    .await
    .expect("server starts");
    if let Some(auth) = &server.auth {
        common::set_cookie_name(server.addr, &auth.cookie_name());
    }
    server
}

/// A GET written exactly as given (the path is not normalized), with extra header lines.
async fn raw_get(addr: SocketAddr, path: &str, extra: &str) -> Response {
    raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n"),
    )
    .await
}

/// A POST written exactly as given: `headers` are whole lines (Host included).
async fn raw_post(addr: SocketAddr, path: &str, headers: &str, body: &str) -> Response {
    raw_request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\n{headers}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// Sends `raw` and reads only the response head (an upgrade or a kept-alive connection would
/// never reach end of file).
async fn head_of(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    timeout(WAIT, async {
        while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.expect("read");
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("a response head in time");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn cookie_line(addr: SocketAddr, session: &str) -> String {
    format!("Cookie: {}={session}\r\n", common::cookie_name(addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segment_paths_never_reach_project_data() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let id = project(&root);
    let server = start_server(root.clone()).await;
    let addr = server.addr;
    let session = token(&server);

    // The page itself does show the secrets to a signed-in user: the probes below would see
    // them if they reached it.
    let real = get_signed_in(addr, &format!("/projects/{id}/log"), &session).await;
    assert_eq!(real.status, 200);
    assert!(
        secrets_in(&real.body).contains(&LOG_SECRET),
        "{}",
        real.body
    );

    let probes = [
        format!("/pkg/../projects/{id}/log"),
        format!("/pkg/.%2e/projects/{id}/log"),
        format!("/pkg/%2e./projects/{id}/log"),
        format!("/pkg/%2E%2E/projects/{id}/log"),
        format!("/pkg/%2e%2E/projects/{id}/plan"),
        format!("/pkg/x/../../projects/{id}/files?file=AGENTS.md"),
        format!("/pkg/./../projects/{id}"),
        "/pkg/.%2e/".to_owned(),
        "/pkg/x/../../".to_owned(),
        "/pkg/..".to_owned(),
        format!("/pkg/..%2fprojects%2f{id}%2flog"),
        format!("/pkg/..%5cprojects%5c{id}%5clog"),
        format!("/pkg/%252e%252e/projects/{id}/log"),
        format!("/pkg//../projects/{id}/log"),
        format!("/pkg/%00/../projects/{id}/log"),
        format!("/api/../projects/{id}/log"),
        format!("/login/../projects/{id}/log"),
    ];
    for probe in &probes {
        for signed_in in [false, true] {
            let extra = if signed_in {
                cookie_line(addr, &session)
            } else {
                String::new()
            };
            let response = raw_get(addr, probe, &extra).await;
            assert_eq!(
                response.status, 400,
                "{probe} (session: {signed_in}): {}",
                response.headers
            );
            assert_eq!(
                secrets_in(&response.body),
                Vec::<&str>::new(),
                "{probe} (session: {signed_in})"
            );
            assert!(
                !response.body.contains("alpha"),
                "{probe} (session: {signed_in}): {}",
                response.body
            );
            assert!(
                response.body.contains("\"code\":400"),
                "a JSON error: {}",
                response.body
            );
        }
    }

    // Nothing under /pkg/ but the exact file names is public; the 404 page is fixed text.
    for path in ["/pkg/nope.js", "/pkg/", "/pkg/loopwatch.js/x"] {
        let anonymous = get(addr, path).await;
        assert_ne!(anonymous.status, 200, "{path}");
        assert!(secrets_in(&anonymous.body).is_empty(), "{path}");
        let signed_in = get_signed_in(addr, path, &session).await;
        assert_eq!(signed_in.status, 404, "{path}");
        assert!(signed_in.body.contains("Not found"), "{}", signed_in.body);
        assert!(
            !signed_in.body.contains("alpha") && secrets_in(&signed_in.body).is_empty(),
            "{path}: {}",
            signed_in.body
        );
    }
    let missing = get_signed_in(addr, "/no/such/page", &session).await;
    assert_eq!(missing.status, 404);
    assert!(
        !missing.body.contains("alpha"),
        "the 404 page never renders the app: {}",
        missing.body
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_state_changes_are_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let id = project(&root);
    let server = start_server(root.clone()).await;
    let addr = server.addr;
    let session = token(&server);
    let host = format!("Host: {addr}\r\n");
    let cookie = cookie_line(addr, &session);
    let archive_json = format!(r#"{{"project":"{id}","archived":true}}"#);
    let archive_form = format!("project={id}&archived=true");
    // Another server on the same host (another port): same site, other origin.
    let attacker = format!("http://127.0.0.1:{}", addr.port().wrapping_add(1));

    let attempts = [
        // A form auto-submitted by the attacker's page.
        (
            format!(
                "{host}{cookie}Origin: {attacker}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            ),
            archive_form.clone(),
            403,
        ),
        // A `no-cors` fetch: text/plain is the most it can send.
        (
            format!("{host}{cookie}Origin: {attacker}\r\nContent-Type: text/plain\r\n"),
            archive_json.clone(),
            403,
        ),
        // Even JSON, were a browser to send it, with a foreign Origin.
        (
            format!("{host}{cookie}Origin: {attacker}\r\nContent-Type: application/json\r\n"),
            archive_json.clone(),
            403,
        ),
        (
            format!("{host}{cookie}Origin: null\r\nContent-Type: application/json\r\n"),
            archive_json.clone(),
            403,
        ),
        // No Origin, only the cookie: never enough.
        (
            format!("{host}{cookie}Content-Type: application/json\r\n"),
            archive_json.clone(),
            403,
        ),
        (
            format!("{host}{cookie}Content-Type: application/x-www-form-urlencoded\r\n"),
            archive_form.clone(),
            403,
        ),
        // The browser says cross-site.
        (
            format!("{host}{cookie}Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n"),
            archive_json.clone(),
            403,
        ),
        (
            format!("{host}{cookie}Sec-Fetch-Site: same-site\r\nContent-Type: application/json\r\n"),
            archive_json.clone(),
            403,
        ),
        // Same origin but a simple request (what a form or no-cors fetch could produce).
        (
            format!(
                "{host}{cookie}Origin: http://{addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            ),
            archive_form.clone(),
            415,
        ),
        (
            format!("{host}{cookie}Origin: http://{addr}\r\nContent-Type: text/plain\r\n"),
            archive_json.clone(),
            415,
        ),
    ];
    for (headers, body, status) in &attempts {
        let response = raw_post(addr, "/api/archive", headers, body).await;
        assert_eq!(response.status, *status, "{headers}: {}", response.body);
        assert!(!response.body.contains("archived_at"), "{}", response.body);
    }
    let list: Value =
        serde_json::from_str(&post_json(addr, "/api/projects", "{}", &session).await.body)
            .expect("project list");
    assert_eq!(
        list["projects"][0]["archived_at"],
        Value::Null,
        "nothing archived"
    );
    assert!(!root.join(".data/archived.json").exists(), "nothing saved");

    // Logging out is a state change too.
    let logout = raw_post(
        addr,
        "/api/logout",
        &format!("{host}{cookie}Origin: {attacker}\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
        "",
    )
    .await;
    assert_eq!(logout.status, 403);

    // The server's own pages: JSON with this server's Origin works.
    let same = post_json(addr, "/api/archive", &archive_json, &session).await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert!(same.body.contains("archived_at"));
    // Without Origin, `Sec-Fetch-Site: same-origin` is the browser's word for it.
    let fetch_site = raw_post(
        addr,
        "/api/archive",
        &format!("{host}{cookie}Sec-Fetch-Site: same-origin\r\nContent-Type: application/json\r\n"),
        &format!(r#"{{"project":"{id}","archived":false}}"#),
    )
    .await;
    assert_eq!(fetch_site.status, 200, "{}", fetch_site.body);
    // A script with a bearer token carries no ambient credential: no Origin needed.
    let script = raw_post(
        addr,
        "/api/archive",
        &format!("{host}Authorization: Bearer {session}\r\nContent-Type: application/json\r\n"),
        &archive_json,
    )
    .await;
    assert_eq!(script.status, 200, "{}", script.body);
    // The sign-in form posts from the server's own page.
    let credential = Auth::load_or_create(&root.join(".data"))
        .expect("same data dir")
        .auth
        .credential()
        .to_owned();
    let form = format!("credential={credential}&next=/");
    let sign_in = raw_post(
        addr,
        "/api/login",
        &format!(
            "{host}Origin: http://{addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        ),
        &form,
    )
    .await;
    assert_eq!(sign_in.status, 303, "{}", sign_in.headers);
    assert!(header(&sign_in, "set-cookie").is_some());
    let forged_sign_in = raw_post(
        addr,
        "/api/login",
        &format!("{host}Origin: {attacker}\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
        &form,
    )
    .await;
    assert_eq!(forged_sign_in.status, 403);

    // Anti-framing and content-security headers on everything: pages, the login page, APIs,
    // files, the 404 page and refusals.
    let page = get_signed_in(addr, "/", &session).await;
    let responses = [
        ("/", page),
        ("/login", get(addr, "/login").await),
        (
            "/api/projects",
            post_json(addr, "/api/projects", "{}", &session).await,
        ),
        ("404", get_signed_in(addr, "/nope", &session).await),
        ("400", raw_get(addr, "/pkg/../x", "").await),
        ("redirect", get(addr, "/").await),
    ];
    for (what, response) in &responses {
        assert_eq!(header(response, "x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(
            header(response, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header(response, "referrer-policy"),
            Some("same-origin"),
            "{what}"
        );
        let csp = header(response, "content-security-policy").unwrap_or_default();
        for directive in [
            "frame-ancestors 'none'",
            "default-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
        let scripts = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap_or_default();
        assert!(
            !scripts.contains("unsafe-inline") && !scripts.contains("'unsafe-eval'"),
            "{what}: {scripts}"
        );
    }
    // The page's inline hydration script carries the nonce its CSP allows, and only that one.
    let page = &responses[0].1;
    let csp = header(page, "content-security-policy").unwrap_or_default();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("a nonce in the page CSP: {csp}"));
    assert!(nonce.len() >= 16, "{nonce}");
    assert!(
        page.body
            .contains(&format!("<script type=\"module\" nonce=\"{nonce}\"")),
        "hydration script with the nonce: {}",
        page.body
    );
    let other = get_signed_in(addr, "/", &session).await;
    let other_csp = header(&other, "content-security-policy").unwrap_or_default();
    assert!(!other_csp.contains(nonce), "a new nonce per response");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_next_never_leaves_the_server() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    project(&root);
    let server = start_server(root.clone()).await;
    let addr = server.addr;
    let credential = Auth::load_or_create(&root.join(".data"))
        .expect("same data dir")
        .auth
        .credential()
        .to_owned();

    // As they arrive in the query string (percent-encoded once).
    for next in [
        "/%09/evil:1234/x",
        "%2F%09%2Fevil:1234/x",
        "%2F%0A%2Fevil:1234",
        "%2F%0D%0ASet-Cookie:%20x=1",
        "//evil",
        "%2F%2Fevil",
        "/%5Cevil",
        "%2F%5C%2Fevil",
        "/%2509/evil",
        "%20//evil",
        "/x/../..//evil",
        "https://evil.example",
        "evil",
    ] {
        for credential in [credential.as_str(), "wrong"] {
            let response = get(addr, &format!("/api/login?token={credential}&next={next}")).await;
            assert_eq!(response.status, 303, "{next}: {}", response.headers);
            let location = header(&response, "location").unwrap_or_default();
            let expected = if credential == "wrong" {
                "/login?error=1&next=/"
            } else {
                "/"
            };
            assert_eq!(location, expected, "next={next}");
        }
    }
    // A local path is kept.
    let kept = get(
        addr,
        &format!("/api/login?token={credential}&next=/projects/x%3Ftab%3Dlog"),
    )
    .await;
    assert_eq!(header(&kept, "location"), Some("/projects/x?tab=log"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_names_are_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let id = project(&root);
    let evil = "evil.example:1234";
    let rebound = format!("Host: {evil}\r\nOrigin: http://{evil}\r\n");

    // With --no-auth, a rebound name would otherwise see everything.
    let open = server_with(&root, true, &[]).await;
    let addr = open.addr;
    assert_eq!(
        get(addr, "/").await.status,
        200,
        "no auth: open to its own name"
    );
    for path in [
        "/",
        &format!("/projects/{id}/log"),
        "/metrics",
        "/api/session",
    ] {
        let (status, head) = head_of(
            addr,
            &format!("GET {path} HTTP/1.1\r\n{rebound}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 421, "{path}: {head}");
    }
    let response = raw_request(
        addr,
        &format!("GET /projects/{id}/log HTTP/1.1\r\n{rebound}Connection: close\r\n\r\n"),
    )
    .await;
    assert!(secrets_in(&response.body).is_empty(), "{}", response.body);
    let api = raw_post(
        addr,
        "/api/projects",
        &format!("{rebound}Content-Type: application/json\r\n"),
        "{}",
    )
    .await;
    assert_eq!(api.status, 421);
    assert!(!api.body.contains("alpha"));
    let upgrade = format!(
        "GET /api/ws HTTP/1.1\r\n{rebound}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let (status, head) = head_of(addr, &upgrade).await;
    assert_eq!(status, 421, "the socket upgrade: {head}");
    let (status, _) = head_of(
        addr,
        &format!("GET /api/events HTTP/1.1\r\n{rebound}Accept: text/event-stream\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 421, "the event stream");
    // A request without any Host is not for us either.
    let (status, _) = head_of(addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 421);
    open.stop().await;

    // With authentication: refused before the session is even looked at.
    let server = server_with(&root, false, &["dash.example"]).await;
    let addr = server.addr;
    let session = token(&server);
    let cookie = cookie_line(addr, &session);
    let (status, _) = head_of(
        addr,
        &format!("GET / HTTP/1.1\r\n{rebound}{cookie}Connection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 421);
    let (status, _) = head_of(
        addr,
        &format!(
            "GET /api/ws?token={session} HTTP/1.1\r\n{rebound}Connection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 421, "the socket upgrade with a valid token");

    // This machine's own names, and the name the operator allowed.
    let port = addr.port();
    for name in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("dash.example:{port}"),
        "dash.example".to_owned(),
    ] {
        let response = raw_request(
            addr,
            &format!("GET / HTTP/1.1\r\nHost: {name}\r\n{cookie}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(response.status, 200, "{name}");
        assert!(response.body.contains("alpha"), "{name}");
    }
    let allowed = raw_post(
        addr,
        "/api/archive",
        &format!(
            "Host: dash.example:{port}\r\nOrigin: http://dash.example:{port}\r\n{cookie}\
             Content-Type: application/json\r\n"
        ),
        &format!(r#"{{"project":"{id}","archived":true}}"#),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    // An allowed Host does not make another Origin acceptable.
    let mixed = raw_post(
        addr,
        "/api/archive",
        &format!(
            "Host: dash.example:{port}\r\nOrigin: http://{addr}\r\n{cookie}\
             Content-Type: application/json\r\n"
        ),
        &format!(r#"{{"project":"{id}","archived":false}}"#),
    )
    .await;
    assert_eq!(mixed.status, 403, "{}", mixed.body);
    server.stop().await;
}
