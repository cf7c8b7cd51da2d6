//! `IMPLEMENTATION_PLAN.md`: `## ` phases, `- [ ]` / `- [x]` tasks (nested by indent), task ids
//! such as `1.2` followed by `:`, `-`, en dash or em dash, and `STATUS:` lines (the last wins).
//!
//! A plan keeps at most [`MAX_PLAN_TASKS`] tasks in [`MAX_PLAN_PHASES`] phases, with texts cut to
//! [`MAX_TASK_TEXT_CHARS`]: the rest is counted, not kept, so a huge plan costs bounded memory
//! and a bounded page, and progress still counts every task.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    NotStarted,
    InProgress,
    Complete,
}

/// One `## ` phase of the plan, as a `plan_updated` event carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseProgress {
    pub name: String,
    pub done: u32,
    pub total: u32,
    pub status: PhaseStatus,
}

/// Plan progress: the `data` of a `plan_updated` event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanProgress {
    pub tasks_done: u32,
    pub tasks_total: u32,
    pub phases: Vec<PhaseProgress>,
    /// The last `STATUS:` line of the plan, verbatim (upper-cased), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_status: Option<String>,
}

impl PlanProgress {
    /// Completed share in whole percent (0 when the plan has no tasks).
    pub fn percent(&self) -> u32 {
        if self.tasks_total == 0 {
            0
        } else {
            // Widen before multiplying so huge plans cannot overflow.
            (u64::from(self.tasks_done) * 100 / u64::from(self.tasks_total)) as u32
        }
    }
}

/// Tasks a plan keeps (the ones after them are only counted).
pub const MAX_PLAN_TASKS: usize = 2000;
/// Phases a plan keeps, the unnamed one before the first heading included.
pub const MAX_PLAN_PHASES: usize = 200;
/// Characters kept of a task's text or a phase's name (longer ones end in `…`).
pub const MAX_TASK_TEXT_CHARS: usize = 500;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Tasks written before the first `## ` heading live in a phase with an empty name.
    pub phases: Vec<Phase>,
    /// The last `STATUS:` line written.
    pub status: Option<PlanStatus>,
    /// Tasks of phases past [`MAX_PLAN_PHASES`], counted but not kept.
    #[serde(default)]
    pub omitted: TaskCount,
    /// Phases past [`MAX_PLAN_PHASES`], not kept.
    #[serde(default)]
    pub omitted_phases: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub tasks: Vec<Task>,
    /// Tasks of this phase past [`MAX_PLAN_TASKS`], counted but not kept.
    #[serde(default)]
    pub omitted: TaskCount,
}

/// How many tasks, and how many of them done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCount {
    pub total: u32,
    pub done: u32,
}

