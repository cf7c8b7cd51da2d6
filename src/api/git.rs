//! The project's git history: recent commits with the iteration that made each, and the diff
//! of one commit or of one iteration. Read-only; git runs with a deadline, off the event path.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::ApiError;
use crate::model::git::{CommitList, Diff};

/// Most commits the Commits tab lists.
pub const MAX_COMMITS: u32 = 200;

/// The project's newest commits (`limit`, at most [`MAX_COMMITS`]; 50 by default).
#[server(prefix = "/api", endpoint = "commits", input = Json)]
pub async fn load_commits(project: String, limit: Option<u32>) -> Result<CommitList, ApiError> {
    let (dir, spans) = ssr::project(&project)?;
    let limit = limit.unwrap_or(50).clamp(1, MAX_COMMITS) as usize;
    Ok(crate::server::git::recent(&dir, limit, &spans).await)
}

/// One commit's changes (capped; binary files named).
#[server(prefix = "/api", endpoint = "commit_diff", input = Json)]
pub async fn load_commit_diff(project: String, sha: String) -> Result<Diff, ApiError> {
    let (dir, spans) = ssr::project(&project)?;
    let mut diff = crate::server::git::commit_diff(&dir, &sha)
        .await
        .map_err(ssr::git_error)?;
    crate::server::git::attribute(&mut diff.commits, &spans);
    Ok(diff)
}

/// The changes iteration `iteration` of run `run` made: `None` when its row names no commit.
#[server(prefix = "/api", endpoint = "iteration_diff", input = Json)]
pub async fn load_iteration_diff(
    project: String,
    run: u32,
    iteration: u32,
) -> Result<Option<Diff>, ApiError> {
    let (dir, spans) = ssr::project(&project)?;
    let Some(at) = spans
        .iter()
        .position(|span| span.run == run && span.iteration == iteration)
    else {
        return Err(super::ssr::fail(ApiError::UnknownIteration {
            run,
            iteration,
        }));
    };
    let previous = spans[..at]
        .iter()
        .rev()
        .find_map(|span| span.commit.as_deref());
    crate::server::git::iteration_diff(&dir, &spans[at], previous)
        .await
        .map_err(ssr::git_error)
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::ApiError;
    use crate::server::git::{GitError, IterationSpan};
    use std::path::PathBuf;

    /// The project's directory and its iterations' spans, or 404.
    pub fn project(project: &str) -> Result<(PathBuf, Vec<IterationSpan>), ApiError> {
        super::super::ssr::viewer_of(project)?;
        super::super::ssr::state()?
            .index
            .with_project(project, |state| {
                (state.dir().to_path_buf(), state.iteration_spans())
            })
            .ok_or_else(|| super::super::ssr::fail(ApiError::UnknownProject(project.to_owned())))
    }

    pub fn git_error(error: GitError) -> ApiError {
        super::super::ssr::fail(match error {
            GitError::UnknownCommit(sha) => ApiError::UnknownCommit(sha),
            other => ApiError::Git(other.to_string()),
        })
    }
}
