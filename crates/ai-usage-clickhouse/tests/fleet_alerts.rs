//! Budget alerts from the fleet's spend against a real ClickHouse server:
//! two hosts each below a threshold cross it together, and exactly one of
//! their pollers delivers it, once, across polls and restarts; the in-app
//! poller shows in health and waits out an outage; the claims table is
//! added to a v4 database by the v5 migration.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ai_usage_clickhouse::{
    schema, ClickHouseAlerts, ClickHouseExt, ClickHouseShipping, FleetAlerter, FleetQueries,
    Shipper, ShipperConfig, ALERTS_TABLE,
};
use ai_usage_core::{
    Budget, BudgetAlert, BudgetPeriod, BudgetScope, Currency, Money, PricingTable, UsageEvent,
    UsageMonitor, Zone,
};
use common::Server;

fn zone() -> Zone {
    "Asia/Shanghai".parse().expect("zone")
}

fn money(s: &str) -> Money {
    s.parse().expect("amount")
}

/// Four budgets crossing together: one race covers four keys.
fn budgets() -> Vec<Budget> {
    let daily = |name: &str, scope: BudgetScope| {
        Budget::new(name, scope, BudgetPeriod::Daily, money("10"), Currency::CNY)
            .with_thresholds(vec![50, 100])
    };
    vec![
        daily("total", BudgetScope::Global),
        daily("qwen", BudgetScope::Model("qwen-plus".into())),
        daily("anchor a1", BudgetScope::Anchor("a1".into())),
        Budget::new(
            "month",
            BudgetScope::Global,
            BudgetPeriod::Monthly,
            money("10"),
            Currency::CNY,
        )
        .with_thresholds(vec![50, 100]),
    ]
}

/// A host's monitor with the budgets, its per-record alerts off (the fleet
/// alerts), and what its callbacks received.
fn host_monitor(dir: &Path) -> (UsageMonitor, Arc<Mutex<Vec<BudgetAlert>>>) {
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .replay(false)
        .build()
        .expect("monitor");
    m.add_budgets(budgets()).expect("budgets");
    m.set_local_budget_alerts(false);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    m.on_budget_alert(move |a| s.lock().unwrap().push(a.clone()));
    (m, seen)
}

fn spend(m: &UsageMonitor, cost: &str) {
    m.record(
        &UsageEvent::new("qwen-plus", "实时分析")
            .anchor("a1")
            .cost(money(cost)),
    );
    m.flush().expect("flush");
}

fn ship(server: &Server, db: &str, dir: &Path, host: &str) {
    let mut cfg = ShipperConfig::new(dir, server.endpoint(db));
    cfg.host_id = Some(host.into());
    Shipper::open(cfg)
        .expect("shipper")
        .ship_all(Duration::from_secs(30))
        .expect("ship");
}

fn alerter(server: &Server, db: &str, claimant: &str) -> FleetAlerter {
    let mut cfg = ClickHouseAlerts::new(server.endpoint(db));
    cfg.claimant = Some(claimant.into());
    // 2 s: the check and the claim time out after 1 s on this shared machine.
    cfg.settle = Duration::from_secs(2);
    let queries = FleetQueries::new(server.client(db), zone(), PricingTable::builtin());
    FleetAlerter::new(queries, &cfg)
}

