use leptos::prelude::*;

use super::{api::list_projects, connection::ConnectionIndicator};
use crate::contract::stats::Health;
use crate::live::{LiveStore, ProjectCard};
use crate::model::api::ProjectList;

#[component]
pub fn Dashboard() -> impl IntoView {
    let projects = Resource::new(|| (), |_| list_projects());
    view! {
        <main class="page dashboard">
            <header class="topbar">
                <h1>"loopwatch"</h1>
            </header>
            <Suspense>
                {move || Suspend::new(async move {
                    match projects.await {
                        Ok(list) => view! { <ProjectGrid projects=list /> }.into_any(),
                        Err(error) => {
                            view! {
                                <p class="load-error" role="alert">
                                    "Could not load projects: " {error.to_string()}
                                </p>
                            }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn ProjectGrid(projects: ProjectList) -> impl IntoView {
    let store = LiveStore::new(projects);
    #[cfg(feature = "hydrate")]
    crate::live::start(store);
    let empty = move || store.projects.with(Vec::is_empty);
    view! {
        <ConnectionIndicator store />
        <Show when=empty>
            <p class="empty">
                "No Ralph projects found yet. A project is a directory that contains "
                <code>".ralph/"</code> "."
            </p>
        </Show>
        <section class="grid" aria-label="Projects">
            <For each=move || store.projects.get() key=|card| card.id.clone() let:card>
                <ProjectCardView card />
            </For>
        </section>
    }
}

#[component]
fn ProjectCardView(card: ProjectCard) -> impl IntoView {
    let summary = card.summary;
    let status = move || summary.with(|s| s.status.as_str());
    let status_label = move || {
        summary.with(|s| {
            if s.pausing {
                "pausing"
            } else {
                s.status.as_str()
            }
        })
    };
    let plan = move || summary.with(|s| s.plan.clone());
    let progress = move || plan().map(|p| (p.tasks_done, p.tasks_total, p.percent()));
    view! {
        <article class="card" data-project=card.id.clone()>
            <header class="card-head">
                <h2>{move || summary.with(|s| s.name.clone())}</h2>
                <span class=move || format!("badge badge-{}", status()) data-testid="status">
                    {status_label}
                </span>
            </header>
            <p class="path" title=move || summary.with(|s| s.path.clone())>
                {move || summary.with(|s| s.path.clone())}
            </p>
            <dl class="facts">
                <div>
                    <dt>"Iteration"</dt>
                    <dd data-testid="iteration">
                        {move || summary.with(|s| iteration_label(s.iteration, s.max_iterations))}
                    </dd>
                </div>
                <div>
                    <dt>"Tokens"</dt>
                    <dd data-testid="tokens">{move || summary.with(|s| tokens_label(s.tokens))}</dd>
                </div>
                <div>
                    <dt>"Cost"</dt>
                    <dd data-testid="cost">{move || summary.with(|s| format!("${:.2}", s.cost_usd))}</dd>
                </div>
            </dl>
            <ol class="health-strip" aria-label="Health of recent iterations">
                {move || {
                    summary
                        .with(|s| s.recent_health.clone())
                        .into_iter()
                        .map(|health| {
                            let name = health_name(health);
                            view! { <li class=format!("health health-{name}") title=name></li> }
                        })
                        .collect_view()
                }}
            </ol>
            {move || match progress() {
                Some((done, total, percent)) => {
                    view! {
                        <div
                            class="progress"
                            role="progressbar"
                            aria-label="Plan progress"
                            aria-valuemin="0"
                            aria-valuemax="100"
                            aria-valuenow=percent
                        >
                            <div class="progress-bar" style:width=format!("{percent}%")></div>
                        </div>
                        <p class="tasks" data-testid="tasks">
                            {format!("{done} / {total} tasks ({percent}%)")}
                        </p>
                    }
                        .into_any()
                }
                None => {
                    view! {
                        <p class="tasks muted" data-testid="tasks">
                            "No IMPLEMENTATION_PLAN.md"
                        </p>
                    }
                        .into_any()
                }
            }}
            <ul class="warnings">
                {move || {
                    summary
                        .with(|s| s.warnings.clone())
                        .into_iter()
                        .map(|warning| view! { <li>{warning}</li> })
                        .collect_view()
                }}
            </ul>
        </article>
    }
}

fn iteration_label(iteration: Option<u32>, max: u32) -> String {
    match (iteration, max) {
        (None, _) => "\u{2014}".to_owned(),
        (Some(n), 0) => format!("{n}"),
        (Some(n), max) => format!("{n} / {max}"),
    }
}

/// Thousands of tokens, shown compactly: `850k`, `1.25M`.
fn tokens_label(thousands: f64) -> String {
    if thousands >= 1000.0 {
        format!("{:.2}M", thousands / 1000.0)
    } else {
        format!("{thousands:.0}k")
    }
}

fn health_name(health: Health) -> &'static str {
    match health {
        Health::Failed => "failed",
        Health::Productive => "productive",
        Health::Partial => "partial",
    }
}
