//! The fleet against a real ClickHouse server: two hosts' day files shipped
//! to one server answer exactly what the hosts answer together; re-shipping,
//! outages and killed shippers never lose or duplicate a record; corrupt
//! lines are skipped and counted; the schema migrates from empty and from v1.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_usage_clickhouse::{schema, Client, FleetQueries, Shipper, ShipperConfig};
use ai_usage_core::{
    Budget, BudgetPeriod, BudgetScope, Costs, Currency, GroupSummary, Money, PricingTable, RankBy,
    RankKind, UsageEvent, UsageMonitor, UsageSummary, Zone,
};
use chrono::NaiveDate;
use common::Server;

/// A fixed "now" so the demo data is the same on every run.
const NOW: f64 = 1_761_500_000.0; // 2025-10-26 17:33 UTC

fn zone() -> Zone {
    "Asia/Shanghai".parse().expect("zone")
}

fn local_monitor(dir: &Path) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .retention_days(3660)
        .replay(true)
        .build()
        .expect("monitor")
}

fn write_demo(dir: &Path, days: u32, seed: u64) -> u64 {
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .replay(false)
        .build()
        .expect("monitor");
    let stats = ai_usage_core::demo::generate_at(&m, days, seed, NOW, None);
    m.shutdown().expect("flush");
    stats.records
}

fn shipper(server: &Server, db: &str, dir: &Path, host: &str) -> Shipper {
    let mut cfg = ShipperConfig::new(dir, server.endpoint(db));
    cfg.host_id = Some(host.to_string());
    Shipper::open(cfg).expect("open shipper")
}

/// What must match between answers: counts, tokens, exact costs per group.
#[derive(Debug, Default, PartialEq)]
struct Digest {
    totals: (u64, u64, u64, u64, u64, u64),
    costs: Costs,
    groups: BTreeMap<(String, String), (u64, u64, Costs)>,
}

impl Digest {
    fn add(&mut self, s: &UsageSummary) {
        let t = &mut self.totals;
        t.0 += s.total_calls;
        t.1 += s.successful_calls;
        t.2 += s.total_input_tokens;
        t.3 += s.total_output_tokens;
        t.4 += s.total_tokens;
        t.5 += s.unpriced_calls;
        self.costs.merge(&s.costs);
        let mut add = |kind: &str, m: &BTreeMap<String, GroupSummary>| {
            for (k, g) in m {
                let e = self
                    .groups
                    .entry((kind.to_string(), k.clone()))
                    .or_default();
                e.0 += g.calls;
                e.1 += g.total_tokens;
                e.2.merge(&g.costs);
            }
        };
        add("model", &s.by_model);
        add("function", &s.by_function);
        add("user", &s.by_user);
        add("anchor", &s.by_anchor);
    }
}

fn digest(parts: &[&UsageSummary]) -> Digest {
    let mut d = Digest::default();
    for p in parts {
        d.add(p);
    }
    d
}

fn count(client: &Client, sql: &str) -> u64 {
    client.query_u64(sql).expect(sql)
}

/// (rows, rows after dedup by id, calls summed in the hourly aggregates).
fn row_counts(client: &Client) -> (u64, u64, u64) {
    let db = client.db();
    (
        count(client, &format!("SELECT count() FROM {db}.records")),
        count(client, &format!("SELECT uniqExact(id) FROM {db}.records")),
        count(
            client,
            &format!("SELECT toUInt64(sum(calls)) FROM {db}.agg_model"),
        ),
    )
}