/// Both pollers poll at once (released together) and deliver what they won
/// through their own monitor; returns (budget, threshold) → deliverers.
fn race(pollers: &mut [(FleetAlerter, &UsageMonitor)]) -> BTreeMap<(String, u32), Vec<String>> {
    let barrier = Barrier::new(pollers.len());
    let list = budgets();
    let won: Vec<(String, Vec<BudgetAlert>)> = std::thread::scope(|s| {
        let handles: Vec<_> = pollers
            .iter_mut()
            .map(|(p, m)| {
                let (barrier, list) = (&barrier, &list);
                s.spawn(move || {
                    barrier.wait();
                    let alerts = p.poll(list).expect("poll");
                    m.deliver_budget_alerts(&alerts);
                    (p.claimant().to_string(), alerts)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_key: BTreeMap<(String, u32), Vec<String>> = BTreeMap::new();
    for (who, alerts) in won {
        for a in alerts {
            by_key
                .entry((a.budget.clone(), a.threshold))
                .or_default()
                .push(who.clone());
        }
    }
    by_key
}

/// Every key's winner by the claims table's rule: smallest (claimed_at, host).
fn table_winners(server: &Server, db: &str) -> BTreeMap<(String, u32), String> {
    let c = server.client(db);
    let rows = c
        .query_rows(&format!(
            "SELECT budget, threshold, host FROM {}.{ALERTS_TABLE} \
             ORDER BY budget, threshold, claimed_at, host LIMIT 1 BY budget, threshold",
            c.db()
        ))
        .unwrap();
    rows.into_iter()
        .map(|r| ((r[0].clone(), r[1].parse().unwrap()), r[2].clone()))
        .collect()
}

#[test]
fn two_hosts_cross_together_and_exactly_one_poller_delivers_each_threshold_once() {
    let Some(server) = Server::start() else {
        return;
    };
    let db = "alerts";
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ma, seen_a) = host_monitor(dir_a.path());
    let (mb, seen_b) = host_monitor(dir_b.path());
    // 3 + 3 of 10: each host 30 %, the fleet 60 % (every budget's 50 %).
    spend(&ma, "3");
    spend(&mb, "3");
    ship(&server, db, dir_a.path(), "host-a");
    ship(&server, db, dir_b.path(), "host-b");
    assert!(seen_a.lock().unwrap().is_empty() && seen_b.lock().unwrap().is_empty());
    assert_eq!(ma.budget_status()[0].thresholds_fired, Vec::<u32>::new());

    let mut pollers = [
        (alerter(&server, db, "host-a"), &ma),
        (alerter(&server, db, "host-b"), &mb),
    ];
    let delivered = race(&mut pollers);
    let names: Vec<(String, u32)> = budgets().iter().map(|b| (b.name.clone(), 50)).collect();
    assert_eq!(
        delivered.keys().cloned().collect::<Vec<_>>(),
        {
            let mut n = names.clone();
            n.sort();
            n
        },
        "every budget's 50 %, nothing else"
    );
    let winners = table_winners(&server, db);
    for (key, who) in &delivered {
        assert_eq!(who.len(), 1, "{key:?} delivered by {who:?}");
        assert_eq!(
            &winners[key], &who[0],
            "{key:?}: the table's winner delivered"
        );
    }
    let all: Vec<BudgetAlert> = seen_a
        .lock()
        .unwrap()
        .iter()
        .chain(seen_b.lock().unwrap().iter())
        .cloned()
        .collect();
    assert_eq!(all.len(), 4, "one delivery per budget across both monitors");
    let local_sum = ma.budget_status()[0].spent + mb.budget_status()[0].spent;
    assert_eq!(local_sum, money("6"));
    for a in &all {
        assert_eq!(
            a.spent, local_sum,
            "{a:?}: the fleet's spend, the hosts' sum"
        );
        assert_eq!((a.percent, a.currency), (60.0, Currency::CNY));
        assert!(a.model.is_empty() && a.function.is_empty(), "{a:?}");
        assert!((ai_usage_core::now_timestamp() - a.timestamp).abs() < 120.0);
    }

    // Polled again, and after a restart (a new poller, nothing in memory):
    // the claims are durable, nothing is delivered again.
    assert!(race(&mut pollers).is_empty());
    let mut restarted = [
        (alerter(&server, db, "host-a-restarted"), &ma),
        (alerter(&server, db, "host-b"), &mb),
    ];
    assert!(race(&mut restarted).is_empty());
    assert_eq!(
        seen_a.lock().unwrap().len() + seen_b.lock().unwrap().len(),
        4
    );

    // Later host B alone takes the fleet over 100 %: delivered once.
    spend(&mb, "5");
    ship(&server, db, dir_b.path(), "host-b");
    let delivered = race(&mut restarted);
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    let winners = table_winners(&server, db);
    for (key, who) in &delivered {
        assert_eq!(key.1, 100);
        assert_eq!(who.len(), 1, "{key:?} delivered by {who:?}");
        assert_eq!(&winners[key], &who[0]);
    }
    let all: Vec<BudgetAlert> = seen_a
        .lock()
        .unwrap()
        .iter()
        .chain(seen_b.lock().unwrap().iter())
        .cloned()
        .collect();
    assert_eq!(all.len(), 8);
    assert!(all
        .iter()
        .filter(|a| a.threshold == 100)
        .all(|a| a.spent == money("11")));
    assert!(race(&mut restarted).is_empty());
    assert!(race(&mut pollers).is_empty());
    assert_eq!(
        seen_a.lock().unwrap().len() + seen_b.lock().unwrap().len(),
        8
    );
    // The local per-record check never fired (it is off on both hosts).
    assert!(!ma.local_budget_alerts() && !mb.local_budget_alerts());
}

/// Polls the monitor's alert companion's health until `done` holds.
fn wait_for(m: &UsageMonitor, what: &str, done: impl Fn(&serde_json::Value, bool) -> bool) {
    let started = Instant::now();
    loop {
        let h = m.health();
        let c = h
            .companions
            .iter()
            .find(|c| c.name == "clickhouse-alerts")
            .expect("the alert companion");
        if done(&c.details, c.ok) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: still {c:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn in_app_pollers_deliver_once_show_in_health_and_wait_out_an_outage() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let db = "in_app_alerts";
    let app = |dir: &Path, host: &str| {
        let mut shipping = ClickHouseShipping::new(server.endpoint(db));
        shipping.host_id = Some(host.into());
        shipping.poll = Duration::from_millis(50);
        let mut alerts = ClickHouseAlerts::new(server.endpoint(db));
        alerts.claimant = Some(host.into());
        alerts.interval = Duration::from_millis(200);
        alerts.settle = Duration::from_secs(1);
        let m = UsageMonitor::builder()
            .dir(dir)
            .timezone(zone())
            .replay(false)
            .clickhouse_shipping(shipping)
            .clickhouse_alerts(alerts)
            .build()
            .expect("monitor");
        m.add_budget(
            Budget::new(
                "total",
                BudgetScope::Global,
                BudgetPeriod::Daily,
                money("10"),
                Currency::CNY,
            )
            .with_thresholds(vec![80]),
        )
        .unwrap();
        let seen = Arc::new(Mutex::new(Vec::<BudgetAlert>::new()));
        let s = Arc::clone(&seen);
        m.on_budget_alert(move |a| s.lock().unwrap().push(a.clone()));
        (m, seen)
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ma, seen_a) = app(dir_a.path(), "app-a");
    let (mb, seen_b) = app(dir_b.path(), "app-b");
    assert!(!ma.local_budget_alerts(), "the companion turned them off");
    wait_for(&ma, "a first poll", |d, ok| {
        ok && d["polls"].as_u64() > Some(0)
    });
    // 45 % on each host, 90 % for the fleet.
    spend(&ma, "4.5");
    spend(&mb, "4.5");
    let total = || seen_a.lock().unwrap().len() + seen_b.lock().unwrap().len();
    let started = Instant::now();
    while total() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no fleet alert"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Several more polls of both: still one.
    let polls = |m: &UsageMonitor| {
        m.health()
            .companions
            .iter()
            .find(|c| c.name == "clickhouse-alerts")
            .and_then(|c| c.details["polls"].as_u64())
            .unwrap_or(0)
    };
    let (pa, pb) = (polls(&ma), polls(&mb));
    wait_for(&ma, "three more polls", |d, _| {
        d["polls"].as_u64() >= Some(pa + 3)
    });
    wait_for(&mb, "three more polls", |d, _| {
        d["polls"].as_u64() >= Some(pb + 3)
    });
    assert_eq!(total(), 1);
    let alert = seen_a
        .lock()
        .unwrap()
        .iter()
        .chain(seen_b.lock().unwrap().iter())
        .next()
        .cloned()
        .unwrap();
    assert_eq!((alert.threshold, alert.spent), (80, money("9")));
    let delivered: u64 = [&ma, &mb]
        .iter()
        .map(|m| {
            m.health()
                .companions
                .iter()
                .find(|c| c.name == "clickhouse-alerts")
                .and_then(|c| c.details["delivered"].as_u64())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(delivered, 1);

    // ClickHouse goes away: the poll error shows, recording goes on.
    server.kill();
    wait_for(&ma, "the outage shows", |d, ok| {
        !ok && d["last_error"].is_string() && d["running"] == true
    });
    spend(&ma, "0.1");
    assert_eq!(ma.budget_status()[0].spent, money("4.6"));
    server.spawn();
    wait_for(&ma, "polling again", |d, ok| {
        ok && d["last_error"].is_null()
    });
    assert_eq!(total(), 1, "nothing delivered again after the outage");
    ma.shutdown().unwrap();
    mb.shutdown().unwrap();
    assert!(ma.health().companions.is_empty());
}

/// Waits until `host` has `n` claims in the table.
fn wait_for_claims(server: &Server, db: &str, host: &str, n: u64) {
    let c = server.client(db);
    let started = Instant::now();
    while c
        .query_u64(&format!(
            "SELECT count() FROM {}.{ALERTS_TABLE} WHERE host = '{host}'",
            c.db()
        ))
        .unwrap_or(0)
        < n
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no claim by {host}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_rival_claim_arriving_during_the_settle_delay_decides_who_delivers() {
    let Some(server) = Server::start() else {
        return;
    };
    let db = "rivals";
    let dir = tempfile::tempdir().unwrap();
    let (m, seen) = host_monitor(dir.path());
    spend(&m, "6");
    ship(&server, db, dir.path(), "h");
    let c = server.client(db);
    let cdb = c.db();
    let mut cfg = ClickHouseAlerts::new(server.endpoint(db));
    cfg.claimant = Some("poller".into());
    cfg.settle = Duration::from_secs(2);
    let queries = FleetQueries::new(server.client(db), zone(), PricingTable::builtin());
    let mut p = FleetAlerter::new(queries.clone(), &cfg);
    let list = budgets();
    // While the poller settles, rivals claim two keys: one stamped a second
    // before the poller's claim (it wins), one a second after (it loses).
    let alerts = std::thread::scope(|s| {
        let polling = s.spawn(|| p.poll(&list).expect("poll"));
        wait_for_claims(&server, db, "poller", 4);
        c.execute(&format!(
            "INSERT INTO {cdb}.{ALERTS_TABLE} (budget, period_label, threshold, host, claimed_at,              spent_nanos, currency) SELECT budget, period_label, threshold, 'zz-early',              claimed_at - 1, spent_nanos, currency FROM {cdb}.{ALERTS_TABLE}              WHERE host = 'poller' AND budget = 'total'"
        ))
        .unwrap();
        c.execute(&format!(
            "INSERT INTO {cdb}.{ALERTS_TABLE} (budget, period_label, threshold, host, claimed_at,              spent_nanos, currency) SELECT budget, period_label, threshold, 'aa-late',              claimed_at + 1, spent_nanos, currency FROM {cdb}.{ALERTS_TABLE}              WHERE host = 'poller' AND budget = 'qwen'"
        ))
        .unwrap();
        polling.join().unwrap()
    });
    let mut won: Vec<String> = alerts.iter().map(|a| a.budget.clone()).collect();
    won.sort();
    assert_eq!(
        won,
        vec!["anchor a1", "month", "qwen"],
        "`total` went to the earlier rival"
    );
    // A key someone already claimed is skipped without claiming.
    m.deliver_budget_alerts(&alerts);
    assert_eq!(seen.lock().unwrap().len(), 3);
    let mut fresh = FleetAlerter::new(queries, &cfg);
    assert!(fresh.poll(&list).unwrap().is_empty());
    assert_eq!(
        c.query_u64(&format!("SELECT count() FROM {cdb}.{ALERTS_TABLE}"))
            .unwrap(),
        6,
        "four claims by the poller, two by the rivals, none by the fresh poller"
    );
}

#[test]
fn v5_adds_the_claims_table_to_a_v4_database_and_keeps_its_rows() {
    let Some(server) = Server::start() else {
        return;
    };
    let c = server.client("from_v4");
    let db = c.db();
    schema::migrate_in(&c, &zone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = host_monitor(dir.path());
    spend(&m, "1");
    spend(&m, "2");
    ship(&server, "from_v4", dir.path(), "h");
    // Make it a v4 database: no claims table, version 4.
    c.execute(&format!("DROP TABLE {db}.{ALERTS_TABLE}"))
        .unwrap();
    c.execute(&format!("DROP TABLE {db}.schema_version"))
        .unwrap();
    c.execute(&format!(
        "CREATE TABLE {db}.schema_version (version UInt32, applied_at DateTime DEFAULT now()) \
         ENGINE = TinyLog"
    ))
    .unwrap();
    c.execute(&format!(
        "INSERT INTO {db}.schema_version (version) VALUES (4)"
    ))
    .unwrap();
    let tables = |c: &ai_usage_clickhouse::Client| {
        c.query_u64(&format!(
            "SELECT count() FROM system.tables WHERE database = '{}' AND name = '{ALERTS_TABLE}'",
            c.endpoint().database()
        ))
        .unwrap()
    };
    assert_eq!(tables(&c), 0);
    assert_eq!(schema::migrate_in(&c, &zone()).unwrap(), 4);
    assert_eq!(schema::current_version(&c).unwrap(), schema::SCHEMA_VERSION);
    assert_eq!(tables(&c), 1);
    let create = c
        .query_rows(&format!("SHOW CREATE TABLE {db}.{ALERTS_TABLE}"))
        .unwrap();
    assert!(
        create[0][0].contains("ORDER BY (budget, period_label, threshold)"),
        "{create:?}"
    );
    // Idempotent, and the v4 rows are untouched (nothing copied twice).
    assert_eq!(
        schema::migrate_in(&c, &zone()).unwrap(),
        schema::SCHEMA_VERSION
    );
    let fleet = FleetQueries::new(c.clone(), zone(), PricingTable::builtin());
    let today = fleet.summary_for_date(zone().today()).unwrap();
    assert_eq!(
        (today.total_calls, today.costs.get(Currency::CNY)),
        (2, money("3"))
    );
    // The claims table takes a claim with the server's clock.
    c.execute(&format!(
        "INSERT INTO {db}.{ALERTS_TABLE} (budget, period_label, threshold, host, spent_nanos, \
         currency) VALUES ('total', '2026-11-28', 80, 'h', 1, 'CNY')"
    ))
    .unwrap();
    assert_eq!(
        c.query_u64(&format!(
            "SELECT count() FROM {db}.{ALERTS_TABLE} WHERE claimed_at > toDateTime('2020-01-01 00:00:00')"
        ))
        .unwrap(),
        1
    );
}

#[test]
fn a_digest_claimed_by_two_hosts_at_once_is_posted_by_one_and_never_again() {
    let Some(server) = Server::start() else {
        return;
    };
    let db = "digest_claims";
    schema::migrate_in(&server.client(db), &zone()).expect("schema");
    let claims = |who: &str| {
        let mut cfg = ClickHouseAlerts::new(server.endpoint(db));
        cfg.claimant = Some(who.into());
        cfg.settle = Duration::from_secs(1);
        ai_usage_clickhouse::OnceClaims::new(&cfg)
    };
    let week = "2026-11-23~2026-11-29";
    let (a, b) = (claims("host-a"), claims("host-b"));
    let start = Barrier::new(2);
    let (won_a, won_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| {
            start.wait();
            a.claim("digest", week).expect("claim a")
        });
        let tb = s.spawn(|| {
            start.wait();
            b.claim("digest", week).expect("claim b")
        });
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert!(
        won_a ^ won_b,
        "exactly one host posts it: a={won_a} b={won_b}"
    );
    // A restarted host (a new claimant id) finds the claim: not posted again.
    assert!(!claims("host-a-restarted").claim("digest", week).unwrap());
    // The next week is a new key.
    assert!(claims("host-b")
        .claim("digest", "2026-11-30~2026-12-06")
        .unwrap());
    // The digest's claims do not collide with a budget alert's keys.
    let c = server.client(db);
    let rows = c
        .query_u64(&format!(
            "SELECT count() FROM {}.{ALERTS_TABLE} WHERE budget = 'digest' AND threshold = 0",
            c.db()
        ))
        .unwrap();
    assert!(rows >= 2, "{rows}");
}
