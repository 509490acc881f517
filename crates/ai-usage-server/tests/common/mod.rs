//! Helpers shared by the server's integration tests: a monitor in a temp
//! dir, a router over it, requests through `tower::ServiceExt::oneshot`.
#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use ai_usage_core::UsageEvent;
use ai_usage_core::UsageMonitor;
use ai_usage_server::{ServeOptions, ServerBuilder};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A monitor in a temp dir and a router over it.
pub struct Fixture {
    /// Keeps the records directory alive.
    pub dir: tempfile::TempDir,
    /// The monitor behind the router.
    pub monitor: Arc<UsageMonitor>,
    /// The router under test.
    pub app: Router,
}

pub fn monitor_in(dir: &std::path::Path) -> Arc<UsageMonitor> {
    Arc::new(
        UsageMonitor::builder()
            .dir(dir)
            .timezone("+08:00".parse().expect("zone"))
            .build()
            .expect("monitor"),
    )
}

pub fn fixture_with(opts: Option<ServeOptions>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let monitor = monitor_in(dir.path());
    let app = match opts {
        Some(o) => ServerBuilder::new(Arc::clone(&monitor)).options(o).router(),
        None => ServerBuilder::new(Arc::clone(&monitor)).router(),
    };
    Fixture { dir, monitor, app }
}

pub fn fixture() -> Fixture {
    fixture_with(None)
}

pub fn seed(m: &UsageMonitor) {
    m.record(
        &UsageEvent::new("qwen-plus", "实时分析")
            .tokens(1200, 300)
            .duration_ms(850.0)
            .user("u1")
            .anchor("anchor_123")
            .session("session_456"),
    );
    m.record(
        &UsageEvent::new("qwen-max", "话术生成")
            .tokens(2000, 800)
            .duration_ms(2100.0)
            .user("u2")
            .anchor("anchor_123")
            .session("session_456"),
    );
    m.record(
        &UsageEvent::new("qwen-turbo", "实时分析")
            .tokens(500, 100)
            .failed("timeout")
            .user("u1"),
    );
}

pub async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, bytes)
}

pub async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (s, _, b) = send(app, Method::GET, uri, &[], Body::empty()).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

pub async fn post_json(
    app: &Router,
    uri: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    let (s, _, b) = send(app, Method::POST, uri, &h, Body::from(body.to_string())).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// Asserts the `{error, detail}` shape and that the error names `name`: a
/// 422 carries FastAPI's `detail` array (whose `loc` ends with `name`) and
/// our sentence in `message`; other errors carry the sentence in `detail`.
pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode, name: &str) {
    assert_eq!(status, want, "body: {body}");
    assert!(body["error"].is_string(), "no error code: {body}");
    let sentence = if status == StatusCode::UNPROCESSABLE_ENTITY {
        let issues = body["detail"].as_array().expect("422 detail is an array");
        assert!(!issues.is_empty(), "{body}");
        for issue in issues {
            assert!(issue["type"].is_string(), "{issue}");
            assert!(issue["msg"].is_string(), "{issue}");
            assert!(issue.get("input").is_some(), "{issue}");
            assert!(issue["loc"].is_array(), "{issue}");
        }
        // `loc` names the parameter or field; a batch record by its index.
        let located = |p: &Value| match p {
            Value::String(p) => p != "body" && p != "query" && name.contains(p.as_str()),
            Value::Number(n) => name == format!("record {n}"),
            _ => false,
        };
        assert!(
            issues
                .iter()
                .any(|i| i["loc"].as_array().is_some_and(|l| l.iter().any(located))),
            "no issue located at {name:?}: {body}"
        );
        body["message"].as_str().unwrap_or_default()
    } else {
        body["detail"].as_str().unwrap_or_default()
    };
    assert!(
        sentence.contains(name),
        "{sentence:?} does not name {name:?}"
    );
}
