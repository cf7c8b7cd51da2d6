//! Project files an attacker controls: links to outside files or devices, FIFOs, sparse giants,
//! hard links, a `.ralph` that is a link, a link swapped in while requests read, a huge last
//! line. The server must keep answering, never serve an outside file, and say on the project's
//! card what it refused.
//!
//! Each server runs on its own runtime in its own thread: a server stuck on a file must fail
//! the test by a time limit, not hang the test's own runtime.

use std::{
    fs,
    io::{Seek, SeekFrom, Write},
    net::SocketAddr,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{sync::oneshot, time::timeout};

use loopwatch::server::discovery::project_id;

mod common;
use common::{append, get, get_signed_in, post_json, start_server, token, write_project, WAIT};

const PLAN: &str = "## Phase 1\n- [ ] 1.1: first\n";
const SECRET: &str = "TOP-SECRET-7f3a9c";

/// A server on its own runtime thread; stopped when dropped (a stuck one is left behind).
struct Isolated {
    addr: SocketAddr,
    token: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a server over `root`, failing if it is not listening within [`WAIT`].
async fn start_isolated(root: PathBuf) -> Isolated {
    let (ready, listening) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let server = start_server(root).await;
            let _ = ready.send((server.addr, token(&server)));
            let _ = stopped.await;
            server.stop().await;
        });
    });
    let (addr, token) = timeout(WAIT, listening)
        .await
        .expect("the server listens within the time limit")
        .expect("the server thread is alive");
    Isolated {
        addr,
        token,
        stop: Some(stop),
    }
}

