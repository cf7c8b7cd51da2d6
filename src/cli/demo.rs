//! `loopwatch demo`: a project tree with simulated Ralph loops that write real files (log lines,
//! iteration rows, plan ticks, the pid file, pauses and notifications), so a newcomer sees live
//! updates at once.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use tokio::task::JoinSet;

use crate::server::{clock::now, Shutdown};

pub struct DemoTree {
    root: PathBuf,
    projects: Vec<PathBuf>,
    /// Removed on drop when the tree lives in a temporary directory.
    _temp: Option<tempfile::TempDir>,
}

struct DemoProject {
    name: &'static str,
    phases: &'static [(&'static str, &'static [&'static str])],
}

const PROJECTS: &[DemoProject] = &[
    DemoProject {
        name: "todo-api",
        phases: &[
            (
                "Phase 1: Backend setup",
                &["Create axum service", "Add SQLite pool", "Health endpoint"],
            ),
            (
                "Phase 2: Todos",
                &["CRUD routes", "Validation errors", "Pagination"],
            ),
            (
                "Phase 3: Hardening",
                &["Rate limiting", "Integration tests"],
            ),
        ],
    },
    DemoProject {
        name: "landing-page",
        phases: &[
            (
                "Phase 1: Layout",
                &["Hero section", "Feature grid", "Footer"],
            ),
            (
                "Phase 2: Content",
                &["Pricing table", "FAQ accordion", "Contact form"],
            ),
            (
                "Phase 3: Polish",
                &["Dark mode", "Lighthouse fixes", "Deploy preview"],
            ),
        ],
    },
];