#[test]
fn two_hosts_answer_as_their_sum_and_a_reship_adds_nothing() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let na = write_demo(a.path(), 5, 1);
    let nb = write_demo(b.path(), 5, 2);
    assert!(na > 100 && nb > 100, "demo data: {na} {nb}");

    // The fleet reports in the hosts' zone: its per-day tables answer.
    schema::migrate_in(&server.client("fleet"), &zone()).unwrap();
    assert_eq!(
        schema::reporting_zone(&server.client("fleet")).unwrap(),
        "Asia/Shanghai"
    );
    let mut sa = shipper(&server, "fleet", a.path(), "host-a");
    let mut sb = shipper(&server, "fleet", b.path(), "host-b");
    let ra = sa.ship_all(Duration::from_secs(10)).unwrap();
    let rb = sb.ship_all(Duration::from_secs(10)).unwrap();
    assert_eq!((ra.records, rb.records), (na, nb));
    assert_eq!((ra.lag_bytes, rb.lag_bytes, ra.skipped_lines), (0, 0, 0));

    let client = server.client("fleet");
    let fleet = FleetQueries::new(client.clone(), zone(), PricingTable::builtin());
    let (la, lb) = (local_monitor(a.path()), local_monitor(b.path()));
    let today = zone().date_of(NOW);
    for back in 0..6 {
        let date = today - chrono::Duration::days(back);
        let want = digest(&[
            &la.get_summary_for_date(date),
            &lb.get_summary_for_date(date),
        ]);
        let got = digest(&[&fleet.summary_for_date(date).unwrap()]);
        assert_eq!(got, want, "daily summary of {date}");
    }
    for hour in [0u8, 9, 19, 20, 21] {
        let want = digest(&[
            &la.get_summary_for_hour(today, hour),
            &lb.get_summary_for_hour(today, hour),
        ]);
        assert_eq!(
            digest(&[&fleet.summary_for_hour(today, hour).unwrap()]),
            want
        );
    }
    let from = today - chrono::Duration::days(6);
    let want = digest(&[
        &la.get_range_summary(from, today).unwrap(),
        &lb.get_range_summary(from, today).unwrap(),
    ]);
    assert_eq!(want.totals.0, na + nb);
    assert_eq!(digest(&[&fleet.range_summary(from, today).unwrap()]), want);
    // A zone whose days don't start on whole UTC hours reads raw rows, not
    // the hourly aggregates: over days that hold every record, the same.
    let kolkata = FleetQueries::new(
        client.clone(),
        "+05:30".parse().expect("zone"),
        PricingTable::builtin(),
    );
    let wide = (
        from - chrono::Duration::days(1),
        today + chrono::Duration::days(1),
    );
    assert_eq!(
        digest(&[&kolkata.range_summary(wide.0, wide.1).unwrap()]),
        want
    );
    assert_eq!(
        digest(&[&fleet.range_summary(wide.0, wide.1).unwrap()]),
        want
    );
    let trend_calls: u64 = kolkata
        .trend(wide.0, wide.1)
        .unwrap()
        .iter()
        .map(|p| p.calls)
        .sum();
    assert_eq!(trend_calls, na + nb);

    // Trend: day by day, the sum of the hosts.
    let (ta, tb) = (
        la.cost_trend_range(from, today).unwrap(),
        lb.cost_trend_range(from, today).unwrap(),
    );
    let tf = fleet.trend(from, today).unwrap();
    assert_eq!(tf.len(), ta.len());
    for ((f, x), y) in tf.iter().zip(&ta).zip(&tb) {
        let mut costs = x.costs.clone();
        costs.merge(&y.costs);
        assert_eq!(
            (f.calls, f.tokens, &f.costs),
            (x.calls + y.calls, x.tokens + y.tokens, &costs),
            "{}",
            f.date
        );
    }
    // Rankings: every user's totals are the sum of the hosts' (limit 0 = all).
    for kind in [RankKind::User, RankKind::Anchor, RankKind::Model] {
        let mut want: BTreeMap<String, (u64, u64, Costs)> = BTreeMap::new();
        for m in [&la, &lb] {
            for e in m.top(kind, from, today, RankBy::Tokens, 0) {
                let w = want.entry(e.id.clone()).or_default();
                w.0 += e.calls;
                w.1 += e.tokens;
                w.2.merge(&e.costs);
            }
        }
        let got = fleet.top(kind, from, today, RankBy::Tokens, 0).unwrap();
        let got_map: BTreeMap<String, (u64, u64, Costs)> = got
            .iter()
            .map(|e| (e.id.clone(), (e.calls, e.tokens, e.costs.clone())))
            .collect();
        assert_eq!(got_map, want, "{kind:?}");
        assert!(
            got.windows(2).all(|w| w[0].tokens >= w[1].tokens),
            "ordered by tokens"
        );
    }

    // Sessions: each one's figures are the sum of the hosts' (the demo's
    // session ids recur on both hosts), its span the widest.
    let mut ids: Vec<String> = [&la, &lb]
        .iter()
        .flat_map(|m| m.recent_sessions(10_000))
        .map(|s| s.session_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert!(!ids.is_empty(), "demo data has sessions");
    for id in &ids {
        let parts: Vec<_> = [&la, &lb]
            .iter()
            .filter_map(|m| m.get_session_stats(id))
            .collect();
        let got = fleet.session(id).unwrap().expect("session in ClickHouse");
        let mut costs = Costs::default();
        let mut models: BTreeMap<String, u64> = BTreeMap::new();
        for p in &parts {
            costs.merge(&p.costs);
            for (m, n) in &p.models {
                *models.entry(m.clone()).or_default() += n;
            }
        }
        assert_eq!(
            (got.calls, got.total_tokens, &got.costs, &got.models),
            (
                parts.iter().map(|p| p.calls).sum(),
                parts.iter().map(|p| p.total_tokens).sum(),
                &costs,
                &models
            ),
            "session {id}"
        );
        let first = parts.iter().map(|p| p.first_call).fold(f64::MAX, f64::min);
        let last = parts.iter().map(|p| p.last_call).fold(f64::MIN, f64::max);
        assert!((got.first_call - first).abs() < 1e-3 && (got.last_call - last).abs() < 1e-3);
        // The latest user: the host holding the last call says which.
        let latest = parts
            .iter()
            .max_by(|x, y| x.last_call.total_cmp(&y.last_call))
            .and_then(|p| p.user_id.clone());
        if parts.iter().all(|p| p.user_id.is_some()) {
            assert_eq!(got.user_id, latest, "session {id}");
        }
    }
    assert!(fleet.session("no-such-session").unwrap().is_none());

    // A second ship (same process, then a fresh one) sends nothing.
    let before = row_counts(&client);
    assert_eq!(before, (na + nb, na + nb, na + nb));
    assert_eq!(sa.ship_all(Duration::from_secs(5)).unwrap().records, 0);
    drop(sa);
    let mut again = shipper(&server, "fleet", a.path(), "host-a");
    assert_eq!(again.ship_all(Duration::from_secs(5)).unwrap().records, 0);
    // Even without its checkpoint, the server's offsets stop a re-send.
    drop(again);
    std::fs::remove_file(a.path().join(ai_usage_clickhouse::CHECKPOINT_FILE)).unwrap();
    let mut fresh = shipper(&server, "fleet", a.path(), "host-a");
    assert_eq!(fresh.ship_all(Duration::from_secs(5)).unwrap().records, 0);
    assert_eq!(row_counts(&client), before);
}

