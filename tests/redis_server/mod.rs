//! A real `redis-server` for the engine tests: on a free loopback port, persistence off, in a
//! temporary directory; stopped when dropped. Tests skip (with a message) only when
//! `redis-server` is not installed (`scripts/setup.sh` installs it).
#![allow(dead_code)] // each test file uses a different subset

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a started server may take to answer PING.
const READY: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    /// Extra `redis-server` arguments.
    args: Vec<String>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A new, empty server; `None` (after saying why) when `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`RedisServer::start`] with extra `redis-server` arguments.
    pub fn start_with(args: &[&str]) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("SKIPPED: redis-server is not installed (scripts/setup.sh installs it)");
            return None;
        }
        let port = free_port();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = Self {
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            port,
            dir,
        };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: whatever it held is gone, persistence is off).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, empty, on the same port, and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + READY;
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {READY:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
