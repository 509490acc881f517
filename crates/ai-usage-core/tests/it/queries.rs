//! Queries against hand-computed expectations.

use ai_usage_core::UsageMonitor;
use ai_usage_core::Zone;
use ai_usage_core::{Currency, Money, UsageEvent};
use ai_usage_core::{RankBy, RankKind};
use chrono::{NaiveDate, Timelike};

use crate::common::{date, monitor, zone};

/// Epoch seconds of a local Shanghai date and hour.
fn at(d: &str, hour: u32) -> f64 {
    zone().day_bounds(date(d)).0 + hour as f64 * 3600.0 + 60.0
}

#[test]
fn daily_hourly_and_monthly_summaries() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    // qwen-plus 0.004/0.012 per 1K: 1000 in + 500 out = 0.004 + 0.006 = ¥0.01
    for h in [9, 9, 10] {
        m.record(
            &UsageEvent::new("qwen-plus", "实时分析")
                .tokens(1000, 500)
                .duration_ms(100.0)
                .user("u1")
                .anchor("a1")
                .at(at("2025-10-26", h)),
        );
    }
    m.record(
        &UsageEvent::new("qwen-max", "话术生成")
            .tokens(1000, 1000)
            .failed("timeout")
            .user("u2")
            .at(at("2025-10-26", 10)),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1000, 500)
            .at(at("2025-10-31", 23)),
    );

    let d = m.get_summary_for_date(date("2025-10-26"));
    assert_eq!(
        (d.total_calls, d.successful_calls, d.failed_calls),
        (4, 3, 1)
    );
    // 3 × 0.01 + qwen-max (0.02 + 0.06) = 0.11
    assert_eq!(d.total_cost, "0.11".parse::<Money>().unwrap());
    assert_eq!(d.by_model["qwen-plus"].calls, 3);
    assert_eq!(
        d.by_model["qwen-max"].display_name.as_deref(),
        Some("通义千问-Max")
    );
    assert_eq!(d.by_user["u2"].cost, "0.08".parse::<Money>().unwrap());
    assert_eq!(d.by_anchor.len(), 1);
    assert_eq!(d.success_rate, 75.0);
    assert_eq!(d.user_count, 2);

    let h9 = m.get_summary_for_hour(date("2025-10-26"), 9);
    assert_eq!(h9.period, "hourly");
    assert_eq!(h9.total_calls, 2);
    assert_eq!(h9.end_time - h9.start_time, 3600.0);
    assert_eq!(
        m.get_summary_for_hour(date("2025-10-26"), 11).total_calls,
        0
    );

    let oct = m.get_monthly_summary(2025, 10).unwrap();
    assert_eq!(oct.total_calls, 5);
    assert_eq!(oct.start_time, zone().day_bounds(date("2025-10-01")).0);
    assert_eq!(oct.end_time, zone().day_bounds(date("2025-10-31")).1);
    assert!(m.get_monthly_summary(2025, 13).is_err());
    assert_eq!(m.get_monthly_summary(2025, 11).unwrap().total_calls, 0);
}

#[test]
fn trend_fills_every_day_across_a_month_end() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1000, 500)
            .at(at("2025-10-30", 12)),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1000, 500)
            .at(at("2025-11-02", 12)),
    );
    let t = m
        .cost_trend_range(date("2025-10-29"), date("2025-11-03"))
        .unwrap();
    let dates: Vec<&str> = t.iter().map(|p| p.date.as_str()).collect();
    assert_eq!(
        dates,
        [
            "2025-10-29",
            "2025-10-30",
            "2025-10-31",
            "2025-11-01",
            "2025-11-02",
            "2025-11-03"
        ]
    );
    let costs: Vec<i64> = t.iter().map(|p| p.cost.micros()).collect();
    assert_eq!(costs, [0, 10_000, 0, 0, 10_000, 0]);
    assert!(m
        .cost_trend_range(date("2025-11-03"), date("2025-10-29"))
        .is_err());
    // The relative form: today and the days before it, oldest first.
    let rel = m.get_cost_trend(7);
    assert_eq!(rel.len(), 7);
    assert_eq!(
        rel.last().unwrap().date,
        m.today().format("%Y-%m-%d").to_string()
    );
}

