//! End-to-end over real sockets: a server on port 0 watching a fixture project, a
//! tokio-tungstenite client, and files changed on disk. Every wait is bounded by a timeout.
#![cfg(feature = "ssr")]

use std::{fs, path::PathBuf, time::Duration};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{net::TcpStream, time::timeout};
use tokio_tungstenite::{connect_async, tungstenite::Message, MaybeTlsStream, WebSocketStream};

use loopwatch::server::discovery::project_id;
use loopwatch::site::{start, RunningServer, StartError};

mod common;
use common::{append, append_bytes, get_signed_in, start_server, token, write_project, WAIT};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PLAN: &str = "## Phase 1\n- [ ] 1.1: first\n- [ ] 1.2: second\n";

struct Fixture {
    _root: tempfile::TempDir,
    root: PathBuf,
    project: PathBuf,
    id: String,
    server: RunningServer,
}

async fn fixture() -> Fixture {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical root");
    let project = root.join("alpha");
    write_project(&project, PLAN);
    let server = start_server(root.clone()).await;
    Fixture {
        id: project_id(&project),
        _root: temp,
        root,
        project,
        server,
    }
}

async fn connect(fixture: &Fixture) -> Client {
    let url = format!(
        "ws://{}/api/ws?token={}",
        fixture.server.addr,
        token(&fixture.server)
    );
    let (mut client, _) = timeout(WAIT, connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let hello = next_json(&mut client).await;
    assert_eq!(hello["type"], "hello");
    client
}

async fn send(client: &mut Client, text: &str) {
    client
        .send(Message::Text(text.into()))
        .await
        .expect("send frame");
}

/// The next JSON text frame (protocol pings are skipped).
async fn next_json(client: &mut Client) -> Value {
    loop {
        let message = timeout(WAIT, client.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Skips frames until one satisfies `wanted`, within the timeout.
async fn wait_for(client: &mut Client, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let found = timeout(WAIT, async {
        loop {
            let frame = next_json(client).await;
            if wanted(&frame) {
                return frame;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_reach_a_subscribed_socket() {
    let fixture = fixture().await;
    let mut client = connect(&fixture).await;
    send(
        &mut client,
        &format!(r#"{{"action":"subscribe","projects":["{}"]}}"#, fixture.id),
    )
    .await;
    let ack = next_json(&mut client).await;
    assert_eq!(ack["type"], "subscribed");
    // The seed form subscribes to the project's state and its log.
    assert_eq!(
        ack["topics"],
        serde_json::json!([
            format!("project:{}", fixture.id),
            format!("log:{}", fixture.id)
        ])
    );

    fs::write(fixture.project.join(".ralph/pause"), "").expect("touch pause");
    let event = wait_for(&mut client, "status_changed to paused", |f| {
        f["type"] == "status_changed" && f["data"]["status"] == "paused"
    })
    .await;
    assert_eq!(event["project"], fixture.id.as_str());
    assert_eq!(event["data"]["previous"], "running");
    assert!(event["timestamp"].as_str().is_some_and(|t| t.contains('T')));

    fs::write(
        fixture.project.join("IMPLEMENTATION_PLAN.md"),
        "## Phase 1\n- [x] 1.1: first\n- [ ] 1.2: second\n",
    )
    .expect("tick plan");
    let plan = wait_for(&mut client, "plan_updated", |f| f["type"] == "plan_updated").await;
    assert_eq!(plan["data"]["tasks_done"], 1);
    assert_eq!(plan["data"]["tasks_total"], 2);
    assert_eq!(plan["data"]["phases"][0]["status"], "in_progress");

    // The log: a header starts an iteration; every line is forwarded.
    append(
        &fixture.project.join(".ralph/ralph.log"),
        "[10:00:00] \x1b[1m=== Iteration 1 (loop 1/5) ===\x1b[0m\n[10:00:01] working on 1.2\n",
    );
    let started = wait_for(&mut client, "iteration_started", |f| {
        f["type"] == "iteration_started"
    })
    .await;
    assert_eq!(started["data"]["iteration"], 1);
    assert_eq!(started["data"]["max"], 5);
    assert_eq!(started["data"]["loop_index"], 1);
    let appended = wait_for(&mut client, "log_append", |f| f["type"] == "log_append").await;
    assert!(
        appended["data"]["lines"]
            .as_str()
            .is_some_and(|l| l.ends_with("working on 1.2\n")),
        "{appended}"
    );

    // A second subscription to the log starts with its last lines (the backlog).
    send(
        &mut client,
        &format!(
            r#"{{"action":"subscribe","topics":["log:{}"],"backlog":1}}"#,
            fixture.id
        ),
    )
    .await;
    let backlog = wait_for(&mut client, "log_backlog", |f| f["type"] == "log_backlog").await;
    assert_eq!(backlog["data"]["lines"], "[10:00:01] working on 1.2\n");

    // A JSONL row completes it.
    append(
        &fixture.project.join(".ralph/iterations.jsonl"),
        "{\"iteration\": 1, \"max\": 5, \"status\": \"success\", \"tokens\": \"12.5\", \"tasks_completed\": [\"1.2\"], \"test_passed\": true}\n",
    );
    let done = wait_for(&mut client, "iteration_completed", |f| {
        f["type"] == "iteration_completed"
    })
    .await;
    assert_eq!(done["data"]["iteration"], 1);
    assert_eq!(done["data"]["tokens"], 12.5);
    assert_eq!(done["data"]["health"], "productive");
    assert_eq!(done["data"]["tasks_completed"][0], "1.2");

    fs::write(
        fixture.project.join(".ralph/pending-notification.txt"),
        "BLOCKED: the database is unreachable\n",
    )
    .expect("notification");
    let note = wait_for(&mut client, "notification", |f| f["type"] == "notification").await;
    assert_eq!(note["data"]["kind"], "blocked");
    assert_eq!(note["data"]["severity"], "error");
    assert_eq!(note["data"]["message"], "the database is unreachable");

    fs::write(fixture.project.join("AGENTS.md"), "# Agents\n").expect("agents");
    let changed = wait_for(&mut client, "file_changed", |f| f["type"] == "file_changed").await;
    assert_eq!(changed["data"]["file"], "AGENTS.md");

    // Garbage in the pid file: no live loop, and the pending BLOCKED is newer than the last
    // row, so the honest status is "error" (not a crash).
    fs::write(fixture.project.join(".ralph/ralph.pid"), "garbage").expect("garbage pid");
    wait_for(&mut client, "status_changed to error", |f| {
        f["type"] == "status_changed" && f["data"]["status"] == "error"
    })
    .await;

    // A malformed frame gets an error frame and the socket stays usable.
    send(&mut client, "{this is not json").await;
    let error = wait_for(&mut client, "error frame", |f| f["type"] == "error").await;
    assert_eq!(error["code"], 4400);
    send(&mut client, r#"{"action":"ping"}"#).await;
    wait_for(&mut client, "pong", |f| f["type"] == "pong").await;

    // After unsubscribing from the project's state, its events stop; the log topic still flows.
    send(
        &mut client,
        &format!(
            r#"{{"action":"unsubscribe","topics":["project:{}"]}}"#,
            fixture.id
        ),
    )
    .await;
    let ack = wait_for(&mut client, "unsubscribed", |f| f["type"] == "unsubscribed").await;
    assert_eq!(ack["topics"][0], format!("project:{}", fixture.id));
    // A plan change, seen by an observer still subscribed, is published before the next log
    // line; the unsubscribed client must get the log line and not the plan change.
    let mut observer = connect(&fixture).await;
    send(
        &mut observer,
        &format!(
            r#"{{"action":"subscribe","topics":["project:{}"]}}"#,
            fixture.id
        ),
    )
    .await;
    wait_for(&mut observer, "subscribed", |f| f["type"] == "subscribed").await;
    fs::write(
        fixture.project.join("IMPLEMENTATION_PLAN.md"),
        "## Phase 1\n- [x] 1.1: first\n- [x] 1.2: second\n",
    )
    .expect("tick again");
    wait_for(&mut observer, "plan_updated", |f| {
        f["type"] == "plan_updated"
    })
    .await;
    append(
        &fixture.project.join(".ralph/ralph.log"),
        "after unsubscribe\n",
    );
    let next = wait_for(&mut client, "log_append or plan_updated", |f| {
        f["type"] == "log_append" || f["type"] == "plan_updated"
    })
    .await;
    assert_eq!(
        next["type"], "log_append",
        "no project events after unsubscribe"
    );

    // Projects leaving are announced on the `projects` topic.
    send(
        &mut client,
        r#"{"action":"subscribe","topics":["projects"]}"#,
    )
    .await;
    wait_for(&mut client, "subscribed", |f| f["type"] == "subscribed").await;
    fs::remove_dir_all(&fixture.project).expect("delete project");
    wait_for(&mut client, "project_removed", |f| {
        f["type"] == "project_removed" && f["project"] == fixture.id.as_str()
    })
    .await;

    fixture.server.stop().await;
    let closed = timeout(WAIT, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("close in time");
    assert_eq!(closed, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_appears_live_and_the_page_renders_real_data() {
    let fixture = fixture().await;
    let session = token(&fixture.server);
    let page = get_signed_in(fixture.server.addr, "/", &session).await;
    assert_eq!(page.status, 200);
    let page = page.body;
    assert!(
        page.contains("alpha"),
        "project name rendered on the server"
    );
    assert!(page.contains("running"), "status rendered on the server");
    assert!(
        page.contains("0 / 2 tasks"),
        "plan progress rendered on the server"
    );

    let signed_in = |path: &'static str| get_signed_in(fixture.server.addr, path, &session);
    assert_eq!(signed_in("/no/such/page").await.status, 404);
    // A dot segment is refused before routing, signed in or not.
    assert_eq!(signed_in("/pkg/../Cargo.toml").await.status, 400);

    let mut client = connect(&fixture).await;
    send(
        &mut client,
        r#"{"action":"subscribe","topics":["projects"]}"#,
    )
    .await;
    assert_eq!(next_json(&mut client).await["type"], "subscribed");
    let beta = fixture.root.join("beta");
    write_project(&beta, PLAN);
    let added = wait_for(&mut client, "project_added", |f| {
        f["type"] == "project_added"
    })
    .await;
    assert_eq!(added["project"], project_id(&beta).as_str());
    assert_eq!(added["data"]["name"], "beta");
    assert_eq!(added["data"]["status"], "running");
    fixture.server.stop().await;
}

/// Waits for the `project_added` of the project at `dir`.
async fn added(client: &mut Client, dir: &std::path::Path) -> Value {
    let id = project_id(dir);
    wait_for(client, "project_added", |f| {
        f["type"] == "project_added" && f["project"] == id.as_str()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_created_deep_below_a_root_appear_at_once() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical root");
    // Directories that exist before the server starts: creating a project in the deepest one
    // changes no direct child of the root, so only a watch on `a/b/c` can see it.
    fs::create_dir_all(root.join("a/b/c")).expect("mkdir");
    fs::create_dir_all(root.join("a/node_modules")).expect("mkdir");
    let server = start_server(root.clone()).await;
    let url = format!("ws://{}/api/ws?token={}", server.addr, token(&server));
    let (mut client, _) = timeout(WAIT, connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    assert_eq!(next_json(&mut client).await["type"], "hello");
    send(
        &mut client,
        r#"{"action":"subscribe","topics":["projects"]}"#,
    )
    .await;
    assert_eq!(next_json(&mut client).await["type"], "subscribed");

    // `mkdir -p root/a/b/c/deep/.ralph`: four levels down, the deepest discovery looks.
    let deep = root.join("a/b/c/deep");
    fs::create_dir_all(deep.join(".ralph")).expect("mkdir -p");
    let event = added(&mut client, &deep).await;
    assert_eq!(event["data"]["name"], "deep");

    // Directories that appear later are watched too: `x/later` exists once `x/first` is found
    // (the same walk), and a project made inside it is seen through its own watch.
    fs::create_dir_all(root.join("x/later")).expect("mkdir");
    write_project(&root.join("x/first"), PLAN);
    added(&mut client, &root.join("x/first")).await;
    let later = root.join("x/later/proj");
    write_project(&later, PLAN);
    added(&mut client, &later).await;

    // A project that stops being one is watched as a plain directory and can come back.
    fs::remove_dir_all(deep.join(".ralph")).expect("remove .ralph");
    wait_for(&mut client, "project_removed", |f| {
        f["type"] == "project_removed" && f["project"] == project_id(&deep).as_str()
    })
    .await;
    write_project(&deep, PLAN);
    added(&mut client, &deep).await;

    // Deleted trees drop their watches; the same path made again is found again.
    fs::remove_dir_all(root.join("x")).expect("remove x");
    wait_for(&mut client, "project_removed", |f| {
        f["type"] == "project_removed" && f["project"] == project_id(&later).as_str()
    })
    .await;
    write_project(&later, PLAN);
    added(&mut client, &later).await;

    // Skipped names stay skipped: the next project found is the one made after it (whose path
    // sorts after it, so one walk finding both would announce the skipped one first).
    write_project(&root.join("a/node_modules/pkg"), PLAN);
    let marker = root.join("a/zz-marker");
    write_project(&marker, PLAN);
    let next = wait_for(&mut client, "project_added", |f| {
        f["type"] == "project_added"
    })
    .await;
    assert_eq!(next["project"], project_id(&marker).as_str());
    server.stop().await;
}

#[tokio::test]
async fn a_missing_projects_directory_is_a_clear_start_error() {
    let result = start(common::server_config(
        vec![PathBuf::from("/no/such/projects/dir")],
        None,
        None,
    ))
    .await;
    match result {
        Err(StartError::BadRoot(path, why)) => {
            assert_eq!(path, PathBuf::from("/no/such/projects/dir"));
            assert!(why.contains("cannot open"), "{why}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("started with a missing root"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_with_its_cursor_gets_exactly_what_it_missed() {
    let fixture = fixture().await;
    let topic = format!("project:{}", fixture.id);
    let mut client = connect(&fixture).await;
    send(
        &mut client,
        &format!(r#"{{"action":"subscribe","topics":["{topic}"]}}"#),
    )
    .await;
    assert_eq!(next_json(&mut client).await["type"], "subscribed");
    fs::write(fixture.project.join(".ralph/pause"), "").expect("pause");
    let seen = wait_for(&mut client, "status_changed", |f| {
        f["type"] == "status_changed"
    })
    .await;
    let (epoch, seq) = (seen["epoch"].clone(), seen["seq"].clone());
    drop(client);

    // Changes while the client is away.
    fs::remove_file(fixture.project.join(".ralph/pause")).expect("unpause");
    fs::write(
        fixture.project.join("IMPLEMENTATION_PLAN.md"),
        "## Phase 1\n- [x] 1.1: first\n- [ ] 1.2: second\n",
    )
    .expect("tick");
    // Wait until the server has published both (observed through a second client).
    let mut observer = connect(&fixture).await;
    send(&mut observer, &format!(r#"{{"action":"subscribe","topics":["{topic}"],"since":{{"{topic}":{{"epoch":{epoch},"seq":{seq}}}}}}}"#)).await;
    wait_for(&mut observer, "the plan update", |f| {
        f["type"] == "plan_updated"
    })
    .await;

    let mut back = connect(&fixture).await;
    send(&mut back, &format!(r#"{{"action":"subscribe","topics":["{topic}"],"since":{{"{topic}":{{"epoch":{epoch},"seq":{seq}}}}}}}"#)).await;
    let ack = next_json(&mut back).await;
    assert_eq!(ack["type"], "subscribed");
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let frame = next_json(&mut back).await;
        replayed.push((
            frame["type"].as_str().unwrap_or("").to_owned(),
            frame["seq"].as_u64().unwrap_or(0),
        ));
    }
    let seq = seq.as_u64().unwrap_or(0);
    // Both changes are read at once (the plan's first change is not held), so either may be
    // published first: the replay gives them in the order they were published.
    let seqs: Vec<u64> = replayed.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seqs,
        [seq + 1, seq + 2],
        "exactly the missed events, in order"
    );
    let mut types: Vec<&str> = replayed.iter().map(|(t, _)| t.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["plan_updated", "status_changed"], "{replayed:?}");

    // A cursor from another server run cannot be replayed.
    send(&mut back, &format!(r#"{{"action":"subscribe","topics":["{topic}"],"since":{{"{topic}":{{"epoch":1,"seq":5}}}}}}"#)).await;
    let resync = wait_for(&mut back, "resync", |f| f["type"] == "resync").await;
    assert_eq!(resync["topic"], topic.as_str());
    fixture.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_arrive_whole_and_rotation_is_announced() {
    let fixture = fixture().await;
    let log = fixture.project.join(".ralph/ralph.log");
    let mut client = connect(&fixture).await;
    send(
        &mut client,
        &format!(
            r#"{{"action":"subscribe","topics":["log:{}"],"backlog":0}}"#,
            fixture.id
        ),
    )
    .await;
    assert_eq!(next_json(&mut client).await["type"], "subscribed");

    // Half a line, ending inside a multi-byte character: nothing may be sent yet.
    let line = "caf\u{e9} \u{1f600}\n".as_bytes();
    append_bytes(&log, &line[..4]);
    append_bytes(&log, &line[4..]);
    // The next complete line proves the earlier bytes were read; they must come out whole.
    append(&log, "done\n");
    let mut text = String::new();
    while !text.ends_with("done\n") {
        let frame = wait_for(&mut client, "log_append", |f| f["type"] == "log_append").await;
        text.push_str(frame["data"]["lines"].as_str().unwrap_or_default());
    }
    assert_eq!(text, "caf\u{e9} \u{1f600}\ndone\n");

    // Truncation (copytruncate) and replacement (rotation) both announce log_rotated.
    fs::write(&log, "after truncation\n").expect("truncate");
    let rotated = wait_for(&mut client, "log_rotated", |f| f["type"] == "log_rotated").await;
    assert_eq!(rotated["seq"], 1, "a new epoch starts at 1");
    let replacement = fixture.project.join(".ralph/ralph.log.new");
    fs::write(
        &replacement,
        "a brand new file with more bytes than before\n",
    )
    .expect("write");
    fs::rename(&replacement, &log).expect("rotate");
    wait_for(&mut client, "second log_rotated", |f| {
        f["type"] == "log_rotated"
    })
    .await;
    fixture.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_gets_resync_and_the_others_miss_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("zeta");
    write_project(&dir, PLAN);
    let log = dir.join(".ralph/ralph.log");
    fs::write(&log, "").expect("empty log");
    let id = project_id(&dir);
    // A small hub: the stalled client falls behind quickly.
    let server = common::start_server_with_capacity(root, 8).await;
    let url = format!("ws://{}/api/ws?token={}", server.addr, token(&server));
    let subscribe = format!(r#"{{"action":"subscribe","topics":["log:{id}"],"backlog":0}}"#);

    let (mut stalled, _) = connect_async(url.as_str()).await.expect("connect");
    send(&mut stalled, &subscribe).await;
    assert_eq!(next_json(&mut stalled).await["type"], "hello");
    assert_eq!(next_json(&mut stalled).await["type"], "subscribed");

    let (mut healthy, _) = connect_async(url.as_str()).await.expect("connect");
    send(&mut healthy, &subscribe).await;
    assert_eq!(next_json(&mut healthy).await["type"], "hello");
    assert_eq!(next_json(&mut healthy).await["type"], "subscribed");

    // 32 MiB of log, far more than the socket buffers and the hub hold for the stalled client.
    let line = format!("{}\n", "y".repeat(1023));
    let chunk = line.repeat(128);
    let total = chunk.len() * 256;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < total {
            let frame = next_json(&mut healthy).await;
            assert_ne!(
                frame["type"], "resync",
                "the healthy client must not fall behind"
            );
            if frame["type"] == "log_append" {
                received += frame["data"]["lines"].as_str().map_or(0, str::len);
                let _ = progress_tx.send(received);
            }
        }
        received
    });
    // The writer goes at the healthy client's pace: it is never more than a chunk behind,
    // while the stalled one falls further behind with every chunk.
    for n in 1..=256 {
        append(&log, &chunk);
        let written = n * chunk.len();
        timeout(WAIT, progress.wait_for(|received| *received >= written))
            .await
            .expect("the healthy client keeps up")
            .expect("reader alive");
    }
    let received = timeout(Duration::from_secs(60), reader)
        .await
        .expect("the healthy client keeps up")
        .expect("reader did not panic");
    assert_eq!(received, total);

    // The stalled client, reading at last, is told to resync instead of being waited for.
    let resync = timeout(Duration::from_secs(60), async {
        loop {
            let frame = next_json(&mut stalled).await;
            if frame["type"] == "resync" {
                return frame;
            }
        }
    })
    .await
    .expect("a resync in time");
    assert!(resync["reason"]
        .as_str()
        .is_some_and(|r| r.contains("behind")));
    server.stop().await;
}
