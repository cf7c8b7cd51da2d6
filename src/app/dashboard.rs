//! The dashboard: every project's card, live, with filters and the archive switch.

use leptos::prelude::*;

use super::{
    controls::SearchBox,
    format::{cost_label, health_name, iteration_label, time_label, tokens_label},
    role::can_act,
    share::SharePanel,
    toasts::NotificationPermission,
};
use crate::api::{list_projects, set_archived};
use crate::live::{LiveStore, ProjectCard};
use crate::model::{api_types::ProjectList, ProjectSummary};

#[component]
pub fn Dashboard() -> impl IntoView {
    let projects = Resource::new(|| (), |_| list_projects());
    view! {
        <main class="page dashboard">
            <header class="topbar">
                <h1>"loopwatch"</h1>
                <NotificationPermission />
            </header>
            <Suspense>
                {move || Suspend::new(async move {
                    match projects.await {
                        Ok(list) => {
                            let shareable: Vec<(String, String)> = list
                                .projects
                                .iter()
                                .map(|p| (p.id.clone(), p.name.clone()))
                                .collect();
                            let act = can_act();
                            view! {
                                <Show when=move || act.get()>
                                    <SharePanel projects=shareable.clone() />
                                </Show>
                                <ProjectGrid projects=list />
                            }
                                .into_any()
                        }
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
    let store = expect_context::<LiveStore>();
    let cards = store.open_cards(projects);
    on_cleanup(move || store.close_cards());
    let search = RwSignal::new(String::new());
    let show_archived = RwSignal::new(false);
    let shown = move || {
        let query = search.get().to_lowercase();
        let archived_too = show_archived.get();
        cards
            .get()
            .into_iter()
            .filter(|card| {
                card.summary
                    .with(|s| (archived_too || !s.is_archived()) && matches_search(s, &query))
            })
            .collect::<Vec<_>>()
    };
    let archived_count = move || {
        cards.with(|cards| {
            cards
                .iter()
                .filter(|c| c.summary.with(ProjectSummary::is_archived))
                .count()
        })
    };
    let empty = move || cards.with(Vec::is_empty);
    let none_match = move || !empty() && shown().is_empty();
    view! {
        <div class="toolbar">
            <label class="search">
                <span class="visually-hidden">"Search projects"</span>
                <SearchBox label="Search projects" value=search />
            </label>
            <label>
                <input
                    type="checkbox"
                    prop:checked=show_archived
                    on:change=move |ev| show_archived.set(event_target_checked(&ev))
                />
                {move || format!(" Show archived ({})", archived_count())}
            </label>
        </div>
        <Show when=empty>
            <p class="empty">
                "No Ralph projects found yet. A project is a directory that contains "
                <code>".ralph/"</code> "."
            </p>
        </Show>
        <Show when=none_match>
            <p class="empty">"No project matches the search."</p>
        </Show>
        <section class="grid" aria-label="Projects">
            <For each=shown key=|card| card.id.clone() let:card>
                <ProjectCardView card />
            </For>
        </section>
    }
}

/// Case-insensitive match on name, path and status; `query` is already lower-case.
fn matches_search(summary: &ProjectSummary, query: &str) -> bool {
    query.is_empty()
        || summary.name.to_lowercase().contains(query)
        || summary.path.to_lowercase().contains(query)
        || summary.status.as_str().contains(query)
}

#[component]
fn ProjectCardView(card: ProjectCard) -> impl IntoView {
    let summary = card.summary;
    let act = can_act();
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
                <h2>
                    <a href=format!("/projects/{}", card.id)>
                        {move || summary.with(|s| s.name.clone())}
                    </a>
                </h2>
                <span class=move || format!("badge badge-{}", status()) data-testid="status">
                    {status_label}
                </span>
            </header>
            <Show when=move || summary.with(ProjectSummary::is_archived)>
                <p class="archived-note muted">"Archived"</p>
            </Show>
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
                    <dd data-testid="cost">{move || summary.with(|s| cost_label(s.cost_usd))}</dd>
                </div>
                <div>
                    <dt>"Last activity"</dt>
                    <dd data-testid="activity">
                        {move || {
                            summary
                                .with(|s| {
                                    s.last_activity
                                        .as_deref()
                                        .map(time_label)
                                        .unwrap_or_else(|| "\u{2014}".to_owned())
                                })
                        }}
                    </dd>
                </div>
            </dl>
            <ol class="health-strip" aria-label="Health of recent iterations">
                {move || {
                    summary
                        .with(|s| s.recent_health.clone())
                        .into_iter()
                        .map(|health| {
                            let name = health_name(health);
                            view! {
                                <li class=format!("health health-{name}") title=name>
                                    <span class="visually-hidden">{name}</span>
                                </li>
                            }
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
            <Show when=move || act.get()>{view! { <ArchiveButton summary /> }.into_any()}</Show>
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

/// Archives a project (hidden unless "Show archived" is on) or brings it back. Every open
/// dashboard hears of it through the stream; the card updates from the answer at once too.
#[component]
pub fn ArchiveButton(summary: RwSignal<ProjectSummary>) -> impl IntoView {
    let action = Action::new(move |archive: &bool| {
        let id = summary.with_untracked(|s| s.id.clone());
        let archive = *archive;
        async move { set_archived(id, archive).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(updated)) = action.value().get() {
            summary.try_update(|s| {
                if s.id == updated.id {
                    *s = updated;
                }
            });
        }
    });
    let archived = move || summary.with(ProjectSummary::is_archived);
    view! {
        <div class="archive-action">
            <button
                type="button"
                class="link-button"
                aria-label=move || {
                    summary
                        .with(|s| {
                            format!("{} {}", if s.is_archived() { "Restore" } else { "Archive" }, s.name)
                        })
                }
                disabled=move || action.pending().get()
                on:click=move |_| {
                    action.dispatch(!archived());
                }
            >
                {move || if archived() { "Restore" } else { "Archive" }}
            </button>
            {move || {
                action
                    .value()
                    .get()
                    .and_then(Result::err)
                    .map(|error| view! { <span class="load-error" role="alert">{error.to_string()}</span> })
            }}
        </div>
    }
}
