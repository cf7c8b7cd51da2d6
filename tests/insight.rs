//! The notification history and budgets over real HTTP, sockets and files: notifications (the
//! loop's and the watchdog's alerts) outlive a restart of the server and are acknowledged once
//! for every tab; a budget used up raises its alerts and pauses the loop as loopwatch's own
//! audited action.
#![cfg(feature = "ssr")]

use std::{fs, net::SocketAddr, path::Path, time::Duration};

use serde_json::{json, Value};

use loopwatch::server::discovery::project_id;

mod common;
use common::{
    append, open_ws, post_json, start_server, token, write_project, ws_send, ws_wait_for, WsClient,
    WAIT,
};

fn failing_row(iteration: u32) -> String {
    format!(
        r#"{{"iteration":{iteration},"max":9,"status":"error","tasks_completed":["{iteration}.1"],"test_passed":false,"errors":[]}}"#
    ) + "\n"
}

fn spending_row(iteration: u32, tokens: u32) -> String {
    format!(
        r#"{{"iteration":{iteration},"max":9,"status":"success","tasks_completed":["{iteration}.1"],"test_passed":true,"errors":[],"tokens":{tokens}}}"#
    ) + "\n"
}

async fn call(addr: SocketAddr, session: &str, endpoint: &str, body: Value) -> (u16, Value) {
    let response = post_json(
        addr,
        &format!("/api/{endpoint}"),
        &body.to_string(),
        session,
    )
    .await;
    let value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

async fn subscribed(addr: SocketAddr, session: &str, id: &str) -> WsClient {
    let mut client = open_ws(addr, "/api/ws", session).await;
    ws_send(
        &mut client,
        &format!(r#"{{"type":"subscribe","topics":["project:{id}"]}}"#),
    )
    .await;
    ws_wait_for(&mut client, "subscribed", |f| f["type"] == "subscribed").await;
    client
}

/// The history's first page, polled until `wanted` holds (the history is written as events
/// pass, off the socket's path).
async fn history_until(
    addr: SocketAddr,
    session: &str,
    id: &str,
    what: &str,
    wanted: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let found = tokio::time::timeout(WAIT, async {
        loop {
            poll.tick().await;
            let (status, page) = call(
                addr,
                session,
                "notification_history",
                json!({"project": id, "before": null}),
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if wanted(&items) {
                return items;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} in the history within {WAIT:?}"))
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item["notification"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_alerts_outlive_a_restart_and_an_ack_reaches_every_tab() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("alpha");
    write_project(&dir, "- [ ] 1: a\n");
    fs::write(
        dir.join(".ralph/iterations.jsonl"),
        failing_row(1) + &failing_row(2),
    )
    .expect("rows");
    let id = project_id(&dir);

    let server = start_server(root.clone()).await;
    let session = token(&server);
    let mut client = subscribed(server.addr, &session, &id).await;
    append(&dir.join(".ralph/iterations.jsonl"), &failing_row(3));
    let alert = ws_wait_for(&mut client, "the alert", |f| {
        f["type"] == "notification" && f["data"]["kind"]["alert"] == "failing_tests"
    })
    .await;
    fs::write(
        dir.join(".ralph/pending-notification.txt"),
        "BLOCKED: need the staging key\n",
    )
    .expect("notification");
    let blocked = ws_wait_for(&mut client, "the notification", |f| {
        f["type"] == "notification" && f["data"]["kind"] == "blocked"
    })
    .await;
    let alert_id = alert["data"]["id"].as_str().expect("id").to_owned();
    let blocked_id = blocked["data"]["id"].as_str().expect("id").to_owned();
    let both = |items: &[Value]| {
        let ids = ids(items);
        ids.contains(&alert_id) && ids.contains(&blocked_id)
    };
    history_until(server.addr, &session, &id, "both", both).await;
    drop(client);
    server.stop().await;

    // A new server over the same data directory: the history is read back, the pending file
    // is not kept twice.
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let items = history_until(server.addr, &session, &id, "the old ones", both).await;
    let blocked_rows = ids(&items).iter().filter(|i| **i == blocked_id).count();
    assert_eq!(blocked_rows, 1, "{items:?}");
    let rows: Vec<i64> = items.iter().filter_map(|i| i["row"].as_i64()).collect();
    assert!(
        rows.windows(2).all(|w| w[0] > w[1]),
        "newest first: {rows:?}"
    );

    // Acknowledged in one tab, told to the other.
    let mut other_tab = subscribed(server.addr, &session, &id).await;
    let (status, ack) = call(
        server.addr,
        &session,
        "ack_notification",
        json!({"project": id, "id": alert_id}),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    let told = ws_wait_for(&mut other_tab, "the ack", |f| {
        f["type"] == "notification_acked"
    })
    .await;
    assert_eq!(told["data"]["id"], alert_id.as_str());
    assert_eq!(told["project"], id.as_str());
    let items = history_until(server.addr, &session, &id, "the ack", |items| {
        items
            .iter()
            .any(|i| i["notification"]["id"] == alert_id.as_str() && !i["ack"].is_null())
    })
    .await;
    assert!(!items.is_empty());
    let (status, _) = call(
        server.addr,
        &session,
        "ack_notification",
        json!({"project": id, "id": "no-such-notification"}),
    )
    .await;
    assert_eq!(status, 400);
    let (_, control) = call(
        server.addr,
        &session,
        "control_state",
        json!({"project": id}),
    )
    .await;
    let actions: Vec<&str> = control["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["ack", "ack"], "the refused one is audited too");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_budget_warns_then_pauses_the_loop_as_an_audited_action() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("bravo");
    write_project(&dir, "- [ ] 1: a\n");
    let rows = dir.join(".ralph/iterations.jsonl");
    fs::write(&rows, spending_row(1, 50)).expect("rows");
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let mut client = subscribed(server.addr, &session, &id).await;

    let budget = json!({"max_tokens": 100.0, "at_limit": "pause"});
    let (status, body) = call(
        server.addr,
        &session,
        "set_budget",
        json!({"project": id, "budget": budget}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    ws_wait_for(&mut client, "the budget event", |f| {
        f["type"] == "budget_changed" && f["data"]["max_tokens"] == 100.0
    })
    .await;
    let (status, _) = call(
        server.addr,
        &session,
        "set_budget",
        json!({"project": id, "budget": {"max_tokens": -1.0}}),
    )
    .await;
    assert_eq!(status, 400, "a negative limit is refused");

    append(&rows, &spending_row(2, 35));
    let warning = ws_wait_for(&mut client, "the 80 % warning", |f| {
        f["type"] == "notification" && f["data"]["kind"]["alert"] == "budget_warning"
    })
    .await;
    assert!(
        warning["data"]["details"]
            .as_str()
            .unwrap_or("")
            .contains("tokens 85%"),
        "{warning}"
    );
    assert!(!paused(&dir), "a warning does not pause");

    append(&rows, &spending_row(3, 20));
    ws_wait_for(&mut client, "the 100 % alert", |f| {
        f["type"] == "notification" && f["data"]["kind"]["alert"] == "budget_exceeded"
    })
    .await;
    let control = ws_wait_for(&mut client, "loopwatch's pause", |f| {
        f["type"] == "control" && f["data"]["entry"]["action"] == "pause"
    })
    .await;
    assert_eq!(control["data"]["entry"]["session"], "loopwatch");
    assert_eq!(control["data"]["entry"]["outcome"], "done");
    assert!(paused(&dir), "the pause file is there");
    let (_, state) = call(
        server.addr,
        &session,
        "control_state",
        json!({"project": id}),
    )
    .await;
    assert_eq!(state["paused"], true);
    let trail = state["audit"].as_array().expect("audit");
    assert!(
        trail
            .iter()
            .any(|e| e["action"] == "pause" && e["session"] == "loopwatch"),
        "{trail:?}"
    );
    assert!(trail.iter().any(|e| e["action"] == "set_budget"));
    let (_, budgets) = call(server.addr, &session, "budgets", json!({})).await;
    assert_eq!(budgets[id.as_str()]["max_tokens"], 100.0);
    server.stop().await;
}

fn paused(dir: &Path) -> bool {
    dir.join(".ralph/pause").exists()
}
