//! Sessions, sign-in and the data directory, tried the way an attacker would: over real
//! sockets against a real server, with real files. Sessions are server-side and revocable,
//! tokens with impossible times are refused (without panics), each instance has its own cookie,
//! sign-in tries are limited per address, secrets never reach the log, and a shared data
//! directory is refused rather than chmodded.
#![cfg(unix)]

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
};

use common::{start_server, token, write_project, WAIT};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::timeout,
};

/// Status and headers (lower-cased names) of one raw HTTP/1.1 exchange, sent from `from`.
async fn exchange_from(from: Option<&str>, addr: SocketAddr, raw: &str) -> (u16, String) {
    let stream = match from {
        Some(local) => {
            let socket = TcpSocket::new_v4().expect("socket");
            socket
                .bind(format!("{local}:0").parse().expect("local address"))
                .expect("bind the client address");
            timeout(WAIT, socket.connect(addr))
                .await
                .expect("connect in time")
                .expect("connect")
        }
        None => timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect"),
    };
    let mut stream = stream;
    stream.write_all(raw.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, head)
}

async fn exchange(addr: SocketAddr, raw: &str) -> (u16, String) {
    exchange_from(None, addr, raw).await
}

/// `GET /api/session` (204 while signed in, 401 otherwise) with extra header lines.
async fn session_status(addr: SocketAddr, headers: &str) -> u16 {
    exchange(
        addr,
        &format!("GET /api/session HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n"),
    )
    .await
    .0
}

fn cookie_header(name: &str, token: &str) -> String {
    format!("Cookie: {name}={token}\r\n")
}

