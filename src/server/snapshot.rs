//! Reads one project's files into a [`ProjectSummary`]. This is the I/O edge: the parsing and the
//! rules live in [`crate::contract`]. Missing or malformed files become warnings, never errors.

use std::{
    fs,
    io::{self, Read},
    path::Path,
};

use crate::contract::{
    pid::parse_pid,
    plan::parse_plan,
    status::{derive_status, StatusInputs},
};
use crate::model::ProjectSummary;

use super::process::{loop_liveness, Liveness};

pub const PLAN_FILE: &str = "IMPLEMENTATION_PLAN.md";
/// A plan bigger than this is read only up to here (and says so).
const MAX_PLAN_BYTES: u64 = 4 * 1024 * 1024;
/// A pid file is a number; anything longer is garbage and is not read whole.
const MAX_PID_BYTES: u64 = 64;

pub fn read_project(id: &str, dir: &Path) -> ProjectSummary {
    let mut warnings = Vec::new();
    let ralph = dir.join(".ralph");

    let loop_alive = match read_capped(&ralph.join("ralph.pid"), MAX_PID_BYTES) {
        Ok(None) => false,
        Ok(Some((bytes, _))) => match parse_pid(&String::from_utf8_lossy(&bytes)) {
            Ok(pid) => {
                let written = fs::metadata(ralph.join("ralph.pid")).and_then(|m| m.modified());
                match written.map(|written| loop_liveness(pid, written)) {
                    Ok(Liveness::Alive) => true,
                    Ok(Liveness::Dead) => false,
                    Ok(Liveness::Reused) => {
                        warnings.push(format!(
                            "ralph.pid names PID {pid}, which now belongs to another process"
                        ));
                        false
                    }
                    Err(error) => {
                        warnings.push(format!("cannot read ralph.pid's time: {error}"));
                        false
                    }
                }
            }
            Err(error) => {
                warnings.push(error.to_string());
                false
            }
        },
        Err(error) => {
            warnings.push(format!("cannot read ralph.pid: {error}"));
            false
        }
    };

    let pause_requested = ralph.join("pause").exists();

    let plan = match read_capped(&dir.join(PLAN_FILE), MAX_PLAN_BYTES) {
        Ok(None) => None,
        Ok(Some((bytes, truncated))) => {
            if truncated {
                warnings.push(format!(
                    "{PLAN_FILE} is larger than {} MiB; only the start is read",
                    MAX_PLAN_BYTES / (1024 * 1024)
                ));
            }
            let text = match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => {
                    warnings.push(format!(
                        "{PLAN_FILE} is not valid UTF-8; shown as far as readable"
                    ));
                    String::from_utf8_lossy(error.as_bytes()).into_owned()
                }
            };
            Some(parse_plan(&text))
        }
        Err(error) => {
            warnings.push(format!("cannot read {PLAN_FILE}: {error}"));
            None
        }
    };

    let status = derive_status(StatusInputs {
        loop_alive,
        pause_requested,
        plan_complete: plan.as_ref().is_some_and(|p| p.is_complete()),
        // Iteration history (iterations.jsonl, notifications) feeds this once it is indexed.
        last_iteration_failed: false,
    });

    ProjectSummary {
        id: id.to_owned(),
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string()),
        path: dir.display().to_string(),
        status,
        plan: plan.map(|p| p.progress()),
        warnings,
    }
}

/// Reads at most `cap` bytes. `Ok(None)` when the file does not exist; the flag says whether the
/// file was longer than the cap.
fn read_capped(path: &Path, cap: u64) -> io::Result<Option<(Vec<u8>, bool)>> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    let truncated = bytes.len() as u64 > cap;
    bytes.truncate(cap as usize);
    Ok(Some((bytes, truncated)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join(".ralph")).expect("mkdir .ralph");
        dir
    }

    #[test]
    fn empty_project_is_stopped_without_plan() {
        let dir = project();
        let summary = read_project("p", dir.path());
        assert_eq!(summary.status, Status::Stopped);
        assert_eq!(summary.plan, None);
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    }

    #[test]
    fn live_pid_runs_and_pause_pauses() {
        let dir = project();
        fs::write(
            dir.path().join(".ralph/ralph.pid"),
            std::process::id().to_string(),
        )
        .expect("write pid");
        assert_eq!(read_project("p", dir.path()).status, Status::Running);
        fs::write(dir.path().join(".ralph/pause"), "").expect("write pause");
        assert_eq!(read_project("p", dir.path()).status, Status::Paused);
    }

    #[test]
    fn garbage_pid_is_a_warning_not_a_crash() {
        let dir = project();
        fs::write(dir.path().join(".ralph/ralph.pid"), "not-a-pid\n").expect("write pid");
        let summary = read_project("p", dir.path());
        assert_eq!(summary.status, Status::Stopped);
        assert_eq!(summary.warnings.len(), 1);
        assert!(summary.warnings[0].contains("ralph.pid"));
    }

    #[test]
    fn complete_plan_without_loop_is_complete() {
        let dir = project();
        fs::write(
            dir.path().join(PLAN_FILE),
            b"## P\n- [x] 1.1: a\n- [ ] 1.2: b\nSTATUS: COMPLETE\n\xff\n",
        )
        .expect("write plan");
        let summary = read_project("p", dir.path());
        assert_eq!(summary.status, Status::Complete);
        let plan = summary.plan.expect("plan parsed");
        assert_eq!((plan.tasks_done, plan.tasks_total), (1, 2));
        assert_eq!(summary.warnings.len(), 1, "invalid UTF-8 is reported");
    }
}
