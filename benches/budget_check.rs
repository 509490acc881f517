//! The guard before an AI call: `UsageMonitor::check_budget` with 100
//! budgets that have a hard limit (1 global, 33 per user, 33 per anchor, 33
//! per model) and 10,000 recorded calls; the call matches 4 of them.
//! Run: `cargo bench --bench budget_check`.

use std::hint::black_box;

use ai_usage_core::{
    Budget, BudgetPeriod, BudgetScope, CallScope, Currency, Money, UsageEvent, UsageMonitor,
};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = UsageMonitor::builder()
        .dir(dir.path())
        .replay(false)
        .build()
        .expect("monitor");
    let limit: Money = "1000000".parse().expect("limit");
    let mut budgets = vec![Budget::new(
        "global",
        BudgetScope::Global,
        BudgetPeriod::Monthly,
        limit,
        Currency::CNY,
    )
    .with_block_at(100)];
    for i in 0..33 {
        for (kind, scope, period) in [
            (
                "user",
                BudgetScope::User(format!("user_{i}")),
                BudgetPeriod::Daily,
            ),
            (
                "anchor",
                BudgetScope::Anchor(format!("anchor_{i}")),
                BudgetPeriod::Monthly,
            ),
            (
                "model",
                BudgetScope::Model(format!("model_{i}")),
                BudgetPeriod::Daily,
            ),
        ] {
            budgets.push(
                Budget::new(format!("{kind}_{i}"), scope, period, limit, Currency::CNY)
                    .with_block_at(100),
            );
        }
    }
    assert_eq!(budgets.len(), 100);
    m.add_budgets(budgets).expect("budgets");
    let cost: Money = "0.01".parse().expect("cost");
    for i in 0..10_000u32 {
        let (user, anchor, model) = (
            format!("user_{}", i % 50),
            format!("anchor_{}", i % 40),
            format!("model_{}", i % 33),
        );
        m.record(
            &UsageEvent::new(&model, "实时分析")
                .user(&user)
                .anchor(&anchor)
                .cost(cost),
        );
    }
    let call = CallScope::new()
        .user("user_7")
        .anchor("anchor_7")
        .function("实时分析")
        .model("model_7");
    assert!(m.check_budget(&call).is_ok());
    c.bench_function("check_budget, 100 hard-limited budgets, 4 match", |b| {
        b.iter(|| black_box(m.check_budget(black_box(&call))))
    });
    let none = CallScope::new().user("user_99");
    c.bench_function("check_budget, 100 hard-limited budgets, 1 matches", |b| {
        b.iter(|| black_box(m.check_budget(black_box(&none))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
