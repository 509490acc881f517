//! What `#[track_ai_usage]` adds to a call: times the same function with and
//! without the attribute and prints the p50 difference as the last line,
//! `{"overhead_ns_p50":X}` (budget: 1500 ns).
//!
//! `cargo run --release --example macro_overhead`

use std::hint::black_box;
use std::time::Instant;

use ai_usage_monitor::{track_ai_usage, TokenUsage, UsageMonitor};

/// Calls per timed batch: amortises the clock read (~20 ns) over many calls.
const BATCH: usize = 50;
const BATCHES: usize = 1500;

#[inline(never)]
fn plain(mon: &UsageMonitor, session_id: &str) -> Result<TokenUsage, String> {
    let _ = (mon, session_id);
    Ok(black_box(TokenUsage::new(1200, 300)))
}

#[inline(never)]
#[track_ai_usage("实时分析", "qwen-plus", monitor = mon)]
fn tracked(mon: &UsageMonitor, session_id: &str) -> Result<TokenUsage, String> {
    Ok(black_box(TokenUsage::new(1200, 300)))
}

/// Per-call nanoseconds of each batch, sorted.
fn sample(mut f: impl FnMut()) -> Vec<f64> {
    let mut per_call: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                f();
            }
            t.elapsed().as_nanos() as f64 / BATCH as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call
}

fn p50(v: &[f64]) -> f64 {
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mon = UsageMonitor::builder()
        .dir(dir.path())
        .replay(false)
        .build()?;
    let sessions: Vec<String> = (0..64).map(|i| format!("live_{i:04}")).collect();

    // Warm up both paths (page faults, writer thread, caches).
    for (i, s) in sessions.iter().cycle().take(20_000).enumerate() {
        black_box(plain(&mon, s).ok());
        if i % 4 == 0 {
            black_box(tracked(&mon, s).ok());
        }
    }
    mon.flush()?;

    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % sessions.len();
        sessions[i].as_str()
    };
    // Interleave rounds so drift (frequency scaling, writer bursts) hits both.
    let (mut base, mut with) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        base.extend(sample(|| drop(black_box(plain(&mon, next())))));
        with.extend(sample(|| drop(black_box(tracked(&mon, next())))));
        mon.flush()?;
    }
    base.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    let (b, w) = (p50(&base), p50(&with));
    eprintln!(
        "undecorated p50 {b:.1} ns/call, decorated p50 {w:.1} ns/call ({} calls each)",
        base.len() * BATCH
    );
    println!("{{\"overhead_ns_p50\":{:.1}}}", (w - b).max(0.0));
    Ok(())
}
