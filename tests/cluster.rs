//! The cluster with real processes on loopback: one `redis-server`, one `loopwatch agent`
//! watching a project, two `loopwatch serve --redis` nodes. A client follows the log on one
//! node, that node is killed (SIGKILL) mid-burst, and the client resumes on the other with its
//! cursor: it ends with exactly what was written, in order, with no gap in the sequence. An
//! engine restarted empty makes the nodes tell their clients to resync. A killed agent's
//! projects are marked offline on every node, and online again when it is back. A node stopped
//! while the engine trims past what it read says resync, never skips silently.

mod common;
mod redis_server;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use redis::AsyncCommands;
use redis_server::RedisServer;
use serde_json::{json, Value};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);
/// How often a condition that has no event of its own is checked again.
const POLL: Duration = Duration::from_millis(20);

/// A child process, killed when dropped.
struct Process {
    child: Child,
}

impl Process {
    /// SIGKILL: no clean stop, no goodbye to its clients.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `loopwatch agent` (named a1) for the projects under `projects`, with `extra` flags, and
/// waits until it publishes.
fn agent(url: &str, projects: &Path, extra: &[&str]) -> Process {
    let projects = projects.to_str().expect("utf-8");
    let mut args = vec![
        "agent",
        "--redis",
        url,
        "--projects",
        projects,
        "--name",
        "a1",
    ];
    args.extend_from_slice(extra);
    spawn(&args, "publishing").0
}

/// Runs `loopwatch ARGS` and waits for a stdout line containing `ready`; returns that line.
fn spawn(args: &[&str], ready: &str) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopwatch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start loopwatch");
    let stdout = child.stdout.take().expect("stdout");
    let process = Process { child };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => return (process, line),
            Ok(_) => continue,
            Err(_) => panic!("`loopwatch {}` never printed {ready:?}", args.join(" ")),
        }
    }
}

/// A dashboard node fed by the engine, without authentication, on a free port.
fn node(url: &str, data: &Path) -> (Process, SocketAddr) {
    let data = data.to_str().expect("utf-8 path");
    let args = [
        "serve",
        "--redis",
        url,
        "--no-auth",
        "--addr",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ];
    let (process, line) = spawn(&args, "listening on http://");
    let addr = line
        .rsplit("http://")
        .next()
        .and_then(|addr| addr.trim().parse().ok())
        .expect("the node's address");
    (process, addr)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr) -> Socket {
    timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws")),
    )
    .await
    .expect("connect in time")
    .expect("connect")
    .0
}

/// The next JSON frame; `None` when the socket ends (its server was killed).
async fn next(socket: &mut Socket) -> Option<Value> {
    let frame = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).ok(),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                // Protocol pings do not count as frames (nor restart the wait).
                Some(Ok(_)) => continue,
            }
        }
    };
    timeout(WAIT, frame).await.expect("a frame in time")
}

/// Subscribes to `topic` (from `since` when given) until the node knows the project; returns
/// the cursor the node answered with.
async fn subscribe(socket: &mut Socket, topic: &str, since: Option<&Value>) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut frame = json!({"action": "subscribe", "topics": [topic], "backlog": 0});
        if let Some(cursor) = since {
            frame["since"] = json!({ topic: cursor });
        }
        socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
        loop {
            let reply = next(socket).await.expect("the node answers");
            match reply["type"].as_str() {
                Some("subscribed") if !reply["topics"].as_array().is_some_and(|t| t.is_empty()) => {
                    return reply["cursors"][topic].clone();
                }
                // Not known yet: the node learns the project from the engine.
                Some("error") if reply["code"] == 4404 => break,
                _ => continue,
            }
        }
        assert!(Instant::now() < deadline, "the node never learned {topic}");
        tokio::time::sleep(POLL).await;
    }
}

/// What a client has of the log: the text and every event's cursor.
#[derive(Default)]
struct Followed {
    text: String,
    cursors: Vec<(u64, u64)>,
    resyncs: Vec<Value>,
}

impl Followed {
    /// Takes one frame; `false` when the socket ended.
    fn take(&mut self, frame: Option<Value>) -> bool {
        let Some(frame) = frame else {
            return false;
        };
        match frame["type"].as_str() {
            Some("log_append") => {
                self.text
                    .push_str(frame["data"]["lines"].as_str().expect("lines"));
                let cursor = (
                    frame["epoch"].as_u64().expect("epoch"),
                    frame["seq"].as_u64().expect("seq"),
                );
                self.cursors.push(cursor);
            }
            Some("resync") => self.resyncs.push(frame),
            _ => {}
        }
        true
    }

