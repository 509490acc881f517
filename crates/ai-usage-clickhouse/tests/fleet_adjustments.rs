//! Cost corrections on the fleet, against a real ClickHouse server:
//! yesterday's unpriced calls of two hosts, re-priced on each host
//! (`reprice --only-unpriced`, through the same core function the CLI runs)
//! and shipped, make the fleet answer what the hosts answer together; a
//! second ship, even without its checkpoint, adds nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use ai_usage_clickhouse::{FleetQueries, CHECKPOINT_FILE};
use ai_usage_core::adjustments::{plan_reprice, RepriceScope};
use ai_usage_core::{
    Budget, BudgetPeriod, BudgetScope, BudgetStatus, Currency, ModelPrice, Money, PricingTable,
    RankBy, RankKind, UsageEvent, UsageMonitor, UsageQueries, UsageSummary, Zone,
};
use common::scenario::*;
use common::Server;

/// A model the built-in prices do not know (recorded unpriced).
const NEW_MODEL: &str = "acme-nova-1";

/// Demo calls up to now, and unpriced calls of [`NEW_MODEL`] yesterday
/// (users, anchors, a session); returns how many unpriced calls.
fn write_host(dir: &Path, seed: u64, now: f64) -> u64 {
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .replay(false)
        .build()
        .unwrap();
    ai_usage_core::demo::generate_at(&m, 4, seed, now, None);
    let today = zone().date_of(now);
    let yesterday = zone().day_bounds(today - chrono::Duration::days(1)).0;
    let n = 20 + seed;
    for i in 0..n {
        let user = format!("nova-user-{}", i % 3);
        let anchor = format!("nova-anchor-{}", i % 2);
        let session = format!("nova-session-{seed}");
        m.record(
            &UsageEvent::new(NEW_MODEL, "新模型试用")
                .tokens(1000 + i * 17, 200 + i)
                .user(&user)
                .anchor(&anchor)
                .session(&session)
                .at(yesterday + 3600.0 * 2.0 + i as f64 * 977.0),
        );
    }
    m.shutdown().unwrap();
    n
}

/// The bytes of every usage file of `dir`, by name.
fn usage_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("usage_"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `reprice --only-unpriced` over the last week with `pricing`; returns
/// how many adjustments it wrote.
fn reprice(dir: &Path, pricing: &PricingTable, now: f64) -> usize {
    let today = zone().date_of(now);
    let scope = RepriceScope {
        from: today - chrono::Duration::days(7),
        to: today,
        only_unpriced: true,
        model: None,
    };
    let plan = plan_reprice(dir, pricing, &scope, chrono::Utc::now()).unwrap();
    plan.write(dir).unwrap();
    plan.len()
}

/// The parts of a summary both sources compute from the same groups.
fn digest(s: &UsageSummary) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        (s.total_calls, s.total_tokens, s.unpriced_calls),
        &s.costs,
        &s.by_model,
        &s.by_function,
        &s.by_user,
        &s.by_anchor,
        s.groups_truncated,
    )
}

fn strip(v: Vec<BudgetStatus>) -> Vec<BudgetStatus> {
    v.into_iter()
        .map(|mut s| {
            // Projected from "now", read a moment apart.
            s.projected_end_of_period = Money::ZERO;
            s
        })
        .collect()
}

/// The data rows of a CSV export.
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::Reader::from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

fn adjustment_rows(server: &Server) -> u64 {
    let c = server.client("fleet");
    let rows = c
        .query_rows(&format!("SELECT count() FROM {}.adjustments", c.db()))
        .unwrap();
    rows[0][0].parse().unwrap()
}