impl TaskCount {
    fn add(&mut self, done: bool) {
        self.total = self.total.saturating_add(1);
        if done {
            self.done = self.done.saturating_add(1);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: Option<String>,
    pub text: String,
    pub done: bool,
    /// 0 for top-level tasks, 1 for their children, and so on.
    pub depth: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Complete,
    PlanningComplete,
    InProgress,
    Other(String),
}

impl PlanStatus {
    fn parse(value: &str) -> Self {
        let upper = value.to_uppercase();
        match upper.replace(['_', '-'], " ").as_str() {
            "COMPLETE" => PlanStatus::Complete,
            "PLANNING COMPLETE" => PlanStatus::PlanningComplete,
            "IN PROGRESS" => PlanStatus::InProgress,
            _ => PlanStatus::Other(upper),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PlanStatus::Complete => "COMPLETE",
            PlanStatus::PlanningComplete => "PLANNING_COMPLETE",
            PlanStatus::InProgress => "IN PROGRESS",
            PlanStatus::Other(text) => text,
        }
    }
}

impl Plan {
    /// The plan says the work is done: its last `STATUS:` line is `COMPLETE`.
    pub fn is_complete(&self) -> bool {
        self.status == Some(PlanStatus::Complete)
    }

    /// The ids of the done tasks kept, normalized (see [`normalize_task_id`]).
    pub fn done_task_ids(&self) -> std::collections::BTreeSet<String> {
        self.phases
            .iter()
            .flat_map(|phase| &phase.tasks)
            .filter(|task| task.done)
            .filter_map(|task| task.id.as_deref())
            .map(normalize_task_id)
            .collect()
    }

    /// Tasks kept (shown).
    pub fn kept_tasks(&self) -> usize {
        self.phases.iter().map(|phase| phase.tasks.len()).sum()
    }

    /// Every task of the plan, the ones not kept included.
    pub fn total_tasks(&self) -> u64 {
        let omitted: u64 = self
            .phases
            .iter()
            .map(|phase| u64::from(phase.omitted.total))
            .sum();
        self.kept_tasks() as u64 + omitted + u64::from(self.omitted.total)
    }

    /// Whether tasks or phases were left out (see [`MAX_PLAN_TASKS`]).
    pub fn is_cut(&self) -> bool {
        self.omitted_phases > 0 || self.total_tasks() > self.kept_tasks() as u64
    }

    pub fn progress(&self) -> PlanProgress {
        let phases: Vec<PhaseProgress> = self
            .phases
            .iter()
            .filter(|phase| {
                !phase.name.is_empty() || !phase.tasks.is_empty() || phase.omitted.total > 0
            })
            .map(|phase| {
                let total = (phase.tasks.len() as u32).saturating_add(phase.omitted.total);
                let done = (phase.tasks.iter().filter(|task| task.done).count() as u32)
                    .saturating_add(phase.omitted.done);
                let status = if total > 0 && done == total {
                    PhaseStatus::Complete
                } else if done > 0 {
                    PhaseStatus::InProgress
                } else {
                    PhaseStatus::NotStarted
                };
                PhaseProgress {
                    name: phase.name.clone(),
                    done,
                    total,
                    status,
                }
            })
            .collect();
        PlanProgress {
            tasks_done: phases
                .iter()
                .fold(self.omitted.done, |sum, p| sum.saturating_add(p.done)),
            tasks_total: phases
                .iter()
                .fold(self.omitted.total, |sum, p| sum.saturating_add(p.total)),
            phases,
            plan_status: self.status.as_ref().map(|s| s.as_str().to_owned()),
        }
    }
}

pub fn parse_plan(text: &str) -> Plan {
    let mut plan = Plan {
        phases: vec![Phase::default()],
        ..Plan::default()
    };
    let mut kept = 0usize;
    // Past the phase cap, tasks count toward the plan's omitted ones.
    let mut phases_full = false;
    // Indents of the open task levels, to turn indentation into depth.
    let mut indents: Vec<usize> = Vec::new();
    let mut in_fence = false;
    for raw in text.lines() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        // Checkboxes inside fenced code blocks are examples, not tasks.
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(value) = status_value(trimmed) {
            plan.status = Some(PlanStatus::parse(value));
            continue;
        }
        if let Some(name) = line.strip_prefix("## ") {
            indents.clear();
            if phases_full || plan.phases.len() >= MAX_PLAN_PHASES {
                phases_full = true;
                plan.omitted_phases = plan.omitted_phases.saturating_add(1);
                continue;
            }
            plan.phases.push(Phase {
                name: cut_text(name.trim().trim_end_matches('#').trim()),
                ..Phase::default()
            });
            continue;
        }
        if let Some((done, rest)) = checkbox(trimmed) {
            let indent = indent_width(line);
            while indents.last().is_some_and(|&open| open >= indent) {
                indents.pop();
            }
            let depth = indents.len() as u32;
            indents.push(indent);
            if phases_full {
                plan.omitted.add(done);
                continue;
            }
            let Some(phase) = plan.phases.last_mut() else {
                continue;
            };
            if kept >= MAX_PLAN_TASKS {
                phase.omitted.add(done);
                continue;
            }
            kept += 1;
            let (id, text) = split_task_id(rest);
            phase.tasks.push(Task {
                id: id.map(|id| cut_text(&id)),
                text: cut_text(&text),
                done,
                depth,
            });
        }
    }
    plan
}

/// `text` with at most [`MAX_TASK_TEXT_CHARS`] characters (an ellipsis marks a cut).
fn cut_text(text: &str) -> String {
    match text.char_indices().nth(MAX_TASK_TEXT_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}\u{2026}", &text[..end]),
    }
}

