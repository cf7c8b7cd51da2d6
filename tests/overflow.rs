//! When the kernel's event queue overflows (the server was stopped while files changed), the
//! server re-reads everything and ends in the right state. The real binary is run and frozen
//! with SIGSTOP while more events than the queue holds (16,384 by default) pile up.
#![cfg(all(feature = "ssr", target_os = "linux"))]

use std::{
    fs,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::time::{interval, timeout};

mod common;
use common::{get, write_project};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_queue_overflow_ends_in_a_full_rescan() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let dir = root.join("theta");
    write_project(&dir, "- [ ] 1: a\n");
    let data = root.join(".data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopwatch"))
        .args(["serve", "--addr", "127.0.0.1:0", "--projects"])
        .arg(&root)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let pid = server.0.id();
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut link) = (None, None);
    while addr.is_none() || link.is_none() {
        let line = lines.next().expect("server output").expect("utf-8");
        if let Some(rest) = line.strip_prefix("loopwatch listening on http://") {
            addr = rest.parse::<std::net::SocketAddr>().ok();
        }
        if let Some((_, url)) = line.split_once(": http://") {
            link = url.split_once('/').map(|(_, path)| format!("/{path}"));
        }
    }
    let (addr, link) = (addr.expect("address"), link.expect("sign-in link"));
    let signed_in = get(addr, &link).await;
    let (name, cookie) = signed_in
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|v| v.split(';').next())
        .and_then(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .expect("session cookie");
    common::set_cookie_name(addr, &name);

    // Frozen: the kernel queues events for it until the queue overflows.
    signal(pid, "STOP");
    let ralph = dir.join(".ralph");
    for n in 0..9000 {
        let path = ralph.join(format!("noise-{n}"));
        fs::write(&path, b"x").expect("noise");
        fs::remove_file(&path).expect("noise");
    }
    fs::write(ralph.join("pause"), "").expect("pause");
    signal(pid, "CONT");

    // The pause must show, and the metrics must say events were lost.
    let mut poll = interval(Duration::from_millis(50));
    let paused = timeout(Duration::from_secs(20), async {
        loop {
            poll.tick().await;
            let list = common::post_json(addr, "/api/projects", "{}", &cookie).await;
            if list.body.contains("\"status\":\"paused\"") {
                return;
            }
        }
    })
    .await;
    assert!(
        paused.is_ok(),
        "the rescan after the overflow found the pause"
    );
    let metrics = common::get_signed_in(addr, "/metrics", &cookie).await.body;
    let lost = metrics
        .lines()
        .find_map(|l| l.strip_prefix("loopwatch_watcher_errors_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(lost.is_some_and(|n| n >= 1), "overflow counted: {metrics}");
}
