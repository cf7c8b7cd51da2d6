//! The control actions as server functions: start, stop, pause, resume, inject, edit. Each one
//! checks that the caller is an operator (the gate has checked the origin), acts, records the
//! audit entry and publishes it as a `control` event on `project:ID`; the files it changes
//! reach every tab through the usual events as well.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::model::api_types::ApiError;
use crate::model::control::{ConfigForm, ControlState, EditableFile, StartForm};

/// What the control panel shows: loop state, pending start or injection, the audit trail.
#[server(prefix = "/api", endpoint = "control_state", input = Json)]
pub async fn load_control(project: String) -> Result<ControlState, ApiError> {
    use self::ssr::*;
    let (state, dir) = (super::ssr::state()?, project_dir(&project)?);
    let control = state.control.clone();
    let store = state.store.clone();
    let id = project.clone();
    off_thread(move || {
        use crate::server::control::{files, Control};
        let audit = store.audit(Some(&id), AUDIT_SHOWN).unwrap_or_default();
        ControlState {
            running: Control::live_pid(&dir).is_some(),
            paused: files::is_paused(&dir),
            start: control.start_phase(&id),
            injection: files::pending_injection(&dir)
                .map(|text| crate::model::control::Injection::Pending { text }),
            command: control.command_for(&dir),
            audit,
        }
    })
    .await
}

/// How many audit entries the project page shows.
pub const AUDIT_SHOWN: usize = 50;

/// Starts the project's loop (409 if one runs or is starting). Returns its PID.
#[server(prefix = "/api", endpoint = "start_loop", input = Json)]
pub async fn start_loop(project: String, form: StartForm) -> Result<u32, ApiError> {
    use self::ssr::*;
    let actor = super::ssr::operator()?;
    let params = serde_json::json!({
        "max_iterations": form.max_iterations, "cli": form.cli, "flags": form.flags,
        "test": form.test, "model": form.model,
    });
    let result = match project_dir(&project) {
        Ok(dir) => {
            let control = super::ssr::state()?.control;
            let id = project.clone();
            off_thread(move || control.start(&id, &dir, &form))
                .await
                .and_then(|started| started)
        }
        Err(error) => Err(error),
    };
    let done = |pid: &u32| format!("started process {pid}");
    finish(&actor, &project, "start", params, result, done).await
}

/// Stops the loop: SIGTERM to its group if its PID passes the reuse guard, SIGKILL after the
/// grace period. A PID that fails the guard is never signalled (409). Says what happened.
#[server(prefix = "/api", endpoint = "stop_loop", input = Json)]
pub async fn stop_loop(project: String) -> Result<String, ApiError> {
    use self::ssr::*;
    let actor = super::ssr::operator()?;
    let result = match project_dir(&project) {
        Ok(dir) => {
            let control = super::ssr::state()?.control;
            // Up to the grace period: not under the file-read time limit.
            tokio::task::spawn_blocking(move || stop_guarded(&control, &dir))
                .await
                .map_err(|_| ApiError::Control("the stop was interrupted".into()))
                .and_then(|stopped| stopped)
        }
        Err(error) => Err(error),
    };
    let params = serde_json::Value::Null;
    finish(&actor, &project, "stop", params, result, String::clone).await
}

/// Creates `.ralph/pause`: the loop pauses at its next iteration boundary.
#[server(prefix = "/api", endpoint = "pause_loop", input = Json)]
pub async fn pause_loop(project: String) -> Result<(), ApiError> {
    use self::ssr::*;
    use crate::server::control::files::{set_pause, Pause};
    let actor = super::ssr::operator()?;
    let result = on_project(&project, |dir| set_pause(&dir, Pause::Pause)).await;
    let params = serde_json::Value::Null;
    finish(&actor, &project, "pause", params, result, |_| String::new()).await
}

/// Removes `.ralph/pause`.
#[server(prefix = "/api", endpoint = "resume_loop", input = Json)]
pub async fn resume_loop(project: String) -> Result<(), ApiError> {
    use self::ssr::*;
    use crate::server::control::files::{set_pause, Pause};
    let actor = super::ssr::operator()?;
    let result = on_project(&project, |dir| set_pause(&dir, Pause::Resume)).await;
    let params = serde_json::Value::Null;
    finish(&actor, &project, "resume", params, result, |_| {
        String::new()
    })
    .await
}

