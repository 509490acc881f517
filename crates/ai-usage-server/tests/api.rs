//! API tests through the router (no sockets): every route, parameter
//! bounds, error shapes, auth, traversal attempts, OpenAPI and metrics.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use ai_usage_core::UsageEvent;
use ai_usage_server::{ServeOptions, ServerBuilder};
use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use common::{assert_error, fixture, fixture_with, get, monitor_in, post_json, seed, send};

#[tokio::test]
async fn stats_current_has_today_and_current_hour() {
    let f = fixture();
    seed(&f.monitor);
    let (s, v) = get(&f.app, "/api/ai_usage/stats/current").await;
    assert_eq!(s, StatusCode::OK);
    for k in ["today", "current_hour"] {
        assert_eq!(v[k]["calls"], 3, "{v}");
        for field in ["tokens", "cost", "success_rate", "currency"] {
            assert!(!v[k][field].is_null(), "{k}.{field} missing: {v}");
        }
    }
    let today = f.monitor.get_daily_summary(0);
    assert_eq!(v["today"]["cost"].as_f64(), Some(today.total_cost.as_f64()));
    assert_eq!(v["today"]["tokens"], today.total_tokens);
}

#[tokio::test]
async fn summary_routes_and_their_bounds() {
    let f = fixture();
    seed(&f.monitor);
    let ok = [
        "/api/ai_usage/stats/hourly",
        "/api/ai_usage/stats/hourly?hours_ago=0",
        "/api/ai_usage/stats/hourly?hours_ago=72",
        "/api/ai_usage/stats/daily",
        "/api/ai_usage/stats/daily?days_ago=90",
        "/api/ai_usage/stats/monthly",
        "/api/ai_usage/stats/monthly?year=2025&month=1",
        "/api/ai_usage/stats/monthly?month=12",
    ];
    for uri in ok {
        let (s, v) = get(&f.app, uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        assert!(
            v["total_calls"].is_u64() && v["by_model"].is_object(),
            "{uri}: {v}"
        );
    }
    let (_, today) = get(&f.app, "/api/ai_usage/stats/daily?days_ago=0").await;
    assert_eq!(today["total_calls"], 3);
    assert_eq!(today["failed_calls"], 1);
    let bad = [
        ("/api/ai_usage/stats/hourly?hours_ago=73", "hours_ago"),
        ("/api/ai_usage/stats/hourly?hours_ago=-1", "hours_ago"),
        ("/api/ai_usage/stats/hourly?hours_ago=abc", "hours_ago"),
        ("/api/ai_usage/stats/daily?days_ago=91", "days_ago"),
        ("/api/ai_usage/stats/daily?days_ago=1.5", "days_ago"),
        ("/api/ai_usage/stats/monthly?month=13", "month"),
        ("/api/ai_usage/stats/monthly?month=0", "month"),
        ("/api/ai_usage/stats/monthly?year=1999&month=1", "year"),
        ("/api/ai_usage/stats/monthly?year=&month=1", "year"),
    ];
    for (uri, name) in bad {
        let (s, v) = get(&f.app, uri).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, name);
    }
}

