//! Re-pricing writes adjustments that every answer includes, live (the
//! follower) and after a restart (replay); usage files stay byte for byte.

use std::time::Duration;

use ai_usage_core::adjustments::{plan_reprice, RepriceScope};
use ai_usage_core::{
    Currency, ModelPrice, Money, PricingTable, RankBy, RankKind, TokenUsage, UsageEvent,
    UsageMonitor, UsageQueries,
};

use super::common::zone;

fn files_hash(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("usage_"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn usage(input: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        output_tokens: output,
        ..TokenUsage::default()
    }
}

fn table_with(price_in: f64, price_out: f64) -> PricingTable {
    let mut t = PricingTable::builtin();
    t.register(
        "acme-private",
        ModelPrice::flat("Acme", Currency::CNY, price_in, price_out),
    );
    t
}

#[test]
fn reprice_prices_yesterdays_unpriced_calls_in_every_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let z = zone();
    let yesterday = z.today() - chrono::Duration::days(1);
    let noon = z.day_bounds(yesterday).0 + 12.0 * 3600.0;
    let app = UsageMonitor::builder()
        .dir(dir)
        .timezone(z)
        .build()
        .unwrap();
    assert!(app.wait_until_loaded(Duration::from_secs(30)));
    let tags = ["team:live"];
    for i in 0..3u64 {
        app.record(
            &UsageEvent::new("acme-private", "实时分析")
                .tokens(1000 * (i + 1), 500)
                .user("u1")
                .anchor("a1")
                .session("s1")
                .tags(&tags)
                .at(noon + i as f64),
        );
    }
    app.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1000, 500)
            .user("u2")
            .at(noon + 10.0),
    );
    app.flush().unwrap();
    drop(app);
    // A clean stop leaves a snapshot; it holds no correction, so once there
    // are corrections a start must not use it (or they would count twice).
    assert!(dir.join("rollups.snapshot").exists());

    // A dashboard that follows the directory, started before the re-pricing.
    let dash = UsageMonitor::builder()
        .dir(dir)
        .timezone(z)
        .follow(Duration::from_secs(3600))
        .build()
        .unwrap();
    let before = dash.summary_for_date(yesterday).unwrap();
    assert_eq!(before.unpriced_calls, 3);
    let qwen_cost = before.by_model["qwen-plus"].cost;

    let bytes_before = files_hash(dir);
    let scope = RepriceScope {
        from: yesterday,
        to: yesterday,
        only_unpriced: true,
        model: None,
    };
    let first = table_with(0.01, 0.02);
    let plan = plan_reprice(dir, &first, &scope, chrono::Utc::now()).unwrap();
    assert_eq!(plan.len(), 3, "only the three unpriced calls");
    plan.write(dir).unwrap();
    assert_eq!(files_hash(dir), bytes_before, "usage files unchanged");
    let expected: Money = (0..3u64)
        .map(|i| {
            first
                .price("acme-private", &usage(1000 * (i + 1), 500))
                .cost
        })
        .sum();
    assert!(expected > Money::ZERO);

    // The running dashboard sees them on its next look.
    dash.refresh();
    let after = dash.summary_for_date(yesterday).unwrap();
    assert_eq!(after.unpriced_calls, 0);
    assert_eq!(after.total_calls, before.total_calls, "calls never change");
    assert_eq!(
        after.total_tokens, before.total_tokens,
        "tokens never change"
    );
    assert_eq!(after.by_model["acme-private"].cost, expected);
    assert_eq!(after.by_model["acme-private"].unpriced_calls, 0);
    assert_eq!(after.by_model["qwen-plus"].cost, qwen_cost);
    assert_eq!(after.total_cost, expected + qwen_cost);
    assert_eq!(after.by_function["实时分析"].cost, expected);
    assert_eq!(after.by_user["u1"].cost, expected);
    assert_eq!(after.by_anchor["a1"].cost, expected);
    let session = dash.session("s1").unwrap().unwrap();
    assert_eq!(session.cost, expected);
    let hour = dash.summary_for_hour(yesterday, 12).unwrap();
    assert_eq!(hour.total_cost, expected + qwen_cost);
    let trend = dash.trend(yesterday, yesterday).unwrap();
    assert_eq!(trend[0].cost, expected + qwen_cost);
    let top = UsageQueries::top(
        &dash,
        RankKind::User,
        yesterday,
        yesterday,
        RankBy::Cost,
        10,
    )
    .unwrap();
    assert_eq!(top[0].id, "u1");
    let csv = String::from_utf8(dash.daily_csv(yesterday, yesterday, false).unwrap()).unwrap();
    assert!(
        csv.contains(&format!(",实时分析,3,6000,1500,7500,{expected:.6},CNY")),
        "{csv}"
    );

    // A restart (replay) answers the same.
    let again = UsageMonitor::builder()
        .dir(dir)
        .timezone(z)
        .build()
        .unwrap();
    assert_eq!(again.summary_for_date(yesterday).unwrap(), after);
    let load = again.health().load;
    assert!(
        load.snapshot_unused
            .as_deref()
            .is_some_and(|why| why.contains("cost corrections")),
        "{load:?}"
    );
    drop(again);
    assert_eq!(
        UsageMonitor::builder()
            .dir(dir)
            .timezone(z)
            .build()
            .unwrap()
            .summary_for_date(yesterday)
            .unwrap(),
        after,
        "a second restart (no snapshot holds corrections) answers the same"
    );

    // The same prices again: nothing to write.
    let plan = plan_reprice(dir, &first, &scope, chrono::Utc::now()).unwrap();
    assert!(plan.is_empty(), "{:?}", plan.adjustments);
    let all = RepriceScope {
        only_unpriced: false,
        ..scope.clone()
    };
    assert!(plan_reprice(dir, &first, &all, chrono::Utc::now())
        .unwrap()
        .is_empty());

    // A price change afterwards: only the difference.
    let second = table_with(0.02, 0.02);
    let plan = plan_reprice(dir, &second, &all, chrono::Utc::now()).unwrap();
    assert_eq!(plan.len(), 3);
    let expected2: Money = (0..3u64)
        .map(|i| {
            second
                .price("acme-private", &usage(1000 * (i + 1), 500))
                .cost
        })
        .sum();
    assert_eq!(
        plan.total().delta.get(Currency::CNY),
        expected2 - expected,
        "the difference from the corrected cost"
    );
    plan.write(dir).unwrap();
    dash.refresh();
    let third = dash.summary_for_date(yesterday).unwrap();
    assert_eq!(third.by_model["acme-private"].cost, expected2);
    assert_eq!(third.unpriced_calls, 0);
    let again = UsageMonitor::builder()
        .dir(dir)
        .timezone(z)
        .build()
        .unwrap();
    assert_eq!(again.summary_for_date(yesterday).unwrap(), third);
    assert_eq!(files_hash(dir), bytes_before, "usage files unchanged");

    // The raw records export shows each call at its corrected cost.
    let mut out = Vec::new();
    again
        .write_records_csv(yesterday, yesterday, false, &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let second_call = second.price("acme-private", &usage(2000, 500)).cost;
    assert!(text.contains(&second_call.to_string()), "{text}");
}

