//! The orchestrator: options, the servers' lifecycle, clients, measured passes, medians, the
//! table. The scenarios themselves are in `scenarios.rs`.

mod scenarios;

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::{sync::watch, time::sleep};

use crate::{
    client::{self, Expect, Options as ClientOptions, Scanner, Tally, Target, Ws, PER_ADDRESS},
    path,
    procfs::{self, Pid},
    report::Report,
    server::{self, Cpus, Server},
    writer::{self, Writer},
    Error,
};

/// Socket options of the measuring clients.
const READER: ClientOptions = ClientOptions {
    receive_buffer: None,
    read_chunk: 64 * 1024,
};

const SCENARIOS: &[&str] = &[
    "latency", "burst", "slow", "fanout", "idle", "tail", "ssr", "wasm",
];

pub struct Options {
    pub smoke: bool,
    pub runs: Option<usize>,
    pub server: PathBuf,
    pub wasm: PathBuf,
    pub out: PathBuf,
    pub work: Option<PathBuf>,
    pub keep: bool,
    pub only: Option<Vec<String>>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, Error> {
        let mut options = Options {
            smoke: false,
            runs: None,
            server: PathBuf::from("target/release/loopwatch"),
            wasm: PathBuf::from("target/site/pkg/loopwatch.wasm"),
            out: PathBuf::from("target/bench/bench.json"),
            work: None,
            keep: false,
            only: None,
        };
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            match flag.as_str() {
                "--smoke" => options.smoke = true,
                "--keep" => options.keep = true,
                "--runs" => {
                    let value = iter
                        .next()
                        .ok_or_else(|| Error::msg("--runs needs a value"))?;
                    let runs: usize = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=50).contains(n))
                        .ok_or_else(|| Error::msg("--runs must be a number from 1 to 50"))?;
                    options.runs = Some(runs);
                }
                "--server" => options.server = path(iter.next(), flag)?,
                "--wasm" => options.wasm = path(iter.next(), flag)?,
                "--out" => options.out = path(iter.next(), flag)?,
                "--work-dir" => options.work = Some(path(iter.next(), flag)?),
                "--only" => {
                    let value = iter
                        .next()
                        .ok_or_else(|| Error::msg("--only needs a value"))?;
                    let names: Vec<String> =
                        value.split(',').map(|s| s.trim().to_owned()).collect();
                    if let Some(bad) = names.iter().find(|n| !SCENARIOS.contains(&n.as_str())) {
                        return Err(Error::msg(format!(
                            "unknown scenario {bad:?}; known: {}",
                            SCENARIOS.join(",")
                        )));
                    }
                    options.only = Some(names);
                }
                other => return Err(Error::msg(format!("unknown argument {other:?}"))),
            }
        }
        Ok(options)
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == scenario))
    }
}

/// The sizes of every scenario: the full benchmark or the smoke test.
struct Sizes {
    runs: usize,
    latency_clients: Vec<usize>,
    latency_seconds: f64,
    line_rate: f64,
    burst_lines: u64,
    burst_clients: usize,
    slow_readers: usize,
    slow_appends: u64,
    slow_lines_per_append: u64,
    slow_spacing: Duration,
    slow_receive_buffer: u32,
    fanout_clients: usize,
    fanout_projects: usize,
    fanout_rounds: u64,
    fanout_spacing: Duration,
    idle_sockets: usize,
    per_process: usize,
    big_log_bytes: u64,
    ssr_projects: usize,
    ssr_iterations: u64,
    ssr_requests: usize,
    ssr_rate: f64,
}

impl Sizes {
    fn new(smoke: bool, runs: Option<usize>) -> Self {
        if smoke {
            Sizes {
                runs: runs.unwrap_or(1),
                latency_clients: vec![1, 5],
                latency_seconds: 1.5,
                line_rate: 10.0,
                burst_lines: 500,
                burst_clients: 5,
                slow_readers: 5,
                slow_appends: 100,
                slow_lines_per_append: 5,
                slow_spacing: Duration::from_millis(2),
                slow_receive_buffer: 8 * 1024,
                fanout_clients: 5,
                fanout_projects: 2,
                fanout_rounds: 200,
                fanout_spacing: Duration::from_millis(2),
                idle_sockets: 100,
                per_process: 60,
                big_log_bytes: 8 << 20,
                ssr_projects: 5,
                ssr_iterations: 50,
                ssr_requests: 10,
                ssr_rate: 20.0,
            }
        } else {
            Sizes {
                runs: runs.unwrap_or(3),
                latency_clients: vec![1, 100, 1000],
                latency_seconds: 10.0,
                line_rate: 10.0,
                burst_lines: 10_000,
                burst_clients: 100,
                slow_readers: 100,
                slow_appends: 3_000,
                slow_lines_per_append: 20,
                slow_spacing: Duration::from_millis(3),
                slow_receive_buffer: 8 * 1024,
                fanout_clients: 100,
                fanout_projects: 16,
                fanout_rounds: 2_500,
                fanout_spacing: Duration::from_millis(2),
                idle_sockets: 10_000,
                per_process: 15_000,
                big_log_bytes: 1 << 30,
                ssr_projects: 50,
                ssr_iterations: 5_000,
                ssr_requests: 200,
                ssr_rate: 20.0,
            }
        }
    }
}

