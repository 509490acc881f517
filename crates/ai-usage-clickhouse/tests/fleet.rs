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
    Budget, BudgetPeriod, BudgetScope, Currency, Money, PricingTable, QueryError, RankBy, RankKind,
    UsageEvent, UsageMonitor, UsageQueries, Zone,
};
use chrono::NaiveDate;
use common::scenario::*;
use common::Server;

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
    assert_answers_are_the_hosts_sum(&client, a.path(), b.path(), na + nb);

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

        // The same answers through the one query interface the server and
        // the CLI hold, the fleet evaluating the budgets it was given.
        let fleet: Box<dyn UsageQueries> = Box::new(fleet.with_budgets(budgets.clone()));
        let local: Box<dyn UsageQueries> = Box::new(local);
        let (from, to) = local.last_days(7);
        assert_eq!(fleet.last_days(7), (from, to), "{z}");
        assert_eq!(
            strip(fleet.budget_status().unwrap()),
            strip(local.budget_status().unwrap()),
            "{z}"
        );
        for kind in [RankKind::User, RankKind::Anchor, RankKind::Model] {
            assert_eq!(
                fleet.top(kind, from, to, RankBy::Cost, 5).unwrap(),
                local.top(kind, from, to, RankBy::Cost, 5).unwrap(),
                "{kind:?} in {z}"
            );
        }
        assert_eq!(
            fleet.trend(from, to).unwrap(),
            local.trend(from, to).unwrap(),
            "{z}"
        );
        assert_eq!(fleet.savings(7).unwrap(), local.savings(7).unwrap(), "{z}");
        assert_eq!(
            fleet.daily_csv(from, to, false).unwrap(),
            local.daily_csv(from, to, false).unwrap(),
            "{z}"
        );
        let (f, l) = (
            fleet.daily_summary(1).unwrap(),
            local.daily_summary(1).unwrap(),
        );
        assert!(l.total_calls > 0, "demo data yesterday");
        assert_eq!(
            (
                f.total_calls,
                f.total_tokens,
                &f.costs,
                &f.by_model,
                f.groups_truncated
            ),
            (
                l.total_calls,
                l.total_tokens,
                &l.costs,
                &l.by_model,
                l.groups_truncated
            ),
            "{z}"
        );
        let report = fleet.usage_report(3).unwrap();
        let names: Vec<&str> = report.budgets.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["all", "one-user", "one-model"], "{z}");
        // A refused argument is the core's error, on either source.
        for q in [&fleet, &local] {
            match q.monthly_summary(2026, 13) {
                Err(QueryError::Core(ai_usage_core::Error::InvalidArgument {
                    argument, ..
                })) => {
                    assert_eq!(argument, "month")
                }
                other => panic!("month 13: {other:?}"),
            }
        }
    }
    // A store that cannot answer is unavailable, not the caller's mistake.
    let gone = ai_usage_clickhouse::Endpoint::parse("http://127.0.0.1:9", "fleet").unwrap();
    let gone: Box<dyn UsageQueries> = Box::new(FleetQueries::new(
        Client::new(gone, Duration::from_secs(2)),
        zone(),
        PricingTable::builtin(),
    ));
    assert!(gone.may_block());
    assert!(matches!(
        gone.daily_summary(0),
        Err(QueryError::Unavailable(_))
    ));
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
        "provider": "openai", "cache_write_tokens": 100, "input_audio_tokens": 300,
        "cached_audio_input_tokens": 50, "output_audio_tokens": 9
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
             provider, cache_write_tokens, input_audio_tokens, cached_audio_input_tokens, \
             output_audio_tokens, id = {} FROM {}.records",
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
        "300",
        "50",
        "9",
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
fn local_monitor(dir: &Path) -> UsageMonitor {
    local_monitor_in(dir, zone())
}

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
    assert_eq!(schema::SCHEMA_VERSION, 6);
    assert_eq!(
        schema::migrate_in(&empty, &"UTC".parse().unwrap()).unwrap(),
        6
    );
    assert_eq!(schema::reporting_zone(&empty).unwrap(), "Asia/Shanghai");
    let columns = count(
        &empty,
        &format!(
            "SELECT count() FROM system.columns WHERE database = '{}' AND table = 'records' \
             AND name IN ('cost_nanos', 'provider', 'cache_write_tokens', \
             'input_audio_tokens', 'cached_audio_input_tokens', 'output_audio_tokens')",
            empty.endpoint().database()
        ),
    );
    assert_eq!(columns, 6);

    // From v1 holding rows: money ×1000, aggregates start with them.
    let want = vec![vec!["2", "1", "12", "4000000000"]];
    let old = server.client("from_v1");
    schema::create_v1_for_tests(&old).unwrap();
    let db = old.db();
    insert_micros_rows(&old, &[1, 2]);
    assert_eq!(schema::migrate_in(&old, &shanghai).unwrap(), 1);
    assert_eq!(
        schema::current_version(&old).unwrap(),
        schema::SCHEMA_VERSION
    );
    for table in schema::AGGREGATE_TABLES {
        assert_eq!(agg_sums(&old, table), want, "{table}");
    }
    assert_eq!(
        old.query_rows(&format!(
            "SELECT sum(cost_nanos), any(provider), sum(cache_write_tokens), \
             sum(input_audio_tokens + cached_audio_input_tokens + output_audio_tokens) \
             FROM {db}.records"
        ))
        .unwrap(),
        vec![vec!["4000000000", "", "0", "0"]]
    );
    // Run again: no second copy.
    assert_eq!(schema::migrate(&old).unwrap(), schema::SCHEMA_VERSION);
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
        assert_eq!(schema::current_version(&c).unwrap(), schema::SCHEMA_VERSION);
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

