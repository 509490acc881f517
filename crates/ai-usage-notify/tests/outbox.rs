//! The notifier wired to a monitor: a crossed threshold goes through the
//! outbox to a stub receiver, through failures, once.

mod common;

use std::time::{Duration, Instant};

use ai_usage_core::{Budget, BudgetPeriod, BudgetScope, Currency, UsageEvent, UsageMonitor};
use ai_usage_notify::{ChannelConfig, ChannelKind, DeliveryState, Notifier, Outbox, RetryPolicy};
use common::{hmac_sha256, money, reply, Stub};

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        give_up_after: Duration::from_secs(3600),
    }
}

fn monitor(dir: &std::path::Path, notifier: Notifier) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .replay(true)
        .companion(notifier)
        .build()
        .unwrap()
}

fn daily_budget() -> Budget {
    Budget::new(
        "每日总预算",
        BudgetScope::Global,
        BudgetPeriod::Daily,
        money("1"),
        Currency::CNY,
    )
    .with_thresholds([100])
    .with_notify(["ops"])
}

/// Waits until `f` holds (up to 10 s).
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_receiver_failing_twice_gets_exactly_one_message() {
    let stub = Stub::start(vec![
        reply(503, "busy"),
        reply(502, "bad gateway"),
        reply(200, "{}"),
        reply(200, "{}"),
    ]);
    let secret = "whsec-outbox-test-0001";
    let channel = ChannelConfig::new(ChannelKind::Webhook, &stub.url("/hook"))
        .unwrap()
        .with_secret(secret)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = monitor(
        dir.path(),
        Notifier::new()
            .channel("ops", channel)
            .retry(fast_retries()),
    );
    m.add_budget(daily_budget()).unwrap();
    // Crosses 100 % of ¥1; the next record is over it already (no new alert).
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("0.6")));
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("0.6")));
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("0.6")));
    let attempts: Vec<_> = (0..3).map(|_| stub.next()).collect();
    // Three attempts of one message: the same event id and body each time.
    let ids: Vec<String> = attempts
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let last = &attempts[2];
    assert_eq!(last.json()["budget"], "每日总预算");
    assert_eq!(last.json()["threshold"], 100);
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &last.body))
    );
    assert_eq!(last.header("x-ai-usage-signature"), Some(expected.as_str()));
    // Delivered once: no fourth request.
    assert!(stub.idle());
    wait_for("the outbox to record the delivery", || {
        Outbox::path_in(dir.path()).exists()
            && ai_usage_notify::outbox::read_entries(dir.path())
                .unwrap()
                .iter()
                .any(|d| matches!(d.state, DeliveryState::Sent { attempts: 3, .. }))
    });
    let h = m.health();
    let notify = h.companions.iter().find(|c| c.name == "notify").unwrap();
    assert!(notify.ok, "{notify:?}");
    assert_eq!(notify.details["sent"], 1);
    assert_eq!(notify.details["pending"], 0);
    // The secret shows nowhere in health.
    assert!(!serde_json::to_string(&h).unwrap().contains(secret));
    m.shutdown().unwrap();
}

#[test]
fn a_4xx_is_a_configuration_error_in_health_not_retried() {
    let stub = Stub::start(vec![reply(404, "no such hook"), reply(200, "{}")]);
    let channel = ChannelConfig::new(
        ChannelKind::WeCom,
        &stub.url("/cgi-bin/webhook/send?key=wecom-key-should-not-leak"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = monitor(
        dir.path(),
        Notifier::new()
            .channel("ops", channel)
            .retry(fast_retries()),
    );
    m.add_budget(daily_budget()).unwrap();
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("2")));
    stub.next();
    assert!(stub.idle(), "a 404 is not retried");
    wait_for("health to show the configuration error", || {
        m.health()
            .companions
            .iter()
            .any(|c| c.name == "notify" && !c.ok)
    });
    let h = m.health();
    let notify = h.companions.iter().find(|c| c.name == "notify").unwrap();
    let problems = notify.details["configuration_errors"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["channel"], "ops");
    assert!(
        problems[0]["error"].as_str().unwrap().contains("HTTP 404"),
        "{problems:?}"
    );
    assert!(!serde_json::to_string(&h)
        .unwrap()
        .contains("wecom-key-should-not-leak"));
    m.shutdown().unwrap();
}

#[test]
fn a_pending_delivery_is_resumed_by_the_next_process_and_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    // First process: the receiver is down (connection refused), so the
    // alert stays pending in the outbox when the process stops.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down);
    let refused = ChannelConfig::new(
        ChannelKind::Slack,
        &format!("http://{down_addr}/services/T/B/X"),
    )
    .unwrap();
    let m = monitor(
        dir.path(),
        Notifier::new()
            .channel("ops", refused)
            .retry(fast_retries()),
    );
    m.add_budget(daily_budget()).unwrap();
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("2")));
    wait_for("a failed attempt", || {
        m.health()
            .companions
            .iter()
            .any(|c| c.name == "notify" && !c.details["retrying"].as_array().unwrap().is_empty())
    });
    m.shutdown().unwrap();
    drop(m);
    assert_eq!(Outbox::open(dir.path()).unwrap().pending().len(), 1);

    // Second process: the receiver is up; the same budget is loaded again
    // (its threshold was crossed before: no new alert) and the pending
    // delivery goes out once.
    let stub = Stub::start(vec![reply(200, "ok"), reply(200, "ok")]);
    let up = ChannelConfig::new(ChannelKind::Slack, &stub.url("/services/T/B/X")).unwrap();
    let m = monitor(
        dir.path(),
        Notifier::new().channel("ops", up).retry(fast_retries()),
    );
    m.add_budget(daily_budget()).unwrap();
    m.record(&UsageEvent::new("qwen-plus", "f").cost(money("2")));
    let got = stub.next();
    assert!(got.json()["text"].as_str().unwrap().contains("每日总预算"));
    assert!(stub.idle());
    m.shutdown().unwrap();
}