pub fn main(options: Options) -> Result<(), Error> {
    let (model, cpus) = procfs::machine();
    let allowed = server::allowed_cpus();
    let pinning = match allowed.as_slice() {
        [server, load, ..] => Cpus {
            server: Some(*server),
            load: Some(*load),
        },
        _ => {
            eprintln!(
                "warning: only {} CPU available; server and load share it (numbers will be worse)",
                allowed.len()
            );
            Cpus {
                server: None,
                load: None,
            }
        }
    };
    if !options.server.is_file() {
        return Err(Error::msg(format!(
            "no server binary at {} (build it with `cargo leptos build --release --precompress`, or pass --server)",
            options.server.display()
        )));
    }
    // Before the runtime exists: every thread created later inherits the CPU.
    if let Some(cpu) = pinning.load {
        server::pin_self(cpu)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::select! {
            result = bench(options, pinning, model, cpus) => result,
            _ = tokio::signal::ctrl_c() => Err(Error::msg("interrupted; servers and clients stopped")),
        }
    })
}

/// The temporary directory of one benchmark run, removed at the end unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("work directory kept: {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Fresh source-address slots, so a scenario never waits for the previous one's sockets to be
/// released by the server.
#[derive(Default)]
struct Slots(u32);

impl Slots {
    fn take(&mut self, sockets: usize) -> u32 {
        let first = self.0;
        self.0 += (sockets as u32).div_ceil(PER_ADDRESS);
        first
    }
}

struct Bench {
    sizes: Sizes,
    binary: PathBuf,
    cpus: Cpus,
    work: PathBuf,
    scanner: Arc<Scanner>,
    slots: Slots,
    run_id: u32,
    report: Report,
    idle_cpu_pct: Option<f64>,
}

async fn bench(options: Options, cpus: Cpus, model: String, cpu_count: usize) -> Result<(), Error> {
    let started = Instant::now();
    let load_before = procfs::load_average();
    if load_before.is_some_and(|l| l > 1.5) {
        eprintln!(
            "warning: load average {:.1} before the start: other work on this machine will disturb the numbers",
            load_before.unwrap_or(0.0)
        );
    }
    let sizes = Sizes::new(options.smoke, options.runs);
    let work_path = match &options.work {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("loopwatch-bench-{}", std::process::id())),
    };
    if work_path.exists() {
        return Err(Error::msg(format!(
            "work directory {} already exists; remove it or pick another",
            work_path.display()
        )));
    }
    fs::create_dir_all(&work_path)?;
    let work = WorkDir {
        path: work_path.clone(),
        keep: options.keep,
    };
    let binary = options.server.canonicalize()?;
    let mode = if options.smoke { "smoke" } else { "full" };
    eprintln!(
        "loopwatch benchmark ({mode}, {} run(s) per scenario): server {} on CPU {}, load on CPU {}; {model}",
        sizes.runs,
        binary.display(),
        cpus.server.map_or("any".into(), |c| c.to_string()),
        cpus.load.map_or("any".into(), |c| c.to_string()),
    );
    let mut bench = Bench {
        sizes,
        binary,
        cpus,
        work: work.path.clone(),
        scanner: Arc::new(Scanner::new(Instant::now())),
        slots: Slots::default(),
        run_id: 0,
        report: Report::default(),
        idle_cpu_pct: None,
    };

    let live: Vec<&str> = ["latency", "burst", "slow", "fanout"]
        .into_iter()
        .filter(|s| options.wants(s))
        .collect();
    if !live.is_empty() {
        let outcome = bench.live_scenarios(&live).await;
        bench.record("live", outcome);
    }
    for name in ["idle", "tail", "ssr"] {
        if options.wants(name) {
            let outcome = match name {
                "idle" => bench.idle().await,
                "tail" => bench.tail().await,
                _ => bench.ssr().await,
            };
            bench.record(name, outcome);
        }
    }
    if options.wants("wasm") {
        let outcome = bench.wasm(&options.wasm);
        bench.record("wasm", outcome);
    }

    let elapsed = started.elapsed();
    let date = Command::new("date")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let memory = procfs::memory_gib().map_or(String::new(), |g| format!(", {g:.0} GiB"));
    let machine = format!("{cpu_count} cores ({model}){memory}");
    let built = binary_age(&bench.binary).unwrap_or_default();
    let meta = json!({
        "date": date,
        "mode": mode,
        "runs_per_scenario": bench.sizes.runs,
        "machine": machine,
        "cpu_model": model,
        "cpus": cpu_count,
        "server_cpu": cpus.server,
        "load_cpu": cpus.load,
        "server_binary": bench.binary.display().to_string(),
        "server_binary_modified": binary_age(&bench.binary),
        "commit": commit,
        "seconds": elapsed.as_secs_f64(),
        "load_average_before": load_before,
        "load_average_after": procfs::load_average(),
    });
    bench.report.write_json(&options.out, meta)?;
    println!();
    println!(
        "loopwatch benchmark, {mode}: {date}; {machine}; commit {commit} (server binary built {built}); server pinned to CPU {}, load to CPU {}; median of {} run(s); load average {} before, {} after",
        cpus.server.map_or("-".into(), |c| c.to_string()),
        cpus.load.map_or("-".into(), |c| c.to_string()),
        bench.sizes.runs,
        load_before.map_or("?".into(), |l| format!("{l:.2}")),
        procfs::load_average().map_or("?".into(), |l| format!("{l:.2}")),
    );
    println!();
    print!("{}", bench.report.table());
    println!();
    println!(
        "raw figures: {}; took {:.0} s",
        options.out.display(),
        elapsed.as_secs_f64()
    );
    drop(work);
    if bench.report.failures.is_empty() {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "{} scenario group(s) failed:\n  {}",
            bench.report.failures.len(),
            bench.report.failures.join("\n  ")
        )))
    }
}

