//! Bounds on what one client can make the server hold or do, over real sockets and files:
//! control-frame floods end in a 1008 close frame (not a reset) after the replies owed; a
//! subscribe's backlog and frames are bounded; event streams are capped per address and end
//! with their session; shutdown finishes every socket's close handshake; huge plans and JSONL
//! files cost bounded memory and pages that say what they left out.
//!
//! Memory is measured as the growth of this test process's peak resident set (`VmHWM`, reset
//! through `/proc/self/clear_refs`), since the server runs in-process. The tests of this file
//! run one at a time (see [`SERIAL`]) so one test's memory is not counted in another's.
#![cfg(all(feature = "ssr", target_os = "linux"))]

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::Mutex,
    time::timeout,
};
use tokio_tungstenite::{
    client_async,
    tungstenite::{
        protocol::{frame::coding::CloseCode, CloseFrame},
        Message,
    },
    WebSocketStream,
};

use loopwatch::server::{
    discovery::project_id,
    stream::connection::MAX_REPLY_FRAME_BYTES,
    stream::limits::{MAX_CONNECTIONS_PER_ADDRESS, RATE_BURST},
    stream::live::{CODE_BACKLOG_LIMIT, MAX_SUBSCRIBE_BACKLOG_BYTES},
};

mod common;
use common::{get_signed_in, open_ws, start_server, token, write_project, WAIT};

/// One test at a time: memory is measured process-wide.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Growth of the peak resident set a test allows. Generous (the bounded server needs a few tens
/// of megabytes for these inputs); without the bounds the same inputs take 200 MB to 1.3 GB.
const MAX_GROWTH_KB: u64 = 100 * 1024;

fn status_kb(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status")
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Starts measuring: the resident set now, with the peak reset to it.
fn memory_mark() -> u64 {
    fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident set");
    status_kb("VmRSS:")
}

/// How far the peak resident set rose above `mark`.
fn memory_growth_kb(mark: u64) -> u64 {
    status_kb("VmHWM:").saturating_sub(mark)
}

fn project(root: &Path, name: &str) -> (PathBuf, String) {
    let dir = root.join(name);
    write_project(&dir, "- [ ] 1: a\n");
    (dir.clone(), project_id(&dir))
}

fn temp_root() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    (temp, root)
}

type Socket = WebSocketStream<TcpStream>;

/// A WebSocket from a chosen local address (the server caps sockets per address).
async fn open_from(local: IpAddr, addr: SocketAddr, path: &str, session: &str) -> Socket {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(local, 0)).expect("bind");
    let stream = timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let url = format!("ws://{addr}{path}?token={session}");
    timeout(WAIT, client_async(url, stream))
        .await
        .expect("handshake in time")
        .expect("handshake")
        .0
}

/// What a flooding client saw before its socket ended.
#[derive(Debug, Default)]
struct FloodOutcome {
    pongs: usize,
    error_code: Option<u64>,
    close_code: Option<u16>,
    /// The socket failed (a reset) instead of closing.
    failure: Option<String>,
}