/// Appends an instruction to `.ralph/inject.md` for the loop's next iteration; every tab sees
/// it pending, then consumed.
#[server(prefix = "/api", endpoint = "inject", input = Json)]
pub async fn inject(project: String, text: String) -> Result<(), ApiError> {
    use self::ssr::*;
    let actor = super::ssr::operator()?;
    let length = text.len();
    let body = text.clone();
    let result = on_project(&project, move |dir| {
        crate::server::control::files::inject(&dir, &body)
    })
    .await;
    if result.is_ok() {
        if let (Ok(state), Ok(dir)) = (super::ssr::state(), project_dir(&project)) {
            // Pending first, then the watch: the watch's "consumed" must come after it.
            state.control.publish(
                &project,
                crate::model::control::ControlChange {
                    entry: None,
                    start: None,
                    injection: Some(crate::model::control::Injection::Pending {
                        text: text.clone(),
                    }),
                },
            );
            let (index, id) = (state.index.clone(), project.clone());
            let iteration = move || {
                index
                    .with_project(&id, |project| project.summary().iteration)
                    .flatten()
            };
            state
                .control
                .watch_injection(&project, dir, iteration, state.shutdown.clone());
        }
    }
    // The text itself is the operator's; the trail keeps its length and first words.
    let params = serde_json::json!({
        "bytes": length,
        "start": text.chars().take(80).collect::<String>(),
    });
    finish(&actor, &project, "inject", params, result, |_| {
        String::new()
    })
    .await
}

/// An editable file with the version to save against. The plan is read-only while a loop runs.
#[server(prefix = "/api", endpoint = "editable_file", input = Json)]
pub async fn load_editable(project: String, name: String) -> Result<EditableFile, ApiError> {
    use self::ssr::*;
    on_project(&project, move |dir| {
        use crate::server::control::{files, Control};
        let mut file = files::load(&dir, &name)?;
        file.editable = name != files::PLAN || Control::live_pid(&dir).is_none();
        Ok(file)
    })
    .await
    .map_err(super::ssr::fail)
}

/// Saves an editable file if it is still at `version` (409 with its current text otherwise).
/// Returns the new version.
#[server(prefix = "/api", endpoint = "save_file", input = Json)]
pub async fn save_file(
    project: String,
    name: String,
    version: String,
    text: String,
) -> Result<String, ApiError> {
    use self::ssr::*;
    let actor = super::ssr::operator()?;
    let params = serde_json::json!({ "file": name, "bytes": text.len(), "from": version });
    let file = name.clone();
    let result = on_project(&project, move |dir| {
        use crate::server::control::{files, Control};
        if file == files::CONFIG {
            // The config goes through its form (validated, unknown keys kept) or as valid JSON.
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|error| ApiError::Invalid(format!("config.json: {error}")))?;
        }
        if file == files::PLAN && Control::live_pid(&dir).is_some() {
            return Err(ApiError::LoopRunning(
                "the plan is read-only while the loop runs".into(),
            ));
        }
        files::save(&dir, &file, &version, &text)
    })
    .await;
    finish(&actor, &project, "edit", params, result, String::clone).await
}

/// Saves the known keys of `.ralph/config.json` from the form, keeping every other key, if the
/// file is still at `version`. Returns the new version.
#[server(prefix = "/api", endpoint = "save_config", input = Json)]
pub async fn save_config(
    project: String,
    version: String,
    form: ConfigForm,
) -> Result<String, ApiError> {
    use self::ssr::*;
    let actor = super::ssr::operator()?;
    let params = serde_json::to_value(&form).unwrap_or_default();
    let result = on_project(&project, move |dir| {
        use crate::server::control::files;
        let current = files::load(&dir, files::CONFIG)?;
        if current.version != version {
            return Err(ApiError::Changed {
                name: files::CONFIG.into(),
                current: current.text,
                version: current.version,
            });
        }
        let text = files::merge_config(current.text.as_deref(), &form)?;
        files::save(&dir, files::CONFIG, &version, &text)
    })
    .await;
    finish(
        &actor,
        &project,
        "edit_config",
        params,
        result,
        String::clone,
    )
    .await
}

