//! The Leptos UI: document shell, routes, pages.

mod attention;
mod build;
pub mod charts;
mod controls;
mod dashboard;
mod format;
mod login;
mod project;
pub mod role;
mod share;
mod stream_status;
mod toasts;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    path, SsrMode,
};

use crate::live::LiveStore;
use dashboard::Dashboard;
use login::LoginPage;
use project::{
    CommitsTab, FilesTab, IterationsTab, LogTab, NotificationsTab, OverviewTab, PlanTab,
    ProjectPage,
};
use stream_status::StreamStatus;
use toasts::Toasts;

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    format::provide_clock();
    mark_hydrated();
    // One store and one socket per tab, shared by every page.
    let store = LiveStore::new();
    provide_context(store);
    role::provide_access();
    attention::provide_tab_badge();
    #[cfg(feature = "hydrate")]
    crate::live::socket::start(store);
    view! {
        <Stylesheet id="leptos" href="/pkg/loopwatch.css" />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Title text="loopwatch" />
        <Router>
            <StreamStatus />
            <Toasts />
            <Routes fallback=NotFound>
                // Async: the page is sent once its data is ready, so it arrives complete
                // (no loading placeholder for data the server already holds).
                <Route path=path!("/") view=Dashboard ssr=SsrMode::Async />
                <Route path=path!("/login") view=LoginPage />
                <ParentRoute path=path!("/projects/:id") view=ProjectPage ssr=SsrMode::Async>
                    <Route path=path!("") view=OverviewTab />
                    <Route path=path!("plan") view=PlanTab />
                    <Route path=path!("iterations") view=IterationsTab />
                    <Route path=path!("log") view=LogTab />
                    <Route path=path!("notifications") view=NotificationsTab />
                    <Route path=path!("files") view=FilesTab />
                    <Route path=path!("commits") view=CommitsTab />
                    <Route path=path!("build") view=build::BuildTab />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="page not-found">
            <h1>"Not found"</h1>
            <p>"No page lives at this address. " <a href="/">"Back to the dashboard"</a></p>
        </main>
    }
}

/// Sets `data-hydrated` on `<body>` once the WASM client has taken over, so browser tests know
/// when the page is interactive.
fn mark_hydrated() {
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}