impl DemoTree {
    pub fn create(dir: Option<PathBuf>) -> io::Result<Self> {
        let (root, temp) = match dir {
            Some(dir) => {
                fs::create_dir_all(&dir)?;
                (dir.canonicalize()?, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("loopwatch-demo-")
                    .tempdir()?;
                (temp.path().canonicalize()?, Some(temp))
            }
        };
        let mut projects = Vec::new();
        for project in PROJECTS {
            let dir = root.join(project.name);
            write_project(&dir, project)?;
            projects.push(dir);
        }
        Ok(Self {
            root,
            projects,
            _temp: temp,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn projects(&self) -> Vec<PathBuf> {
        self.projects.clone()
    }
}

fn write_project(dir: &Path, project: &DemoProject) -> io::Result<()> {
    fs::create_dir_all(dir.join(".ralph"))?;
    fs::create_dir_all(dir.join("specs"))?;
    let mut plan = format!(
        "# Implementation plan: {}\n\nSTATUS: IN PROGRESS\n",
        project.name
    );
    for (p, (phase, tasks)) in project.phases.iter().enumerate() {
        plan.push_str(&format!("\n## {phase}\n"));
        for (t, task) in tasks.iter().enumerate() {
            plan.push_str(&format!("- [ ] {}.{}: {task}\n", p + 1, t + 1));
        }
    }
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), plan)?;
    fs::write(
        dir.join("AGENTS.md"),
        "# Agents\n\nRun `cargo test` before every commit.\n",
    )?;
    fs::write(
        dir.join("PROMPT.md"),
        "Study IMPLEMENTATION_PLAN.md, pick the next task, implement it, tick it, commit.\n",
    )?;
    fs::write(
        dir.join("specs/overview.md"),
        format!("# {}\n\nA demo project.\n", project.name),
    )?;
    fs::write(
        dir.join(".ralph/config.json"),
        r#"{"cli":"claude","max_iterations":20,"test_command":"cargo test","model_pricing":{"claude":0.015}}"#,
    )?;
    Ok(())
}

/// Starts one simulated loop per project. Abort the returned set to stop them.
pub fn simulate(projects: Vec<PathBuf>, iteration: Duration, shutdown: Shutdown) -> JoinSet<()> {
    let mut loops = JoinSet::new();
    super::demo_build::spawn(&mut loops, &projects, iteration, shutdown.clone());
    for (n, dir) in projects.into_iter().enumerate() {
        let stop = shutdown.wait();
        loops.spawn(async move {
            tokio::select! {
                result = simulate_loop(&dir, iteration, n) => {
                    if let Err(error) = result {
                        tracing::warn!(dir = %dir.display(), %error, "demo loop stopped");
                    }
                }
                _ = stop => {}
            }
        });
    }
    loops
}

async fn simulate_loop(dir: &Path, iteration: Duration, seed: usize) -> io::Result<()> {
    let ralph = dir.join(".ralph");
    fs::write(ralph.join("ralph.pid"), std::process::id().to_string())?;
    // Stagger the loops so their events interleave.
    tokio::time::sleep(iteration / 3 * seed as u32).await;
    let total = count_open_tasks(dir)?;
    for i in 1..=total {
        let started = SystemTime::now();
        append(
            &ralph.join("ralph.log"),
            &format!("[{}] === Iteration {i} (loop {i}/{total}) ===\n", clock()),
        )?;
        for step in [
            "Running: claude -p PROMPT.md",
            "Reading IMPLEMENTATION_PLAN.md",
            "Editing src/lib.rs",
        ] {
            tokio::time::sleep(iteration / 4).await;
            append(&ralph.join("ralph.log"), &format!("[{}] {step}\n", clock()))?;
        }
        // The second demo project pauses for one iteration, as an operator would.
        if seed == 1 && i == 3 {
            fs::write(ralph.join("pause"), "")?;
            append(
                &ralph.join("ralph.log"),
                &format!("[{}] \u{23f8}\u{fe0f} Paused\n", clock()),
            )?;
            tokio::time::sleep(iteration).await;
            fs::remove_file(ralph.join("pause"))?;
            append(
                &ralph.join("ralph.log"),
                &format!("[{}] \u{25b6}\u{fe0f} Resumed\n", clock()),
            )?;
        }
        tokio::time::sleep(iteration / 4).await;
        let task = tick_next_task(dir)?;
        let tokens = 40.0 + ((i * 7 + seed * 13) % 30) as f64;
        append(
            &ralph.join("ralph.log"),
            &format!(
                "[{}] \u{2705} Tests passed\ntokens used\n{:.3}\n",
                clock(),
                tokens
            ),
        )?;
        let row = serde_json::json!({
            "iteration": i, "max": total, "start": humantime::format_rfc3339_seconds(started).to_string(),
            "end": now(), "duration_seconds": started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
            "tokens": tokens, "status": "success", "tasks_completed": task.into_iter().collect::<Vec<_>>(),
            "commit": format!("{:07x}", (i * 2_654_435_761 + seed) % 0xfff_ffff), "commit_message": "demo work",
            "test_passed": true, "test_output": "ok", "errors": [],
        });
        append(&ralph.join("iterations.jsonl"), &format!("{row}\n"))?;
        if i % 4 == 0 {
            let note = serde_json::json!({
                "prefix": "PROGRESS", "message": format!("{i} of {total} tasks done"),
                "timestamp": now(), "iteration": i, "max_iterations": total,
            });
            fs::write(
                ralph.join("pending-notification.txt"),
                format!("{note:#}\n"),
            )?;
        }
    }
    let plan_path = dir.join("IMPLEMENTATION_PLAN.md");
    let plan = fs::read_to_string(&plan_path)?;
    replace_file(&plan_path, &format!("{plan}\nSTATUS: COMPLETE\n"))?;
    fs::write(
        ralph.join("pending-notification.txt"),
        "DONE: all tasks complete\n",
    )?;
    append(
        &ralph.join("ralph.log"),
        &format!("[{}] \u{1f6d1} Loop finished\n", clock()),
    )?;
    fs::remove_file(ralph.join("ralph.pid"))?;
    Ok(())
}

fn count_open_tasks(dir: &Path) -> io::Result<usize> {
    let plan = fs::read_to_string(dir.join("IMPLEMENTATION_PLAN.md"))?;
    Ok(plan
        .lines()
        .filter(|l| l.trim_start().starts_with("- [ ]"))
        .count())
}

/// Ticks the first open task, saving the plan the way editors do (write a copy, rename it over).
fn tick_next_task(dir: &Path) -> io::Result<Option<String>> {
    let path = dir.join("IMPLEMENTATION_PLAN.md");
    let plan = fs::read_to_string(&path)?;
    let Some(at) = plan.find("- [ ]") else {
        return Ok(None);
    };
    let id = plan[at + 6..]
        .split(':')
        .next()
        .map(|s| s.trim().to_owned());
    let ticked = format!("{}- [x]{}", &plan[..at], &plan[at + 5..]);
    replace_file(&path, &ticked)?;
    Ok(id)
}

fn replace_file(path: &Path, contents: &str) -> io::Result<()> {
    let temp = path.with_extension("md.tmp");
    fs::write(&temp, contents)?;
    fs::rename(&temp, path)
}

fn append(path: &Path, text: &str) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// `HH:MM:SS` (UTC) for log lines.
fn clock() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    stamp.get(11..19).unwrap_or("00:00:00").to_owned()
}
