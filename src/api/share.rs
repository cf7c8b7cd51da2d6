//! Read-only share links, for operators: create one for some projects, list them, revoke one
//! (which ends its sessions at once, open sockets included). Each change is audited.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::model::{
    access::{NewShareLink, ShareLink},
    api_types::ApiError,
};

/// A new link to `projects` (each must exist), opening for `expires` (`7d`, `12h`; default
/// 7 days). The answer carries the link's path with its key: the only time it is shown.
#[server(prefix = "/api", endpoint = "share_create", input = Json)]
pub async fn create_share(
    projects: Vec<String>,
    expires: Option<String>,
) -> Result<NewShareLink, ApiError> {
    use crate::model::audit::Outcome;
    use crate::server::share;
    let actor = super::ssr::operator()?;
    let state = super::ssr::state()?;
    if let Some(unknown) = projects.iter().find(|id| !state.index.contains(id)) {
        return Err(super::ssr::fail(ApiError::UnknownProject(unknown.clone())));
    }
    let params = serde_json::json!({"projects": projects, "expires": expires});
    let lifetime = match expires.as_deref() {
        Some(text) => share::parse_lifetime(text),
        None => Ok(share::DEFAULT_LIFETIME),
    };
    let store = state.store.clone();
    let wanted = projects.into_iter().collect();
    let created = match lifetime {
        Ok(lifetime) => {
            tokio::task::spawn_blocking(move || share::create(&store, &wanted, lifetime))
                .await
                .map_err(|_| ApiError::Io("the share link was not saved".into()))
                .and_then(|made| made.map_err(|error| share_error(&error)))
        }
        Err(error) => Err(share_error(&error)),
    };
    let (outcome, detail) = match &created {
        Ok(link) => (Outcome::Done, format!("link {}", link.share.id)),
        Err(error @ ApiError::Io(_)) => (Outcome::Failed, error.to_string()),
        Err(error) => (Outcome::Refused, error.to_string()),
    };
    super::ssr::record(&actor, None, "share", params, outcome, detail).await;
    created.map_err(super::ssr::fail)
}

/// Every share link, newest first (revoked and expired ones included).
#[server(prefix = "/api", endpoint = "share_list", input = Json)]
pub async fn list_shares() -> Result<Vec<ShareLink>, ApiError> {
    super::ssr::operator()?;
    let store = super::ssr::state()?.store.clone();
    tokio::task::spawn_blocking(move || store.shares())
        .await
        .map_err(|_| ApiError::Io("the share links could not be read".into()))?
        .map_err(|error| super::ssr::fail(ApiError::Io(error.to_string())))
}

/// Revokes a link: it no longer opens, and every session opened with it ends now (open
/// sockets close with 4401). Returns the link as it is now.
#[server(prefix = "/api", endpoint = "share_revoke", input = Json)]
pub async fn revoke_share(id: String) -> Result<ShareLink, ApiError> {
    use crate::model::audit::Outcome;
    let actor = super::ssr::operator()?;
    let state = super::ssr::state()?;
    let store = state.store.clone();
    let wanted = id.clone();
    let revoked = tokio::task::spawn_blocking(move || {
        let changed = store.revoke_share(&wanted, &crate::server::clock::now())?;
        store.share(&wanted).map(|link| (changed, link))
    })
    .await
    .map_err(|_| ApiError::Io("the revocation was interrupted".into()))
    .and_then(|done| done.map_err(|error| ApiError::Io(error.to_string())));
    let result = match revoked {
        Ok((_, Some(link))) => {
            let ended = state
                .auth
                .as_ref()
                .map_or(0, |auth| auth.end_share(&link.id));
            Ok((link, ended))
        }
        Ok((_, None)) => Err(ApiError::UnknownShare(id.clone())),
        Err(error) => Err(error),
    };
    let (outcome, detail) = match &result {
        Ok((_, ended)) => (Outcome::Done, format!("{ended} session(s) ended")),
        Err(error @ ApiError::Io(_)) => (Outcome::Failed, error.to_string()),
        Err(error) => (Outcome::Refused, error.to_string()),
    };
    let params = serde_json::json!({"id": id});
    super::ssr::record(&actor, None, "revoke_share", params, outcome, detail).await;
    result.map(|(link, _)| link).map_err(super::ssr::fail)
}

#[cfg(feature = "ssr")]
fn share_error(error: &crate::server::share::ShareError) -> ApiError {
    use crate::server::share::ShareError;
    match error {
        ShareError::Store(_) | ShareError::NoRandomness => ApiError::Io(error.to_string()),
        _ => ApiError::BadShare(error.to_string()),
    }
}
