//! Chaos: a writer appends to a log in ragged chunks (lines split mid-way, multi-byte characters
//! split across writes) while clients keep dropping their sockets and resuming from their
//! cursors. At the end every client's reconstruction equals the file: nothing lost, duplicated
//! or reordered.
#![cfg(feature = "ssr")]

use std::{fs, io::Write, time::Duration};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::{connect_async, tungstenite::Message};

use loopwatch::server::discovery::project_id;

mod common;
use common::{start_server, token, write_project};

/// A small deterministic generator: the same chaos on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound.max(1)
    }
}

const LINES: usize = 3000;
const CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_clients_reconstruct_the_log_exactly() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("chaos");
    write_project(&dir, "- [ ] 1: a\n");
    let log = dir.join(".ralph/ralph.log");
    fs::write(&log, "").expect("empty log");
    let id = project_id(&dir);
    let server = start_server(root).await;
    let url = format!("ws://{}/api/ws?token={}", server.addr, token(&server));
    let topic = format!("log:{id}");

    // The whole text the writer will produce, with multi-byte characters on every line.
    let mut rng = Lcg(42);
    let mut text = String::new();
    for n in 0..LINES {
        let pad = "\u{e9}\u{1f600}x".repeat(rng.next(12) as usize);
        text.push_str(&format!("line {n} {pad}\n"));
    }
    let bytes = text.clone().into_bytes();

    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (url, topic) = (url.clone(), topic.clone());
            let ready = ready_tx.clone();
            let expected = bytes.len();
            tokio::spawn(async move {
                let mut rng = Lcg(1000 + k as u64);
                let mut content = String::new();
                let mut cursor: Option<(u64, u64)> = None;
                let mut reconnects = 0u32;
                while content.len() < expected {
                    let (mut socket, _) = connect_async(url.as_str()).await.expect("connect");
                    let subscribe = match cursor {
                        Some((epoch, seq)) => format!(
                            r#"{{"action":"subscribe","topics":["{topic}"],"since":{{"{topic}":{{"epoch":{epoch},"seq":{seq}}}}}}}"#
                        ),
                        None => format!(r#"{{"action":"subscribe","topics":["{topic}"],"backlog":0}}"#),
                    };
                    socket.send(Message::Text(subscribe.into())).await.expect("subscribe");
                    // Read a random number of frames, then drop the socket without a goodbye.
                    let mut budget = 1 + rng.next(30);
                    while budget > 0 && content.len() < expected {
                        let Some(Ok(Message::Text(frame))) = socket.next().await else {
                            continue;
                        };
                        let frame: Value = serde_json::from_str(frame.as_str()).expect("JSON");
                        match frame["type"].as_str() {
                            Some("subscribed") if cursor.is_none() => {
                                let c = &frame["cursors"][&topic];
                                cursor = Some((c["epoch"].as_u64().unwrap_or(0), c["seq"].as_u64().unwrap_or(0)));
                                ready.send(()).await.expect("writer waits");
                            }
                            Some("log_append") => {
                                let (epoch, seq) = (frame["epoch"].as_u64().unwrap_or(0), frame["seq"].as_u64().unwrap_or(0));
                                if let Some((_, last)) = cursor {
                                    assert_eq!(seq, last + 1, "client {k}: events in order, none skipped");
                                }
                                content.push_str(frame["data"]["lines"].as_str().unwrap_or_default());
                                cursor = Some((epoch, seq));
                                budget -= 1;
                            }
                            Some("resync") => panic!("client {k}: resync after a short disconnect"),
                            _ => {}
                        }
                    }
                    reconnects += 1;
                }
                (content, reconnects)
            })
        })
        .collect();

    // Every client is subscribed before the first byte is written.
    for _ in 0..CLIENTS {
        timeout(Duration::from_secs(10), ready_rx.recv())
            .await
            .expect("clients subscribe in time");
    }
    // An observer paces the writer: after a chunk that completes a line, wait until the server
    // has published it, so the stream has many events for the clients to lose and resume.
    let (mut observer, _) = connect_async(url.as_str()).await.expect("observer");
    let subscribe = format!(r#"{{"action":"subscribe","topics":["{topic}"],"backlog":0}}"#);
    observer
        .send(Message::Text(subscribe.into()))
        .await
        .expect("subscribe");
    // The writer may start only once the observer is subscribed, or the first event could be
    // published before the subscription and never reach it.
    subscribed(&mut observer).await;
    let mut observed = 0;
    let mut pace = Lcg(7);
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open log");
    let mut written = 0;
    while written < bytes.len() {
        let chunk = (1 + pace.next(400) as usize).min(bytes.len() - written);
        file.write_all(&bytes[written..written + chunk])
            .expect("append");
        written += chunk;
        let complete = bytes[..written]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        while observed < complete {
            let frame = timeout(Duration::from_secs(10), observer.next())
                .await
                .expect("the server publishes in time");
            if let Some(Ok(Message::Text(frame))) = frame {
                let frame: Value = serde_json::from_str(frame.as_str()).expect("JSON");
                if frame["type"] == "log_append" {
                    observed += frame["data"]["lines"].as_str().map_or(0, str::len);
                }
            }
        }
    }

    for (k, client) in clients.into_iter().enumerate() {
        let (content, reconnects) = timeout(Duration::from_secs(60), client)
            .await
            .expect("client done in time")
            .expect("client did not panic");
        assert!(
            content == text,
            "client {k}: reconstruction differs from the file"
        );
        assert!(
            reconnects > 5,
            "client {k} reconnected only {reconnects} times"
        );
    }
    assert_eq!(fs::read_to_string(&log).expect("read log"), text);
    server.stop().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Waits for the `subscribed` acknowledgement.
async fn subscribed(socket: &mut Socket) {
    loop {
        let frame = timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("subscribed in time");
        if let Some(Ok(Message::Text(frame))) = frame {
            let frame: Value = serde_json::from_str(frame.as_str()).expect("JSON");
            if frame["type"] == "subscribed" {
                return;
            }
        }
    }
}

/// Waits for the next `log_append` or `log_rotated`: the server has published a write.
async fn next_log_event(observer: &mut Socket, after: &str) {
    loop {
        let frame = timeout(Duration::from_secs(10), observer.next())
            .await
            .unwrap_or_else(|_| panic!("nothing published after {after}"));
        if let Some(Ok(Message::Text(frame))) = frame {
            let frame: Value = serde_json::from_str(frame.as_str()).expect("JSON");
            if matches!(frame["type"].as_str(), Some("log_append" | "log_rotated")) {
                return;
            }
        }
    }
}

/// A client's view of the log: rebuilt from events, and reloaded through the server function
/// whenever the stream says its copy is void (`log_rotated`, `resync`).
struct Reader {
    content: String,
    cursor: Option<(u64, u64)>,
    reloads: u32,
}

impl Reader {
    async fn reload(&mut self, addr: std::net::SocketAddr, id: &str, session: &str) {
        let response = common::post_json(
            addr,
            "/api/log",
            &format!(r#"{{"project":"{id}"}}"#),
            session,
        )
        .await;
        let log: Value = serde_json::from_str(&response.body).expect("log JSON");
        self.content = log["text"].as_str().unwrap_or_default().to_owned();
        let cursor = &log["cursor"];
        self.cursor = Some((
            cursor["epoch"].as_u64().unwrap_or(0),
            cursor["seq"].as_u64().unwrap_or(0),
        ));
        self.reloads += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_truncation_and_reconnects_still_end_in_the_files_content() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("omega");
    write_project(&dir, "- [ ] 1: a\n");
    let log = dir.join(".ralph/ralph.log");
    fs::write(&log, "").expect("empty log");
    let id = project_id(&dir);
    let server = start_server(root).await;
    let addr = server.addr;
    let session = token(&server);
    let url = format!("ws://{addr}/api/ws?token={session}");
    let topic = format!("log:{id}");
    let (final_tx, final_rx) = tokio::sync::watch::channel(None::<String>);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (url, topic, id, session) = (url.clone(), topic.clone(), id.clone(), session.clone());
            let (ready, mut final_text) = (ready_tx.clone(), final_rx.clone());
            tokio::spawn(async move {
                let mut rng = Lcg(5000 + k as u64);
                let mut reader = Reader { content: String::new(), cursor: None, reloads: 0 };
                reader.reload(addr, &id, &session).await;
                ready.send(()).await.expect("writer waits");
                loop {
                    if final_text.borrow().as_deref() == Some(reader.content.as_str()) {
                        return reader.reloads;
                    }
                    let (mut socket, _) = connect_async(url.as_str()).await.expect("connect");
                    let (epoch, seq) = reader.cursor.unwrap_or((0, 0));
                    let subscribe = format!(
                        r#"{{"action":"subscribe","topics":["{topic}"],"since":{{"{topic}":{{"epoch":{epoch},"seq":{seq}}}}}}}"#
                    );
                    socket.send(Message::Text(subscribe.into())).await.expect("subscribe");
                    let mut budget = 1 + rng.next(20);
                    while budget > 0 {
                        let next = tokio::select! {
                            frame = socket.next() => frame,
                            _ = final_text.changed() => break,
                        };
                        let Some(Ok(Message::Text(frame))) = next else { break };
                        let frame: Value = serde_json::from_str(frame.as_str()).expect("JSON");
                        let at = (frame["epoch"].as_u64().unwrap_or(0), frame["seq"].as_u64().unwrap_or(0));
                        let known = reader.cursor.unwrap_or((0, 0));
                        match frame["type"].as_str() {
                            Some("log_append") if at > known => {
                                assert_eq!(at, (known.0, known.1 + 1), "client {k}: no gap within an epoch");
                                reader.content.push_str(frame["data"]["lines"].as_str().unwrap_or_default());
                                reader.cursor = Some(at);
                            }
                            Some("log_rotated") if at > known => reader.reload(addr, &id, &session).await,
                            Some("resync") => reader.reload(addr, &id, &session).await,
                            _ => {}
                        }
                        budget -= 1;
                        if final_text.borrow().as_deref() == Some(reader.content.as_str()) {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for _ in 0..CLIENTS {
        timeout(Duration::from_secs(10), ready_rx.recv())
            .await
            .expect("clients ready");
    }

    // The writer: ragged appends, and now and then a truncation or a rotation. An observer
    // paces it so the stream has many events (see the first test).
    let (mut observer, _) = connect_async(url.as_str()).await.expect("observer");
    let subscribe = format!(r#"{{"action":"subscribe","topics":["{topic}"],"backlog":0}}"#);
    observer
        .send(Message::Text(subscribe.into()))
        .await
        .expect("subscribe");
    // The writer may start only once the observer is subscribed, or the first event could be
    // published before the subscription and never reach it.
    subscribed(&mut observer).await;
    let mut rng = Lcg(99);
    let mut pending = String::new();
    for n in 0..1500 {
        match rng.next(60) {
            0 => {
                fs::write(&log, format!("truncated at {n}\n")).expect("truncate");
                pending.clear();
                next_log_event(&mut observer, &format!("truncation {n}")).await;
            }
            1 => {
                let fresh = dir.join(".ralph/ralph.log.new");
                fs::write(&fresh, format!("rotated at {n} \u{1f600}\n")).expect("write");
                fs::rename(&fresh, &log).expect("rotate");
                pending.clear();
                next_log_event(&mut observer, &format!("rotation {n}")).await;
            }
            _ => {
                pending.push_str(&format!(
                    "line {n} \u{e9}{}\n",
                    "z".repeat(rng.next(40) as usize)
                ));
                let cut = (1 + rng.next(pending.len() as u64) as usize).min(pending.len());
                let cut = (cut..=pending.len())
                    .find(|&i| pending.is_char_boundary(i))
                    .unwrap_or(pending.len());
                let mut file = fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("open");
                file.write_all(&pending.as_bytes()[..cut]).expect("append");
                let completes_a_line = pending.as_bytes()[..cut].contains(&b'\n');
                pending.drain(..cut);
                if completes_a_line {
                    next_log_event(&mut observer, &format!("append {n}")).await;
                }
            }
        }
    }
    // Finish the last partial line so the whole file is published.
    if !pending.is_empty() {
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        file.write_all(pending.as_bytes()).expect("append");
        next_log_event(&mut observer, "the last append").await;
    }
    let expected = fs::read_to_string(&log).expect("read log");
    final_tx.send(Some(expected)).expect("clients listening");

    for (k, client) in clients.into_iter().enumerate() {
        let reloads = timeout(Duration::from_secs(60), client)
            .await
            .unwrap_or_else(|_| panic!("client {k} never matched the file"))
            .expect("client did not panic");
        assert!(
            reloads > 1,
            "client {k} saw the rotations ({reloads} reloads)"
        );
    }
    server.stop().await;
}
