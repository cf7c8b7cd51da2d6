//! The server functions over real HTTP, the way the browser calls them: form-encoded POSTs to
//! `/api/*` answered with JSON, typed errors included.
#![cfg(feature = "ssr")]

use std::fs;

use serde_json::Value;

use loopwatch::server::discovery::project_id;

mod common;
use common::{post_json, start_server, token, write_project, Response};

const PLAN: &str =
    "## Phase 1: Core\n- [x] 1.1: parser\n- [x] 1.2: index\n\n## Phase 2: UI\n- [ ] 2.1: cards\n";

const LOG: &str = "\
[09:00:00] === Iteration 1 (loop 1/10) ===\n\
[09:00:05] reading the plan\n\
[09:01:00] tokens used\n\
12,000\n\
[09:01:01] \u{2705} Tests passed\n\
[09:02:00] === Iteration 2 (loop 2/10) ===\n\
[09:02:30] \u{274c} Tests failed\n\
[09:03:00] === Iteration 3 (loop 3/10) ===\n\
[09:03:10] still going\n";

const ROWS: &str = r#"{"iteration":1,"max":10,"start":"2026-11-23T09:00:00Z","end":"2026-11-23T09:01:01Z","duration_seconds":61,"tokens":12.0,"status":"success","tasks_completed":["1.1"],"commit":"abc1234","test_passed":true,"test_output":"ok: 4 passed","errors":[]}
not json at all
{"iteration":2,"max":10,"duration_seconds":"40","tokens":"8.5","status":"error","tasks_completed":[],"test_passed":false,"errors":["cargo test failed"]}
"#;

fn json(response: &Response) -> Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("JSON body ({e}): {} {}", response.headers, response.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_functions_return_the_project_data() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("gamma");
    write_project(&dir, PLAN);
    fs::write(dir.join(".ralph/ralph.log"), LOG).expect("log");
    fs::write(dir.join(".ralph/iterations.jsonl"), ROWS).expect("rows");
    fs::write(
        dir.join(".ralph/config.json"),
        r#"{"cli":"codex","model_pricing":{"codex":0.02}}"#,
    )
    .expect("config");
    fs::write(dir.join("AGENTS.md"), "# Agents\nbe careful\n").expect("agents");
    fs::create_dir_all(dir.join("specs")).expect("specs");
    fs::write(dir.join("specs/api.md"), "# API\n").expect("spec");
    fs::write(root.join("outside.md"), "secret").expect("outside");
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let addr = server.addr;
    let session = token(&server);

    let list = post_json(addr, "/api/projects", "{}", &session).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let list = json(&list);
    let card = &list["projects"][0];
    // The cursors the live stream continues from: nothing happened yet on either topic.
    assert_eq!(
        list["cursors"]["projects"]["seq"], 1,
        "project_added at start-up"
    );
    assert_eq!(list["cursors"][format!("project:{id}")]["seq"], 0);
    assert_eq!(card["id"], id.as_str());
    assert_eq!(card["status"], "running");
    assert_eq!(
        card["iteration"], 3,
        "the current iteration starts with its header"
    );
    assert_eq!(card["max_iterations"], 10);
    // 12 + 8.5 from the rows, plus nothing for iteration 3 (no tokens logged yet).
    assert_eq!(card["tokens"], 20.5);
    assert!((card["cost_usd"].as_f64().unwrap_or(0.0) - 0.41).abs() < 1e-9);
    assert_eq!(
        card["recent_health"],
        serde_json::json!(["productive", "failed"])
    );
    assert_eq!(card["plan"]["tasks_done"], 2);
    assert_eq!(card["plan"]["tasks_total"], 3);

    let detail = post_json(
        addr,
        "/api/project",
        &format!(r#"{{"project":"{id}"}}"#),
        &session,
    )
    .await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let detail = json(&detail);
    assert_eq!(detail["stats"]["iterations"], 2);
    assert_eq!(detail["stats"]["errors"], 1);
    assert_eq!(detail["stats"]["success_rate"], 0.5);
    assert_eq!(detail["skipped_rows"]["not_json"], 1);
    assert_eq!(detail["config"]["cli"], "codex");
    assert_eq!(detail["completed_in"]["1.1"], 1);
    assert_eq!(detail["plan"]["phases"][1]["name"], "Phase 1: Core");
    assert_eq!(detail["cursor"]["seq"], 0);

    let page = post_json(
        addr,
        "/api/iterations",
        &format!(r#"{{"project":"{id}","query":{{"sort":"oldest","offset":1,"limit":1}}}}"#),
        &session,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = json(&page);
    assert_eq!(page["total"], 2);
    assert_eq!(page["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["rows"][0]["record"]["iteration"], 2);
    assert_eq!(page["rows"][0]["health"], "failed");
    assert_eq!(page["rows"][0]["has_log"], true);

    let failed_only = post_json(
        addr,
        "/api/iterations",
        &format!(
            r#"{{"project":"{id}","query":{{"status":"error","sort":"newest","offset":0,"limit":0}}}}"#
        ),
        &session,
    )
    .await;
    let failed_only = json(&failed_only);
    assert_eq!(failed_only["total"], 1);

    let log = post_json(
        addr,
        "/api/iteration_log",
        &format!(r#"{{"project":"{id}","run":1,"iteration":1}}"#),
        &session,
    )
    .await;
    assert_eq!(log.status, 200, "{}", log.body);
    let log = json(&log);
    let text = log["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("[09:00:00] === Iteration 1 (loop 1/10) ==="),
        "{text}"
    );
    assert!(text.contains("Tests passed"));
    assert!(
        !text.contains("Iteration 2"),
        "only iteration 1's slice: {text}"
    );
    assert_eq!(log["test_output"], "ok: 4 passed");

    let spec = post_json(
        addr,
        "/api/context_file",
        &format!(r#"{{"project":"{id}","name":"specs/api.md"}}"#),
        &session,
    )
    .await;
    assert_eq!(json(&spec)["text"], "# API\n");
    let files = post_json(
        addr,
        "/api/context_files",
        &format!(r#"{{"project":"{id}"}}"#),
        &session,
    )
    .await;
    assert_eq!(
        json(&files),
        serde_json::json!(["AGENTS.md", "specs/api.md"])
    );

    // Typed errors, never a file outside the allowed set.
    for (path, form, expected) in [
        (
            "/api/context_file",
            format!(r#"{{"project":"{id}","name":"../outside.md"}}"#),
            "FileNotAllowed",
        ),
        (
            "/api/context_file",
            format!(r#"{{"project":"{id}","name":".ralph/ralph.pid"}}"#),
            "FileNotAllowed",
        ),
        (
            "/api/project",
            r#"{"project":"nope"}"#.to_owned(),
            "UnknownProject",
        ),
        (
            "/api/iteration_log",
            format!(r#"{{"project":"{id}","run":1,"iteration":99}}"#),
            "UnknownIteration",
        ),
    ] {
        let response = post_json(addr, path, &form, &session).await;
        assert_ne!(response.status, 200, "{path} {form}");
        assert!(!response.body.contains("secret"));
        assert!(
            response.body.contains(expected),
            "{path} {form}: {}",
            response.body
        );
    }
    let garbage = post_json(
        addr,
        "/api/iteration_log",
        r#"{"project":"x","run":"notanumber"}"#,
        &session,
    )
    .await;
    assert_ne!(garbage.status, 200);
    server.stop().await;
}
