//! The demo's BuildRunner build: a project (`shop-build`) whose simulated build writes the files
//! BuildRunner writes under `.buildrunner/` (features moving through their states, a checkpoint
//! per finished feature, one rollback, output and an error appended to the context files, a
//! build log), so the build page and the build stream have something live to show.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::demo::{append, replace_file};
use crate::server::Shutdown;

/// The demo build's directory name, beside the demo's loops.
const NAME: &str = "shop-build";

const FEATURES: &[(&str, &str, &str)] = &[
    ("feat-001", "User login", "critical"),
    ("feat-002", "Product catalogue", "high"),
    ("feat-003", "Shopping cart", "high"),
    ("feat-004", "Checkout", "critical"),
    ("feat-005", "Order history", "medium"),
    ("feat-006", "Admin reports", "low"),
];

/// Starts the simulated build next to the demo's projects (in the directory that holds them),
/// stopped with the other loops.
pub fn spawn(
    loops: &mut JoinSet<()>,
    projects: &[PathBuf],
    iteration: Duration,
    shutdown: Shutdown,
) {
    let Some(root) = projects
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
    else {
        return;
    };
    let stop = shutdown.wait();
    loops.spawn(async move {
        let dir = root.join(NAME);
        tokio::select! {
            result = simulate(&dir, iteration) => {
                if let Err(error) = result {
                    tracing::warn!(dir = %dir.display(), %error, "demo build stopped");
                }
            }
            _ = stop => {}
        }
    });
}

/// Where each feature stands: `planned`, `in_progress` or `complete`.
struct Build {
    dir: PathBuf,
    states: Vec<&'static str>,
    /// Checkpoint file names, oldest first.
    checkpoints: Vec<String>,
}

async fn simulate(dir: &Path, iteration: Duration) -> io::Result<()> {
    let mut build = Build::create(dir)?;
    for (index, (_, feature, _)) in FEATURES.iter().enumerate() {
        build.start(index)?;
        tokio::time::sleep(iteration / 2).await;
        build.log(&format!("running tests for {feature}"))?;
        build.test_output(index)?;
        tokio::time::sleep(iteration / 2).await;
        build.finish(index)?;
        build.checkpoint(index)?;
        // The fourth feature breaks the build: an error, a rollback to the checkpoint before
        // it, and the feature done again.
        if index == 3 {
            tokio::time::sleep(iteration / 2).await;
            build.error()?;
            tokio::time::sleep(iteration / 2).await;
            build.rollback(index)?;
            tokio::time::sleep(iteration).await;
            build.finish(index)?;
            build.checkpoint(index)?;
        }
    }
    build.log("build complete")?;
    append(
        &dir.join(".buildrunner/context/current-work.md"),
        "\n## Done\n\nEvery feature is complete.\n",
    )
}

impl Build {
    fn create(dir: &Path) -> io::Result<Self> {
        let buildrunner = dir.join(".buildrunner");
        fs::create_dir_all(buildrunner.join("checkpoints"))?;
        fs::create_dir_all(buildrunner.join("context"))?;
        let context = buildrunner.join("context");
        fs::write(
            context.join("architecture.md"),
            "# Architecture\n\n- **API**: axum service in `api/`\n- **Web**: Leptos front end\n- **Store**: SQLite\n",
        )?;
        fs::write(
            context.join("current-work.md"),
            "# Current work\n\nStarting the build.\n",
        )?;
        fs::write(
            context.join("blockers.md"),
            "# Blockers\n\n*None currently*\n",
        )?;
        fs::write(context.join("test-results.md"), "# Test results\n")?;
        let build = Build {
            dir: dir.to_path_buf(),
            states: vec!["planned"; FEATURES.len()],
            checkpoints: Vec::new(),
        };
        build.write_features()?;
        Ok(build)
    }

    fn start(&mut self, index: usize) -> io::Result<()> {
        self.states[index] = "in_progress";
        self.write_features()?;
        self.log(&format!("building {}", FEATURES[index].1))?;
        append(
            &self.dir.join(".buildrunner/context/current-work.md"),
            &format!("\n## Working on {}\n", FEATURES[index].1),
        )
    }

    fn finish(&mut self, index: usize) -> io::Result<()> {
        self.states[index] = "complete";
        self.write_features()?;
        self.log(&format!("{} complete", FEATURES[index].1))
    }

    fn test_output(&self, index: usize) -> io::Result<()> {
        append(
            &self.dir.join(".buildrunner/context/test-results.md"),
            &format!(
                "\n## Output: pytest\n**Timestamp:** {}\n\n```\n{} passed in 0.{}s\n```\n",
                local_time(),
                4 + index * 3,
                index + 2
            ),
        )
    }

    fn error(&self) -> io::Result<()> {
        append(
            &self.dir.join(".buildrunner/context/blockers.md"),
            &format!(
                "\n---\n## Auto-Detected Error - {}\n\n**Source:** `api/checkout.py`\n**Detected By:** Error Watcher Daemon\n\n### TypeError\n```\nunsupported operand type(s) for +: 'int' and 'str'\n```\n",
                local_time()
            ),
        )?;
        self.log("ERROR checkout tests failed; rolling back")
    }

    /// `br build rollback`: the checkpoint before the last one becomes active, the last one
    /// rolled back, and the feature it finished is under way again.
    fn rollback(&mut self, index: usize) -> io::Result<()> {
        let [.., target, last] = self.checkpoints.as_slice() else {
            return Ok(());
        };
        let (target, last) = (target.clone(), last.clone());
        self.set_status(&target, "active")?;
        self.set_status(&last, "rolled_back")?;
        self.states[index] = "in_progress";
        self.write_features()?;
        self.log(&format!(
            "rolled back to {}",
            target.trim_end_matches(".json")
        ))
    }

