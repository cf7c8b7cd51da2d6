//! The loop as a process: starting it detached (its own session, output to a file of the data
//! directory, reaped by a thread of ours), and stopping it only after the PID in its pid file
//! proves to be the loop (the reuse guard).

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use rustix::process::{getpgid, kill_process, kill_process_group, Pid, Signal};

use crate::model::api_types::ApiError;
use crate::model::control::{StartForm, StartPhase};
use crate::server::project::liveness::{loop_liveness, parse_proc_stat, Liveness};
use crate::server::safe_open;

/// The loop's pid file, relative to the project (the loop writes it; loopwatch never does).
pub const PID_FILE: &str = ".ralph/ralph.pid";

/// How much of a dead start's output is shown.
const OUTPUT_TAIL: u64 = 4096;

/// How often a start, a stop and an injection are looked at.
pub const POLL: Duration = Duration::from_millis(100);

/// The loop the pid file names, as read now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidFile {
    pub pid: u32,
    pub written: SystemTime,
}

/// Reads the pid file; `None` when there is none or it holds no PID.
pub fn read_pid_file(project: &Path) -> Option<PidFile> {
    let mut file = safe_open::open(project, PID_FILE).ok()?;
    let written = file.metadata().and_then(|meta| meta.modified()).ok()?;
    let mut text = String::new();
    (&mut file).take(64).read_to_string(&mut text).ok()?;
    let pid = text.trim().parse().ok().filter(|pid| *pid > 1)?;
    Some(PidFile { pid, written })
}

/// Why a PID is not the loop's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotTheLoop {
    Dead,
    /// Started after the pid file was written: the kernel gave the number to another process.
    Reused,
    /// Its command line does not name the loop's command.
    OtherProgram(String),
}

impl std::fmt::Display for NotTheLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotTheLoop::Dead => write!(f, "no such process"),
            NotTheLoop::Reused => write!(f, "the process started after the pid file was written"),
            NotTheLoop::OtherProgram(cmdline) => {
                write!(f, "the process is another program ({cmdline})")
            }
        }
    }
}

/// The reuse guard: the PID is alive, started no later than the pid file was written, and its
/// command line names `command` (its file name: `ralph.sh` matches `/bin/bash ./ralph.sh 5`).
pub fn guard(pid_file: PidFile, command: &str) -> Result<(), NotTheLoop> {
    match loop_liveness(pid_file.pid, pid_file.written) {
        Liveness::Dead => return Err(NotTheLoop::Dead),
        Liveness::Reused => return Err(NotTheLoop::Reused),
        Liveness::Alive => {}
    }
    let raw =
        std::fs::read(format!("/proc/{}/cmdline", pid_file.pid)).map_err(|_| NotTheLoop::Dead)?;
    let args: Vec<String> = raw
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let wanted = file_name(command);
    if args.iter().any(|arg| file_name(arg) == wanted) {
        Ok(())
    } else {
        Err(NotTheLoop::OtherProgram(
            args.join(" ").chars().take(200).collect(),
        ))
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A process's start time in ticks after boot; it tells a PID's owner from a later one.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    match parse_proc_stat(&stat)? {
        ('Z' | 'X' | 'x', _) => None,
        (_, ticks) => Some(ticks),
    }
}

/// The command a start runs, and the argument and environment it gets.
pub struct Launch<'a> {
    pub project: &'a Path,
    pub command: &'a str,
    pub form: &'a StartForm,
    /// Where its stdout and stderr go (truncated first).
    pub output: &'a Path,
}

/// Starts the loop in its own session (a terminal's hangup or Ctrl-C for loopwatch does not
/// reach it, and neither does loopwatch's exit). Its output goes to a file of the data
/// directory: the loop writes its own log, and `ralph.log` must not get every line twice.
pub fn spawn(launch: &Launch<'_>) -> Result<std::process::Child, ApiError> {
    let output = File::create(launch.output)
        .map_err(|error| ApiError::Control(format!("{}: {error}", launch.output.display())))?;
    let errors = output
        .try_clone()
        .map_err(|error| ApiError::Control(format!("output: {error}")))?;
    let mut command = Command::new(launch.command);
    command
        .arg(launch.form.max_iterations.to_string())
        .current_dir(launch.project)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors);
    for (name, value) in [
        ("RALPH_CLI", &launch.form.cli),
        ("RALPH_FLAGS", &launch.form.flags),
        ("RALPH_TEST", &launch.form.test),
        ("RALPH_MODEL", &launch.form.model),
    ] {
        if !value.trim().is_empty() {
            command.env(name, value.trim());
        }
    }
    // SAFETY: `setsid` is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .map_err(|error| ApiError::Control(format!("cannot run {}: {error}", launch.command)))
}