/// Everything one measured pass produced.
struct Pass {
    tallies: Vec<Tally>,
    stalled: Option<Tally>,
    /// Write time of the first line (ns since the scanner's base).
    first_write_ns: u64,
    server_cpu: Duration,
    load_cpu: Duration,
    wall: Duration,
    lagged: f64,
    resyncs: f64,
}

/// How the writer loads the project during a pass.
#[derive(Clone, Copy)]
enum Load {
    /// One line per write at a fixed rate, a JSONL row every `row_every` lines.
    Paced {
        lines: u64,
        per_second: f64,
        row_every: u64,
    },
    /// All lines in one write.
    Burst { lines: u64 },
    /// `appends` writes of `per_append` lines, `spacing` apart.
    Spaced {
        appends: u64,
        per_append: u64,
        spacing: Duration,
    },
    /// `rounds` rounds, `spacing` apart, of one line to each of `projects` fan-out projects.
    Fan {
        rounds: u64,
        projects: u64,
        spacing: Duration,
    },
}

impl Load {
    fn expect(self, run: u32) -> Expect {
        let (lines, rows) = match self {
            Load::Paced {
                lines, row_every, ..
            } => (lines, writer::rows_for(lines, row_every)),
            Load::Burst { lines } => (lines, 0),
            Load::Spaced {
                appends,
                per_append,
                ..
            } => (appends * per_append, 0),
            Load::Fan {
                rounds, projects, ..
            } => (rounds * projects, 0),
        };
        Expect { run, lines, rows }
    }

    async fn write(self, writer: &mut Writer, run: u32) -> std::io::Result<u64> {
        match self {
            Load::Paced {
                lines,
                per_second,
                row_every,
            } => {
                let first = writer.scanner_now();
                writer.paced(run, lines, per_second, row_every).await?;
                Ok(first)
            }
            Load::Burst { lines } => writer.lines(run, 0..lines),
            Load::Spaced {
                appends,
                per_append,
                spacing,
            } => {
                let start = tokio::time::Instant::now();
                let mut first = 0;
                for n in 0..appends {
                    tokio::time::sleep_until(start + spacing * n as u32).await;
                    let at = writer.lines(run, n * per_append..(n + 1) * per_append)?;
                    if n == 0 {
                        first = at;
                    }
                }
                Ok(first)
            }
            Load::Fan {
                rounds, spacing, ..
            } => {
                let start = tokio::time::Instant::now();
                let mut first = 0;
                for n in 0..rounds {
                    tokio::time::sleep_until(start + spacing * n as u32).await;
                    let at = writer.round(run, n)?;
                    if n == 0 {
                        first = at;
                    }
                }
                Ok(first)
            }
        }
    }
}

