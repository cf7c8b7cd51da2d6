//! A client that stops reading while events keep coming is dropped once its socket has accepted
//! nothing for the write-stall limit, instead of pinning its connection task (and its buffers)
//! for as long as it stays connected. Its own process, so the global metrics are this test's.

use std::{fs, sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use tokio::{net::TcpSocket, time::timeout};
use tokio_tungstenite::{client_async, tungstenite::Message};

use loopwatch::server::{auth::Auth, discovery::project_id, metrics::METRICS, Keepalive};
use loopwatch::site::{start, ServerConfig};

mod common;
use common::{append, token, write_project, WAIT};

const PLAN: &str = "## Phase 1\n- [ ] 1.1: first\n";

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_stall_limit() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("stall");
    write_project(&dir, PLAN);
    let log = dir.join(".ralph/ralph.log");
    fs::write(&log, "").expect("empty log");
    let id = project_id(&dir);
    let data_dir = root.join(".data");
    let loaded = Auth::load_or_create(&data_dir).expect("secrets");
    let server = start(ServerConfig {
        // Short, so the test does not wait 30 s; the rule is the same.
        keepalive: Keepalive {
            write_stall: Duration::from_millis(500),
            ..Keepalive::default()
        },
        hub_capacity: 1 << 16,
        ..common::server_config(vec![root], Some(Arc::new(loaded.auth)), Some(data_dir))
    })
    .await
    .expect("server starts");

    // A small receive buffer, so the kernel stops taking data for this client early.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(server.addr).await.expect("connect");
    let url = format!("ws://{}/api/ws?token={}", server.addr, token(&server));
    let (mut client, _) = client_async(url, stream).await.expect("upgrade");
    let subscribe = format!(r#"{{"action":"subscribe","topics":["log:{id}"],"backlog":0}}"#);
    client
        .send(Message::Text(subscribe.into()))
        .await
        .expect("subscribe");
    for expected in ["hello", "subscribed"] {
        let frame = timeout(WAIT, client.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("frame");
        assert!(
            frame.to_text().expect("text").contains(expected),
            "{frame:?}"
        );
    }

    // The client now reads nothing while the log grows by 64 KiB chunks.
    let chunk = format!("{}\n", "z".repeat(1023)).repeat(64);
    let dropped = timeout(Duration::from_secs(30), async {
        while METRICS
            .stalled_clients
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            append(&log, &chunk);
            // Pace the writer (this is not what the test waits for: the counter is).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(dropped.is_ok(), "the stalled client was never dropped");

    // Reading again: whatever the kernel buffered, then the end of the connection (no close
    // frame could be written to a socket that accepted nothing).
    let ended = timeout(WAIT, async {
        while let Some(Ok(_)) = client.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the connection stayed open");
    server.stop().await;
}
