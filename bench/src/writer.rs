//! The writer: appends marked lines to a watched project's `ralph.log` and rows to its
//! `iterations.jsonl`, stamped with the load generator's monotonic clock just before each write.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::{sleep_until, Instant};

use crate::client::Scanner;

pub struct Writer {
    log: File,
    jsonl: File,
    /// The logs of the fan-out projects (one line each per round).
    fan: Vec<File>,
    scanner: Arc<Scanner>,
    buffer: Vec<u8>,
}

/// Padding that makes a line look like agent output (about 120 bytes per line).
const FILLER: &str = "exec bash -lc 'cargo test --all' in /srv/bench/live succeeded in 612ms";

impl Writer {
    pub fn open(project: &Path, fan: &[PathBuf], scanner: Arc<Scanner>) -> io::Result<Self> {
        let open = |project: &Path, name: &str| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(project.join(".ralph").join(name))
        };
        Ok(Self {
            log: open(project, "ralph.log")?,
            jsonl: open(project, "iterations.jsonl")?,
            fan: fan
                .iter()
                .map(|dir| open(dir, "ralph.log"))
                .collect::<io::Result<_>>()?,
            scanner,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// The clock the markers carry, now.
    pub fn scanner_now(&self) -> u64 {
        self.scanner.now_ns()
    }

    /// Appends lines `seqs` of run `run` in one `write`. Returns the time stamp they carry.
    pub fn lines(&mut self, run: u32, seqs: std::ops::Range<u64>) -> io::Result<u64> {
        self.buffer.clear();
        let clock = wall_clock();
        let written = self.scanner.now_ns();
        for seq in seqs {
            // `write!` into a Vec cannot fail.
            let _ = writeln!(
                self.buffer,
                "[{clock}] BENCH L {run} {seq} {written} {FILLER}"
            );
        }
        self.log.write_all(&self.buffer)?;
        Ok(written)
    }

    /// One line to each fan-out project, each in its own write: round `n` writes lines
    /// `n * P .. n * P + P`. Returns the time stamp of the first.
    pub fn round(&mut self, run: u32, n: u64) -> io::Result<u64> {
        let clock = wall_clock();
        let projects = self.fan.len() as u64;
        let mut first = 0;
        for (p, log) in self.fan.iter_mut().enumerate() {
            let seq = n * projects + p as u64;
            let written = self.scanner.now_ns();
            if p == 0 {
                first = written;
            }
            self.buffer.clear();
            let _ = writeln!(
                self.buffer,
                "[{clock}] BENCH L {run} {seq} {written} {FILLER}"
            );
            log.write_all(&self.buffer)?;
        }
        Ok(first)
    }

    pub fn fan_projects(&self) -> u64 {
        self.fan.len() as u64
    }

    /// Appends one `iterations.jsonl` row whose `commit` carries the marker.
    pub fn row(&mut self, run: u32, seq: u64) -> io::Result<()> {
        let written = self.scanner.now_ns();
        let row = format!(
            concat!(
                r#"{{"iteration": {}, "max": 0, "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:01:00Z", "#,
                r#""duration_seconds": 60, "tokens": 12.5, "status": "success", "tasks_completed": [], "#,
                r#""commit": "BENCH J {} {} {}", "commit_message": "bench", "test_passed": true, "test_output": "", "errors": []}}"#,
                "\n"
            ),
            seq + 1,
            run,
            seq,
            written
        );
        self.jsonl.write_all(row.as_bytes())
    }

    /// Writes `lines` lines at `per_second`, one line per write, and a JSONL row every
    /// `row_every` lines (0: none). Deadlines are absolute so the rate does not drift.
    pub async fn paced(
        &mut self,
        run: u32,
        lines: u64,
        per_second: f64,
        row_every: u64,
    ) -> io::Result<()> {
        let period = Duration::from_secs_f64(1.0 / per_second);
        let start = Instant::now();
        let mut rows = 0;
        for seq in 0..lines {
            sleep_until(start + period.mul_f64(seq as f64)).await;
            self.lines(run, seq..seq + 1)?;
            if row_every > 0 && seq % row_every == row_every / 2 {
                self.row(run, rows)?;
                rows += 1;
            }
        }
        Ok(())
    }
}

/// `HH:MM:SS` (UTC) as the loop scripts write it.
fn wall_clock() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// How many rows `paced` writes for `lines` lines.
pub fn rows_for(lines: u64, row_every: u64) -> u64 {
    if row_every == 0 {
        return 0;
    }
    (0..lines)
        .filter(|seq| seq % row_every == row_every / 2)
        .count() as u64
}
