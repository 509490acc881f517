//! The dashboard page: one self-contained HTML file compiled into the binary.
//! No CDN, no third-party code, charts drawn as SVG by its own script.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Where the page always is (the original's URL).
pub const PAGE_PATH: &str = "/static/ai_usage_monitor.html";

/// The page, embedded at build time.
pub const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");

/// Content-Security-Policy of the page: only same-origin `fetch`, no external
/// script, style, image or font can load, even if some data slipped through
/// escaping.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /` and `GET /static/ai_usage_monitor.html`.
pub async fn dashboard_page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}
