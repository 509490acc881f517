//! Ship throughput, query latency and bytes per record against a running
//! ClickHouse server.
//!
//! ```text
//! cargo run --release -p ai-usage-clickhouse --example fleet_bench -- \
//!     http://127.0.0.1:8123 [records=2000000] [days=30]
//! ```
//! Writes `records` synthetic calls over `days` day files into a temp dir,
//! ships them into a fresh database `bench_<pid>` (reporting zone
//! Asia/Shanghai), then times the queries and drops the database.
//!
//! `FLEET_BENCH_DB=name` reuses a database a previous run kept
//! (`FLEET_BENCH_KEEP=1`): only the queries are timed.
//!
//! Profiling: with env `CLICKHOUSE_PID` (the server's pid, same machine) it
//! prints the CPU seconds the server and this process spent shipping; with
//! `AIU_BENCH_NO_VIEWS=1` it detaches the aggregates' views before shipping
//! (what the views cost) and stops after the ship; `AIU_BENCH_BATCH_ROWS`
//! sets the rows per insert.

use std::time::{Duration, Instant};

use ai_usage_clickhouse::{schema, Client, Endpoint, FleetQueries, Shipper, ShipperConfig};
use ai_usage_core::{Currency, Money, PricingTable, UsageRecord, Zone};

const MODELS: [&str; 6] = [
    "qwen-plus",
    "qwen-max",
    "deepseek-chat",
    "doubao-pro-32k",
    "gpt-4o-mini",
    "glm-4",
];
const FUNCTIONS: [&str; 5] = ["实时分析", "弹幕回复", "直播总结", "文案生成", "翻译"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8123".into());
    let records: u64 = args.get(1).map_or(Ok(2_000_000), |s| s.parse())?;
    let days: u64 = args.get(2).map_or(Ok(30), |s| s.parse())?;
    let zone: Zone = "Asia/Shanghai".parse()?;
    let end = ai_usage_core::now_timestamp().floor();
    let client = match std::env::var("FLEET_BENCH_DB") {
        Ok(db) => Client::new(Endpoint::parse(&url, &db)?, Duration::from_secs(300)),
        Err(_) => match load(&url, records, days, zone, end)? {
            Some(client) => client,
            None => return Ok(()),
        },
    };
    let db = client.db();
    let fleet = FleetQueries::new(client.clone(), zone, PricingTable::builtin());
    let today = zone.date_of(end);
    let p50 = |name: &str,
               f: &dyn Fn() -> Result<(), ai_usage_clickhouse::Error>|
     -> Result<(), ai_usage_clickhouse::Error> {
        let mut times = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            f()?;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{name}: p50 {:.1?}, max {:.1?}",
            times[times.len() / 2],
            times[times.len() - 1]
        );
        Ok(())
    };
    println!("load average before the queries: {}", load_average());
    let yesterday = today - chrono::Duration::days(1);
    p50("daily summary (yesterday)", &|| {
        fleet.summary_for_date(yesterday).map(|_| ())
    })?;
    p50("hourly summary", &|| {
        fleet.summary_for_hour(yesterday, 20).map(|_| ())
    })?;
    p50("30-day trend", &|| {
        fleet
            .trend(today - chrono::Duration::days(29), today)
            .map(|_| ())
    })?;
    p50("top 10 users, 7 days", &|| {
        fleet
            .top(
                ai_usage_core::RankKind::User,
                today - chrono::Duration::days(6),
                today,
                ai_usage_core::RankBy::Tokens,
                10,
            )
            .map(|_| ())
    })?;
    p50("dashboard", &|| fleet.dashboard().map(|_| ()))?;
    p50("forecast", &|| fleet.forecast().map(|_| ()))?;
    let budgets = [ai_usage_core::Budget::new(
        "fleet",
        ai_usage_core::BudgetScope::Global,
        ai_usage_core::BudgetPeriod::Monthly,
        Money::from_micros(1_000_000_000_000),
        Currency::CNY,
    )];
    p50("budgets (monthly, global)", &|| {
        fleet.budget_status(&budgets).map(|_| ())
    })?;
    p50("session", &|| fleet.session("live_3_7").map(|_| ()))?;
    println!("load average after the queries: {}", load_average());
    if std::env::var_os("FLEET_BENCH_KEEP").is_some() {
        println!("kept database {db}");
    } else {
        client.execute(&format!("DROP DATABASE {db}"))?;
    }
    Ok(())
}

