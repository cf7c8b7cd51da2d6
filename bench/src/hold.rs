//! `loopwatch-bench hold`: a child process that opens many idle, authenticated, subscribed
//! sockets and keeps them open (answering pings) until its stdin closes. The file-descriptor
//! limit caps one process at about 15,000 sockets, so large counts are split over several.
//!
//! Arguments: `--addr HOST:PORT --count N --first-slot S --concurrency C`; the session token and
//! the subscribe frame come in the environment (`LOOPWATCH_BENCH_TOKEN`,
//! `LOOPWATCH_BENCH_TOPICS`, comma-separated) so they never show in `ps`.
//! Prints `ready OK FAILED MILLISECONDS [first error]` once every attempt has finished.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::{
    client::{self, Options, Target, PER_ADDRESS},
    server::{kill, pin_child},
    Error,
};

const TOKEN_ENV: &str = "LOOPWATCH_BENCH_TOKEN";
const TOPICS_ENV: &str = "LOOPWATCH_BENCH_TOPICS";

pub fn main(args: &[String]) -> Result<(), Error> {
    let mut addr = None;
    let mut count = 0u32;
    let mut first_slot = 0u32;
    let mut concurrency = 64usize;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter
            .next()
            .ok_or_else(|| Error::msg(format!("{flag} needs a value")))?;
        let bad = |_| Error::msg(format!("{flag} {value}: not a valid value"));
        match flag.as_str() {
            "--addr" => {
                addr = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|_| Error::msg("bad --addr"))?,
                )
            }
            "--count" => count = value.parse().map_err(bad)?,
            "--first-slot" => first_slot = value.parse().map_err(bad)?,
            "--concurrency" => concurrency = value.parse().map_err(bad)?,
            other => return Err(Error::msg(format!("hold: unknown argument {other}"))),
        }
    }
    let addr = addr.ok_or_else(|| Error::msg("hold: --addr is required"))?;
    let jwt = std::env::var(TOKEN_ENV)
        .map_err(|_| Error::msg(format!("hold: {TOKEN_ENV} is not set")))?;
    let topics: Vec<String> = std::env::var(TOPICS_ENV)
        .map_err(|_| Error::msg(format!("hold: {TOPICS_ENV} is not set")))?
        .split(',')
        .map(str::to_owned)
        .collect();
    let target = Target::new(addr, &jwt, &topics);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(hold(target, count, first_slot, concurrency.max(1)))
}

async fn hold(
    target: Target,
    count: u32,
    first_slot: u32,
    concurrency: usize,
) -> Result<(), Error> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency));
    let (results, mut outcomes) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    for i in 0..count {
        let target = target.clone();
        let gate = gate.clone();
        let results = results.clone();
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let source = client::source_ip(first_slot + i / PER_ADDRESS);
            let options = Options {
                receive_buffer: None,
                read_chunk: 4096,
            };
            match client::connect(&target, source, options, Duration::from_secs(60)).await {
                Ok(mut ws) => {
                    drop(permit);
                    let _ = results.send(Ok(()));
                    // Reading answers the server's pings; nothing else is expected.
                    while let Some(Ok(_)) = ws.next().await {}
                }
                Err(error) => {
                    let _ = results.send(Err(error.to_string()));
                }
            }
        });
    }
    drop(results);
    let (mut ok, mut failed, mut first_error) = (0u32, 0u32, None);
    while ok + failed < count {
        match outcomes.recv().await {
            Some(Ok(())) => ok += 1,
            Some(Err(error)) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
            None => break,
        }
    }
    println!(
        "ready {ok} {failed} {} {}",
        started.elapsed().as_millis(),
        first_error.unwrap_or_default().replace('\n', " ")
    );
    let _ = std::io::stdout().flush();
    // Hold until the parent closes stdin (or dies).
    let (closed, wait) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = wait.await;
    Ok(())
}

/// The parent's handle on one `hold` child.
pub struct HoldChild {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

/// What a child reported.
#[derive(Debug)]
pub struct Ready {
    pub ok: u32,
    pub failed: u32,
    pub millis: u64,
    pub first_error: String,
}

impl HoldChild {
    pub fn spawn(
        target: &Target,
        topics: &[String],
        count: u32,
        first_slot: u32,
        cpu: Option<usize>,
    ) -> Result<Self, Error> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(Path::new(&exe));
        command
            .arg("hold")
            .arg("--addr")
            .arg(target.addr.to_string())
            .arg("--count")
            .arg(count.to_string())
            .arg("--first-slot")
            .arg(first_slot.to_string())
            .env(TOKEN_ENV, target.jwt.as_ref())
            .env(TOPICS_ENV, topics.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        pin_child(&mut command, cpu);
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            kill(&mut child);
            return Err(Error::msg("hold child: stdout not captured"));
        };
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    /// Waits for the child's `ready` line.
    pub async fn ready(&mut self, limit: Duration) -> Result<Ready, Error> {
        let started = Instant::now();
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    let Some(rest) = line.strip_prefix("ready ") else {
                        continue;
                    };
                    let mut parts = rest.splitn(4, ' ');
                    let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok());
                    let (Some(ok), Some(failed), Some(millis)) = (number(), number(), number())
                    else {
                        return Err(Error::msg(format!("hold child: unreadable line {line:?}")));
                    };
                    let first_error = rest.splitn(4, ' ').nth(3).unwrap_or_default().to_owned();
                    return Ok(Ready {
                        ok: ok as u32,
                        failed: failed as u32,
                        millis,
                        first_error,
                    });
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(Error::msg(format!(
                        "hold child exited before it was ready ({:?})",
                        self.child.try_wait()
                    )))
                }
                Err(mpsc::TryRecvError::Empty) => {
                    if started.elapsed() > limit {
                        return Err(Error::msg(format!("hold child not ready within {limit:?}")));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Closes its stdin (it then exits, closing its sockets) and waits up to 10 s.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        kill(&mut self.child);
    }
}

impl Drop for HoldChild {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
