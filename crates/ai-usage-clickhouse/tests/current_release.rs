//! The fleet against a current ClickHouse release's engine (26.x, through
//! chDB and our HTTP front in tests/current/chdb_http.py; see
//! tests/common/chdb.rs): the schema is created from empty and a second
//! migration does nothing; two hosts' day files shipped answer exactly what
//! the hosts answer together (the comparisons of fleet.rs's two-host test);
//! a re-ship adds nothing. The SQL, tables and views are ClickHouse 26.x's;
//! the HTTP server is not (tests/fleet.rs runs the CI's real 18.16 server).

mod common;

use std::time::Duration;

use ai_usage_clickhouse::{schema, Client, FleetQueries};
use ai_usage_core::PricingTable;
use common::chdb::ChdbFront;
use common::scenario::*;

/// The database's tables with their engines and columns, to tell that a
/// second migration changed nothing.
fn tables(client: &Client) -> Vec<Vec<String>> {
    let name = client.endpoint().database().to_string();
    client
        .query_rows(&format!(
            "SELECT t.name, t.engine, groupArray(c.name) FROM system.tables AS t \
LEFT JOIN (SELECT table, name FROM system.columns WHERE database = '{name}') AS c \
ON c.table = t.name WHERE t.database = '{name}' GROUP BY t.name, t.engine ORDER BY t.name"
        ))
        .expect("tables")
}

#[test]
fn the_fleet_scenario_runs_on_a_current_clickhouse_engine() {
    let Some(front) = ChdbFront::start() else {
        return;
    };
    let client = front.client("fleet");
    let version = client.query_rows("SELECT version()").unwrap();
    let major: u32 = version[0][0]
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("version");
    assert!(major >= 24, "a current release, not {version:?}");
    println!("ClickHouse engine {} (chDB)", version[0][0]);

    // From empty, then again: the second migration finds the current
    // version and changes nothing.
    assert_eq!(schema::migrate_in(&client, &zone()).unwrap(), 0);
    let created = tables(&client);
    assert!(created.len() >= 10, "tables and views: {created:?}");
    assert_eq!(
        schema::migrate_in(&client, &zone()).unwrap(),
        schema::SCHEMA_VERSION
    );
    assert_eq!(tables(&client), created);
    let db = client.db();
    assert_eq!(
        count(&client, &format!("SELECT count() FROM {db}.schema_version")),
        1
    );
    assert_eq!(schema::reporting_zone(&client).unwrap(), "Asia/Shanghai");

    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let na = write_demo(a.path(), 5, 1);
    let nb = write_demo(b.path(), 5, 2);
    assert!(na > 100 && nb > 100, "demo data: {na} {nb}");
    let mut sa = shipper(&front, "fleet", a.path(), "host-a");
    let mut sb = shipper(&front, "fleet", b.path(), "host-b");
    let ra = sa.ship_all(Duration::from_secs(30)).unwrap();
    let rb = sb.ship_all(Duration::from_secs(30)).unwrap();
    assert_eq!((ra.records, rb.records), (na, nb));
    assert_eq!((ra.lag_bytes, rb.lag_bytes, ra.skipped_lines), (0, 0, 0));

    assert_answers_are_the_hosts_sum(&client, a.path(), b.path(), na + nb);

    // A re-ship (same process, a fresh one, one without its checkpoint)
    // sends nothing.
    let before = row_counts(&client);
    assert_eq!(before, (na + nb, na + nb, na + nb));
    assert_eq!(sa.ship_all(Duration::from_secs(10)).unwrap().records, 0);
    drop(sa);
    let mut again = shipper(&front, "fleet", a.path(), "host-a");
    assert_eq!(again.ship_all(Duration::from_secs(10)).unwrap().records, 0);
    drop(again);
    std::fs::remove_file(a.path().join(ai_usage_clickhouse::CHECKPOINT_FILE)).unwrap();
    let mut fresh = shipper(&front, "fleet", a.path(), "host-a");
    assert_eq!(fresh.ship_all(Duration::from_secs(10)).unwrap().records, 0);
    assert_eq!(row_counts(&client), before);

    // Errors come back as the server's: a bad statement is a server error
    // naming ClickHouse's code, not a transport failure.
    let err = client
        .query_rows(&format!("SELECT no_such_column FROM {db}.records"))
        .unwrap_err();
    assert!(
        matches!(&err, ai_usage_clickhouse::Error::Server { message, .. } if message.contains("Code: 47")),
        "{err}"
    );
    drop(sb);
    drop(front);
}