/// Deletes a spec if it is still at `version`.
#[server(prefix = "/api", endpoint = "delete_spec", input = Json)]
pub async fn delete_spec(project: String, name: String, version: String) -> Result<(), ApiError> {
    use self::ssr::*;
    let actor = super::ssr::operator()?;
    let params = serde_json::json!({ "file": name, "from": version });
    let result = on_project(&project, move |dir| {
        crate::server::control::files::delete(&dir, &name, &version)
    })
    .await;
    finish(&actor, &project, "delete", params, result, |_| {
        String::new()
    })
    .await
}

/// Sets the command a start runs for this project (`None`: back to the default).
#[server(prefix = "/api", endpoint = "loop_command", input = Json)]
pub async fn set_loop_command(project: String, command: Option<String>) -> Result<(), ApiError> {
    use self::ssr::*;
    let actor = super::ssr::operator()?;
    let params = serde_json::json!({ "command": command });
    let result = match (project_dir(&project), super::ssr::state()) {
        (Ok(dir), Ok(state)) => {
            let control = state.control;
            off_thread(move || control.set_command(&dir, command))
                .await
                .and_then(|set| set)
        }
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    finish(&actor, &project, "set_command", params, result, |_| {
        String::new()
    })
    .await
}

#[cfg(feature = "ssr")]
mod ssr {
    use std::path::{Path, PathBuf};

    use crate::api::ssr::{record, Actor};
    use crate::model::api_types::ApiError;
    use crate::model::audit::Outcome;
    use crate::model::control::ControlChange;
    use crate::server::control::{process, Control};

    pub use crate::api::ssr::project_dir;

    /// Runs a short blocking act off the async threads, with the file-read time limit.
    pub async fn off_thread<T: Send + 'static>(
        act: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        crate::server::safe_open::off_thread(act)
            .await
            .map_err(|error| ApiError::Control(error.to_string()))
    }

    /// Runs `act` on the project's directory off the async threads.
    pub async fn on_project<T: Send + 'static>(
        project: &str,
        act: impl FnOnce(PathBuf) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let dir = project_dir(project)?;
        off_thread(move || act(dir)).await.and_then(|done| done)
    }

    /// The reuse guard, then the stop. Runs for up to the grace period.
    pub fn stop_guarded(control: &Control, dir: &Path) -> Result<String, ApiError> {
        let pid_file = process::read_pid_file(dir)
            .ok_or_else(|| ApiError::NoLoop("there is no pid file".into()))?;
        let command = control
            .command_for(dir)
            .unwrap_or_else(|| "ralph.sh".into());
        match process::guard(pid_file, &command) {
            Ok(()) => {}
            Err(process::NotTheLoop::Dead) => {
                return Err(ApiError::NoLoop(format!(
                    "process {} is not running",
                    pid_file.pid
                )))
            }
            Err(why) => {
                return Err(ApiError::NotTheLoop(format!(
                    "pid {}: {why}; nothing was signalled",
                    pid_file.pid
                )))
            }
        }
        let (stopped, target) = process::stop(pid_file, control.grace())?;
        Ok(match stopped {
            process::Stopped::Terminated { elapsed } => format!(
                "SIGTERM to {target}; it ended after {:.1} s",
                elapsed.as_secs_f64()
            ),
            process::Stopped::Killed => format!(
                "SIGTERM, then SIGKILL to {target} after {} s",
                control.grace().as_secs()
            ),
        })
    }

    /// Records the action in the audit trail, tells every tab (`control`), and answers with the
    /// error's own status when it failed.
    pub async fn finish<T>(
        actor: &Actor,
        project: &str,
        action: &str,
        params: serde_json::Value,
        result: Result<T, ApiError>,
        done: impl FnOnce(&T) -> String,
    ) -> Result<T, ApiError> {
        let (outcome, detail) = match &result {
            Ok(value) => (Outcome::Done, done(value)),
            Err(error) if error.status() < 500 => (Outcome::Refused, error.to_string()),
            Err(error) => (Outcome::Failed, error.to_string()),
        };
        let entry = record(actor, Some(project), action, params, outcome, detail).await;
        if let Ok(state) = crate::api::ssr::state() {
            if state.index.contains(project) {
                state.control.publish(
                    project,
                    ControlChange {
                        entry,
                        start: None,
                        injection: None,
                    },
                );
            }
        }
        result.map_err(crate::api::ssr::fail)
    }
}