/// Sends `frame` as fast as the socket takes it while reading what comes back, until the
/// server closes the socket (or it fails).
async fn flood(frame: Message) -> FloodOutcome {
    let (_temp, root) = temp_root();
    project(&root, "alpha");
    let server = start_server(root).await;
    let client = open_ws(server.addr, "/api/ws", &token(&server)).await;
    let (mut sink, mut stream) = client.split();
    let writer = tokio::spawn(async move {
        // Bounded, so an unlimited server cannot keep the test writing for ever.
        for _ in 0..200_000 {
            if sink.send(frame.clone()).await.is_err() {
                break;
            }
        }
    });
    let mut outcome = FloodOutcome::default();
    let read = timeout(WAIT, async {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    match value["type"].as_str() {
                        Some("pong") => outcome.pongs += 1,
                        Some("error") => outcome.error_code = value["code"].as_u64(),
                        _ => {}
                    }
                }
                Ok(Message::Close(frame)) => {
                    outcome.close_code = frame.map(|f| u16::from(f.code));
                    return;
                }
                Ok(_) => {}
                Err(error) => {
                    outcome.failure = Some(error.to_string());
                    return;
                }
            }
        }
        outcome.failure = Some("the socket ended without a close frame".into());
    })
    .await;
    writer.abort();
    assert!(read.is_ok(), "no close frame within {WAIT:?}: {outcome:?}");
    server.stop().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_ping_flood_gets_its_pongs_then_a_1008_close_frame() {
    let _serial = SERIAL.lock().await;
    let outcome = flood(Message::Text(r#"{"action":"ping"}"#.into())).await;
    assert_eq!(outcome.failure, None, "{outcome:?}");
    assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
    assert_eq!(outcome.error_code, Some(1008), "{outcome:?}");
    // The burst is allowed: every ping of it is answered before the close.
    assert!(outcome.pongs >= RATE_BURST as usize, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_ping_flood_is_closed_with_1008() {
    let _serial = SERIAL.lock().await;
    let outcome = flood(Message::Ping(vec![7u8; 8].into())).await;
    assert_eq!(outcome.failure, None, "{outcome:?}");
    assert_eq!(outcome.close_code, Some(1008), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_to_200_log_topics_streams_bounded_frames_and_backlog() {
    let _serial = SERIAL.lock().await;
    let (_temp, root) = temp_root();
    // 20 logs of 1,200 lines of 1 KiB (the most one backlog reads is 1 MiB), each named ten
    // times: 200 topics in a 5 KB frame.
    let line = format!("{}\n", "x".repeat(1023));
    let log = line.repeat(1200);
    let mut ids = Vec::new();
    for n in 0..20 {
        let (dir, id) = project(&root, &format!("p{n:02}"));
        fs::write(dir.join(".ralph/ralph.log"), &log).expect("log");
        ids.push(id);
    }
    let server = start_server(root).await;
    let mut client = open_ws(server.addr, "/api/ws", &token(&server)).await;
    let topics: Vec<String> = (0..10)
        .flat_map(|_| ids.iter().map(|id| format!("log:{id}")))
        .collect();
    assert_eq!(topics.len(), 200);
    let subscribe = serde_json::json!({"action": "subscribe", "topics": topics, "backlog": 1000});

    let mark = memory_mark();
    client
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .expect("send");
    // Replies come in order: the pong marks the end of the subscribe's.
    client
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .expect("send");
    let (mut largest, mut backlog_bytes, mut backlogs) = (0usize, 0usize, 0usize);
    let mut subscribed = std::collections::BTreeSet::new();
    let mut notice = None;
    loop {
        let message = timeout(WAIT, client.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        let Message::Text(text) = message else {
            continue;
        };
        largest = largest.max(text.len());
        let value: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
        match value["type"].as_str() {
            Some("subscribed") => subscribed.extend(
                value["topics"]
                    .as_array()
                    .expect("topics")
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned)),
            ),
            Some("log_backlog") => {
                backlogs += 1;
                backlog_bytes += value["data"]["lines"].as_str().expect("lines").len();
            }
            Some("error") => notice = Some(value),
            Some("pong") => break,
            _ => {}
        }
    }
    let growth = memory_growth_kb(mark);
    server.stop().await;

    assert_eq!(subscribed.len(), 20, "every log is subscribed, once");
    assert!(
        largest <= MAX_REPLY_FRAME_BYTES,
        "a frame of {largest} bytes (bound {MAX_REPLY_FRAME_BYTES})"
    );
    assert!(backlogs <= 20, "{backlogs} backlogs for 20 logs");
    assert!(
        backlog_bytes <= MAX_SUBSCRIBE_BACKLOG_BYTES,
        "{backlog_bytes} backlog bytes (bound {MAX_SUBSCRIBE_BACKLOG_BYTES})"
    );
    assert!(backlog_bytes > 0, "the backlog is cut, not dropped");
    let notice = notice.expect("the client is told its backlog was cut");
    assert_eq!(notice["code"], u64::from(CODE_BACKLOG_LIMIT), "{notice}");
    assert!(
        growth < MAX_GROWTH_KB,
        "the server's memory grew by {growth} kB"
    );
}

/// Opens an event stream and reads its response head; the stream stays open.
async fn open_events(addr: SocketAddr, session: &str, path: &str) -> (u16, TcpStream, String) {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Cookie: {}={session}\r\n\r\n",
        common::cookie_name(addr)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    timeout(WAIT, async {
        while !text.contains("\r\n\r\n") {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "the response ended early: {text}");
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    })
    .await
    .expect("a response head in time");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, stream, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_address() {
    let _serial = SERIAL.lock().await;
    let (_temp, root) = temp_root();
    project(&root, "alpha");
    let server = start_server(root).await;
    let session = token(&server);
    let mut open = Vec::new();
    for n in 0..MAX_CONNECTIONS_PER_ADDRESS {
        let (status, stream, head) =
            open_events(server.addr, &session, "/api/events?topics=projects").await;
        assert_eq!(status, 200, "stream {n}: {head}");
        open.push(stream);
    }
    let (status, _refused, head) =
        open_events(server.addr, &session, "/api/events?topics=projects").await;
    assert_eq!(status, 429, "one stream more than the cap: {head}");
    // Closing one frees its place.
    drop(open.pop());
    let reopened = timeout(WAIT, async {
        loop {
            let (status, stream, _) =
                open_events(server.addr, &session, "/api/events?topics=projects").await;
            if status == 200 {
                return stream;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "a closed stream's place is freed");
    drop(open);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_session_expires() {
    let _serial = SERIAL.lock().await;
    let (_temp, root) = temp_root();
    project(&root, "alpha");
    let server = start_server(root).await;
    let short = server
        .auth
        .as_ref()
        .expect("auth on")
        .issue(Duration::from_secs(2));
    let (status, mut stream, head) =
        open_events(server.addr, &short, "/api/events?topics=projects").await;
    assert_eq!(status, 200, "{head}");
    let mut text = head;
    let mut buffer = [0u8; 4096];
    // Keep-alive comments come every 20 s; the session ends within 2 s: the stream must end
    // long before WAIT.
    let ended = timeout(WAIT, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => {
                    text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                    // The end of a chunked body.
                    if text.ends_with("\r\n0\r\n\r\n") {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session: {text}");
    assert!(text.contains("4401"), "the last event says why: {text}");
    server.stop().await;
}

#[test]
fn shutdown_finishes_the_close_handshake_of_200_sockets_before_it_returns() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    runtime.block_on(async {
        let _serial = SERIAL.lock().await;
        let (_temp, root) = temp_root();
        project(&root, "alpha");
        let closed = Arc::new(AtomicUsize::new(0));
        // The server gets its own runtime, dropped as soon as `stop` returns: what a process
        // exit does to socket tasks that have not finished.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server_thread = std::thread::spawn({
            let closed = closed.clone();
            move || {
                let server_runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                let when_stopped = server_runtime.block_on(async move {
                    let server = start_server(root).await;
                    let _ = ready_tx.send((server.addr, token(&server)));
                    let _ = stop_rx.await;
                    server.stop().await;
                    closed.load(Ordering::SeqCst)
                });
                drop(server_runtime);
                when_stopped
            }
        });
        let (addr, session) = ready_rx.await.expect("server started");

        // 200 sockets from four addresses (each address may hold 64).
        let mut readers = Vec::new();
        for n in 0..200u8 {
            let local = IpAddr::from([127, 0, 0, 2 + n % 4]);
            let path = if n % 2 == 0 {
                "/api/ws"
            } else {
                "/ws/instances"
            };
            let mut socket = open_from(local, addr, path, &session).await;
            // The first frame (hello or snapshot) proves the socket is served.
            let first = timeout(WAIT, socket.next()).await.expect("first frame");
            assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
            let closed = closed.clone();
            readers.push(tokio::spawn(async move {
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map(|f| u16::from(f.code));
                            if code == Some(1001) {
                                closed.fetch_add(1, Ordering::SeqCst);
                            }
                            // Reading on sends the close reply (the handshake's second half).
                            let _ = timeout(WAIT, socket.next()).await;
                            return code;
                        }
                        Some(Ok(_)) => continue,
                        _ => return None,
                    }
                }
            }));
        }
        stop_tx.send(()).expect("stop");
        // A socket's handshake ends with the client's reply, sent after it counted the 1001:
        // when `stop` returns, every client has counted it.
        let when_stopped = tokio::task::spawn_blocking(move || server_thread.join())
            .await
            .expect("join")
            .expect("the server thread did not panic");
        let mut codes = Vec::new();
        for reader in readers {
            let code = timeout(WAIT, reader)
                .await
                .expect("the socket ended")
                .expect("reader");
            codes.push(code);
        }
        let missing = codes.iter().filter(|code| **code != Some(1001)).count();
        assert_eq!(missing, 0, "sockets without a 1001 close frame: {codes:?}");
        assert_eq!(
            when_stopped, 200,
            "close handshakes finished when the server's stop returned"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_with_a_close_frame() {
    let _serial = SERIAL.lock().await;
    let (_temp, root) = temp_root();
    let (_dir, id) = project(&root, "alpha");
    let server = start_server(root).await;
    let session = token(&server);
    for path in [
        "/api/ws".to_owned(),
        "/ws/instances".to_owned(),
        "/ws/messages".to_owned(),
        format!("/ws/instances/{id}/logs"),
    ] {
        let mut client = open_ws(server.addr, &path, &session).await;
        let first = timeout(WAIT, client.next()).await.expect("first frame");
        assert!(
            matches!(first, Some(Ok(Message::Text(_)))),
            "{path}: {first:?}"
        );
        client
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await
            .expect("send close");
        let reply = timeout(WAIT, async {
            loop {
                match client.next().await {
                    Some(Ok(Message::Close(frame))) => return Ok(frame),
                    Some(Ok(_)) => continue,
                    other => return Err(format!("{other:?}")),
                }
            }
        })
        .await
        .expect("a reply in time");
        let frame = reply.unwrap_or_else(|ended| panic!("{path}: no close frame back: {ended}"));
        assert_eq!(
            frame.map(|f| u16::from(f.code)),
            Some(1000),
            "{path}: the close code is echoed"
        );
    }
    server.stop().await;
}

/// A plan of 269,088 short tasks (3.5 MB), the size that made a 70.8 MB page.
const HUGE_PLAN_TASKS: usize = 269_088;

fn huge_plan() -> String {
    let mut plan = String::from("## Phase 1\n");
    for n in 0..HUGE_PLAN_TASKS {
        plan.push_str(if n % 3 == 0 { "- [x] " } else { "- [ ] " });
        plan.push_str(&format!("{n:06}\n"));
    }
    plan
}

/// The largest plan page allowed: 2,000 tasks of at most 500 characters each, with markup.
const MAX_PLAN_PAGE_BYTES: usize = 4 * 1024 * 1024;

fn assert_bounded_plan_page(status: u16, body: &str) {
    assert_eq!(status, 200);
    // Resource data is streamed after the document: a render that failed midway has no end.
    assert!(body.contains("</html>"), "a complete page");
    assert!(
        body.len() < MAX_PLAN_PAGE_BYTES,
        "a plan page of {} bytes",
        body.len()
    );
    assert!(
        body.contains(&format!(
            "Showing the first 2000 of {HUGE_PLAN_TASKS} tasks"
        )),
        "the page says how many tasks it left out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_mb_plan_makes_a_bounded_page_that_says_what_it_left_out() {
    let _serial = SERIAL.lock().await;
    let (_temp, root) = temp_root();
    let (dir, id) = project(&root, "alpha");
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), huge_plan()).expect("plan");
    let mark = memory_mark();
    let server = start_server(root).await;
    let page = get_signed_in(
        server.addr,
        &format!("/projects/{id}/plan"),
        &token(&server),
    )
    .await;
    let growth = memory_growth_kb(mark);
    server.stop().await;
    assert_bounded_plan_page(page.status, &page.body);
    assert!(
        growth < MAX_GROWTH_KB,
        "the server's memory grew by {growth} kB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_concurrent_heavy_plan_pages_all_complete() {
    let _serial = SERIAL.lock().await;
    let (_temp, root) = temp_root();
    let (dir, id) = project(&root, "alpha");
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), huge_plan()).expect("plan");
    let server = start_server(root).await;
    let session = token(&server);
    let path = format!("/projects/{id}/plan");
    // The render panic this guards against (a signal read after the page's owner was gone)
    // needs requests that overlap: several rounds make it show up reliably.
    let mut pages = Vec::new();
    for _ in 0..4 {
        pages.extend(
            futures::future::join_all((0..6).map(|_| get_signed_in(server.addr, &path, &session)))
                .await,
        );
    }
    server.stop().await;
    for page in pages {
        assert_bounded_plan_page(page.status, &page.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mb_of_tiny_jsonl_rows_cost_bounded_memory_and_say_so() {
    let _serial = SERIAL.lock().await;
    let (_temp, root) = temp_root();
    let (dir, id) = project(&root, "alpha");
    let rows = "{\"iteration\":1}\n".repeat(20 * 1024 * 1024 / 16);
    fs::write(dir.join(".ralph/iterations.jsonl"), &rows).expect("rows");
    drop(rows);
    let mark = memory_mark();
    let server = start_server(root).await;
    let page = get_signed_in(
        server.addr,
        &format!("/projects/{id}/iterations"),
        &token(&server),
    )
    .await;
    let growth = memory_growth_kb(mark);
    server.stop().await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("rows of iterations.jsonl are not kept"),
        "the iterations tab says rows were left out"
    );
    assert!(
        growth < MAX_GROWTH_KB,
        "the server's memory grew by {growth} kB"
    );
}
