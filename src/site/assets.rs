//! The compiled site (wasm, js, css, public files), embedded in the release binary so that one
//! file is the whole deployment. Debug builds read the same files from `target/site` on disk.
//! Precompressed `.br`/`.gz` variants (from `cargo leptos build --release --precompress`) are
//! served to clients that accept them. Only exact names of embedded files are served; anything
//! else gets a fixed "not found" page that never renders the app (and so never project data).

use axum::{
    body::Body,
    http::{header, HeaderMap, HeaderValue, Request, StatusCode},
    response::{IntoResponse, Response},
};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "target/site"]
#[allow_missing = true]
// Type declarations are for TypeScript users of the bindings, not for browsers.
#[exclude = "*.d.ts"]
#[exclude = "*.d.ts.*"]
struct Site;

/// Serves an embedded file, or the static "not found" page.
pub async fn static_or_not_found(request: Request<Body>) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    embedded(path, request.headers()).unwrap_or_else(not_found)
}

/// Whether `path` (without its leading `/`) is exactly the name of an embedded site file.
pub fn is_site_file(path: &str) -> bool {
    is_safe(path) && Site::iter().any(|name| name == path)
}

const NOT_FOUND_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n\
<meta charset=\"utf-8\" />\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n\
<meta name=\"color-scheme\" content=\"light dark\" />\n\
<title>Not found \u{2013} loopwatch</title>\n\
<link rel=\"stylesheet\" href=\"/pkg/loopwatch.css\" />\n\
</head>\n<body>\n<main class=\"page not-found\">\n<h1>Not found</h1>\n\
<p>No page lives at this address. <a href=\"/\">Back to the dashboard</a></p>\n\
</main>\n</body>\n</html>\n";

/// Fixed text: whatever the path and whoever asks, nothing of any project is in it.
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        NOT_FOUND_PAGE,
    )
        .into_response()
}

fn embedded(path: &str, headers: &HeaderMap) -> Option<Response> {
    if !is_site_file(path) {
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
