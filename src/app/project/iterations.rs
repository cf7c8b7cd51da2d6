//! Iterations: a sortable, filterable, paged table; a row expands to that iteration's log.

use leptos::prelude::*;

use super::project_view;
use crate::api::{load_iteration_log, load_iterations};
use crate::app::format::{cost_label, duration_label, health_name, tokens_label};
use crate::contract::ansi::{spans, Style};
use crate::contract::ralph::stats::Health;
use crate::model::api_types::{
    IterationQuery, IterationRow, IterationSort, RowSource, StatusFilter,
};

const PAGE: u32 = 50;

const STATUS_CHOICES: &[(&str, StatusFilter)] = &[
    ("success", StatusFilter::Success),
    ("error", StatusFilter::Error),
    ("other", StatusFilter::Other),
];

const HEALTH_CHOICES: &[(&str, Health)] = &[
    ("productive", Health::Productive),
    ("partial", Health::Partial),
    ("failed", Health::Failed),
];

/// A labelled `<select>` of filter choices after "all"; picking one calls `pick` with it
/// (`None` for "all").
fn filter_select<T: Copy + Send + Sync + 'static>(
    label: &'static str,
    choices: &'static [(&'static str, T)],
    pick: impl Fn(Option<T>) + 'static,
) -> impl IntoView {
    view! {
        <label>
            {format!("{label} ")}
            <select on:change=move |ev| {
                let value = event_target_value(&ev);
                pick(choices.iter().find(|(name, _)| *name == value).map(|(_, choice)| *choice));
            }>
                <option value="">"all"</option>
                {choices
                    .iter()
                    .map(|(name, _)| view! { <option value=*name>{*name}</option> })
                    .collect_view()}
            </select>
        </label>
    }
}