#[test]
fn a_v1_database_upgrades_and_the_audit_and_rebuild_work_on_a_current_engine() {
    let Some(front) = ChdbFront::start() else {
        return;
    };
    // v1 holding two rows (one twice): RENAME, ALTER … ADD COLUMN, the
    // `FINAL` copy with money × 1000, the aggregates filled from it.
    let old = front.client("from_v1");
    schema::create_v1_for_tests(&old).unwrap();
    let db = old.db();
    for (id, offset, ts, tokens, cost, ok) in [
        (1, 0, "1761480000.5", 5, 1_500_000, 1),
        (2, 100, "1761483700", 7, 2_500_000, 0),
        (2, 100, "1761483700", 7, 2_500_000, 0),
    ] {
        old.execute(&format!(
            "INSERT INTO {db}.records (id, host, file, offset, end_offset, day, timestamp, \
             session_id, model, input_tokens, total_tokens, cost_micros, currency, priced, \
             success) VALUES ({id}, 'h', 'usage_2025-10-26.jsonl', {offset}, {end}, \
             '2025-10-26', {ts}, 's1', 'm', {tokens}, {tokens}, {cost}, 'CNY', 1, {ok})",
            end = offset + 100
        ))
        .unwrap();
    }
    assert_eq!(schema::migrate_in(&old, &zone()).unwrap(), 1);
    assert_eq!(
        schema::current_version(&old).unwrap(),
        schema::SCHEMA_VERSION
    );
    let want = vec![vec!["2", "1", "12", "4000000000"]];
    for table in schema::AGGREGATE_TABLES {
        assert_eq!(agg_sums(&old, table), want, "{table}");
    }
    assert_eq!(schema::migrate(&old).unwrap(), schema::SCHEMA_VERSION);
    assert_eq!(row_counts(&old), (2, 2, 2));
    let day = chrono::NaiveDate::from_ymd_opt(2025, 10, 26).unwrap();
    assert!(schema::aggregates_match(&old, day, day).unwrap());
    let fleet = FleetQueries::new(old.clone(), zone(), PricingTable::builtin());
    let s = fleet.summary_for_date(day).unwrap();
    assert_eq!(
        (s.total_calls, s.costs.get(ai_usage_core::Currency::CNY)),
        (2, ai_usage_core::Money::from_micros(4_000_000))
    );
    let session = fleet.session("s1").unwrap().unwrap();
    assert_eq!((session.calls, session.duration_seconds), (2, 3699.5));

    // A duplicate behind the shipper's back shows in the audit; a rebuild
    // from `records FINAL` makes the aggregates exact again.
    old.execute(&format!(
        "INSERT INTO {db}.records (id, host, file, offset, end_offset, day, timestamp, model, \
         input_tokens, total_tokens, cost_nanos, currency, priced, success) VALUES \
         (2, 'h', 'usage_2025-10-26.jsonl', 100, 200, '2025-10-26', 1761483700, 'm', 7, 7, \
         2500000000, 'CNY', 1, 0)"
    ))
    .unwrap();
    assert!(!schema::aggregates_match(&old, day, day).unwrap());
    schema::rebuild_aggregates(&old).unwrap();
    assert!(schema::aggregates_match(&old, day, day).unwrap());
    assert_eq!(agg_sums(&old, "agg_model"), want);

    // An insert whose views missed its rows (views detached while it
    // ran), its outcome unknown to the shipper (checkpoint lost): the next
    // pass finds and fills exactly the missing buckets.
    let dir = tempfile::tempdir().unwrap();
    let n = write_demo(dir.path(), 3, 5);
    let client = front.client("repair");
    schema::migrate(&client).unwrap();
    let rdb = client.db();
    for table in schema::AGGREGATE_TABLES {
        client
            .execute(&format!("DETACH TABLE {rdb}.{table}_mv"))
            .unwrap();
    }
    let shipped = shipper(&front, "repair", dir.path(), "h")
        .ship_all(Duration::from_secs(30))
        .unwrap();
    assert_eq!(shipped.records, n);
    for table in schema::AGGREGATE_TABLES {
        client
            .execute(&format!("ATTACH TABLE {rdb}.{table}_mv"))
            .unwrap();
    }
    let utc_day = chrono::DateTime::from_timestamp(NOW as i64, 0)
        .unwrap()
        .date_naive();
    let (from, to) = (
        utc_day - chrono::Duration::days(5),
        utc_day + chrono::Duration::days(1),
    );
    assert!(!schema::aggregates_match(&client, from, to).unwrap());
    std::fs::remove_file(dir.path().join(ai_usage_clickhouse::CHECKPOINT_FILE)).unwrap();
    let r = shipper(&front, "repair", dir.path(), "h")
        .ship_all(Duration::from_secs(30))
        .unwrap();
    assert_eq!(r.records, 0);
    assert!(r.aggregate_repairs > 0, "{r:?}");
    assert!(schema::aggregates_match(&client, from, to).unwrap());
    assert_eq!(row_counts(&client), (n, n, n));
}