/// The project the writer appends to, and the server watching it.
struct Live {
    server: Server,
    writer: Writer,
    target: Target,
    /// Subscribed to the logs of every fan-out project.
    fan_target: Target,
}

impl Bench {
    fn record(&mut self, name: &str, outcome: Result<(), Error>) {
        if let Err(error) = outcome {
            eprintln!("!!! {name}: {error}");
            self.report.failures.push(format!("{name}: {error}"));
            self.report
                .row(format!("{name} scenario"), "FAILED", error.to_string());
        }
    }

    fn next_run(&mut self) -> u32 {
        self.run_id += 1;
        self.run_id
    }

    async fn connect_many(
        &mut self,
        target: &Target,
        sockets: usize,
        options: ClientOptions,
    ) -> Result<Vec<Ws>, Error> {
        let first = self.slots.take(sockets);
        let gate = Arc::new(tokio::sync::Semaphore::new(64));
        let handles: Vec<_> = (0..sockets)
            .map(|i| {
                let (target, gate) = (target.clone(), gate.clone());
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let source = client::source_ip(first + i as u32 / PER_ADDRESS);
                    client::connect(&target, source, options, Duration::from_secs(60)).await
                })
            })
            .collect();
        let mut connected = Vec::with_capacity(sockets);
        let mut first_error = None;
        for handle in handles {
            match handle.await {
                Ok(Ok(ws)) => connected.push(ws),
                Ok(Err(error)) => {
                    first_error.get_or_insert(error.to_string());
                }
                Err(error) => {
                    first_error.get_or_insert(error.to_string());
                }
            }
        }
        match first_error {
            None => Ok(connected),
            Some(error) => Err(Error::msg(format!(
                "{} of {sockets} clients could not connect; first error: {error}",
                sockets - connected.len()
            ))),
        }
    }

    /// Runs one pass: the clients read while the writer writes, until every client has every
    /// marker or `drain` has passed after the last write.
    async fn pass(
        &self,
        live: &mut Live,
        sockets: Vec<Ws>,
        stalled: Option<Ws>,
        load: Load,
        run: u32,
        drain: Duration,
    ) -> Result<Pass, Error> {
        let expect = load.expect(run);
        let done = Arc::new(AtomicUsize::new(0));
        let (stop, stop_rx) = watch::channel(false);
        let (resume, resume_rx) = watch::channel(false);
        let clients = sockets.len();
        let tasks: Vec<_> = sockets
            .into_iter()
            .map(|ws| {
                tokio::spawn(client::measure(
                    ws,
                    self.scanner.clone(),
                    expect,
                    done.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let stalled_task = stalled.map(|ws| {
            tokio::spawn(client::stall(
                ws,
                self.scanner.clone(),
                expect,
                resume_rx,
                Duration::from_secs(3),
            ))
        });
        let before = live.server.metrics().await?;
        sleep(Duration::from_millis(200)).await;
        let server_cpu = live.server.cpu()?;
        let load_cpu = procfs::cpu_time(Pid::Me)?;
        let started = Instant::now();
        let first_write_ns = load
            .write(&mut live.writer, run)
            .await
            .map_err(|e| Error::msg(format!("writer: {e}")))?;
        let deadline = Instant::now() + drain;
        while done.load(Ordering::Relaxed) < clients && Instant::now() < deadline {
            sleep(Duration::from_millis(2)).await;
        }
        let wall = started.elapsed();
        let server_cpu = live.server.cpu()?.saturating_sub(server_cpu);
        let load_cpu = procfs::cpu_time(Pid::Me)?.saturating_sub(load_cpu);
        let _ = stop.send(true);
        let _ = resume.send(true);
        let mut tallies = Vec::with_capacity(clients);
        let mut sockets = Vec::with_capacity(clients);
        for task in tasks {
            let (tally, ws) = task
                .await
                .map_err(|e| Error::msg(format!("client task failed: {e}")))?;
            tallies.push(tally);
            sockets.push(ws);
        }
        let stalled = match stalled_task {
            Some(task) => Some(
                tokio::time::timeout(Duration::from_secs(120), task)
                    .await
                    .map_err(|_| {
                        Error::msg("the stalled client did not finish reading within 120 s")
                    })?
                    .map_err(|e| Error::msg(format!("stalled client task failed: {e}")))?,
            ),
            None => None,
        };
        let after = live.server.metrics().await?;
        drop(sockets);
        live.server
            .wait_for_connections(0, Duration::from_secs(30))
            .await?;
        Ok(Pass {
            tallies,
            stalled,
            first_write_ns,
            server_cpu,
            load_cpu,
            wall,
            lagged: after.get("loopwatch_lagged_clients_total")
                - before.get("loopwatch_lagged_clients_total"),
            resyncs: after.get("loopwatch_resyncs_total") - before.get("loopwatch_resyncs_total"),
        })
    }
}

/// The numbers of one pass.
struct Figures {
    lines: Histogram<u64>,
    rows: Histogram<u64>,
    lost: u64,
    duplicates: u64,
    resyncs: u64,
    ended: usize,
    frames: u64,
    lines_received: f64,
    all_done_ms: Option<f64>,
}

impl Figures {
    fn of(pass: &Pass, expect: Expect) -> Self {
        let mut lines: Histogram<u64> = client::histogram();
        let mut rows: Histogram<u64> = client::histogram();
        let mut figures = Figures {
            lost: 0,
            duplicates: 0,
            resyncs: 0,
            ended: 0,
            frames: 0,
            lines_received: 0.0,
            all_done_ms: None,
            lines: client::histogram(),
            rows: client::histogram(),
        };
        let mut all_done = true;
        let mut last = 0;
        for tally in &pass.tallies {
            merge(&mut lines, &tally.lines_us);
            if let Some(h) = &tally.rows_us {
                merge(&mut rows, h);
            }
            figures.lost +=
                expect.lines.saturating_sub(tally.lines) + expect.rows.saturating_sub(tally.rows);
            figures.duplicates += tally.duplicates;
            figures.resyncs += tally.resyncs;
            figures.ended += usize::from(tally.ended.is_some());
            figures.frames += tally.frames;
            figures.lines_received += tally.lines as f64;
            all_done &= tally.lines >= expect.lines;
            last = last.max(tally.last_line_ns);
        }
        if all_done && !pass.tallies.is_empty() {
            figures.all_done_ms = Some(last.saturating_sub(pass.first_write_ns) as f64 / 1e6);
        }
        figures.lines = lines;
        figures.rows = rows;
        figures
    }

    fn json(&self, pass: &Pass) -> Value {
        let q = |h: &Histogram<u64>, q: f64| {
            (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
        };
        let wall = pass.wall.as_secs_f64();
        let last = pass
            .tallies
            .iter()
            .map(|t| t.last_line_ns)
            .max()
            .unwrap_or(0);
        let delivery_seconds = (last.saturating_sub(pass.first_write_ns) as f64 / 1e9).max(1e-6);
        let server_us = pass.server_cpu.as_secs_f64() * 1e6;
        json!({
            "clients": pass.tallies.len(),
            "p50_ms": q(&self.lines, 0.5),
            "p99_ms": q(&self.lines, 0.99),
            "p999_ms": q(&self.lines, 0.999),
            "max_ms": q(&self.lines, 1.0),
            "samples": self.lines.len(),
            "rows_p50_ms": q(&self.rows, 0.5),
            "rows_p99_ms": q(&self.rows, 0.99),
            "lost": self.lost,
            "duplicates": self.duplicates,
            "resyncs_seen": self.resyncs,
            "clients_dropped": self.ended,
            "frames": self.frames,
            "frames_per_client": self.frames as f64 / pass.tallies.len().max(1) as f64,
            "lines_received": self.lines_received,
            "frames_per_second": self.frames as f64 / delivery_seconds,
            "bytes_per_second": pass.tallies.iter().map(|t| t.bytes).sum::<u64>() as f64 / delivery_seconds,
            "lines_per_second": self.lines_received / delivery_seconds,
            "wall_seconds": wall,
            "server_cpu_seconds": pass.server_cpu.as_secs_f64(),
            "server_cpu_pct": 100.0 * pass.server_cpu.as_secs_f64() / wall,
            "server_cpu_us_per_frame": (self.frames > 0).then(|| server_us / self.frames as f64),
            "server_cpu_us_per_line": (self.lines_received > 0.0).then(|| server_us / self.lines_received),
            "load_cpu_pct": 100.0 * pass.load_cpu.as_secs_f64() / wall,
            "server_lagged": pass.lagged,
            "server_resyncs": pass.resyncs,
        })
    }
}

/// Adds a client's histogram to the total.
fn merge(total: &mut Histogram<u64>, part: &Histogram<u32>) {
    for value in part.iter_recorded() {
        total.saturating_record_n(value.value_iterated_to(), u64::from(value.count_at_value()));
    }
}

/// When the server binary was built (its modification time, UTC), so a result names its build.
fn binary_age(path: &std::path::Path) -> Option<String> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    let seconds = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let output = Command::new("date")
        .args(["-u", "-d", &format!("@{seconds}"), "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