fn indent_width(line: &str) -> usize {
    line.chars()
        .take_while(|c| c.is_whitespace())
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

/// `- [ ] rest`, `* [x] rest`, `+ [X] rest` -> (done, rest).
fn checkbox(trimmed: &str) -> Option<(bool, &str)> {
    let rest = trimmed
        .strip_prefix("- [")
        .or_else(|| trimmed.strip_prefix("* ["))
        .or_else(|| trimmed.strip_prefix("+ ["))?;
    let mut chars = rest.chars();
    let done = match chars.next()? {
        ' ' => false,
        'x' | 'X' => true,
        _ => return None,
    };
    let rest = chars.as_str().strip_prefix(']')?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some((done, rest.trim()))
}

/// `STATUS: COMPLETE`, also inside emphasis, a quote, a list item or a heading.
fn status_value(trimmed: &str) -> Option<&str> {
    let bare = trimmed.trim_start_matches(['#', '>', '*', '_', '-', ' ', '\t']);
    let head = bare.get(..7)?;
    if !head.eq_ignore_ascii_case("status:") {
        return None;
    }
    let value = bare[7..].trim().trim_matches(['*', '_', '`', ' ']);
    (!value.is_empty()).then_some(value)
}

/// Splits a leading task id (`1.2:`, `**1.2** -`, `3 –`, `4.1 —`) from the task text.
/// `Task 3: text` counts as id `3` (ids are compared after [`normalize_task_id`]).
fn split_task_id(rest: &str) -> (Option<String>, String) {
    let unmarked = rest.trim_start_matches(['*', '_', '`']);
    let unmarked = strip_task_word(unmarked).unwrap_or(unmarked);
    let id_len = unmarked
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_digit() || *c == '.')
        .map(|(i, c)| i + c.len_utf8())
        .last()
        .unwrap_or(0);
    let id = unmarked[..id_len].trim_end_matches('.');
    if id.is_empty() || !id.starts_with(|c: char| c.is_ascii_digit()) || id.contains("..") {
        return (None, rest.to_owned());
    }
    let after = unmarked[id_len..]
        .trim_start_matches(['*', '_', '`'])
        .trim_start();
    match after
        .strip_prefix(':')
        .or_else(|| after.strip_prefix('-'))
        .or_else(|| after.strip_prefix('\u{2013}'))
        .or_else(|| after.strip_prefix('\u{2014}'))
    {
        Some(text) => (Some(id.to_owned()), text.trim().to_owned()),
        None => (None, rest.to_owned()),
    }
}

