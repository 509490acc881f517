//! Sub-micro costs survive every step: a 10-token `text-embedding-3-small`
//! call ($0.02 per million tokens) costs $0.0000002 in the record, the day
//! file, the rebuilt rollups, the summary, its JSON and the CSV exports.

use ai_usage_core::{Currency, Money, TokenUsage, UsageEvent, UsageMonitor};
use chrono::NaiveDate;

const CALLS: u64 = 1000;

fn embedding_call(ts: f64) -> UsageEvent<'static> {
    UsageEvent::new("text-embedding-3-small", "embed")
        .usage(TokenUsage::new(10, 0))
        .at(ts)
}

#[test]
fn a_ten_token_embedding_costs_two_tenths_of_a_micro_dollar_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let zone: ai_usage_core::Zone = "+00:00".parse().unwrap();
    let build = || {
        UsageMonitor::builder()
            .dir(tmp.path())
            .timezone(zone)
            .retention_days(100_000)
            .build()
            .unwrap()
    };
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let start = zone.day_bounds(day).0;
    let live = build();
    let first = live.record(&embedding_call(start + 1.0));
    assert_eq!(first.cost, Money::from_nanos(200));
    assert_eq!(first.currency, Some(Currency::USD));
    for i in 1..CALLS {
        live.record(&embedding_call(start + 1.0 + i as f64));
    }
    live.flush().unwrap();

    // The day file holds the exact decimal, not 0 and not `2e-7`.
    let file = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("a day file");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), CALLS as usize);
    assert!(
        text.contains(r#""cost":0.0000002,"#),
        "{}",
        text.lines().next().unwrap()
    );

    // Live and replayed rollups: 1000 × 200 nano-USD = exactly $0.0002.
    let again = build();
    assert!(again.wait_until_loaded(std::time::Duration::from_secs(60)));
    assert_eq!(again.health().replay.records, CALLS);
    for m in [&live, &again] {
        let s = m.get_summary_for_date(day);
        assert_eq!(s.total_calls, CALLS);
        assert_eq!(s.costs.get(Currency::USD), Money::from_nanos(200_000));
        assert_eq!(s.costs.get(Currency::USD).to_string(), "0.000200");
        let g = &s.by_model["text-embedding-3-small"];
        assert_eq!((g.currency, g.cost.nanos()), (Currency::USD, 200_000));
        let json = serde_json::to_value(&s).unwrap();
        let text = ai_usage_core::json_text::to_string(&json).unwrap();
        assert!(text.contains(r#""USD":0.0002"#), "{text}");
        assert!(!text.contains("e-"), "no exponent forms: {text}");
    }
    assert_eq!(
        live.get_summary_for_date(day),
        again.get_summary_for_date(day)
    );

    // CSV: the daily rollup and the raw records.
    let daily = String::from_utf8(again.daily_csv(day, day, false).unwrap()).unwrap();
    assert!(daily.contains(",0.000200,USD"), "{daily}");
    let out = tmp.path().join("records.csv");
    again
        .export_records_csv(Some(&out), day, day, false)
        .unwrap();
    let records = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        records.matches(",0.0000002,USD").count(),
        CALLS as usize,
        "{records}"
    );

    // A million such calls sum to exactly $0.2.
    let one = again
        .pricing()
        .price("text-embedding-3-small", &TokenUsage::new(10, 0));
    let total: Money = std::iter::repeat_n(one.cost, 1_000_000).sum();
    assert_eq!(total, Money::from_nanos(200_000_000));
    assert_eq!(ai_usage_core::json_text::to_string(&total).unwrap(), "0.2");
}

#[test]
fn six_decimal_files_of_older_versions_load_identically() {
    // What an older version wrote: floats of micro-unit costs, including the
    // exponent form serde_json used below 1e-5.
    let tmp = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"timestamp": 1772409600.5, "model": "deepseek-chat", "function": "f", "input_tokens": 2716, "output_tokens": 176, "total_tokens": 2892, "cost": 0.003068, "currency": "CNY", "duration_ms": 1.0, "success": true}"#,
        r#"{"timestamp": 1772409601.5, "model": "qwen-turbo", "function": "f", "input_tokens": 1, "output_tokens": 1, "total_tokens": 2, "cost": 6e-6, "currency": "CNY", "duration_ms": 1.0, "success": true}"#,
        r#"{"timestamp": 1772409602.5, "model": "qwen-plus", "function": "f", "input_tokens": 2307, "output_tokens": 1181, "total_tokens": 3488, "cost": 0.0234, "duration_ms": 1.0, "success": true}"#,
    ];
    std::fs::write(
        tmp.path().join("usage_2026-03-02.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone("+00:00".parse().unwrap())
        .retention_days(100_000)
        .build()
        .unwrap();
    assert!(m.wait_until_loaded(std::time::Duration::from_secs(60)));
    assert_eq!(m.health().replay.records, 3, "{:?}", m.health().replay);
    let s = m.get_summary_for_date(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    assert_eq!(s.total_calls, 3);
    assert_eq!(
        s.costs.get(Currency::CNY),
        Money::from_micros(3068 + 6 + 23_400)
    );
    assert_eq!(s.by_model["deepseek-chat"].cost, Money::from_micros(3068));
    assert_eq!(s.by_model["qwen-turbo"].cost, Money::from_micros(6));
}
