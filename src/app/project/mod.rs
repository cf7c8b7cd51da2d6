//! The project page: a header with the live status, tabs as nested routes, one store view
//! (`ProjectView`) shared by every tab through context.

mod editor;
mod files;
mod iterations;
mod log;
mod notifications;
mod operate;
mod overview;
mod plan;

pub use files::FilesTab;
pub use iterations::IterationsTab;
pub use log::LogTab;
pub use notifications::NotificationsTab;
pub use overview::OverviewTab;
pub use plan::PlanTab;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{
    components::{Outlet, A},
    hooks::{use_location, use_params_map},
};

use super::format::iteration_label;
use crate::api::{load_log, load_project, load_recent, ApiError};
use crate::live::{LiveStore, ProjectView};
use crate::model::api_types::{IterationRow, LogText, ProjectDetail};

type PageData = (ProjectDetail, Vec<IterationRow>, LogText);

/// The tab a project page opens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstTab {
    Log,
    Other,
}

/// The page's data. The log's text comes along only when the page opens on the Log tab (its
/// cursor always does, so the stream continues from it); the tab loads it when opened later.
async fn load_page(id: String, first_tab: FirstTab) -> Result<PageData, ApiError> {
    let detail = load_project(id.clone()).await?;
    let recent = load_recent(id.clone()).await?;
    let bytes = match first_tab {
        FirstTab::Log => crate::live::LOG_PAGE_BYTES,
        FirstTab::Other => 0,
    };
    let log = load_log(id, Some(bytes)).await?;
    Ok((detail, recent, log))
}

#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    // Read once: switching tabs later must not refetch the page.
    let first_tab = use_location().pathname.with_untracked(|path| {
        if path.trim_end_matches('/').ends_with("/log") {
            FirstTab::Log
        } else {
            FirstTab::Other
        }
    });
    let data = Resource::new(id, move |id| load_page(id, first_tab));
    view! {
        <main class="page project">
            <Suspense>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok((detail, recent, log)) => {
                            view! { <Loaded detail recent log /> }.into_any()
                        }
                        Err(error) => view! { <LoadError error /> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn LoadError(error: ApiError) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let ApiError::UnknownProject(_) = error {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Not found \u{2013} loopwatch" />
        <nav class="crumbs">
            <a href="/">"\u{2190} All projects"</a>
        </nav>
        <p class="load-error" role="alert">{error.to_string()}</p>
    }
}

#[component]
fn Loaded(detail: ProjectDetail, recent: Vec<IterationRow>, log: LogText) -> impl IntoView {
    let store = expect_context::<LiveStore>();
    let id = detail.summary.id.clone();
    // A plain string, not a closure over the store: the server renders the title after the
    // page's reactive owner may be gone, and reading a signal then panics the render.
    let title = format!("{} \u{2013} loopwatch", detail.summary.name);
    let view = store.open_project(detail, recent, log);
    provide_context(view);
    {
        let id = id.clone();
        on_cleanup(move || store.close_project(&id));
    }
    let name = move || view.detail.with(|d| d.summary.name.clone());
    let status = move || view.detail.with(|d| d.summary.status.as_str());
    let status_label = move || {
        view.detail.with(|d| {
            if d.summary.pausing {
                "pausing"
            } else {
                d.summary.status.as_str()
            }
        })
    };
    let base = format!("/projects/{id}");
    let tab = |path: &str, label: &'static str| {
        let href = format!("{base}{path}");
        // Overview's address is the prefix of every tab's: only an exact match marks it current.
        view! {
            <A href=href exact=path.is_empty() attr:class="tab">
                {label}
            </A>
        }
    };
    view! {
        <Title text=title />
        <nav class="crumbs">
            <a href="/">"\u{2190} All projects"</a>
        </nav>
        <header class="project-head">
            <h1>{name}</h1>
            <span class=move || format!("badge badge-{}", status()) data-testid="status">
                {status_label}
            </span>
            <span class="muted" data-testid="iteration">
                "Iteration "
                {move || {
                    view.detail
                        .with(|d| iteration_label(d.summary.iteration, d.summary.max_iterations))
                }}
            </span>
            <span class="path muted">{move || view.detail.with(|d| d.summary.path.clone())}</span>
        </header>
        <div class="operate-panels">
            <operate::LoopControls />
            <operate::InjectBox />
        </div>
        <nav class="tabs" aria-label="Project sections">
            {tab("", "Overview")}
            {tab("/plan", "Plan")}
            {tab("/iterations", "Iterations")}
            {tab("/log", "Log")}
            {tab("/notifications", "Notifications")}
            {tab("/files", "Files")}
        </nav>
        <Outlet />
        <operate::AuditTrail />
    }
}

/// The open project's view; tabs render only inside [`ProjectPage`].
fn project_view() -> ProjectView {
    expect_context::<ProjectView>()
}