#[test]
fn currencies_are_never_added_together() {
    let tmp = tempfile::tempdir().unwrap();
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone())
        .retention_days(100_000)
        .exchange_rate(Currency::USD, "7.1".parse().unwrap())
        .build()
        .unwrap();
    let ts = at("2025-10-26", 12);
    let cny = m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1000, 500)
            .at(ts),
    );
    let usd = m.record(
        &UsageEvent::new("gemini-2.0-flash", "问答")
            .tokens(100_000, 10_000)
            .at(ts),
    );
    assert_eq!(usd.currency, Some(Currency::USD));
    assert_eq!(cny.currency, None, "CNY is the default and not written");
    let d = m.get_summary_for_date(date("2025-10-26"));
    assert_eq!(d.currency, Currency::CNY);
    assert_eq!(d.total_cost, cny.cost, "the CNY total holds CNY only");
    assert_eq!(d.costs.get(Currency::USD), usd.cost);
    let conv = d
        .converted_total
        .expect("rates configured and two currencies present");
    assert_eq!(
        conv.total,
        cny.cost + usd.cost.mul_div(7_100_000, 1_000_000).unwrap()
    );
    assert_eq!(conv.rates[&Currency::USD], "7.1".parse::<Money>().unwrap());
    // A function mixing both keeps both amounts apart.
    let f = &d.by_function["问答"];
    assert_eq!(f.costs.get(Currency::USD), usd.cost);
    assert_eq!(f.cost, cny.cost);
    assert_eq!(d.by_model["gemini-2.0-flash"].currency, Currency::USD);
}

#[test]
fn unknown_models_are_counted_not_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let r = m.record(
        &UsageEvent::new("my-secret-model", "问答")
            .tokens(1000, 500)
            .at(at("2025-10-26", 1)),
    );
    assert_eq!(r.cost, Money::ZERO);
    assert_eq!(r.priced, Some(false));
    let d = m.get_summary_for_date(date("2025-10-26"));
    assert_eq!(d.unpriced_calls, 1);
    m.flush().unwrap();
    drop(m);
    let again = monitor(tmp.path());
    assert_eq!(
        again
            .get_summary_for_date(date("2025-10-26"))
            .unpriced_calls,
        1,
        "survives a restart"
    );
}

#[test]
fn sessions_track_models_and_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let s = "live_20251026_123456";
    m.record(
        &UsageEvent::new("qwen-plus", "实时分析")
            .tokens(1000, 500)
            .session(s)
            .anchor("a1")
            .at(at("2025-10-26", 20)),
    );
    m.record(
        &UsageEvent::new("qwen-max", "话术生成")
            .tokens(1000, 1000)
            .session(s)
            .anchor("a1")
            .at(at("2025-10-26", 22)),
    );
    let st = m.get_session_stats(s).unwrap();
    assert_eq!(st.calls, 2);
    assert_eq!(st.cost, "0.09".parse::<Money>().unwrap());
    assert_eq!(st.duration_seconds, 7200.0);
    assert_eq!(st.models.len(), 2);
    assert_eq!(st.anchor_id.as_deref(), Some("a1"));
}

#[test]
fn rankings_by_tokens_cost_and_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let ts = at("2025-10-26", 12);
    m.record(
        &UsageEvent::new("qwen-max", "问答")
            .tokens(1000, 0)
            .user("rich")
            .at(ts),
    ); // ¥0.02, 1000 tokens
    for _ in 0..3 {
        m.record(
            &UsageEvent::new("qwen-turbo", "问答")
                .tokens(1000, 0)
                .user("busy")
                .at(ts),
        ); // ¥0.002 each
    }
    let d = date("2025-10-26");
    let ids = |by| {
        m.top(RankKind::User, d, d, by, 10)
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(RankBy::Tokens), ["busy", "rich"]);
    assert_eq!(ids(RankBy::Cost), ["rich", "busy"]);
    assert_eq!(ids(RankBy::Calls), ["busy", "rich"]);
    let json = serde_json::to_value(m.top(RankKind::Anchor, d, d, RankBy::Tokens, 10)).unwrap();
    assert_eq!(json, serde_json::json!([]));
    let json = serde_json::to_value(m.top(RankKind::User, d, d, RankBy::Tokens, 1)).unwrap();
    assert_eq!(json[0]["user_id"], "busy");
    assert_eq!(json[0]["tokens"], 3000);
    assert_eq!(json[0]["calls"], 3);
}

