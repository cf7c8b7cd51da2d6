//! Is the loop in `ralph.pid` alive? A PID alone can lie: after the loop dies the kernel may give
//! its number to an unrelated process. So a process only counts when it started no later than the
//! pid file was written.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// A process has the PID, but it started after the pid file was written.
    Reused,
}

/// Clock skew allowed between the process start time (whole seconds after boot) and the file's
/// mtime.
const SLACK: Duration = Duration::from_secs(2);

/// The kernel reports process start times in USER_HZ ticks, 100 on every Linux ABI.
const TICKS_PER_SECOND: u64 = 100;

#[cfg(target_os = "linux")]
pub fn loop_liveness(pid: u32, pid_file_written: SystemTime) -> Liveness {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Liveness::Dead;
    };
    let Some((state, start_ticks)) = parse_proc_stat(&stat) else {
        return Liveness::Dead;
    };
    if matches!(state, 'Z' | 'X' | 'x') {
        return Liveness::Dead;
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| parse_boot_time(&text));
    match boot {
        Some(boot_secs) => {
            let started = UNIX_EPOCH
                + Duration::from_secs(boot_secs)
                + Duration::from_millis(start_ticks.saturating_mul(1000 / TICKS_PER_SECOND));
            if started > pid_file_written + SLACK {
                Liveness::Reused
            } else {
                Liveness::Alive
            }
        }
        // Without a boot time the guard cannot run; a live PID is the best evidence left.
        None => Liveness::Alive,
    }
}

#[cfg(not(target_os = "linux"))]
pub fn loop_liveness(_pid: u32, _pid_file_written: SystemTime) -> Liveness {
    Liveness::Dead
}

/// `(state, start time in ticks)` from `/proc/PID/stat`. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_proc_stat(stat: &str) -> Option<(char, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 overall is the start time; the state is field 3.
    let start = fields.nth(22 - 3 - 1)?.parse().ok()?;
    Some((state, start))
}

/// `btime` (boot time, seconds since the epoch) from `/proc/stat`.
pub fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200";
        assert_eq!(parse_proc_stat(stat), Some(('S', 98765)));
        assert_eq!(parse_proc_stat("garbage"), None);
        assert_eq!(parse_proc_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_boot_time() {
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1 2 3\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_for_a_fresh_file_and_reused_for_an_old_one() {
        let me = std::process::id();
        assert_eq!(loop_liveness(me, SystemTime::now()), Liveness::Alive);
        // A pid file written long before this process started cannot be ours.
        assert_eq!(loop_liveness(me, UNIX_EPOCH), Liveness::Reused);
        assert_eq!(loop_liveness(u32::MAX, SystemTime::now()), Liveness::Dead);
    }
}
