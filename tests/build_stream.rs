//! `/api/build/stream/{id}` end to end: a server on port 0 watching a BuildRunner project, a
//! WebSocket client, and build files changed on disk. Every wait is bounded by a timeout.
#![cfg(feature = "ssr")]

use std::{fs, path::PathBuf};

use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

use loopwatch::server::discovery::project_id;
use loopwatch::site::RunningServer;

mod common;
use common::{
    append, open_ws, start_server, token, write_project, ws_next, ws_send, ws_wait_for, WsClient,
    WAIT,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/buildrunner");
const FIRST: &str = "checkpoint_20251117_213005_705272.json";
const RICH: &str = "checkpoint_20251119_101500_000001.json";

struct Fixture {
    _temp: tempfile::TempDir,
    root: PathBuf,
    build: PathBuf,
    id: String,
    server: RunningServer,
}

fn fixture_text(rel: &str) -> String {
    fs::read_to_string(format!("{FIXTURES}/{rel}")).expect("fixture")
}

/// A root with one BuildRunner project (`shop`: one real checkpoint, a registry, a context
/// file and a log) and one Ralph loop.
async fn fixture() -> Fixture {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical root");
    let build = root.join("shop");
    fs::create_dir_all(build.join(".buildrunner/checkpoints")).expect("mkdir");
    fs::create_dir_all(build.join(".buildrunner/context")).expect("mkdir");
    fs::write(
        build.join(".buildrunner/checkpoints").join(FIRST),
        fixture_text(&format!("real/{FIRST}")),
    )
    .expect("checkpoint");
    fs::write(
        build.join(".buildrunner/features.json"),
        fixture_text("seed/features.json"),
    )
    .expect("features");
    fs::write(
        build.join(".buildrunner/context/blockers.md"),
        fixture_text("real/blockers.md"),
    )
    .expect("context");
    fs::write(build.join(".buildrunner/build.log"), "started\n").expect("log");
    write_project(&root.join("loop"), "- [ ] 1: a\n");
    let server = start_server(root.clone()).await;
    Fixture {
        id: project_id(&build),
        _temp: temp,
        root,
        build,
        server,
    }
}

async fn connect(fixture: &Fixture) -> (WsClient, Value) {
    connect_at(fixture, &format!("/api/build/stream/{}", fixture.id)).await
}

async fn connect_at(fixture: &Fixture, path: &str) -> (WsClient, Value) {
    let mut client = open_ws(fixture.server.addr, path, &token(&fixture.server)).await;
    let first = ws_next(&mut client).await.expect("a first frame");
    (client, first)
}

fn of_type<'a>(kind: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |frame| frame["type"] == kind
}