    fn last(&self) -> Value {
        let (epoch, seq) = *self.cursors.last().expect("some events");
        json!({"epoch": epoch, "seq": seq})
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the log");
    file.write_all(text.as_bytes()).expect("append");
}

/// One project under `root`, with an empty log.
fn project(root: &Path) -> std::path::PathBuf {
    let dir = root.join("alpha");
    std::fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
    std::fs::write(dir.join("IMPLEMENTATION_PLAN.md"), "- [ ] one\n").expect("plan");
    let log = dir.join(".ralph/ralph.log");
    std::fs::write(&log, "").expect("log");
    log
}

/// Waits until the engine has numbered the log events of `topic` up to the one holding line
/// `lines - 1` (the agent may batch lines into fewer events).
async fn wait_for_seq(url: &str, topic: &str, lines: usize) {
    let client = redis::Client::open(url).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let last_line = format!("line {} of the burst", lines - 1);
    let deadline = Instant::now() + WAIT;
    loop {
        let last: redis::streams::StreamRangeReply = connection
            .xrevrange_count(format!("lw:s:{topic}"), "+", "-", 1)
            .await
            .expect("xrevrange");
        let message: Option<String> = last.ids.first().and_then(|entry| entry.get("m"));
        if message.is_some_and(|m| m.contains(&last_line)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never published line {lines}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The id the agent published the project under.
async fn project_id(url: &str) -> String {
    let client = redis::Client::open(url).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let deadline = Instant::now() + WAIT;
    loop {
        let ids: Vec<String> = connection.smembers("lw:projects").await.expect("smembers");
        if let Some(id) = ids.into_iter().next() {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never published the project"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// When the second node starts: with the first (it saw every event live) or after the kill
/// (what the client missed is older than anything it saw: served from the topic's stream).
#[derive(Clone, Copy, PartialEq)]
enum SecondNode {
    FromTheStart,
    AfterTheKill,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_the_other_node_after_a_kill_with_nothing_lost_or_doubled() {
    resume_after_kill(SecondNode::FromTheStart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_after_the_kill_resumes_the_client_from_the_topic_stream() {
    resume_after_kill(SecondNode::AfterTheKill).await;
}

async fn resume_after_kill(second: SecondNode) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let root = tempfile::tempdir().expect("tempdir");
    let log = project(&root.path().join("projects"));
    let _agent = agent(&url, &root.path().join("projects"), &[]);
    let (mut node_a, addr_a) = node(&url, &root.path().join("a"));
    let mut node_b =
        (second == SecondNode::FromTheStart).then(|| node(&url, &root.path().join("b")));
    let id = project_id(&url).await;
    let topic = format!("log:{id}");

    let mut on_a = connect(addr_a).await;
    subscribe(&mut on_a, &topic, None).await;
    let mut followed = Followed::default();
    let mut written = String::new();
    let burst = |from: usize, to: usize, written: &mut String| {
        for i in from..to {
            let line = format!("line {i} of the burst\n");
            append(&log, &line);
            written.push_str(&line);
        }
    };
    burst(0, 200, &mut written);
    // Mid-burst: the client holds some of it, then its node dies without a word.
    while followed.cursors.is_empty() {
        assert!(followed.take(next(&mut on_a).await), "node A closed early");
    }
    node_a.kill();
    burst(200, 400, &mut written);
    while followed.take(next(&mut on_a).await) {}
    assert!(
        followed.text.len() < written.len(),
        "the kill came after everything was delivered: nothing to resume"
    );

    if node_b.is_none() {
        // Everything is in the engine before this node exists.
        wait_for_seq(&url, &topic, 400).await;
        node_b = Some(node(&url, &root.path().join("b")));
    }
    let addr_b = node_b.as_ref().map(|(_, addr)| *addr).expect("node B");
    let mut on_b = connect(addr_b).await;
    subscribe(&mut on_b, &topic, Some(&followed.last())).await;
    let deadline = Instant::now() + WAIT;
    while followed.text.len() < written.len() {
        assert!(Instant::now() < deadline, "node B never caught up");
        assert!(followed.take(next(&mut on_b).await), "node B closed");
    }
    assert!(followed.resyncs.is_empty(), "{:?}", followed.resyncs);
    assert_eq!(followed.text, written, "exactly the file, in order");
    let epoch = followed.cursors[0].0;
    let first = followed.cursors[0].1;
    let expected: Vec<(u64, u64)> = (first..first + followed.cursors.len() as u64)
        .map(|seq| (epoch, seq))
        .collect();
    assert_eq!(followed.cursors, expected, "one epoch, no gap, no repeat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_restarted_empty_makes_the_nodes_say_resync() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let root = tempfile::tempdir().expect("tempdir");
    let log = project(&root.path().join("projects"));
    let _agent = agent(&url, &root.path().join("projects"), &[]);
    let (_node, addr) = node(&url, &root.path().join("n"));
    let id = project_id(&url).await;
    let topic = format!("log:{id}");
    let mut socket = connect(addr).await;
    subscribe(&mut socket, &topic, None).await;
    let mut followed = Followed::default();
    append(&log, "before\n");
    while followed.cursors.is_empty() {
        assert!(followed.take(next(&mut socket).await), "closed");
    }
    let before = followed.cursors[0];

    redis.restart();
    append(&log, "after\n");
    while followed.resyncs.is_empty() || followed.cursors.len() < 2 {
        assert!(followed.take(next(&mut socket).await), "closed");
    }
    assert_eq!(followed.resyncs[0]["topic"], topic.as_str());
    let after = followed.cursors[1];
    assert!(
        after.0 > before.0,
        "a later epoch: {after:?} after {before:?}"
    );
    assert_eq!(after.1, 1);
    assert_eq!(followed.text, "before\nafter\n", "nothing silently lost");
}

/// The project cards node `addr` serves (`list_projects`), as JSON.
async fn cards(addr: SocketAddr) -> Vec<Value> {
    let response = common::post_json(addr, "/api/projects", "{}", "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let list: Value = serde_json::from_str(&response.body).expect("project list");
    list["projects"].as_array().cloned().unwrap_or_default()
}

/// Whether the card of `id` on `addr` carries the offline warning of agent `name`.
async fn offline(addr: SocketAddr, id: &str, name: &str) -> Option<bool> {
    let card = cards(addr)
        .await
        .into_iter()
        .find(|card| card["id"] == id)?;
    let marker = format!("agent offline: {name} last seen ");
    Some(card["warnings"].as_array().is_some_and(|w| {
        w.iter()
            .any(|w| w.as_str().is_some_and(|w| w.starts_with(&marker)))
    }))
}

/// Polls `addr` until the card of `id` is (or is not) marked offline.
async fn wait_offline(addr: SocketAddr, id: &str, wanted: bool) {
    let deadline = Instant::now() + WAIT;
    while offline(addr, id, "a1").await != Some(wanted) {
        assert!(
            Instant::now() < deadline,
            "{id} on {addr} never became {}",
            if wanted { "offline" } else { "online" }
        );
        tokio::time::sleep(POLL * 10).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agents_projects_show_offline_on_every_node_and_online_when_it_is_back() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let root = tempfile::tempdir().expect("tempdir");
    project(&root.path().join("projects"));
    let projects = root.path().join("projects");
    let heartbeat = ["--heartbeat-seconds", "1"];
    let mut first = agent(&url, &projects, &heartbeat);
    let (_node_a, addr_a) = node(&url, &root.path().join("a"));
    let (_node_b, addr_b) = node(&url, &root.path().join("b"));
    let id = project_id(&url).await;
    for addr in [addr_a, addr_b] {
        wait_offline(addr, &id, false).await;
    }
    first.kill();
    for addr in [addr_a, addr_b] {
        wait_offline(addr, &id, true).await;
    }
    let _again = agent(&url, &projects, &heartbeat);
    for addr in [addr_a, addr_b] {
        wait_offline(addr, &id, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_the_feeds_length_says_resync_instead_of_skipping() {
    // Small stream blocks, so trimming to a few events is nearly exact.
    let Some(redis) = RedisServer::start_with(&["--stream-node-max-entries", "2"]) else {
        return;
    };
    let url = redis.url();
    let root = tempfile::tempdir().expect("tempdir");
    let log = project(&root.path().join("projects"));
    let _agent = agent(
        &url,
        &root.path().join("projects"),
        &["--stream-length", "4", "--feed-length", "4"],
    );
    let (node, addr) = node(&url, &root.path().join("n"));
    let id = project_id(&url).await;
    let topic = format!("log:{id}");
    let mut socket = connect(addr).await;
    subscribe(&mut socket, &topic, None).await;
    let mut followed = Followed::default();
    append(&log, "line 0 of the burst\n");
    while followed.cursors.is_empty() {
        assert!(followed.take(next(&mut socket).await), "closed");
    }
    let held = followed.last();

    let pid = node.child.id() as libc::pid_t;
    // SAFETY: signals to a child this test started and still holds.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    // One event per line, each stored before the next is written: many more than are kept.
    for i in 1..40 {
        append(&log, &format!("line {i} of the burst\n"));
        wait_for_seq(&url, &topic, i + 1).await;
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    // What the node had read before it stopped may still arrive; then the gap is announced.
    while followed.resyncs.is_empty() {
        assert!(followed.take(next(&mut socket).await), "closed");
    }
    let (epoch, first) = followed.cursors[0];
    let expected: Vec<(u64, u64)> = (first..first + followed.cursors.len() as u64)
        .map(|seq| (epoch, seq))
        .collect();
    assert_eq!(
        followed.cursors, expected,
        "no event from across the gap before the resync"
    );
    assert!(followed.cursors.len() < 40, "the node did miss events");
    assert_eq!(followed.resyncs[0]["topic"], topic.as_str());

    // A client resuming from before the gap: the node cannot serve it, and says so.
    let mut late = connect(addr).await;
    late.send(Message::Text(
        json!({"action": "subscribe", "topics": [topic], "since": {topic.as_str(): held}})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    let mut resynced = Followed::default();
    while resynced.resyncs.is_empty() {
        assert!(resynced.take(next(&mut late).await), "closed");
        assert!(resynced.cursors.is_empty(), "events served across a gap");
    }
}
