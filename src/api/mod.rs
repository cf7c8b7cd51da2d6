//! Server functions: the typed API the UI calls (on the server while rendering, over HTTP from
//! the browser). Responses that feed live state carry the cursors the stream continues from.
//!
//! Arguments travel as JSON (`input = Json`), not as a form: a JSON POST is not a "simple"
//! request, so a page of another origin cannot send one with the user's cookie.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

pub use crate::model::api_types::ApiError;
use crate::model::{
    api_types::{
        ContextFile, IterationLog, IterationPage, IterationQuery, IterationRow, LogText,
        ProjectDetail, ProjectList,
    },
    ProjectSummary,
};

/// Every watched project with its current status, iteration, progress, tokens and cost, and
/// the cursors the live stream continues from.
#[server(prefix = "/api", endpoint = "projects", input = Json)]
pub async fn list_projects() -> Result<ProjectList, ApiError> {
    let access = ssr::actor()?.access;
    let (mut summaries, list_cursor) = ssr::state()?.index.summaries_at();
    summaries.retain(|(summary, _)| access.may_see(&summary.id));
    let mut cursors = std::collections::BTreeMap::new();
    cursors.insert(crate::model::Topic::Projects, list_cursor);
    let mut projects = Vec::with_capacity(summaries.len());
    for (summary, cursor) in summaries {
        cursors.insert(crate::model::Topic::Project(summary.id.clone()), cursor);
        projects.push(summary);
    }
    Ok(ProjectList { projects, cursors })
}

/// One project: plan, stats, config and notification history.
#[server(prefix = "/api", endpoint = "project", input = Json)]
pub async fn load_project(project: String) -> Result<ProjectDetail, ApiError> {
    ssr::viewer_of(&project)?;
    ssr::state()?
        .index
        .with_project_at(&project, |state, cursor| state.detail(cursor))
        .ok_or(ApiError::UnknownProject(project))
}

/// A page of the iterations table.
#[server(prefix = "/api", endpoint = "iterations", input = Json)]
pub async fn load_iterations(
    project: String,
    query: IterationQuery,
) -> Result<IterationPage, ApiError> {
    ssr::viewer_of(&project)?;
    ssr::state()?
        .index
        .with_project_at(&project, |state, cursor| state.iterations(&query, cursor))
        .ok_or(ApiError::UnknownProject(project))
}

/// One iteration's slice of `ralph.log` and its test output.
#[server(prefix = "/api", endpoint = "iteration_log", input = Json)]
pub async fn load_iteration_log(
    project: String,
    run: u32,
    iteration: u32,
) -> Result<IterationLog, ApiError> {
    ssr::viewer_of(&project)?;
    let location = ssr::state()?
        .index
        .with_project(&project, |state| state.iteration_location(run, iteration))
        .ok_or_else(|| ApiError::UnknownProject(project.clone()))?
        .ok_or(ApiError::UnknownIteration { run, iteration })?;
    // File reads run off the async threads, with a time limit.
    crate::server::safe_open::off_thread(move || location.load(run, iteration))
        .await
        .and_then(|loaded| loaded)
        .map_err(|error| ApiError::Io(format!("ralph.log: {error}")))
}

/// The log as published so far (its last `max_bytes`, at most and by default
/// [`MAX_LOG_BYTES`](crate::model::api_types::MAX_LOG_BYTES)), with the `log:ID` cursor it
/// ends at.
#[server(prefix = "/api", endpoint = "log", input = Json)]
pub async fn load_log(project: String, max_bytes: Option<u64>) -> Result<LogText, ApiError> {
    ssr::viewer_of(&project)?;
    use crate::model::api_types::MAX_LOG_BYTES;
    let max_bytes = max_bytes.unwrap_or(MAX_LOG_BYTES).min(MAX_LOG_BYTES);
    let state = ssr::state()?;
    crate::server::safe_open::off_thread(move || {
        match state.index.log_snapshot(&project, max_bytes) {
            None => Err(ApiError::UnknownProject(project)),
            Some(Err(error)) => Err(ApiError::Io(format!("ralph.log: {error}"))),
            Some(Ok((text, truncated, cursor))) => Ok(LogText {
                text,
                truncated,
                cursor,
            }),
        }
    })
    .await
    .map_err(|error| ApiError::Io(format!("ralph.log: {error}")))?
}

