//! The project page: a header with the live status, tabs as nested routes, one store view
//! (`ProjectView`) shared by every tab through context.

mod budget;
mod commits;
mod editor;
mod feed;
mod files;
mod iterations;
mod log;
mod notifications;
mod operate;
mod overview;
mod plan;

pub use budget::{fetch_budgets, BudgetBar};
pub use commits::CommitsTab;
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
    let gone = matches!(error, ApiError::UnknownProject(_));
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        match error {
            ApiError::UnknownProject(_) => response.set_status(axum::http::StatusCode::NOT_FOUND),
            // A viewer's link does not show this project.
            ApiError::Forbidden(_) => response.set_status(axum::http::StatusCode::FORBIDDEN),
            _ => {}
        }
    }
    let (title, heading) = if gone {
        ("Project not found \u{2013} loopwatch", "Project not found")
    } else {
        (
            "Cannot load the project \u{2013} loopwatch",
            "Cannot load the project",
        )
    };
    view! {
        <Title text=title />
        <nav class="crumbs">
            <a href="/">"\u{2190} All projects"</a>
        </nav>
        <section class="project-missing" data-testid="project-missing">
            <h1>{heading}</h1>
            <p class="load-error" role="alert">{error.to_string()}</p>
            {gone
                .then(|| {
                    view! {
                        <p>
                            "loopwatch watches no project at this address now: its directory may have been \
                             deleted or moved, or its "<code>".ralph/"</code>" directory removed. "
                            "A project that comes back under the same path gets the same address."
                        </p>
                    }
                })}
            <p>
                <a href="/">"Back to the dashboard"</a>
            </p>
        </section>
    }
}

#[component]
fn Loaded(detail: ProjectDetail, recent: Vec<IterationRow>, log: LogText) -> impl IntoView {
    let store = expect_context::<LiveStore>();
    let id = detail.summary.id.clone();
    // A plain string, not a closure over the store: the server renders the title after the
    // page's reactive owner may be gone, and reading a signal then panics the render.
    let title = format!("{} \u{2013} loopwatch", detail.summary.name);
    let has_build = detail.build.is_some();
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
    // Viewers (share links) see no controls; the server refuses their actions anyway.
    let act = crate::app::role::can_act();
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        crate::app::attention::show_statuses(vec![view.detail.with(|d| d.summary.status)]);
    });
    #[cfg(feature = "hydrate")]
    {
        // On a narrow screen the tab strip scrolls: keep the current tab in sight, also once
        // the controls appear (the session's rights arrive after hydration and move the page).
        let location = use_location();
        Effect::new(move |_| {
            location.pathname.track();
            act.track();
            request_animation_frame(|| request_animation_frame(reveal_current_tab));
        });
    }
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
        <Show when=move || view.gone.get()>
            <p class="gone-banner" role="alert" data-testid="project-gone">
                "This project is gone: its directory was deleted or moved. What you see is how it \
                 was last seen."
            </p>
        </Show>
        <nav class="tabs" aria-label="Project sections">
            {tab("", "Overview")}
            {tab("/plan", "Plan")}
            {tab("/iterations", "Iterations")}
            {tab("/log", "Log")}
            {tab("/notifications", "Notifications")}
            {tab("/files", "Files")}
            {tab("/commits", "Commits")}
            {has_build.then(|| tab("/build", "Build"))}
        </nav>
        <Show when=move || act.get()>
            // Their own boundary: the panels' fetches (and refetches on every status change)
            // must not send the page's Suspense back to its fallback, which re-created the
            // whole page (and lost the tab strip's scroll) once the controls appeared.
            {view! {
                <Transition>
                    <div class="operate-panels">
                        <operate::LoopControls />
                        <operate::InjectBox />
                    </div>
                </Transition>
            }
                .into_any()}
        </Show>
        <Outlet />
        <operate::AuditTrail />
    }
}

/// The open project's view; tabs render only inside [`ProjectPage`].
fn project_view() -> ProjectView {
    expect_context::<ProjectView>()
}

/// Scrolls the tab strip (only it) so the current tab is in view.
#[cfg(feature = "hydrate")]
fn reveal_current_tab() {
    use wasm_bindgen::{JsCast, JsValue};
    let Ok(Some(tab)) = document().query_selector(".tabs a[aria-current=page]") else {
        return;
    };
    let options = js_sys::Object::new();
    for (key, value) in [("block", "nearest"), ("inline", "nearest")] {
        let _ = js_sys::Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value));
    }
    let scroll = js_sys::Reflect::get(&tab, &JsValue::from_str("scrollIntoView"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    if let Some(scroll) = scroll {
        let _ = scroll.call1(&tab, &options);
    }
}
