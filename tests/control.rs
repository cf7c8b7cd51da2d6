//! Operating a loop over real HTTP and sockets: start, pause, resume, inject, stop and edits
//! through the server functions, with a small fake loop (`tests/fixtures/loop/ralph.sh`) as
//! the project's own `ralph.sh`; every refusal (unknown project, running loop, stale version,
//! link, size, foreign origin); the PID reuse guard; a loop that outlives its loopwatch.
#![cfg(feature = "ssr")]

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde_json::Value;

use loopwatch::server::discovery::project_id;

mod common;
use common::{
    open_ws, post_json, raw_request, start_server, token, ws_next, ws_send, ws_wait_for, Response,
    WsClient, WAIT,
};

fn json(response: &Response) -> Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("JSON body ({e}): {} {}", response.headers, response.body))
}

/// A project with the fake loop as its own `ralph.sh`, iterations of `step` seconds.
fn loop_project(root: &Path, name: &str, step: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), "- [ ] 1: a\n").expect("plan");
    fs::write(dir.join("PROMPT.md"), "Do the next task.\n").expect("prompt");
    fs::write(dir.join(".ralph/fake-step"), step).expect("step");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loop/ralph.sh");
    fs::copy(script, dir.join("ralph.sh")).expect("copy the loop script");
    dir
}

fn tree() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    (temp, root)
}

async fn call(addr: SocketAddr, session: &str, endpoint: &str, body: Value) -> Response {
    post_json(
        addr,
        &format!("/api/{endpoint}"),
        &body.to_string(),
        session,
    )
    .await
}

fn start_body(id: &str) -> Value {
    serde_json::json!({ "project": id, "form": {
        "max_iterations": 0, "cli": "fake", "flags": "", "test": "", "model": "" } })
}

async fn subscribed(addr: SocketAddr, session: &str, id: &str) -> WsClient {
    let mut client = open_ws(addr, "/api/ws", session).await;
    assert_eq!(ws_next(&mut client).await.expect("hello")["type"], "hello");
    ws_send(
        &mut client,
        &format!(r#"{{"action":"subscribe","topics":["project:{id}"]}}"#),
    )
    .await;
    ws_wait_for(&mut client, "subscribed", |f| f["type"] == "subscribed").await;
    client
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rfind(')')?;
            stat[after + 1..]
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Ends the loop a failed test left behind (its group), if it is still that loop.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        let ours = fs::read(format!("/proc/{}/cmdline", self.0)).is_ok_and(|cmdline| {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("ralph.sh") || cmdline.contains("stubborn-loop")
        });
        if alive(self.0) && ours {
            // SAFETY: plain syscall on a process group this test started.
            unsafe { libc::kill(-(self.0 as i32), libc::SIGKILL) };
        }
    }
}

