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

fn plan_text(project: &DemoProject) -> String {
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
    plan
}

fn write_project(dir: &Path, project: &DemoProject) -> io::Result<()> {
    fs::create_dir_all(dir.join(".ralph"))?;
    fs::create_dir_all(dir.join("specs"))?;
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), plan_text(project))?;
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

/// One simulated loop, run again and again so a visitor who comes later still sees a live
/// system: each run fails now and then, the second project pauses once, the first goes quiet
/// for a while (a stuck agent), and after a short rest the plan is reset and the loop restarts.
async fn simulate_loop(dir: &Path, iteration: Duration, seed: usize) -> io::Result<()> {
    let ralph = dir.join(".ralph");
    // Stagger the loops so their events interleave.
    tokio::time::sleep(iteration / 3 * seed as u32).await;
    // A real loop keeps numbering iterations across runs; each run counts its own `loop k/MAX`.
    let mut numbered = 0;
    for run in 0usize.. {
        if run > 0 {
            reset_plan(dir, seed)?;
            append(
                &ralph.join("ralph.log"),
                &format!("[{}] \u{1f501} Loop restarted (run {})\n", clock(), run + 1),
            )?;
        }
        simulate_run(dir, iteration, seed, run, &mut numbered).await?;
        // The finished loop rests (a COMPLETE card) before the next run.
        tokio::time::sleep(iteration * 2).await;
    }
    Ok(())
}

/// What one simulated iteration comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
}

/// Every few iterations one fails (at a different place in each run and project).
fn outcome(step: usize, seed: usize, run: usize) -> Outcome {
    if (step + seed * 2 + run) % 4 == 2 {
        Outcome::Failed
    } else {
        Outcome::Passed
    }
}