fn strip_task_word(text: &str) -> Option<&str> {
    let head = text.get(..5)?;
    head.eq_ignore_ascii_case("task ")
        .then(|| text[5..].trim_start())
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// The form task ids are compared in: `Task 3`, `task 3`, `3` and `**3**` are all `3`.
pub fn normalize_task_id(id: &str) -> String {
    let trimmed = id.trim().trim_matches(['*', '_', '`']).trim();
    let bare = strip_task_word(trimmed).unwrap_or(trimmed);
    bare.trim_end_matches(['.', ':']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_task_ids_are_the_ticked_ids_normalized() {
        let plan =
            parse_plan("## A\n- [x] 1.1: a\n- [ ] 1.2: b\n  - [x] Task 2: nested\n- [x] no id\n");
        let ids: Vec<String> = plan.done_task_ids().into_iter().collect();
        assert_eq!(ids, [normalize_task_id("1.1"), normalize_task_id("Task 2")]);
    }

    #[test]
    fn a_huge_plan_keeps_a_bounded_part_and_counts_the_rest() {
        let mut text = String::from("- [x] 0: before\n## One\n");
        for n in 0..(MAX_PLAN_TASKS + 10) {
            let done = if n % 2 == 0 { 'x' } else { ' ' };
            text.push_str(&format!("- [{done}] {n}: task\n"));
        }
        for n in 0..(MAX_PLAN_PHASES + 5) {
            text.push_str(&format!("## P{n}\n- [x] a\n- [ ] b\n"));
        }
        text.push_str(&format!("- [ ] {}\n", "y".repeat(MAX_TASK_TEXT_CHARS * 3)));
        let plan = parse_plan(&text);
        assert_eq!(plan.kept_tasks(), MAX_PLAN_TASKS);
        assert_eq!(plan.phases.len(), MAX_PLAN_PHASES);
        // Two phases are taken by the unnamed one and "One"; the rest of the headings are cut.
        assert_eq!(
            plan.omitted_phases,
            (MAX_PLAN_PHASES + 5 - (MAX_PLAN_PHASES - 2)) as u32
        );
        let all = 1 + MAX_PLAN_TASKS + 10 + 2 * (MAX_PLAN_PHASES + 5) + 1;
        assert_eq!(plan.total_tasks(), all as u64);
        assert!(plan.is_cut());
        let progress = plan.progress();
        assert_eq!(
            u64::from(progress.tasks_total),
            all as u64,
            "progress counts every task"
        );
        let done = 1 + (MAX_PLAN_TASKS + 10).div_ceil(2) + (MAX_PLAN_PHASES + 5);
        assert_eq!(progress.tasks_done as usize, done);
        assert!(plan
            .phases
            .iter()
            .flat_map(|p| &p.tasks)
            .all(|t| t.text.chars().count() <= MAX_TASK_TEXT_CHARS + 1));

        let small = parse_plan(PLAN);
        assert!(!small.is_cut());
        assert_eq!(small.total_tasks(), small.kept_tasks() as u64);
    }

    #[test]
    fn long_texts_are_cut_with_an_ellipsis() {
        let plan = parse_plan(&format!(
            "- [ ] 1: {}\n",
            "\u{e9}".repeat(MAX_TASK_TEXT_CHARS + 1)
        ));
        let text = &plan.phases[0].tasks[0].text;
        assert_eq!(text.chars().count(), MAX_TASK_TEXT_CHARS + 1);
        assert!(text.ends_with('\u{2026}'));
    }

    const PLAN: &str = r"# Plan
- [x] 0.1: loose task before any phase

## Phase 1: Backend
- [x] 1.1: Set up axum
- [X] **1.2** - Add routes
  - [ ] nested detail
    - [x] deeper detail
- [ ] 1.3 – Write tests

## Phase 2: Frontend ##
- [ ] 2.1 — Dashboard
```
- [x] 9.9: example inside a code fence
```
STATUS: IN PROGRESS
**STATUS: COMPLETE**
";

    #[test]
    fn phases_tasks_and_ids() {
        let plan = parse_plan(PLAN);
        let names: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["", "Phase 1: Backend", "Phase 2: Frontend"]);
        let backend = &plan.phases[1].tasks;
        assert_eq!(backend.len(), 5);
        assert_eq!(backend[0].id.as_deref(), Some("1.1"));
        assert_eq!(backend[0].text, "Set up axum");
        assert_eq!(backend[1].id.as_deref(), Some("1.2"));
        assert_eq!(backend[1].text, "Add routes");
        assert!(backend[1].done);
        assert_eq!(backend[2].id, None);
        assert_eq!(backend[2].depth, 1);
        assert_eq!(backend[3].depth, 2);
        assert_eq!(backend[4].id.as_deref(), Some("1.3"));
        assert_eq!(backend[4].depth, 0);
        assert_eq!(plan.phases[2].tasks[0].id.as_deref(), Some("2.1"));
        assert_eq!(plan.phases[2].tasks.len(), 1, "fenced example is ignored");
    }

    #[test]
    fn progress_counts_every_task_and_keeps_unnamed_phase() {
        let progress = parse_plan(PLAN).progress();
        assert_eq!((progress.tasks_done, progress.tasks_total), (4, 7));
        assert_eq!(progress.phases.len(), 3);
        assert_eq!(progress.phases[0].name, "");
        assert_eq!(progress.phases[0].status, PhaseStatus::Complete);
        assert_eq!(progress.phases[1].status, PhaseStatus::InProgress);
        assert_eq!(progress.phases[2].status, PhaseStatus::NotStarted);
        assert_eq!(progress.plan_status.as_deref(), Some("COMPLETE"));
    }

    #[test]
    fn last_status_line_wins() {
        assert!(parse_plan(PLAN).is_complete());
        let reopened = format!("{PLAN}\nSTATUS: IN PROGRESS\n");
        let plan = parse_plan(&reopened);
        assert_eq!(plan.status, Some(PlanStatus::InProgress));
        assert!(!plan.is_complete());
        assert_eq!(
            parse_plan("## STATUS: PLANNING_COMPLETE").status,
            Some(PlanStatus::PlanningComplete)
        );
    }

    #[test]
    fn odd_input_never_panics_and_counts_nothing() {
        for text in [
            "",
            "- [",
            "- [x",
            "- [y] not a box",
            "- [x]glued",
            "STATUS:",
            "\u{feff}## \u{1f600}",
            "- [ ] 1..2: dots",
            "- [ ] 1.: trailing dot",
            "\r\n\r\n",
        ] {
            let plan = parse_plan(text);
            let progress = plan.progress();
            assert!(progress.tasks_done <= progress.tasks_total, "{text:?}");
        }
        assert_eq!(parse_plan("- [x]glued").progress().tasks_total, 0);
        assert_eq!(parse_plan("- [y] no").progress().tasks_total, 0);
        let dotted = parse_plan("- [ ] 1..2: dots");
        assert_eq!(dotted.phases[0].tasks[0].id, None);
        let trailing = parse_plan("- [ ] 1.: trailing dot");
        assert_eq!(trailing.phases[0].tasks[0].id.as_deref(), Some("1"));
    }

    #[test]
    fn task_word_ids() {
        let plan = parse_plan(
            "- [x] Task 3: wire the socket\n- [ ] **Task 4** - docs\n- [ ] Tasks list\n",
        );
        let tasks = &plan.phases[0].tasks;
        assert_eq!(tasks[0].id.as_deref(), Some("3"));
        assert_eq!(tasks[0].text, "wire the socket");
        assert_eq!(tasks[1].id.as_deref(), Some("4"));
        assert_eq!(tasks[2].id, None);
        assert_eq!(normalize_task_id("Task 3"), "3");
        assert_eq!(normalize_task_id(" **1.2** "), "1.2");
        assert_eq!(normalize_task_id("1.2."), "1.2");
    }

    #[test]
    fn windows_line_endings() {
        let plan = parse_plan("## P\r\n- [x] 1.1: a\r\n- [ ] 1.2: b\r\nSTATUS: COMPLETE\r\n");
        assert_eq!(plan.phases[1].name, "P");
        assert_eq!(plan.phases[1].tasks[0].text, "a");
        assert!(plan.is_complete());
    }
}