/// The newest iterations (newest first) that the overview's charts and activity feed show.
#[server(prefix = "/api", endpoint = "recent", input = Json)]
pub async fn load_recent(project: String) -> Result<Vec<IterationRow>, ApiError> {
    ssr::viewer_of(&project)?;
    let query = IterationQuery {
        limit: RECENT_ITERATIONS,
        ..IterationQuery::default()
    };
    ssr::state()?
        .index
        .with_project_at(&project, |state, cursor| state.iterations(&query, cursor))
        .map(|page| page.rows)
        .ok_or(ApiError::UnknownProject(project))
}

/// How many iterations the overview charts cover.
pub const RECENT_ITERATIONS: u32 = 60;

/// The context files present: `AGENTS.md`, `PROMPT.md`, then `specs/*.md`.
#[server(prefix = "/api", endpoint = "context_files", input = Json)]
pub async fn list_context_files(project: String) -> Result<Vec<String>, ApiError> {
    ssr::viewer_of(&project)?;
    let dir = ssr::project_dir(&project)?;
    crate::server::safe_open::off_thread(move || crate::server::project::context_files::list(&dir))
        .await
        .map_err(|error| ApiError::Io(format!("specs: {error}")))
}

/// The text of one context file. Any name other than `AGENTS.md`, `PROMPT.md` or
/// `specs/NAME.md` is refused, so nothing else of the project (or outside it) can be read.
#[server(prefix = "/api", endpoint = "context_file", input = Json)]
pub async fn load_context_file(project: String, name: String) -> Result<ContextFile, ApiError> {
    ssr::viewer_of(&project)?;
    let dir = ssr::project_dir(&project)?;
    crate::server::safe_open::off_thread(move || {
        crate::server::project::context_files::read(&dir, &name)
    })
    .await
    .map_err(|error| ApiError::Io(format!("file: {error}")))?
}

pub mod git;
#[cfg(feature = "ssr")]
mod ssr;

mod access;
mod control;
mod insight;
mod share;
pub use access::*;
pub use control::*;
pub use insight::*;
pub use share::*;

/// Archives a project (hidden from dashboards by default, still watched) or brings it back.
/// Every dashboard hears of it at once (`project_archived`). Returns the updated card.
#[server(prefix = "/api", endpoint = "archive", input = Json)]
pub async fn set_archived(project: String, archived: bool) -> Result<ProjectSummary, ApiError> {
    use crate::model::audit::Outcome;
    use crate::server::archive::{Archival, ArchiveError};
    let actor = ssr::operator()?;
    let state = ssr::state()?;
    // Saving the archive list is file I/O (with fsync): off the async threads.
    let to = if archived {
        Archival::Archived
    } else {
        Archival::Active
    };
    let id = project.clone();
    let result = tokio::task::spawn_blocking(move || state.index.set_archived(&id, to))
        .await
        .map_err(|_| ApiError::Archive("the save was interrupted".into()))
        .and_then(|saved| {
            saved.map_err(|error| match error {
                ArchiveError::UnknownProject(id) => ApiError::UnknownProject(id),
                // The operator reads this; the path is the server's own data directory.
                other => ApiError::Archive(other.to_string()),
            })
        });
    let (outcome, detail) = match &result {
        Ok(_) => (Outcome::Done, String::new()),
        Err(error @ ApiError::UnknownProject(_)) => (Outcome::Refused, error.to_string()),
        Err(error) => (Outcome::Failed, error.to_string()),
    };
    let action = if archived { "archive" } else { "unarchive" };
    ssr::record(
        &actor,
        Some(&project),
        action,
        serde_json::Value::Null,
        outcome,
        detail,
    )
    .await;
    result.map_err(ssr::fail)
}