#[tokio::test]
async fn session_known_and_unknown() {
    let f = fixture();
    seed(&f.monitor);
    let (s, v) = get(&f.app, "/api/ai_usage/session/session_456").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["calls"], 2);
    assert_eq!(v["anchor_id"], "anchor_123");
    let expected = f
        .monitor
        .get_session_stats("session_456")
        .expect("session")
        .cost;
    assert_eq!(v["cost"].as_f64(), Some(expected.as_f64()));
    let (s, v) = get(&f.app, "/api/ai_usage/session/nope").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "nope");
    // Percent-encoded ids are decoded once (ids may hold any text).
    f.monitor
        .record(&UsageEvent::new("qwen-plus", "f").session("a b/c"));
    let (s, v) = get(&f.app, "/api/ai_usage/session/a%20b%2Fc").await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn rankings_trend_and_bounds() {
    let f = fixture();
    seed(&f.monitor);
    let (s, v) = get(&f.app, "/api/ai_usage/top_users?limit=1&days=7").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["period_days"], 7);
    let users = &v["top_users"];
    assert_eq!(users.as_array().map(Vec::len), Some(1));
    assert_eq!(users[0]["user_id"], "u2", "u2 has most tokens: {v}");
    // Shaped like /top_users (the original has no /top_anchors to follow).
    let (s, v) = get(&f.app, "/api/ai_usage/top_anchors").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["period_days"], 7);
    assert_eq!(v["top_anchors"][0]["anchor_id"], "anchor_123", "{v}");
    for days in [1, 30, 90] {
        let (s, v) = get(&f.app, &format!("/api/ai_usage/cost_trend?days={days}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["period_days"], days);
        assert_eq!(
            v["data"].as_array().map(Vec::len),
            Some(days as usize),
            "one point per day"
        );
    }
    for (uri, name) in [
        ("/api/ai_usage/top_users?limit=0", "limit"),
        ("/api/ai_usage/top_users?limit=101", "limit"),
        ("/api/ai_usage/top_users?days=0", "days"),
        ("/api/ai_usage/top_users?days=91", "days"),
        ("/api/ai_usage/top_anchors?limit=x", "limit"),
        ("/api/ai_usage/top_anchors?days=91", "days"),
        ("/api/ai_usage/cost_trend?days=0", "days"),
        ("/api/ai_usage/cost_trend?days=91", "days"),
        ("/api/ai_usage/savings?days=91", "days"),
    ] {
        let (s, v) = get(&f.app, uri).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, name);
    }
}

#[tokio::test]
async fn pricing_budgets_forecast_savings_health() {
    let f = fixture();
    seed(&f.monitor);
    let (s, v) = get(&f.app, "/api/ai_usage/models/pricing").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["models"]["qwen-plus"]["display_name"].is_string(), "{v}");
    assert!(v["models"]["qwen-plus"]["input"].is_number(), "{v}");
    let (s, v) = get(&f.app, "/api/ai_usage/budgets").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.is_array());
    let (s, v) = get(&f.app, "/api/ai_usage/forecast").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["projected_total"].is_number(), "{v}");
    let (s, v) = get(&f.app, "/api/ai_usage/savings?days=7").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["period_days"], 7);
    let (s, v) = get(&f.app, "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true);
    // The history load shows whether it is done and how far it is.
    assert!(v["loading"].is_boolean(), "{v}");
    let percent = v["load"]["percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&percent), "{v}");
    assert!(v["load"]["source"].is_string(), "{v}");
}

/// `/healthz` shows the price catalogue in force, its date, age and
/// whether it is stale; an install is shown once the monitor looked.
#[tokio::test]
async fn healthz_shows_the_price_catalogue() {
    use ai_usage_core::installed::{CatalogueStore, Origin, STALE_AFTER_DAYS};
    let f = fixture();
    let (_, v) = get(&f.app, "/healthz").await;
    let c = &v["pricing_catalogue"];
    assert_eq!(c["kind"], "built-in", "{v}");
    assert_eq!(c["date"], ai_usage_core::catalogue::BUILTIN_SNAPSHOT_DATE);
    let age = c["age_days"].as_i64().expect("age_days");
    let snapshot = chrono::NaiveDate::parse_from_str(
        ai_usage_core::catalogue::BUILTIN_SNAPSHOT_DATE,
        "%Y-%m-%d",
    )
    .unwrap();
    assert_eq!(age, (chrono::Utc::now().date_naive() - snapshot).num_days());
    assert_eq!(c["stale"], age > STALE_AFTER_DAYS);
    assert!(c["models"].as_u64().unwrap() > 1000, "{c}");

    let json = include_bytes!("../../ai-usage-core/data/genai-prices/data_slim.json");
    CatalogueStore::new(f.dir.path())
        .install(
            json,
            Origin {
                source: "http://127.0.0.1/data_slim.json".into(),
                fetched_at: chrono::Utc::now(),
                date: chrono::Utc::now().date_naive(),
                sha256: "ab".repeat(32),
            },
        )
        .unwrap();
    assert!(f.monitor.refresh_price_catalogue());
    let (s, v) = get(&f.app, "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    let c = &v["pricing_catalogue"];
    assert_eq!(c["kind"], "updated", "{v}");
    assert_eq!(c["age_days"], 0);
    assert_eq!(c["stale"], false);
    assert_eq!(
        c["date"],
        chrono::Utc::now().date_naive().to_string().as_str()
    );
}

#[tokio::test]
async fn dashboard_payload_and_freshness() {
    let f = fixture();
    let (s, empty) = get(&f.app, "/api/ai_usage/dashboard").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(empty["today"]["calls"], 0);
    for k in [
        "today",
        "month",
        "top_users",
        "top_anchors",
        "cost_trend",
        "model_distribution",
        "function_distribution",
        "forecast",
        "budgets",
        "savings",
    ] {
        assert!(!empty[k].is_null(), "{k} missing");
    }
    assert_eq!(empty["cost_trend"].as_array().map(Vec::len), Some(7));
    // The cache must not hide a record made just now.
    seed(&f.monitor);
    let (_, v) = get(&f.app, "/api/ai_usage/dashboard").await;
    assert_eq!(v["today"]["calls"], 3);
    let d = f.monitor.dashboard();
    assert_eq!(v["today"]["cost"].as_f64(), Some(d.today.cost.as_f64()));
    assert!(v["today"].get("cost_change_pct").is_some());
}

#[tokio::test]
async fn record_one_and_batch() {
    let f = fixture();
    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/record",
        &json!({"model": "qwen-plus", "function": "实时分析", "input_tokens": 1000, "output_tokens": 1000, "duration_ms": 12.5, "session_id": "s1"}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["recorded"], 1);
    let expected = f
        .monitor
        .pricing()
        .price("qwen-plus", &ai_usage_core::TokenUsage::new(1000, 1000))
        .cost;
    assert_eq!(v["records"][0]["cost"].as_f64(), Some(expected.as_f64()));
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"model": "qwen-turbo", "function": "f", "output_tokens": i}))
        .collect();
    let (s, v) = post_json(&f.app, "/api/ai_usage/record", &Value::Array(batch), &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["recorded"], 1000);
    assert_eq!(f.monitor.get_daily_summary(0).total_calls, 1001);
    assert_eq!(f.monitor.get_session_stats("s1").map(|s| s.calls), Some(1));
}

