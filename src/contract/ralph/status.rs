//! What a loop is doing (running, paused, complete, error, stopped) and the one rule that
//! decides it, for server and client alike.

use serde::{Deserialize, Serialize};

/// What a loop is doing right now, derived by [`derive_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Paused,
    Complete,
    Error,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Complete => "complete",
            Status::Error => "error",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about a project that decide its status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusInputs {
    /// The PID in `ralph.pid` belongs to the loop process and it is alive.
    pub loop_alive: bool,
    /// `.ralph/pause` exists.
    pub pause_requested: bool,
    /// The plan's last `STATUS:` line says `COMPLETE`.
    pub plan_complete: bool,
    /// The last iteration failed, or a pending ERROR/BLOCKED notification is newer than it.
    pub last_iteration_failed: bool,
}

pub fn derive_status(inputs: StatusInputs) -> Status {
    match inputs {
        StatusInputs {
            loop_alive: true,
            pause_requested: true,
            ..
        } => Status::Paused,
        StatusInputs {
            loop_alive: true, ..
        } => Status::Running,
        StatusInputs {
            plan_complete: true,
            ..
        } => Status::Complete,
        StatusInputs {
            last_iteration_failed: true,
            ..
        } => Status::Error,
        _ => Status::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(alive: bool, pause: bool, complete: bool, failed: bool) -> Status {
        derive_status(StatusInputs {
            loop_alive: alive,
            pause_requested: pause,
            plan_complete: complete,
            last_iteration_failed: failed,
        })
    }

    #[test]
    fn a_live_loop_runs_or_pauses_whatever_the_plan_says() {
        for complete in [false, true] {
            for failed in [false, true] {
                assert_eq!(status(true, false, complete, failed), Status::Running);
                assert_eq!(status(true, true, complete, failed), Status::Paused);
            }
        }
    }

    #[test]
    fn a_dead_loop_is_complete_error_or_stopped() {
        // A pause file without a live loop pauses nothing.
        for pause in [false, true] {
            assert_eq!(status(false, pause, true, false), Status::Complete);
            assert_eq!(status(false, pause, true, true), Status::Complete);
            assert_eq!(status(false, pause, false, true), Status::Error);
            assert_eq!(status(false, pause, false, false), Status::Stopped);
        }
    }
}
