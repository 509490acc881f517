//! Savings advice on constructed usage.

use ai_usage_core::UsageMonitor;
use ai_usage_core::Zone;
use ai_usage_core::{Currency, Money, PricingTable, TokenUsage, UsageEvent};

fn setup() -> (tempfile::TempDir, UsageMonitor, f64) {
    let dir = tempfile::tempdir().unwrap();
    let zone: Zone = "+08:00".parse().unwrap();
    let m = UsageMonitor::builder()
        .dir(dir.path())
        .timezone(zone)
        .pricing(PricingTable::builtin())
        .build()
        .unwrap();
    let noon = zone.day_bounds(zone.today()).0 + 12.0 * 3600.0;
    (dir, m, noon)
}

#[test]
fn qwen_max_to_qwen_plus_saves_80_percent() {
    let (_d, m, ts) = setup();
    for _ in 0..100 {
        m.record(
            &UsageEvent::new("qwen-max", "实时分析")
                .tokens(1000, 500)
                .at(ts),
        );
    }
    let report = m.savings(7);
    assert_eq!(report.period_days, 7);
    let f = report
        .functions
        .iter()
        .find(|f| f.function == "实时分析")
        .unwrap();
    assert_eq!(f.currency, Currency::CNY);
    assert_eq!(f.calls, 100);
    // qwen-max: 1000 × 0.02/1K + 500 × 0.06/1K = ¥0.05 per call.
    assert_eq!(f.current_cost, "5".parse::<Money>().unwrap());
    let plus = f
        .alternatives
        .iter()
        .find(|a| a.model == "qwen-plus")
        .unwrap();
    assert_eq!(plus.cost, "1".parse::<Money>().unwrap());
    assert_eq!(plus.saving, "4".parse::<Money>().unwrap());
    assert_eq!(plus.saving_pct, 80.0);
    assert!(!plus.approximate);
    assert!(
        f.alternatives.iter().all(|a| a.model != "qwen-max"),
        "the model in use is no alternative"
    );
    assert!(
        f.alternatives
            .windows(2)
            .all(|w| w[0].saving >= w[1].saving),
        "sorted by saving"
    );
    assert_eq!(f.best_saving, f.alternatives[0].saving);
    assert_eq!(f.halve_frequency.saving, "2.5".parse::<Money>().unwrap());
    assert_eq!(f.halve_frequency.saving_pct, 50.0);
    assert_eq!(f.halve_frequency.calls, 50);
}

#[test]
fn repricing_keeps_exact_token_totals_for_flat_prices() {
    let (_d, m, ts) = setup();
    let sizes = [(1000, 300), (1000, 301), (1002, 299)];
    for (i, o) in sizes {
        m.record(&UsageEvent::new("qwen-max", "话术生成").tokens(i, o).at(ts));
    }
    let table = PricingTable::builtin();
    let exact: Money = sizes
        .iter()
        .map(|(i, o)| table.price("deepseek-chat", &TokenUsage::new(*i, *o)).cost)
        .sum();
    let report = m.savings(1);
    let f = &report.functions[0];
    let ds = f
        .alternatives
        .iter()
        .find(|a| a.model == "deepseek-chat")
        .unwrap();
    assert_eq!(ds.cost, exact);
}

#[test]
fn currencies_are_advised_separately_and_sorted_by_saving() {
    let (_d, m, ts) = setup();
    for _ in 0..10 {
        m.record(
            &UsageEvent::new("gemini-2.5-flash", "问答")
                .tokens(2000, 1000)
                .at(ts),
        );
        m.record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(2000, 1000)
                .at(ts),
        );
        m.record(
            &UsageEvent::new("qwen-max", "直播复盘")
                .tokens(20_000, 2000)
                .at(ts),
        );
        m.record(&UsageEvent::new("not-a-model", "问答").tokens(5, 5).at(ts));
    }
    let report = m.savings(1);
    let qa: Vec<_> = report
        .functions
        .iter()
        .filter(|f| f.function == "问答")
        .collect();
    assert_eq!(qa.len(), 2, "one entry per currency");
    let usd = qa.iter().find(|f| f.currency == Currency::USD).unwrap();
    let table = PricingTable::builtin();
    for a in &usd.alternatives {
        assert_eq!(
            table.currency_of(&a.model),
            Some(Currency::USD),
            "{} is not a USD model",
            a.model
        );
    }
    let cny = qa.iter().find(|f| f.currency == Currency::CNY).unwrap();
    assert_eq!(cny.calls, 10, "unpriced calls are left out");
    assert_eq!(cny.unpriced_calls, 10);
    // The expensive qwen-max review has the largest CNY saving, so it comes first.
    assert_eq!(report.functions[0].function, "直播复盘");
}
