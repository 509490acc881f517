//! A running server sees the cost corrections another process writes
//! (`ai-usage reprice`): its follower reads the adjustment files and the
//! JSON answers and `/metrics` take them in, without a restart.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_usage_core::adjustments::{plan_reprice, RepriceScope};
use ai_usage_core::{Currency, ModelPrice, PricingTable, UsageEvent, UsageMonitor};
use ai_usage_server::ServerBuilder;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use common::send;

/// The `ai_usage_cost_total` of `model` in `currency`, 0 when absent.
fn metric_cost(text: &str, model: &str, currency: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("ai_usage_cost_total{"))
        .filter(|l| l.contains(&format!("model=\"{model}\"")))
        .filter(|l| l.contains(&format!("currency=\"{currency}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn a_running_server_takes_in_corrections_written_by_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app_monitor = UsageMonitor::builder()
        .dir(dir.path())
        .build()
        .expect("app monitor");
    for _ in 0..2 {
        app_monitor.record(&UsageEvent::new("acme-private", "问答").tokens(1000, 1000));
    }
    app_monitor.flush().expect("flush");
    drop(app_monitor);
    let served = Arc::new(
        UsageMonitor::builder()
            .dir(dir.path())
            .follow(Duration::from_millis(10))
            .build()
            .expect("served monitor"),
    );
    let app = ServerBuilder::new(Arc::clone(&served)).router();
    let (_, _, b) = send(
        &app,
        Method::GET,
        "/api/ai_usage/stats/daily",
        &[],
        Body::empty(),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(v["total_calls"], 2, "{v}");

    // Another process re-prices with a table that knows the model.
    let mut table = PricingTable::builtin();
    table.register(
        "acme-private",
        ModelPrice::flat("Acme", Currency::CNY, 0.01, 0.02),
    );
    let today = served.today();
    let scope = RepriceScope {
        from: today,
        to: today,
        only_unpriced: true,
        model: None,
    };
    let plan = plan_reprice(dir.path(), &table, &scope, chrono::Utc::now()).expect("plan");
    assert_eq!(plan.len(), 2);
    plan.write(dir.path()).expect("write");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _, b) = send(
            &app,
            Method::GET,
            "/api/ai_usage/stats/daily",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).expect("json");
        if v["by_model"]["acme-private"]["cost"] == 0.06 {
            assert_eq!(v["total_calls"], 2, "calls never change: {v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never applied the corrections: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, b) = send(&app, Method::GET, "/metrics", &[], Body::empty()).await;
    let text = String::from_utf8_lossy(&b);
    assert!(
        (metric_cost(&text, "acme-private", "CNY") - 0.06).abs() < 1e-12,
        "{text}"
    );
}