    fn set_status(&self, name: &str, status: &str) -> io::Result<()> {
        let path = self.dir.join(".buildrunner/checkpoints").join(name);
        let mut checkpoint: Value = serde_json::from_slice(&fs::read(&path)?)?;
        checkpoint["status"] = json!(status);
        replace_file(&path, &format!("{checkpoint:#}"))
    }

    fn checkpoint(&mut self, index: usize) -> io::Result<()> {
        let (stamp, timestamp) = checkpoint_stamp();
        let id = format!("checkpoint_{stamp}");
        let (_, feature, _) = FEATURES[index];
        let phase = format!("feature_{}_complete", index + 1);
        let checkpoint = json!({
            "id": id,
            "timestamp": timestamp,
            "phase": phase,
            "tasks_completed": [format!("implement {feature}"), format!("test {feature}")],
            "files_created": [format!("api/{}.py", feature.to_lowercase().replace(' ', "_"))],
            "status": "created",
            "metadata": {
                "name": phase,
                "description": format!("{feature} built and tested"),
                "created_by": "demo",
                "timestamp": timestamp,
            },
        });
        let name = format!("{id}.json");
        replace_file(
            &self.dir.join(".buildrunner/checkpoints").join(&name),
            &format!("{checkpoint:#}"),
        )?;
        self.checkpoints.push(name);
        Ok(())
    }

    fn write_features(&self) -> io::Result<()> {
        let features: Vec<Value> = FEATURES
            .iter()
            .zip(&self.states)
            .map(|((id, name, priority), status)| {
                let progress = match *status {
                    "complete" => 100,
                    "in_progress" => 50,
                    _ => 0,
                };
                json!({"id": id, "name": name, "priority": priority, "status": status, "progress": progress})
            })
            .collect();
        let count = |wanted: &str| self.states.iter().filter(|s| **s == wanted).count();
        let complete = count("complete");
        let registry = json!({
            "project": "shop",
            "version": "0.1.0",
            "status": "in_development",
            "last_updated": crate::server::clock::now(),
            "features": features,
            "metrics": {
                "features_complete": complete,
                "features_in_progress": count("in_progress"),
                "features_planned": count("planned"),
                "completion_percentage": (complete * 100 / FEATURES.len()) as f64,
            },
        });
        replace_file(
            &self.dir.join(".buildrunner/features.json"),
            &format!("{registry:#}"),
        )
    }

    fn log(&self, line: &str) -> io::Result<()> {
        append(
            &self.dir.join(".buildrunner/build.log"),
            &format!("[{}] {line}\n", local_time()),
        )
    }
}

/// `YYYYMMDD_HHMMSS_ffffff` and `YYYY-MM-DDTHH:MM:SS.ffffff`, as BuildRunner names and dates
/// its checkpoints (UTC here: the demo has no time zone to honour).
fn checkpoint_stamp() -> (String, String) {
    let full = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let timestamp = full.trim_end_matches('Z').to_owned();
    let digits = |range: std::ops::Range<usize>| -> String {
        timestamp
            .get(range)
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect()
    };
    let stamp = format!("{}_{}_{}", digits(0..10), digits(11..19), digits(20..26));
    (stamp, timestamp)
}

/// `YYYY-MM-DD HH:MM:SS` as the tools write it.
fn local_time() -> String {
    let full = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    full.trim_end_matches('Z').replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::buildrunner::{
        checkpoint::CheckpointStamp,
        features::parse_features,
        status::{CheckpointStatus, WorkStatus},
        timeline::Timeline,
    };

    /// The simulated build, run to its end with no pauses, leaves what BuildRunner leaves: every
    /// feature complete, a checkpoint per feature plus the redone one, one rolled back.
    #[tokio::test]
    async fn the_simulated_build_writes_real_buildrunner_files() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join(NAME);
        simulate(&dir, Duration::ZERO).await.expect("simulated");
        let features = fs::read(dir.join(".buildrunner/features.json")).expect("features");
        let (features, warnings) = parse_features(&features);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(features.metric_disagreements().is_empty());
        assert!(features
            .features
            .iter()
            .all(|f| f.status == WorkStatus::Completed));
        let names = crate::server::safe_open::list_files(&dir, ".buildrunner/checkpoints")
            .expect("checkpoints");
        assert!(
            names
                .iter()
                .all(|n| CheckpointStamp::from_name(n).is_some()),
            "{names:?}"
        );
        let checkpoints = names
            .iter()
            .map(|name| {
                let bytes =
                    fs::read(dir.join(".buildrunner/checkpoints").join(name)).expect("read");
                let (checkpoint, warnings) =
                    crate::contract::buildrunner::checkpoint::parse_checkpoint(&bytes);
                assert!(warnings.is_empty(), "{name}: {warnings:?}");
                (name.clone(), checkpoint)
            })
            .collect();
        let timeline = Timeline::build(checkpoints);
        let rolled = timeline
            .entries
            .iter()
            .filter(|e| e.checkpoint.status == CheckpointStatus::RolledBack)
            .count();
        assert!(rolled >= 1, "a rollback");
        let blockers =
            fs::read_to_string(dir.join(".buildrunner/context/blockers.md")).expect("read");
        assert!(blockers.contains("## Auto-Detected Error"));
    }
}