/// Cache writes are priced at their own rate and `provider` picks that
/// provider's catalogue entry; parts larger than their whole are refused.
#[tokio::test]
async fn record_cache_writes_and_provider() {
    let f = fixture();
    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/record",
        &json!({"model": "claude-sonnet-4-5", "function": "问答", "provider": "anthropic",
                "input_tokens": 7000, "cached_input_tokens": 4000, "cache_write_tokens": 2000,
                "output_tokens": 200}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // $3 × 1000 + $3.75 × 2000 + $0.30 × 4000 + $15 × 200 per M = $0.0147.
    assert_eq!(v["records"][0]["currency"], "USD");
    assert_eq!(v["records"][0]["cost"].as_f64(), Some(0.0147));
    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/record",
        &json!({"model": "claude-sonnet-4-5", "function": "问答", "input_tokens": 100,
                "cached_input_tokens": 60, "cache_write_tokens": 50}),
        &[],
    )
    .await;
    assert_error(
        s,
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cache_write_tokens",
    );
}

#[tokio::test]
async fn record_rejections() {
    let f = fixture();
    let cases = [
        (json!({"model": "", "function": "f"}), "model"),
        (json!({"model": "m", "function": " "}), "function"),
        (
            json!({"model": "m", "function": "f", "input_tokens": -5}),
            "input_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "output_tokens": 1.5}),
            "output_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "duration_ms": -1}),
            "duration_ms",
        ),
        (
            json!({"model": "m", "function": "f", "cost": -0.01}),
            "cost",
        ),
        (
            json!({"model": "m", "function": "f", "success": "yes"}),
            "success",
        ),
        (
            json!([{"model": "m", "function": "f"}, {"model": "m", "function": "f", "input_tokens": "3"}]),
            "record 1",
        ),
        (json!(["x"]), "record 0"),
        (json!([]), "records"),
    ];
    for (body, name) in cases {
        let (s, v) = post_json(&f.app, "/api/ai_usage/record", &body, &[]).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, name);
    }
    let big: Vec<Value> = (0..1001)
        .map(|_| json!({"model": "m", "function": "f"}))
        .collect();
    let (s, v) = post_json(&f.app, "/api/ai_usage/record", &Value::Array(big), &[]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "records");
    // Nothing of a rejected batch is recorded.
    assert_eq!(f.monitor.get_daily_summary(0).total_calls, 0);

    // Malformed JSON, wrong content type, oversized body.
    let (s, _, b) = send(
        &f.app,
        Method::POST,
        "/api/ai_usage/record",
        &[("content-type", "application/json")],
        Body::from("{nope"),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).expect("json error body");
    assert!(
        s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
        "{s}"
    );
    assert!(v["detail"].is_string());
    let (s, _, _) = send(
        &f.app,
        Method::POST,
        "/api/ai_usage/record",
        &[],
        Body::from("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(
        "{{\"model\": \"m\", \"function\": \"{}\"}}",
        "x".repeat(1 << 20)
    );
    let (s, _, b) = send(
        &f.app,
        Method::POST,
        "/api/ai_usage/record",
        &[("content-type", "application/json")],
        Body::from(huge),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = serde_json::from_slice(&b).expect("json error body");
    assert_eq!(v["error"], "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let f = fixture();
    let (s, v) = get(&f.app, "/api/ai_usage/nope").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "/api/ai_usage/nope");
    let (s, _, b) = send(
        &f.app,
        Method::GET,
        "/api/ai_usage/record",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert!(v["detail"].as_str().unwrap_or_default().contains("GET"));
}

#[tokio::test]
async fn export_then_download_json_and_csv() {
    let f = fixture();
    seed(&f.monitor);
    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/export_report?days=7",
        &json!({}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    let path = v["report_path"].as_str().expect("report_path");
    let url = v["download_url"].as_str().expect("download_url");
    assert!(
        url.starts_with("/api/ai_usage/download_report?path=usage_report_"),
        "{url}"
    );
    let on_disk = std::fs::read(path).expect("report written");
    let (s, h, b) = send(&f.app, Method::GET, url, &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b.as_ref(), on_disk.as_slice());
    assert!(h[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap_or_default()
        .contains("attachment"));
    let report: Value = serde_json::from_slice(&b).expect("report is JSON");
    assert_eq!(report["period_days"], 7);

    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/export_report?days=3&format=csv",
        &json!({}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url = v["download_url"].as_str().expect("download_url");
    let (s, h, b) = send(&f.app, Method::GET, url, &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/csv"));
    assert!(String::from_utf8_lossy(&b).contains("qwen-plus"));

    for (uri, name) in [
        ("/api/ai_usage/export_report?days=0", "days"),
        ("/api/ai_usage/export_report?days=91", "days"),
        ("/api/ai_usage/export_report?format=xml", "format"),
    ] {
        let (s, v) = post_json(&f.app, uri, &json!({}), &[]).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, name);
    }
}

#[tokio::test]
async fn export_is_rate_limited() {
    let f = fixture();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let (s, _) = post_json(
            &f.app,
            "/api/ai_usage/export_report?days=1",
            &json!({}),
            &[],
        )
        .await;
        statuses.push(s);
    }
    assert!(
        statuses[..10].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
    let reports = std::fs::read_dir(f.monitor.dir())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("usage_report_"))
        .count();
    assert_eq!(reports, 10);
}

#[tokio::test]
async fn download_refuses_everything_but_report_files() {
    let f = fixture();
    let dir = f.monitor.dir().to_path_buf();
    // A secret next to the records dir, and traps inside it.
    let secret = dir.parent().expect("parent").join("secret.txt");
    std::fs::write(&secret, "TOP SECRET").expect("secret");
    std::fs::write(dir.join("notes.json"), "TOP SECRET").expect("notes");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&secret, dir.join("usage_report_20990101_000000.json"))
            .expect("symlink");
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("usage_report_1.json"), "TOP SECRET").expect("x");
        std::os::unix::fs::symlink(outside.path(), dir.join("linkdir")).expect("dir symlink");
        std::mem::forget(outside);
    }
    std::fs::create_dir(dir.join("usage_report_dir.json")).expect("dir trap");
    let attempts = [
        "path=../secret.txt",
        "path=..%2Fsecret.txt",
        "path=%2e%2e%2fsecret.txt",
        "path=%252e%252e%252fsecret.txt",
        "path=usage_report_..%2F..%2Fsecret.txt",
        "path=usage_report_x%2F..%2F..%2Fsecret.json",
        "path=%2Fetc%2Fpasswd",
        "path=/etc/passwd",
        "path=..%5Csecret.txt",
        "path=usage_report_a%5C..%5Csecret.json",
        "path=notes.json",
        "path=linkdir%2Fusage_report_1.json",
        "path=usage_report_20990101_000000.json",
        "path=usage_report_dir.json",
        "path=usage_report_missing.json",
        "path=",
        "",
    ];
    for q in attempts {
        let uri = format!("/api/ai_usage/download_report?{q}");
        let (s, _, b) = send(&f.app, Method::GET, &uri, &[], Body::empty()).await;
        assert!(
            matches!(
                s,
                StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "{uri}: {s}"
        );
        assert!(
            !String::from_utf8_lossy(&b).contains("TOP SECRET"),
            "{uri} leaked the file"
        );
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        // A 422 carries FastAPI's issue array in `detail`, others a sentence.
        let detail_ok = if s == StatusCode::UNPROCESSABLE_ENTITY {
            v["detail"].is_array() && v["message"].is_string()
        } else {
            v["detail"].is_string()
        };
        assert!(
            v["error"].is_string() && detail_ok,
            "{uri}: not a JSON error"
        );
    }
}

#[tokio::test]
async fn token_protects_writes_and_optionally_reads() {
    let opts = ServeOptions {
        token: Some("s3cret".into()),
        ..ServeOptions::default()
    };
    let f = fixture_with(Some(opts));
    let rec = json!({"model": "qwen-plus", "function": "f"});
    let (s, v) = post_json(&f.app, "/api/ai_usage/record", &rec, &[]).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "token");
    let (s, _) = post_json(
        &f.app,
        "/api/ai_usage/record",
        &rec,
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post_json(&f.app, "/api/ai_usage/export_report", &json!({}), &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post_json(
        &f.app,
        "/api/ai_usage/record",
        &rec,
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(f.monitor.get_daily_summary(0).total_calls, 1);
    // Reads stay open without --protect-reads.
    let (s, _) = get(&f.app, "/api/ai_usage/dashboard").await;
    assert_eq!(s, StatusCode::OK);

    let opts = ServeOptions {
        token: Some("s3cret".into()),
        protect_reads: true,
        ..ServeOptions::default()
    };
    let f = fixture_with(Some(opts));
    for uri in [
        "/api/ai_usage/dashboard",
        "/api/ai_usage/stats/current",
        "/metrics",
        "/api/ai_usage/download_report?path=x",
    ] {
        let (s, _, _) = send(&f.app, Method::GET, uri, &[], Body::empty()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (s, _, _) = send(
        &f.app,
        Method::GET,
        "/api/ai_usage/dashboard",
        &[("authorization", "Bearer s3cret")],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // The page, liveness and docs stay reachable (the page asks for the token).
    for uri in [
        "/",
        "/static/ai_usage_monitor.html",
        "/healthz",
        "/openapi.json",
    ] {
        let (s, _, _) = send(&f.app, Method::GET, uri, &[], Body::empty()).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn page_is_self_contained() {
    let f = fixture();
    for uri in ["/", "/static/ai_usage_monitor.html"] {
        let (s, h, b) = send(&f.app, Method::GET, uri, &[], Body::empty()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(h[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html"));
        let csp = h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let page = String::from_utf8_lossy(&b);
        for id in [
            "today-cost",
            "trend-chart",
            "lang-toggle",
            "export-btn",
            "top-users",
            "last-updated",
            "error-banner",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
        }
        // No network: nothing is loaded from another origin.
        assert!(!page.contains("<link"), "external stylesheet");
        assert!(
            !page.contains("src=\"http") && !page.contains("url(http") && !page.contains("@import")
        );
        assert!(
            !page.contains("innerHTML"),
            "data must go through textContent"
        );
    }
    // Swagger UI is served from the binary.
    let (s, _, b) = send(&f.app, Method::GET, "/docs/", &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&b).contains("swagger"));
    let (s, _, _) = send(
        &f.app,
        Method::GET,
        "/docs/swagger-ui-bundle.js",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let f = fixture();
    let (s, v) = get(&f.app, "/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap_or_default().starts_with("3."));
    let paths = v["paths"].as_object().expect("paths");
    let expected = [
        ("/api/ai_usage/stats/current", "get"),
        ("/api/ai_usage/stats/hourly", "get"),
        ("/api/ai_usage/stats/daily", "get"),
        ("/api/ai_usage/stats/monthly", "get"),
        ("/api/ai_usage/session/{session_id}", "get"),
        ("/api/ai_usage/top_users", "get"),
        ("/api/ai_usage/top_anchors", "get"),
        ("/api/ai_usage/cost_trend", "get"),
        ("/api/ai_usage/models/pricing", "get"),
        ("/api/ai_usage/export_report", "post"),
        ("/api/ai_usage/download_report", "get"),
        ("/api/ai_usage/dashboard", "get"),
        ("/api/ai_usage/record", "post"),
        ("/api/ai_usage/budgets", "get"),
        ("/api/ai_usage/budgets/check", "get"),
        ("/api/ai_usage/forecast", "get"),
        ("/api/ai_usage/savings", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ];
    for (p, m) in expected {
        assert!(
            paths.get(p).and_then(|o| o.get(m)).is_some(),
            "{m} {p} missing from /openapi.json"
        );
    }
    assert_eq!(
        paths.len(),
        expected.len(),
        "unexpected extra paths: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    // Bounds are documented too.
    let params = &v["paths"]["/api/ai_usage/top_users"]["get"]["parameters"];
    assert!(params.to_string().contains("\"maximum\":100"), "{params}");
    // …and every documented route answers (not 404).
    for (p, m) in expected {
        let uri = p.replace("{session_id}", "x");
        let method = if m == "post" {
            Method::POST
        } else {
            Method::GET
        };
        let (s, _, _) = send(&f.app, method, &uri, &[], Body::empty()).await;
        assert!(
            s != StatusCode::NOT_FOUND || uri.contains("session") || uri.contains("download"),
            "{uri}: {s}"
        );
    }
}

/// One sample of the exposition: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A small parser of the Prometheus/OpenMetrics text format: `# TYPE`/`# HELP`
/// comments, `# EOF`, and `name{label="value",…} value` lines with escapes.
fn parse_exposition(text: &str) -> Result<(BTreeMap<String, String>, Vec<Sample>), String> {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let mut saw_eof = false;
    for (n, line) in text.lines().enumerate() {
        if saw_eof {
            return Err(format!("line {n}: content after # EOF"));
        }
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').ok_or(format!("line {n}: bad TYPE"))?;
            types.insert(name.to_string(), ty.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") || line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("line {n}: unknown comment {line:?}"));
        }
        let name_end = line.find(['{', ' ']).ok_or(format!("line {n}: no value"))?;
        let name = &line[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let mut end = None;
            loop {
                // label name
                let start = match chars.peek() {
                    Some((_, '}')) => {
                        end = chars.next().map(|(i, _)| i);
                        break;
                    }
                    Some((i, _)) => *i,
                    None => break,
                };
                let mut eq = None;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        eq = Some(i);
                        break;
                    }
                }
                let eq = eq.ok_or(format!("line {n}: label without ="))?;
                let key = after[start..eq].to_string();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("line {n}: unquoted label value"));
                }
                let mut val = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => val.push('\n'),
                            Some('"') => val.push('"'),
                            Some('\\') => val.push('\\'),
                            other => return Err(format!("line {n}: bad escape {other:?}")),
                        },
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => val.push(c),
                    }
                }
                if !closed {
                    return Err(format!("line {n}: unterminated label value"));
                }
                labels.insert(key, val);
                if let Some((_, ',')) = chars.peek() {
                    chars.next();
                }
            }
            let end = end.ok_or(format!("line {n}: unterminated label set"))?;
            rest = &after[end + 1..];
        }
        let value_text = rest.trim().split(' ').next().unwrap_or_default();
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .map_err(|_| format!("line {n}: bad value {v:?}"))?,
        };
        samples.push((name.to_string(), labels, value));
    }
    if !saw_eof {
        return Err("missing # EOF".into());
    }
    Ok((types, samples))
}

fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && filter
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_match_the_monitor() {
    let f = fixture();
    seed(&f.monitor);
    f.monitor.record(
        &UsageEvent::new("no-such-model", "实时分析")
            .tokens(10, 10)
            .duration_ms(5.0),
    );
    f.monitor.record(
        &UsageEvent::new("gemini-2.0-flash", "话术生成")
            .tokens(1000, 1000)
            .cached_tokens(200),
    );
    f.monitor
        .record(&UsageEvent::new("qwen-plus", "with \"quotes\"\nand newline").tokens(1, 1));
    let (s, h, b) = send(&f.app, Method::GET, "/metrics", &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap_or_default()
        .contains("text"));
    let text = String::from_utf8(b.to_vec()).expect("utf-8");
    let (types, samples) = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        types.get("ai_usage_calls").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        types
            .get("ai_usage_call_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );

    let today = f.monitor.get_daily_summary(0);
    assert_eq!(
        sum(&samples, "ai_usage_calls_total", &[]),
        today.total_calls as f64
    );
    assert_eq!(
        sum(&samples, "ai_usage_calls_total", &[("status", "error")]),
        today.failed_calls as f64
    );
    for (model, g) in &today.by_model {
        assert_eq!(
            sum(&samples, "ai_usage_calls_total", &[("model", model)]),
            g.calls as f64,
            "{model}"
        );
        assert_eq!(
            sum(
                &samples,
                "ai_usage_tokens_total",
                &[("model", model), ("type", "input")]
            ),
            g.input_tokens as f64
        );
        assert_eq!(
            sum(
                &samples,
                "ai_usage_tokens_total",
                &[("model", model), ("type", "output")]
            ),
            g.output_tokens as f64
        );
        for (cur, money) in g.costs.iter() {
            let got = sum(
                &samples,
                "ai_usage_cost_total",
                &[("model", model), ("currency", cur.code())],
            );
            assert!(
                (got - money.as_f64()).abs() < 1e-9,
                "{model} {cur}: {got} vs {money}"
            );
        }
    }
    assert_eq!(
        sum(&samples, "ai_usage_tokens_total", &[("type", "cached")]),
        today.cached_input_tokens as f64
    );
    assert_eq!(
        sum(&samples, "ai_usage_unpriced_calls_total", &[]),
        today.unpriced_calls as f64
    );
    assert_eq!(today.unpriced_calls, 1);
    assert_eq!(
        sum(&samples, "ai_usage_call_duration_seconds_count", &[]),
        today.total_calls as f64
    );
    // Label values are escaped, and the parser reads them back intact.
    assert_eq!(
        sum(
            &samples,
            "ai_usage_calls_total",
            &[("function", "with \"quotes\"\nand newline")]
        ),
        1.0
    );
}

#[tokio::test]
async fn metrics_start_from_the_monitors_totals() {
    // Records made (or replayed) before the router exists are counted too.
    let dir = tempfile::tempdir().expect("tempdir");
    let monitor = monitor_in(dir.path());
    seed(&monitor);
    let app = ServerBuilder::new(Arc::clone(&monitor)).router();
    monitor.record(&UsageEvent::new("qwen-plus", "实时分析").tokens(10, 10));
    let (_, _, b) = send(&app, Method::GET, "/metrics", &[], Body::empty()).await;
    let (_, samples) = parse_exposition(&String::from_utf8_lossy(&b)).expect("parse");
    let today = monitor.get_daily_summary(0);
    assert_eq!(sum(&samples, "ai_usage_calls_total", &[]), 4.0);
    assert_eq!(
        sum(&samples, "ai_usage_calls_total", &[("status", "error")]),
        1.0
    );
    assert_eq!(
        sum(&samples, "ai_usage_tokens_total", &[("type", "output")]),
        today.total_output_tokens as f64
    );
    let cost = sum(&samples, "ai_usage_cost_total", &[("currency", "CNY")]);
    assert!((cost - today.costs.get(ai_usage_core::Currency::CNY).as_f64()).abs() < 1e-9);
    // The histogram only sees calls after the router was built.
    assert_eq!(
        sum(&samples, "ai_usage_call_duration_seconds_count", &[]),
        1.0
    );
}

/// The ranges in /openapi.json are the ones enforced: for every integer
/// query parameter of a GET route, its documented maximum is accepted and
/// one past it (and one below the minimum) is refused naming the parameter.
#[tokio::test]
async fn documented_ranges_are_the_validated_ones() {
    let f = fixture();
    let (_, v) = get(&f.app, "/openapi.json").await;
    let mut probed = 0;
    for (path, item) in v["paths"].as_object().expect("paths") {
        let Some(params) = item["get"]["parameters"].as_array() else {
            continue;
        };
        for p in params {
            let schema = &p["schema"];
            let (Some(min), Some(max)) = (schema["minimum"].as_f64(), schema["maximum"].as_f64())
            else {
                continue;
            };
            let name = p["name"].as_str().expect("name");
            let (min, max) = (min as i64, max as i64);
            let ok = format!("{path}?{name}={max}");
            let (s, body) = get(&f.app, &ok).await;
            assert_eq!(s, StatusCode::OK, "{ok}: {body}");
            for bad in [max + 1, min - 1] {
                let uri = format!("{path}?{name}={bad}");
                let (s, body) = get(&f.app, &uri).await;
                assert_error(s, &body, StatusCode::UNPROCESSABLE_ENTITY, name);
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&format!("{min}..={max}")),
                    "{uri}: {body}"
                );
                let want = if bad > max {
                    "less_than_equal"
                } else {
                    "greater_than_equal"
                };
                assert_eq!(body["detail"][0]["type"], want, "{uri}: {body}");
                assert_eq!(body["detail"][0]["input"], bad.to_string(), "{uri}: {body}");
            }
            probed += 1;
        }
    }
    // hours_ago, days_ago, year, month, 2×(limit, days), days ×2.
    assert!(probed >= 10, "only {probed} ranged parameters documented");
}

/// The original's `test_record_usage_accepts_explicit_cost` through HTTP:
/// `/stats/daily` gives the same `total_cost` as the one shared rule
/// (`original::total_cost`) that the Python module uses too.
#[tokio::test]
async fn daily_total_cost_is_the_shared_rule() {
    let f = fixture();
    let cost: ai_usage_core::Money = "2.3456".parse().expect("money");
    let event = UsageEvent::new("gpt-4o-mini-2024-07-18", "gateway_openai")
        .tokens(100, 50)
        .total_tokens(200)
        .cost(cost)
        .user("u1");
    f.monitor.record(&event);
    let (s, v) = get(&f.app, "/api/ai_usage/stats/daily?days_ago=0").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let summary = f.monitor.get_daily_summary(0);
    let shared = ai_usage_core::original::total_cost(&summary);
    assert_eq!(shared, 2.35);
    assert_eq!(v["total_cost"].as_f64(), Some(shared), "{v}");
    assert_eq!(v["total_tokens"], 200, "{v}");
    // Mixed currencies: the reporting currency's part, on both doors.
    f.monitor.record(
        &UsageEvent::new("qwen-plus", "f")
            .tokens(1, 1)
            .cost("1.234567".parse().expect("money")),
    );
    let (_, v) = get(&f.app, "/api/ai_usage/stats/daily?days_ago=0").await;
    let shared = ai_usage_core::original::total_cost(&f.monitor.get_daily_summary(0));
    assert_eq!(shared, 1.23);
    assert_eq!(v["total_cost"].as_f64(), Some(shared), "{v}");
}