#[test]
fn repriced_calls_reach_the_fleet_once_and_it_answers_as_the_hosts() {
    let Some(server) = Server::start() else {
        return;
    };
    let now = ai_usage_core::now_timestamp();
    let (a, b, both) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let unpriced = write_host(a.path(), 5, now) + write_host(b.path(), 6, now);
    ai_usage_clickhouse::schema::migrate_in(&server.client("fleet"), &zone()).unwrap();
    let mut sa = shipper(&server, "fleet", a.path(), "host-a");
    let mut sb = shipper(&server, "fleet", b.path(), "host-b");
    for s in [&mut sa, &mut sb] {
        let r = s.ship_all(Duration::from_secs(10)).unwrap();
        assert!(r.records > 0);
        assert_eq!(r.adjustments, 0);
    }
    let fleet = FleetQueries::new(server.client("fleet"), zone(), PricingTable::builtin());
    let before = fleet.daily_summary(1).unwrap();
    assert!(before.unpriced_calls >= unpriced, "recorded unpriced");

    // The price arrives; each host re-prices its history.
    let mut pricing = PricingTable::builtin();
    pricing.register(
        NEW_MODEL,
        ModelPrice::flat("Acme Nova 1", Currency::USD, 0.003, 0.015),
    );
    let files_before = (usage_files(a.path()), usage_files(b.path()));
    let written = reprice(a.path(), &pricing, now) + reprice(b.path(), &pricing, now);
    assert_eq!(written as u64, unpriced, "one adjustment per unpriced call");
    assert_eq!(
        (usage_files(a.path()), usage_files(b.path())),
        files_before,
        "usage files untouched"
    );
    let mut shipped = 0;
    for s in [&mut sa, &mut sb] {
        let r = s.ship_all(Duration::from_secs(10)).unwrap();
        assert_eq!((r.records, r.lag_bytes, r.skipped_lines), (0, 0, 0));
        shipped += r.adjustments;
    }
    assert_eq!(shipped, unpriced);
    assert_eq!(adjustment_rows(&server), unpriced);

    // The hosts together, as one local monitor sees them; and a copy of
    // each, for its own records export.
    merge_dirs(&[a.path(), b.path()], both.path());
    let copies = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    merge_dirs(&[a.path()], copies[0].path());
    merge_dirs(&[b.path()], copies[1].path());
    let budgets = vec![
        Budget::new(
            "all",
            BudgetScope::Global,
            BudgetPeriod::Monthly,
            Money::from_micros(50_000_000),
            Currency::USD,
        ),
        Budget::new(
            "nova",
            BudgetScope::Model(NEW_MODEL.into()),
            BudgetPeriod::Monthly,
            Money::from_micros(1_000_000),
            Currency::USD,
        ),
        Budget::new(
            "one-user",
            BudgetScope::User("nova-user-1".into()),
            BudgetPeriod::Monthly,
            Money::from_micros(1_000_000),
            Currency::USD,
        ),
    ];
    // The Shanghai days are the per-day tables'; UTC's are not (raw rows
    // answer users and anchors); Kolkata's days start on half hours (raw
    // rows answer everything by quarter hours).
    let zones: [Zone; 3] = [
        zone(),
        "UTC".parse().unwrap(),
        "Asia/Kolkata".parse().unwrap(),
    ];
    let check = |z: Zone, label: &str| {
        let label = format!("{label} in {z}");
        // Both with the prices in force after the update.
        let local = UsageMonitor::builder()
            .dir(both.path())
            .timezone(z)
            .retention_days(3660)
            .pricing(pricing.clone())
            .replay(true)
            .build()
            .unwrap();
        local.add_budgets(budgets.clone()).unwrap();
        let local: Box<dyn UsageQueries> = Box::new(local);
        let fleet: Box<dyn UsageQueries> = Box::new(
            FleetQueries::new(server.client("fleet"), z, pricing.clone())
                .with_budgets(budgets.clone()),
        );
        let (l, f) = (
            local.daily_summary(1).unwrap(),
            fleet.daily_summary(1).unwrap(),
        );
        if z == zone() {
            assert_eq!(
                l.unpriced_calls + unpriced,
                before.unpriced_calls,
                "{label}"
            );
        }
        assert!(l.by_model[NEW_MODEL].cost > Money::ZERO, "{label}");
        assert_eq!(digest(&f), digest(&l), "yesterday, {label}");
        let (from, to) = local.last_days(7);
        let (f, l) = (
            fleet.range_summary(from, to).unwrap(),
            local.range_summary(from, to).unwrap(),
        );
        assert_eq!(digest(&f), digest(&l), "week, {label}");
        let yesterday = to - chrono::Duration::days(1);
        for hour in [2, 5] {
            let (f, l) = (
                fleet.summary_for_hour(yesterday, hour).unwrap(),
                local.summary_for_hour(yesterday, hour).unwrap(),
            );
            assert_eq!(digest(&f), digest(&l), "hour {hour}, {label}");
        }
        for kind in [
            RankKind::User,
            RankKind::Anchor,
            RankKind::Model,
            RankKind::Function,
        ] {
            assert_eq!(
                fleet.top(kind, from, to, RankBy::Cost, 0).unwrap(),
                local.top(kind, from, to, RankBy::Cost, 0).unwrap(),
                "{kind:?}, {label}"
            );
        }
        assert_eq!(
            fleet.trend(from, to).unwrap(),
            local.trend(from, to).unwrap(),
            "{label}"
        );
        assert_eq!(
            fleet.daily_csv(from, to, false).unwrap(),
            local.daily_csv(from, to, false).unwrap(),
            "{label}"
        );
        assert_eq!(
            strip(fleet.budget_status().unwrap()),
            strip(local.budget_status().unwrap()),
            "{label}"
        );
        assert_eq!(
            fleet.savings_between(from, to).unwrap(),
            local.savings_between(from, to).unwrap(),
            "{label}"
        );
        let (mut fd, mut ld) = (fleet.dashboard().unwrap(), local.dashboard().unwrap());
        fd.generated_at.clear();
        ld.generated_at.clear();
        assert_eq!(fd, ld, "{label}");
        // The records CSV: every host's export (a call at its corrected
        // cost) is in the fleet's, cell for cell (the order across hosts
        // is pinned by the fleet report tests).
        let mut want = Vec::new();
        for (i, host) in copies.iter().enumerate() {
            let m = UsageMonitor::builder()
                .dir(host.path())
                .timezone(z)
                .pricing(pricing.clone())
                .replay(false)
                .build()
                .unwrap();
            let path = m
                .export_records_csv(Some(&host.path().join(format!("{i}.csv"))), from, to, false)
                .unwrap();
            want.extend(csv_rows(&std::fs::read(path).unwrap()));
        }
        let mut fleet_csv = Vec::new();
        fleet
            .write_records_csv(from, to, false, &mut fleet_csv)
            .unwrap();
        let mut got = csv_rows(&fleet_csv);
        assert!(
            got.iter().any(|r| r.contains(&NEW_MODEL.to_string())),
            "{label}"
        );
        want.sort();
        got.sort();
        assert_eq!(got, want, "records CSV, {label}");
        for session in ["nova-session-5", "nova-session-6"] {
            let (fs, ls) = (
                fleet.session(session).unwrap().unwrap(),
                local.session(session).unwrap().unwrap(),
            );
            assert!(ls.costs.get(Currency::USD) > Money::ZERO, "{label}");
            assert_eq!(fs, ls, "{session}, {label}");
        }
    };
    for z in zones {
        check(z, "after one ship");
    }

    // Shipping again adds nothing: same shipper, then a fresh one without
    // its checkpoint (the server's offsets stop a re-send).
    assert_eq!(sa.ship_all(Duration::from_secs(5)).unwrap().adjustments, 0);
    drop(sa);
    std::fs::remove_file(a.path().join(CHECKPOINT_FILE)).unwrap();
    let mut fresh = shipper(&server, "fleet", a.path(), "host-a");
    let r = fresh.ship_all(Duration::from_secs(5)).unwrap();
    assert_eq!((r.records, r.adjustments), (0, 0));
    assert_eq!(adjustment_rows(&server), unpriced);
    // A second reprice with the same prices writes nothing.
    assert_eq!(reprice(a.path(), &pricing, now), 0);
    for z in zones {
        check(z, "after a re-ship");
    }
}

