//! Projects whose loop writes `ralph.log` but no (or not every) `iterations.jsonl` row: their
//! iterations are built from the log's headers and markers, listed, counted and announced, and a
//! JSONL row wins wherever one was written. Over a real server on port 0.
#![cfg(feature = "ssr")]

use std::fs;

use serde_json::Value;

use loopwatch::server::discovery::project_id;

mod common;
use common::{
    append, open_ws, post_json, start_server, token, write_project, ws_send, ws_wait_for, Response,
};

const PLAN: &str = "## Phase 1\n- [ ] 1.1: first\n";

fn json(response: &Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("JSON body ({e}): {}", response.body))
}

/// How generated iteration `n` ends, by the markers its lines carry.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// `⚠️ Agent exited with code 1`: an error.
    Exited,
    /// `❌ Tests failed` (agent exit 0): a success whose tests failed.
    TestsFailed,
    /// `✅ Tests passed`.
    TestsPassed,
}

fn ending(n: u32) -> Ending {
    if n.is_multiple_of(5) {
        Ending::Exited
    } else if n.is_multiple_of(3) {
        Ending::TestsFailed
    } else {
        Ending::TestsPassed
    }
}

/// `count` iterations a minute apart (from 00:00:00, so the clock passes midnight), headers in
/// both forms, each with 1,500 tokens and its markers, then a completion marker.
fn long_log(count: u32) -> String {
    let clock = |seconds: u32| {
        let s = seconds % 86_400;
        format!("[{:02}:{:02}:{:02}]", s / 3600, s / 60 % 60, s % 60)
    };
    let mut log = String::new();
    for n in 1..=count {
        let at = n * 60;
        let header = if n.is_multiple_of(2) {
            format!("=== Iteration {n}/{count} ===")
        } else {
            format!("=== Iteration {n} (loop {n}/{count}) ===")
        };
        log.push_str(&format!("{} {header}\n", clock(at)));
        log.push_str(&format!(
            "{} reading the plan\nsome agent output\n",
            clock(at + 5)
        ));
        log.push_str(&format!("{} tokens used\n1,500\n", clock(at + 20)));
        match ending(n) {
            Ending::Exited => log.push_str(&format!(
                "{} \u{26a0}\u{fe0f} Agent exited with code 1\n",
                clock(at + 30)
            )),
            Ending::TestsFailed => {
                log.push_str(&format!(
                    "{} \u{26a0}\u{fe0f} Agent exited with code 0\n",
                    clock(at + 30)
                ));
                log.push_str(&format!("{} \u{274c} Tests failed\n", clock(at + 40)));
            }
            Ending::TestsPassed => {
                log.push_str(&format!("{} \u{2705} Tests passed\n", clock(at + 40)))
            }
        }
    }
    log.push_str(&format!(
        "{} \u{1f389} All tasks COMPLETE\n",
        clock((count + 1) * 60 - 10)
    ));
    log
}

/// Every row of the iterations table, oldest first, page by page.
async fn all_rows(server: &loopwatch::site::RunningServer, id: &str) -> (Vec<Value>, u64) {
    let session = token(server);
    let mut rows = Vec::new();
    loop {
        let page = json(
            &post_json(
                server.addr,
                "/api/iterations",
                &format!(
                    r#"{{"project":"{id}","query":{{"sort":"oldest","offset":{},"limit":500}}}}"#,
                    rows.len()
                ),
                &session,
            )
            .await,
        );
        let total = page["total"].as_u64().unwrap_or(0);
        let got = page["rows"].as_array().cloned().unwrap_or_default();
        let empty = got.is_empty();
        rows.extend(got);
        if empty || rows.len() as u64 >= total {
            return (rows, total);
        }
    }
}

