//! The scenarios, one method each; they share the live server, the clients and the writer of
//! the parent module.

use std::{
    fs,
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::time::sleep;

use super::{Bench, Figures, Live, Load, READER};
use crate::{
    client::{self, Options as ClientOptions, Target},
    fixtures,
    hold::HoldChild,
    http::{self, Request},
    report::{count, ms, opt_count, pct, Runs},
    server::{self, Server},
    writer::Writer,
    Error,
};

impl Bench {
    pub(super) async fn live_scenarios(&mut self, which: &[&str]) -> Result<(), Error> {
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
        // What the server costs while no file changes (the writer has opened its files; nothing
        // is written), after it settled.
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
        for scenario in which {
            let outcome = match *scenario {
                "latency" => self.latency(&mut live).await,
                "burst" => self.burst(&mut live).await,
                "slow" => self.slow(&mut live).await,
                _ => self.fanout(&mut live).await,
            };
            // One failed scenario does not stop the others on the same server.
            self.record(scenario, outcome);
        }
        live.server.stop().await;
        Ok(())
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
                "max {}; lost {}, dup {}; JSONL row → client p50 {}, p99 {}; server CPU {}; {}",
                ms(runs.median("max_ms")),
                count(runs.sum("lost")),
                count(runs.sum("duplicates")),
                ms(runs.median("rows_p50_ms")),
                ms(runs.median("rows_p99_ms")),
                pct(runs.median("server_cpu_pct")),
                loadgen(&runs),
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
                "lost {}, duplicated {} (summed over runs); per-line p50 {}, p99 {}; {} frames per client; resyncs {}; {:.0} MB/s to clients; server CPU {}, {}",
                count(runs.sum("lost")),
                count(runs.sum("duplicates")),
                ms(runs.median("p50_ms")),
                ms(runs.median("p99_ms")),
                opt_count(runs.median("frames_per_client")),
                count(runs.sum("resyncs_seen")),
                runs.median("bytes_per_second").unwrap_or(f64::NAN) / 1e6,
                pct(runs.median("server_cpu_pct")),
                loadgen(&runs),
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
                "{} line×client/s; {:.1} lines per event; server CPU {} (≈ {} deliveries/s at 100%); p50 {}, p99 {}; lost {}, dup {}, resyncs {}; {}",
                opt_count(runs.median("lines_per_second")),
                runs.median("lines_received").unwrap_or(0.0) / runs.median("frames").unwrap_or(f64::NAN),
                pct(runs.median("server_cpu_pct")),
                opt_count(per_event.map(|us| 1e6 / us)),
                ms(runs.median("p50_ms")),
                ms(runs.median("p99_ms")),
                count(runs.sum("lost")),
                count(runs.sum("duplicates")),
                count(runs.sum("resyncs_seen")),
                loadgen(&runs),
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

    pub(super) async fn idle(&mut self) -> Result<(), Error> {
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

    pub(super) async fn tail(&mut self) -> Result<(), Error> {
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
            let (stderr, status, wall) = tokio::task::spawn_blocking(move || {
                wait_for_output(child, Duration::from_secs(600))
            })
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

    pub(super) async fn ssr(&mut self) -> Result<(), Error> {
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

    pub(super) fn wasm(&mut self, path: &Path) -> Result<(), Error> {
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
        // One figure a row, so a side-by-side run gives each its ratio.
        self.report
            .row("WASM bundle, raw (loopwatch.wasm)", kib(Some(raw)), "");
        self.report.row(
            "WASM bundle, gzip -9",
            kib(gzip),
            "what a gzip-only client downloads",
        );
        self.report.row(
            "WASM bundle, brotli",
            kib(brotli),
            "the precompressed .br file the server sends",
        );
        self.report.scenarios.insert(
            "wasm".into(),
            json!({"path": path.display().to_string(), "raw_bytes": raw, "gzip9_bytes": gzip, "brotli_bytes": brotli}),
        );
        Ok(())
    }
}

/// Waits for a child (killing it after `limit`), returning (stderr, success, wall seconds).
fn wait_for_output(
    mut child: std::process::Child,
    limit: Duration,
) -> Result<(String, bool, f64), Error> {
    let started = Instant::now();
    let reader = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            server::kill(&mut child);
            return Err(Error::msg(format!("still running after {limit:?}; killed")));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader
        .and_then(|thread| thread.join().ok())
        .unwrap_or_default();
    Ok((stderr, status.success(), started.elapsed().as_secs_f64()))
}

/// The load generator's own CPU use (of its one core), flagged when it may be the bottleneck.
fn loadgen(runs: &Runs) -> String {
    let busy = runs.max("load_cpu_pct");
    let flag = if busy.is_some_and(|p| p >= 70.0) {
        " (CLIENT-BOUND: the numbers measure the load generator too)"
    } else {
        ""
    };
    format!("loadgen CPU {}{flag}", pct(runs.median("load_cpu_pct")))
}
