//! Roles, share links and scopes over real sockets: an operator makes a read-only link, a
//! browser opens it and gets a viewer session that sees only the link's projects (lists
//! filtered, other projects 403 / 4403 on every stream), acts on nothing, and loses its
//! session (open sockets 4401, requests 401) the moment the link is revoked. The audit CLI
//! prints the trail.
#![cfg(feature = "ssr")]

use std::{net::SocketAddr, path::Path};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use loopwatch::server::{discovery::project_id, share, store};

mod common;
use common::{
    cookie_name, get, get_signed_in, open_ws, post_json, raw_request, start_server, token,
    write_project, ws_next, ws_send, ws_wait_for, Response, WAIT,
};

const PLAN: &str = "- [ ] 1: a\n";

fn json(response: &Response) -> Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("JSON body ({e}): {} {}", response.headers, response.body))
}

struct Fixture {
    _temp: tempfile::TempDir,
    root: std::path::PathBuf,
    server: loopwatch::site::RunningServer,
    operator: String,
    alpha: String,
    bravo: String,
}

async fn fixture() -> Fixture {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    write_project(&root.join("alpha"), PLAN);
    write_project(&root.join("bravo"), PLAN);
    let server = start_server(root.clone()).await;
    let operator = token(&server);
    Fixture {
        alpha: project_id(&root.join("alpha")),
        bravo: project_id(&root.join("bravo")),
        _temp: temp,
        root,
        server,
        operator,
    }
}

/// Creates a link to `projects` as the operator; returns (its id, its path with the key).
async fn create_link(fixture: &Fixture, projects: &[&str]) -> (String, String) {
    let body = serde_json::json!({"projects": projects, "expires": "1d"}).to_string();
    let response = post_json(
        fixture.server.addr,
        "/api/share_create",
        &body,
        &fixture.operator,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let made = json(&response);
    (
        made["share"]["id"].as_str().expect("id").to_owned(),
        made["path"].as_str().expect("path").to_owned(),
    )
}

/// Opens a link the way a browser does; returns the session token its cookie carries.
async fn open_link(addr: SocketAddr, path: &str) -> Response {
    get(addr, path).await
}

fn session_of(addr: SocketAddr, response: &Response) -> String {
    let wanted = format!("set-cookie: {}=", cookie_name(addr));
    let line = response
        .headers
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with(&wanted))
        .unwrap_or_else(|| panic!("no session cookie in {}", response.headers));
    let value = &line[wanted.len()..];
    value.split(';').next().unwrap_or_default().to_owned()
}

async fn viewer_of(fixture: &Fixture, projects: &[&str]) -> (String, String, String) {
    let (id, path) = create_link(fixture, projects).await;
    let opened = open_link(fixture.server.addr, &path).await;
    assert_eq!(opened.status, 303, "{}", opened.headers);
    let session = session_of(fixture.server.addr, &opened);
    (id, path, session)
}

