//! What every server function needs on the server: the state, the caller and its role, the
//! error's HTTP status, and the audit trail.

use crate::model::access::Access;
use crate::model::api_types::ApiError;
use crate::model::audit::{AuditEntry, Outcome, Role};
use crate::server::{auth::Claims, store::NewAuditEntry, AppState};
use leptos::prelude::use_context;
use std::path::PathBuf;

pub fn state() -> Result<AppState, ApiError> {
    use_context::<AppState>().ok_or_else(|| {
        ApiError::ServerFn(leptos::server_fn::error::ServerFnErrorErr::ServerError(
            "server state is not available".into(),
        ))
    })
}

/// The project's directory, for a caller that may see it (403 for a viewer whose link does
/// not show it; 404 for an unknown project).
pub fn project_dir(project: &str) -> Result<PathBuf, ApiError> {
    viewer_of(project)?;
    state()?
        .index
        .with_project(project, |state| state.dir().to_path_buf())
        .ok_or_else(|| ApiError::UnknownProject(project.to_owned()))
}

/// Answers with the error's own HTTP status (404, 403, 409, ...) rather than a bare 500.
pub fn fail(error: ApiError) -> ApiError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = axum::http::StatusCode::from_u16(error.status()) {
            response.set_status(status);
        }
    }
    error
}

/// Who is calling: the session behind this request (the session guard has checked it).
#[derive(Clone, Debug)]
pub struct Actor {
    /// A short, non-secret tag of the session, for the audit trail.
    pub session: String,
    pub role: Role,
    /// What the session may see and do.
    pub access: Access,
}

pub fn actor() -> Result<Actor, ApiError> {
    let state = state()?;
    let parts = use_context::<axum::http::request::Parts>();
    let claims = parts
        .as_ref()
        .and_then(|parts| parts.extensions.get::<Claims>());
    match (state.auth.is_some(), claims) {
        (_, Some(claims)) => Ok(Actor {
            session: claims.sid.chars().take(8).collect(),
            role: claims.access.role,
            access: claims.access.clone(),
        }),
        // Authentication off: the one local user.
        (false, None) => Ok(Actor {
            session: "local".into(),
            role: Role::Operator,
            access: Access::operator(),
        }),
        (true, None) => Err(fail(ApiError::Forbidden("no session".into()))),
    }
}

/// The caller, if it may see `project`; 403 otherwise (whether or not the project exists, so a
/// viewer learns nothing of projects outside its link).
pub fn viewer_of(project: &str) -> Result<Actor, ApiError> {
    let actor = actor()?;
    if actor.access.may_see(project) {
        Ok(actor)
    } else {
        Err(fail(ApiError::Forbidden(
            "this link does not show that project".into(),
        )))
    }
}

/// The caller, if it may act (change projects, start and stop processes); 403 otherwise.
pub fn operator() -> Result<Actor, ApiError> {
    let actor = actor()?;
    match actor.role {
        Role::Operator => Ok(actor),
        Role::Viewer => Err(fail(ApiError::Forbidden(
            "a viewer link is read-only".into(),
        ))),
    }
}

/// Records a control action in the audit trail. A trail that cannot be written is logged
/// (the action itself has already happened or been refused).
pub async fn record(
    actor: &Actor,
    project: Option<&str>,
    action: &str,
    params: serde_json::Value,
    outcome: Outcome,
    detail: String,
) -> Option<AuditEntry> {
    let state = state().ok()?;
    let entry = NewAuditEntry {
        time: crate::server::clock::now(),
        session: actor.session.clone(),
        role: actor.role,
        project: project.map(str::to_owned),
        action: action.to_owned(),
        params: params.to_string(),
        outcome,
        detail,
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.record(&entry)).await {
        Ok(Ok(stored)) => Some(stored),
        Ok(Err(error)) => {
            tracing::error!(%error, "the audit trail could not be written");
            None
        }
        Err(_) => None,
    }
}