fn tree() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    (temp, root)
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The login page, an authenticated page and the project list all answer (each request fails
/// the test if it takes longer than [`WAIT`]).
async fn answers(server: &Isolated) {
    let login = get(server.addr, "/login").await;
    assert_eq!(login.status, 200, "/login");
    let page = get_signed_in(server.addr, "/", &server.token).await;
    assert_eq!(page.status, 200, "the dashboard");
    let list = post_json(server.addr, "/api/projects", "{}", &server.token).await;
    assert_eq!(list.status, 200, "{}", list.body);
}

/// The card of project `id`, if listed.
async fn card(server: &Isolated, id: &str) -> Option<serde_json::Value> {
    let list = post_json(server.addr, "/api/projects", "{}", &server.token).await;
    assert_eq!(list.status, 200, "{}", list.body);
    json(&list.body)["projects"]
        .as_array()
        .and_then(|projects| projects.iter().find(|p| p["id"] == id).cloned())
}

fn warnings(card: &serde_json::Value) -> String {
    card["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

/// Waits (at most [`WAIT`]) until the card of `id` carries a warning containing every one of
/// `needles`; returns the warnings.
async fn wait_for_warning(server: &Isolated, id: &str, needles: &[&str]) -> String {
    let found = timeout(WAIT, async {
        loop {
            if let Some(card) = card(server, id).await {
                let text = warnings(&card);
                if needles.iter().all(|needle| text.contains(needle)) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no warning with {needles:?} on {id} within {WAIT:?}"))
}

async fn log_text(server: &Isolated, id: &str) -> serde_json::Value {
    let log = post_json(
        server.addr,
        "/api/log",
        &format!(r#"{{"project":"{id}"}}"#),
        &server.token,
    )
    .await;
    assert!(!log.body.contains(SECRET), "the log leaked: {}", log.body);
    assert_eq!(log.status, 200, "{}", log.body);
    json(&log.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_linked_to_dev_zero_does_not_stop_the_server() {
    let (_temp, root) = tree();
    let dir = root.join("zero");
    write_project(&dir, PLAN);
    symlink("/dev/zero", dir.join(".ralph/ralph.log")).expect("link");
    let server = start_isolated(root).await;
    answers(&server).await;
    let text = wait_for_warning(&server, &project_id(&dir), &["ralph.log", "symbolic link"]).await;
    assert!(text.contains("cannot read ralph.log"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_log_at_start_up_does_not_stop_the_server() {
    let (_temp, root) = tree();
    let dir = root.join("fifo");
    write_project(&dir, PLAN);
    mkfifo(&dir.join(".ralph/ralph.log"));
    mkfifo(&dir.join(".ralph/pending-notification.txt"));
    let server = start_isolated(root).await;
    answers(&server).await;
    wait_for_warning(
        &server,
        &project_id(&dir),
        &["ralph.log is a FIFO", "pending-notification.txt is a FIFO"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_appearing_while_running_stops_nothing() {
    let (_temp, root) = tree();
    let dir = root.join("later");
    write_project(&dir, PLAN);
    let log = dir.join(".ralph/ralph.log");
    append(&log, "=== Iteration 1/3 ===\nworking\n");
    let other = root.join("other");
    write_project(&other, PLAN);
    let server = start_isolated(root).await;
    answers(&server).await;

    fs::remove_file(&log).expect("remove log");
    mkfifo(&log);
    mkfifo(&dir.join(".ralph/iterations.jsonl"));
    wait_for_warning(&server, &project_id(&dir), &["ralph.log is a FIFO"]).await;
    answers(&server).await;
    // The other project still follows its files.
    append(&other.join(".ralph/ralph.log"), "=== Iteration 2/5 ===\n");
    timeout(WAIT, async {
        while card(&server, &project_id(&other))
            .await
            .is_none_or(|card| card["iteration"] != 2)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the other project is still updated");
}

/// Writes a sparse file of `size` bytes (a few KB on disk) whose end is `tail`.
fn sparse(path: &Path, size: u64, tail: &str) {
    let mut file = fs::File::create(path).expect("create");
    file.set_len(size).expect("set_len");
    file.seek(SeekFrom::Start(size)).expect("seek");
    file.write_all(tail.as_bytes()).expect("write tail");
}

const TWENTY_GB: u64 = 20 * 1024 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_20_gb_log_does_not_delay_start_up() {
    let (_temp, root) = tree();
    let dir = root.join("sparse");
    write_project(&dir, PLAN);
    sparse(
        &dir.join(".ralph/ralph.log"),
        TWENTY_GB,
        "\n=== Iteration 3/9 ===\nworking\n",
    );
    let server = start_isolated(root).await;
    answers(&server).await;
    let id = project_id(&dir);
    let card = card(&server, &id).await.expect("the card is there");
    // The end of the log was read: the current iteration is known.
    assert_eq!(card["iteration"], 3, "{card}");
    assert!(warnings(&card).contains("too big"), "{card}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_with_a_sparse_20_gb_log_appearing_while_running_stalls_nothing() {
    let (_temp, root) = tree();
    write_project(&root.join("first"), PLAN);
    let server = start_isolated(root.clone()).await;
    answers(&server).await;

    // Built beside the root, then moved in whole: it appears with its giant log.
    let staging = tempfile::tempdir_in(root.parent().expect("parent")).expect("staging");
    let dir = staging.path().join("giant");
    write_project(&dir, PLAN);
    sparse(
        &dir.join(".ralph/ralph.log"),
        TWENTY_GB,
        "\n=== Iteration 4/9 ===\nworking\n",
    );
    let target = root.join("giant");
    fs::rename(&dir, &target).expect("move in");
    let id = project_id(&target);
    timeout(WAIT, async {
        loop {
            // Unrelated requests keep answering meanwhile (each within the limit).
            assert_eq!(get(server.addr, "/login").await.status, 200);
            if card(&server, &id)
                .await
                .is_some_and(|card| card["iteration"] == 4)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the new project's card appears with its current iteration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_specs_link_to_outside_lists_and_serves_nothing() {
    let (_temp, root) = tree();
    let outside = root.parent().expect("parent").join(format!(
        "outside-specs-{}",
        root.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    fs::create_dir_all(&outside).expect("outside");
    fs::write(outside.join("secret.md"), SECRET).expect("secret");
    let dir = root.join("specs-link");
    write_project(&dir, PLAN);
    symlink(&outside, dir.join("specs")).expect("link");
    let id = project_id(&dir);
    let server = start_isolated(root).await;

    let files = post_json(
        server.addr,
        "/api/context_files",
        &format!(r#"{{"project":"{id}"}}"#),
        &server.token,
    )
    .await;
    assert_eq!(files.status, 200, "{}", files.body);
    assert_eq!(json(&files.body), serde_json::json!([]), "nothing listed");
    let secret = post_json(
        server.addr,
        "/api/context_file",
        &format!(r#"{{"project":"{id}","name":"specs/secret.md"}}"#),
        &server.token,
    )
    .await;
    assert!(!secret.body.contains(SECRET), "{}", secret.body);
    assert_ne!(secret.status, 200);
    wait_for_warning(&server, &id, &["specs/", "symbolic link"]).await;
    let _ = fs::remove_dir_all(&outside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_and_a_notification_linked_to_outside_files_are_refused() {
    let (_temp, root) = tree();
    let outside = tempfile::tempdir().expect("outside");
    let secret_log = outside.path().join("secret.log");
    fs::write(&secret_log, format!("=== Iteration 1/2 ===\n{SECRET}\n")).expect("secret");
    let secret_note = outside.path().join("note.txt");
    fs::write(&secret_note, format!("ERROR: {SECRET}\n")).expect("secret");
    let dir = root.join("linked-files");
    write_project(&dir, PLAN);
    symlink(&secret_log, dir.join(".ralph/ralph.log")).expect("link");
    symlink(&secret_note, dir.join(".ralph/pending-notification.txt")).expect("link");
    let id = project_id(&dir);
    let server = start_isolated(root).await;

    let log = log_text(&server, &id).await;
    assert_eq!(log["text"], "");
    let detail = post_json(
        server.addr,
        "/api/project",
        &format!(r#"{{"project":"{id}"}}"#),
        &server.token,
    )
    .await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert!(!detail.body.contains(SECRET), "{}", detail.body);
    assert_eq!(json(&detail.body)["notifications"], serde_json::json!([]));
    let page = get_signed_in(server.addr, &format!("/projects/{id}"), &server.token).await;
    assert!(!page.body.contains(SECRET), "the project page leaked");
    wait_for_warning(
        &server,
        &id,
        &[
            ".ralph/ralph.log is or goes through a symbolic link",
            ".ralph/pending-notification.txt is or goes through a symbolic link",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ralph_directory_that_is_a_link_is_not_a_project() {
    let (_temp, root) = tree();
    let outside = tempfile::tempdir().expect("outside");
    fs::create_dir_all(outside.path().join(".ralph")).expect("outside .ralph");
    fs::write(
        outside.path().join(".ralph/ralph.log"),
        format!("=== Iteration 1/2 ===\n{SECRET}\n"),
    )
    .expect("secret");
    let dir = root.join("linked-ralph");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), PLAN).expect("plan");
    symlink(outside.path().join(".ralph"), dir.join(".ralph")).expect("link");
    let real = root.join("real");
    write_project(&real, PLAN);
    let server = start_isolated(root).await;

    assert!(card(&server, &project_id(&real)).await.is_some());
    assert!(
        card(&server, &project_id(&dir)).await.is_none(),
        "a linked .ralph makes no project"
    );
    let log = post_json(
        server.addr,
        "/api/log",
        &format!(r#"{{"project":"{}"}}"#, project_id(&dir)),
        &server.token,
    )
    .await;
    assert!(!log.body.contains(SECRET), "{}", log.body);
    let page = get_signed_in(server.addr, "/", &server.token).await;
    assert!(!page.body.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_links_to_outside_files_are_refused() {
    let (_temp, root) = tree();
    // Beside the root, on the same file system (a hard link cannot cross one).
    let outside = tempfile::tempdir_in(root.parent().expect("parent")).expect("outside");
    let secret = outside.path().join("secret.log");
    fs::write(&secret, format!("=== Iteration 1/2 ===\n{SECRET}\n")).expect("secret");
    let secret_md = outside.path().join("secret.md");
    fs::write(&secret_md, SECRET).expect("secret");
    let dir = root.join("hard");
    write_project(&dir, PLAN);
    fs::hard_link(&secret, dir.join(".ralph/ralph.log")).expect("hard link");
    fs::hard_link(&secret_md, dir.join("AGENTS.md")).expect("hard link");
    let id = project_id(&dir);
    let server = start_isolated(root).await;

    assert_eq!(log_text(&server, &id).await["text"], "");
    let agents = post_json(
        server.addr,
        "/api/context_file",
        &format!(r#"{{"project":"{id}","name":"AGENTS.md"}}"#),
        &server.token,
    )
    .await;
    assert!(!agents.body.contains(SECRET), "{}", agents.body);
    assert_ne!(agents.status, 200);
    let files = post_json(
        server.addr,
        "/api/context_files",
        &format!(r#"{{"project":"{id}"}}"#),
        &server.token,
    )
    .await;
    assert_eq!(json(&files.body), serde_json::json!([]));
    wait_for_warning(&server, &id, &["ralph.log has 2 hard links"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_racing_symlink_swap_never_serves_the_outside_file() {
    let (_temp, root) = tree();
    let outside = tempfile::tempdir().expect("outside");
    let secret = outside.path().join("secret.md");
    fs::write(&secret, SECRET).expect("secret");
    let dir = root.join("race");
    write_project(&dir, PLAN);
    let agents = dir.join("AGENTS.md");
    fs::write(&agents, "# harmless\n").expect("agents");
    let id = project_id(&dir);
    let server = start_isolated(root).await;

    // Swaps AGENTS.md between a regular file and a link to the secret, atomically (rename), as
    // fast as it can, until told to stop.
    let running = Arc::new(AtomicBool::new(true));
    let swapper = {
        let running = running.clone();
        let dir = dir.clone();
        std::thread::spawn(move || {
            let (file_tmp, link_tmp) = (dir.join(".swap-file"), dir.join(".swap-link"));
            while running.load(Ordering::Relaxed) {
                let _ = fs::remove_file(&link_tmp);
                if symlink(&secret, &link_tmp).is_ok() {
                    let _ = fs::rename(&link_tmp, &agents);
                }
                if fs::write(&file_tmp, "# harmless\n").is_ok() {
                    let _ = fs::rename(&file_tmp, &agents);
                }
            }
        })
    };

    let form = format!(r#"{{"project":"{id}","name":"AGENTS.md"}}"#);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, token, form) = (server.addr, server.token.clone(), form.clone());
            tokio::spawn(async move {
                let mut served = 0;
                for _ in 0..500 {
                    let response = post_json(addr, "/api/context_file", &form, &token).await;
                    assert!(
                        !response.body.contains(SECRET),
                        "the outside file was served: {}",
                        response.body
                    );
                    if response.status == 200 {
                        served += 1;
                    }
                }
                served
            })
        })
        .collect();
    let mut served = 0;
    for client in clients {
        served += client.await.expect("client task");
    }
    running.store(false, Ordering::Relaxed);
    swapper.join().expect("swapper");
    assert!(served > 0, "the regular file was served at times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_over_8_mib_is_served_cut_not_empty() {
    let (_temp, root) = tree();
    let dir = root.join("long-line");
    write_project(&dir, PLAN);
    let huge = "x".repeat(9 * 1024 * 1024);
    append(
        &dir.join(".ralph/ralph.log"),
        &format!("=== Iteration 1/2 ===\n{huge}\n"),
    );
    let id = project_id(&dir);
    let server = start_isolated(root).await;

    let log = log_text(&server, &id).await;
    let text = log["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with(&"x".repeat(1000)),
        "the line, from its start"
    );
    assert!(text.contains("[line cut: "), "a visible cut marker");
    assert!(
        text.len() < 1024 * 1024,
        "cut at the line limit: {}",
        text.len()
    );

    let iteration = post_json(
        server.addr,
        "/api/iteration_log",
        &format!(r#"{{"project":"{id}","run":1,"iteration":1}}"#),
        &server.token,
    )
    .await;
    assert_eq!(iteration.status, 200);
    let iteration = json(&iteration.body);
    let text = iteration["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("=== Iteration 1/2 ===\nxxxx"), "the slice");
    assert!(text.contains("[line cut: "), "the same cut");
    assert!(text.len() < 1024 * 1024, "cut: {}", text.len());
}
