//! Start-up and query figures at scale: writes N calls over the last D days
//! (U distinct users, 200 anchors, 2,000 sessions a day) into a records
//! directory, then starts a monitor over it twice, each in a fresh process
//! (so RSS is that of a monitor holding the history, not of the writer):
//!
//! - cold: the first start (no rollup snapshot yet), then a clean stop;
//! - warm: a restart after that clean stop (the snapshot exists).
//!
//! Each start times the first record accepted (`accept_ms`) and the moment
//! all history is loaded (`ready_ms`). The warm start also times the
//! queries. Prints one JSON line (the warm figures, plus the cold ones as
//! `cold_*`).
//!
//! `cargo run --release --example scale -- --records 1000000 --days 30 --users 100000`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ai_usage_monitor::{UsageEvent, UsageMonitor};
use serde_json::{json, Value};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Median of `runs` timings of `f`, in microseconds.
fn p50_us(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2] * 10.0).round() / 10.0
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Resident memory of this process (VmRSS), in MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| (kb / 1024.0).round())
}

/// Bytes of the rollup snapshot(s) in `dir` (0 when there is none).
fn snapshot_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rollups"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn generate(
    dir: &Path,
    records: u64,
    days: u64,
    users: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let models = [
        "qwen-plus",
        "qwen-max",
        "deepseek-chat",
        "qwen-turbo",
        "doubao-pro-32k",
        "glm-4-flash",
        "gemini-2.0-flash",
    ];
    let functions = ["实时分析", "话术生成", "问答"];
    let user_ids: Vec<String> = (0..users).map(|i| format!("user_{i}")).collect();
    let anchors: Vec<String> = (0..200).map(|i| format!("anchor_{i:03}")).collect();
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse()?)
        .replay(false)
        .build()?;
    // Ends an hour ago: every record is history, none is "now".
    let end = ai_usage_monitor::now_timestamp() - 3600.0;
    let span = days as f64 * 86_400.0;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..records {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = span * (i as f64 / records as f64);
        let session = format!("live_{}_{}", (at / 86_400.0) as u64, (rng >> 50) % 2000);
        m.record(
            &UsageEvent::new(
                models[(rng % 7) as usize],
                functions[((rng >> 8) % 3) as usize],
            )
            .tokens(500 + (rng >> 16) % 3000, 50 + (rng >> 32) % 800)
            .duration_ms(300.0 + ((rng >> 40) % 5000) as f64)
            .user(&user_ids[((rng >> 20) % users) as usize])
            .anchor(&anchors[((rng >> 44) % 200) as usize])
            .session(&session)
            .at(end - span + at),
        );
    }
    m.flush()?;
    Ok(())
}

/// One start in this process: prints its figures as a JSON line.
fn measure(dir: &Path, records: u64, queries: bool) -> Result<(), Box<dyn std::error::Error>> {
    let snapshot_before = snapshot_bytes(dir);
    let start = Instant::now();
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse()?)
        .build()?;
    m.record(&UsageEvent::new("qwen-plus", "实时分析").tokens(10, 10));
    let accept = start.elapsed();
    let ready = match m.wait_until_loaded(Duration::from_secs(600)) {
        true => start.elapsed(),
        false => return Err("history did not load within 600 s".into()),
    };
    let health = m.health();
    assert_eq!(
        health.records_in_memory,
        records + 1,
        "every record counted exactly once"
    );
    let mut out = json!({
        "accept_ms": ms(accept),
        "ready_ms": ms(ready),
        "snapshot_bytes": snapshot_before,
        "load": serde_json::to_value(&health.load)?,
    });
    if queries {
        let daily = p50_us(200, || {
            std::hint::black_box(m.get_daily_summary(1));
        });
        let dashboard = p50_us(200, || {
            std::hint::black_box(m.dashboard());
        });
        let top = p50_us(30, || {
            std::hint::black_box(m.get_top_users(10, 30));
        });
        out["daily_summary_us_p50"] = json!(daily);
        out["dashboard_us_p50"] = json!(dashboard);
        out["top_users_30d_us_p50"] = json!(top);
    }
    out["rss_mb"] = json!(rss_mb());
    out["groups"] = json!(m.health().rollup_groups);
    println!("{out}");
    // A clean stop (writes the snapshot the warm start reads).
    drop(m);
    Ok(())
}

/// Runs this example again as a child measuring one start.
fn child(dir: &Path, records: u64, queries: bool) -> Result<Value, Box<dyn std::error::Error>> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--measure")
        .arg(dir)
        .args(["--records", &records.to_string()]);
    if queries {
        cmd.arg("--queries");
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "measuring child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let line = text
        .lines()
        .last()
        .ok_or("measuring child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: u64 = arg("--records").map_or(Ok(1_000_000), |s| s.parse())?;
    if let Some(dir) = arg("--measure") {
        let queries = std::env::args().any(|a| a == "--queries");
        // The first record accepted in each start adds one.
        return measure(Path::new(&dir), records, queries);
    }
    let days: u64 = arg("--days").map_or(Ok(30), |s| s.parse())?;
    let users: u64 = arg("--users").map_or(Ok(100_000), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;
    // `--keep DIR`: the records are written to DIR (which must not exist)
    // and left there, e.g. for `ai-usage --dir DIR serve` (see
    // `crates/ai-usage-server/bench/http_latency.sh`).
    let keep = arg("--keep").map(PathBuf::from);
    let dir = match &keep {
        Some(d) if d.exists() => return Err(format!("{} already exists", d.display()).into()),
        Some(d) => d.clone(),
        None => tmp.path().to_path_buf(),
    };
    let generated = Instant::now();
    generate(&dir, records, days, users)?;
    let generate_ms = generated.elapsed().as_millis();
    let cold = child(&dir, records, false)?;
    // The cold start's own record is history now.
    let mut warm = child(&dir, records + 1, true)?;
    warm["records"] = json!(records);
    warm["days"] = json!(days);
    warm["users"] = json!(users);
    warm["generate_ms"] = json!(generate_ms);
    for key in ["accept_ms", "ready_ms", "rss_mb", "load"] {
        warm[format!("cold_{key}")] = cold[key].clone();
    }
    println!("{warm}");
    Ok(())
}
