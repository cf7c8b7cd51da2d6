//! The Plan tab: phases and tasks of `IMPLEMENTATION_PLAN.md`, with the iteration that ticked each.

use leptos::prelude::*;

use super::project_view;
use crate::contract::ralph::plan::{normalize_task_id, Phase, Plan};

/// What the page says when the plan is too big to list whole.
fn cut_notice(plan: &Plan) -> String {
    let phases = match plan.omitted_phases {
        0 => String::new(),
        1 => " (1 more phase not listed)".to_owned(),
        n => format!(" ({n} more phases not listed)"),
    };
    format!(
        "Showing the first {} of {} tasks{phases}: the plan is too big to list whole. Progress counts every task; the whole plan is in IMPLEMENTATION_PLAN.md.",
        plan.kept_tasks(),
        plan.total_tasks()
    )
}

/// Phases with progress bars; tasks with their done state and the iteration that completed each.
#[component]
pub fn PlanTab() -> impl IntoView {
    let view = project_view();
    let plan = move || view.detail.with(|d| d.plan.clone());
    view! {
        <section class="tab-panel plan" aria-label="Plan">
            {move || match plan() {
                None => {
                    view! {
                        <p class="empty">
                            "No " <code>"IMPLEMENTATION_PLAN.md"</code> " in this project."
                        </p>
                    }
                        .into_any()
                }
                Some(plan) => {
                    let status = plan.status.as_ref().map(|s| s.as_str().to_owned());
                    let cut = plan.is_cut().then(|| cut_notice(&plan));
                    let phases = plan
                        .phases
                        .into_iter()
                        // The unnamed phase only holds tasks written before the first heading.
                        .filter(|phase| {
                            !(phase.name.is_empty()
                                && phase.tasks.is_empty()
                                && phase.omitted.total == 0)
                        })
                        .map(|phase| view! { <PhaseView phase /> })
                        .collect_view();
                    view! {
                        {status.map(|s| view! { <p class="plan-status">"STATUS: " {s}</p> })}
                        {cut.clone().map(|text| view! { <p class="notice plan-cut" role="note" data-testid="plan-cut">{text}</p> })}
                        {phases}
                        {cut.map(|text| view! { <p class="notice plan-cut muted">{text}</p> })}
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

#[component]
fn PhaseView(phase: Phase) -> impl IntoView {
    let view = project_view();
    // Tasks past the plan's cap are counted in the totals, not listed.
    let done = phase.tasks.iter().filter(|t| t.done).count() + phase.omitted.done as usize;
    let total = phase.tasks.len() + phase.omitted.total as usize;
    let percent = (done * 100).checked_div(total).unwrap_or(0);
    let name = if phase.name.is_empty() {
        "Before the first phase".to_owned()
    } else {
        phase.name.clone()
    };
    let tasks = phase
        .tasks
        .into_iter()
        .map(|task| {
            let completed_in = task.id.as_deref().and_then(|id| {
                view.detail
                    .with_untracked(|d| d.completed_in.get(&normalize_task_id(id)).copied())
            });
            let label = match &task.id {
                Some(id) => format!("{id} {}", task.text),
                None => task.text.clone(),
            };
            view! {
                <li
                    class="task"
                    class:done=task.done
                    style:padding-left=format!("{}rem", task.depth.min(6))
                    data-testid="task"
                >
                    <span class="check" aria-hidden="true">
                        {if task.done { "\u{2611}" } else { "\u{2610}" }}
                    </span>
                    <span class="visually-hidden">{if task.done { "done: " } else { "open: " }}</span>
                    <span class="task-text">{label}</span>
                    {completed_in
                        .map(|n| {
                            view! { <span class="completed-in muted">"iteration " {n}</span> }
                        })}
                </li>
            }
        })
        .collect_view();
    view! {
        <article class="phase">
            <header class="phase-head">
                <h2>{name.clone()}</h2>
                <span class="muted">{format!("{done} / {total}")}</span>
            </header>
            <div
                class="progress"
                role="progressbar"
                aria-label=format!("{name} progress")
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=percent
            >
                <div class="progress-bar" style:width=format!("{percent}%")></div>
            </div>
            <ul class="tasks-list">{tasks}</ul>
        </article>
    }
}
