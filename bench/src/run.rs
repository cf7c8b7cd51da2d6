//! The orchestrator: fixtures, servers, scenarios, medians, the table.

use std::{
    fs,
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
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
    fixtures,
    hold::HoldChild,
    http::{self, Request},
    path,
    procfs::{self, Pid},
    report::{count, ms, opt_count, pct, Report, Runs},
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
    let pinning = if cpus >= 2 {
        Cpus {
            server: Some(0),
            load: Some(1),
        }
    } else {
        eprintln!(
            "warning: only {cpus} CPU available; server and load share it (numbers will be worse)"
        );
        Cpus {
            server: None,
            load: None,
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
        "commit": commit,
        "seconds": elapsed.as_secs_f64(),
        "load_average_before": load_before,
        "load_average_after": procfs::load_average(),
    });
    bench.report.write_json(&options.out, meta)?;
    println!();
    println!(
        "loopwatch benchmark, {mode}: {date}; {machine}; commit {commit}; server pinned to CPU {}, load to CPU {}; median of {} run(s)",
        cpus.server.map_or("-".into(), |c| c.to_string()),
        cpus.load.map_or("-".into(), |c| c.to_string()),
        bench.sizes.runs
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

    async fn live_scenarios(&mut self, which: &[&str]) -> Result<(), Error> {
        let root = self.work.join("live");
        let project = fixtures::live_project(&root, "bench-live")?.canonicalize()?;
        let fan: Vec<PathBuf> = (0..self.sizes.fanout_projects)
            .map(|p| fixtures::live_project(&root, &format!("bench-fan-{p}"))?.canonicalize())
            .collect::<std::io::Result<_>>()?;
        let server = Server::start(
            &self.binary,
            std::slice::from_ref(&root),
            &self.work,
            "live",
            self.cpus,
        )
        .await?;
        let projects = server.projects().await?;
        let id_of = |dir: &Path| {
            projects
                .iter()
                .find(|(_, path)| Path::new(path) == dir)
                .map(|(id, _)| id.clone())
                .ok_or_else(|| Error::msg(format!("the server does not list {}", dir.display())))
        };
        let id = id_of(&project)?;
        let topics = vec![format!("log:{id}"), format!("project:{id}")];
        let target = Target::new(server.addr, &server.jwt, &topics);
        let fan_topics = fan
            .iter()
            .map(|dir| id_of(dir).map(|id| format!("log:{id}")))
            .collect::<Result<Vec<_>, _>>()?;
        let fan_target = Target::new(server.addr, &server.jwt, &fan_topics);
        let writer = Writer::open(&project, &fan, self.scanner.clone())?;
        // What the server costs while nothing happens (timers, liveness checks), after it settled.
        sleep(Duration::from_secs(1)).await;
        let cpu = server.cpu()?;
        sleep(Duration::from_secs(3)).await;
        let idle_pct = 100.0 * server.cpu()?.saturating_sub(cpu).as_secs_f64() / 3.0;
        self.report
            .scenarios
            .insert("idle_server_cpu_pct".into(), json!(idle_pct));
        self.idle_cpu_pct = Some(idle_pct);
        let mut live = Live {
            server,
            writer,
            target,
            fan_target,
        };
        let mut first_error = None;
        for scenario in which {
            let outcome = match *scenario {
                "latency" => self.latency(&mut live).await,
                "burst" => self.burst(&mut live).await,
                "slow" => self.slow(&mut live).await,
                _ => self.fanout(&mut live).await,
            };
            if let Err(error) = outcome {
                eprintln!("!!! {scenario}: {error}");
                first_error.get_or_insert(format!("{scenario}: {error}"));
                self.report
                    .row(format!("{scenario} scenario"), "FAILED", error.to_string());
            }
        }
        live.server.stop().await;
        match first_error {
            None => Ok(()),
            Some(error) => {
                // Already in the table; only the failure list needs it.
                self.report.failures.push(error);
                Ok(())
            }
        }
    }

    async fn latency(&mut self, live: &mut Live) -> Result<(), Error> {
        let mut groups = serde_json::Map::new();
        for clients in self.sizes.latency_clients.clone() {
            eprintln!(
                "--> latency: {clients} client(s), {} lines/s",
                self.sizes.line_rate
            );
            let lines = (self.sizes.latency_seconds * self.sizes.line_rate).round() as u64;
            let load = Load::Paced {
                lines,
                per_second: self.sizes.line_rate,
                row_every: self.sizes.line_rate.round() as u64,
            };
            let mut runs = Runs::default();
            for _ in 0..self.sizes.runs {
                let run = self.next_run();
                let sockets = self.connect_many(&live.target, clients, READER).await?;
                sleep(Duration::from_millis(300)).await;
                let pass = self
                    .pass(live, sockets, None, load, run, Duration::from_secs(5))
                    .await?;
                let figures = Figures::of(&pass, load.expect(run));
                if figures.lines_received == 0.0 {
                    return Err(Error::msg(
                        "no marked line reached any client: the measurement is broken",
                    ));
                }
                runs.push(figures.json(&pass));
            }
            let notes = format!(
                "max {}; lost {}, dup {}; JSONL row → client p50 {}, p99 {}; server CPU {}; loadgen CPU {}",
                ms(runs.median("max_ms")),
                count(runs.sum("lost")),
                count(runs.sum("duplicates")),
                ms(runs.median("rows_p50_ms")),
                ms(runs.median("rows_p99_ms")),
                pct(runs.median("server_cpu_pct")),
                pct(runs.median("load_cpu_pct")),
            );
            self.report.row(
                format!(
                    "append→client latency, {} client(s), {} lines/s",
                    count(clients as f64),
                    self.sizes.line_rate
                ),
                format!(
                    "p50 {}, p99 {}",
                    ms(runs.median("p50_ms")),
                    ms(runs.median("p99_ms"))
                ),
                notes,
            );
            groups.insert(clients.to_string(), runs.json());
        }
        self.report
            .scenarios
            .insert("latency".into(), Value::Object(groups));
        Ok(())
    }

    async fn burst(&mut self, live: &mut Live) -> Result<(), Error> {
        let (lines, clients) = (self.sizes.burst_lines, self.sizes.burst_clients);
        eprintln!("--> burst: {lines} lines at once, {clients} clients");
        let load = Load::Burst { lines };
        let mut runs = Runs::default();
        for _ in 0..self.sizes.runs {
            let run = self.next_run();
            let sockets = self.connect_many(&live.target, clients, READER).await?;
            sleep(Duration::from_millis(300)).await;
            let pass = self
                .pass(live, sockets, None, load, run, Duration::from_secs(60))
                .await?;
            let figures = Figures::of(&pass, load.expect(run));
            let mut json = figures.json(&pass);
            json["all_clients_all_lines_ms"] = json!(figures.all_done_ms);
            runs.push(json);
        }
        let complete = runs
            .0
            .iter()
            .all(|r| r["all_clients_all_lines_ms"].is_number());
        self.report.row(
            format!("burst: {} lines in one write, {} clients", count(lines as f64), count(clients as f64)),
            if complete {
                format!("all clients have all lines after {}", ms(runs.median("all_clients_all_lines_ms")))
            } else {
                "INCOMPLETE: some client never got every line (within 60 s)".to_owned()
            },
            format!(
                "lost {}, duplicated {} (summed over runs); per-line p50 {}, p99 {}; {} frames per client; resyncs {}; {:.0} MB/s to clients; server CPU {}, loadgen CPU {}",
                count(runs.sum("lost")),
                count(runs.sum("duplicates")),
                ms(runs.median("p50_ms")),
                ms(runs.median("p99_ms")),
                opt_count(runs.median("frames_per_client")),
                count(runs.sum("resyncs_seen")),
                runs.median("bytes_per_second").unwrap_or(f64::NAN) / 1e6,
                pct(runs.median("server_cpu_pct")),
                pct(runs.median("load_cpu_pct")),
            ),
        );
        self.report.scenarios.insert("burst".into(), runs.json());
        Ok(())
    }

    async fn slow(&mut self, live: &mut Live) -> Result<(), Error> {
        let readers = self.sizes.slow_readers;
        let load = Load::Spaced {
            appends: self.sizes.slow_appends,
            per_append: self.sizes.slow_lines_per_append,
            spacing: self.sizes.slow_spacing,
        };
        let lines = self.sizes.slow_appends * self.sizes.slow_lines_per_append;
        eprintln!(
            "--> slow consumer: {readers} readers (+1 stalled), {lines} lines in {} appends {:?} apart",
            self.sizes.slow_appends, self.sizes.slow_spacing
        );
        let mut baseline = Runs::default();
        let mut stalled_runs = Runs::default();
        for _ in 0..self.sizes.runs {
            // Without the stalled client...
            let run = self.next_run();
            let sockets = self.connect_many(&live.target, readers, READER).await?;
            sleep(Duration::from_millis(300)).await;
            let pass = self
                .pass(live, sockets, None, load, run, Duration::from_secs(30))
                .await?;
            baseline.push(Figures::of(&pass, load.expect(run)).json(&pass));
            // ...and with it: it subscribes like the others, then never reads during the burst.
            let run = self.next_run();
            let sockets = self.connect_many(&live.target, readers, READER).await?;
            let stall_options = ClientOptions {
                receive_buffer: Some(self.sizes.slow_receive_buffer),
                read_chunk: 0,
            };
            let mut staller = self.connect_many(&live.target, 1, stall_options).await?;
            sleep(Duration::from_millis(300)).await;
            let pass = self
                .pass(
                    live,
                    sockets,
                    staller.pop(),
                    load,
                    run,
                    Duration::from_secs(30),
                )
                .await?;
            let mut json = Figures::of(&pass, load.expect(run)).json(&pass);
            if let Some(stalled) = &pass.stalled {
                let outcome = if stalled.resyncs > 0 {
                    format!(
                        "got resync after {:.1} MiB had been buffered for it",
                        stalled.bytes_before_resync.unwrap_or(0) as f64 / 1048576.0
                    )
                } else if let Some(ended) = &stalled.ended {
                    format!("dropped ({ended}) after {} of {lines} lines", stalled.lines)
                } else if stalled.lines == lines {
                    "no resync: every line was buffered and arrived on resume".to_owned()
                } else {
                    format!(
                        "no resync, not dropped: {} of {lines} lines on resume",
                        stalled.lines
                    )
                };
                json["stalled_outcome"] = json!(outcome);
                json["stalled_lines"] = json!(stalled.lines);
                json["stalled_resyncs"] = json!(stalled.resyncs);
                json["stalled_duplicates"] = json!(stalled.duplicates);
                json["stalled_bytes"] = json!(stalled.bytes);
                json["stalled_bytes_before_resync"] = json!(stalled.bytes_before_resync);
                json["stalled_ended"] = json!(stalled.ended);
            }
            stalled_runs.push(json);
        }
        self.report.row(
            format!(
                "slow consumer: 1 stalled client + {} readers, {} lines in {} appends",
                count(readers as f64),
                count(lines as f64),
                count(self.sizes.slow_appends as f64)
            ),
            format!(
                "readers p99 {} (no-stall baseline {})",
                ms(stalled_runs.median("p99_ms")),
                ms(baseline.median("p99_ms"))
            ),
            format!(
                "p50 {} (baseline {}); readers lost {}, dup {}; stalled client (SO_RCVBUF {} KiB): {}; server lagged-client count +{}",
                ms(stalled_runs.median("p50_ms")),
                ms(baseline.median("p50_ms")),
                count(stalled_runs.sum("lost")),
                count(stalled_runs.sum("duplicates")),
                self.sizes.slow_receive_buffer / 1024,
                stalled_runs.strings("stalled_outcome"),
                count(stalled_runs.median("server_lagged").unwrap_or(0.0)),
            ),
        );
        self.report.scenarios.insert(
            "slow_consumer".into(),
            json!({"baseline": baseline.json(), "stalled": stalled_runs.json()}),
        );
        Ok(())
    }

    async fn fanout(&mut self, live: &mut Live) -> Result<(), Error> {
        let clients = self.sizes.fanout_clients;
        let projects = live.writer.fan_projects();
        let (rounds, spacing) = (self.sizes.fanout_rounds, self.sizes.fanout_spacing);
        let offered = projects as f64 / spacing.as_secs_f64();
        eprintln!(
            "--> fan-out: {clients} clients subscribed to {projects} logs, one line to each every {spacing:?} ({offered:.0} lines/s)"
        );
        let load = Load::Fan {
            rounds,
            projects,
            spacing,
        };
        let mut runs = Runs::default();
        for _ in 0..self.sizes.runs {
            let run = self.next_run();
            let target = live.fan_target.clone();
            let sockets = self.connect_many(&target, clients, READER).await?;
            sleep(Duration::from_millis(300)).await;
            let pass = self
                .pass(live, sockets, None, load, run, Duration::from_secs(30))
                .await?;
            runs.push(Figures::of(&pass, load.expect(run)).json(&pass));
        }
        let per_event = runs.median("server_cpu_us_per_frame");
        self.report.row(
            format!(
                "fan-out: {} clients × {projects} project logs, {} lines/s offered (one line per write) for {:.1} s",
                count(clients as f64),
                count(offered),
                rounds as f64 * spacing.as_secs_f64()
            ),
            format!("{} event×client deliveries/s", opt_count(runs.median("frames_per_second"))),
            format!(
                "{} line×client/s; {:.1} lines per event; server CPU {}; p50 {}, p99 {}; lost {}, dup {}, resyncs {}; loadgen CPU {}",
                opt_count(runs.median("lines_per_second")),
                runs.median("lines_received").unwrap_or(0.0) / runs.median("frames").unwrap_or(f64::NAN),
                pct(runs.median("server_cpu_pct")),
                ms(runs.median("p50_ms")),
                ms(runs.median("p99_ms")),
                count(runs.sum("lost")),
                count(runs.sum("duplicates")),
                count(runs.sum("resyncs_seen")),
                pct(runs.median("load_cpu_pct")),
            ),
        );
        let at_1000 = self
            .report
            .scenarios
            .get("latency")
            .and_then(|groups| groups.get("1000"))
            .and_then(|runs| Runs(runs.as_array()?.clone()).median("server_cpu_us_per_frame"));
        self.report.row(
            "server CPU per delivered event",
            per_event.map_or("n/a".into(), |us| format!("{us:.1} µs")),
            format!(
                "utime+stime of /proc/PID/stat ÷ event×client deliveries, fan-out runs ({:.1} µs per line×client){}; idle server: {} CPU",
                runs.median("server_cpu_us_per_line").unwrap_or(f64::NAN),
                at_1000.map_or(String::new(), |us| format!("; 1,000 clients at 10 lines/s: {us:.1} µs")),
                pct(self.idle_cpu_pct),
            ),
        );
        self.report.scenarios.insert("fanout".into(), runs.json());
        Ok(())
    }

    async fn idle(&mut self) -> Result<(), Error> {
        let sockets = self.sizes.idle_sockets;
        eprintln!("--> idle memory: {sockets} authenticated, subscribed sockets");
        let root = self.work.join("idle");
        let project = fixtures::live_project(&root, "bench-idle")?;
        let mut runs = Runs::default();
        for run in 0..self.sizes.runs {
            let server = Server::start(
                &self.binary,
                std::slice::from_ref(&root),
                &self.work,
                &format!("idle{run}"),
                self.cpus,
            )
            .await?;
            let projects = server.projects().await?;
            let id = projects.first().map(|(id, _)| id.clone()).ok_or_else(|| {
                Error::msg(format!("the server does not list {}", project.display()))
            })?;
            let topics = vec![format!("log:{id}"), format!("project:{id}")];
            let target = Target::new(server.addr, &server.jwt, &topics);
            // Warm up the paths a socket takes (one socket in and out), then settle.
            drop(self.connect_many(&target, 1, READER).await?);
            server
                .wait_for_connections(0, Duration::from_secs(10))
                .await?;
            sleep(Duration::from_secs(1)).await;
            let before = server.rss_kib()?;
            let started = Instant::now();
            let mut children = Vec::new();
            let mut left = sockets;
            while left > 0 {
                let count = left.min(self.sizes.per_process);
                let first = self.slots.take(count);
                children.push(HoldChild::spawn(
                    &target,
                    &topics,
                    count as u32,
                    first,
                    self.cpus.load,
                )?);
                left -= count;
            }
            let (mut opened, mut failed) = (0, 0);
            let mut first_error = String::new();
            let mut slowest_child_ms = 0;
            for child in &mut children {
                let ready = child.ready(Duration::from_secs(300)).await?;
                opened += ready.ok as usize;
                failed += ready.failed;
                slowest_child_ms = slowest_child_ms.max(ready.millis);
                if first_error.is_empty() {
                    first_error = ready.first_error;
                }
            }
            if failed > 0 || opened != sockets {
                return Err(Error::msg(format!(
                    "{failed} of {sockets} idle sockets failed: {first_error}"
                )));
            }
            let connect_seconds = started.elapsed().as_secs_f64();
            server
                .wait_for_connections(sockets as i64, Duration::from_secs(30))
                .await?;
            sleep(Duration::from_secs(2)).await;
            let after = server.rss_kib()?;
            let per_socket = (after.saturating_sub(before) as f64) * 1024.0 / sockets as f64;
            runs.push(json!({
                "sockets": sockets,
                "processes": children.len(),
                "rss_before_kib": before,
                "rss_after_kib": after,
                "bytes_per_socket": per_socket,
                "connect_seconds": connect_seconds,
                "slowest_child_ms": slowest_child_ms,
                "sockets_per_second": sockets as f64 / connect_seconds,
            }));
            for child in children {
                child.finish().await;
            }
            server.stop().await;
        }
        let per_socket = runs.median("bytes_per_socket");
        self.report.row(
            format!("idle memory per authenticated, subscribed socket ({} sockets)", count(sockets as f64)),
            per_socket.map_or("n/a".into(), |b| format!("{:.1} KiB", b / 1024.0)),
            format!(
                "server RSS {} → {} MiB (fresh server per run; {} hold process(es)); opened at {} sockets/s",
                runs.median("rss_before_kib").map_or("?".into(), |k| format!("{:.1}", k / 1024.0)),
                runs.median("rss_after_kib").map_or("?".into(), |k| format!("{:.1}", k / 1024.0)),
                runs.max("processes").unwrap_or(0.0),
                opt_count(runs.median("sockets_per_second")),
            ),
        );
        self.report
            .scenarios
            .insert("idle_memory".into(), runs.json());
        Ok(())
    }

    async fn tail(&mut self) -> Result<(), Error> {
        let bytes = self.sizes.big_log_bytes;
        eprintln!(
            "--> tail catch-up: a {:.0} MiB ralph.log",
            bytes as f64 / 1048576.0
        );
        let root = self.work.join("tail");
        let generated =
            tokio::task::spawn_blocking(move || fixtures::big_log_project(&root, bytes))
                .await
                .map_err(|e| Error::msg(format!("fixture task failed: {e}")))??;
        let (dir, size) = generated;
        let mut runs = Runs::default();
        for _ in 0..self.sizes.runs {
            let binary = self.binary.clone();
            let dir = dir.clone();
            let cpu = self.cpus.server;
            let child = {
                // Through `peak-rss`, a small process in between (see there why).
                let mut command = Command::new(std::env::current_exe()?);
                command
                    .arg("peak-rss")
                    .arg(&binary)
                    .arg("inspect")
                    .arg(&dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                server::pin_child(&mut command, cpu);
                command.spawn()?
            };
            let (stderr, status, wall) =
                tokio::task::spawn_blocking(move || wait_for_output(child))
                    .await
                    .map_err(|e| Error::msg(format!("inspect task failed: {e}")))??;
            if !status {
                return Err(Error::msg(format!("loopwatch inspect failed: {stderr}")));
            }
            let peak_kib: f64 = stderr
                .lines()
                .find_map(|line| line.strip_prefix("peak-rss-kib ")?.trim().parse().ok())
                .ok_or_else(|| Error::msg(format!("no peak RSS in {stderr:?}")))?;
            // "indexed in 3.012 s: 11400000 log lines, 2285 log iterations, ..."
            let seconds = stderr
                .split("indexed in ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<f64>().ok())
                .ok_or_else(|| {
                    Error::msg(format!("cannot read the indexing time in {stderr:?}"))
                })?;
            let field = |after: &str| -> Option<f64> {
                let before = stderr.split(after).next()?;
                before
                    .rsplit([' ', ':'])
                    .find(|s| !s.is_empty())?
                    .parse()
                    .ok()
            };
            runs.push(json!({
                "bytes": size,
                "index_seconds": seconds,
                "process_seconds": wall,
                "peak_rss_kib": peak_kib,
                "log_lines": field(" log lines"),
                "iterations": field(" log iterations"),
                "inspect_stderr": stderr.lines().find(|l| l.contains("indexed in")).unwrap_or_default(),
            }));
        }
        self.report.row(
            format!(
                "tail catch-up: index a {:.2} GB ralph.log (`loopwatch inspect`)",
                size as f64 / 1e9
            ),
            format!(
                "{:.2} s, peak RSS {:.1} MiB",
                runs.median("index_seconds").unwrap_or(f64::NAN),
                runs.median("peak_rss_kib").unwrap_or(f64::NAN) / 1024.0
            ),
            format!(
                "{} lines, {} iterations, {:.0} MB/s; warm page cache; whole process {:.2} s",
                opt_count(runs.median("log_lines")),
                opt_count(runs.median("iterations")),
                size as f64 / 1e6 / runs.median("index_seconds").unwrap_or(f64::NAN),
                runs.median("process_seconds").unwrap_or(f64::NAN),
            ),
        );
        self.report
            .scenarios
            .insert("tail_catch_up".into(), runs.json());
        let _ = fs::remove_dir_all(self.work.join("tail"));
        Ok(())
    }

    async fn ssr(&mut self) -> Result<(), Error> {
        let (projects, iterations) = (self.sizes.ssr_projects, self.sizes.ssr_iterations);
        eprintln!("--> SSR: {projects} projects × {iterations} iterations");
        let root = self.work.join("ssr");
        let fixture_root = root.clone();
        tokio::task::spawn_blocking(move || {
            fixtures::history_projects(&fixture_root, projects, iterations)
        })
        .await
        .map_err(|e| Error::msg(format!("fixture task failed: {e}")))??;
        let started = Instant::now();
        let server = Server::start(
            &self.binary,
            std::slice::from_ref(&root),
            &self.work,
            "ssr",
            self.cpus,
        )
        .await?;
        let startup = started.elapsed();
        let rss = server.rss_kib()?;
        let listed = server.projects().await?;
        if listed.len() != projects {
            return Err(Error::msg(format!(
                "the server lists {} projects, expected {projects}",
                listed.len()
            )));
        }
        let id = listed
            .iter()
            .map(|(id, _)| id.clone())
            .min()
            .ok_or_else(|| Error::msg("no project"))?;
        let pages = [
            ("dashboard", "/".to_owned()),
            ("project page", format!("/projects/{id}")),
        ];
        let mut json = serde_json::Map::new();
        for (name, page) in &pages {
            // Warm-up requests, not counted.
            for _ in 0..3 {
                http::send(
                    server.addr,
                    Request::get(page).session(&server.jwt),
                    Duration::from_secs(60),
                )
                .await?;
            }
            let mut runs = Runs::default();
            for _ in 0..self.sizes.runs {
                runs.push(self.ssr_run(server.addr, &server.jwt, page).await?);
            }
            self.report.row(
                format!(
                    "SSR {name} `{}`: {projects} projects × {} iterations, {} req/s",
                    if *name == "dashboard" {
                        "/"
                    } else {
                        "/projects/{id}"
                    },
                    count(iterations as f64),
                    self.sizes.ssr_rate
                ),
                format!(
                    "TTFB p50 {}, p99 {}",
                    ms(runs.median("ttfb_p50_ms")),
                    ms(runs.median("ttfb_p99_ms"))
                ),
                format!(
                    "HTTP {}; {} KiB; whole response p50 {}",
                    runs.strings("statuses"),
                    runs.median("bytes")
                        .map_or("?".into(), |b| format!("{:.1}", b / 1024.0)),
                    ms(runs.median("total_p50_ms")),
                ),
            );
            json.insert(name.replace(' ', "_"), runs.json());
        }
        self.report.row(
            format!(
                "server start-up with {projects} × {} iterations",
                count(iterations as f64)
            ),
            format!("{:.2} s to listening", startup.as_secs_f64()),
            format!("RSS {:.1} MiB after indexing", rss as f64 / 1024.0),
        );
        json.insert("startup_seconds".into(), json!(startup.as_secs_f64()));
        json.insert("rss_kib".into(), json!(rss));
        self.report
            .scenarios
            .insert("ssr".into(), Value::Object(json));
        server.stop().await;
        Ok(())
    }

    /// `ssr_requests` requests at a fixed rate, each on its own connection, started on schedule
    /// whether or not the previous one has finished.
    async fn ssr_run(&self, addr: SocketAddr, jwt: &str, page: &str) -> Result<Value, Error> {
        let period = Duration::from_secs_f64(1.0 / self.sizes.ssr_rate);
        let start = tokio::time::Instant::now();
        let mut handles = Vec::with_capacity(self.sizes.ssr_requests);
        for n in 0..self.sizes.ssr_requests {
            tokio::time::sleep_until(start + period * n as u32).await;
            let (page, jwt) = (page.to_owned(), jwt.to_owned());
            handles.push(tokio::spawn(async move {
                http::send(
                    addr,
                    Request::get(&page).session(&jwt),
                    Duration::from_secs(60),
                )
                .await
            }));
        }
        let mut ttfb: Histogram<u64> = client::histogram();
        let mut total: Histogram<u64> = client::histogram();
        let mut statuses: Vec<u16> = Vec::new();
        let mut bytes = Vec::new();
        for handle in handles {
            let response = handle
                .await
                .map_err(|e| Error::msg(format!("request task failed: {e}")))??;
            ttfb.saturating_record(response.ttfb.as_micros().max(1) as u64);
            total.saturating_record(response.total.as_micros().max(1) as u64);
            if !statuses.contains(&response.status) {
                statuses.push(response.status);
            }
            bytes.push(response.body.len() as f64);
        }
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Ok(json!({
            "requests": self.sizes.ssr_requests,
            "rate": self.sizes.ssr_rate,
            "ttfb_p50_ms": q(&ttfb, 0.5),
            "ttfb_p99_ms": q(&ttfb, 0.99),
            "ttfb_max_ms": ttfb.max() as f64 / 1000.0,
            "total_p50_ms": q(&total, 0.5),
            "total_p99_ms": q(&total, 0.99),
            "statuses": statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
            "bytes": crate::report::median(&mut bytes),
        }))
    }

    fn wasm(&mut self, path: &Path) -> Result<(), Error> {
        eprintln!("--> WASM size");
        if !path.is_file() {
            self.report.row(
                "WASM bundle",
                "not built",
                format!(
                    "{} is missing: run `cargo leptos build --release --precompress`",
                    path.display()
                ),
            );
            return Ok(());
        }
        let raw = fs::metadata(path)?.len();
        let gzip = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(path)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout.len() as u64);
        let mut brotli_path = path.as_os_str().to_owned();
        brotli_path.push(".br");
        let brotli = fs::metadata(PathBuf::from(brotli_path))
            .ok()
            .map(|m| m.len());
        let kib =
            |b: Option<u64>| b.map_or("n/a".into(), |b| format!("{:.0} KiB", b as f64 / 1024.0));
        self.report.row(
            format!("WASM bundle ({})", path.display()),
            format!("{} raw, {} gzip -9", kib(Some(raw)), kib(gzip)),
            format!("precompressed brotli (.br) {}", kib(brotli)),
        );
        self.report.scenarios.insert(
            "wasm".into(),
            json!({"path": path.display().to_string(), "raw_bytes": raw, "gzip9_bytes": gzip, "brotli_bytes": brotli}),
        );
        Ok(())
    }
}

/// Waits for a child, returning (stderr, success, wall seconds).
fn wait_for_output(mut child: std::process::Child) -> Result<(String, bool, f64), Error> {
    let started = Instant::now();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait()?;
    Ok((stderr, status.success(), started.elapsed().as_secs_f64()))
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
