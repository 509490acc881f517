//! The fleet's CSV exports against a real ClickHouse server: two hosts'
//! day files shipped to one server export exactly the CSV files a local
//! monitor writes over both hosts' files merged (same rows in the same
//! order, same sums, formula-like text neutralised).

mod common;

use std::path::Path;
use std::time::Duration;

use ai_usage_clickhouse::{schema, FleetQueries, Shipper, ShipperConfig};
use ai_usage_core::{PricingTable, UsageMonitor, Zone};
use common::Server;

fn zone() -> Zone {
    "Asia/Shanghai".parse().expect("zone")
}

fn monitor(dir: &Path, zone: Zone, replay: bool) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone(zone)
        .retention_days(3660)
        .replay(replay)
        .build()
        .expect("monitor")
}

/// Appends raw lines to the day file of `date` in `dir`.
fn append(dir: &Path, date: chrono::NaiveDate, lines: &[serde_json::Value]) {
    use std::io::Write;
    let path = ai_usage_core::dayfile::day_file_path(dir, date);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// Host A's files, then host B's, per day file: the local view of both.
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

/// Sums of a numeric column over the data rows of a CSV text.
fn column_sum(csv: &str, column: &str) -> u64 {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == column).unwrap();
    let mut r = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
    r.records()
        .map(|rec| rec.unwrap()[i].parse::<u64>().unwrap())
        .sum()
}

#[test]
fn fleet_csv_exports_equal_the_local_exports_over_both_hosts() {
    let Some(server) = Server::start() else {
        return;
    };
    let now = ai_usage_core::now_timestamp();
    let (a, b, both) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut written = 0;
    for (dir, seed) in [(a.path(), 11), (b.path(), 12)] {
        let m = monitor(dir, zone(), false);
        written += ai_usage_core::demo::generate_at(&m, 3, seed, now, None).records;
        m.shutdown().unwrap();
    }
    // Hand-written calls: formula-like ids and names, another currency,
    // text that needs CSV quoting, audio tokens, and the same instant on
    // both hosts (the order then follows host, file, line).
    // A day of their own (before the demo's), so pages of one row stay few;
    // a fraction binary floats cannot hold exactly, as the page key must
    // round-trip through ClickHouse's text and a SQL literal.
    let t = (now - 10.0 * 86_400.0).floor() + 0.123_456_7;
    let date = zone().date_of(t);
    let call = |user: &str, function: &str, cost: f64, currency: &str| {
        serde_json::json!({
            "timestamp": t, "user_id": user, "anchor_id": "@anchor", "session_id": "-s",
            "model": "gpt-4o", "function": function, "input_tokens": 100,
            "output_tokens": 20, "total_tokens": 120, "cost": cost, "currency": currency,
            "duration_ms": 33.25, "success": false, "error_msg": "bad, \"quoted\"\nline",
            "request_id": "+r", "tags": ["=t1", "t2"], "provider": "openai",
            "cache_write_tokens": 3, "cached_input_tokens": 20, "input_audio_tokens": 30,
            "cached_audio_input_tokens": 10, "output_audio_tokens": 5
        })
    };
    append(
        a.path(),
        date,
        &[
            call("=HYPERLINK(\"http://x\",\"y\")", "+cmd", 0.001234, "USD"),
            call("a1", "实时分析", 0.5, "CNY"),
        ],
    );
    append(b.path(), date, &[call("b1", "+cmd", 0.000001, "USD")]);
    written += 3;
    merge_dirs(&[a.path(), b.path()], both.path());

    schema::migrate_in(&server.client("fleet"), &zone()).unwrap();
    for (dir, host) in [(a.path(), "host-a"), (b.path(), "host-b")] {
        let mut cfg = ShipperConfig::new(dir, server.endpoint("fleet"));
        cfg.host_id = Some(host.to_string());
        Shipper::open(cfg)
            .unwrap()
            .ship_all(Duration::from_secs(10))
            .unwrap();
    }

    // The daily CSV: from the aggregates in the reporting zone, from raw
    // rows in a zone with a half-hour offset.
    for z in [zone(), "+05:30".parse().unwrap()] {
        let fleet = FleetQueries::new(server.client("fleet"), z, PricingTable::builtin());
        let local = monitor(both.path(), z, true);
        let (from, to) = fleet.last_days(15);
        assert_eq!((from, to), local.last_days(15));
        for bom in [false, true] {
            let got = fleet.daily_csv(from, to, bom).unwrap();
            let want = local.daily_csv(from, to, bom).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap(),
                "daily CSV in {z}, bom {bom}"
            );
        }
        let text = String::from_utf8(fleet.daily_csv(from, to, false).unwrap()).unwrap();
        assert_eq!(column_sum(&text, "calls"), written, "every call in {z}");
        assert!(text.contains(",'+cmd,"), "function neutralised: {text}");
    }

    // The records CSV, in the zone the files were written in (their names
    // are that zone's dates).
    let fleet = FleetQueries::new(server.client("fleet"), zone(), PricingTable::builtin());
    let local = monitor(both.path(), zone(), true);
    let (from, to) = fleet.last_days(15);
    let out = tempfile::tempdir().unwrap();
    let want = local
        .export_records_csv(Some(&out.path().join("local.csv")), from, to, false)
        .unwrap();
    let want = std::fs::read_to_string(want).unwrap();
    let got = fleet
        .write_records_csv(from, to, false, Vec::new())
        .unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), want, "records CSV");
    // Pages of 1 and 2 rows over the hand-written calls' day: page
    // boundaries fall inside the group of calls at one instant.
    let day = local
        .export_records_csv(Some(&out.path().join("day.csv")), date, date, false)
        .unwrap();
    let day = std::fs::read_to_string(day).unwrap();
    for batch in [1, 2] {
        let got = fleet
            .write_records_csv_in_batches(date, date, false, Vec::new(), batch)
            .unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            day,
            "records CSV, {batch} rows a page"
        );
    }
    assert_eq!(
        csv::Reader::from_reader(want.as_bytes()).records().count() as u64,
        written
    );
    assert_eq!(
        column_sum(&want, "total_tokens"),
        column_sum(
            &String::from_utf8(fleet.daily_csv(from, to, false).unwrap()).unwrap(),
            "total_tokens"
        )
    );
    // The audio columns carry the hand-written calls' tokens (and the
    // fleet's CSV equals this one, above).
    for (column, per_call) in [
        ("input_audio_tokens", 30),
        ("cached_audio_input_tokens", 10),
        ("output_audio_tokens", 5),
    ] {
        assert_eq!(column_sum(&want, column), 3 * per_call, "{column}");
    }
    assert!(want.contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""));
    assert!(want.contains(",'@anchor,'-s,"));
    // The written file is named like a local export.
    let path = fleet
        .export_records_csv(out.path(), None, from, to, true)
        .unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("usage_records_") && name.ends_with(".csv"),
        "{name}"
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..3], "\u{feff}".as_bytes());
    assert_eq!(&bytes[3..], want.as_bytes());
}
