//! Server-Sent Events over a real socket: live events, and resuming with `Last-Event-ID`.
#![cfg(feature = "ssr")]

use std::fs;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use loopwatch::server::discovery::project_id;

mod common;
use common::{get, get_signed_in, post_json, start_server, token, write_project, WAIT};

/// Opens an event stream and reads until `done` says the text so far is enough.
async fn read_events(
    addr: std::net::SocketAddr,
    session: &str,
    path: &str,
    last_event_id: Option<&str>,
    done: impl Fn(&str) -> bool,
    on_open: impl FnOnce(),
) -> String {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let extra = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Cookie: {}={session}\r\n{extra}\r\n",
        common::cookie_name(addr)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    let mut on_open = Some(on_open);
    timeout(WAIT, async {
        loop {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "stream ended early: {text}");
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
            if let Some(open) = on_open.take() {
                open();
            }
            if done(&text) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("condition not met in time; got:\n{text}"));
    text
}

fn last_id(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|line| {
            line.strip_prefix("id: ")
                .or_else(|| line.strip_prefix("id:"))
        })
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_live_and_resume_from_last_event_id() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("delta");
    write_project(&dir, "- [ ] 1: a\n");
    let id = project_id(&dir);
    let server = start_server(root).await;
    let session = token(&server);
    let path = format!("/api/events?topics=project:{id}");

    let pause = dir.join(".ralph/pause");
    let first = read_events(
        server.addr,
        &session,
        &path,
        None,
        |text| text.contains("\"status_changed\""),
        || fs::write(&pause, "").expect("pause"),
    )
    .await;
    assert!(first.contains("text/event-stream"), "{first}");
    assert!(first.contains("\"status\":\"paused\""));
    let resume_from = last_id(&first).expect("events carry an id");
    assert!(
        resume_from.starts_with(&format!("project:{id}=")),
        "{resume_from}"
    );

    // While nobody listens: two more changes.
    fs::remove_file(&pause).expect("unpause");
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), "- [x] 1: a\n").expect("tick");
    let missed = read_events(
        server.addr,
        &session,
        &path,
        Some(&resume_from),
        |text| text.contains("\"plan_updated\"") && text.contains("\"running\""),
        || {},
    )
    .await;
    assert!(
        !missed.contains("\"status\":\"paused\""),
        "the event before the cursor is not sent again"
    );
    assert_eq!(missed.matches("\"status_changed\"").count(), 1, "{missed}");
    assert!(!missed.contains("resync"));

    // A cursor from another server run cannot be served.
    let stale = read_events(
        server.addr,
        &session,
        &path,
        Some(&format!("project:{id}=1.1")),
        |text| text.contains("\"resync\""),
        || {},
    )
    .await;
    assert!(stale.contains(&format!("\"topic\":\"project:{id}\"")));

    assert_eq!(
        get(server.addr, &path).await.status,
        401,
        "no session, no stream"
    );
    for (query, status) in [
        ("", 400),
        ("?topics=weather", 400),
        ("?topics=project:nope", 404),
    ] {
        let response = get_signed_in(server.addr, &format!("/api/events{query}"), &session).await;
        assert_eq!(response.status, status, "{query}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_projects_stay_off_the_projects_stream_unless_asked() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let alpha = root.join("alpha");
    write_project(&alpha, "- [ ] 1: a\n");
    let alpha_id = project_id(&alpha);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let archived = post_json(
        server.addr,
        "/api/archive",
        &format!(r#"{{"project":"{alpha_id}","archived":true}}"#),
        &session,
    )
    .await;
    assert_eq!(archived.status, 200, "{}", archived.body);
    let list: serde_json::Value = serde_json::from_str(
        &post_json(server.addr, "/api/projects", "{}", &session)
            .await
            .body,
    )
    .expect("project list");
    let cursor = &list["cursors"]["projects"];
    let since = format!("projects={}.{}", cursor["epoch"], cursor["seq"]);

    // Asked for: alpha leaving is on the stream.
    let everything = read_events(
        server.addr,
        &session,
        "/api/events?topics=projects&include_archived=true",
        Some(&since),
        |text| text.contains("\"project_removed\""),
        || fs::remove_dir_all(&alpha).expect("remove alpha"),
    )
    .await;
    assert!(everything.contains(&alpha_id), "{everything}");

    // Not asked for: replayed from the same cursor, the next event is gamma's arrival.
    let gamma = root.join("gamma");
    write_project(&gamma, "- [ ] 1: a\n");
    let hidden = read_events(
        server.addr,
        &session,
        "/api/events?topics=projects",
        Some(&since),
        |text| text.contains("\"project_added\""),
        || {},
    )
    .await;
    assert!(hidden.contains(&project_id(&gamma)), "{hidden}");
    assert!(!hidden.contains("\"project_removed\""), "{hidden}");
    server.stop().await;
}
