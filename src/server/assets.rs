//! The compiled site (wasm, js, css, public files), embedded in the release binary so that one
//! file is the whole deployment. Debug builds read the same files from `target/site` on disk.
//! Precompressed `.br`/`.gz` variants (from `cargo leptos build --release --precompress`) are
//! served to clients that accept them.

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Request, StatusCode},
    response::{IntoResponse, Response},
};
use leptos::prelude::provide_context;
use rust_embed::RustEmbed;
use tower::ServiceExt;

use super::AppState;
use crate::app::shell;

#[derive(RustEmbed)]
#[folder = "target/site"]
#[allow_missing = true]
// Type declarations are for TypeScript users of the bindings, not for browsers.
#[exclude = "*.d.ts"]
#[exclude = "*.d.ts.*"]
struct Site;

/// Serves an embedded file, or the Leptos "not found" page.
pub async fn static_or_not_found(
    State(state): State<AppState>,
    request: Request<Body>,
) -> Response {
    let path = request.uri().path().trim_start_matches('/').to_owned();
    if let Some(response) = embedded(&path, request.headers()) {
        return response;
    }
    let options = state.leptos_options.clone();
    let handler = leptos_axum::ErrorHandler::new_with_context(
        move || provide_context(state.clone()),
        shell,
        options,
    );
    match handler.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn embedded(path: &str, headers: &HeaderMap) -> Option<Response> {
    if !is_safe(path) {
        return None;
    }
    let original = Site::get(path)?;
    let mime = original.metadata.mimetype().to_owned();
    let accepts = |coding: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|part| part.split(';').next().is_some_and(|c| c.trim() == coding))
    };
    let (file, encoding) = [("br", ".br"), ("gzip", ".gz")]
        .into_iter()
        .filter(|(coding, _)| accepts(coding))
        .find_map(|(coding, suffix)| {
            Site::get(&format!("{path}{suffix}")).map(|f| (f, Some(coding)))
        })
        .unwrap_or((original, None));

    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let matches_etag = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));

    let mut response = if matches_etag {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(coding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // File names carry no hash, so browsers must revalidate; the ETag makes that cheap.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    Some(response)
}

/// Only plain relative paths: no parent segments, no absolute or Windows-style paths.
fn is_safe(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != ".." && segment != ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_could_escape() {
        for bad in [
            "",
            "../etc/passwd",
            "pkg/../../x",
            "/abs",
            "pkg//x",
            "a\\b",
            "./x",
            "pkg/.",
        ] {
            assert!(!is_safe(bad), "{bad:?}");
        }
        for good in ["pkg/loopwatch.js", "favicon.svg", "pkg/loopwatch_bg.wasm"] {
            assert!(is_safe(good), "{good:?}");
        }
    }
}