/// Writes the day files, ships them into a new database and reports sizes.
fn load(
    url: &str,
    records: u64,
    days: u64,
    zone: Zone,
    end: f64,
) -> Result<Option<Client>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;

    // Synthetic day files (epoch days in UTC+8 are the file days).
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(1);
    let start = end - days as f64 * 86_400.0;
    let per_day = records / days;
    let mut line = Vec::with_capacity(512);
    for d in 0..days {
        let day_start = start + d as f64 * 86_400.0;
        let date = zone.date_of(day_start + 43_200.0);
        let path = ai_usage_core::dayfile::day_file_path(dir.path(), date);
        let mut buf = Vec::with_capacity(per_day as usize * 330);
        for i in 0..per_day {
            let input = rng.u64(100..4000);
            let output = rng.u64(10..800);
            let r = UsageRecord {
                timestamp: day_start + i as f64 * 86_400.0 / per_day as f64,
                user_id: Some(format!("{}", 10_000 + rng.u32(0..10_000))),
                anchor_id: Some(format!("anchor_{}", rng.u32(0..200))),
                session_id: Some(format!("live_{d}_{}", rng.u32(0..50))),
                model: MODELS[rng.usize(0..MODELS.len())].into(),
                function: FUNCTIONS[rng.usize(0..FUNCTIONS.len())].into(),
                input_tokens: input,
                output_tokens: output,
                total_tokens: input + output,
                cost: Money::from_micros(rng.i64(10..50_000)),
                duration_ms: rng.f64() * 5000.0,
                success: rng.u8(0..100) > 2,
                currency: Some(Currency::CNY),
                ..UsageRecord::default()
            };
            line.clear();
            r.write_line(&mut line);
            buf.extend_from_slice(&line);
        }
        std::fs::write(path, buf)?;
    }
    let bytes: u64 = std::fs::read_dir(dir.path())?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let total = per_day * days;
    println!(
        "wrote {total} records ({} MB of day files) in {:.1?}",
        bytes >> 20,
        started.elapsed()
    );

    let db = format!("bench_{}", std::process::id());
    let endpoint = Endpoint::parse(url, &db)?;
    // The reporting zone is the one the queries use.
    schema::migrate_in(
        &Client::new(endpoint.clone(), Duration::from_secs(60)),
        &zone,
    )?;
    let mut cfg = ShipperConfig::new(dir.path(), endpoint);
    cfg.host_id = Some("bench".into());
    if let Some(n) = std::env::var("AIU_BENCH_BATCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.batch_rows = n;
    }
    let mut shipper = Shipper::open(cfg)?;
    let client = shipper.client().clone();
    let no_views = std::env::var("AIU_BENCH_NO_VIEWS").is_ok_and(|v| v == "1");
    if no_views {
        for table in schema::AGGREGATE_TABLES {
            client.execute(&format!("DETACH TABLE `{db}`.{table}_mv"))?;
        }
    }
    let server_pid = std::env::var("CLICKHOUSE_PID").ok();
    let (server_cpu, own_cpu) = (
        cpu_seconds(server_pid.as_deref()),
        cpu_seconds(Some("self")),
    );
    let load = load_average();
    let t = Instant::now();
    let report = shipper.ship_all(Duration::from_secs(30))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "shipped {} records in {secs:.2} s: {:.0} records/s ({:.1} MB/s of day files), \
         load average before: {}",
        report.records,
        report.records as f64 / secs,
        bytes as f64 / secs / 1e6,
        load
    );
    if let (Some(s0), Some(s1)) = (server_cpu, cpu_seconds(server_pid.as_deref())) {
        println!("  server CPU while shipping: {:.2} s", s1 - s0);
    }
    if let (Some(o0), Some(o1)) = (own_cpu, cpu_seconds(Some("self"))) {
        println!("  shipper CPU while shipping: {:.2} s", o1 - o0);
    }
    if no_views {
        // A database with detached tables cannot be dropped.
        for table in schema::AGGREGATE_TABLES {
            client.execute(&format!("ATTACH TABLE `{db}`.{table}_mv"))?;
        }
        client.execute(&format!("DROP DATABASE `{db}`"))?;
        return Ok(None);
    }
    client.execute(&format!("OPTIMIZE TABLE `{db}`.records FINAL"))?;
    for table in schema::AGGREGATE_TABLES {
        client.execute(&format!("OPTIMIZE TABLE `{db}`.{table} FINAL"))?;
    }
    for table in std::iter::once("records").chain(schema::AGGREGATE_TABLES) {
        let rows = client.query_rows(&format!(
            "SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) \
             FROM system.parts WHERE database = '{db}' AND table = '{table}' AND active"
        ))?;
        if let Some([r, c, u]) = rows.first().map(Vec::as_slice) {
            let (r, c, u): (f64, f64, f64) = (r.parse()?, c.parse()?, u.parse()?);
            println!(
                "{table}: {r} rows, {:.1} compressed bytes/record ({:.1} uncompressed), per shipped record {:.1}",
                c / r.max(1.0),
                u / r.max(1.0),
                c / total as f64
            );
        }
    }

    Ok(Some(client))
}

/// The 1, 5 and 15-minute load averages (`/proc/loadavg`; empty elsewhere).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// User + system CPU seconds of a process (`self` or a pid), from
/// `/proc/PID/stat` (Linux; clock ticks of 1/100 s); `None` elsewhere.
fn cpu_seconds(pid: Option<&str>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
