//! What `/proc` says about a process: CPU time (utime + stime) and memory (VmRSS, VmHWM).

use std::{fs, io, time::Duration};

/// Clock ticks per second of the `/proc/PID/stat` CPU counters.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// User + system CPU time of a process (all its threads), from `/proc/PID/stat`.
pub fn cpu_time(pid: Pid) -> io::Result<Duration> {
    let path = match pid {
        Pid::Me => "/proc/self/stat".to_owned(),
        Pid::Other(pid) => format!("/proc/{pid}/stat"),
    };
    let text = fs::read_to_string(&path)?;
    parse_cpu_ticks(&text)
        .map(|ticks| Duration::from_micros(ticks * 1_000_000 / ticks_per_second()))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: unexpected format"),
            )
        })
}

/// utime (field 14) + stime (field 15). The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' the first field is field 3 (state): utime is index 14 - 3 = 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[derive(Clone, Copy, Debug)]
pub enum Pid {
    Me,
    Other(u32),
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path)?;
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: no {key}")))
}

/// The CPU model (first `model name` of `/proc/cpuinfo`) and the number of online CPUs.
pub fn machine() -> (String, usize) {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (model, cpus)
}

/// The 1-minute load average (other work on the machine disturbs the numbers).
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Total memory in GiB, from `/proc/meminfo`.
pub fn memory_gib() -> Option<f64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = text.lines().find_map(|line| {
        line.strip_prefix("MemTotal:")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })?;
    Some(kib / 1024.0 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "42 (we(ird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }
}
