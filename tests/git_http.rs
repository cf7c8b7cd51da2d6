//! The git history over real HTTP: a project that is a real repository (made here), its
//! commits attributed to iterations, an iteration's diff, and the refusals.
#![cfg(feature = "ssr")]

use std::{fs, path::Path, process::Command};

use serde_json::Value;

use loopwatch::server::discovery::project_id;

mod common;
use common::{get_signed_in, post_json, start_server, token, write_project, Response};

fn json(response: &Response) -> Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("JSON body ({e}): {} {}", response.headers, response.body))
}

fn git(dir: &Path, args: &[&str], date: &str) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.invalid")
        .env("GIT_COMMITTER_NAME", "Agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.invalid")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn commit(dir: &Path, file: &str, text: &str, message: &str, date: &str) -> String {
    fs::write(dir.join(file), text).expect("write");
    git(dir, &["add", file], date);
    git(dir, &["commit", "-q", "-m", message], date);
    git(dir, &["rev-parse", "HEAD"], date)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_and_an_iterations_diff_over_http() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("alpha");
    write_project(&dir, "- [ ] 1: a\n");
    git(&dir, &["init", "-q", "-b", "main"], "2026-11-23T08:00:00Z");
    commit(
        &dir,
        "README.md",
        "start\n",
        "start",
        "2026-11-23T08:00:00Z",
    );
    let made = commit(
        &dir,
        "src.txt",
        "one\ntwo\n",
        "feat: two lines",
        "2026-11-23T09:00:30Z",
    );
    let row = format!(
        r#"{{"iteration":1,"max":5,"start":"2026-11-23T09:00:00Z","end":"2026-11-23T09:01:00Z","status":"success","commit":"{}"}}
{{"iteration":2,"max":5,"start":"2026-11-23T09:02:00Z","end":"2026-11-23T09:03:00Z","status":"error"}}
"#,
        &made[..7]
    );
    fs::write(dir.join(".ralph/iterations.jsonl"), row).expect("rows");
    let plain = root.join("plain");
    write_project(&plain, "- [ ] 1: a\n");
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let (addr, session) = (server.addr, token(&server));

    let list = post_json(
        addr,
        "/api/commits",
        &format!(r#"{{"project":"{id}"}}"#),
        &session,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let list = json(&list);
    assert_eq!(list["repository"]["Found"]["subdir"], "");
    let commits = list["commits"].as_array().expect("commits");
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[0]["sha"], made.as_str());
    assert_eq!(commits[0]["iteration"], serde_json::json!([1, 1]));
    assert_eq!(commits[0]["insertions"], 2);
    assert_eq!(commits[1]["iteration"], Value::Null);

    let body = format!(r#"{{"project":"{id}","run":1,"iteration":1}}"#);
    let diff = json(&post_json(addr, "/api/iteration_diff", &body, &session).await);
    assert_eq!(diff["commits"][0]["sha"], made.as_str());
    assert_eq!(diff["files"][0]["path"], "src.txt");
    assert_eq!(diff["truncated"], false);
    // Iteration 2 names no commit: no diff, not an error.
    let body = format!(r#"{{"project":"{id}","run":1,"iteration":2}}"#);
    let none = post_json(addr, "/api/iteration_diff", &body, &session).await;
    assert_eq!((none.status, none.body.as_str()), (200, "null"));
    let body = format!(r#"{{"project":"{id}","run":1,"iteration":9}}"#);
    assert_eq!(
        post_json(addr, "/api/iteration_diff", &body, &session)
            .await
            .status,
        404
    );

    for sha in [
        "--output=/tmp/x",
        "0000000000000000000000000000000000000000",
    ] {
        let body = format!(r#"{{"project":"{id}","sha":"{sha}"}}"#);
        let refused = post_json(addr, "/api/commit_diff", &body, &session).await;
        assert_eq!(refused.status, 404, "{sha}: {}", refused.body);
        assert!(refused.body.contains("UnknownCommit"), "{}", refused.body);
    }
    let unknown = post_json(addr, "/api/commits", r#"{"project":"nope"}"#, &session).await;
    assert_eq!(unknown.status, 404);

    let plain_id = project_id(&plain);
    let body = format!(r#"{{"project":"{plain_id}"}}"#);
    // The temporary directory is not inside a repository.
    let plain_list = json(&post_json(addr, "/api/commits", &body, &session).await);
    assert_eq!(plain_list["repository"], "NotARepository");

    // The tab renders on the server with the list and the selected commit's diff.
    let page = get_signed_in(
        addr,
        &format!("/projects/{id}/commits?sha={made}"),
        &session,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("feat: two lines"), "{}", page.body);
    assert!(page.body.contains("+two"), "the diff is in the page");
    server.stop().await;
}