/// Concatenates the day files of `hosts` into `into`: one directory that
/// holds every host's records, for a local monitor that sees the fleet.
fn merge_dirs(hosts: &[&Path], into: &Path) {
    for h in hosts {
        for e in std::fs::read_dir(h).unwrap().flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().ends_with(".jsonl") {
                continue;
            }
            let mut bytes = std::fs::read(into.join(&name)).unwrap_or_default();
            bytes.extend(std::fs::read(e.path()).unwrap());
            std::fs::write(into.join(&name), bytes).unwrap();
        }
    }
}

#[test]
fn dashboard_forecast_savings_and_budgets_equal_the_hosts_together() {
    let Some(server) = Server::start() else {
        return;
    };
    // Records up to now (these answers are as of today).
    let now = ai_usage_core::now_timestamp();
    let (a, b, both) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    for (dir, seed) in [(a.path(), 3), (b.path(), 4)] {
        let m = UsageMonitor::builder()
            .dir(dir)
            .timezone(zone())
            .replay(false)
            .build()
            .unwrap();
        ai_usage_core::demo::generate_at(&m, 12, seed, now, None);
        m.shutdown().unwrap();
    }
    merge_dirs(&[a.path(), b.path()], both.path());
    schema::migrate_in(&server.client("fleet"), &zone()).unwrap();
    for (dir, host) in [(a.path(), "host-a"), (b.path(), "host-b")] {
        shipper(&server, "fleet", dir, host)
            .ship_all(Duration::from_secs(10))
            .unwrap();
    }
    let budgets = vec![
        Budget::new(
            "all",
            BudgetScope::Global,
            BudgetPeriod::Monthly,
            Money::from_micros(50_000_000),
            Currency::CNY,
        ),
        Budget::new(
            "one-user",
            BudgetScope::User("10001".into()),
            BudgetPeriod::Daily,
            Money::from_micros(1_000),
            Currency::CNY,
        ),
        Budget::new(
            "one-model",
            BudgetScope::Model("qwen-plus".into()),
            BudgetPeriod::Daily,
            Money::from_micros(2_000_000),
            Currency::CNY,
        ),
    ];
    // In UTC too: the per-day tables don't cover its days, raw rows answer.
    for z in [zone(), "UTC".parse().unwrap()] {
        let fleet = FleetQueries::new(server.client("fleet"), z, PricingTable::builtin());
        let local = if z == zone() {
            local_monitor(both.path())
        } else {
            UsageMonitor::builder()
                .dir(both.path())
                .timezone(z)
                .retention_days(3660)
                .replay(true)
                .build()
                .unwrap()
        };
        local.add_budgets(budgets.clone()).unwrap();
        let mut want = local.dashboard();
        let mut got = fleet.dashboard().unwrap();
        assert!(
            want.today.calls > 0 || want.month.calls > 0,
            "demo data today"
        );
        want.generated_at.clear();
        got.generated_at.clear();
        assert_eq!(got, want, "dashboard in {z}");
        assert_eq!(fleet.forecast().unwrap(), local.forecast(), "{z}");
        assert_eq!(fleet.savings(7).unwrap(), local.savings(7), "{z}");
        let strip = |v: Vec<ai_usage_core::BudgetStatus>| -> Vec<_> {
            v.into_iter()
                .map(|mut s| {
                    // Projected from "now", read a moment apart.
                    s.projected_end_of_period = Money::ZERO;
                    s
                })
                .collect()
        };
        assert_eq!(
            strip(fleet.budget_status(&budgets).unwrap()),
            strip(local.budget_status()),
            "{z}"
        );
    }
}

