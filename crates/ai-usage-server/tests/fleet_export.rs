//! `export_report` under a fleet source (`serve --clickhouse`): the file
//! written and downloaded holds the fleet's figures, not this host's, and
//! the fleet sees this server's budgets; a failing fleet is a 503 that
//! does not repeat the store's error text.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ai_usage_core::{
    Budget, BudgetHandle, BudgetPeriod, BudgetScope, BudgetStatus, Currency, DashboardData, Money,
    MonthForecast, QueryError, QueryResult, RankBy, RankEntry, RankKind, SavingsReport,
    SessionSummary, TrendPoint, UsageEvent, UsageMonitor, UsageQueries, UsageReport, UsageSummary,
    Zone,
};
use ai_usage_server::ServerBuilder;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::NaiveDate;
use parking_lot::Mutex;
use serde_json::{json, Value};

use common::{monitor_in, post_json, seed, send};

/// A "fleet" that is another monitor: its answers differ from the
/// server's own monitor, so the test sees which one a file came from. It
/// evaluates the server's budgets, as `FleetQueries` does.
struct OtherMonitor {
    monitor: Arc<UsageMonitor>,
    budgets: BudgetHandle,
    budgets_seen: Mutex<Vec<String>>,
    down: AtomicBool,
}

impl OtherMonitor {
    fn check(&self) -> QueryResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueryError::Unavailable("ClickHouse error (HTTP 516): default: Authentication failed: password is incorrect".into()));
        }
        Ok(())
    }
}

fn unused<T>() -> QueryResult<T> {
    Err(QueryError::Unavailable("not used by this test".into()))
}

impl UsageQueries for OtherMonitor {
    fn zone(&self) -> Zone {
        self.monitor.zone()
    }
    fn summary_for_date(&self, _: NaiveDate) -> QueryResult<UsageSummary> {
        unused()
    }
    fn summary_for_hour(&self, _: NaiveDate, _: u8) -> QueryResult<UsageSummary> {
        unused()
    }
    fn range_summary(&self, _: NaiveDate, _: NaiveDate) -> QueryResult<UsageSummary> {
        unused()
    }
    fn monthly_summary(&self, _: i32, _: u32) -> QueryResult<UsageSummary> {
        unused()
    }
    fn top(
        &self,
        _: RankKind,
        _: NaiveDate,
        _: NaiveDate,
        _: RankBy,
        _: usize,
    ) -> QueryResult<Vec<RankEntry>> {
        unused()
    }
    fn trend(&self, _: NaiveDate, _: NaiveDate) -> QueryResult<Vec<TrendPoint>> {
        unused()
    }
    fn session(&self, _: &str) -> QueryResult<Option<SessionSummary>> {
        unused()
    }
    fn dashboard(&self) -> QueryResult<DashboardData> {
        unused()
    }
    fn budget_status(&self) -> QueryResult<Vec<BudgetStatus>> {
        unused()
    }
    fn forecast(&self) -> QueryResult<MonthForecast> {
        unused()
    }
    fn savings_between(&self, _: NaiveDate, _: NaiveDate) -> QueryResult<SavingsReport> {
        unused()
    }
    fn usage_report(&self, days: u32) -> QueryResult<UsageReport> {
        self.check()?;
        *self.budgets_seen.lock() = self
            .budgets
            .budgets()
            .iter()
            .map(|b| b.name.clone())
            .collect();
        Ok(self.monitor.usage_report(days))
    }
    fn daily_csv(&self, from: NaiveDate, to: NaiveDate, bom: bool) -> QueryResult<Vec<u8>> {
        self.check()?;
        Ok(self.monitor.daily_csv(from, to, bom)?)
    }
    fn write_records_csv(
        &self,
        _: NaiveDate,
        _: NaiveDate,
        _: bool,
        _: &mut dyn std::io::Write,
    ) -> QueryResult<()> {
        unused()
    }
}

