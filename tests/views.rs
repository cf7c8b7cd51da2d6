//! The seed-002 endpoints over real sockets: snapshot first, then deltas.
#![cfg(feature = "ssr")]

use std::fs;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{net::TcpStream, time::timeout};
use tokio_tungstenite::{connect_async, tungstenite::Message, MaybeTlsStream, WebSocketStream};

use loopwatch::server::discovery::project_id;

mod common;
use common::{append, start_server, token, write_project, WAIT};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(addr: std::net::SocketAddr, path: &str, session: &str) -> Client {
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!("ws://{addr}{path}{separator}token={session}");
    timeout(WAIT, connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect")
        .0
}

/// The next text frame as JSON, or the close code when the socket closes.
async fn next(client: &mut Client) -> Result<Value, Option<u16>> {
    loop {
        let message = timeout(WAIT, client.next()).await.expect("a frame in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Ok(serde_json::from_str(text.as_str()).expect("JSON frame"))
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            _ => return Err(None),
        }
    }
}

async fn next_json(client: &mut Client) -> Value {
    next(client).await.expect("a text frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_logs_and_messages_views() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("epsilon");
    write_project(&dir, "- [ ] 1: a\n");
    append(&dir.join(".ralph/ralph.log"), "one\ntwo\nthree\n");
    let id = project_id(&dir);
    let server = start_server(root).await;
    let session = token(&server);

    // Instances: snapshot, then a delta when the loop pauses.
    let mut instances = open(server.addr, "/ws/instances", &session).await;
    let snapshot = next_json(&mut instances).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["include_archived"], false);
    assert_eq!(snapshot["instances"][0]["name"], id.as_str());
    assert_eq!(snapshot["instances"][0]["status"], "running");
    fs::write(dir.join(".ralph/pause"), "").expect("pause");
    let delta = next_json(&mut instances).await;
    assert_eq!(delta["type"], "status_changed");
    assert_eq!(delta["name"], id.as_str());
    assert_eq!(delta["status"], "paused");
    instances
        .send(Message::Text(
            r#"{"type":"set_include_archived","value":true}"#.into(),
        ))
        .await
        .expect("send");
    let again = next_json(&mut instances).await;
    assert_eq!(again["type"], "snapshot");
    assert_eq!(again["include_archived"], true);

    // Logs: the backlog, new lines, rotation; an unknown instance is 4404.
    let mut logs = open(
        server.addr,
        &format!("/ws/instances/{id}/logs?backlog=2"),
        &session,
    )
    .await;
    let backlog = next_json(&mut logs).await;
    assert_eq!(backlog["type"], "backlog");
    assert_eq!(backlog["lines"], serde_json::json!(["two", "three"]));
    assert_eq!(backlog["count"], 2);
    append(&dir.join(".ralph/ralph.log"), "four\nfive\n");
    let lines = next_json(&mut logs).await;
    assert_eq!(lines["type"], "lines");
    assert_eq!(lines["lines"], serde_json::json!(["four", "five"]));
    fs::write(dir.join(".ralph/ralph.log"), "fresh\n").expect("truncate");
    let rotated = next_json(&mut logs).await;
    assert_eq!(rotated["type"], "rotated");

    let mut unknown = open(server.addr, "/ws/instances/nope/logs", &session).await;
    assert_eq!(next_json(&mut unknown).await["code"], 4404);
    assert_eq!(next(&mut unknown).await.err(), Some(Some(4404)));

    // Messages: notification transitions, metadata only.
    let mut messages = open(
        server.addr,
        &format!("/ws/messages?instance={id}"),
        &session,
    )
    .await;
    assert_eq!(next_json(&mut messages).await["type"], "snapshot");
    fs::write(
        dir.join(".ralph/pending-notification.txt"),
        "BLOCKED: secret-ish details of the failure\n",
    )
    .expect("notification");
    let event = next_json(&mut messages).await;
    assert_eq!(event["type"], "message_event");
    assert_eq!(event["from"], id.as_str());
    assert_eq!(event["message_type"], "BLOCKED");
    assert!(
        !event.to_string().contains("secret-ish"),
        "no payloads: {event}"
    );

    server.stop().await;
    assert_eq!(next(&mut messages).await.err(), Some(Some(1001)));
}
