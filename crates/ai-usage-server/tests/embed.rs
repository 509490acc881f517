//! The embedding shown in `docs/server.md`: an app with its own `/` and our
//! router merged in. Runs the example's `app` and checks that the doc's
//! snippet is the example's text.

mod common;

#[allow(dead_code)] // the example's `main` is not run here
#[path = "../examples/embed_router.rs"]
mod embed_router;

use axum::http::StatusCode;

use common::{get, monitor_in, send};

#[tokio::test]
async fn an_app_with_its_own_root_merges_our_router() {
    let dir = tempfile::tempdir().expect("tempdir");
    let monitor = monitor_in(dir.path());
    monitor.record(&ai_usage_core::UsageEvent::new("qwen-plus", "f").tokens(10, 5));
    // Building the app would panic ("Overlapping method route") if both
    // routers had `/`.
    let app = embed_router::app(monitor);
    let (s, _, body) = send(
        &app,
        axum::http::Method::GET,
        "/",
        &[],
        axum::body::Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&body[..], b"my app");
    for page in ["/ai-usage", "/static/ai_usage_monitor.html"] {
        let (s, headers, body) = send(
            &app,
            axum::http::Method::GET,
            page,
            &[],
            axum::body::Body::empty(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(
            headers[axum::http::header::CONTENT_TYPE]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/html"),
            "{page}"
        );
        assert!(!body.is_empty(), "{page}");
    }
    let (s, v) = get(&app, "/api/ai_usage/stats/current").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["today"]["calls"], 1, "{v}");
}

#[test]
fn the_doc_snippet_is_the_examples_text() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/embed_router.rs")).expect("example");
    let doc = std::fs::read_to_string(root.join("../../docs/server.md")).expect("docs/server.md");
    let between = |text: &str, start: &str, end: &str| -> String {
        let from = text.find(start).map(|i| i + start.len()).expect(start);
        let to = from + text[from..].find(end).expect(end);
        text[from..to].trim().to_string()
    };
    let code = between(
        &example,
        "// docs/server.md: begin\n",
        "// docs/server.md: end",
    );
    let section = between(
        &doc,
        "### Embedding the router in an existing axum app",
        "\n### ",
    );
    let snippet = between(&section, "```rust\n", "```");
    assert_eq!(
        snippet, code,
        "docs/server.md's snippet differs from the example"
    );
}
