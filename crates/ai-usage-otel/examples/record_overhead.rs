//! What the metrics export adds to `record` on the caller's thread: two
//! monitors in one process, one plain and one exporting over OTLP (to a
//! port where no collector listens, so every export fails and is retried:
//! the worst case for the caller), record the same realistic calls in
//! alternating rounds; prints each round's p50 and the median difference.
//!
//! `cargo run --release -p ai-usage-otel --example record_overhead -- --records 200000 --rounds 6`

use std::time::{Duration, Instant};

use ai_usage_core::{UsageEvent, UsageMonitor};
use ai_usage_otel::export::{OtlpExt, OtlpMetrics};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Per-call latencies (ns) of `n` records.
fn round(monitor: &UsageMonitor, n: usize, seed: u64, users: &[String]) -> Vec<u64> {
    let models = [
        "qwen-plus",
        "qwen-max",
        "deepseek-chat",
        "qwen-turbo",
        "glm-4-flash",
    ];
    let functions = ["实时分析", "话术生成", "问答"];
    let mut rng = seed | 1;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let ev = UsageEvent::new(
            models[(rng % 5) as usize],
            functions[((rng >> 8) % 3) as usize],
        )
        .tokens(500 + (rng >> 16) % 3000, 50 + (rng >> 32) % 800)
        .duration_ms(300.0 + ((rng >> 40) % 5000) as f64)
        .user(&users[(rng >> 20) as usize % users.len()]);
        let t = Instant::now();
        monitor.record(&ev);
        lat.push(t.elapsed().as_nanos() as u64);
    }
    lat
}

fn p50(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records = arg("--records", 200_000);
    let rounds = arg("--rounds", 6);
    let users: Vec<String> = (0..1000).map(|i| format!("user_{i}")).collect();
    let plain_dir = tempfile::tempdir()?;
    let otlp_dir = tempfile::tempdir()?;
    let plain = UsageMonitor::builder()
        .dir(plain_dir.path())
        .replay(false)
        .build()?;
    let otlp = UsageMonitor::builder()
        .dir(otlp_dir.path())
        .replay(false)
        .otlp_metrics(
            OtlpMetrics::from_env()
                .endpoint("http://127.0.0.1:9/v1/metrics")
                .export_interval(Duration::from_secs(1)),
        )
        .build()?;
    let mut diffs = Vec::new();
    for r in 0..rounds {
        // Alternate which goes first, so neither always has the warmer cache.
        let (a, b) = if r % 2 == 0 {
            (&plain, &otlp)
        } else {
            (&otlp, &plain)
        };
        let first = p50(round(a, records, r as u64 + 1, &users));
        let second = p50(round(b, records, r as u64 + 1, &users));
        let (before, after) = if r % 2 == 0 {
            (first, second)
        } else {
            (second, first)
        };
        println!("round {r}: record p50 without export {before} ns, with OTLP export {after} ns");
        diffs.push(after as i64 - before as i64);
        plain.flush()?;
        otlp.flush()?;
    }
    diffs.sort_unstable();
    println!(
        "added to record p50 by the OTLP metrics export (median of {rounds} rounds): {} ns",
        diffs[diffs.len() / 2]
    );
    Ok(())
}