/// Waits (at most [`WAIT`]) until `condition` holds, looking every 50 ms.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn control_frame(frame: &Value) -> bool {
    frame["type"] == "control"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_starts_pauses_resumes_injects_and_stops_a_loop() {
    let (_temp, root) = tree();
    let dir = loop_project(&root, "alpha", "0.3");
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let mut socket = subscribed(server.addr, &session, &id).await;

    let started = call(server.addr, &session, "start_loop", start_body(&id)).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let pid: u32 = json(&started).as_u64().expect("pid") as u32;
    let _reap = Reap(pid);
    // The start's own `started` and the card's `running` come in either order.
    let (mut phase, mut running) = (None, false);
    while phase.is_none() || !running {
        let frame = ws_wait_for(&mut socket, "started and running", |f| {
            (control_frame(f) && f["data"]["start"]["phase"] == "started")
                || (f["type"] == "status_changed" && f["data"]["status"] == "running")
        })
        .await;
        if control_frame(&frame) {
            phase = Some(frame["data"]["start"]["pid"].clone());
        } else {
            running = true;
        }
    }
    assert_eq!(phase, Some(Value::from(pid)));
    // The start's output went to the data directory, not to the loop's own log.
    let log = fs::read_to_string(dir.join(".ralph/ralph.log")).expect("log");
    assert!(!log.contains("starting the fake loop"), "{log}");

    let again = call(server.addr, &session, "start_loop", start_body(&id)).await;
    assert_eq!(again.status, 409, "{}", again.body);

    let project = serde_json::json!({ "project": id });
    assert_eq!(
        call(server.addr, &session, "pause_loop", project.clone())
            .await
            .status,
        200
    );
    assert!(dir.join(".ralph/pause").exists());
    ws_wait_for(&mut socket, "paused", |f| {
        f["type"] == "status_changed" && f["data"]["status"] == "paused"
    })
    .await;
    assert_eq!(
        call(server.addr, &session, "resume_loop", project.clone())
            .await
            .status,
        200
    );
    ws_wait_for(&mut socket, "running again", |f| {
        f["type"] == "status_changed" && f["data"]["status"] == "running"
    })
    .await;

    let injected = call(
        server.addr,
        &session,
        "inject",
        serde_json::json!({ "project": id, "text": "Prefer small commits." }),
    )
    .await;
    assert_eq!(injected.status, 200, "{}", injected.body);
    ws_wait_for(&mut socket, "pending injection", |f| {
        control_frame(f) && f["data"]["injection"]["state"] == "pending"
    })
    .await;
    let consumed = ws_wait_for(&mut socket, "consumed injection", |f| {
        control_frame(f) && f["data"]["injection"]["state"] == "consumed"
    })
    .await;
    assert!(
        consumed["data"]["injection"]["iteration"].is_u64(),
        "{consumed}"
    );
    let log = fs::read_to_string(dir.join(".ralph/ralph.log")).expect("log");
    assert!(log.contains("Prefer small commits."), "{log}");

    let stopped = call(server.addr, &session, "stop_loop", project.clone()).await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert!(json(&stopped)
        .as_str()
        .expect("detail")
        .contains("SIGTERM to group"));
    until("the loop ends", || !alive(pid)).await;
    let stop_again = call(server.addr, &session, "stop_loop", project.clone()).await;
    assert_eq!(stop_again.status, 409, "{}", stop_again.body);

    // Each action is in the audit trail the page shows, and was heard as a `control` event.
    let state = json(&call(server.addr, &session, "control_state", project).await);
    let actions: Vec<&str> = state["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|entry| entry["outcome"] == "done")
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    assert_eq!(actions, ["stop", "inject", "resume", "pause", "start"]);
    assert_eq!(state["running"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_need_the_current_version_a_plain_name_and_a_bounded_size() {
    let (_temp, root) = tree();
    let dir = loop_project(&root, "beta", "1");
    let id = project_id(&dir);
    let outside = root.join("outside.md");
    fs::write(&outside, "secret").expect("outside");
    std::os::unix::fs::symlink(&outside, dir.join("AGENTS.md")).expect("link");
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let mut socket = subscribed(server.addr, &session, &id).await;
    let addr = server.addr;

    let loaded = json(
        &call(
            addr,
            &session,
            "editable_file",
            serde_json::json!({ "project": id, "name": "PROMPT.md" }),
        )
        .await,
    );
    let version = loaded["version"].as_str().expect("version").to_owned();
    let save = |version: &str, text: &str, name: &str| serde_json::json!({ "project": id, "name": name, "version": version, "text": text });
    let saved = call(
        addr,
        &session,
        "save_file",
        save(&version, "New prompt.\n", "PROMPT.md"),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(
        fs::read_to_string(dir.join("PROMPT.md")).expect("read"),
        "New prompt.\n"
    );
    ws_wait_for(&mut socket, "the edit's control event", |f| {
        control_frame(f) && f["data"]["entry"]["action"] == "edit"
    })
    .await;

    // The agent writes meanwhile: the stale save is refused with the current text, and the
    // file is byte for byte what the agent wrote.
    fs::write(dir.join("PROMPT.md"), b"agent's version\n").expect("agent");
    let stale = call(
        addr,
        &session,
        "save_file",
        save(&version, "mine", "PROMPT.md"),
    )
    .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("agent's version"), "{}", stale.body);
    assert_eq!(
        fs::read(dir.join("PROMPT.md")).expect("read"),
        b"agent's version\n"
    );

    let linked = call(addr, &session, "save_file", save("", "x", "AGENTS.md")).await;
    assert_eq!(linked.status, 400, "{}", linked.body);
    assert_eq!(fs::read(&outside).expect("outside"), b"secret");
    for name in [
        "ralph.sh",
        "../outside.md",
        "specs/../PROMPT.md",
        ".ralph/ralph.pid",
    ] {
        let refused = call(addr, &session, "save_file", save("", "x", name)).await;
        assert_eq!(refused.status, 400, "{name}: {}", refused.body);
    }
    let huge = "x".repeat(1024 * 1024 + 1);
    let oversize = call(addr, &session, "save_file", save("", &huge, "specs/big.md")).await;
    assert_eq!(oversize.status, 413, "{}", oversize.body);
    assert!(!dir.join("specs/big.md").exists());

    // A spec is created against "no file", and deleted against its version.
    let created = call(
        addr,
        &session,
        "save_file",
        save("", "# Spec\n", "specs/api.md"),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let spec_version = json(&created).as_str().expect("version").to_owned();
    let delete = |version: &str| serde_json::json!({ "project": id, "name": "specs/api.md", "version": version });
    assert_eq!(
        call(addr, &session, "delete_spec", delete("stale"))
            .await
            .status,
        409
    );
    assert_eq!(
        call(addr, &session, "delete_spec", delete(&spec_version))
            .await
            .status,
        200
    );
    assert!(!dir.join("specs/api.md").exists());

    // The config form keeps keys it does not know and refuses bad values.
    fs::write(
        dir.join(".ralph/config.json"),
        r#"{"cli":"codex","model":"gpt"}"#,
    )
    .expect("config");
    let config = json(
        &call(
            addr,
            &session,
            "editable_file",
            serde_json::json!({ "project": id, "name": ".ralph/config.json" }),
        )
        .await,
    );
    let form = |cli: &str| {
        serde_json::json!({ "project": id, "version": config["version"],
        "form": { "cli": cli, "flags": "-p", "max_iterations": 7, "test_command": "make test" } })
    };
    assert_eq!(
        call(addr, &session, "save_config", form("two words"))
            .await
            .status,
        400
    );
    assert_eq!(
        call(addr, &session, "save_config", form("claude"))
            .await
            .status,
        200
    );
    let written: Value =
        serde_json::from_str(&fs::read_to_string(dir.join(".ralph/config.json")).expect("read"))
            .expect("config is JSON");
    assert_eq!(
        (written["cli"].as_str(), written["model"].as_str()),
        (Some("claude"), Some("gpt"))
    );
    assert_eq!(written["max_iterations"], 7);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_on_unknown_projects_running_loops_and_from_other_origins_are_refused() {
    let (_temp, root) = tree();
    // "Running": the pid file names this test process, which started before it was written.
    let dir = loop_project(&root, "gamma", "1");
    fs::write(dir.join(".ralph/ralph.pid"), std::process::id().to_string()).expect("pid");
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let addr = server.addr;

    let unknown = serde_json::json!({ "project": "nope" });
    for endpoint in ["pause_loop", "resume_loop", "stop_loop"] {
        let refused = call(addr, &session, endpoint, unknown.clone()).await;
        assert_eq!(refused.status, 404, "{endpoint}: {}", refused.body);
    }
    assert_eq!(
        call(addr, &session, "start_loop", start_body("nope"))
            .await
            .status,
        404
    );
    let inject = serde_json::json!({ "project": "nope", "text": "x" });
    assert_eq!(call(addr, &session, "inject", inject).await.status, 404);

    let running = call(addr, &session, "start_loop", start_body(&id)).await;
    assert_eq!(running.status, 409, "{}", running.body);
    let plan = json(
        &call(
            addr,
            &session,
            "editable_file",
            serde_json::json!({ "project": id, "name": "IMPLEMENTATION_PLAN.md" }),
        )
        .await,
    );
    assert_eq!(plan["editable"], false);
    let edit_plan = serde_json::json!({ "project": id, "name": "IMPLEMENTATION_PLAN.md",
        "version": plan["version"], "text": "- [x] 1: a\n" });
    assert_eq!(
        call(addr, &session, "save_file", edit_plan).await.status,
        409
    );
    assert_eq!(
        fs::read_to_string(dir.join("IMPLEMENTATION_PLAN.md")).expect("plan"),
        "- [ ] 1: a\n"
    );

    // The pid file names this test process: alive, older than the file, but not the loop.
    let not_loop = call(
        addr,
        &session,
        "stop_loop",
        serde_json::json!({ "project": id }),
    )
    .await;
    assert_eq!(not_loop.status, 409, "{}", not_loop.body);

    // A page of another origin, with the operator's cookie: 403, and nothing happens.
    let body = serde_json::json!({ "project": id }).to_string();
    let foreign = raw_request(
        addr,
        &format!(
            "POST /api/pause_loop HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Origin: http://evil.example\r\nContent-Type: application/json\r\n\
             Cookie: {}={session}\r\nContent-Length: {}\r\n\r\n{body}",
            common::cookie_name(addr),
            body.len()
        ),
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert!(!dir.join(".ralph/pause").exists());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_reused_by_a_later_process_is_never_signalled() {
    let (_temp, root) = tree();
    let dir = loop_project(&root, "delta", "1");
    let id = project_id(&dir);
    // An unrelated process whose command line even names the loop's script, started after the
    // pid file was written.
    let pid_file = dir.join(".ralph/ralph.pid");
    fs::write(&pid_file, "1").expect("pid");
    let file = fs::File::options()
        .write(true)
        .open(&pid_file)
        .expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("backdate");
    let mut unrelated = std::process::Command::new("bash")
        .args(["-c", "sleep 60 & wait", "ralph.sh"])
        .spawn()
        .expect("spawn");
    fs::write(&pid_file, unrelated.id().to_string()).expect("pid");
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("backdate");
    let server = start_server(root.clone()).await;
    let session = token(&server);

    let refused = call(
        server.addr,
        &session,
        "stop_loop",
        serde_json::json!({ "project": id }),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body.contains("started after the pid file"),
        "{}",
        refused.body
    );
    assert!(unrelated.try_wait().expect("wait").is_none(), "it lives");
    assert!(alive(unrelated.id()));
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_started_from_the_page_survives_a_restart_of_loopwatch() {
    let (_temp, root) = tree();
    let dir = loop_project(&root, "epsilon", "0.5");
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let mut socket = subscribed(server.addr, &session, &id).await;
    let started = call(server.addr, &session, "start_loop", start_body(&id)).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let pid = json(&started).as_u64().expect("pid") as u32;
    let _reap = Reap(pid);
    ws_wait_for(&mut socket, "started", |f| {
        control_frame(f) && f["data"]["start"]["phase"] == "started"
    })
    .await;
    drop(socket);
    server.stop().await;
    assert!(alive(pid), "the loop outlives the server");

    let server = start_server(root.clone()).await;
    let session = token(&server);
    let project = serde_json::json!({ "project": id });
    let state = json(&call(server.addr, &session, "control_state", project.clone()).await);
    assert_eq!(state["running"], true, "{state}");
    let lines_before = fs::read_to_string(dir.join(".ralph/ralph.log"))
        .expect("log")
        .len();
    until("the loop writes on", || {
        fs::read_to_string(dir.join(".ralph/ralph.log")).map_or(0, |log| log.len()) > lines_before
    })
    .await;
    let stopped = call(server.addr, &session, "stop_loop", project).await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    until("the loop ends", || !alive(pid)).await;
    server.stop().await;
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, format!("#!/usr/bin/env bash\n{body}")).expect("script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_dies_before_its_pid_file_shows_its_output() {
    let (_temp, root) = tree();
    let dir = root.join("zeta");
    fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
    write_script(
        &dir.join("ralph.sh"),
        "echo \"no agent cli named $RALPH_CLI\" >&2\nexit 3\n",
    );
    let id = project_id(&dir);
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let mut socket = subscribed(server.addr, &session, &id).await;
    let started = call(server.addr, &session, "start_loop", start_body(&id)).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let died = ws_wait_for(&mut socket, "died", |f| {
        control_frame(f) && f["data"]["start"]["phase"] == "died"
    })
    .await;
    assert_eq!(died["data"]["start"]["code"], 3);
    assert!(
        died["data"]["start"]["output"]
            .as_str()
            .is_some_and(|out| out.contains("no agent cli named fake")),
        "{died}"
    );
    let project = serde_json::json!({ "project": id });
    let state = json(&call(server.addr, &session, "control_state", project).await);
    assert_eq!(state["start"]["phase"], "died", "{state}");
    assert!(
        !dir.join(".ralph/ralph.log").exists(),
        "nothing went to the loop's log"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_loop_command_runs_and_a_loop_ignoring_sigterm_gets_sigkill() {
    use loopwatch::server::{auth::Auth, control::ControlOptions};
    use loopwatch::site::{start, ServerConfig};
    use std::sync::Arc;
    let (_temp, root) = tree();
    let bin = root.join("bin");
    fs::create_dir_all(&bin).expect("mkdir");
    let stubborn = bin.join("stubborn-loop.sh");
    write_script(
        &stubborn,
        "trap '' TERM\necho $$ > .ralph/ralph.pid\nwhile true; do sleep 0.1; done\n",
    );
    let dir = root.join("eta");
    fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
    let id = project_id(&dir);

    // Without a command anywhere, a start is refused.
    let bare = start_server(root.clone()).await;
    let refused = call(bare.addr, &token(&bare), "start_loop", start_body(&id)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    bare.stop().await;

    let data_dir = root.join(".data");
    let loaded = Auth::load_or_create(&data_dir).expect("auth");
    let server = start(ServerConfig {
        control: ControlOptions {
            loop_command: Some(stubborn.display().to_string()),
            grace: Duration::from_secs(1),
        },
        ..common::server_config(
            vec![root.clone()],
            Some(Arc::new(loaded.auth)),
            Some(data_dir),
        )
    })
    .await
    .expect("server");
    let auth = server.auth.clone().expect("auth on");
    common::set_cookie_name(server.addr, &auth.cookie_name());
    let session = token(&server);
    let started = call(server.addr, &session, "start_loop", start_body(&id)).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let pid = json(&started).as_u64().expect("pid") as u32;
    let _reap = Reap(pid);
    until("the pid file", || dir.join(".ralph/ralph.pid").exists()).await;
    let stopped = call(
        server.addr,
        &session,
        "stop_loop",
        serde_json::json!({ "project": id }),
    )
    .await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert!(
        json(&stopped).as_str().expect("detail").contains("SIGKILL"),
        "{}",
        stopped.body
    );
    until("the loop ends", || !alive(pid)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_command_is_kept_in_the_data_directory_and_wins() {
    let (_temp, root) = tree();
    let dir = root.join("theta");
    fs::create_dir_all(dir.join(".ralph")).expect("mkdir");
    let id = project_id(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loop/ralph.sh");
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let project = serde_json::json!({ "project": id });
    let state = json(&call(server.addr, &session, "control_state", project.clone()).await);
    assert_eq!(state["command"], Value::Null);
    let set = serde_json::json!({ "project": id, "command": script.display().to_string() });
    assert_eq!(
        call(server.addr, &session, "loop_command", set)
            .await
            .status,
        200
    );
    server.stop().await;

    // Kept across a restart, in the data directory and not in the project.
    let server = start_server(root.clone()).await;
    let session = token(&server);
    let state = json(&call(server.addr, &session, "control_state", project.clone()).await);
    assert_eq!(state["command"], script.display().to_string());
    assert!(root.join(".data/loop-commands.json").exists());
    assert_eq!(
        fs::read_dir(&dir).expect("list").count(),
        1,
        "only .ralph in the project"
    );
    let unknown = serde_json::json!({ "project": "nope", "command": "x" });
    assert_eq!(
        call(server.addr, &session, "loop_command", unknown)
            .await
            .status,
        404
    );
    server.stop().await;
}