#[test]
fn every_field_arrives_as_written() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Strings that need escaping in text formats, a long one (a two-byte
    // length), tags, and every optional field.
    let long = "长".repeat(100);
    let line = serde_json::json!({
        "timestamp": 1_761_480_000.125, "user_id": "a\tb\n'c\\", "anchor_id": long,
        "session_id": "s1", "model": "gpt-4o", "function": "实时分析",
        "input_tokens": 1000, "output_tokens": 20, "total_tokens": 1020,
        "cached_input_tokens": 400, "reasoning_tokens": 7, "cost": 0.001234,
        "currency": "USD", "priced": false, "duration_ms": 12.5, "success": false,
        "error_msg": "上游错误\r\n", "request_id": "req-1", "tags": ["x'y", "z\\", ""],
        "provider": "openai", "cache_write_tokens": 100
    });
    std::fs::write(
        dir.path().join("usage_2025-10-26.jsonl"),
        format!("{line}\n"),
    )
    .unwrap();
    let r = shipper(&server, "fields", dir.path(), "h")
        .ship_all(Duration::from_secs(5))
        .unwrap();
    assert_eq!(r.records, 1);
    let client = server.client("fields");
    let rows = client
        .query_rows(&format!(
            "SELECT host, file, offset, end_offset, day, timestamp, user_id, anchor_id, \
             session_id, model, function, input_tokens, output_tokens, total_tokens, \
             cached_input_tokens, reasoning_tokens, cost_nanos, currency, priced, success, \
             duration_ms, error_msg, request_id, length(tags), tags[1], tags[2], tags[3], \
             provider, cache_write_tokens, id = {} FROM {}.records",
            ai_usage_clickhouse::record_id("h", "usage_2025-10-26.jsonl", 0),
            client.db()
        ))
        .unwrap();
    let end = (line.to_string().len() + 1).to_string();
    let want = [
        "h",
        "usage_2025-10-26.jsonl",
        "0",
        &end,
        "2025-10-26",
        "1761480000.125",
        "a\tb\n'c\\",
        &long,
        "s1",
        "gpt-4o",
        "实时分析",
        "1000",
        "20",
        "1020",
        "400",
        "7",
        "1234000",
        "USD",
        "0",
        "0",
        "12.5",
        "上游错误\r\n",
        "req-1",
        "3",
        "x'y",
        "z\\",
        "",
        "openai",
        "100",
        "1",
    ];
    assert_eq!(rows, vec![want.map(str::to_string).to_vec()]);
}