#[tokio::test]
async fn export_report_writes_the_fleets_figures() {
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let monitor = monitor_in(here.path());
    seed(&monitor);
    monitor
        .add_budgets([Budget::new(
            "all",
            BudgetScope::Global,
            BudgetPeriod::Monthly,
            Money::from_micros(50_000_000),
            Currency::CNY,
        )])
        .unwrap();
    let fleet_monitor = monitor_in(there.path());
    for user in ["=cmd", "f2", "f3", "f4", "f5"] {
        fleet_monitor.record(
            &UsageEvent::new("qwen-plus", "+fleet")
                .tokens(10, 5)
                .user(user),
        );
    }
    let fleet = Arc::new(OtherMonitor {
        monitor: Arc::clone(&fleet_monitor),
        budgets: monitor.budget_handle(),
        budgets_seen: Mutex::new(Vec::new()),
        down: AtomicBool::new(false),
    });
    let app = ServerBuilder::new(Arc::clone(&monitor))
        .queries(Arc::clone(&fleet) as Arc<dyn UsageQueries>)
        .router();

    // CSV: the fleet's rows, written into this server's directory and
    // downloadable like a local export.
    let (s, v) = post_json(
        &app,
        "/api/ai_usage/export_report?days=3&format=csv",
        &json!({}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let path = v["report_path"].as_str().unwrap();
    assert!(path.starts_with(here.path().to_str().unwrap()), "{path}");
    let url = v["download_url"].as_str().unwrap();
    assert!(url.contains("path=usage_daily_"), "{url}");
    let (s, _, body) = send(&app, Method::GET, url, &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let (from, to) = fleet_monitor.last_days(3);
    assert_eq!(
        body.as_ref(),
        fleet_monitor.daily_csv(from, to, false).unwrap().as_slice()
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(",'+fleet,5,"), "{text}");
    assert!(!text.contains("qwen-max"), "this host's calls: {text}");

    // JSON: the fleet's report, with this server's budgets.
    let (s, v) = post_json(&app, "/api/ai_usage/export_report?days=7", &json!({}), &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(v["report_path"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(report["period_days"], 7);
    assert_eq!(report["period_summary"]["total_calls"], 5, "{report}");
    assert_eq!(*fleet.budgets_seen.lock(), vec!["all".to_string()]);

    // A failing fleet writes nothing and says so.
    fleet.down.store(true, Ordering::SeqCst);
    let before = std::fs::read_dir(here.path()).unwrap().count();
    let (s, v) = post_json(
        &app,
        "/api/ai_usage/export_report?days=3&format=csv",
        &json!({}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(std::fs::read_dir(here.path()).unwrap().count(), before);
    // The store's error text stays in the log: the (maybe unauthenticated)
    // client learns only that the store is unavailable, with an error id.
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("the fleet store is unavailable (error id "),
        "{v}"
    );
    // The id is hex and may hold any digits ("516" among them): leave it out.
    let id = detail
        .trim_start_matches("the fleet store is unavailable (error id ")
        .trim_end_matches(')');
    let text = v.to_string().replace(id, "<id>");
    for secret in ["Authentication", "password", "516", "default:"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// Every read route asks the query source given to the builder (here
/// another monitor), never the server's own monitor, which still ingests;
/// `/healthz` shows the fleet's health and is not ok when it is not.
#[tokio::test]
async fn read_routes_answer_from_the_query_source() {
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let monitor = monitor_in(here.path());
    seed(&monitor); // 3 calls here
    let other = monitor_in(there.path());
    for user in ["f1", "f2", "f3", "f4", "f5"] {
        other.record(
            &UsageEvent::new("qwen-plus", "+fleet")
                .tokens(10, 5)
                .user(user)
                .session("fleet_session"),
        );
    }
    let healthy = Arc::new(AtomicBool::new(true));
    let h = Arc::clone(&healthy);
    let app = ServerBuilder::new(Arc::clone(&monitor))
        .queries(Arc::clone(&other) as Arc<dyn UsageQueries>)
        .fleet_health(move || json!({ "ok": h.load(Ordering::SeqCst), "shipping": null }))
        .router();

    for uri in [
        "/api/ai_usage/stats/daily",
        "/api/ai_usage/stats/hourly",
        "/api/ai_usage/stats/monthly",
    ] {
        let (s, v) = common::get(&app, uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        assert_eq!(v["total_calls"], 5, "{uri}: {v}");
    }
    let (s, v) = common::get(&app, "/api/ai_usage/top_users?days=1&limit=10").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["top_users"].as_array().map(Vec::len), Some(5), "{v}");
    let (s, v) = common::get(&app, "/api/ai_usage/session/fleet_session").await;
    assert_eq!((s, &v["calls"]), (StatusCode::OK, &json!(5)), "{v}");
    let (s, _) = common::get(&app, "/api/ai_usage/session/session_456").await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "this host's session is not the source's"
    );
    let (s, v) = common::get(&app, "/api/ai_usage/dashboard").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["today"]["calls"], 5, "{v}");
    let (s, v) = common::get(&app, "/api/ai_usage/cost_trend?days=2").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let calls: u64 = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, 5, "{v}");

    // Ingest still goes to this server's monitor, not into the answers.
    let (s, v) = post_json(
        &app,
        "/api/ai_usage/record",
        &json!({"model": "qwen-plus", "function": "here", "input_tokens": 1, "output_tokens": 1}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(monitor.get_daily_summary(0).total_calls, 4);
    let (_, v) = common::get(&app, "/api/ai_usage/stats/daily").await;
    assert_eq!(v["total_calls"], 5, "{v}");

    let (s, v) = common::get(&app, "/healthz").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fleet"]["ok"], true, "{v}");
    healthy.store(false, Ordering::SeqCst);
    let (s, v) = common::get(&app, "/healthz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(
        (&v["ok"], &v["fleet"]["ok"]),
        (&json!(false), &json!(false)),
        "{v}"
    );
}
