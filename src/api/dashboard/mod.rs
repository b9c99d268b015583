//! The web dashboard's files: hand-written HTML, CSS and JavaScript built into the binary and
//! served at `/` and `/ui/*` on both listeners, with their content types, an ETag from their
//! hash, and a Content-Security-Policy that allows nothing but this server. The page itself
//! is a client of the JSON/SSE API, like the CLI.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::{ApiError, AppState};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file of the page; `index.html` is served at `/`, the others at `/ui/NAME`.
const ASSETS: [Asset; 4] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("icon.svg"),
    },
];

/// Scripts, styles, images and connections from this server only; no inline script or
/// style, no plugin, no framing, no form posted elsewhere. (The page sets element styles
/// through the CSSOM, which `style-src` does not govern.)
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{name}", get(asset))
}

/// Paths of the page's files, which the TCP listener serves without a token.
pub fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

/// The files' total size, for the tests' weight budget.
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(name)) = name else {
        return ApiError::new(StatusCode::NOT_FOUND, "no such file").into_response();
    };
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) if i > 0 => serve(i, &headers),
        _ => ApiError::new(StatusCode::NOT_FOUND, format!("no such file `{name}`")).into_response(),
    }
}

/// Strong ETags, one per file, from the SHA-256 of its bytes (computed once).
fn etag(i: usize) -> &'static HeaderValue {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let hash = ring::digest::digest(&ring::digest::SHA256, a.body);
                let hex: String = hash.as_ref()[..12]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                HeaderValue::from_str(&format!("\"{hex}\"")).expect("UNWRAP: hex")
            })
            .collect()
    })[i]
}

fn serve(i: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let tag = etag(i);
    // The files change only with tend's binary: a browser keeps them, and asks each time
    // whether they are still current (a 304 without a body when they are).
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t.as_bytes() == tag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_light_and_has_no_inline_script_or_style() {
        assert!(total_bytes() < 200 * 1024, "{} bytes", total_bytes());
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains(" style="), "style attribute");
        let handler = html.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(
            handler.is_none(),
            "event handler attribute: on{}",
            handler.unwrap_or("")
        );
        let js = std::str::from_utf8(ASSETS[1].body).unwrap();
        assert!(
            !js.contains("innerHTML"),
            "the script builds nodes, never parses HTML"
        );
        assert!(!js.contains("eval("));
    }

    #[test]
    fn every_file_has_its_own_etag() {
        let tags: std::collections::HashSet<_> = (0..ASSETS.len()).map(etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