#[test]
fn a_corrupt_line_is_skipped_counted_and_never_shipped() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("usage_2025-10-26.jsonl");
    let good = |ts: f64, tokens: u64| {
        format!(
            r#"{{"timestamp": {ts}, "user_id": "u1", "model": "qwen-plus", "function": "f", "input_tokens": {tokens}, "output_tokens": 1, "total_tokens": {}, "cost": 0.25, "duration_ms": 10.0, "success": true, "error_msg": null}}"#,
            tokens + 1
        )
    };
    let text = format!(
        "{}\n{{garbage\n{}\n\u{1}not json\n{}\n{}",
        good(1_761_480_000.0, 10),
        good(1_761_480_001.0, 20),
        good(1_761_480_002.0, 30),
        &good(1_761_480_003.0, 40)[..30] // torn tail: a write in progress
    );
    std::fs::write(&file, text).unwrap();
    let mut s = shipper(&server, "corrupt", dir.path(), "h");
    let r = s.ship_all(Duration::from_secs(5)).unwrap();
    assert_eq!((r.records, r.skipped_lines), (3, 2));
    let client = server.client("corrupt");
    let db = client.db();
    assert_eq!(
        count(&client, &format!("SELECT count() FROM {db}.records")),
        3
    );
    assert_eq!(
        count(
            &client,
            &format!("SELECT sum(input_tokens) FROM {db}.records")
        ),
        60
    );
    assert!(r.lag_bytes > 0, "the torn tail is still to ship");

    // The torn line completes: it ships, the bad lines stay out.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        format!("{}\n", &good(1_761_480_003.0, 40)[30..]).as_bytes(),
    )
    .unwrap();
    let r = s.ship_all(Duration::from_secs(5)).unwrap();
    assert_eq!((r.records, r.skipped_lines, r.lag_bytes), (1, 0, 0));
    assert_eq!(
        count(
            &client,
            &format!("SELECT sum(input_tokens) FROM {db}.records")
        ),
        100
    );
}

/// Inserts two v1/v3-format rows (cost in micro-units) on 2025-10-26.
fn insert_micros_rows(client: &Client, ids: &[u64]) {
    let db = client.db();
    for &id in ids {
        let (offset, ts, tokens, cost, ok) = if id == 1 {
            (0, "1761480000.5", 5, 1_500_000, 1)
        } else {
            (100, "1761483700", 7, 2_500_000, 0)
        };
        client
            .execute(&format!(
                "INSERT INTO {db}.records (id, host, file, offset, end_offset, day, timestamp, \
                 session_id, model, input_tokens, total_tokens, cost_micros, currency, priced, \
                 success) VALUES ({id}, 'h', 'usage_2025-10-26.jsonl', {offset}, {end}, \
                 '2025-10-26', {ts}, 's1', 'm', {tokens}, {tokens}, {cost}, 'CNY', 1, {ok})",
                end = offset + 100
            ))
            .unwrap();
    }
}

/// Sums of an aggregate: calls, successful calls, input tokens, nano-units.
fn agg_sums(client: &Client, table: &str) -> Vec<Vec<String>> {
    client
        .query_rows(&format!(
            "SELECT sum(calls), sum(successful_calls), sum(input_tokens), sum(cost_nanos) \
             FROM {}.{table}",
            client.db()
        ))
        .unwrap()
}