/// Durations at, just below and just above every bucket boundary
/// `2^(k/4)`, 0, 1, sub-millisecond and huge values, and pseudo-random ones.
fn boundary_durations() -> Vec<f64> {
    let ulps = |x: f64, d: i64| f64::from_bits((x.to_bits() as i64 + d) as u64);
    let mut v = vec![0.0, 0.25, 1.0, ulps(1.0, 1), 1e15, 1e300, f64::MAX];
    for k in 0..=ai_usage_core::DurationHistogram::BUCKETS as i32 + 1 {
        let b = (f64::from(k) / 4.0).exp2();
        for d in -2..=2 {
            v.push(ulps(b, d));
        }
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..400 {
        // xorshift: reproducible, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
        v.push((unit * 26.0).exp2() - 0.5);
    }
    v
}

/// Writes one call per duration into the day file of 2025-10-26 (Shanghai),
/// ten seconds apart from 20:00 local time; returns the timestamps' start.
fn write_durations(dir: &Path, durations: &[f64]) -> f64 {
    use std::io::Write;
    let start = 1_761_480_000.0; // 2025-10-26 12:00 UTC, 20:00 in Shanghai
    let date = zone().date_of(start);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ai_usage_core::dayfile::day_file_path(dir, date))
        .unwrap();
    for (i, ms) in durations.iter().enumerate() {
        let line = serde_json::json!({
            "timestamp": start + i as f64 * 10.0, "user_id": "u1", "model": "qwen-plus",
            "function": "f", "input_tokens": 10, "output_tokens": 2, "total_tokens": 12,
            "cost": 0.001, "duration_ms": ms, "success": true, "error_msg": null,
            "input_audio_tokens": 4, "output_audio_tokens": 1
        });
        writeln!(f, "{line}").unwrap();
    }
    start
}

/// The fleet histogram of `agg_model` as (bucket, calls) pairs.
fn fleet_histogram(client: &Client) -> Vec<(usize, u64)> {
    let rows = client
        .query_rows(&format!(
            "SELECT arrayJoin(arrayMap((b, n) -> (b, n), (sumMap(durationMap.bucket, \
             durationMap.calls) AS m).1, m.2)) AS p, p.1, p.2 FROM {}.agg_model",
            client.db()
        ))
        .unwrap();
    rows.iter()
        .map(|r| (r[1].parse().unwrap(), r[2].parse().unwrap()))
        .collect()
}

/// The core's histogram of `durations` as (bucket, calls) pairs.
fn local_histogram(durations: &[f64]) -> Vec<(usize, u64)> {
    let mut m: BTreeMap<usize, u64> = BTreeMap::new();
    for &ms in durations {
        *m.entry(ai_usage_core::DurationHistogram::bucket_of(ms))
            .or_default() += 1;
    }
    m.into_iter().collect()
}