async fn simulate_run(
    dir: &Path,
    iteration: Duration,
    seed: usize,
    run: usize,
    numbered: &mut usize,
) -> io::Result<()> {
    let ralph = dir.join(".ralph");
    let log = ralph.join("ralph.log");
    fs::write(ralph.join("ralph.pid"), std::process::id().to_string())?;
    let total = count_open_tasks(dir)? + count_open_tasks(dir)? / 3;
    let mut step = 0;
    while count_open_tasks(dir)? > 0 && step < total * 2 {
        step += 1;
        *numbered += 1;
        let i = *numbered;
        let started = SystemTime::now();
        append(
            &log,
            &format!(
                "[{}] === Iteration {i} (loop {step}/{total}) ===\n",
                clock()
            ),
        )?;
        for line in [
            "Running: claude -p PROMPT.md",
            "Reading IMPLEMENTATION_PLAN.md",
            "Editing src/lib.rs",
        ] {
            tokio::time::sleep(iteration / 4).await;
            append(&log, &format!("[{}] {line}\n", clock()))?;
        }
        // The first project's agent goes quiet for a while once per run (a stuck phase): the
        // log stays silent while the loop is still alive.
        if seed == 0 && step == 3 {
            tokio::time::sleep(iteration * 3).await;
        }
        // The second demo project pauses for one iteration, as an operator would.
        if seed == 1 && step == 3 {
            fs::write(ralph.join("pause"), "")?;
            append(&log, &format!("[{}] \u{23f8}\u{fe0f} Paused\n", clock()))?;
            tokio::time::sleep(iteration).await;
            fs::remove_file(ralph.join("pause"))?;
            append(&log, &format!("[{}] \u{25b6}\u{fe0f} Resumed\n", clock()))?;
        }
        tokio::time::sleep(iteration / 4).await;
        let result = outcome(step, seed, run);
        let tokens = 40.0 + ((i * 7 + seed * 13) % 30) as f64;
        let task = match result {
            Outcome::Passed => {
                append(&log, &format!("[{}] \u{2705} Tests passed\n", clock()))?;
                tick_next_task(dir)?
            }
            Outcome::Failed => {
                append(
                    &log,
                    &format!(
                        "[{}] error[E0308]: mismatched types\n[{}] \u{274c} Tests failed\n",
                        clock(),
                        clock()
                    ),
                )?;
                None
            }
        };
        append(&log, &format!("tokens used\n{tokens:.3}\n"))?;
        let (status, passed, errors) = match result {
            Outcome::Passed => ("success", true, Vec::new()),
            Outcome::Failed => ("error", false, vec!["error[E0308]: mismatched types"]),
        };
        let row = serde_json::json!({
            "iteration": i, "max": total, "start": humantime::format_rfc3339_seconds(started).to_string(),
            "end": now(), "duration_seconds": started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
            "tokens": tokens, "status": status, "tasks_completed": task.into_iter().collect::<Vec<_>>(),
            "commit": format!("{:07x}", (i * 2_654_435_761 + seed) % 0xfff_ffff), "commit_message": "demo work",
            "test_passed": passed, "test_output": if passed { "ok" } else { "1 failed" }, "errors": errors,
        });
        append(&ralph.join("iterations.jsonl"), &format!("{row}\n"))?;
        let note = match result {
            Outcome::Failed if step % 2 == 0 => {
                Some(("ERROR", "tests fail: mismatched types".to_owned()))
            }
            Outcome::Passed if step % 4 == 0 => {
                Some(("PROGRESS", format!("{step} of {total} iterations done")))
            }
            _ => None,
        };
        if let Some((prefix, message)) = note {
            let note = serde_json::json!({
                "prefix": prefix, "message": message,
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
        format!("DONE: all tasks complete (run {})\n", run + 1),
    )?;
    append(&log, &format!("[{}] \u{1f6d1} Loop finished\n", clock()))?;
    fs::remove_file(ralph.join("ralph.pid"))?;
    Ok(())
}

/// Starts the plan over (every task open again) for the next run.
fn reset_plan(dir: &Path, seed: usize) -> io::Result<()> {
    let Some(project) = PROJECTS.get(seed) else {
        return Ok(());
    };
    replace_file(&dir.join("IMPLEMENTATION_PLAN.md"), &plan_text(project))
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

/// Replaces a file whole, the way tools that rewrite a file do (a temporary file, then rename).
pub(super) fn replace_file(path: &Path, contents: &str) -> io::Result<()> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let temp = path.with_extension(format!("{extension}.tmp"));
    fs::write(&temp, contents)?;
    fs::rename(&temp, path)
}

pub(super) fn append(path: &Path, text: &str) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `check` until it holds (files written by the loops), failing after a minute.
    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    #[tokio::test]
    async fn loops_restart_after_finishing_with_failures_pauses_and_a_quiet_phase() {
        let temp = tempfile::tempdir().expect("temp dir");
        let tree = DemoTree::create(Some(temp.path().to_path_buf())).expect("demo tree");
        let shutdown = Shutdown::default();
        let projects = tree.projects();
        let mut loops = simulate(
            projects.clone(),
            Duration::from_millis(24),
            shutdown.clone(),
        );
        let first = projects[0].join(".ralph");
        let second = projects[1].join(".ralph");
        // A second run starts after the first finished: the plan is open again and the loop
        // is alive again (its pid file is back).
        until("the first project's second run", || {
            read(&first.join("ralph.log")).contains("Loop restarted (run 2)")
        })
        .await;
        until("the second project's second run", || {
            read(&second.join("ralph.log")).contains("Loop restarted (run 2)")
        })
        .await;
        until("a live pid file in the second run", || {
            first.join("ralph.pid").exists() && read(&first.join("ralph.log")).contains("(run 2)")
        })
        .await;
        let log = read(&first.join("ralph.log"));
        let finished = log.find("Loop finished").expect("the first run finished");
        let restarted = log.find("Loop restarted (run 2)").expect("restarted");
        assert!(finished < restarted);
        assert!(
            log[restarted..].contains("(loop 1/"),
            "the run counts from 1 again"
        );
        // Iteration numbers keep counting across runs, as a real loop's do.
        let rows: Vec<serde_json::Value> = read(&first.join("iterations.jsonl"))
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON row"))
            .collect();
        let numbers: Vec<u64> = rows
            .iter()
            .filter_map(|r| r["iteration"].as_u64())
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(rows.iter().any(|r| r["status"] == "error"), "failures");
        assert!(rows.iter().any(|r| r["status"] == "success"));
        assert!(read(&second.join("ralph.log")).contains("Paused"));
        assert!(log.contains("Tests failed"));
        shutdown.trigger();
        while loops.join_next().await.is_some() {}
    }

    #[test]
    fn failures_come_every_few_iterations_and_move_between_runs() {
        let failed = |seed, run| {
            (1..=12)
                .filter(|step| outcome(*step, seed, run) == Outcome::Failed)
                .collect::<Vec<_>>()
        };
        assert_eq!(failed(0, 0), [2, 6, 10]);
        assert_ne!(failed(0, 0), failed(0, 1));
        assert_ne!(failed(0, 0), failed(1, 0));
    }
}
