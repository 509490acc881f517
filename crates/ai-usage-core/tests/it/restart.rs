//! Live rollups and rollups rebuilt from the day files are the same numbers:
//! a restart changes nothing a query can see, whether it replays the day
//! files or loads the snapshot (compact, frozen past days).

use ai_usage_core::UsageMonitor;
use ai_usage_core::{Currency, Money, UsageEvent};
use ai_usage_core::{RankBy, RankKind};
use chrono::NaiveDate;

#[test]
fn a_restart_gives_the_same_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let build = || {
        UsageMonitor::builder()
            .dir(tmp.path())
            .timezone(zone)
            .retention_days(100_000)
            .build()
            .unwrap()
    };
    let live = build();
    let first = NaiveDate::from_ymd_opt(2025, 10, 28).unwrap();
    let models = [
        "qwen-plus",
        "qwen3-max",
        "gemini-2.5-pro",
        "unknown-model",
        "deepseek-chat",
    ];
    let mut rng = 99u64;
    for i in 0..5000u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Days 10-28 .. 11-03: across a month end, every hour.
        let day = first + chrono::Duration::days((rng % 7) as i64);
        let ts = zone.day_bounds(day).0 + ((rng >> 8) % 86_400) as f64 + 0.123_456;
        let user = format!("u{}", (rng >> 20) % 40);
        let session = format!("live_{}", (rng >> 30) % 12);
        let mut ev = UsageEvent::new(
            models[(rng >> 40) as usize % models.len()],
            ["实时分析", "问答", "话术生成"][(rng >> 44) as usize % 3],
        )
        .usage(ai_usage_core::TokenUsage {
            input_tokens: (rng >> 12) % 200_000,
            output_tokens: (rng >> 24) % 4000,
            total_tokens: None,
            cached_input_tokens: (rng >> 12) % 1000,
            reasoning_tokens: 0,
            ..Default::default()
        })
        .duration_ms(((rng >> 33) % 90_000) as f64 / 7.0)
        .user(&user)
        .session(&session)
        .at(ts);
        if i % 3 == 0 {
            ev = ev.anchor("主播C");
        }
        if i % 41 == 0 {
            ev = ev.failed("上游错误");
        }
        if i % 97 == 0 {
            // Two currencies in one group: kept in full beside the packed ones.
            ev = ev.cost_in(Money::from_micros(1234), Currency::USD);
        }
        live.record(&ev);
        if i % 1000 == 0 {
            // Counts past 32 bits: kept in full too.
            live.record(
                &UsageEvent::new("qwen-plus", "问答")
                    .tokens(4_000_000_000, 1)
                    .user("whale")
                    .at(ts),
            );
        }
    }
    live.flush().unwrap();
    let again = build();
    assert!(again.wait_until_loaded(std::time::Duration::from_secs(60)));
    // Every record replayed from the day files (after the empty snapshot
    // the live monitor wrote at its start).
    assert_eq!(again.health().replay.records, 5005);
    compare(&live, &again, first);
    // A clean stop writes the snapshot; the next start loads it instead.
    drop(again);
    let warm = build();
    assert!(warm.wait_until_loaded(std::time::Duration::from_secs(60)));
    assert_eq!(warm.health().load.source, "snapshot");
    compare(&live, &warm, first);
}

/// Every answer over the seven days from `first` is the same.
fn compare(live: &UsageMonitor, again: &UsageMonitor, first: NaiveDate) {
    let last = first + chrono::Duration::days(6);
    let mut d = first;
    while d <= last {
        assert_eq!(
            live.get_summary_for_date(d),
            again.get_summary_for_date(d),
            "{d}"
        );
        for h in [0, 7, 13, 23] {
            assert_eq!(
                live.get_summary_for_hour(d, h),
                again.get_summary_for_hour(d, h),
                "{d} {h}h"
            );
        }
        d = d.succ_opt().unwrap();
    }
    assert_eq!(
        live.get_monthly_summary(2025, 10).unwrap(),
        again.get_monthly_summary(2025, 10).unwrap()
    );
    assert_eq!(
        live.get_range_summary(first, last).unwrap(),
        again.get_range_summary(first, last).unwrap()
    );
    for s in 0..12 {
        let id = format!("live_{s}");
        assert_eq!(
            live.get_session_stats(&id),
            again.get_session_stats(&id),
            "{id}"
        );
    }
    for kind in [
        RankKind::User,
        RankKind::Anchor,
        RankKind::Function,
        RankKind::Model,
    ] {
        for by in [RankBy::Tokens, RankBy::Cost, RankBy::Calls] {
            assert_eq!(
                live.top(kind, first, last, by, 10),
                again.top(kind, first, last, by, 10)
            );
        }
    }
    assert_eq!(
        live.cost_trend_range(first, last).unwrap(),
        again.cost_trend_range(first, last).unwrap()
    );
    assert_eq!(
        live.savings_between(first, last),
        again.savings_between(first, last)
    );
    assert_eq!(
        live.daily_csv(first, last, false).unwrap(),
        again.daily_csv(first, last, false).unwrap()
    );
}