#[test]
fn the_fleet_buckets_durations_exactly_as_the_core() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let durations = boundary_durations();
    write_durations(dir.path(), &durations);
    let shipped = shipper(&server, "hist", dir.path(), "h")
        .ship_all(Duration::from_secs(10))
        .unwrap();
    assert_eq!(shipped.records, durations.len() as u64);
    let client = server.client("hist");
    // Each value: the SQL bucket of the stored duration is the core's
    // bucket of the duration the day file holds (read back as the core
    // reads it).
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .unwrap();
    let text = std::fs::read(file.path()).unwrap();
    let mut want: BTreeMap<u64, usize> = BTreeMap::new();
    let mut read_back = Vec::new();
    let mut offset = 0u64;
    for line in text.split_inclusive(|&c| c == b'\n') {
        let r = ai_usage_core::dayfile::parse_record(line.trim_ascii_end()).unwrap();
        want.insert(
            offset,
            ai_usage_core::DurationHistogram::bucket_of(r.duration_ms),
        );
        read_back.push(r.duration_ms);
        offset += line.len() as u64;
    }
    // The core's JSON reading may round a few of the written values by an
    // ulp: what both sides see is what it reads.
    assert_eq!(read_back.len(), durations.len());
    let durations = read_back;
    let got: BTreeMap<u64, usize> = client
        .query_rows(&format!(
            "SELECT offset, {} FROM {}.records",
            schema::duration_bucket_sql("duration_ms"),
            client.db()
        ))
        .unwrap()
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
    assert_eq!(got, want);
    // ClickHouse's `log2` may round otherwise than Rust's elsewhere: with
    // its first guess off by one either way, the bucket is still the
    // core's (the thresholds decide). Off by -1 only where it is ≥ 1: a
    // duration above 1 ms has a positive logarithm.
    let sql = schema::duration_bucket_sql("duration_ms");
    for (delta, from_bucket) in [("+ 1", 0usize), ("- 1", 1)] {
        let skewed = sql
            .replace("ceil(log2(", "(ceil(log2(")
            .replace(") * 4)))", &format!(") * 4) {delta})))"));
        assert_ne!(skewed, sql, "the guess is where the test expects it");
        let got: BTreeMap<u64, usize> = client
            .query_rows(&format!(
                "SELECT offset, {skewed} FROM {}.records WHERE {} >= {from_bucket}",
                client.db(),
                sql
            ))
            .unwrap()
            .iter()
            .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
            .collect();
        let want: BTreeMap<u64, usize> = want
            .iter()
            .filter(|(_, &b)| b >= from_bucket)
            .map(|(&o, &b)| (o, b))
            .collect();
        assert_eq!(got, want, "guess {delta}");
    }
    // Every bucket is reached, from 0 to the last.
    let local = local_histogram(&durations);
    assert_eq!(local.len(), ai_usage_core::DurationHistogram::BUCKETS);
    // The aggregate's histogram (the view's) is the core's.
    assert_eq!(fleet_histogram(&client), local);
    // After the background merges too.
    client
        .execute(&format!("OPTIMIZE TABLE {}.agg_model FINAL", client.db()))
        .unwrap();
    assert_eq!(fleet_histogram(&client), local);
    // The p95 of the day (aggregates), of an hour (aggregates) and of a
    // day in +05:30 (raw rows) are the local ones.
    let lm = local_monitor(dir.path());
    let fleet = FleetQueries::new(client.clone(), zone(), PricingTable::builtin());
    let day = NaiveDate::from_ymd_opt(2025, 10, 26).unwrap();
    let want = lm.get_summary_for_date(day);
    assert_eq!(want.total_calls, durations.len() as u64);
    assert_eq!(
        fleet.summary_for_date(day).unwrap().p95_duration_ms,
        want.p95_duration_ms
    );
    assert_eq!(
        fleet.summary_for_hour(day, 20).unwrap().p95_duration_ms,
        lm.get_summary_for_hour(day, 20).p95_duration_ms
    );
    let kolkata: Zone = "+05:30".parse().unwrap();
    let local_kolkata = UsageMonitor::builder()
        .dir(dir.path())
        .timezone(kolkata)
        .retention_days(3660)
        .replay(true)
        .build()
        .unwrap();
    let fleet_kolkata = FleetQueries::new(client.clone(), kolkata, PricingTable::builtin());
    assert_eq!(
        fleet_kolkata.summary_for_date(day).unwrap().p95_duration_ms,
        local_kolkata.get_summary_for_date(day).p95_duration_ms
    );
    // Each quantile the core can answer, over a prefix of the calls: the
    // histogram, not just its 95th percentile, is the same.
    for n in [1usize, 7, 50, 200] {
        let mut h = ai_usage_core::DurationHistogram::default();
        for &ms in &durations[..n] {
            h.add(ms);
        }
        let (start, end) = (1_761_480_000.0, 1_761_480_000.0 + n as f64 * 10.0);
        let rows = client
            .query_rows(&format!(
                "SELECT (sumMap([{}], [toUInt64(1)]) AS m).1, m.2 FROM {}.records \
                 WHERE timestamp >= {start} AND timestamp < {end}",
                schema::duration_bucket_sql("duration_ms"),
                client.db()
            ))
            .unwrap();
        let parse = |s: &str| -> Vec<u64> {
            s.trim_matches(['[', ']'])
                .split(',')
                .map(|x| x.parse().unwrap())
                .collect()
        };
        let mut fleet_h = ai_usage_core::DurationHistogram::default();
        for (b, c) in parse(&rows[0][0]).into_iter().zip(parse(&rows[0][1])) {
            fleet_h.add_to_bucket(b as usize, c);
        }
        fleet_h.sum_ms = h.sum_ms;
        assert_eq!(fleet_h, h, "first {n} calls");
    }
}