#[tokio::test]
async fn connection_comes_first_then_ping_and_status_answer() {
    let fixture = fixture().await;
    let (mut client, first) = connect(&fixture).await;
    assert_eq!(first["type"], "connection", "{first}");
    assert_eq!(first["status"], "connected");
    assert_eq!(first["session_id"], fixture.id.as_str());
    assert!(first["timestamp"].is_string());

    ws_send(&mut client, r#"{"type":"ping"}"#).await;
    let pong = ws_next(&mut client).await.expect("pong");
    assert_eq!(pong["type"], "pong", "{pong}");
    assert!(pong["timestamp"].is_string());

    ws_send(&mut client, r#"{"type":"request_status"}"#).await;
    let status = ws_next(&mut client).await.expect("status");
    assert_eq!(status["type"], "status", "{status}");
    assert_eq!(status["session_id"], fixture.id.as_str());
    assert!(status["timestamp"].is_string());
    // The seed registry: feat-001 complete of its features; the real checkpoint has none.
    let total = status["build_progress"]["total"].as_u64().expect("total");
    assert!(total > 0, "{status}");
    assert_eq!(status["build_progress"]["completed"], 1, "{status}");
    assert_eq!(
        status["last_checkpoint"]["id"],
        FIRST.trim_end_matches(".json")
    );
    assert!(status["features"]
        .as_array()
        .is_some_and(|f| f.len() as u64 == total));

    ws_send(&mut client, r#"{"type":"dance"}"#).await;
    let error = ws_next(&mut client).await.expect("error");
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], 4400);
    assert_eq!(error["error_type"], "bad_request");
    ws_send(&mut client, r#"{"type":"subscribe","topics":["weather"]}"#).await;
    let error = ws_next(&mut client).await.expect("error");
    assert_eq!(error["code"], 4400, "{error}");
    ws_send(&mut client, r#"{"type":"ping"}"#).await;
    assert_eq!(
        ws_next(&mut client).await.expect("pong")["type"],
        "pong",
        "still open"
    );
    fixture.server.stop().await;
}

#[tokio::test]
async fn every_message_type_comes_from_a_real_file_change() {
    let fixture = fixture().await;
    let (mut client, first) = connect(&fixture).await;
    assert_eq!(first["type"], "connection");
    let build = fixture.build.join(".buildrunner");

    let written = std::time::Instant::now();
    fs::write(
        build.join("checkpoints").join(RICH),
        fixture_text(&format!("seed/{RICH}")),
    )
    .expect("checkpoint");
    let checkpoint = ws_wait_for(
        &mut client,
        "checkpoint_update",
        of_type("checkpoint_update"),
    )
    .await;
    // Measured and printed, not asserted.
    eprintln!("checkpoint write -> build stream: {:?}", written.elapsed());
    assert_eq!(checkpoint["checkpoint_id"], RICH.trim_end_matches(".json"));
    assert_eq!(checkpoint["phase"], "build_phase_1");
    assert_eq!(checkpoint["tasks_completed"][0], "task1");
    assert_eq!(checkpoint["files_created"][0], "api/websocket_handler.py");
    assert_eq!(checkpoint["metadata"]["created_by"], "orchestrator");
    assert_eq!(checkpoint["change"], "new");
    let component = ws_wait_for(&mut client, "component_update", of_type("component_update")).await;
    assert!(component["component_id"].is_string());
    assert!(component["status"].is_string());
    let feature = ws_wait_for(&mut client, "feature_update", of_type("feature_update")).await;
    assert!(feature["feature_id"].is_string());
    let progress = ws_wait_for(&mut client, "build_progress", of_type("build_progress")).await;
    assert!(
        progress["total"].as_u64().is_some_and(|t| t > 0),
        "{progress}"
    );
    assert!(progress["percent"].is_number());

    append(&build.join("build.log"), "compiling shop\n");
    let output = ws_wait_for(&mut client, "log output", |f| {
        f["type"] == "terminal_output" && f["source"] == "build.log"
    })
    .await;
    assert_eq!(output["output"], "compiling shop\n");
    assert_eq!(output["output_type"], "stdout");

    append(
        &build.join("context/blockers.md"),
        "\n---\n## Auto-Detected Error - 2025-11-17 21:30:05\n\n**Source:** `api/app.py`\n\n### SyntaxError\n```\ninvalid syntax (app.py, line 3)\n```\n",
    );
    // The file's change first, then what the append says.
    let change = ws_wait_for(&mut client, "file_change", |f| {
        f["type"] == "file_change" && f["file_path"] == ".buildrunner/context/blockers.md"
    })
    .await;
    assert_eq!(change["change_type"], "modified");
    assert!(change["content"]
        .as_str()
        .is_some_and(|c| c.contains("SyntaxError")));

    let error = ws_wait_for(&mut client, "error", |f| {
        f["type"] == "error" && f["error_type"] == "SyntaxError"
    })
    .await;
    assert!(error["error_message"]
        .as_str()
        .is_some_and(|m| m.contains("api/app.py")));
    assert!(error["traceback"]
        .as_str()
        .is_some_and(|t| t.contains("invalid syntax")));
    append(
        &build.join("context/test-results.md"),
        "## Output: pytest\n**Timestamp:** 2025-11-17 21:31:00\n\n```\n12 passed\n```\n",
    );
    let output = ws_wait_for(&mut client, "context output", |f| {
        f["type"] == "terminal_output" && f["source"] == "context/test-results.md"
    })
    .await;
    assert_eq!(output["output"], "12 passed\n");
    for frame in [
        &checkpoint,
        &component,
        &feature,
        &progress,
        &output,
        &error,
        &change,
    ] {
        assert!(frame["timestamp"].is_string(), "{frame}");
    }

    // A rollback to the first checkpoint marks the newer one rolled back.
    let first = build.join("checkpoints").join(FIRST);
    let rolled = fs::read_to_string(&first)
        .expect("read")
        .replace("\"created\"", "\"active\"");
    fs::write(&first, rolled).expect("write");
    let rich = build.join("checkpoints").join(RICH);
    let text = fs::read_to_string(&rich)
        .expect("read")
        .replace("\"created\"", "\"rolled_back\"");
    fs::write(&rich, text).expect("write");
    let rolled_back = ws_wait_for(&mut client, "rolled back", |f| {
        f["type"] == "checkpoint_update" && f["change"] == "rolled_back"
    })
    .await;
    assert_eq!(rolled_back["checkpoint_id"], RICH.trim_end_matches(".json"));

    fs::remove_file(&rich).expect("delete");
    let deleted = ws_wait_for(&mut client, "deleted", |f| {
        f["type"] == "file_change" && f["change_type"] == "deleted"
    })
    .await;
    assert!(deleted["file_path"]
        .as_str()
        .is_some_and(|p| p.ends_with(RICH)));
    fixture.server.stop().await;
}

#[tokio::test]
async fn subscribe_narrows_the_types_and_a_cursor_resumes() {
    let fixture = fixture().await;
    let (mut narrow, _) = connect(&fixture).await;
    let (mut all, first) = connect(&fixture).await;
    ws_send(
        &mut narrow,
        r#"{"type":"subscribe","topics":["terminal_output"]}"#,
    )
    .await;
    let ack = ws_next(&mut narrow).await.expect("ack");
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["topics"][0], "terminal_output");

    let build = fixture.build.join(".buildrunner");
    fs::write(
        build.join("checkpoints").join(RICH),
        fixture_text(&format!("seed/{RICH}")),
    )
    .expect("checkpoint");
    ws_wait_for(&mut all, "checkpoint_update", of_type("checkpoint_update")).await;
    append(&build.join("build.log"), "after the checkpoint\n");
    let next = ws_next(&mut narrow).await.expect("a frame");
    assert_eq!(
        next["type"], "terminal_output",
        "only what was asked for: {next}"
    );
    assert_eq!(next["output"], "after the checkpoint\n");

    // A client that saw the first cursor gets what it missed when it comes back.
    let cursor = &first["cursor"];
    let path = format!(
        "/api/build/stream/{}?epoch={}&seq={}",
        fixture.id, cursor["epoch"], cursor["seq"]
    );
    let (mut back, connection) = connect_at(&fixture, &path).await;
    assert_eq!(connection["type"], "connection");
    let replayed = ws_wait_for(
        &mut back,
        "replayed checkpoint",
        of_type("checkpoint_update"),
    )
    .await;
    assert_eq!(replayed["checkpoint_id"], RICH.trim_end_matches(".json"));

    // A cursor of another epoch: the state instead.
    let path = format!("/api/build/stream/{}?epoch=1&seq=5", fixture.id);
    let (mut stale, _) = connect_at(&fixture, &path).await;
    let status = ws_next(&mut stale).await.expect("status");
    assert_eq!(status["type"], "status", "{status}");
    fixture.server.stop().await;
}

#[tokio::test]
async fn an_unknown_session_or_a_project_without_a_build_is_4404() {
    let fixture = fixture().await;
    let loop_id = project_id(&fixture.root.join("loop"));
    for id in ["nope-00000000", loop_id.as_str()] {
        let (mut client, first) = connect_at(&fixture, &format!("/api/build/stream/{id}")).await;
        assert_eq!(first["type"], "error", "{first}");
        assert_eq!(first["code"], 4404);
        assert_eq!(ws_next(&mut client).await.err(), Some(Some(4404)));
    }
    fixture.server.stop().await;
}

#[tokio::test]
async fn the_stream_needs_a_session_and_the_same_origin() {
    let fixture = fixture().await;
    let url = format!(
        "ws://{}/api/build/stream/{}",
        fixture.server.addr, fixture.id
    );
    let refused = timeout(WAIT, tokio_tungstenite::connect_async(url.clone()))
        .await
        .expect("answer in time");
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let signed = format!("{url}?token={}", token(&fixture.server));
    let mut request = signed.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_static("http://evil.example"));
    match timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("answer in time")
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    fixture.server.stop().await;
}

#[tokio::test]
async fn build_events_reach_the_project_topic_and_a_loop_that_gains_a_build_shows_both_kinds() {
    let fixture = fixture().await;
    let loop_dir = fixture.root.join("loop");
    let loop_id = project_id(&loop_dir);
    let mut live = open_ws(fixture.server.addr, "/api/ws", &token(&fixture.server)).await;
    assert_eq!(ws_next(&mut live).await.expect("hello")["type"], "hello");
    let subscribe = format!(
        r#"{{"action":"subscribe","topics":["project:{}","project:{loop_id}"]}}"#,
        fixture.id
    );
    ws_send(&mut live, &subscribe).await;
    ws_wait_for(&mut live, "subscribed", of_type("subscribed")).await;

    fs::write(
        fixture.build.join(".buildrunner/checkpoints").join(RICH),
        fixture_text(&format!("seed/{RICH}")),
    )
    .expect("checkpoint");
    let event = ws_wait_for(&mut live, "build checkpoint event", |f| {
        f["type"] == "build" && f["data"]["event"] == "checkpoint"
    })
    .await;
    assert_eq!(event["project"], fixture.id.as_str());
    assert_eq!(event["data"]["change"], "new");
    let card = ws_wait_for(&mut live, "card", |f| {
        f["type"] == "project_updated" && f["project"] == fixture.id.as_str()
    })
    .await;
    assert_eq!(card["data"]["kinds"], serde_json::json!(["buildrunner"]));
    assert_eq!(card["data"]["build"]["phase"], "build_phase_1");

    fs::create_dir_all(loop_dir.join(".buildrunner/checkpoints")).expect("mkdir");
    fs::write(
        loop_dir.join(".buildrunner/checkpoints").join(FIRST),
        fixture_text(&format!("real/{FIRST}")),
    )
    .expect("checkpoint");
    let card = ws_wait_for(&mut live, "the loop's card with both kinds", |f| {
        f["type"] == "project_updated"
            && f["project"] == loop_id.as_str()
            && f["data"]["build"]["last_checkpoint"].is_object()
    })
    .await;
    assert_eq!(
        card["data"]["kinds"],
        serde_json::json!(["ralph", "buildrunner"])
    );
    fixture.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_events_reach_server_sent_events() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fixture = fixture().await;
    let addr = fixture.server.addr;
    let mut stream = timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let request = format!(
        "GET /api/events?topics=project:{} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Cookie: {}={}\r\n\r\n",
        fixture.id,
        common::cookie_name(addr),
        token(&fixture.server)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    let mut written = false;
    timeout(WAIT, async {
        while !text.contains(r#""event":"checkpoint""#) {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "stream ended early: {text}");
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
            if !written {
                written = true;
                fs::write(
                    fixture.build.join(".buildrunner/checkpoints").join(RICH),
                    fixture_text(&format!("seed/{RICH}")),
                )
                .expect("checkpoint");
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no checkpoint event; got:\n{text}"));
    assert!(text.contains(r#""type":"build""#), "{text}");
    fixture.server.stop().await;
}
