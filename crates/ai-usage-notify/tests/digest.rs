//! The scheduled digest through a monitor's notifier: due "now" on an
//! injected clock, delivered once with the figures the queries give, and
//! not again after a restart.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_usage_core::{
    Budget, BudgetPeriod, BudgetScope, Currency, RankBy, RankKind, UsageEvent, UsageMonitor,
    UsageQueries, Zone,
};
use ai_usage_notify::{
    ChannelConfig, ChannelKind, DeliveryState, DigestConfig, DigestThread, Notifier, Outbox,
};
use common::{money, reply, Stub};

fn zone() -> Zone {
    "Asia/Shanghai".parse().unwrap()
}

/// Epoch seconds of a local time in the monitor's zone.
fn local(t: &str) -> f64 {
    zone().timestamp_of(chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap())
}

/// A clock the test moves.
struct TestClock(AtomicU64);

impl TestClock {
    fn new(t: f64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicU64::new(t.to_bits())))
    }
    fn set(&self, t: f64) {
        self.0.store(t.to_bits(), Ordering::SeqCst);
    }
    fn clock(self: &Arc<Self>) -> ai_usage_notify::digest::Clock {
        let c = Arc::clone(self);
        Arc::new(move || f64::from_bits(c.0.load(Ordering::SeqCst)))
    }
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let started = Instant::now();
    while !f() {
        if started.elapsed() > Duration::from_secs(9) {
            eprintln!("still waiting for {what}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn monitor(dir: &std::path::Path, notifier: &Notifier) -> Arc<UsageMonitor> {
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .replay(true)
        .companion(notifier.clone())
        .build()
        .unwrap();
    Arc::new(m)
}

/// Two weeks of calls: the week before last, and last week (Mon 2026-11-23
/// to Sun 2026-11-29) with CNY and USD calls of several functions,
/// models and anchors.
fn record_two_weeks(m: &UsageMonitor) {
    let calls: &[(&str, &str, &str, &str, Currency, &str)] = &[
        (
            "2026-11-17 10:00:00",
            "qwen-max",
            "实时分析",
            "anchor_001",
            Currency::CNY,
            "3.5",
        ),
        (
            "2026-11-22 23:59:00",
            "qwen-plus",
            "弹幕回复",
            "anchor_002",
            Currency::CNY,
            "1.25",
        ),
        (
            "2026-11-23 00:00:01",
            "qwen-max",
            "实时分析",
            "anchor_001",
            Currency::CNY,
            "4.123456789",
        ),
        (
            "2026-11-24 12:00:00",
            "qwen-max",
            "实时分析",
            "anchor_002",
            Currency::CNY,
            "2",
        ),
        (
            "2026-11-26 20:30:00",
            "qwen-plus",
            "弹幕回复",
            "anchor_001",
            Currency::CNY,
            "0.75",
        ),
        (
            "2026-11-29 23:00:00",
            "gpt-4o",
            "直播总结",
            "anchor_003",
            Currency::USD,
            "0.42",
        ),
        // Monday after: not in the week.
        (
            "2026-11-30 08:00:00",
            "qwen-max",
            "实时分析",
            "anchor_001",
            Currency::CNY,
            "9",
        ),
    ];
    for (at, model, function, anchor, currency, cost) in calls {
        m.record(
            &UsageEvent::new(model, function)
                .anchor(anchor)
                .tokens(1000, 200)
                .cost_in(money(cost), *currency)
                .at(local(at)),
        );
    }
    m.flush().unwrap();
}

fn channels(webhook: &Stub, dingtalk: &Stub) -> Notifier {
    Notifier::new()
        .channel(
            "hook",
            ChannelConfig::new(ChannelKind::Webhook, &webhook.url("/hook"))
                .unwrap()
                .with_secret("whsec-digest-0001")
                .unwrap(),
        )
        .channel(
            "ding",
            ChannelConfig::new(
                ChannelKind::DingTalk,
                &dingtalk.url("/robot/send?access_token=t"),
            )
            .unwrap(),
        )
        .public_url("https://ai-usage.example.com/")
}

fn weekly_monday_nine() -> DigestConfig {
    DigestConfig::from_json(
        &serde_json::json!({"schedule": "weekly", "weekday": "mon", "at": "09:00", "notify": ["hook", "ding"]}),
        ["hook", "ding"],
    )
    .unwrap()
}

fn amount_text(v: &serde_json::Value) -> ai_usage_core::Money {
    v.as_str()
        .expect("an exact decimal string")
        .parse()
        .unwrap()
}

#[test]
fn a_weekly_digest_due_monday_nine_is_delivered_once_with_the_weeks_figures() {
    let hook = Stub::start(vec![reply(200, "{}"), reply(200, "{}"), reply(200, "{}")]);
    let ding = Stub::start(vec![
        reply(200, r#"{"errcode":0,"errmsg":"ok"}"#),
        reply(200, r#"{"errcode":0,"errmsg":"ok"}"#),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let notifier = channels(&hook, &ding);
    let m = monitor(dir.path(), &notifier);
    m.add_budget(
        Budget::new(
            "每日总预算",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            money("50"),
            Currency::CNY,
        )
        .with_block_at(100),
    )
    .unwrap();
    record_two_weeks(&m);
    // One minute before Monday 09:00: the digest is not due yet (and the
    // week before's is more than half a week late: not posted either).
    let clock = TestClock::new(local("2026-11-30 08:59:00"));
    let queries: Arc<dyn UsageQueries> = m.clone();
    let digest = DigestThread::spawn_with_clock(
        weekly_monday_nine(),
        &notifier,
        Arc::clone(&queries),
        None,
        clock.clock(),
        Duration::from_millis(30),
    )
    .unwrap();
    wait_for("a first tick", || digest.status().latest_state.is_some());
    assert_eq!(digest.status().latest_state.as_deref(), Some("too_late"));
    assert!(hook.idle() && ding.idle(), "nothing is sent before 09:00");
    clock.set(local("2026-11-30 09:00:20"));
    wait_for("the digest entered", || {
        digest.status().latest_state.as_deref() == Some("entered")
    });
    let received = hook.next();
    let event = received.json();
    assert_eq!(event["type"], "usage.digest");
    assert_eq!(event["schedule"], "weekly");
    assert_eq!(
        (event["from"].as_str(), event["to"].as_str()),
        (Some("2026-11-23"), Some("2026-11-29"))
    );
    assert_eq!(event["previous_from"], "2026-11-16");
    // The week's figures are the query interface's answers, per currency.
    let (from, to) = ("2026-11-23".parse().unwrap(), "2026-11-29".parse().unwrap());
    let week = queries.range_summary(from, to).unwrap();
    let before = queries
        .range_summary("2026-11-16".parse().unwrap(), "2026-11-22".parse().unwrap())
        .unwrap();
    let costs = event["costs"].as_array().unwrap();
    assert_eq!(costs.len(), 2, "{costs:?}");
    for c in costs {
        let currency = Currency::new(c["currency"].as_str().unwrap()).unwrap();
        assert_eq!(amount_text(&c["cost"]), week.costs.get(currency));
        assert_eq!(amount_text(&c["previous"]), before.costs.get(currency));
    }
    assert_eq!(week.costs.get(Currency::CNY), money("6.873456789"));
    assert_eq!(week.costs.get(Currency::USD), money("0.42"));
    assert_eq!(event["calls"], week.total_calls);
    assert_eq!(event["previous_calls"], before.total_calls);
    for (field, kind) in [
        ("top_functions", RankKind::Function),
        ("top_models", RankKind::Model),
        ("top_anchors", RankKind::Anchor),
    ] {
        let expected = queries.top(kind, from, to, RankBy::Cost, 5).unwrap();
        let got = event[field].as_array().unwrap();
        assert_eq!(got.len(), expected.len(), "{field}");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g["id"], e.id.as_str(), "{field}");
            assert_eq!(g["calls"], e.calls, "{field}");
            for a in g["costs"].as_array().unwrap() {
                let currency = Currency::new(a["currency"].as_str().unwrap()).unwrap();
                assert_eq!(amount_text(&a["amount"]), e.costs.get(currency), "{field}");
            }
        }
    }
    assert_eq!(event["top_functions"][0]["id"], "实时分析");
    let budgets = event["budgets"].as_array().unwrap();
    assert_eq!(budgets[0]["name"], "每日总预算");
    assert_eq!(budgets[0]["block_at"], 100);
    assert_eq!(event["dashboard_url"], "https://ai-usage.example.com");
    // Signed like an alert.
    let signature = received.header("x-ai-usage-signature").unwrap();
    let expected = format!(
        "sha256={}",
        hex::encode(common::hmac_sha256(b"whsec-digest-0001", &received.body))
    );
    assert_eq!(signature, expected);
    // DingTalk got its markdown rendering, in Chinese by default.
    let d = ding.next().json();
    assert_eq!(d["msgtype"], "markdown");
    assert_eq!(
        d["markdown"]["title"],
        "AI 用量周报 2026-11-23 ~ 2026-11-29"
    );
    let text = d["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("- ¥6.8735（上周 ¥4.75，+44.70%）"), "{text}");
    assert!(text.contains("- $0.42（上周 $0.00，新增）"), "{text}");
    assert!(text.contains("**功能 Top**"), "{text}");
    // Later ticks of the same week send nothing more.
    clock.set(local("2026-12-02 15:00:00"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(hook.idle() && ding.idle(), "delivered once");
    let outbox = Outbox::path_in(dir.path());
    wait_for("both deliveries recorded", || {
        ai_usage_notify::outbox::read_entries(dir.path())
            .unwrap()
            .iter()
            .filter(|e| matches!(e.state, DeliveryState::Sent { .. }))
            .count()
            == 2
    });
    assert!(outbox.exists());
    // The notifier's health shows the digest.
    let health = m.health();
    let notify = health
        .companions
        .iter()
        .find(|c| c.name == "notify")
        .unwrap();
    assert_eq!(
        notify.details["digest"]["latest_period"],
        "2026-11-23~2026-11-29"
    );
    assert_eq!(notify.details["digest"]["latest_state"], "entered");
    assert_eq!(
        notify.details["digest"]["next_due"],
        "2026-12-07T09:00:00+08:00"
    );
    digest.stop();
    drop(queries);
    Arc::try_unwrap(m).ok().unwrap().shutdown().unwrap();

    // A restart after the due time (Monday 11:00): nothing is sent again.
    let notifier = channels(&hook, &ding);
    let m = monitor(dir.path(), &notifier);
    let clock = TestClock::new(local("2026-11-30 11:00:00"));
    let digest = DigestThread::spawn_with_clock(
        weekly_monday_nine(),
        &notifier,
        m.clone(),
        None,
        clock.clock(),
        Duration::from_millis(30),
    )
    .unwrap();
    wait_for("a first tick", || digest.status().latest_state.is_some());
    assert_eq!(digest.status().latest_state.as_deref(), Some("entered"));
    std::thread::sleep(Duration::from_millis(150));
    assert!(hook.idle() && ding.idle(), "a restart does not resend");
    // The next Monday's digest is the next one posted.
    clock.set(local("2026-12-07 09:00:00"));
    let next = hook.next().json();
    assert_eq!(next["from"], "2026-11-30");
    assert_ne!(next["id"], event["id"]);
    digest.stop();
}

#[test]
fn a_restart_after_the_due_time_delivers_a_pending_digest_once() {
    // The receiver is down when the digest is due; the process stops; the
    // restart (still Monday) delivers it once.
    let hook = Stub::start(vec![reply(503, "down"), reply(200, "{}"), reply(200, "{}")]);
    let ding = Stub::start(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        DigestConfig::from_json(
            &serde_json::json!({"schedule": "daily", "at": "09:00", "notify": ["hook"], "lang": "en"}),
            ["hook", "ding"],
        )
        .unwrap()
    };
    let slow_retries = ai_usage_notify::RetryPolicy {
        first_delay: Duration::from_secs(3600),
        max_delay: Duration::from_secs(3600),
        give_up_after: Duration::from_secs(24 * 3600),
    };
    {
        let notifier = channels(&hook, &ding).retry(slow_retries);
        let m = monitor(dir.path(), &notifier);
        record_two_weeks(&m);
        let clock = TestClock::new(local("2026-11-29 09:30:00"));
        let digest = DigestThread::spawn_with_clock(
            config(),
            &notifier,
            m.clone(),
            None,
            clock.clock(),
            Duration::from_millis(30),
        )
        .unwrap();
        let first = hook.next().json();
        assert_eq!(
            (first["from"].as_str(), first["to"].as_str()),
            (Some("2026-11-28"), Some("2026-11-28"))
        );
        digest.stop();
        Arc::try_unwrap(m).ok().unwrap().shutdown().unwrap();
    }
    let notifier = channels(&hook, &ding);
    let m = monitor(dir.path(), &notifier);
    let clock = TestClock::new(local("2026-11-29 12:00:00"));
    let digest = DigestThread::spawn_with_clock(
        config(),
        &notifier,
        m.clone(),
        None,
        clock.clock(),
        Duration::from_millis(30),
    )
    .unwrap();
    let again = hook.next().json();
    assert_eq!(again["from"], "2026-11-28");
    assert!(hook.idle(), "once");
    wait_for("the delivery recorded", || {
        m.health().companions.iter().any(|c| c.details["sent"] == 1)
    });
    digest.stop();
}

#[test]
fn a_digest_thread_needs_a_running_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(
        UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            .build()
            .unwrap(),
    );
    let notifier = Notifier::new();
    let err = DigestThread::spawn(weekly_monday_nine(), &notifier, m, None).unwrap_err();
    assert!(err.contains("running notifier"), "{err}");
}