/// Turns a v5 database back into v4's layout (no audio columns, the
/// t-digest `agg_model` and its view, filled from `records FINAL`) and
/// its recorded version into 4: the state a v4 database is in.
fn downgrade_to_v4(client: &Client) {
    let db = client.db();
    let sums = "count() AS calls, sum(success) AS successful_calls, \
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
        sum(total_tokens) AS total_tokens, sum(cached_input_tokens) AS cached_input_tokens, \
        sum(reasoning_tokens) AS reasoning_tokens, sum(cost_nanos) AS cost_nanos, \
        countIf(priced = 0) AS unpriced_calls, sum(cache_write_tokens) AS cache_write_tokens, \
        sum(duration_ms) AS duration_ms_sum, \
        quantileTDigestState(0.95)(duration_ms) AS duration_q";
    let select = |from: &str| {
        format!(
            "SELECT toUInt32(intDiv(toUInt64(timestamp), 3600) * 3600) AS hour, currency, \
             model, function, {sums} FROM {from} GROUP BY hour, currency, model, function"
        )
    };
    for sql in [
        format!(
            "ALTER TABLE {db}.records DROP COLUMN input_audio_tokens, \
             DROP COLUMN cached_audio_input_tokens, DROP COLUMN output_audio_tokens"
        ),
        format!("DROP TABLE {db}.agg_model_mv"),
        format!("DROP TABLE {db}.agg_model"),
        format!(
            "CREATE TABLE {db}.agg_model (hour UInt32, currency String, model String, \
             function String, calls UInt64, successful_calls UInt64, input_tokens UInt64, \
             output_tokens UInt64, total_tokens UInt64, cached_input_tokens UInt64, \
             reasoning_tokens UInt64, cost_nanos Int64, unpriced_calls UInt64, \
             cache_write_tokens UInt64, duration_ms_sum Float64, \
             duration_q AggregateFunction(quantileTDigest(0.95), Float64)) \
             ENGINE = SummingMergeTree PARTITION BY toYYYYMM(toDate(toDateTime(hour))) \
             ORDER BY (hour, currency, model, function)"
        ),
        format!(
            "CREATE MATERIALIZED VIEW {db}.agg_model_mv TO {db}.agg_model AS {}",
            select(&format!("{db}.records"))
        ),
        format!(
            "INSERT INTO {db}.agg_model {}",
            select(&format!("{db}.records FINAL"))
        ),
        format!("DROP TABLE {db}.schema_version"),
        format!(
            "CREATE TABLE {db}.schema_version (version UInt32, applied_at DateTime DEFAULT now()) \
             ENGINE = TinyLog"
        ),
        format!("INSERT INTO {db}.schema_version (version) VALUES (1), (4)"),
    ] {
        client.execute(&sql).expect(&sql);
    }
}

