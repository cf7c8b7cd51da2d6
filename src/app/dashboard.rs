//! The dashboard: every project's card, live, with filters and the archive switch.

use leptos::prelude::*;

use super::{
    controls::SearchBox,
    format::{cost_label, health_name, iteration_label, tokens_label, Clock, Reading, When},
    role::can_act,
    share::SharePanel,
    toasts::NotificationPermission,
};
use crate::api::{list_projects, set_archived};
use crate::contract::ralph::{
    alerts::{minutes, silence, Liveness, Thresholds},
    stats::parse_timestamp,
    status::Status,
};
use crate::live::{LiveStore, ProjectCard};
use crate::model::{api_types::ProjectList, ProjectSummary};

#[component]
pub fn Dashboard() -> impl IntoView {
    let projects = Resource::new(|| (), |_| list_projects());
    super::project::fetch_budgets();
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
    let sort = RwSignal::new(SortBy::Name);
    let shown = move || {
        let query = search.get().to_lowercase();
        let archived_too = show_archived.get();
        let mut shown: Vec<(ProjectSummary, ProjectCard)> = cards
            .get()
            .into_iter()
            .filter(|card| {
                card.summary
                    .with(|s| (archived_too || !s.is_archived()) && matches_search(s, &query))
            })
            .map(|card| (card.summary.get(), card))
            .collect();
        let by = sort.get();
        shown.sort_by(|a, b| compare(&a.0, &b.0, by));
        shown.into_iter().map(|(_, card)| card).collect::<Vec<_>>()
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let counts = cards.with(|cards| {
            let statuses: Vec<Status> =
                cards.iter().map(|c| c.summary.with(|s| s.status)).collect();
            let title = title_text(&statuses);
            super::attention::show_statuses(statuses);
            title
        });
        document().set_title(&counts);
    });
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
            <SortPicker sort />
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
                // Type-erased: the whole grid's view type is too deep for the compiler otherwise.
                {view! { <ProjectCardView card /> }.into_any()}
            </For>
        </section>
    }
}

/// The sort order menu.
#[component]
fn SortPicker(sort: RwSignal<SortBy>) -> impl IntoView {
    view! {
        <label class="sort">
            "Sort by "
            <select
                aria-label="Sort projects"
                on:change=move |ev| sort.set(SortBy::parse(&event_target_value(&ev)))
            >
                {SortBy::ALL
                    .iter()
                    .map(|by| {
                        view! {
                            <option value=by.value() selected=move || sort.get() == *by>
                                {by.label()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
    }
    .into_any()
}

/// The order of the cards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SortBy {
    Name,
    /// What needs the operator first: errors, then paused, running, stopped, complete.
    Status,
    /// Most recent activity first.
    LastActivity,
    /// Most expensive first.
    Cost,
}

impl SortBy {
    const ALL: [SortBy; 4] = [
        SortBy::Name,
        SortBy::Status,
        SortBy::LastActivity,
        SortBy::Cost,
    ];

    fn value(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Status => "status",
            SortBy::LastActivity => "activity",
            SortBy::Cost => "cost",
        }
    }

    fn label(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Status => "status",
            SortBy::LastActivity => "last activity",
            SortBy::Cost => "cost",
        }
    }

    fn parse(value: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|by| by.value() == value)
            .unwrap_or(SortBy::Name)
    }
}

fn status_rank(status: Status) -> u8 {
    match status {
        Status::Error => 0,
        Status::Paused => 1,
        Status::Running => 2,
        Status::Stopped => 3,
        Status::Complete => 4,
    }
}

/// Orders two cards; ties fall back to the name, so the order is stable.
fn compare(a: &ProjectSummary, b: &ProjectSummary, by: SortBy) -> std::cmp::Ordering {
    let activity = |s: &ProjectSummary| s.last_activity.as_deref().and_then(parse_timestamp);
    let first = match by {
        SortBy::Name => std::cmp::Ordering::Equal,
        SortBy::Status => status_rank(a.status).cmp(&status_rank(b.status)),
        SortBy::LastActivity => match (activity(a), activity(b)) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        },
        SortBy::Cost => b.cost_usd.total_cmp(&a.cost_usd),
    };
    first.then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
}

/// The tab's title: what is running and what failed, readable from the tab strip.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn title_text(statuses: &[Status]) -> String {
    let count = |wanted: Status| statuses.iter().filter(|s| **s == wanted).count();
    let mut parts = Vec::new();
    if count(Status::Error) > 0 {
        parts.push(format!("{} error", count(Status::Error)));
    }
    if count(Status::Running) > 0 {
        parts.push(format!("{} running", count(Status::Running)));
    }
    if parts.is_empty() {
        "loopwatch".to_owned()
    } else {
        format!("({}) loopwatch", parts.join(", "))
    }
}

