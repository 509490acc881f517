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
fn qwen_max_to_qwen_plus_saves_96_percent() {
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
    // qwen-plus: 1000 × 0.0008/1K + 500 × 0.002/1K = ¥0.0018 per call.
    assert_eq!(plus.cost, "0.18".parse::<Money>().unwrap());
    assert_eq!(plus.saving, "4.82".parse::<Money>().unwrap());
    assert_eq!(plus.saving_pct, 96.4);
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
    // Cheaper at prices no provider page confirmed: left out, and named.
    for id in ["deepseek-chat", "qwen3-max"] {
        assert!(f.alternatives.iter().all(|a| a.model != id), "{id}");
        assert!(f.unverified_left_out.iter().any(|m| m == id), "{id}");
    }
    assert!(
        f.unverified_baseline.is_empty(),
        "qwen-max's price is verified"
    );
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
        .map(|(i, o)| table.price("qwen-turbo", &TokenUsage::new(*i, *o)).cost)
        .sum();
    let report = m.savings(1);
    let f = &report.functions[0];
    let turbo = f
        .alternatives
        .iter()
        .find(|a| a.model == "qwen-turbo")
        .unwrap();
    assert_eq!(turbo.cost, exact);
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

/// Claude-style usage: most input is read from or written to the prompt
/// cache. The cheaper model's cost must charge cache writes at its own
/// cache-write rate (1.25 × input for Anthropic), as the recorded cost does.
#[test]
fn cache_writes_are_repriced_at_the_alternatives_cache_write_rate() {
    use ai_usage_core::{ModelPrice, Rate};
    let rate = |usd_per_mtok: f64| Rate::per_1m(usd_per_mtok).unwrap();
    let claude = |name: &str, input: f64, output: f64| {
        ModelPrice::with_rates(name, Currency::USD, rate(input), rate(output))
            .cached(rate(input / 10.0))
            .cache_write(rate(input * 1.25))
    };
    let mut table = PricingTable::empty();
    table.register("claude-sonnet-4-5", claude("Claude Sonnet 4.5", 3.0, 15.0));
    table.register("claude-haiku-4-5", claude("Claude Haiku 4.5", 1.0, 5.0));

    let dir = tempfile::tempdir().unwrap();
    let zone: Zone = "+08:00".parse().unwrap();
    let m = UsageMonitor::builder()
        .dir(dir.path())
        .timezone(zone)
        .pricing(table.clone())
        .build()
        .unwrap();
    let ts = zone.day_bounds(zone.today()).0 + 12.0 * 3600.0;
    // (input incl. cache, cache read, cache write, output): a conversation
    // that first writes its context, then reads it back; sizes differ so the
    // per-group averages leave remainders.
    let calls = [
        (12_345, 0, 12_000, 310),
        (13_001, 12_000, 900, 505),
        (13_777, 12_900, 700, 77),
        (14_003, 13_600, 0, 1_203),
    ];
    let usage = |(i, c, w, o): (u64, u64, u64, u64)| TokenUsage {
        cached_input_tokens: c,
        cache_write_tokens: w,
        ..TokenUsage::new(i, o)
    };
    for call in calls {
        let (i, c, w, o) = call;
        m.record(
            &UsageEvent::new("claude-sonnet-4-5", "对话")
                .tokens(i, o)
                .cached_tokens(c)
                .cache_write_tokens(w)
                .at(ts),
        );
        assert_eq!(usage(call).cache_write_tokens, w);
    }
    m.flush().unwrap();
    let today = m.current_totals().today;
    assert_eq!(today.cache_write_tokens, 13_600, "rollups sum cache writes");

    let price_all = |model: &str| -> Money {
        calls
            .iter()
            .map(|c| table.price(model, &usage(*c)).cost)
            .sum()
    };
    let report = m.savings(1);
    let f = report
        .functions
        .iter()
        .find(|f| f.function == "对话")
        .unwrap();
    assert_eq!(f.currency, Currency::USD);
    assert_eq!(f.calls, 4);
    assert_eq!(f.current_cost, price_all("claude-sonnet-4-5"));
    let haiku = f
        .alternatives
        .iter()
        .find(|a| a.model == "claude-haiku-4-5")
        .expect("haiku is cheaper");
    // Flat prices: the average-call re-pricing is exact to the nano-unit.
    assert_eq!(haiku.cost, price_all("claude-haiku-4-5"));
    assert_eq!(haiku.saving, f.current_cost - haiku.cost);
    // Pricing the writes as plain input would have understated the cost.
    let as_input: Money = calls
        .iter()
        .map(|c| {
            let mut u = usage(*c);
            u.cache_write_tokens = 0;
            table.price("claude-haiku-4-5", &u).cost
        })
        .sum();
    assert!(haiku.cost > as_input, "{} vs {}", haiku.cost, as_input);
}

#[test]
fn a_baseline_at_an_unverified_price_is_named() {
    let (_d, m, ts) = setup();
    for _ in 0..10 {
        m.record(
            &UsageEvent::new("doubao-pro-32k", "弹幕回复")
                .tokens(2000, 1000)
                .at(ts),
        );
    }
    let report = m.savings(1);
    let f = report
        .functions
        .iter()
        .find(|f| f.function == "弹幕回复")
        .unwrap();
    assert_eq!(f.unverified_baseline, ["doubao-pro-32k"]);
    let table = PricingTable::builtin();
    for a in &f.alternatives {
        let (_, p) = table.resolve(&a.model).unwrap();
        assert!(!p.unverified, "{} is unverified", a.model);
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["functions"][0]["unverified_baseline"][0],
        "doubao-pro-32k"
    );
}

/// A USD function priced by the genai-prices catalogue gets the catalogue's
/// other models of the same provider as alternatives (the CNY table holds
/// no USD model), each costed as the catalogue itself prices the calls.
#[test]
fn usd_functions_get_the_catalogues_models_of_the_same_provider() {
    use ai_usage_core::catalogue::CatalogueUsage;
    let (_d, m, ts) = setup();
    let (calls, input, output) = (10u64, 2000u64, 1000u64);
    for _ in 0..calls {
        m.record(
            &UsageEvent::new("gpt-4o", "摘要")
                .tokens(input, output)
                .at(ts),
        );
    }
    let report = m.savings(1);
    let f = report
        .functions
        .iter()
        .find(|f| f.function == "摘要")
        .unwrap();
    assert_eq!(f.currency, Currency::USD);

    // What the catalogue says: gpt-4o's provider's other models, not
    // deprecated, with text prices, the calls priced by the catalogue.
    let table = PricingTable::builtin();
    let used = table
        .catalogue_match(None, "gpt-4o")
        .expect("in the snapshot");
    let now = chrono::Utc::now();
    let usage = CatalogueUsage {
        input_tokens: input,
        output_tokens: output,
        ..CatalogueUsage::default()
    };
    let recorded = Money::from_nanos(used.quote(&usage, now).unwrap().total_nanos * calls as i64);
    assert_eq!(f.current_cost, recorded);
    let mut want: Vec<(String, Money)> = used
        .siblings()
        .filter(|s| s.model_id() != used.model_id() && !s.deprecated())
        .filter(|s| s.currency() == Currency::USD && s.bands_at(now).is_some())
        // A model a call can name (not `ft:…`, the rates of fine-tuned ones).
        .filter(|s| {
            table
                .catalogue_match(Some("openai"), s.model_id())
                .is_some_and(|x| x.model_id() == s.model_id())
        })
        .filter_map(|s| {
            let one = s.quote(&usage, now).ok()?.total_nanos;
            let cost = Money::from_nanos(one * calls as i64);
            (one > 0 && cost < recorded).then(|| (s.model_id().to_string(), cost))
        })
        .collect();
    want.sort();
    let mut got: Vec<(String, Money)> = f
        .alternatives
        .iter()
        .map(|a| (a.model.clone(), a.cost))
        .collect();
    got.sort();
    assert!(!want.is_empty(), "the snapshot has cheaper OpenAI models");
    assert_eq!(
        got, want,
        "the cheaper OpenAI models, priced as the catalogue does"
    );
    for a in &f.alternatives {
        assert_eq!(a.saving, recorded - a.cost);
        assert_eq!(table.currency_of(&a.model), Some(Currency::USD));
    }
    assert!(f.alternatives.iter().any(|a| a.model == "gpt-4o-mini"));
    assert_eq!(f.best_saving, f.alternatives[0].saving);
}
