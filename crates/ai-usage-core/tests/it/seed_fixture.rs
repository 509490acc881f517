//! Records written by the seed's Python monitor load unchanged and give
//! exactly its own aggregates (`tests/fixtures/seed-records/expected.json`).

use std::path::PathBuf;

use ai_usage_core::Money;
use ai_usage_core::UsageMonitor;
use ai_usage_core::{RankBy, RankKind, UsageSummary};
use chrono::NaiveDate;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    // A copy kept in the repo (see tests/fixtures/README.md), so a fresh
    // clone with nothing beside it runs this test.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-records")
}

fn micros(v: &Value) -> i64 {
    Money::from_f64(v.as_f64().expect("number"))
        .expect("finite")
        .micros()
}

fn load() -> (tempfile::TempDir, UsageMonitor, Value) {
    let src = fixture_dir();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected["timezone"], "Asia/Shanghai");
    // Copy: the shared folder is read-only in CI, and the monitor owns its dir.
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(src.join("records")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let monitor = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone("Asia/Shanghai".parse().unwrap())
        .retention_days(100_000)
        .build()
        .unwrap();
    (tmp, monitor, expected)
}

fn check_groups(
    kind: &str,
    date: &str,
    ours: &std::collections::BTreeMap<String, ai_usage_core::GroupSummary>,
    theirs: &Value,
) {
    let theirs = theirs.as_object().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{date} {kind}: group count");
    for (key, t) in theirs {
        let o = ours
            .get(key)
            .unwrap_or_else(|| panic!("{date} {kind}: missing group {key}"));
        let ctx = format!("{date} {kind}[{key}]");
        assert_eq!(o.calls, t["calls"].as_u64().unwrap(), "{ctx} calls");
        assert_eq!(
            o.input_tokens,
            t["input_tokens"].as_u64().unwrap(),
            "{ctx} input"
        );
        assert_eq!(
            o.output_tokens,
            t["output_tokens"].as_u64().unwrap(),
            "{ctx} output"
        );
        assert_eq!(
            o.total_tokens,
            t["total_tokens"].as_u64().unwrap(),
            "{ctx} total"
        );
        assert_eq!(o.cost.micros(), micros(&t["cost"]), "{ctx} cost");
        if let Some(name) = t.get("display_name") {
            assert_eq!(
                o.display_name.as_deref(),
                name.as_str(),
                "{ctx} display_name"
            );
        }
    }
}

fn check_day(date: &str, s: &UsageSummary, e: &Value) {
    assert_eq!(s.period, e["period"].as_str().unwrap());
    assert_eq!(
        s.start_time,
        e["start_time"].as_f64().unwrap(),
        "{date} start"
    );
    assert_eq!(s.end_time, e["end_time"].as_f64().unwrap(), "{date} end");
    assert_eq!(
        s.total_calls,
        e["total_calls"].as_u64().unwrap(),
        "{date} calls"
    );
    assert_eq!(
        s.successful_calls,
        e["successful_calls"].as_u64().unwrap(),
        "{date} ok"
    );
    assert_eq!(
        s.failed_calls,
        e["failed_calls"].as_u64().unwrap(),
        "{date} failed"
    );
    assert_eq!(
        s.total_input_tokens,
        e["total_input_tokens"].as_u64().unwrap(),
        "{date} in"
    );
    assert_eq!(
        s.total_output_tokens,
        e["total_output_tokens"].as_u64().unwrap(),
        "{date} out"
    );
    assert_eq!(
        s.total_tokens,
        e["total_tokens"].as_u64().unwrap(),
        "{date} total"
    );
    // The seed rounds total_cost half-up to 0.01; we keep micro-units.
    assert_eq!(
        s.total_cost.round_dp(2).micros(),
        micros(&e["total_cost"]),
        "{date} total_cost"
    );
    for kind in ["by_model", "by_function", "by_user", "by_anchor"] {
        let ours = match kind {
            "by_model" => &s.by_model,
            "by_function" => &s.by_function,
            "by_user" => &s.by_user,
            _ => &s.by_anchor,
        };
        check_groups(kind, date, ours, &e[kind]);
    }
}

#[test]
fn daily_summaries_match_the_seed() {
    let (_tmp, monitor, expected) = load();
    assert!(monitor.wait_until_loaded(std::time::Duration::from_secs(60)));
    let health = monitor.health();
    assert_eq!(health.replay.skipped_lines, 0);
    assert_eq!(health.replay.records, 896);
    let daily = expected["daily"].as_object().unwrap();
    assert_eq!(daily.len(), 3);
    for (date, e) in daily {
        let d: NaiveDate = date.parse().unwrap();
        check_day(date, &monitor.get_summary_for_date(d), e);
    }
}

#[test]
fn range_ranking_and_day_costs_match_the_seed() {
    let (_tmp, monitor, expected) = load();
    let range = &expected["ranges"][0];
    let from: NaiveDate = range["from"].as_str().unwrap().parse().unwrap();
    let to: NaiveDate = range["to"].as_str().unwrap().parse().unwrap();
    let theirs = range["top_users_by_tokens"].as_array().unwrap();
    let ours = monitor.top(RankKind::User, from, to, RankBy::Tokens, theirs.len());
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o.id, t["user_id"].as_str().unwrap());
        assert_eq!(o.tokens, t["tokens"].as_u64().unwrap(), "{} tokens", o.id);
        assert_eq!(o.calls, t["calls"].as_u64().unwrap(), "{} calls", o.id);
        assert_eq!(o.cost.micros(), micros(&t["cost"]), "{} cost", o.id);
    }
    let trend = monitor.cost_trend_range(from, to).unwrap();
    assert_eq!(trend.len(), 7, "every day of the range is present");
    let by_day = range["cost_by_day"].as_object().unwrap();
    for p in &trend {
        let want = by_day.get(&p.date).map_or(0, micros);
        assert_eq!(p.cost.micros(), want, "cost of {}", p.date);
    }
}

#[test]
fn sessions_survive_a_restart() {
    let (tmp, monitor, _) = load();
    let before = monitor
        .get_session_stats("live_20261120_1")
        .expect("session in fixture");
    assert!(before.calls > 0);
    drop(monitor);
    let again = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone("+08:00".parse().unwrap())
        .retention_days(100_000)
        .build()
        .unwrap();
    assert_eq!(again.get_session_stats("live_20261120_1"), Some(before));
    assert!(again.get_session_stats("no-such-session").is_none());
}
