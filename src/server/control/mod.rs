//! Acting on a project's loop for the operator: starting and stopping it ([`process`]),
//! pausing it, injecting an instruction and editing its files ([`files`]), the per-project
//! loop command, and telling every tab (`control` events) what a start or an injection became.
//! Role, origin and audit are the server functions' part; this module does the acts.

pub mod files;
pub mod process;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use crate::model::api_types::ApiError;
use crate::model::control::{ControlChange, Injection, StartForm, StartPhase};
use crate::model::protocol::ServerMessage;
use crate::server::project::liveness::{loop_liveness, Liveness};
use crate::server::{clock, hub::Hub, shutdown::Shutdown};

/// The server-wide control settings (`serve` flags).
#[derive(Clone, Debug)]
pub struct ControlOptions {
    /// What a start runs for a project with no setting of its own and no executable `ralph.sh`.
    pub loop_command: Option<String>,
    /// How long a stop waits after SIGTERM before SIGKILL.
    pub grace: Duration,
}

/// The grace period a stop gives the loop by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

impl Default for ControlOptions {
    fn default() -> Self {
        Self {
            loop_command: None,
            grace: DEFAULT_GRACE,
        }
    }
}

/// The file of the data directory that holds each project's loop command, by project path.
const COMMANDS_FILE: &str = "loop-commands.json";

/// The control side of the server: one per server, shared by the server functions.
pub struct Control {
    data_dir: Option<PathBuf>,
    options: ControlOptions,
    hub: Hub,
    /// The last start of each project from this server run.
    starts: Arc<Mutex<HashMap<String, StartPhase>>>,
    /// Project directory -> loop command (the operator's setting).
    commands: Mutex<BTreeMap<String, String>>,
    /// Projects whose injection is being watched for consumption.
    injections: Arc<Mutex<HashSet<String>>>,
}

/// One rule for poisoned locks: the data is plain maps, still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Control {
    pub fn new(data_dir: Option<PathBuf>, options: ControlOptions, hub: Hub) -> Self {
        let commands = data_dir
            .as_ref()
            .and_then(|dir| std::fs::read(dir.join(COMMANDS_FILE)).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            data_dir,
            options,
            hub,
            starts: Arc::default(),
            commands: Mutex::new(commands),
            injections: Arc::default(),
        }
    }

    pub fn grace(&self) -> Duration {
        self.options.grace
    }

    /// What a start of the project at `dir` runs: the operator's setting, else the project's
    /// own executable `ralph.sh`, else the server's `--loop-command`.
    pub fn command_for(&self, dir: &Path) -> Option<String> {
        if let Some(command) = lock(&self.commands).get(&dir.display().to_string()) {
            return Some(command.clone());
        }
        if files::has_own_script(dir) {
            return Some(dir.join("ralph.sh").display().to_string());
        }
        self.options.loop_command.clone()
    }

    /// Sets (or, with `None`, clears) the project's loop command, saved in the data directory.
    pub fn set_command(&self, dir: &Path, command: Option<String>) -> Result<(), ApiError> {
        let mut commands = lock(&self.commands);
        let key = dir.display().to_string();
        match command
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
        {
            Some(command) => commands.insert(key, command),
            None => commands.remove(&key),
        };
        let Some(data_dir) = &self.data_dir else {
            return Ok(());
        };
        let text = serde_json::to_vec_pretty(&*commands)
            .map_err(|error| ApiError::Control(error.to_string()))?;
        let save = || -> std::io::Result<()> {
            use std::io::Write;
            let mut temp = tempfile::NamedTempFile::new_in(data_dir)?;
            temp.write_all(&text)?;
            temp.as_file().sync_all()?;
            temp.persist(data_dir.join(COMMANDS_FILE))?;
            Ok(())
        };
        save().map_err(|error| ApiError::Control(format!("{COMMANDS_FILE}: {error}")))
    }

    /// The last start of the project from this server run.
    pub fn start_phase(&self, id: &str) -> Option<StartPhase> {
        lock(&self.starts).get(id).cloned()
    }

    /// The pid file, when it names a live process that started before it was written.
    pub fn live_pid(dir: &Path) -> Option<process::PidFile> {
        process::read_pid_file(dir)
            .filter(|file| loop_liveness(file.pid, file.written) == Liveness::Alive)
    }

    /// Starts the project's loop unless one runs or is starting (409). Returns the PID.
    pub fn start(&self, id: &str, dir: &Path, form: &StartForm) -> Result<u32, ApiError> {
        // Held across the spawn: two starts at once cannot both pass the check.
        let mut starts = lock(&self.starts);
        if let Some(StartPhase::Starting { pid }) = starts.get(id) {
            return Err(ApiError::LoopRunning(format!("process {pid} is starting")));
        }
        if let Some(live) = Self::live_pid(dir) {
            return Err(ApiError::LoopRunning(format!("process {}", live.pid)));
        }
        let command = self.command_for(dir).ok_or_else(|| {
            ApiError::Invalid(
                "no loop command: the project has no executable ralph.sh, none is set for it, \
                 and the server has no --loop-command"
                    .into(),
            )
        })?;
        let data_dir = self
            .data_dir
            .as_ref()
            .ok_or_else(|| ApiError::Control("the server has no data directory".into()))?;
        let loops = data_dir.join("loops");
        std::fs::create_dir_all(&loops)
            .map_err(|error| ApiError::Control(format!("{}: {error}", loops.display())))?;
        let safe_id: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let output = loops.join(format!("{safe_id}.out"));
        let spawned = SystemTime::now();
        let child = process::spawn(&process::Launch {
            project: dir,
            command: &command,
            form,
            output: &output,
        })?;
        let pid = child.id();
        starts.insert(id.to_owned(), StartPhase::Starting { pid });
        let (phases, hub, project) = (self.starts.clone(), self.hub.clone(), id.to_owned());
        process::supervise(child, dir.to_path_buf(), output, spawned, move |phase| {
            lock(&phases).insert(project.clone(), phase.clone());
            publish(
                &hub,
                &project,
                ControlChange {
                    entry: None,
                    start: Some(phase),
                    injection: None,
                },
            );
        });
        Ok(pid)
    }

    /// Tells every tab of the project about an action or a change.
    pub fn publish(&self, id: &str, change: ControlChange) {
        publish(&self.hub, id, change);
    }

    /// Watches `.ralph/inject.md` until the loop consumes it (the file goes away), then tells
    /// every tab, with the iteration `iteration` reports then. One watch per project.
    pub fn watch_injection(
        &self,
        id: &str,
        dir: PathBuf,
        iteration: impl Fn() -> Option<u32> + Send + 'static,
        shutdown: Shutdown,
    ) {
        if !lock(&self.injections).insert(id.to_owned()) {
            return;
        }
        let (watching, hub, project) = (self.injections.clone(), self.hub.clone(), id.to_owned());
        tokio::spawn(async move {
            let stopped = shutdown.wait();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(process::POLL) => {}
                }
                let dir = dir.clone();
                let pending = tokio::task::spawn_blocking(move || files::pending_injection(&dir))
                    .await
                    .unwrap_or(None);
                if pending.is_none() {
                    publish(
                        &hub,
                        &project,
                        ControlChange {
                            entry: None,
                            start: None,
                            injection: Some(Injection::Consumed {
                                iteration: iteration(),
                            }),
                        },
                    );
                    break;
                }
            }
            lock(&watching).remove(&project);
        });
    }
}

fn publish(hub: &Hub, id: &str, change: ControlChange) {
    hub.publish(ServerMessage::Control {
        project: id.to_owned(),
        timestamp: clock::now(),
        data: change,
    });
}