fn bearer_header(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// `POST /api/logout` the way the page's form sends it (same origin).
async fn logout(addr: SocketAddr, headers: &str) -> u16 {
    exchange(
        addr,
        &format!(
            "POST /api/logout HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Origin: http://{addr}\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\n{headers}\r\n"
        ),
    )
    .await
    .0
}

/// Whether a WebSocket upgrade with `?token=` is accepted.
async fn upgrade_accepted(addr: SocketAddr, token: &str) -> bool {
    let url = format!("ws://{addr}/api/ws?token={token}");
    timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("an answer in time")
        .is_ok()
}

/// `(name, value)` of the session cookie a sign-in response sets.
fn set_cookie(head: &str) -> (String, String) {
    head.lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .and_then(|cookie| cookie.split(';').next())
        .and_then(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .unwrap_or_else(|| panic!("a session cookie in {head}"))
}

/// Signs in with the login link's credential; returns the cookie set.
async fn sign_in(addr: SocketAddr, credential: &str) -> (String, String) {
    let (status, head) = exchange(
        addr,
        &format!(
            "GET /api/login?token={credential} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    set_cookie(&head)
}

fn project_root() -> (tempfile::TempDir, std::path::PathBuf) {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    write_project(&root.join("proj"), "- [ ] 1: a\n");
    (temp, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_cookie_and_the_bearer_token() {
    let (_temp, root) = project_root();
    let server = start_server(root).await;
    let addr = server.addr;
    let credential = server.auth.as_ref().expect("auth").credential().to_owned();

    // A browser: the cookie stops working after logout, even if replayed.
    let (name, cookie) = sign_in(addr, &credential).await;
    assert_eq!(
        session_status(addr, &cookie_header(&name, &cookie)).await,
        204
    );
    assert_eq!(logout(addr, &cookie_header(&name, &cookie)).await, 303);
    assert_eq!(
        session_status(addr, &cookie_header(&name, &cookie)).await,
        401
    );
    assert_eq!(session_status(addr, &bearer_header(&cookie)).await, 401);
    assert!(!upgrade_accepted(addr, &cookie).await);

    // A script: the same for a bearer token.
    let bearer = token(&server);
    assert_eq!(session_status(addr, &bearer_header(&bearer)).await, 204);
    assert!(upgrade_accepted(addr, &bearer).await);
    assert_eq!(logout(addr, &bearer_header(&bearer)).await, 303);
    assert_eq!(session_status(addr, &bearer_header(&bearer)).await, 401);
    assert!(!upgrade_accepted(addr, &bearer).await);

    // Other sessions are untouched.
    let other = token(&server);
    assert_eq!(session_status(addr, &bearer_header(&other)).await, 204);
    server.stop().await;
}

/// The payload of a JWT, as JSON.
fn payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_with_impossible_times_are_refused_and_the_server_keeps_answering() {
    let (_temp, root) = project_root();
    let server = start_server(root.clone()).await;
    // The server's own key signs these: only the times are wrong.
    let secret = fs::read_to_string(root.join(".data/secret.key")).expect("secret");
    let addr = server.addr;
    let good = token(&server);
    // A real session id, so nothing but the times can be the reason for a refusal.
    let claims = payload(&good);
    let sid = claims
        .get("sid")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let key = jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes());
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
    };
    let hour = 3600u64;
    let bad = [
        (
            "exp 100 years ahead",
            serde_json::json!({"sub": "admin", "sid": sid, "iat": now, "exp": now + 100 * 365 * 24 * hour}),
        ),
        (
            "exp u64::MAX",
            serde_json::json!({"sub": "admin", "sid": sid, "iat": now, "exp": u64::MAX}),
        ),
        (
            "nbf in the future",
            serde_json::json!({"sub": "admin", "sid": sid, "iat": now, "nbf": now + hour, "exp": now + 2 * hour}),
        ),
        (
            "iat in the future",
            serde_json::json!({"sub": "admin", "sid": sid, "iat": now + hour, "exp": now + 2 * hour}),
        ),
    ];
    for (what, claims) in bad {
        let forged = sign(claims);
        assert_eq!(
            session_status(addr, &bearer_header(&forged)).await,
            401,
            "{what}: HTTP"
        );
        assert!(!upgrade_accepted(addr, &forged).await, "{what}: WebSocket");
        // Still alive and answering.
        assert_eq!(
            session_status(addr, &bearer_header(&good)).await,
            204,
            "after {what}"
        );
    }
    let mut socket = common::open_ws(addr, "/api/ws", &good).await;
    common::ws_send(&mut socket, r#"{"action":"ping"}"#).await;
    common::ws_wait_for(&mut socket, "pong", |frame| frame["type"] == "pong").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_with_different_data_dirs_use_different_cookies() {
    let (_a, root_a) = project_root();
    let (_b, root_b) = project_root();
    let a = start_server(root_a).await;
    let b = start_server(root_b).await;
    let credential = |server: &loopwatch::site::RunningServer| {
        server.auth.as_ref().expect("auth").credential().to_owned()
    };
    let (name_a, cookie_a) = sign_in(a.addr, &credential(&a)).await;
    let (name_b, cookie_b) = sign_in(b.addr, &credential(&b)).await;
    assert_ne!(name_a, name_b, "one cookie would overwrite the other");
    for name in [&name_a, &name_b] {
        assert!(name.starts_with("loopwatch_session_"), "{name}");
    }
    // The browser sends both cookies to both ports (cookies ignore the port): each server
    // picks its own, and neither accepts the other's.
    let both = format!("Cookie: {name_a}={cookie_a}; {name_b}={cookie_b}\r\n");
    assert_eq!(session_status(a.addr, &both).await, 204);
    assert_eq!(session_status(b.addr, &both).await, 204);
    assert_eq!(
        session_status(a.addr, &cookie_header(&name_a, &cookie_b)).await,
        401
    );
    assert_eq!(
        session_status(b.addr, &cookie_header(&name_b, &cookie_a)).await,
        401
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_live_sessions_and_forgets_revoked_ones() {
    let (_temp, root) = project_root();
    let server = start_server(root.clone()).await;
    let credential = server.auth.as_ref().expect("auth").credential().to_owned();
    let (name, kept) = sign_in(server.addr, &credential).await;
    let (_, ended) = sign_in(server.addr, &credential).await;
    assert_eq!(
        logout(server.addr, &cookie_header(&name, &ended)).await,
        303
    );
    server.stop().await;

    let again = start_server(root.clone()).await;
    let addr = again.addr;
    let name_again = again.auth.as_ref().expect("auth").cookie_name();
    assert_eq!(name_again, name, "the cookie name survives a restart");
    assert_eq!(
        session_status(addr, &cookie_header(&name, &kept)).await,
        204
    );
    assert_eq!(
        session_status(addr, &cookie_header(&name, &ended)).await,
        401
    );
    // The session list is private and holds no tokens, only ids.
    let list = root.join(".data/sessions.json");
    let mode = fs::metadata(&list)
        .expect("session list")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "session list readable by others: {mode:o}");
    assert!(!fs::read_to_string(&list).expect("read").contains(&kept));
    again.stop().await;
}

async fn try_login(from: &str, addr: SocketAddr, credential: &str) -> (u16, String) {
    exchange_from(
        Some(from),
        addr,
        &format!(
            "GET /api/login?token={credential} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_limited_per_address() {
    let (_temp, root) = project_root();
    let server = start_server(root).await;
    let addr = server.addr;
    let credential = server.auth.as_ref().expect("auth").credential().to_owned();
    let limit = loopwatch::server::auth::LOGIN_FAILURES;
    for n in 0..limit {
        let (status, head) = try_login("127.0.0.1", addr, "wrong").await;
        assert_eq!(status, 303, "try {n}: {head}");
        assert!(head.contains("error=1"), "{head}");
    }
    let (status, head) = try_login("127.0.0.1", addr, "wrong").await;
    assert_eq!(status, 429, "{head}");
    let retry_after: u64 = head
        .lines()
        .find_map(|line| line.strip_prefix("retry-after: "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in {head}"));
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Even the right credential waits: guessing must not go on.
    assert_eq!(try_login("127.0.0.1", addr, &credential).await.0, 429);
    // Another address is not affected (the whole 127/8 is loopback on Linux).
    let (status, head) = try_login("127.0.0.2", addr, &credential).await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("set-cookie: loopwatch_session_"), "{head}");
    server.stop().await;
}

/// A server process, killed if the test ends early.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the real binary with `RUST_LOG=trace` and stderr in a file; returns its address, the
/// sign-in link's path and the child.
fn start_binary(root: &Path, data: &Path, log: &Path) -> (SocketAddr, String, Child) {
    let stderr = fs::File::create(log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopwatch"))
        .args(["serve", "--addr", "127.0.0.1:0", "--projects"])
        .arg(root)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "trace")
        .env_remove("LOOPWATCH_ADDR")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("stdout");
    let child = Child(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut link) = (None, None);
    while addr.is_none() || link.is_none() {
        let Some(Ok(line)) = lines.next() else {
            panic!("the server stopped before printing its address and link");
        };
        if let Some(rest) = line.strip_prefix("loopwatch listening on http://") {
            addr = rest.parse::<SocketAddr>().ok();
        }
        if let Some((_, url)) = line.split_once(": http://") {
            link = url.split_once('/').map(|(_, path)| format!("/{path}"));
        }
    }
    (addr.expect("address"), link.expect("link"), child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_even_at_trace() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let (_temp, root) = project_root();
    // Outside the watched root: at trace, each event about the log file would be logged,
    // changing the file again.
    let own = tempfile::tempdir().expect("tempdir");
    let data = own.path().join("data");
    let log = own.path().join("server.log");
    let (addr, link, child) = start_binary(&root, &data, &log);
    let credential = link
        .split_once("token=")
        .map(|(_, value)| value.to_owned())
        .expect("credential in the link");

    let (name, first) = sign_in(addr, &credential).await;
    let (_, second) = sign_in(addr, &credential).await;
    // The socket opens with the cookie; the second token travels in an `auth` frame.
    let mut request = format!("ws://{addr}/api/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "cookie",
        format!("{name}={first}").parse().expect("header value"),
    );
    let (mut socket, _) = timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("connect");
    socket
        .send(Message::Text(
            format!(r#"{{"action":"auth","token":"{second}"}}"#).into(),
        ))
        .await
        .expect("send auth");
    common::ws_send(&mut socket, r#"{"action":"ping"}"#).await;
    common::ws_wait_for(&mut socket, "pong", |frame| frame["type"] == "pong").await;
    drop(socket);
    // A failed sign-in is logged with the address, never with what was tried.
    let tried = "not-the-credential-7f3a9c";
    assert_eq!(try_login("127.0.0.1", addr, tried).await.0, 303);

    // Every event is written to stderr as it happens: the log is complete without a graceful
    // stop (which is not what this test is about).
    drop(child);

    let text = fs::read_to_string(&log).expect("read the log");
    assert!(text.contains("TRACE"), "RUST_LOG=trace is in effect");
    assert!(
        text.lines().any(|line| line.contains("WARN")
            && line.contains("127.0.0.1")
            && line.contains("sign-in failed")),
        "failed sign-in logged with its address"
    );
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for (what, secret) in [
        ("the token of the auth frame", second.as_str()),
        ("the cookie's token", first.as_str()),
        ("the tried credential", tried),
        ("the login credential", credential.as_str()),
    ] {
        // The token's signature alone is enough to tell: look for it, plain and hex-encoded.
        let tail = secret.rsplit('.').next().unwrap_or(secret);
        assert!(!text.contains(tail), "{what} is in the log");
        assert!(!text.contains(&hex(tail)), "{what} is in the log (hex)");
    }
}

/// Runs the binary to completion (it must not keep running: bounded by [`WAIT`]).
async fn run_binary(args: &[&str], root: &Path, data: &Path) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_loopwatch"))
        .args(args)
        .arg(root)
        .arg("--data-dir")
        .arg(data)
        .env_remove("LOOPWATCH_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let pid = child.id();
    match timeout(
        WAIT,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    {
        Ok(output) => output.expect("join").expect("output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the server started instead of refusing the data directory");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_data_directory_is_refused_and_never_chmodded() {
    let (temp, root) = project_root();
    let shared = temp.path().join("shared");
    fs::create_dir(&shared).expect("mkdir");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    let output = run_binary(
        &["serve", "--addr", "127.0.0.1:0", "--projects"],
        &root,
        &shared,
    )
    .await;
    assert!(!output.status.success(), "the server must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&shared.display().to_string())
            && stderr.contains("writable by other users"),
        "a clear error naming the directory: {stderr}"
    );
    let mode = fs::metadata(&shared).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "the directory's mode was changed");
    assert!(!shared.join("secret.key").exists(), "nothing written there");

    // Without authentication the archive list would live there: refused as well.
    let output = run_binary(
        &["serve", "--no-auth", "--addr", "127.0.0.1:0", "--projects"],
        &root,
        &shared,
    )
    .await;
    assert!(!output.status.success(), "--no-auth must not start either");
    let mode = fs::metadata(&shared).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777);

    // A new directory is created private.
    let (_other, root2) = project_root();
    let fresh = root2.join(".data");
    let server = start_server(root2).await;
    let mode = fs::metadata(&fresh).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_files_left_by_interrupted_saves_are_removed_at_start() {
    let (_temp, root) = project_root();
    let data = root.join(".data");
    fs::create_dir(&data).expect("mkdir");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod");
    // What a SIGKILL during a save leaves behind, plus a file that is not ours.
    let leftovers = [".archived.Ab12Cd.tmp", ".sessions.Xy98Zw.tmp"];
    for name in leftovers {
        fs::write(data.join(name), "{half").expect("leftover");
    }
    fs::write(data.join("notes.tmp"), "keep").expect("other file");
    let server = start_server(root).await;
    for name in leftovers {
        assert!(!data.join(name).exists(), "{name} is still there");
    }
    assert!(
        data.join("notes.tmp").exists(),
        "only our own temporary files go"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_opened_before_logout_is_closed_at_its_next_heartbeat() {
    use futures::StreamExt;
    use loopwatch::server::{auth::Auth, Keepalive};
    use loopwatch::site::{start, ServerConfig};
    use std::{sync::Arc, time::Duration};
    use tokio_tungstenite::tungstenite::Message;

    let (_temp, root) = project_root();
    let data_dir = root.join(".data");
    let auth = Auth::load_or_create(&data_dir).expect("auth secrets").auth;
    let server = start(ServerConfig {
        keepalive: Keepalive {
            heartbeat: Duration::from_millis(200),
            ..Default::default()
        },
        ..common::server_config(vec![root.clone()], Some(Arc::new(auth)), Some(data_dir))
    })
    .await
    .expect("server starts");
    let addr = server.addr;
    let bearer = token(&server);
    let url = format!("ws://{addr}/api/ws?token={bearer}");
    let (mut socket, _) = timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("an answer in time")
        .expect("upgrade");
    assert_eq!(logout(addr, &bearer_header(&bearer)).await, 303);
    let code = timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the socket is closed after the sign-out");
    assert_eq!(code, Some(4401));
    server.stop().await;
}