fn audit(data_dir: &Path) -> Vec<loopwatch::model::audit::AuditEntry> {
    store::Store::open(data_dir)
        .expect("store")
        .audit(None, 100)
        .expect("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_link_sees_only_its_projects_and_acts_on_nothing() {
    let f = fixture().await;
    let addr = f.server.addr;
    let (share_id, path, viewer) = viewer_of(&f, &[&f.alpha]).await;
    let opened = open_link(addr, &path).await;
    assert!(
        opened
            .headers
            .contains(&format!("location: /projects/{}", f.alpha))
            || opened
                .headers
                .contains(&format!("Location: /projects/{}", f.alpha)),
        "a one-project link lands on its page: {}",
        opened.headers
    );

    let me = json(&post_json(addr, "/api/whoami", "{}", &viewer).await);
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["share"], share_id.as_str());
    let operator = json(&post_json(addr, "/api/whoami", "{}", &f.operator).await);
    assert_eq!(operator["role"], "operator");

    let list = json(&post_json(addr, "/api/projects", "{}", &viewer).await);
    let ids: Vec<&str> = list["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, [f.alpha.as_str()]);
    let cursors = list["cursors"].as_object().expect("cursors");
    assert!(!cursors.contains_key(&format!("project:{}", f.bravo)));
    let all = json(&post_json(addr, "/api/projects", "{}", &f.operator).await);
    assert_eq!(all["projects"].as_array().map(Vec::len), Some(2));

    for (endpoint, body) in [
        ("/api/project", format!(r#"{{"project":"{}"}}"#, f.bravo)),
        ("/api/recent", format!(r#"{{"project":"{}"}}"#, f.bravo)),
        (
            "/api/log",
            format!(r#"{{"project":"{}","max_bytes":null}}"#, f.bravo),
        ),
        (
            "/api/context_files",
            format!(r#"{{"project":"{}"}}"#, f.bravo),
        ),
        // An unknown project is refused the same way: nothing is learnt of other ids.
        ("/api/project", r#"{"project":"nope-0000"}"#.to_owned()),
    ] {
        let response = post_json(addr, endpoint, &body, &viewer).await;
        assert_eq!(response.status, 403, "{endpoint} {body}: {}", response.body);
    }
    let own = post_json(
        addr,
        "/api/project",
        &format!(r#"{{"project":"{}"}}"#, f.alpha),
        &viewer,
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);

    // Pages: its project renders, the other is refused.
    assert_eq!(
        get_signed_in(addr, &format!("/projects/{}", f.alpha), &viewer)
            .await
            .status,
        200
    );
    assert_eq!(
        get_signed_in(addr, &format!("/projects/{}", f.bravo), &viewer)
            .await
            .status,
        403
    );

    // Actions: refused, nothing changes, and the trail has no done action of a viewer.
    let archive = post_json(
        addr,
        "/api/archive",
        &format!(r#"{{"project":"{}","archived":true}}"#, f.alpha),
        &viewer,
    )
    .await;
    assert_eq!(archive.status, 403, "{}", archive.body);
    let share = post_json(
        addr,
        "/api/share_create",
        &format!(r#"{{"projects":["{}"],"expires":null}}"#, f.alpha),
        &viewer,
    )
    .await;
    assert_eq!(share.status, 403, "{}", share.body);
    let list_links = post_json(addr, "/api/share_list", "{}", &viewer).await;
    assert_eq!(list_links.status, 403);
    let revoke = post_json(
        addr,
        "/api/share_revoke",
        &format!(r#"{{"id":"{share_id}"}}"#),
        &viewer,
    )
    .await;
    assert_eq!(revoke.status, 403);
    let still = json(&post_json(addr, "/api/projects", "{}", &f.operator).await);
    assert!(still["projects"]
        .as_array()
        .expect("list")
        .iter()
        .all(|p| p["archived_at"].is_null()));
    let trail = audit(&f.root.join(".data"));
    assert!(
        trail.iter().all(|e| e.role.as_str() == "operator"),
        "{trail:?}"
    );
    assert_eq!(trail.iter().filter(|e| e.action == "share").count(), 1);

    // The operator lists the links (never with their keys).
    let links = post_json(addr, "/api/share_list", "{}", &f.operator).await;
    assert_eq!(links.status, 200, "{}", links.body);
    assert!(links.body.contains(&share_id));
    let key = path.rsplit('=').next().expect("key");
    assert!(
        !links.body.contains(key),
        "a key is shown once, at creation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_outside_a_viewers_projects_get_4403_on_every_stream() {
    let f = fixture().await;
    let addr = f.server.addr;
    let (_, _, viewer) = viewer_of(&f, &[&f.alpha]).await;

    let mut ws = open_ws(addr, "/api/ws", &viewer).await;
    let hello = ws_next(&mut ws).await.expect("hello");
    assert_eq!(hello["type"], "hello");
    assert!(hello["clientId"].is_string(), "{hello}");
    ws_send(
        &mut ws,
        &format!(r#"{{"action":"subscribe","topics":["log:{}"]}}"#, f.bravo),
    )
    .await;
    let error = ws_wait_for(&mut ws, "error", |m| m["type"] == "error").await;
    assert_eq!(error["code"], 4403, "{error}");
    ws_send(
        &mut ws,
        &format!(r#"{{"type":"subscribe","channel":"agent:{}"}}"#, f.bravo),
    )
    .await;
    let error = ws_next(&mut ws).await.expect("error frame");
    assert_eq!(
        (error["type"].as_str(), error["code"].as_u64()),
        (Some("error"), Some(4403)),
        "{error}"
    );
    // Its own project, in the channel form: acknowledged with the channel.
    let channel = format!("project:{}", f.alpha);
    ws_send(
        &mut ws,
        &format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#),
    )
    .await;
    let ack = ws_next(&mut ws).await.expect("subscribed");
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["channel"], channel.as_str());
    ws_send(
        &mut ws,
        &format!(r#"{{"type":"unsubscribe","channel":"{channel}"}}"#),
    )
    .await;
    let ack = ws_next(&mut ws).await.expect("unsubscribed");
    assert_eq!(
        (ack["type"].as_str(), ack["channel"].as_str()),
        (Some("unsubscribed"), Some(channel.as_str()))
    );
    // `projects` is allowed and carries only its projects: bravo's change does not arrive,
    // alpha's does.
    ws_send(&mut ws, r#"{"action":"subscribe","topics":["projects"]}"#).await;
    ws_wait_for(&mut ws, "subscribed", |m| m["type"] == "subscribed").await;
    for id in [&f.bravo, &f.alpha] {
        let body = format!(r#"{{"project":"{id}","archived":true}}"#);
        assert_eq!(
            post_json(addr, "/api/archive", &body, &f.operator)
                .await
                .status,
            200
        );
    }
    let event = ws_wait_for(&mut ws, "project_archived", |m| {
        m["type"] == "project_archived"
    })
    .await;
    assert_eq!(
        event["project"],
        f.alpha.as_str(),
        "bravo's event never reaches the viewer"
    );

    let sse = get_signed_in(
        addr,
        &format!("/api/events?topics=project:{}", f.bravo),
        &viewer,
    )
    .await;
    assert_eq!(sse.status, 403, "{}", sse.body);
    assert_eq!(json(&sse)["code"], 4403);

    let mut logs = open_ws(addr, &format!("/ws/instances/{}/logs", f.bravo), &viewer).await;
    assert_eq!(ws_next(&mut logs).await.expect("error frame")["code"], 4403);
    assert_eq!(ws_next(&mut logs).await, Err(Some(4403)));
    let mut messages = open_ws(addr, &format!("/ws/messages?instance={}", f.bravo), &viewer).await;
    assert_eq!(
        ws_next(&mut messages).await.expect("error frame")["code"],
        4403
    );
    let mut instances = open_ws(addr, "/ws/instances?", &viewer).await;
    ws_send(
        &mut instances,
        r#"{"type":"set_include_archived","value":true}"#,
    )
    .await;
    let snapshot = ws_wait_for(&mut instances, "snapshot", |m| {
        m["include_archived"] == true
    })
    .await;
    let names: Vec<&str> = snapshot["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, [f.alpha.as_str()]);
}

/// Opens an event stream and returns it once its response head has arrived.
async fn open_sse(addr: SocketAddr, path: &str, session: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {}={session}\r\n\r\n",
        cookie_name(addr)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        timeout(WAIT, stream.read_exact(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        head.push(byte[0]);
    }
    (stream, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_link_closes_its_sockets_with_4401_at_once_and_refuses_it_after() {
    let f = fixture().await;
    let addr = f.server.addr;
    let (share_id, path, viewer) = viewer_of(&f, &[&f.alpha]).await;
    // A second browser opens the same link.
    let other_viewer = session_of(addr, &open_link(addr, &path).await);
    let (_, _, unrelated) = viewer_of(&f, &[&f.alpha]).await;
    let mut ws = open_ws(addr, "/api/ws", &viewer).await;
    assert_eq!(ws_next(&mut ws).await.expect("hello")["type"], "hello");
    let mut view = open_ws(addr, "/ws/instances", &viewer).await;
    assert_eq!(
        ws_next(&mut view).await.expect("snapshot")["type"],
        "snapshot"
    );
    let mut operator_ws = open_ws(addr, "/api/ws", &f.operator).await;
    assert_eq!(
        ws_next(&mut operator_ws).await.expect("hello")["type"],
        "hello"
    );
    let (mut sse, head) = open_sse(
        addr,
        &format!("/api/events?topics=project:{}", f.alpha),
        &viewer,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let revoked = post_json(
        addr,
        "/api/share_revoke",
        &format!(r#"{{"id":"{share_id}"}}"#),
        &f.operator,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(json(&revoked)["revoked"].is_string());

    // Well before the first heartbeat (20 s; the wait is 10 s): the ending reached them.
    for socket in [&mut ws, &mut view] {
        let error = ws_next(socket).await.expect("error frame");
        assert_eq!(error["code"], 4401, "{error}");
        assert_eq!(ws_next(socket).await, Err(Some(4401)));
    }
    let mut rest = Vec::new();
    timeout(WAIT, sse.read_to_end(&mut rest))
        .await
        .expect("the stream ends")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&rest).contains("4401"),
        "{}",
        String::from_utf8_lossy(&rest)
    );

    assert_eq!(
        get_signed_in(addr, "/api/session", &viewer).await.status,
        401
    );
    assert_eq!(
        post_json(addr, "/api/projects", "{}", &viewer).await.status,
        401
    );
    assert_eq!(
        get_signed_in(addr, "/api/session", &other_viewer)
            .await
            .status,
        401,
        "every session of the link"
    );
    assert_eq!(
        open_link(addr, &path).await.status,
        403,
        "the link opens no more"
    );
    // The operator's socket is untouched.
    ws_send(&mut operator_ws, r#"{"action":"ping"}"#).await;
    assert_eq!(
        ws_next(&mut operator_ws).await.expect("pong")["type"],
        "pong"
    );
    assert_eq!(
        get_signed_in(addr, "/api/session", &f.operator)
            .await
            .status,
        204
    );
    assert_eq!(
        get_signed_in(addr, "/api/session", &unrelated).await.status,
        204,
        "another link lives on"
    );
    let trail = audit(&f.root.join(".data"));
    let entry = trail
        .iter()
        .find(|e| e.action == "revoke_share")
        .expect("revocation audited");
    assert_eq!(entry.outcome.as_str(), "done");
    assert!(entry.detail.starts_with("2 session"), "{}", entry.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_mistyped_and_foreign_links_are_refused() {
    let f = fixture().await;
    let addr = f.server.addr;
    let key = "ab".repeat(32);
    let data = f.root.join(".data");
    store::Store::open(&data)
        .expect("store")
        .add_share(&store::shares::NewShare {
            id: "old1".into(),
            key_hash: share::key_hash(&key),
            projects: vec![f.alpha.clone()],
            created: "2026-01-01T00:00:00.000Z".into(),
            expires: 1_000_000,
        })
        .expect("add an expired link");
    let expired = open_link(addr, &format!("/api/share?key={key}")).await;
    assert_eq!(expired.status, 403, "{}", expired.body);
    assert!(!expired.headers.to_ascii_lowercase().contains("set-cookie"));
    assert_eq!(
        open_link(addr, &format!("/api/share?key={}", "cd".repeat(32)))
            .await
            .status,
        403
    );
    assert_eq!(open_link(addr, "/api/share?key=short").await.status, 403);
    assert_eq!(open_link(addr, "/api/share").await.status, 400);

    // A page of another origin cannot make a link with the operator's cookie.
    let body = format!(r#"{{"projects":["{}"],"expires":null}}"#, f.alpha);
    let foreign = raw_request(
        addr,
        &format!(
            "POST /api/share_create HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Origin: http://evil.example\r\nContent-Type: application/json\r\n\
             Cookie: {}={}\r\nContent-Length: {}\r\n\r\n{body}",
            cookie_name(addr),
            f.operator,
            body.len()
        ),
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let unknown = post_json(
        addr,
        "/api/share_create",
        r#"{"projects":["nope-0000"],"expires":null}"#,
        &f.operator,
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let bad = post_json(
        addr,
        "/api/share_create",
        &format!(r#"{{"projects":["{}"],"expires":"forever"}}"#, f.alpha),
        &f.operator,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let links = json(&post_json(addr, "/api/share_list", "{}", &f.operator).await);
    assert_eq!(
        links.as_array().map(Vec::len),
        Some(1),
        "only the expired one: {links}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_makes_links_a_running_server_opens_and_prints_the_audit_trail() {
    let f = fixture().await;
    let addr = f.server.addr;
    let data = f.root.join(".data");
    let body = format!(r#"{{"project":"{}","archived":true}}"#, f.alpha);
    assert_eq!(
        post_json(addr, "/api/archive", &body, &f.operator)
            .await
            .status,
        200
    );

    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_loopwatch"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("LOOPWATCH_DATA_DIR")
            .output()
            .expect("run loopwatch");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let shared = cli(&[
        "share",
        "--project",
        &f.bravo,
        "--expires",
        "2h",
        "--addr",
        &addr.to_string(),
    ]);
    let link = shared.trim().rsplit(' ').next().expect("link");
    let path = link
        .strip_prefix(&format!("http://{addr}"))
        .unwrap_or_else(|| panic!("{shared}"));
    let opened = open_link(addr, path).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let viewer = session_of(addr, &opened);
    let list = json(&post_json(addr, "/api/projects", "{}", &viewer).await);
    assert_eq!(list["projects"][0]["id"], f.bravo.as_str());

    let trail = cli(&["audit"]);
    let lines: Vec<&str> = trail.lines().collect();
    assert_eq!(lines.len(), 2, "{trail}");
    assert!(
        lines[0].contains(" done operator:cli - share "),
        "newest first: {trail}"
    );
    assert!(
        lines[1].contains(" done operator:") && lines[1].contains(&format!(" {} archive", f.alpha)),
        "{trail}"
    );
    let alpha_only = cli(&["audit", "--project", &f.alpha]);
    assert_eq!(alpha_only.lines().count(), 1, "{alpha_only}");
    assert_eq!(cli(&["audit", "--limit", "1"]).lines().count(), 1);
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_loopwatch"))
        .args(["share", "--project", "a/b", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run loopwatch");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a project id"));
}
