//! Budgets: exactly-once alerts under concurrency, no re-fire after a
//! restart, per-scope spending and status figures.

use std::sync::{Arc, Mutex};

use ai_usage_core::month_start;
use ai_usage_core::UsageMonitor;
use ai_usage_core::{Budget, BudgetAlert, BudgetPeriod, BudgetScope};
use ai_usage_core::{Currency, Money, UsageEvent};

use crate::common::{money, monitor, today_noon, zone};

fn collect(m: &UsageMonitor) -> Arc<Mutex<Vec<BudgetAlert>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    m.on_budget_alert(move |a| s.lock().unwrap().push(a.clone()));
    seen
}

#[test]
fn each_threshold_fires_exactly_once_under_eight_threads() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(monitor(dir.path()));
    m.add_budget(
        Budget::new(
            "total",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            money("20"),
            Currency::CNY,
        )
        .with_thresholds(vec![50, 80, 100, 150]),
    )
    .unwrap();
    m.add_budget(Budget::new(
        "a1",
        BudgetScope::Anchor("a1".into()),
        BudgetPeriod::Daily,
        money("10"),
        Currency::CNY,
    ))
    .unwrap();
    let seen = collect(&m);
    let ts = today_noon();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let anchor = if t < 4 { "a1" } else { "a2" };
                for _ in 0..500 {
                    m.record(
                        &UsageEvent::new("qwen-plus", "实时分析")
                            .anchor(anchor)
                            .cost(money("0.01"))
                            .at(ts),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // 8 × 500 × 0.01 = 40 spent globally (200 %), 4 × 500 × 0.01 = 20 on a1 (200 %).
    let alerts = seen.lock().unwrap().clone();
    let mut total: Vec<u32> = alerts
        .iter()
        .filter(|a| a.budget == "total")
        .map(|a| a.threshold)
        .collect();
    total.sort_unstable();
    assert_eq!(total, vec![50, 80, 100, 150]);
    let mut a1: Vec<u32> = alerts
        .iter()
        .filter(|a| a.budget == "a1")
        .map(|a| a.threshold)
        .collect();
    a1.sort_unstable();
    assert_eq!(a1, vec![80, 100]);
    // Each alert carries the spend of the very record that crossed.
    for a in &alerts {
        let exact = a.limit.mul_div(a.threshold as i64, 100).unwrap();
        assert_eq!(a.spent, exact, "{a:?}");
        assert_eq!(
            a.period_label,
            zone().today().format("%Y-%m-%d").to_string()
        );
    }
    let status = m.budget_status();
    assert_eq!(status[0].spent, money("40"));
    assert_eq!(status[0].percent, 200.0);
    assert_eq!(status[0].remaining, Money::ZERO);
    assert_eq!(status[0].thresholds_fired, vec![50, 80, 100, 150]);
    assert_eq!(status[1].spent, money("20"));
}

#[test]
fn no_refire_after_restart_in_the_same_period() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Budget::new(
        "daily",
        BudgetScope::Global,
        BudgetPeriod::Daily,
        money("10"),
        Currency::CNY,
    );
    let ts = today_noon();
    {
        let m = monitor(dir.path());
        m.add_budget(budget.clone()).unwrap();
        let seen = collect(&m);
        for _ in 0..17 {
            m.record(
                &UsageEvent::new("qwen-plus", "问答")
                    .cost(money("0.5"))
                    .at(ts),
            );
        }
        m.flush().unwrap();
        let fired: Vec<u32> = seen.lock().unwrap().iter().map(|a| a.threshold).collect();
        assert_eq!(fired, vec![80], "8.5 of 10 spent");
    }
    let m = monitor(dir.path());
    m.add_budget(budget).unwrap();
    let seen = collect(&m);
    let status = &m.budget_status()[0];
    assert_eq!(status.spent, money("8.5"), "replayed from the day file");
    assert_eq!(status.thresholds_fired, vec![80]);
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .cost(money("0.5"))
            .at(ts),
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "80 % must not fire again after the restart"
    );
    m.record(&UsageEvent::new("qwen-plus", "问答").cost(money("1")).at(ts));
    let fired: Vec<u32> = seen.lock().unwrap().iter().map(|a| a.threshold).collect();
    assert_eq!(fired, vec![100]);
    m.record(&UsageEvent::new("qwen-plus", "问答").cost(money("1")).at(ts));
    assert_eq!(seen.lock().unwrap().len(), 1, "100 % fires once");
}