/// The seed's own files, re-priced with today's prices: the files the
/// original wrote (and reads) stay byte for byte, every line still the
/// original's record, and the corrections live beside them under a name
/// the original's `usage_*.jsonl` reader never opens.
#[test]
fn seed_files_stay_readable_by_the_original_after_reprice() {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seed-records/records");
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let before = files_hash(tmp.path());
    let scope = RepriceScope {
        from: "2025-10-25".parse().unwrap(),
        to: "2025-10-26".parse().unwrap(),
        only_unpriced: false,
        model: None,
    };
    let table = PricingTable::builtin();
    let plan = plan_reprice(tmp.path(), &table, &scope, chrono::Utc::now()).unwrap();
    assert!(!plan.is_empty(), "today's prices differ from the seed's");
    plan.write(tmp.path()).unwrap();
    assert_eq!(files_hash(tmp.path()), before);
    let seed_keys = [
        "timestamp",
        "user_id",
        "anchor_id",
        "session_id",
        "model",
        "function",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost",
        "duration_ms",
        "success",
        "error_msg",
    ];
    for (name, bytes) in &before {
        for line in String::from_utf8(bytes.clone()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for k in seed_keys {
                assert!(v.get(k).is_some(), "{name}: {k} missing in {line}");
            }
        }
    }
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("usage_") || name.starts_with("adjustments_"),
            "{name}"
        );
    }
    assert!(plan_reprice(tmp.path(), &table, &scope, chrono::Utc::now())
        .unwrap()
        .is_empty());
}
