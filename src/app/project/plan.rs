use leptos::prelude::*;

use super::project_view;
use crate::contract::plan::{normalize_task_id, Phase};

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
                    let phases = plan
                        .phases
                        .into_iter()
                        // The unnamed phase only holds tasks written before the first heading.
                        .filter(|phase| !(phase.name.is_empty() && phase.tasks.is_empty()))
                        .map(|phase| view! { <PhaseView phase /> })
                        .collect_view();
                    view! {
                        {status.map(|s| view! { <p class="plan-status">"STATUS: " {s}</p> })}
                        {phases}
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
    let done = phase.tasks.iter().filter(|t| t.done).count();
    let total = phase.tasks.len();
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
