//! `MonitorBuilder::clickhouse(..)` against a real ClickHouse server: an
//! application's monitor ships its own records on a background thread, its
//! `health()` shows the lag and the last error through an outage, and
//! shutting the monitor down stops the shipper (its lock is released).

mod common;

use std::time::{Duration, Instant};

use ai_usage_clickhouse::{ClickHouseExt, ClickHouseShipping, Shipper, ShipperConfig};
use ai_usage_core::{CompanionHealth, UsageEvent, UsageMonitor, Zone};
use common::Server;

const NOW: f64 = 1_761_500_000.0; // 2025-10-26 17:33 UTC

fn shipping_health(m: &UsageMonitor) -> CompanionHealth {
    let h = m.health();
    assert_eq!(h.companions.len(), 1, "{:?}", h.companions);
    h.companions[0].clone()
}

/// Polls the monitor's health until `done` holds (30 s at most).
fn wait_for(m: &UsageMonitor, what: &str, done: impl Fn(&CompanionHealth) -> bool) {
    let started = Instant::now();
    loop {
        let h = shipping_health(m);
        if done(&h) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: still {h:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn record(m: &UsageMonitor, from: u64, n: u64) {
    for i in from..from + n {
        m.record(
            &UsageEvent::new("qwen-plus", "实时分析")
                .tokens(100 + i, 10)
                .user("u1")
                .at(NOW + i as f64),
        );
    }
    m.flush().expect("flush");
}

#[test]
fn a_monitor_ships_its_records_in_the_background_and_shows_the_lag() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut shipping = ClickHouseShipping::new(server.endpoint("app"));
    shipping.host_id = Some("app-host".into());
    shipping.poll = Duration::from_millis(50);
    let zone: Zone = "Asia/Shanghai".parse().unwrap();
    let m = UsageMonitor::builder()
        .dir(dir.path())
        .timezone(zone)
        .replay(false)
        .clickhouse_shipping(shipping)
        .build()
        .unwrap();
    assert_eq!(shipping_health(&m).name, "clickhouse");
    record(&m, 0, 500);
    wait_for(&m, "first 500 shipped", |h| {
        h.details["shipped_records"] == 500 && h.details["lag_bytes"] == 0
    });
    assert!(shipping_health(&m).ok);
    let client = server.client("app");
    let rows = |c: &ai_usage_clickhouse::Client| {
        c.query_u64(&format!(
            "SELECT count() FROM {}.records WHERE host = 'app-host'",
            c.db()
        ))
        .unwrap()
    };
    assert_eq!(rows(&client), 500);

    // ClickHouse goes away: recording goes on, health shows lag and error.
    server.kill();
    record(&m, 500, 20);
    wait_for(&m, "the outage shows", |h| {
        !h.ok && !h.details["last_error"].is_null() && h.details["lag_bytes"].as_u64() > Some(0)
    });
    assert!(m.health().ok, "the records are safe on disk");
    server.spawn();
    wait_for(&m, "the rest shipped", |h| {
        h.ok && h.details["shipped_records"] == 520 && h.details["lag_bytes"] == 0
    });
    assert_eq!(rows(&client), 520);

    // Shutdown stops the shipper: no companion left, its lock released.
    m.shutdown().unwrap();
    assert!(m.health().companions.is_empty());
    let mut cfg = ShipperConfig::new(dir.path(), server.endpoint("app"));
    cfg.host_id = Some("app-host".into());
    let report = Shipper::open(cfg)
        .unwrap()
        .ship_all(Duration::from_secs(10))
        .unwrap();
    assert_eq!(report.records, 0, "everything was shipped once");
}
