//! The loopwatch server under test: started pinned to its own CPU, signed in to, sampled through
//! `/proc`, and always stopped (also when the benchmark fails or is interrupted).

use std::{
    fs,
    io::{BufRead, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::{
    http::{self, Request},
    procfs::{self, Pid},
    Error,
};

/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The CPUs the server and the load generator run on (`None`: not pinned).
#[derive(Clone, Copy, Debug)]
pub struct Cpus {
    pub server: Option<usize>,
    pub load: Option<usize>,
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// A session token (JWT) obtained through the sign-in link.
    pub jwt: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts `loopwatch serve` on a free port with a fresh data directory, and signs in.
    pub async fn start(
        binary: &Path,
        roots: &[PathBuf],
        work: &Path,
        name: &str,
        cpus: Cpus,
    ) -> Result<Server, Error> {
        let data_dir = work.join(format!("{name}-data"));
        let _ = fs::remove_dir_all(&data_dir);
        let log = work.join(format!("{name}-server.log"));
        let log_file = fs::File::create(&log)
            .map_err(|e| Error::msg(format!("cannot create {}: {e}", log.display())))?;
        let mut command = Command::new(binary);
        command.arg("serve");
        for root in roots {
            command.arg("--projects").arg(root);
        }
        command
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", "info")
            .env_remove("LOOPWATCH_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        pin_child(&mut command, cpus.server);
        let mut child = command
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {}: {e}", binary.display())))?;
        let pid = child.id();
        let Some(stdout) = child.stdout.take() else {
            kill(&mut child);
            return Err(Error::msg("server stdout is not captured"));
        };
        // A thread reads stdout for the whole run so the pipe never fills.
        let (lines, listening) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let mut server = Server {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            jwt: String::new(),
            log,
        };
        let started = Instant::now();
        server.addr = loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(Error::msg(format!(
                    "the server exited ({status}) before listening; its log:\n{}",
                    server.log_tail()
                )));
            }
            match listening.try_recv() {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("loopwatch listening on http://") {
                        break addr.trim().parse().map_err(|_| {
                            Error::msg(format!("cannot read the server address in {line:?}"))
                        })?;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {
                    if started.elapsed() > START_TIMEOUT {
                        return Err(Error::msg(format!(
                            "the server printed no address within {START_TIMEOUT:?}; its log:\n{}",
                            server.log_tail()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Err(Error::msg(format!(
                        "the server closed its output before listening; its log:\n{}",
                        server.log_tail()
                    )));
                }
            }
        };
        let credential = fs::read_to_string(data_dir.join("login.token"))
            .map_err(|e| Error::msg(format!("cannot read the login credential: {e}")))?;
        server.jwt = sign_in(server.addr, credential.trim()).await?;
        Ok(server)
    }

    pub fn cpu(&self) -> Result<Duration, Error> {
        procfs::cpu_time(Pid::Other(self.pid)).map_err(|e| self.gone(e))
    }

    pub fn rss_kib(&self) -> Result<u64, Error> {
        procfs::status_kib(self.pid, "VmRSS").map_err(|e| self.gone(e))
    }

    fn gone(&self, error: std::io::Error) -> Error {
        Error::msg(format!(
            "cannot read /proc/{} (did the server die?): {error}; its log:\n{}",
            self.pid,
            self.log_tail()
        ))
    }

    /// The Prometheus counters of `/metrics`.
    pub async fn metrics(&self) -> Result<Metrics, Error> {
        let response = http::send(
            self.addr,
            Request::get("/metrics").session(&self.jwt),
            HTTP_TIMEOUT,
        )
        .await?;
        if response.status != 200 {
            return Err(Error::msg(format!("/metrics answered {}", response.status)));
        }
        Ok(Metrics::parse(&response.text()))
    }

    /// Waits until the server counts `open` WebSocket connections (after clients came or went).
    pub async fn wait_for_connections(&self, open: i64, limit: Duration) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let now = self.metrics().await?.get("loopwatch_connections_open") as i64;
            if now == open {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(Error::msg(format!(
                    "the server still counts {now} open sockets after {limit:?} (expected {open})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The projects the server knows: (id, path).
    pub async fn projects(&self) -> Result<Vec<(String, String)>, Error> {
        let response = http::send(
            self.addr,
            Request::post_json("/api/projects", b"{}").bearer(&self.jwt),
            HTTP_TIMEOUT,
        )
        .await?;
        if response.status != 200 {
            return Err(Error::msg(format!(
                "POST /api/projects answered {}: {}",
                response.status,
                response.text()
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|e| Error::msg(format!("POST /api/projects: not JSON: {e}")))?;
        let list = value["projects"]
            .as_array()
            .ok_or_else(|| Error::msg("POST /api/projects: no \"projects\" array"))?;
        Ok(list
            .iter()
            .filter_map(|p| Some((p["id"].as_str()?.to_owned(), p["path"].as_str()?.to_owned())))
            .collect())
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it has not exited within 8 s.
    pub async fn stop(mut self) {
        terminate(&mut self.child).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Signs in through the link the server prints (`GET /api/login?token=...`) and returns the
/// session token from the `loopwatch_session_...` cookie (its suffix is per instance).
async fn sign_in(addr: SocketAddr, credential: &str) -> Result<String, Error> {
    let path = format!("/api/login?token={credential}");
    let response = http::send(addr, Request::get(&path), HTTP_TIMEOUT).await?;
    let token = response
        .headers_named("set-cookie")
        .find_map(|cookie| {
            let (name, value) = cookie.split(';').next()?.split_once('=')?;
            name.starts_with("loopwatch_session").then_some(())?;
            let token = value.trim();
            (!token.is_empty()).then(|| token.to_owned())
        })
        .ok_or_else(|| {
            Error::msg(format!(
                "sign-in answered {} without a loopwatch_session cookie",
                response.status
            ))
        });
    token
}

pub struct Metrics(Vec<(String, f64)>);

impl Metrics {
    fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| {
                    let (name, value) = line.rsplit_once(' ')?;
                    Some((name.trim().to_owned(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or(0.0, |(_, value)| *value)
    }
}

/// Pins a child to one CPU and makes sure it dies with the benchmark. It gets its own process
/// group, so a Ctrl-C in the terminal reaches only the benchmark, which then stops it in order.
pub fn pin_child(command: &mut Command, cpu: Option<usize>) {
    command.process_group(0);
    // SAFETY: only async-signal-safe calls (sched_setaffinity, prctl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(cpu) = cpu {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The CPUs this process may run on (the first one is the server's, the second the load's).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a zeroed CPU set of the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|cpu| libc::CPU_ISSET(*cpu, &set))
            .collect()
    }
}

/// Pins the calling thread (and every thread it creates later) to one CPU.
pub fn pin_self(cpu: usize) -> Result<(), Error> {
    // SAFETY: plain system call on a zeroed, then filled, CPU set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(Error::msg(format!(
                "cannot pin the load generator to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

pub fn kill(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub async fn terminate(child: &mut Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(child);
}