#[component]
pub fn IterationsTab() -> impl IntoView {
    let view = project_view();
    let id = view.id.get_value();
    let sort = RwSignal::new(IterationSort::Newest);
    let status = RwSignal::new(None::<StatusFilter>);
    let health = RwSignal::new(None::<Health>);
    let offset = RwSignal::new(0u32);
    let expanded = RwSignal::new(None::<(u32, u32)>);
    let page = Resource::new(
        move || {
            (
                id.clone(),
                IterationQuery {
                    status: status.get(),
                    health: health.get(),
                    sort: sort.get(),
                    offset: offset.get(),
                    limit: PAGE,
                },
                view.iterations_changed.get(),
            )
        },
        |(id, query, _)| load_iterations(id, query),
    );
    let set_sort = move |next: IterationSort| {
        sort.set(next);
        offset.set(0);
    };
    let number_sort = move || {
        if sort.get() == IterationSort::Newest {
            IterationSort::Oldest
        } else {
            IterationSort::Newest
        }
    };
    let aria_sort = move |column: IterationSort| match (sort.get(), column) {
        (IterationSort::Newest, IterationSort::Newest) => "descending",
        (IterationSort::Oldest, IterationSort::Newest) => "ascending",
        (current, column) if current == column => "descending",
        _ => "none",
    };
    // The "#" column sorts by number both ways: a click there flips newest and oldest.
    let sort_header = move |label: &'static str, column: IterationSort| {
        let next = move || {
            if column == IterationSort::Newest {
                number_sort()
            } else {
                column
            }
        };
        view! {
            <th aria-sort=move || aria_sort(column)>
                <button type="button" on:click=move |_| set_sort(next())>
                    {label}
                </button>
            </th>
        }
    };
    view! {
        <section class="tab-panel iterations" aria-label="Iterations">
            <div class="toolbar">
                {filter_select("Status", STATUS_CHOICES, move |choice| {
                    status.set(choice);
                    offset.set(0);
                })}
                {filter_select("Health", HEALTH_CHOICES, move |choice| {
                    health.set(choice);
                    offset.set(0);
                })}
            </div>
            <Transition>
                {move || Suspend::new(async move {
                    let page = match page.await {
                        Ok(page) => page,
                        Err(error) => {
                            return view! { <p class="load-error" role="alert">{error.to_string()}</p> }
                                .into_any();
                        }
                    };
                    let total = page.total;
                    let forgotten = (page.forgotten > 0).then(|| {
                        format!(
                            "The oldest {} rows of iterations.jsonl are not kept: the file has more rows than the server keeps in memory. They are in none of the pages and the statistics leave them out.",
                            page.forgotten,
                        )
                    });
                    let first = offset.get_untracked();
                    let rows = page
                        .rows
                        .into_iter()
                        .map(|row| view! { <Row row expanded /> })
                        .collect_view();
                    view! {
                        {forgotten
                            .map(|text| {
                                view! {
                                    <p class="notice rows-forgotten" role="note" data-testid="rows-forgotten">
                                        {text}
                                    </p>
                                }
                            })}
                        <div class="table-wrap">
                            <table class="iteration-table">
                                <thead>
                                    <tr>
                                        {sort_header("#", IterationSort::Newest)}
                                        <th>"Status"</th>
                                        <th>"Health"</th>
                                        {sort_header("Duration", IterationSort::Duration)}
                                        {sort_header("Tokens", IterationSort::Tokens)}
                                        <th>"Cost"</th>
                                        <th>"Tasks"</th>
                                        <th>"Commit"</th>
                                        <th>"Tests"</th>
                                    </tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                        </div>
                        <nav class="pager" aria-label="Pages">
                            <button
                                type="button"
                                disabled=first == 0
                                on:click=move |_| offset.update(|o| *o = o.saturating_sub(PAGE))
                            >
                                "Newer page"
                            </button>
                            <span class="muted">
                                {if total == 0 {
                                    "No iterations".to_owned()
                                } else {
                                    format!(
                                        "{}\u{2013}{} of {total}",
                                        first + 1,
                                        (first + PAGE).min(total),
                                    )
                                }}
                            </span>
                            <button
                                type="button"
                                disabled={ first + PAGE >= total }
                                on:click=move |_| offset.update(|o| *o += PAGE)
                            >
                                "Older page"
                            </button>
                        </nav>
                    }
                        .into_any()
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Row(row: IterationRow, expanded: RwSignal<Option<(u32, u32)>>) -> impl IntoView {
    let record = row.record;
    let key = (record.run, record.iteration);
    let open = move || expanded.get() == Some(key);
    let toggle = move |_| expanded.update(|e| *e = if *e == Some(key) { None } else { Some(key) });
    let status = if record.status.is_success() {
        "success".to_owned()
    } else if record.status.is_error() {
        "error".to_owned()
    } else {
        match &record.status {
            crate::contract::ralph::iterations::IterationStatus::Other(text) => text.clone(),
            _ => String::new(),
        }
    };
    let health = health_name(row.health);
    // No JSONL row: the loop wrote only its log, so tasks, commit and tests are unknown.
    let from_log = (row.source == RowSource::Log).then(|| {
        view! {
            <span
                class="from-log"
                data-testid="from-log"
                title="No row in iterations.jsonl: built from this iteration's lines in ralph.log"
            >
                "from the log"
            </span>
        }
    });
    let tests = match record.test_passed {
        Some(true) => "passed",
        Some(false) => "failed",
        None => "\u{2014}",
    };
    view! {
        <tr class="iteration-row" class:open=open data-testid="iteration-row">
            <td>
                <button
                    type="button"
                    class="expand"
                    aria-expanded=move || open().to_string()
                    disabled=!row.has_log
                    title=if row.has_log { "Show this iteration's log" } else { "No log for this iteration" }
                    on:click=toggle
                >
                    {record.iteration}
                </button>
            </td>
            <td>{status} {from_log}</td>
            <td>
                <span class=format!("health-dot health-{health}")></span>
                {health}
            </td>
            <td>{record.duration_seconds.map(duration_label).unwrap_or_else(|| "\u{2014}".into())}</td>
            <td>{record.tokens.map(tokens_label).unwrap_or_else(|| "\u{2014}".into())}</td>
            <td>{row.cost_usd.map(cost_label).unwrap_or_else(|| "\u{2014}".into())}</td>
            <td>{record.tasks_completed.join(", ")}</td>
            <td>
                <code title=record.commit_message.clone().unwrap_or_default()>
                    {record.commit.as_deref().map(|c| c.chars().take(8).collect::<String>())}
                </code>
            </td>
            <td>{tests}</td>
        </tr>
        <Show when=open>
            <tr class="iteration-log-row">
                <td colspan="9">
                    <IterationLogView run=key.0 iteration=key.1 />
                </td>
            </tr>
        </Show>
    }
}

#[component]
fn IterationLogView(run: u32, iteration: u32) -> impl IntoView {
    let view = project_view();
    let id = view.id.get_value();
    let log = Resource::new(
        move || (id.clone(), run, iteration),
        |(id, run, i)| load_iteration_log(id, run, i),
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading the log\u{2026}"</p> }>
            {move || Suspend::new(async move {
                match log.await {
                    Ok(log) => {
                        view! {
                            <pre class="ansi iteration-log" data-testid="iteration-log">
                                {ansi_lines(&log.text)}
                            </pre>
                            {log
                                .truncated
                                .then(|| view! { <p class="muted">"(cut: the iteration's log is longer)"</p> })}
                            {log
                                .test_output
                                .map(|out| {
                                    view! {
                                        <h3>"Test output"</h3>
                                        <pre class="ansi test-output">{ansi_lines(&out)}</pre>
                                    }
                                })}
                        }
                            .into_any()
                    }
                    Err(error) => {
                        view! { <p class="load-error" role="alert">{error.to_string()}</p> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// Text with ANSI colours as styled spans, colours carried across lines.
pub fn ansi_lines(text: &str) -> impl IntoView {
    let mut style = Style::default();
    text.split_inclusive('\n')
        .flat_map(|line| {
            let mut parts = spans(line, &mut style);
            if line.ends_with('\n') {
                if let Some(last) = parts.last_mut() {
                    last.text.push('\n');
                } else {
                    parts.push(crate::contract::ansi::Span {
                        text: "\n".into(),
                        class: String::new(),
                        style: String::new(),
                    });
                }
            }
            parts
        })
        .map(|span| view! { <span class=span.class style=span.style>{span.text}</span> })
        .collect_view()
}
