//! loopwatch benchmark: starts a release server pinned to one CPU, drives it from the other with
//! authenticated WebSocket clients, a file writer and a small HTTP client, and prints a table of
//! medians (plus a JSON file with every run's raw figures).
//!
//! ```text
//! loopwatch-bench [run] [--smoke] [--runs N] [--server PATH] [--wasm PATH] [--out FILE]
//!                 [--work-dir DIR] [--keep] [--only SCENARIO,...]
//! loopwatch-bench compare --names REF HEAD --ref FILE... --head FILE...
//! loopwatch-bench hold ...   (internal: a child process holding idle sockets)
//! ```

mod client;
mod compare;
mod fixtures;
mod hold;
mod http;
mod procfs;
mod report;
mod run;
mod server;
mod writer;

use std::{fmt, path::PathBuf, process::ExitCode};

/// Every failure of the benchmark: a sentence for the operator.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn msg(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self(error.to_string())
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        Self(format!("WebSocket: {error}"))
    }
}

const USAGE: &str = "\
usage: loopwatch-bench [run] [options]
  --smoke            tiny sizes, one run each (seconds; what CI runs)
  --runs N           runs per scenario (default 3; smoke 1)
  --server PATH      the loopwatch release binary (default target/release/loopwatch)
  --wasm PATH        the site's wasm (default target/site/pkg/loopwatch.wasm)
  --out FILE         raw figures as JSON (default target/bench/bench.json)
  --work-dir DIR     where fixture projects are created (default: a new directory in $TMPDIR)
  --keep             keep the work directory (fixtures and server logs)
  --only LIST        comma-separated scenarios: latency,burst,slow,fanout,idle,tail,ssr,wasm
side by side: loopwatch-bench compare --names REF HEAD --ref FILE... --head FILE...
  (the --out files of runs of two servers; scripts/bench.sh --against REF runs them)
internal: loopwatch-bench hold ... (holds idle sockets), loopwatch-bench peak-rss PROGRAM ARGS...
";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("hold") {
        args.remove(0);
        return report_exit(hold::main(&args));
    }
    if args.first().map(String::as_str) == Some("compare") {
        args.remove(0);
        return report_exit(compare::main(&args));
    }
    if args.first().map(String::as_str) == Some("peak-rss") {
        args.remove(0);
        return report_exit(peak_rss(&args));
    }
    if args.first().map(String::as_str) == Some("run") {
        args.remove(0);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match run::Options::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("loopwatch-bench: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    report_exit(run::main(options))
}

fn report_exit(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loopwatch-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A path argument.
fn path(value: Option<&String>, flag: &str) -> Result<PathBuf, Error> {
    value
        .map(PathBuf::from)
        .ok_or_else(|| Error::msg(format!("{flag} needs a value")))
}

/// `peak-rss PROGRAM ARGS...`: runs the program and prints `peak-rss-kib N` on stderr when it
/// ends. A fresh, small process in between is what makes the figure right: Linux keeps a
/// process's peak RSS across `exec`, so a child forked straight from the (large) benchmark
/// would report the benchmark's own memory.
fn peak_rss(args: &[String]) -> Result<(), Error> {
    use std::os::unix::process::ExitStatusExt;
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| Error::msg("peak-rss: which program?"))?;
    let child = std::process::Command::new(program)
        .args(rest)
        .spawn()
        .map_err(|e| Error::msg(format!("peak-rss: cannot start {program}: {e}")))?;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter; the pid is our unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        return Err(Error::msg(format!(
            "peak-rss: wait4: {}",
            std::io::Error::last_os_error()
        )));
    }
    eprintln!("peak-rss-kib {}", usage.ru_maxrss);
    let status = std::process::ExitStatus::from_raw(status);
    if status.success() {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "peak-rss: {program} ended with {status}"
        )))
    }
}
