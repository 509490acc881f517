//! Criterion: one call of the same function with and without
//! `#[track_ai_usage]`; the difference is the attribute's overhead
//! (budget: 1.5 µs p50). `cargo bench --bench macro_overhead`

use std::hint::black_box;

use ai_usage_monitor::{track_ai_usage, TokenUsage, UsageMonitor};
use criterion::{criterion_group, criterion_main, Criterion};

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

#[inline(never)]
#[track_ai_usage("实时分析", "qwen-plus", monitor = mon)]
async fn tracked_async(mon: &UsageMonitor, session_id: &str) -> Result<TokenUsage, String> {
    Ok(black_box(TokenUsage::new(1200, 300)))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mon = UsageMonitor::builder()
        .dir(dir.path())
        .replay(false)
        .build()
        .expect("monitor");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("track_ai_usage");
    g.bench_function("undecorated", |b| {
        b.iter(|| plain(black_box(&mon), black_box("live_0001")))
    });
    g.bench_function("decorated_sync", |b| {
        b.iter(|| tracked(black_box(&mon), black_box("live_0001")))
    });
    g.bench_function("decorated_async", |b| {
        b.iter(|| rt.block_on(tracked_async(black_box(&mon), black_box("live_0001"))))
    });
    g.finish();
    mon.flush().expect("flush");
}

criterion_group!(benches, bench);
criterion_main!(benches);