/// The card's hint for a running loop whose log has been silent past the stuck-loop rule's
/// limit (the watchdog raises the alert; the card keeps saying it while it holds).
fn silence_hint(summary: &ProjectSummary, now: f64) -> Option<String> {
    let liveness = match summary.status {
        Status::Running => Liveness::Running,
        _ => Liveness::NotRunning,
    };
    let last_write = summary.last_activity.as_deref().and_then(parse_timestamp);
    let silent_for = silence(liveness, last_write, now, &Thresholds::default())?;
    Some(format!("Log silent for {}", minutes(silent_for)))
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
            <super::build::KindBadges summary />
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
                        <When
                            timestamp=Signal::derive(move || {
                                summary.with(|s| s.last_activity.clone())
                            })
                            reading=Reading::Relative
                        />
                    </dd>
                </div>
            </dl>
            {move || {
                let now = use_context::<Clock>().map(|clock| clock.now.get())?;
                let hint = summary.with(|s| silence_hint(s, now))?;
                Some(
                    view! {
                        <p class="silence-hint" role="status" data-testid="silence-hint">
                            {hint}
                        </p>
                    },
                )
            }}
            <super::project::BudgetBar
                project=card.id.clone()
                usage=Signal::derive(move || {
                    summary.with(|s| crate::model::insight::usage(s, None))
                })
            />
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
            <super::build::BuildCardLines summary />
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

#[cfg(test)]
mod tests {
    use super::*;

    fn card(name: &str, status: Status, activity: Option<&str>, cost: f64) -> ProjectSummary {
        ProjectSummary {
            id: name.into(),
            name: name.into(),
            path: format!("/p/{name}"),
            status,
            plan: None,
            warnings: Vec::new(),
            iteration: None,
            max_iterations: 0,
            tokens: 0.0,
            cost_usd: cost,
            last_activity: activity.map(str::to_owned),
            recent_health: Vec::new(),
            pausing: false,
            archived_at: None,
            kinds: Vec::new(),
            build: None,
        }
    }

    fn order(cards: &[ProjectSummary], by: SortBy) -> Vec<&str> {
        let mut sorted: Vec<&ProjectSummary> = cards.iter().collect();
        sorted.sort_by(|a, b| compare(a, b, by));
        sorted.into_iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn a_running_loop_silent_past_the_limit_gets_a_hint_and_others_do_not() {
        let last = "2026-11-27T10:00:00Z";
        let at = parse_timestamp(last).expect("a timestamp");
        let running = card("alpha", Status::Running, Some(last), 0.0);
        assert_eq!(silence_hint(&running, at + 60.0), None);
        assert_eq!(
            silence_hint(&running, at + 16.0 * 60.0).as_deref(),
            Some("Log silent for 16 min")
        );
        let stopped = card("bravo", Status::Stopped, Some(last), 0.0);
        assert_eq!(silence_hint(&stopped, at + 3_600.0), None);
        let never = card("charlie", Status::Running, None, 0.0);
        assert_eq!(silence_hint(&never, at + 3_600.0), None);
    }

    #[test]
    fn cards_sort_by_status_activity_and_cost() {
        let cards = [
            card("alpha", Status::Complete, Some("2026-11-27T09:00:00Z"), 3.0),
            card("bravo", Status::Error, None, 1.0),
            card(
                "charlie",
                Status::Running,
                Some("2026-11-27T10:00:00Z"),
                2.0,
            ),
        ];
        assert_eq!(order(&cards, SortBy::Name), ["alpha", "bravo", "charlie"]);
        assert_eq!(order(&cards, SortBy::Status), ["bravo", "charlie", "alpha"]);
        assert_eq!(
            order(&cards, SortBy::LastActivity),
            ["charlie", "alpha", "bravo"]
        );
        assert_eq!(order(&cards, SortBy::Cost), ["alpha", "charlie", "bravo"]);
        assert_eq!(SortBy::parse("activity"), SortBy::LastActivity);
        assert_eq!(SortBy::parse("nonsense"), SortBy::Name);
    }

    #[test]
    fn the_title_counts_errors_and_running_loops() {
        assert_eq!(title_text(&[]), "loopwatch");
        assert_eq!(title_text(&[Status::Complete]), "loopwatch");
        assert_eq!(
            title_text(&[Status::Running, Status::Error, Status::Running]),
            "(1 error, 2 running) loopwatch"
        );
    }
}