#[test]
fn scopes_and_currencies_count_only_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let m = monitor(dir.path());
    let b = |name: &str, scope: BudgetScope, period: BudgetPeriod, limit: &str, c: Currency| {
        Budget::new(name, scope, period, money(limit), c).with_thresholds(vec![100])
    };
    m.add_budgets([
        b(
            "user",
            BudgetScope::User("u1".into()),
            BudgetPeriod::Daily,
            "1",
            Currency::CNY,
        ),
        b(
            "func",
            BudgetScope::Function("话术生成".into()),
            BudgetPeriod::Daily,
            "1",
            Currency::CNY,
        ),
        b(
            "model",
            BudgetScope::Model("qwen-max".into()),
            BudgetPeriod::Daily,
            "1",
            Currency::CNY,
        ),
        b(
            "usd",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            "1",
            Currency::USD,
        ),
        b(
            "month",
            BudgetScope::Global,
            BudgetPeriod::Monthly,
            "100",
            Currency::CNY,
        ),
    ])
    .unwrap();
    let seen = collect(&m);
    let ts = today_noon();
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .user("u1")
            .cost(money("0.6"))
            .at(ts),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .user("u2")
            .cost(money("0.6"))
            .at(ts),
    );
    m.record(
        &UsageEvent::new("qwen-max", "话术生成")
            .user("u2")
            .cost(money("0.7"))
            .at(ts),
    );
    m.record(
        &UsageEvent::new("gemini-2.0-flash", "话术生成")
            .user("u1")
            .cost(money("0.9"))
            .at(ts),
    );
    // Earlier this month and last month: only the first counts monthly.
    let z = zone();
    let first = month_start(z.today());
    let first_noon = z.day_bounds(first).0 + 12.0 * 3600.0;
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .cost(money("2"))
            .at(first_noon),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .cost(money("50"))
            .at(first_noon - 86_400.0),
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing reached 100 % yet");
    let by_name = |n: &str| m.budget_status().into_iter().find(|s| s.name == n).unwrap();
    assert_eq!(
        by_name("user").spent,
        money("0.6"),
        "u1's CNY only, not its USD call"
    );
    assert_eq!(by_name("func").spent, money("0.7"), "话术生成 in CNY only");
    assert_eq!(by_name("model").spent, money("0.7"));
    assert_eq!(by_name("usd").spent, money("0.9"));
    assert_eq!(by_name("usd").currency, Currency::USD);
    let month = by_name("month");
    assert_eq!(
        month.spent,
        money("3.9"),
        "0.6 + 0.6 + 0.7 today + 2 on the 1st; last month excluded"
    );
    assert_eq!(month.period_label, z.today().format("%Y-%m").to_string());
    assert_eq!(month.remaining, money("96.1"));
    assert_eq!(month.percent, 3.9);
    assert!(month.projected_end_of_period >= month.spent);
    // Crossing: one more qwen-max 话术生成 call in CNY by u1 crosses user, func and model.
    m.record(
        &UsageEvent::new("qwen-max", "话术生成")
            .user("u1")
            .cost(money("0.4"))
            .at(ts),
    );
    let mut fired: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.budget.clone())
        .collect();
    fired.sort();
    assert_eq!(fired, vec!["func", "model", "user"]);
}