/// A v5 database (no `adjustments`) upgrades to v6 in place: the table
/// comes, the records stay, and the corrections then ship.
#[test]
fn a_v5_database_gains_the_adjustments_table() {
    let Some(server) = Server::start() else {
        return;
    };
    let c = server.client("from_v5");
    let db = c.db();
    ai_usage_clickhouse::schema::migrate_in(&c, &zone()).unwrap();
    let now = ai_usage_core::now_timestamp();
    let dir = tempfile::tempdir().unwrap();
    let unpriced = write_host(dir.path(), 1, now);
    let records = shipper(&server, "from_v5", dir.path(), "h")
        .ship_all(Duration::from_secs(10))
        .unwrap()
        .records;
    // Make it a v5 database.
    for sql in [
        format!("DROP TABLE {db}.adjustments"),
        format!("DROP TABLE {db}.schema_version"),
        format!(
            "CREATE TABLE {db}.schema_version (version UInt32, applied_at DateTime DEFAULT \
             now()) ENGINE = TinyLog"
        ),
        format!("INSERT INTO {db}.schema_version (version) VALUES (5)"),
    ] {
        c.execute(&sql).unwrap();
    }
    let count = |sql: &str| -> u64 { c.query_u64(sql).unwrap() };
    let has_table =
        "SELECT count() FROM system.tables WHERE database = 'from_v5' AND name = 'adjustments'";
    assert_eq!(count(has_table), 0);
    assert_eq!(
        ai_usage_clickhouse::schema::migrate_in(&c, &zone()).unwrap(),
        5
    );
    assert_eq!(
        ai_usage_clickhouse::schema::current_version(&c).unwrap(),
        ai_usage_clickhouse::schema::SCHEMA_VERSION
    );
    assert_eq!(count(has_table), 1);
    assert_eq!(count(&format!("SELECT count() FROM {db}.records")), records);
    let mut pricing = PricingTable::builtin();
    pricing.register(
        NEW_MODEL,
        ModelPrice::flat("Acme Nova 1", Currency::USD, 0.003, 0.015),
    );
    assert_eq!(reprice(dir.path(), &pricing, now) as u64, unpriced);
    let r = shipper(&server, "from_v5", dir.path(), "h")
        .ship_all(Duration::from_secs(10))
        .unwrap();
    assert_eq!((r.records, r.adjustments), (0, unpriced));
}
