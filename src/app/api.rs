//! Server functions: the typed API the UI calls (on the server while rendering, over HTTP from
//! the browser).

use leptos::prelude::*;

use crate::model::ProjectSummary;

/// Every watched project with its current status and plan progress.
#[server(prefix = "/api", endpoint = "projects")]
pub async fn list_projects() -> Result<Vec<ProjectSummary>, ServerFnError> {
    let state = use_context::<crate::server::AppState>()
        .ok_or_else(|| ServerFnError::new("server state is not available"))?;
    Ok(state.index.summaries())
}
