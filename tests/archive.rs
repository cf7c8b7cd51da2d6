//! Archiving over real sockets: an operator action through the `set_archived` server function
//! (HTTP POST /api/archive), heard by every socket, kept in the data directory across restarts,
//! and hidden from connections that did not ask for archived projects.
#![cfg(feature = "ssr")]

use std::fs;

use serde_json::Value;

use loopwatch::server::discovery::project_id;

mod common;
use common::{
    open_ws, post_json, start_server, token, write_project, ws_next, ws_send, ws_wait_for,
    Response, WsClient,
};

const PLAN: &str = "- [ ] 1: a\n";

fn json(response: &Response) -> Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("JSON body ({e}): {} {}", response.headers, response.body))
}

async fn archive(addr: std::net::SocketAddr, session: &str, id: &str, archived: bool) -> Response {
    post_json(
        addr,
        "/api/archive",
        &format!(r#"{{"project":"{id}","archived":{archived}}}"#),
        session,
    )
    .await
}

/// A `/api/ws` connection subscribed to `topics`.
async fn subscribed(addr: std::net::SocketAddr, session: &str, topics: &[String]) -> WsClient {
    let mut client = open_ws(addr, "/api/ws", session).await;
    assert_eq!(ws_next(&mut client).await.expect("hello")["type"], "hello");
    let topics = serde_json::to_string(topics).expect("topics");
    ws_send(
        &mut client,
        &format!(r#"{{"action":"subscribe","topics":{topics}}}"#),
    )
    .await;
    ws_wait_for(&mut client, "subscribed", |f| f["type"] == "subscribed").await;
    client
}

fn card<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["projects"]
        .as_array()
        .and_then(|cards| cards.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no card {id} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_is_heard_by_every_socket_and_kept_across_restarts() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("alpha");
    write_project(&dir, PLAN);
    let id = project_id(&dir);
    let before: Vec<_> = walk(&dir);
    let server = start_server(root.clone()).await;
    let session = token(&server);

    let mut dashboard = subscribed(
        server.addr,
        &session,
        &["projects".into(), format!("project:{id}")],
    )
    .await;
    let mut instances = open_ws(server.addr, "/ws/instances", &session).await;
    let snapshot = ws_next(&mut instances).await.expect("snapshot");
    assert_eq!(snapshot["instances"][0]["archived_at"], Value::Null);

    let response = archive(server.addr, &session, &id, true).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let summary = json(&response);
    assert_eq!(summary["id"], id.as_str());
    let archived_at = summary["archived_at"].as_str().expect("archived_at set");
    assert!(archived_at.contains('T'), "RFC 3339: {archived_at}");

    // One event on each topic, both carrying the new card.
    for topic in ["projects".to_owned(), format!("project:{id}")] {
        let event = ws_wait_for(&mut dashboard, "project_archived", |f| {
            f["type"] == "project_archived" && f["topic"] == topic.as_str()
        })
        .await;
        assert_eq!(event["project"], id.as_str());
        assert_eq!(event["data"]["archived"], true);
        assert_eq!(event["data"]["archived_at"], archived_at);
        assert_eq!(event["data"]["id"], id.as_str());
        assert!(
            event["seq"].as_u64().is_some(),
            "the usual envelope: {event}"
        );
    }
    let delta = ws_wait_for(&mut instances, "instance_archived", |f| {
        f["type"] == "instance_archived"
    })
    .await;
    assert_eq!(delta["name"], id.as_str());
    assert_eq!(delta["archived_at"], archived_at);

    // Archiving again changes nothing (the first time is kept).
    let again = json(&archive(server.addr, &session, &id, true).await);
    assert_eq!(again["archived_at"], archived_at);

    // `list_projects` still returns the project, flagged.
    let list = json(&post_json(server.addr, "/api/projects", "{}", &session).await);
    assert_eq!(card(&list, &id)["archived_at"], archived_at);

    // The choice lives in the server's data directory (private), never in the project.
    let stored = root.join(".data/archived.json");
    let text = fs::read_to_string(&stored).expect("archived.json written");
    assert!(text.contains(dir.to_str().expect("utf-8 path")), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&stored).expect("meta").permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "archived.json readable by others: {mode:o}"
        );
    }
    assert_eq!(walk(&dir), before, "nothing written into the project");

    server.stop().await;
    assert_eq!(ws_next(&mut dashboard).await.err(), Some(Some(1001)));

    // A new server over the same data directory remembers.
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let list = json(&post_json(server.addr, "/api/projects", "{}", &session).await);
    assert_eq!(card(&list, &id)["archived_at"], archived_at);
    let mut instances = open_ws(server.addr, "/ws/instances", &session).await;
    let snapshot = ws_next(&mut instances).await.expect("snapshot");
    assert_eq!(
        snapshot["instances"],
        serde_json::json!([]),
        "archived instances are hidden by default"
    );
    ws_send(
        &mut instances,
        r#"{"type":"set_include_archived","value":true}"#,
    )
    .await;
    let snapshot = ws_next(&mut instances).await.expect("snapshot");
    assert_eq!(snapshot["include_archived"], true);
    assert_eq!(snapshot["instances"][0]["name"], id.as_str());
    assert_eq!(snapshot["instances"][0]["archived_at"], archived_at);

    // Bringing it back is the same action the other way.
    let mut dashboard = subscribed(server.addr, &session, &["projects".into()]).await;
    let restored = json(&archive(server.addr, &session, &id, false).await);
    assert_eq!(restored["archived_at"], Value::Null);
    let event = ws_wait_for(&mut dashboard, "project_archived", |f| {
        f["type"] == "project_archived"
    })
    .await;
    assert_eq!(event["data"]["archived"], false);
    assert_eq!(event["data"]["archived_at"], Value::Null);
    let delta = ws_wait_for(&mut instances, "instance_unarchived", |f| {
        f["type"] == "instance_unarchived"
    })
    .await;
    assert_eq!(delta["name"], id.as_str());
    server.stop().await;

    let server = start_server(root).await;
    let list = json(&post_json(server.addr, "/api/projects", "{}", &token(&server)).await);
    assert_eq!(card(&list, &id)["archived_at"], Value::Null);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_hide_archived_projects_unless_asked() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let alpha = root.join("alpha");
    let beta = root.join("beta");
    write_project(&alpha, PLAN);
    write_project(&beta, PLAN);
    let (alpha_id, beta_id) = (project_id(&alpha), project_id(&beta));
    let server = start_server(root.clone()).await;
    let session = token(&server);

    // /api/ws: one connection with the default (hide), one that asks for everything.
    let mut hiding = subscribed(server.addr, &session, &["projects".into()]).await;
    let mut showing = subscribed(server.addr, &session, &["projects".into()]).await;
    ws_send(
        &mut showing,
        r#"{"action":"set_include_archived","value":true}"#,
    )
    .await;
    let ack = ws_wait_for(&mut showing, "include_archived ack", |f| {
        f["type"] == "include_archived"
    })
    .await;
    assert_eq!(ack["value"], true);
    // /ws/instances likewise.
    let mut instances = open_ws(server.addr, "/ws/instances", &session).await;
    assert_eq!(
        ws_next(&mut instances).await.expect("snapshot")["type"],
        "snapshot"
    );
    let mut all_instances = open_ws(server.addr, "/ws/instances", &session).await;
    ws_next(&mut all_instances).await.expect("snapshot");
    ws_send(
        &mut all_instances,
        r#"{"type":"set_include_archived","value":true}"#,
    )
    .await;
    assert_eq!(
        ws_next(&mut all_instances).await.expect("snapshot")["include_archived"],
        true
    );

    let response = archive(server.addr, &session, &alpha_id, true).await;
    assert_eq!(response.status, 200, "{}", response.body);
    // The transition itself reaches everyone.
    for client in [&mut hiding, &mut showing] {
        let event = ws_wait_for(client, "project_archived", |f| {
            f["type"] == "project_archived"
        })
        .await;
        assert_eq!(event["project"], alpha_id.as_str());
    }
    for client in [&mut instances, &mut all_instances] {
        ws_wait_for(client, "instance_archived", |f| {
            f["type"] == "instance_archived"
        })
        .await;
    }

    // The archived project leaves and comes back (it stays archived: the choice is the
    // operator's, kept by path). Only the connection that asked hears of it.
    fs::remove_dir_all(&alpha).expect("remove alpha");
    let removed = ws_wait_for(&mut showing, "project_removed", |f| {
        f["type"] == "project_removed"
    })
    .await;
    assert_eq!(removed["project"], alpha_id.as_str());
    write_project(&alpha, PLAN);
    let added = ws_wait_for(&mut showing, "project_added", |f| {
        f["type"] == "project_added"
    })
    .await;
    assert_eq!(added["project"], alpha_id.as_str());
    assert!(added["data"]["archived_at"].is_string(), "{added}");
    // A visible event after them: the hiding connection's next `projects` event is this one.
    let gamma = root.join("gamma");
    write_project(&gamma, PLAN);
    let next = ws_wait_for(&mut hiding, "an event on projects", |f| {
        f["topic"] == "projects"
    })
    .await;
    assert_eq!(next["type"], "project_added");
    assert_eq!(next["project"], project_id(&gamma).as_str());
    let next = ws_wait_for(&mut instances, "instance_created", |f| {
        f["type"] == "instance_created"
    })
    .await;
    assert_eq!(
        next["name"],
        project_id(&gamma).as_str(),
        "alpha's return was hidden"
    );
    ws_wait_for(&mut all_instances, "instance_created for alpha", |f| {
        f["type"] == "instance_created" && f["name"] == alpha_id.as_str()
    })
    .await;

    // Status deltas of an archived instance: only for those who asked. Beta's pause comes after
    // alpha's and is seen by both, so the hiding view proves it skipped alpha's.
    fs::write(alpha.join(".ralph/pause"), "").expect("pause alpha");
    ws_wait_for(&mut all_instances, "alpha paused", |f| {
        f["type"] == "status_changed" && f["name"] == alpha_id.as_str()
    })
    .await;
    fs::write(beta.join(".ralph/pause"), "").expect("pause beta");
    let next = ws_wait_for(&mut instances, "status_changed", |f| {
        f["type"] == "status_changed"
    })
    .await;
    assert_eq!(next["name"], beta_id.as_str());

    // Asking later works on a live connection too.
    ws_send(
        &mut hiding,
        r#"{"action":"set_include_archived","value":true}"#,
    )
    .await;
    ws_wait_for(&mut hiding, "include_archived ack", |f| {
        f["type"] == "include_archived" && f["value"] == true
    })
    .await;
    fs::remove_dir_all(alpha.join(".ralph")).expect("remove .ralph again");
    let removed = ws_wait_for(&mut hiding, "an event on projects", |f| {
        f["topic"] == "projects"
    })
    .await;
    assert_eq!(removed["type"], "project_removed");
    assert_eq!(removed["project"], alpha_id.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_an_unknown_project_is_a_typed_error() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    write_project(&root.join("alpha"), PLAN);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let response = archive(server.addr, &session, "no-such-project", true).await;
    assert_eq!(response.status, 404, "{}", response.body);
    assert!(
        response.body.contains("UnknownProject"),
        "{}",
        response.body
    );
    let garbage = post_json(
        server.addr,
        "/api/archive",
        r#"{"project":"x","archived":"perhaps"}"#,
        &session,
    )
    .await;
    assert_ne!(garbage.status, 200);
    assert!(
        !root.join(".data/archived.json").exists(),
        "nothing saved for a refused request"
    );
    server.stop().await;
}

#[tokio::test]
async fn every_archive_action_is_in_the_audit_trail() {
    use loopwatch::model::audit::{Outcome, Role};
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    write_project(&root.join("alpha"), PLAN);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let id = project_id(&root.join("alpha"));
    assert_eq!(archive(server.addr, &session, &id, true).await.status, 200);
    assert_eq!(archive(server.addr, &session, &id, false).await.status, 200);
    assert_eq!(
        archive(server.addr, &session, "nope", true).await.status,
        404
    );
    server.stop().await;
    let store = loopwatch::server::store::Store::open(&root.join(".data")).expect("store");
    let trail = store.audit(None, 10).expect("audit");
    let seen: Vec<(&str, Option<&str>, Outcome)> = trail
        .iter()
        .map(|entry| {
            (
                entry.action.as_str(),
                entry.project.as_deref(),
                entry.outcome,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("archive", Some("nope"), Outcome::Refused),
            ("unarchive", Some(id.as_str()), Outcome::Done),
            ("archive", Some(id.as_str()), Outcome::Done),
        ]
    );
    assert!(trail.iter().all(|entry| entry.role == Role::Operator));
    assert!(
        trail.iter().all(|entry| entry.session.len() == 8),
        "a short session tag, never the whole id: {trail:?}"
    );
}

/// Every path under `dir` with its size, to prove nothing was written there.
fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).expect("read dir").flatten() {
            let path = entry.path();
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                pending.push(path.clone());
            }
            out.push((path, meta.len()));
        }
    }
    out.sort();
    out
}