/// The end of a start's output (what it printed before it died).
pub fn output_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let length = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(OUTPUT_TAIL)));
    let mut bytes = Vec::new();
    let _ = file.take(OUTPUT_TAIL).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Watches a spawned loop until it writes its pid file or dies, reporting each phase, then
/// reaps it when it ends (which may be long after).
pub fn supervise(
    mut child: std::process::Child,
    project: PathBuf,
    output: PathBuf,
    spawned: SystemTime,
    report: impl Fn(StartPhase) + Send + 'static,
) {
    let pid = child.id();
    std::thread::spawn(move || {
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    report(StartPhase::Died {
                        pid,
                        code: status.code(),
                        output: output_tail(&output),
                    });
                    return;
                }
                Ok(None) => {}
                Err(_) => return,
            }
            // A pid file written since the spawn (mtimes are whole seconds on some systems).
            let fresh = read_pid_file(&project)
                .is_some_and(|file| file.written + Duration::from_secs(1) >= spawned);
            if fresh {
                report(StartPhase::Started { pid });
                let _ = child.wait();
                return;
            }
            std::thread::sleep(POLL);
        }
    });
}

/// What a stop did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It ended within the grace period after SIGTERM.
    Terminated { elapsed: Duration },
    /// It was still there after the grace period and got SIGKILL.
    Killed,
}

/// Which processes a signal goes to: the loop's group when it leads one (it does when
/// loopwatch started it), else the loop alone (its group is someone else's, a shell's).
fn signal(pid: u32, signal: Signal) -> Result<String, ApiError> {
    let target = Pid::from_raw(i32::try_from(pid).unwrap_or(0))
        .ok_or_else(|| ApiError::Control(format!("bad pid {pid}")))?;
    let leads_group = getpgid(Some(target)).is_ok_and(|group| group == target);
    let sent = if leads_group {
        kill_process_group(target, signal)
    } else {
        kill_process(target, signal)
    };
    sent.map_err(|errno| ApiError::Control(format!("signal to {pid}: {errno}")))?;
    Ok(if leads_group {
        format!("group {pid}")
    } else {
        format!("process {pid}")
    })
}

/// Stops the loop the guard let through: SIGTERM, then SIGKILL once `grace` has passed. Blocks
/// for up to `grace` (run it off the async threads).
pub fn stop(pid_file: PidFile, grace: Duration) -> Result<(Stopped, String), ApiError> {
    let pid = pid_file.pid;
    let ticks = start_ticks(pid);
    let target = signal(pid, Signal::TERM)?;
    let started = Instant::now();
    let same_process = || ticks.is_some() && start_ticks(pid) == ticks;
    while started.elapsed() < grace {
        if !same_process() {
            return Ok((
                Stopped::Terminated {
                    elapsed: started.elapsed(),
                },
                target,
            ));
        }
        std::thread::sleep(POLL);
    }
    if !same_process() {
        return Ok((
            Stopped::Terminated {
                elapsed: started.elapsed(),
            },
            target,
        ));
    }
    let target = signal(pid, Signal::KILL)?;
    Ok((Stopped::Killed, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_checks_the_program() {
        let me = PidFile {
            pid: std::process::id(),
            written: SystemTime::now(),
        };
        let exe = std::env::current_exe().expect("exe");
        let name = exe.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(guard(me, name), Ok(()));
        assert!(matches!(
            guard(me, "ralph.sh"),
            Err(NotTheLoop::OtherProgram(_))
        ));
        let old = PidFile {
            written: SystemTime::UNIX_EPOCH,
            ..me
        };
        assert_eq!(guard(old, name), Err(NotTheLoop::Reused));
    }

    #[test]
    fn file_names_of_commands() {
        assert_eq!(file_name("/a/b/ralph.sh"), "ralph.sh");
        assert_eq!(file_name("ralph.sh"), "ralph.sh");
    }
}