#[test]
fn forecast_and_dashboard_cards() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let today = m.today();
    let zone = zone();
    let noon = |d: NaiveDate| zone.day_bounds(d).0 + 12.0 * 3600.0;
    let yesterday = today - chrono::Duration::days(1);
    // Yesterday ¥0.02 (qwen-max 1000 in), today ¥0.03.
    m.record(
        &UsageEvent::new("qwen-max", "问答")
            .tokens(1000, 0)
            .user("u1")
            .at(noon(yesterday)),
    );
    m.record(
        &UsageEvent::new("qwen-max", "问答")
            .tokens(1500, 0)
            .user("u1")
            .at(zone.day_bounds(today).0 + 1.0),
    );
    let dash = m.dashboard();
    assert_eq!(dash.today.calls, 1);
    assert_eq!(dash.today.cost, "0.03".parse::<Money>().unwrap());
    assert_eq!(dash.today.cost_change_pct, Some(50.0));
    assert_eq!(dash.cost_trend.len(), 7);
    assert_eq!(dash.top_users[0].id, "u1");
    assert_eq!(dash.top_users[0].calls, 2);
    let f = m.forecast();
    assert_eq!(f.days_in_month - f.days_elapsed, f.remaining_days);
    // Tracking started yesterday: one complete day is the basis.
    assert_eq!(f.basis_days, 1);
    assert_eq!(f.avg_daily_cost, "0.02".parse::<Money>().unwrap());
    let mtd = if yesterday >= ai_usage_core::month_start(today) {
        "0.05"
    } else {
        "0.03"
    };
    assert_eq!(f.month_to_date, mtd.parse::<Money>().unwrap());
    assert_eq!(
        f.projected_total,
        f.month_to_date
            + f.avg_daily_cost
                .mul_div(f.remaining_days as i64, 1)
                .unwrap()
    );
}

#[test]
fn absurd_input_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let ts = at("2025-10-26", 12);
    for model in [
        "qwen3-max",
        "qwen-plus",
        "gemini-1.5-pro",
        "no-such-model",
        "",
        "  ",
    ] {
        let r = m.record(
            &UsageEvent::new(model, "")
                .tokens(u64::MAX, u64::MAX)
                .total_tokens(u64::MAX)
                .cached_tokens(u64::MAX)
                .reasoning_tokens(u64::MAX)
                .duration_ms(f64::NAN)
                .at(ts),
        );
        assert!(r.duration_ms == 0.0);
        assert!(!r.model.trim().is_empty());
    }
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .duration_ms(-5.0)
            .at(f64::INFINITY),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .cost(Money::from_micros(i64::MAX))
            .at(ts),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .cost(Money::from_micros(i64::MAX))
            .at(ts),
    );
    let d = m.get_summary_for_date(date("2025-10-26"));
    assert_eq!(d.total_calls, 8);
    assert_eq!(
        d.total_input_tokens,
        6 * ai_usage_core::MAX_TOKENS_PER_CALL,
        "each call is clamped to the per-call limit, never wrapping"
    );
    assert_eq!(m.health().clamped_records, 7);
    m.flush().unwrap();
    drop(m);
    // What was written reads back.
    let again = monitor(tmp.path());
    assert!(again.wait_until_loaded(std::time::Duration::from_secs(60)));
    assert_eq!(again.health().replay.records, 9);
}

#[test]
fn current_totals_and_function_model_totals() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let now = ai_usage_core::now_timestamp();
    // Now, two hours ago (still today only if it is past 02:00 in Shanghai),
    // and a day ago.
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1000, 500)
            .at(now),
    );
    m.record(
        &UsageEvent::new("qwen-max", "问答")
            .tokens(10, 10)
            .at(now - 2.0 * 3600.0),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1000, 500)
            .failed("timeout")
            .at(now - 86_400.0),
    );
    let t = m.current_totals();
    let (date, hour) = zone().hour_of(now);
    assert_eq!((t.date, t.hour), (date, hour));
    assert_eq!(t.this_hour.calls, 1);
    assert_eq!(t.this_hour.total_tokens, 1500);
    assert_eq!(
        t.this_hour.cost.get(Currency::CNY),
        Money::from_micros(10_000)
    );
    let two_hours_ago_today = zone().date_of(now - 2.0 * 3600.0) == date;
    assert_eq!(t.today.calls, 1 + u64::from(two_hours_ago_today));

    let mut seen = Vec::new();
    m.for_each_function_model(|f, model, g| {
        seen.push((f.to_string(), model.to_string(), g.calls, g.failed_calls()))
    });
    assert_eq!(
        seen,
        vec![
            ("问答".to_string(), "qwen-max".to_string(), 1, 0),
            ("问答".to_string(), "qwen-plus".to_string(), 2, 1),
        ],
        "summed over days, sorted by function then model"
    );
}

#[test]
fn generated_at_is_in_the_monitor_zone() {
    // +14:00 and -12:00 differ from any machine zone by at least 12 hours
    // somewhere: each stamp must match its own monitor's zone.
    for z in ["+14:00", "-12:00"] {
        let zone: Zone = z.parse().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let m = UsageMonitor::builder()
            .dir(tmp.path())
            .timezone(zone)
            .build()
            .unwrap();
        let before = zone.local(ai_usage_core::now_timestamp());
        let stamp = m.dashboard().generated_at;
        let report = m.usage_report(1).generated_at;
        let after = zone.local(ai_usage_core::now_timestamp());
        for s in [stamp, report] {
            let t = chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S").unwrap();
            assert!(
                t >= before.with_nanosecond(0).unwrap() && t <= after,
                "{z}: {s} not between {before} and {after}"
            );
        }
    }
}
