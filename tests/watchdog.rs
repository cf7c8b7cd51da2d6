//! Stuck and struggling loops over a real socket: a third failing iteration in a row, written
//! to disk, reaches a subscribed client as an `alert` notification with its evidence.
#![cfg(feature = "ssr")]

use std::fs;

use loopwatch::server::discovery::project_id;

mod common;
use common::{append, open_ws, start_server, token, write_project, ws_send, ws_wait_for};

fn row(iteration: u32) -> String {
    format!(
        r#"{{"iteration":{iteration},"max":9,"status":"error","tasks_completed":["{iteration}.1"],"test_passed":false,"errors":[]}}"#
    ) + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_failing_iteration_raises_an_alert() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("alpha");
    write_project(&dir, "- [ ] 1: a\n");
    fs::write(dir.join(".ralph/iterations.jsonl"), row(1) + &row(2)).expect("rows");
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let mut client = open_ws(server.addr, "/api/ws", &session).await;
    ws_send(
        &mut client,
        &format!(r#"{{"type":"subscribe","topics":["project:{id}"]}}"#),
    )
    .await;
    ws_wait_for(&mut client, "subscribed", |frame| {
        frame["type"] == "subscribed"
    })
    .await;

    append(&dir.join(".ralph/iterations.jsonl"), &row(3));
    let alert = ws_wait_for(&mut client, "the alert", |frame| {
        frame["type"] == "notification" && frame["data"]["kind"]["alert"] == "failing_tests"
    })
    .await;
    assert_eq!(alert["project"], id.as_str());
    assert_eq!(alert["data"]["iteration"], 3);
    let evidence = alert["data"]["details"].as_str().expect("evidence");
    assert!(evidence.contains("iterations 1–3"), "{evidence}");
    server.stop().await;
}
