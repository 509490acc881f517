//! Careless and hostile input at the CLI's door: query arguments out of the
//! core's bounds, offsets no zone uses, empty values, ClickHouse URLs that
//! do not parse (with a password inside) and ids with control characters.

use std::io::Write;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod support;
use support::{cmd, run, stderr, BIN};

/// Exit code 2 and one `error:` line containing every `needles`.
fn refused(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.starts_with("error: "), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e}");
    }
}

fn demo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["demo", "--days", "2", "--seed", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

#[test]
fn query_arguments_outside_the_core_bounds_are_range_errors() {
    let dir = demo_dir();
    let d = dir.path();
    let started = Instant::now();
    // Each used to panic (exit 101) or walk millions of days.
    refused(
        &run(d, &["stats", "daily", "--days-ago", "100000000"]),
        &["--days-ago", "0..=90"],
    );
    refused(
        &run(d, &["stats", "daily", "--days-ago", "91"]),
        &["0..=90"],
    );
    refused(
        &run(d, &["stats", "hourly", "--hours-ago", "73"]),
        &["--hours-ago", "0..=72"],
    );
    refused(&run(d, &["trend", "--days", "10000000"]), &["1..=90"]);
    refused(&run(d, &["report", "--days", "1000000000"]), &["1..=90"]);
    refused(&run(d, &["savings", "--days", "91"]), &["1..=90"]);
    refused(
        &run(d, &["top-users", "--limit", "1000000000"]),
        &["--limit", "1..=100"],
    );
    refused(&run(d, &["top-users", "--limit", "0"]), &["1..=100"]);
    refused(
        &run(d, &["stats", "monthly", "--month", "1999-12"]),
        &["year", "2000..=2100"],
    );
    // The edges themselves are answered.
    for args in [
        &["stats", "daily", "--days-ago", "90"][..],
        &["stats", "hourly", "--hours-ago", "72"],
        &["top-users", "--limit", "100", "--days", "90"],
        &["trend", "--days", "90"],
    ] {
        let o = run(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    // Dates at the calendar's ends answer (empty) instead of panicking.
    for args in [
        &["stats", "daily", "--date", "0001-01-01"][..],
        &["stats", "daily", "--date", "9999-12-31"],
        &["stats", "hourly", "--date", "9999-12-31", "--hour", "23"],
        &["trend", "--from", "0001-01-01", "--to", "0001-01-03"],
    ] {
        let o = run(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn offsets_no_zone_uses_are_refused() {
    let dir = demo_dir();
    for odd in ["+00:07", "+00:22", "+05:50"] {
        let o = Command::new(BIN)
            .arg("--dir")
            .arg(dir.path())
            .args(["--tz", odd, "stats", "daily"])
            .env_remove("AI_USAGE_TZ")
            .output()
            .unwrap();
        refused(&o, &[odd, "00, 15, 30 or 45"]);
        let o = Command::new(BIN)
            .arg("--dir")
            .arg(dir.path())
            .args(["stats", "daily"])
            .env("AI_USAGE_TZ", odd)
            .output()
            .unwrap();
        refused(&o, &[odd]);
    }
    // Quarter-hour offsets (Nepal, Eucla, Chatham) are zones' offsets.
    for fine in ["+05:45", "+08:45", "+12:45", "-03:30"] {
        let o = Command::new(BIN)
            .arg("--dir")
            .arg(dir.path())
            .arg(format!("--tz={fine}"))
            .args(["stats", "daily"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{fine}: {}", stderr(&o));
    }
}

#[test]
fn an_empty_host_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = "http://127.0.0.1:9/";
    let o = run(dir.path(), &["--clickhouse", url, "ship", "--host-id", ""]);
    refused(&o, &["host id is empty"]);
    let o = run(
        dir.path(),
        &["--clickhouse", url, "ship", "--host-id", "  "],
    );
    refused(&o, &["host id is empty"]);
    let o = cmd(dir.path())
        .args(["--clickhouse", url, "ship"])
        .env("AI_USAGE_HOST_ID", "")
        .output()
        .unwrap();
    refused(&o, &["host id is empty"]);
}

#[test]
fn an_unparsable_clickhouse_url_is_never_printed() {
    let dir = demo_dir();
    let d = dir.path();
    let cases = [
        ("http://bob:S3CRETpw@127.0.0.1:999999/", "port"),
        ("http://bob:S3CRETpw@[::1:8123/", "IPv6"),
        ("http://bob:S3CRETpw@ch host:8123/", "host"),
        ("http://bob:S3CRETpw@:8123/", "host is empty"),
    ];
    for (url, part) in cases {
        for args in [
            &["--clickhouse", url, "stats", "daily"][..],
            &["--clickhouse", url, "ship"],
            &["--clickhouse", url, "serve", "--addr", "127.0.0.1:0"],
        ] {
            let o = run(d, args);
            refused(&o, &["invalid ClickHouse address", part]);
            let all = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
            assert!(!all.contains("S3CRET") && !all.contains("bob"), "{all}");
        }
        let o = cmd(d)
            .args(["stats", "daily"])
            .env("AI_USAGE_CLICKHOUSE", url)
            .output()
            .unwrap();
        refused(&o, &["invalid ClickHouse address", part]);
        assert!(!stderr(&o).contains("S3CRET"), "{}", stderr(&o));
    }
}

#[test]
fn tables_escape_control_characters_in_ids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = run(
        d,
        &[
            "record",
            "--model",
            "qwen-plus",
            "--function",
            "plain",
            "--input-tokens",
            "10",
            "--output-tokens",
            "5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A line already on disk (written by an older version or another tool)
    // with hostile ids: clear screen, set title, carriage return.
    let file = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let evil = "u\u{1b}[2J\u{1b}]0;pwned\u{7}\rX";
    let line = serde_json::json!({
        "timestamp": ts, "user_id": evil, "anchor_id": evil, "session_id": evil,
        "model": "qwen-plus", "function": evil, "input_tokens": 10, "output_tokens": 5,
        "total_tokens": 15, "cost": 0.0001, "duration_ms": 1.0, "success": true,
        "error_msg": null,
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    writeln!(f, "{line}").unwrap();
    drop(f);
    for args in [
        &["top-users"][..],
        &["top-anchors"],
        &["stats", "daily"],
        &["session", evil],
    ] {
        let o = run(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?} printed a raw control character: {out:?}"
        );
        assert!(out.contains("u\\u{1b}[2J"), "{args:?}: {out}");
    }
}
