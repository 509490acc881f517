//! `GET /api/ai_usage/budgets/check`: 200 until a matching budget's hard
//! limit is reached, then 429 naming the budget, its spend and limit.

mod common;

use ai_usage_core::{Budget, BudgetPeriod, BudgetScope, Currency, UsageEvent};
use axum::http::StatusCode;

use common::{fixture, get};

#[tokio::test]
async fn the_check_refuses_at_block_at_for_the_matching_scope_only() {
    let f = fixture();
    f.monitor
        .add_budget(
            Budget::new(
                "主播日预算",
                BudgetScope::Anchor("anchor_001".into()),
                BudgetPeriod::Daily,
                "2".parse().unwrap(),
                Currency::CNY,
            )
            .with_block_at(100),
        )
        .unwrap();
    let route = "/api/ai_usage/budgets/check?anchor_id=anchor_001&model=qwen-plus";
    let (status, body) = get(&f.app, route).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({"allowed": true}));
    f.monitor.record(
        &UsageEvent::new("qwen-plus", "f")
            .anchor("anchor_001")
            .cost("2".parse().unwrap()),
    );
    let (status, body) = get(&f.app, route).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["allowed"], false);
    assert_eq!(body["budget"], "主播日预算");
    assert_eq!(body["spent"].to_string(), "2.0");
    assert_eq!(body["limit"].to_string(), "2.0");
    assert_eq!(body["block_at"], 100);
    // Another anchor is not held.
    let (status, _) = get(&f.app, "/api/ai_usage/budgets/check?anchor_id=anchor_002").await;
    assert_eq!(status, StatusCode::OK);
    // A tag budget holds calls carrying its tag (tags comma-separated).
    f.monitor
        .add_budget(
            Budget::new(
                "live-ops",
                BudgetScope::Tag("team:live-ops".into()),
                BudgetPeriod::Daily,
                "1".parse().unwrap(),
                Currency::CNY,
            )
            .with_block_at(100),
        )
        .unwrap();
    f.monitor.record(
        &UsageEvent::new("qwen-plus", "f")
            .tags(&["team:live-ops", "beta"])
            .cost("1".parse().unwrap()),
    );
    let (status, body) = get(
        &f.app,
        "/api/ai_usage/budgets/check?tags=beta,team:live-ops",
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["budget"], "live-ops");
    let (status, _) = get(&f.app, "/api/ai_usage/budgets/check?tags=beta").await;
    assert_eq!(status, StatusCode::OK);
    // A misspelt parameter is refused by name, not ignored.
    let (status, body) = get(&f.app, "/api/ai_usage/budgets/check?anchor=anchor_001").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("anchor"), "{body}");
}