#[test]
fn invalid_budgets_are_rejected_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let m = monitor(dir.path());
    let zero = Budget::new(
        "z",
        BudgetScope::Global,
        BudgetPeriod::Daily,
        Money::ZERO,
        Currency::CNY,
    );
    assert!(m
        .add_budget(zero)
        .unwrap_err()
        .to_string()
        .contains("limit"));
    let bad = Budget::new(
        "t",
        BudgetScope::Global,
        BudgetPeriod::Daily,
        money("1"),
        Currency::CNY,
    )
    .with_thresholds(vec![0]);
    assert!(m
        .add_budget(bad)
        .unwrap_err()
        .to_string()
        .contains("thresholds"));
    assert!(m.budgets().is_empty());
}

#[test]
fn a_callback_may_query_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(monitor(dir.path()));
    m.add_budget(
        Budget::new(
            "d",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            money("1"),
            Currency::CNY,
        )
        .with_thresholds(vec![100]),
    )
    .unwrap();
    let weak = Arc::downgrade(&m);
    let calls_seen = Arc::new(Mutex::new(None));
    let c = Arc::clone(&calls_seen);
    m.on_budget_alert(move |_| {
        // Would deadlock if callbacks ran under the rollups lock.
        if let Some(m) = weak.upgrade() {
            *c.lock().unwrap() = Some(m.budget_status()[0].spent);
        }
    });
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .cost(money("1.5"))
            .at(today_noon()),
    );
    assert_eq!(*calls_seen.lock().unwrap(), Some(money("1.5")));
}

#[test]
fn with_local_alerts_off_records_fire_nothing_and_delivered_alerts_reach_the_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let m = monitor(dir.path());
    m.add_budget(
        Budget::new(
            "total",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            money("10"),
            Currency::CNY,
        )
        .with_thresholds(vec![50, 100, 150]),
    )
    .unwrap();
    let seen = collect(&m);
    assert!(m.local_budget_alerts());
    m.set_local_budget_alerts(false);
    assert!(!m.local_budget_alerts());
    // A budget added while they are off stays off too.
    m.add_budget(Budget::new(
        "late",
        BudgetScope::Global,
        BudgetPeriod::Daily,
        money("1"),
        Currency::CNY,
    ))
    .unwrap();
    let ts = today_noon();
    // 6 of 10: 50 % reached, nothing fires here.
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("6")).at(ts));
    assert!(seen.lock().unwrap().is_empty());
    let status = m.budget_status();
    assert_eq!(status[0].spent, money("6"));
    assert_eq!(
        status[0].thresholds_fired,
        vec![50],
        "reached counts as fired"
    );

    // What a fleet poller decided arrives through the same callbacks.
    let alert = BudgetAlert {
        budget: "total".into(),
        scope: BudgetScope::Global,
        period: BudgetPeriod::Daily,
        period_label: status[0].period_label.clone(),
        threshold: 50,
        spent: money("6"),
        limit: money("10"),
        percent: 60.0,
        currency: Currency::CNY,
        timestamp: ts,
        model: String::new(),
        function: String::new(),
    };
    m.deliver_budget_alerts(std::slice::from_ref(&alert));
    assert_eq!(*seen.lock().unwrap(), vec![alert.clone()]);
    // The handle a companion gets delivers the same way and lists the budgets.
    let handle = m.budget_handle();
    assert_eq!(handle.budgets().len(), 2);
    handle.deliver(std::slice::from_ref(&alert));
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Back on: what was reached meanwhile does not fire, the next crossing does.
    m.set_local_budget_alerts(true);
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("1")).at(ts));
    assert_eq!(seen.lock().unwrap().len(), 2, "50 % was reached while off");
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("4")).at(ts));
    let alerts = seen.lock().unwrap().clone();
    assert_eq!(alerts.len(), 3);
    assert_eq!((alerts[2].threshold, alerts[2].spent), (100, money("11")));
    drop(m);
    // A handle outliving its monitor does nothing.
    handle.deliver(std::slice::from_ref(&alert));
    assert!(handle.budgets().is_empty());
    assert_eq!(seen.lock().unwrap().len(), 3);
}