async fn detail(server: &loopwatch::site::RunningServer, id: &str) -> Value {
    json(
        &post_json(
            server.addr,
            "/api/project",
            &format!(r#"{{"project":"{id}"}}"#),
            &token(server),
        )
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_log_only_project_lists_counts_and_charts_every_iteration() {
    const COUNT: u32 = 2_000;
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("old-loop");
    write_project(&dir, PLAN);
    fs::write(dir.join(".ralph/ralph.log"), long_log(COUNT)).expect("log");
    let id = project_id(&dir);
    let server = start_server(root).await;

    let (rows, total) = all_rows(&server, &id).await;
    assert_eq!(
        total,
        u64::from(COUNT),
        "every iteration, the last one completed"
    );
    assert_eq!(rows.len(), COUNT as usize);
    for (index, row) in rows.iter().enumerate() {
        let n = index as u32 + 1;
        let record = &row["record"];
        assert_eq!(record["iteration"], n);
        assert_eq!(record["run"], 1);
        assert_eq!(record["max"], COUNT);
        assert_eq!(record["tokens"], 1.5);
        assert_eq!(row["source"], "log", "iteration {n}");
        assert_eq!(row["has_log"], true);
        let (status, health) = match ending(n) {
            Ending::Exited => ("error", "failed"),
            Ending::TestsFailed => ("success", "failed"),
            Ending::TestsPassed => ("success", "partial"),
        };
        assert_eq!(record["status"], status, "iteration {n}");
        assert_eq!(row["health"], health, "iteration {n}");
        let duration = if n == COUNT { 50.0 } else { 60.0 };
        assert_eq!(
            record["duration_seconds"], duration,
            "iteration {n} (midnight too)"
        );
    }
    assert_eq!(rows[0]["record"]["start"], "00:01:00");
    assert_eq!(rows[0]["record"]["end"], "00:02:00");

    let detail = detail(&server, &id).await;
    let stats = &detail["stats"];
    let exited = (1..=COUNT).filter(|&n| ending(n) == Ending::Exited).count();
    let passed = (1..=COUNT)
        .filter(|&n| ending(n) == Ending::TestsPassed)
        .count();
    assert_eq!(stats["iterations"], COUNT);
    assert_eq!(stats["total_tokens"], 1.5 * f64::from(COUNT));
    assert_eq!(stats["errors"], exited);
    assert_eq!(stats["health"]["partial"], passed);
    assert_eq!(stats["health"]["failed"], COUNT as usize - passed);
    // Thinned for the chart: it spans every iteration, exact at both ends.
    let burndown = stats["burndown"].as_array().expect("a burndown");
    assert!(burndown.len() <= 300, "{}", burndown.len());
    assert_eq!(burndown.first().map(|p| &p["at"]), Some(&0.into()));
    assert_eq!(burndown.last().map(|p| &p["at"]), Some(&COUNT.into()));
    assert_eq!(
        detail["summary"]["recent_health"].as_array().map(Vec::len),
        Some(20)
    );
    assert_eq!(detail["summary"]["iteration"], COUNT);

    // The overview's recent rows are the newest iterations.
    let recent = json(
        &post_json(
            server.addr,
            "/api/iterations",
            &format!(r#"{{"project":"{id}","query":{{"sort":"newest","offset":0,"limit":60}}}}"#),
            &token(&server),
        )
        .await,
    );
    assert_eq!(recent["rows"][0]["record"]["iteration"], COUNT);

    // Each one's text is its slice of the log.
    let log = json(
        &post_json(
            server.addr,
            "/api/iteration_log",
            &format!(r#"{{"project":"{id}","run":1,"iteration":8}}"#),
            &token(&server),
        )
        .await,
    );
    let text = log["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("[00:08:00] === Iteration 8/2000 ==="),
        "{text}"
    );
    assert!(!text.contains("Iteration 9"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_project_takes_rows_where_written_and_the_log_elsewhere() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("mixed");
    write_project(&dir, PLAN);
    fs::write(dir.join(".ralph/ralph.log"), long_log(10)).expect("log");
    // Rows for 3, 4 and 7 only (say the loop crashed before writing the others).
    let rows: String = [3, 4, 7]
        .iter()
        .map(|n| {
            format!(
                "{{\"iteration\":{n},\"max\":10,\"tokens\":9.0,\"status\":\"success\",\"tasks_completed\":[\"1.1\"]}}\n"
            )
        })
        .collect();
    fs::write(dir.join(".ralph/iterations.jsonl"), rows).expect("rows");
    let id = project_id(&dir);
    let server = start_server(root).await;

    let (rows, total) = all_rows(&server, &id).await;
    assert_eq!(total, 10, "no duplicates: one row per iteration");
    let seen: Vec<(u64, &str, f64)> = rows
        .iter()
        .map(|row| {
            (
                row["record"]["iteration"].as_u64().unwrap_or(0),
                row["source"].as_str().unwrap_or_default(),
                row["record"]["tokens"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let expected: Vec<(u64, &str, f64)> = (1..=10)
        .map(|n| match n {
            3 | 4 | 7 => (n, "jsonl", 9.0),
            _ => (n, "log", 1.5),
        })
        .collect();
    assert_eq!(seen, expected);
    assert!(rows.iter().all(|row| row["has_log"] == true));

    let stats = &detail(&server, &id).await["stats"];
    assert_eq!(stats["iterations"], 10);
    assert_eq!(stats["total_tokens"], 3.0 * 9.0 + 7.0 * 1.5);
    assert_eq!(stats["health"]["productive"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_numbers_are_a_new_run() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("restarted");
    write_project(&dir, PLAN);
    fs::write(
        dir.join(".ralph/ralph.log"),
        "[10:00:00] === Iteration 1/3 ===\n[10:01:00] === Iteration 2/3 ===\n\
         [10:02:00] === Iteration 3/3 ===\n[11:00:00] === Iteration 1 (loop 1/3) ===\n\
         [11:05:00] === Iteration 2 (loop 2/3) ===\n[11:06:00] still working\n",
    )
    .expect("log");
    let id = project_id(&dir);
    let server = start_server(root).await;

    let (rows, total) = all_rows(&server, &id).await;
    assert_eq!(total, 4, "the running iteration is not listed yet");
    let runs: Vec<(u64, u64)> = rows
        .iter()
        .map(|row| {
            (
                row["record"]["run"].as_u64().unwrap_or(0),
                row["record"]["iteration"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(runs, [(1, 1), (1, 2), (1, 3), (2, 1)]);
    assert_eq!(rows[2]["record"]["duration_seconds"], 58.0 * 60.0);
    assert_eq!(rows[3]["record"]["duration_seconds"], 5.0 * 60.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_header_announces_the_previous_iteration_live() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("live");
    write_project(&dir, PLAN);
    let log = dir.join(".ralph/ralph.log");
    fs::write(
        &log,
        "[10:00:00] === Iteration 1/5 ===\n[10:00:30] tokens used\n2,500\n",
    )
    .expect("log");
    let id = project_id(&dir);
    let server = start_server(root).await;

    let mut client = open_ws(server.addr, "/api/ws", &token(&server)).await;
    ws_wait_for(&mut client, "hello", |f| f["type"] == "hello").await;
    ws_send(
        &mut client,
        &format!(r#"{{"action":"subscribe","topics":["project:{id}"]}}"#),
    )
    .await;
    ws_wait_for(&mut client, "subscribed", |f| f["type"] == "subscribed").await;

    append(
        &log,
        "[10:00:40] \u{274c} Tests failed\n[10:02:00] === Iteration 2/5 ===\n",
    );
    let done = ws_wait_for(&mut client, "iteration_completed", |f| {
        f["type"] == "iteration_completed"
    })
    .await;
    assert_eq!(done["project"], id.as_str());
    assert_eq!(done["data"]["iteration"], 1);
    assert_eq!(done["data"]["run"], 1);
    assert_eq!(done["data"]["tokens"], 2.5);
    assert_eq!(done["data"]["duration_seconds"], 120.0);
    assert_eq!(done["data"]["test_passed"], false);
    assert_eq!(done["data"]["health"], "failed");

    // A completion marker ends the last one.
    append(&log, "[10:03:00] \u{1f389} All tasks COMPLETE\n");
    let done = ws_wait_for(&mut client, "iteration_completed", |f| {
        f["type"] == "iteration_completed"
    })
    .await;
    assert_eq!(done["data"]["iteration"], 2);
    assert_eq!(done["data"]["status"], "success");
}