#[test]
fn schema_migrates_from_v4_keeping_rows_with_the_histogram() {
    let Some(server) = Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = write_demo(dir.path(), 3, 21);
    let durations = boundary_durations();
    write_durations(dir.path(), &durations);
    let total = n + durations.len() as u64;
    schema::migrate_in(&server.client("v4"), &zone()).unwrap();
    let mut s = shipper(&server, "v4", dir.path(), "h");
    assert_eq!(s.ship_all(Duration::from_secs(10)).unwrap().records, total);
    drop(s);
    let client = server.client("v4");
    let db = client.db();
    downgrade_to_v4(&client);
    assert_eq!(schema::current_version(&client).unwrap(), 4);
    let audio = format!(
        "SELECT count() FROM system.columns WHERE database = '{}' AND table = 'records' \
         AND name LIKE '%audio%'",
        client.endpoint().database()
    );
    assert_eq!(count(&client, &audio), 0);
    assert_eq!(row_counts(&client), (total, total, total));

    // v4 → v5, twice: the rows stay, the audio columns come (0 for the
    // rows shipped before), agg_model is rebuilt with the histogram.
    assert_eq!(schema::migrate_in(&client, &zone()).unwrap(), 4);
    assert_eq!(
        schema::migrate_in(&client, &zone()).unwrap(),
        schema::SCHEMA_VERSION
    );
    assert_eq!(count(&client, &audio), 3);
    assert_eq!(row_counts(&client), (total, total, total));
    assert_eq!(
        count(
            &client,
            &format!("SELECT sum(input_audio_tokens + output_audio_tokens) FROM {db}.records")
        ),
        0
    );
    let digest_left = count(
        &client,
        &format!(
            "SELECT count() FROM system.columns WHERE database = '{}' AND name = 'duration_q'",
            client.endpoint().database()
        ),
    );
    assert_eq!(digest_left, 0);
    let local = local_monitor(dir.path());
    let today = zone().date_of(NOW);
    let first = NaiveDate::from_ymd_opt(2025, 10, 20).unwrap();
    assert!(schema::aggregates_match(&client, first, today).unwrap());
    for table in ["agg_model", "agg_user_day", "agg_anchor_day"] {
        assert_eq!(
            count(
                &client,
                &format!("SELECT toUInt64(sum(calls)) FROM {db}.{table}")
            ),
            total,
            "{table}"
        );
    }
    // agg_model holds the core's histogram of every record, and each day's
    // p95 is the local one.
    let all_durations = file_durations(dir.path());
    assert_eq!(all_durations.len() as u64, total);
    assert_eq!(fleet_histogram(&client), local_histogram(&all_durations));
    let fleet = FleetQueries::new(client.clone(), zone(), PricingTable::builtin());
    let mut d = first;
    let mut days_with_calls = 0;
    while d <= today {
        let want = local.get_summary_for_date(d);
        let got = fleet.summary_for_date(d).unwrap();
        assert_eq!(
            (got.total_calls, got.p95_duration_ms),
            (want.total_calls, want.p95_duration_ms),
            "{d}"
        );
        days_with_calls += u32::from(want.total_calls > 0);
        d = d.succ_opt().unwrap();
    }
    assert!(days_with_calls >= 3, "{days_with_calls} days with calls");

    // New records ship into v5, audio tokens included, and the view keeps
    // the histogram.
    let more = boundary_durations()[..20].to_vec();
    let mut start = NOW + 3600.0;
    start -= start % 3600.0;
    let line = |i: usize, ms: f64| {
        serde_json::json!({
            "timestamp": start + i as f64, "model": "qwen-plus", "function": "f",
            "input_tokens": 10, "output_tokens": 2, "total_tokens": 12, "cost": 0.001,
            "duration_ms": ms, "success": true, "error_msg": null,
            "input_audio_tokens": 4, "cached_audio_input_tokens": 0, "output_audio_tokens": 1
        })
    };
    let text: String = more
        .iter()
        .enumerate()
        .map(|(i, &ms)| format!("{}\n", line(i, ms)))
        .collect();
    let path = ai_usage_core::dayfile::day_file_path(dir.path(), zone().date_of(start));
    let mut bytes = std::fs::read(&path).unwrap_or_default();
    bytes.extend(text.as_bytes());
    std::fs::write(&path, bytes).unwrap();
    let mut s = shipper(&server, "v4", dir.path(), "h");
    assert_eq!(s.ship_all(Duration::from_secs(10)).unwrap().records, 20);
    assert_eq!(
        count(
            &client,
            &format!("SELECT sum(input_audio_tokens * 10 + output_audio_tokens) FROM {db}.records")
        ),
        20 * 41
    );
    let all_durations = file_durations(dir.path());
    assert_eq!(all_durations.len() as u64, total + 20);
    assert_eq!(fleet_histogram(&client), local_histogram(&all_durations));
}

/// Every duration of the day files in `dir`, as the core reads them.
fn file_durations(dir: &Path) -> Vec<f64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".jsonl") {
            for line in std::fs::read(e.path()).unwrap().split(|&c| c == b'\n') {
                if !line.is_empty() {
                    out.push(
                        ai_usage_core::dayfile::parse_record(line)
                            .unwrap()
                            .duration_ms,
                    );
                }
            }
        }
    }
    out
}
