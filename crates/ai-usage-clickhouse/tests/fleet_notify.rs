//! Two hosts cross one budget together on the fleet's spend, each with a
//! notifier sending to the same receiver: one message in all (the claims
//! table picks the host, that host's outbox sends it once). A hard limit
//! refuses on the fleet's spend once the refresher has read it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ai_usage_clickhouse::{
    ClickHouseAlerts, ClickHouseExt, ClickHouseShipping, FleetBudgetRefresh, FleetQueries,
};
use ai_usage_core::{
    Budget, BudgetPeriod, BudgetScope, CallScope, Currency, Money, PricingTable, UsageEvent,
    UsageMonitor,
};
use ai_usage_notify::{ChannelConfig, ChannelKind, Notifier, RetryPolicy};
use common::Server;

fn money(s: &str) -> Money {
    s.parse().expect("amount")
}

/// A receiver answering 200 to every request and passing each body on.
fn receiver() -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut len) = (String::new(), 0);
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (addr, rx)
}

#[test]
fn two_hosts_crossing_one_budget_send_one_message() {
    let Some(server) = Server::start() else {
        return;
    };
    let db = "fleet_notify";
    let (hook, received) = receiver();
    let host = |dir: &Path, name: &str| {
        let mut shipping = ClickHouseShipping::new(server.endpoint(db));
        shipping.host_id = Some(name.into());
        shipping.poll = Duration::from_millis(50);
        let mut alerts = ClickHouseAlerts::new(server.endpoint(db));
        alerts.claimant = Some(name.into());
        alerts.interval = Duration::from_millis(200);
        alerts.settle = Duration::from_secs(1);
        let channel = ChannelConfig::new(ChannelKind::Webhook, &format!("http://{hook}/hook"))
            .expect("channel");
        let notifier = Notifier::new().channel("ops", channel).retry(RetryPolicy {
            first_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        });
        let m = UsageMonitor::builder()
            .dir(dir)
            .timezone("Asia/Shanghai".parse().expect("zone"))
            .replay(false)
            .clickhouse_shipping(shipping)
            .clickhouse_alerts(alerts)
            .companion(notifier)
            .build()
            .expect("monitor");
        m.add_budget(
            Budget::new(
                "fleet total",
                BudgetScope::Global,
                BudgetPeriod::Daily,
                money("10"),
                Currency::CNY,
            )
            .with_thresholds(vec![80])
            .with_notify(["ops"]),
        )
        .unwrap();
        m
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(dir_a.path(), "host-a");
    let b = host(dir_b.path(), "host-b");
    // 45 % on each host: neither crosses 80 % alone, the fleet does.
    for m in [&a, &b] {
        m.record(&UsageEvent::new("qwen-plus", "实时分析").cost(money("4.5")));
        m.flush().unwrap();
    }
    let body = received
        .recv_timeout(Duration::from_secs(60))
        .expect("one message from the fleet");
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["budget"], "fleet total");
    assert_eq!(event["threshold"], 80);
    // Both keep polling for a while: nothing more arrives.
    let quiet_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < quiet_until {
        assert!(
            received.recv_timeout(Duration::from_millis(200)).is_err(),
            "a second message"
        );
    }
    let sent: u64 = [&a, &b]
        .iter()
        .map(|m| {
            m.health()
                .companions
                .iter()
                .find(|c| c.name == "notify")
                .and_then(|c| c.details["sent"].as_u64())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(sent, 1);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[test]
fn a_hard_limit_refuses_on_the_fleets_spend() {
    let Some(server) = Server::start() else {
        return;
    };
    let db = "fleet_hard_limit";
    let zone: ai_usage_core::Zone = "Asia/Shanghai".parse().expect("zone");
    let host = |dir: &Path, name: &str| {
        let mut shipping = ClickHouseShipping::new(server.endpoint(db));
        shipping.host_id = Some(name.into());
        shipping.poll = Duration::from_millis(50);
        let m = UsageMonitor::builder()
            .dir(dir)
            .timezone(zone)
            .replay(false)
            .clickhouse_shipping(shipping)
            .build()
            .expect("monitor");
        m.add_budget(
            Budget::new(
                "anchor cap",
                BudgetScope::Anchor("a1".into()),
                BudgetPeriod::Daily,
                money("5"),
                Currency::CNY,
            )
            .with_block_at(100),
        )
        .unwrap();
        m
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(dir_a.path(), "host-a");
    let b = host(dir_b.path(), "host-b");
    let call = CallScope::new().anchor("a1");
    // 3 on each host: each is under its limit alone, the fleet is over.
    for m in [&a, &b] {
        m.record(
            &UsageEvent::new("qwen-plus", "实时分析")
                .anchor("a1")
                .cost(money("3")),
        );
        m.flush().unwrap();
    }
    assert!(a.check_budget(&call).is_ok(), "this host alone is under");
    let queries = FleetQueries::new(server.client(db), zone, PricingTable::builtin());
    let refresh =
        FleetBudgetRefresh::spawn(queries, a.budget_handle(), Duration::from_millis(200)).unwrap();
    let started = Instant::now();
    let refused = loop {
        if let Err(e) = a.check_budget(&call) {
            break e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the fleet's spend never refused"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.budget, "anchor cap");
    assert_eq!(refused.spent, money("6"));
    // Another anchor is not held.
    assert!(a.check_budget(&CallScope::new().anchor("a2")).is_ok());
    refresh.stop();
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// The digest's claims through the fleet's claims table.
struct FleetClaims(ai_usage_clickhouse::OnceClaims);

impl ai_usage_notify::DigestClaims for FleetClaims {
    fn claim(&self, period_label: &str) -> Result<bool, String> {
        self.0
            .claim("digest", period_label)
            .map_err(|e| e.to_string())
    }
}

#[test]
fn two_hosts_post_one_weekly_digest_with_the_fleets_figures() {
    let Some(server) = Server::start() else {
        return;
    };
    let db = "fleet_digest";
    let zone: ai_usage_core::Zone = "Asia/Shanghai".parse().expect("zone");
    let (hook, received) = receiver();
    let local = |t: &str| {
        zone.timestamp_of(
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").expect("time"),
        )
    };
    let host = |dir: &Path, name: &str| {
        let mut shipping = ClickHouseShipping::new(server.endpoint(db));
        shipping.host_id = Some(name.into());
        shipping.poll = Duration::from_millis(50);
        let channel = ChannelConfig::new(ChannelKind::Webhook, &format!("http://{hook}/hook"))
            .expect("channel");
        let notifier = Notifier::new().channel("ops", channel);
        let m = UsageMonitor::builder()
            .dir(dir)
            .timezone(zone)
            .replay(false)
            .clickhouse_shipping(shipping)
            .companion(notifier.clone())
            .build()
            .expect("monitor");
        (m, notifier)
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, notifier_a) = host(dir_a.path(), "host-a");
    let (b, notifier_b) = host(dir_b.path(), "host-b");
    // Each host spent in the week 2026-11-23 … 11-29.
    a.record(
        &UsageEvent::new("qwen-plus", "实时分析")
            .cost(money("4.5"))
            .at(local("2026-11-24 10:00:00")),
    );
    b.record(
        &UsageEvent::new("qwen-max", "话术生成")
            .cost(money("2.25"))
            .at(local("2026-11-28 21:00:00")),
    );
    a.flush().unwrap();
    b.flush().unwrap();
    let queries = FleetQueries::new(server.client(db), zone, PricingTable::builtin());
    let (from, to) = ("2026-11-23".parse().unwrap(), "2026-11-29".parse().unwrap());
    let started = Instant::now();
    while queries
        .range_summary(from, to)
        .map(|s| s.total_calls)
        .unwrap_or(0)
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "both hosts shipped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = || {
        ai_usage_notify::DigestConfig::from_json(
            &serde_json::json!({"schedule": "weekly", "weekday": "mon", "at": "09:00", "notify": ["ops"]}),
            ["ops"],
        )
        .unwrap()
    };
    let monday = local("2026-11-30 09:00:30");
    let digest = |notifier: &Notifier, name: &str| {
        let mut cfg = ClickHouseAlerts::new(server.endpoint(db));
        cfg.claimant = Some(name.into());
        cfg.settle = Duration::from_secs(1);
        ai_usage_notify::DigestThread::spawn_with_clock(
            config(),
            notifier,
            std::sync::Arc::new(queries.clone()),
            Some(std::sync::Arc::new(FleetClaims(
                ai_usage_clickhouse::OnceClaims::new(&cfg),
            ))),
            std::sync::Arc::new(move || monday),
            Duration::from_millis(100),
        )
        .expect("digest thread")
    };
    let (da, db_) = (digest(&notifier_a, "host-a"), digest(&notifier_b, "host-b"));
    let body = received
        .recv_timeout(Duration::from_secs(30))
        .expect("one digest from the fleet");
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "usage.digest");
    assert_eq!(event["from"], "2026-11-23");
    // The fleet's week: both hosts' spend.
    let cost: Money = event["costs"][0]["cost"].as_str().unwrap().parse().unwrap();
    assert_eq!(cost, money("6.75"));
    assert_eq!(event["calls"], 2);
    let quiet_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet_until {
        assert!(
            received.recv_timeout(Duration::from_millis(200)).is_err(),
            "a second digest"
        );
    }
    let states: Vec<Option<String>> = [&da, &db_]
        .iter()
        .map(|d| d.status().latest_state)
        .collect();
    assert!(
        states.contains(&Some("entered".into()))
            && states.contains(&Some("claimed_elsewhere".into())),
        "{states:?}"
    );
    da.stop();
    db_.stop();
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}