#[test]
fn schema_migrates_from_empty_and_from_v1_v2_v3() {
    let Some(server) = Server::start() else {
        return;
    };
    let shanghai = zone();
    // From nothing, twice; the reporting zone is fixed at creation.
    let empty = server.client("from_empty");
    assert_eq!(schema::migrate_in(&empty, &shanghai).unwrap(), 0);
    assert_eq!(
        schema::current_version(&empty).unwrap(),
        schema::SCHEMA_VERSION
    );
    assert_eq!(schema::SCHEMA_VERSION, 5);
    assert_eq!(
        schema::migrate_in(&empty, &"UTC".parse().unwrap()).unwrap(),
        5
    );
    assert_eq!(schema::reporting_zone(&empty).unwrap(), "Asia/Shanghai");
    let columns = count(
        &empty,
        &format!(
            "SELECT count() FROM system.columns WHERE database = '{}' AND table = 'records' \
             AND name IN ('cost_nanos', 'provider', 'cache_write_tokens')",
            empty.endpoint().database()
        ),
    );
    assert_eq!(columns, 3);

    // From v1 holding rows: money ×1000, aggregates start with them.
    let want = vec![vec!["2", "1", "12", "4000000000"]];
    let old = server.client("from_v1");
    schema::create_v1_for_tests(&old).unwrap();
    let db = old.db();
    insert_micros_rows(&old, &[1, 2]);
    assert_eq!(schema::migrate_in(&old, &shanghai).unwrap(), 1);
    assert_eq!(schema::current_version(&old).unwrap(), 5);
    for table in schema::AGGREGATE_TABLES {
        assert_eq!(agg_sums(&old, table), want, "{table}");
    }
    assert_eq!(
        old.query_rows(&format!(
            "SELECT sum(cost_nanos), any(provider), sum(cache_write_tokens) FROM {db}.records"
        ))
        .unwrap(),
        vec![vec!["4000000000", "", "0"]]
    );
    // Run again: no second copy.
    assert_eq!(schema::migrate(&old).unwrap(), 5);
    assert_eq!(row_counts(&old).2, 2);
    let day = chrono::NaiveDate::from_ymd_opt(2025, 10, 26).unwrap();
    assert!(schema::aggregates_match(&old, day, day).unwrap());
    // The migrated rows answer through the day tables in the new units.
    let fleet = FleetQueries::new(old.clone(), shanghai, PricingTable::builtin());
    let s = fleet.summary_for_date(day).unwrap();
    assert_eq!(
        (s.total_calls, s.costs.get(ai_usage_core::Currency::CNY)),
        (2, ai_usage_core::Money::from_micros(4_000_000))
    );
    let session = fleet.session("s1").unwrap().unwrap();
    assert_eq!((session.calls, session.duration_seconds), (2, 3699.5));
    // A duplicate inserted behind the shipper's back shows in the audit,
    // and a rebuild (reading records FINAL) makes the aggregates exact again.
    old.execute(&format!(
        "INSERT INTO {db}.records (id, host, file, offset, end_offset, day, timestamp, model, \
         input_tokens, total_tokens, cost_nanos, currency, priced, success) VALUES \
         (2, 'h', 'usage_2025-10-26.jsonl', 100, 200, '2025-10-26', 1761483700, 'm', 7, 7, 2500000000, 'CNY', 1, 0)"
    ))
    .unwrap();
    assert!(!schema::aggregates_match(&old, day, day).unwrap());
    schema::rebuild_aggregates(&old).unwrap();
    assert!(schema::aggregates_match(&old, day, day).unwrap());
    assert_eq!(row_counts(&old).2, 2);

    // From v3 (v1's records plus hour-keyed aggregates) and from v2: the
    // old aggregates are replaced, the records converted.
    for (name, version, old_tables) in [
        ("from_v3", 3, &["agg_user", "agg_anchor", "agg_model"][..]),
        ("from_v2", 2, &["hourly"][..]),
    ] {
        let c = server.client(name);
        let db = c.db();
        schema::create_v1_for_tests(&c).unwrap();
        for t in old_tables {
            c.execute(&format!(
                "CREATE TABLE {db}.{t} (hour UInt32, calls UInt64, cost_micros Int64) \
                 ENGINE = SummingMergeTree ORDER BY hour"
            ))
            .unwrap();
        }
        c.execute(&format!(
            "INSERT INTO {db}.schema_version (version) VALUES ({version})"
        ))
        .unwrap();
        insert_micros_rows(&c, &[1, 2, 2]);
        assert_eq!(schema::migrate_in(&c, &shanghai).unwrap(), version);
        assert_eq!(schema::current_version(&c).unwrap(), 5);
        // The duplicate id was merged by the FINAL copy.
        assert_eq!(agg_sums(&c, "agg_user_day"), want, "{name}");
        assert_eq!(agg_sums(&c, "agg_model"), want, "{name}");
        let left = count(
            &c,
            &format!(
                "SELECT count() FROM system.tables WHERE database = '{}' AND name IN \
                 ('hourly', 'agg_user', 'agg_anchor', 'records_v3', 'records_v4')",
                c.endpoint().database()
            ),
        );
        assert_eq!(left, 0, "{name}");
    }

    // v4 orders `records` by the line's place (day, host, file, offset),
    // which identifies a line as its id does: a line inserted twice behind
    // the shipper's back counts once in an hour's users and anchors (read
    // without FINAL) and is merged away by the engine.
    let dup = server.client("dup_line");
    schema::migrate_in(&dup, &shanghai).unwrap();
    let ddb = dup.db();
    let create = dup
        .query_rows(&format!("SHOW CREATE TABLE {ddb}.records"))
        .unwrap();
    assert!(
        create[0][0].contains("ORDER BY (day, host, file, offset)"),
        "{create:?}"
    );
    for _ in 0..2 {
        dup.execute(&format!(
            "INSERT INTO {ddb}.records (id, host, file, offset, end_offset, day, timestamp, \
             user_id, anchor_id, model, input_tokens, total_tokens, cost_nanos, currency, \
             priced, success) VALUES (7, 'h', 'usage_2025-10-26.jsonl', 0, 100, '2025-10-26', \
             1761483700, 'u1', 'a1', 'm', 7, 7, 2500000000, 'CNY', 1, 1)"
        ))
        .unwrap();
    }
    let fleet = FleetQueries::new(dup.clone(), shanghai, PricingTable::builtin());
    // 13:01:40 UTC is 21:01:40 in Shanghai.
    let hour = fleet.summary_for_hour(day, 21).unwrap();
    assert_eq!(
        (hour.by_user["u1"].calls, hour.by_anchor["a1"].calls),
        (1, 1)
    );
    assert_eq!((hour.user_count, hour.by_user["u1"].input_tokens), (1, 7));
    dup.execute(&format!("OPTIMIZE TABLE {ddb}.records FINAL"))
        .unwrap();
    assert_eq!(
        count(&dup, &format!("SELECT count() FROM {ddb}.records")),
        1
    );

    // A newer schema than ours is refused, not overwritten.
    empty
        .execute(&format!(
            "INSERT INTO {}.schema_version (version) VALUES (99)",
            empty.db()
        ))
        .unwrap();
    assert!(matches!(
        schema::migrate(&empty),
        Err(ai_usage_clickhouse::Error::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn an_insert_that_missed_a_view_is_repaired_by_the_next_pass() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = write_demo(dir.path(), 3, 5);
    let client = server.client("repair");
    schema::migrate(&client).unwrap();
    let db = client.db();
    let day = chrono::DateTime::from_timestamp(NOW as i64, 0)
        .unwrap()
        .date_naive();
    let (from, to) = (
        day - chrono::Duration::days(5),
        day + chrono::Duration::days(1),
    );
    // What a server crash between an insert's raw rows and its views
    // leaves: the views miss the rows, then the shipper dies before its
    // checkpoint (the insert's outcome unknown). Every kind of bucket is
    // exercised: UTC hours, reporting days and sessions.
    for table in schema::AGGREGATE_TABLES {
        client
            .execute(&format!("DETACH TABLE {db}.{table}_mv"))
            .unwrap();
    }
    let shipped = shipper(&server, "repair", dir.path(), "h")
        .ship_all(Duration::from_secs(30))
        .unwrap();
    assert_eq!(shipped.records, n);
    for table in schema::AGGREGATE_TABLES {
        client
            .execute(&format!("ATTACH TABLE {db}.{table}_mv"))
            .unwrap();
    }
    assert!(!schema::aggregates_match(&client, from, to).unwrap());
    let checkpoint = dir.path().join(ai_usage_clickhouse::CHECKPOINT_FILE);
    std::fs::remove_file(&checkpoint).unwrap();

    // The next pass resumes at the server's offsets and fills the aggregates.
    let r = shipper(&server, "repair", dir.path(), "h")
        .ship_all(Duration::from_secs(30))
        .unwrap();
    assert_eq!(r.records, 0);
    assert!(r.aggregate_repairs > 0, "{r:?}");
    assert!(schema::aggregates_match(&client, from, to).unwrap());
    let raw = |filter: &str| {
        client
            .query_rows(&format!(
                "SELECT toUInt64(count()), sum(input_tokens), sum(cost_nanos) \
                 FROM {db}.records FINAL {filter}"
            ))
            .unwrap()
    };
    let calls = |t: &str| {
        client
            .query_rows(&format!(
                "SELECT sum(calls), sum(input_tokens), sum(cost_nanos) FROM {db}.{t}"
            ))
            .unwrap()
    };
    for table in schema::AGGREGATE_TABLES {
        // Sessions count only calls that belong to one.
        let filter = if table == "agg_session" {
            "WHERE session_id != ''"
        } else {
            ""
        };
        assert_eq!(calls(table), raw(filter), "{table}");
        assert_ne!(calls(table)[0][0], "0", "{table} is empty");
    }

    // Nothing to redo: the checkpoint now holds the server's offsets; and
    // with the checkpoint lost again the check finds every aggregate whole.
    let again = shipper(&server, "repair", dir.path(), "h")
        .ship_all(Duration::from_secs(30))
        .unwrap();
    assert_eq!((again.records, again.aggregate_repairs), (0, 0));
    std::fs::remove_file(&checkpoint).unwrap();
    let lost = shipper(&server, "repair", dir.path(), "h")
        .ship_all(Duration::from_secs(30))
        .unwrap();
    assert_eq!((lost.records, lost.aggregate_repairs), (0, 0));
    assert_eq!(row_counts(&client), (n, n, n));
}

/// Appends `n` calls through a monitor (its own writer, flushed each call).
fn append_calls(dir: &Path, n: u64, start_ts: f64) {
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .replay(false)
        .build()
        .unwrap();
    for i in 0..n {
        m.record(
            &UsageEvent::new("qwen-plus", "实时分析")
                .tokens(100 + i % 7, 10)
                .user("u1")
                .at(start_ts + i as f64 * 0.001),
        );
        if i % 50 == 0 {
            m.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    m.shutdown().unwrap();
}

#[test]
fn clickhouse_killed_while_records_arrive_loses_and_duplicates_nothing() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ShipperConfig::new(dir.path(), server.endpoint("outage"));
    cfg.host_id = Some("h".into());
    cfg.batch_rows = 200;
    cfg.timeout = Duration::from_secs(5);
    let mut s = Shipper::open(cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let stop = stop.clone();
        std::thread::spawn(move || s.follow(&stop, Duration::from_millis(50)))
    };
    let writer = {
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || append_calls(&dir, 6000, NOW))
    };
    std::thread::sleep(Duration::from_millis(700));
    server.kill();
    std::thread::sleep(Duration::from_millis(1500));
    server.spawn();
    writer.join().unwrap();
    let client = server.client("outage");
    let started = Instant::now();
    loop {
        let n = count(
            &client,
            &format!("SELECT count() FROM {}.records", client.db()),
        );
        if n >= 6000 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    follower.join().unwrap().unwrap();
    // Every record exactly once in the raw table, whatever the kill hit.
    let (rows, ids, _) = row_counts(&client);
    assert_eq!((rows, ids), (6000, 6000));
    // A kill between an insert's raw rows and its views leaves the
    // aggregates short of that batch; the shipper's next pass (its insert's
    // outcome unknown) finds and fills it by itself: no manual rebuild.
    let day = chrono::DateTime::from_timestamp(NOW as i64, 0)
        .unwrap()
        .date_naive();
    assert!(schema::aggregates_match(&client, day - chrono::Duration::days(1), day).unwrap());
    assert_eq!(row_counts(&client), (6000, 6000, 6000));
}

/// Run as a child process by the SIGKILL test (does nothing otherwise).
#[test]
fn child_ship_process() {
    let Ok(spec) = std::env::var("AIU_TEST_CHILD_SHIP") else {
        return;
    };
    let (dir, url) = spec.split_once('|').unwrap();
    let mut cfg = ShipperConfig::new(
        dir,
        ai_usage_clickhouse::Endpoint::parse(url, "killed").unwrap(),
    );
    cfg.host_id = Some("victim".into());
    cfg.batch_rows = 97;
    let mut s = Shipper::open(cfg).unwrap();
    s.ship_all(Duration::from_secs(30)).unwrap();
}

#[test]
fn shipper_killed_at_random_points_never_duplicates() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = write_demo(dir.path(), 20, 7);
    let exe = std::env::current_exe().unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    let client = server.client("killed");
    let mut kills = 0;
    for _ in 0..12 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "child_ship_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                "AIU_TEST_CHILD_SHIP",
                format!("{}|{}", dir.path().display(), server.url()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(30..600)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "no child was killed mid-ship; the test proved nothing"
    );
    // Finish in-process and count: every record once, in rows and aggregates.
    let mut cfg = ShipperConfig::new(dir.path(), server.endpoint("killed"));
    cfg.host_id = Some("victim".into());
    Shipper::open(cfg)
        .unwrap()
        .ship_all(Duration::from_secs(30))
        .unwrap();
    assert_eq!(row_counts(&client), (n, n, n));
    let fleet = FleetQueries::new(client, zone(), PricingTable::builtin());
    let local = local_monitor(dir.path());
    let from = zone().date_of(NOW) - chrono::Duration::days(20);
    let to = zone().date_of(NOW);
    assert_eq!(
        digest(&[&fleet.range_summary(from, to).unwrap()]),
        digest(&[&local.get_range_summary(from, to).unwrap()])
    );
    let _: NaiveDate = to;
}
