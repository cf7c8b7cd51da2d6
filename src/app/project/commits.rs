//! The Commits tab: the project's recent commits with the iteration that made each, and the
//! diff of one commit (`?sha=`) or of one iteration (`?run=&iteration=`), coloured by line.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::project_view;
use crate::api::git::{load_commit_diff, load_commits, load_iteration_diff};
use crate::api::ApiError;
use crate::app::format::{Reading, When};
use crate::model::git::{Commit, Diff, FileDiff, LineKind, Repository};

/// What the tab shows below the list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selection {
    None,
    Commit(String),
    Iteration(u32, u32),
}

fn selection(sha: Option<String>, run: Option<String>, iteration: Option<String>) -> Selection {
    if let Some(sha) = sha.filter(|s| !s.is_empty()) {
        return Selection::Commit(sha);
    }
    match (
        run.and_then(|r| r.parse().ok()),
        iteration.and_then(|i| i.parse().ok()),
    ) {
        (Some(run), Some(iteration)) => Selection::Iteration(run, iteration),
        _ => Selection::None,
    }
}

async fn load_selected(id: String, selected: Selection) -> Result<Option<Diff>, ApiError> {
    match selected {
        Selection::None => Ok(None),
        Selection::Commit(sha) => load_commit_diff(id, sha).await.map(Some),
        Selection::Iteration(run, iteration) => load_iteration_diff(id, run, iteration).await,
    }
}

#[component]
pub fn CommitsTab() -> impl IntoView {
    let view = project_view();
    let id = view.id.get_value();
    let query = use_query_map();
    let selected =
        move || query.with(|q| selection(q.get("sha"), q.get("run"), q.get("iteration")));
    let list = Resource::new(
        {
            let id = id.clone();
            move || id.clone()
        },
        |id| load_commits(id, None),
    );
    let diff = Resource::new(
        {
            let id = id.clone();
            move || (id.clone(), selected())
        },
        |(id, selected)| load_selected(id, selected),
    );
    let base = format!("/projects/{id}/commits");
    view! {
        <section class="tab-panel commits" aria-label="Commits">
            <Suspense>
                {move || {
                    let base = base.clone();
                    Suspend::new(async move {
                        match list.await {
                            Ok(list) => commit_list(list.repository, list.commits, &base).into_any(),
                            Err(error) => {
                                view! { <p class="load-error">{error.to_string()}</p> }.into_any()
                            }
                        }
                    })
                }}
            </Suspense>
            <Suspense>
                {move || Suspend::new(async move {
                    match diff.await {
                        Ok(Some(diff)) => diff_view(diff).into_any(),
                        Ok(None) if selected() == Selection::None => {
                            view! { <p class="muted">"Pick a commit to see its changes."</p> }
                                .into_any()
                        }
                        Ok(None) => {
                            view! {
                                <p class="muted" data-testid="no-commit">
                                    "This iteration's row names no commit."
                                </p>
                            }
                                .into_any()
                        }
                        Err(error) => {
                            view! { <p class="load-error" role="alert">{error.to_string()}</p> }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

fn commit_list(repository: Repository, commits: Vec<Commit>, base: &str) -> impl IntoView {
    let note = match &repository {
        Repository::Found { subdir } if !subdir.is_empty() => {
            Some(format!("Commits that touched {subdir}/ in its repository."))
        }
        Repository::Found { .. } => None,
        Repository::NotARepository => {
            return view! {
                <p class="empty" data-testid="not-a-repository">
                    "This project is not in a git repository."
                </p>
            }
            .into_any();
        }
        Repository::Unavailable(why) => {
            return view! { <p class="load-error">"Git history unavailable: " {why.clone()}</p> }
                .into_any();
        }
    };
    if commits.is_empty() {
        return view! { <p class="empty">"No commits yet."</p> }.into_any();
    }
    let rows = commits
        .into_iter()
        .map(|commit| {
            let href = format!("{base}?sha={}", commit.sha);
            let iteration_href = commit
                .iteration
                .map(|(run, n)| (format!("{base}?run={run}&iteration={n}"), n));
            let short: String = commit.sha.chars().take(8).collect();
            view! {
                <tr data-testid="commit">
                    <td>
                        <a href=href class="mono">
                            {short}
                        </a>
                    </td>
                    <td class="subject">{commit.subject}</td>
                    <td class="muted">{commit.author}</td>
                    <td class="muted">
                        <When timestamp=Some(commit.time) reading=Reading::Relative />
                    </td>
                    <td class="mono stat">
                        {commit.files} " files "
                        <span class="added">"+" {commit.insertions}</span> " "
                        <span class="removed">"\u{2212}" {commit.deletions}</span>
                    </td>
                    <td>
                        {iteration_href
                            .map(|(href, n)| {
                                view! { <a href=href>"iteration " {n}</a> }
                            })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        {note.map(|note| view! { <p class="muted">{note}</p> })}
        <table class="commit-list">
            <thead>
                <tr>
                    <th>"Commit"</th>
                    <th>"Message"</th>
                    <th>"Author"</th>
                    <th>"Time"</th>
                    <th>"Changes"</th>
                    <th>"Iteration"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

fn diff_view(diff: Diff) -> impl IntoView {
    let heading = match diff.commits.as_slice() {
        [one] => one.subject.clone(),
        many => format!("{} commits", many.len()),
    };
    let files = diff.files.into_iter().map(file_view).collect_view();
    view! {
        <article class="diff" data-testid="diff">
            <h2>{heading}</h2>
            {diff
                .truncated
                .then(|| {
                    view! {
                        <p class="warnings" data-testid="diff-truncated">
                            "Truncated: the diff is larger than the page shows."
                        </p>
                    }
                })}
            {files}
        </article>
    }
}

fn file_view(file: FileDiff) -> impl IntoView {
    let title = match &file.renamed_from {
        Some(from) => format!("{from} \u{2192} {}", file.path),
        None => file.path.clone(),
    };
    let body = if file.binary {
        view! { <p class="muted">"Binary file, not shown."</p> }.into_any()
    } else {
        let lines = file
            .lines
            .into_iter()
            .map(|line| {
                let class = match line.kind {
                    LineKind::Hunk => "hunk",
                    LineKind::Added => "added",
                    LineKind::Removed => "removed",
                    LineKind::Context => "context",
                };
                view! { <span class=class>{line.text} "\n"</span> }
            })
            .collect_view();
        view! { <pre class="diff-text">{lines}</pre> }.into_any()
    };
    view! {
        <section class="diff-file" data-testid="diff-file">
            <h3 class="mono">{title}</h3>
            {body}
            {file
                .truncated
                .then(|| view! { <p class="warnings">"This file's diff was cut."</p> })}
        </section>
    }
}
