//! What `#[track_ai_usage]` adds to a call: times the same function with and
//! without the attribute and prints the p50 difference as the last line,
//! `{"overhead_ns_p50":X,"span_ns_p50":Y}` (budget: 1500 ns).
//!
//! `span_ns_p50` is what the call's `tracing` span costs with no subscriber
//! installed (budget: 20 ns): the same decorated function, once as the
//! attribute expands it and once expanded against a copy of the facade's
//! `__private` whose `span!` is `Span::none()`, in the same run.
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

/// The facade's macro support with the span taken out: `crate = …` points
/// the attribute here, so the code differs from `tracked`'s only in the span.
mod without_span {
    pub mod __private {
        pub use ai_usage_monitor::__private::*;
        /// Shadows the glob's `tracing`: a span that is never opened.
        pub mod tracing {
            macro_rules! no_span {
                ($($ignored:tt)*) => {
                    ::ai_usage_monitor::__private::tracing::Span::none()
                };
            }
            pub(crate) use no_span as span;
        }
    }
}

#[inline(never)]
#[track_ai_usage("实时分析", "qwen-plus", monitor = mon, crate = crate::without_span)]
fn tracked_without_span(mon: &UsageMonitor, session_id: &str) -> Result<TokenUsage, String> {
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
            black_box(tracked_without_span(&mon, s).ok());
        }
    }
    mon.flush()?;

    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % sessions.len();
        sessions[i].as_str()
    };
    // Interleave rounds so drift (frequency scaling, writer bursts) hits both.
    let (mut base, mut with, mut no_span) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..4 {
        base.extend(sample(|| drop(black_box(plain(&mon, next())))));
        with.extend(sample(|| drop(black_box(tracked(&mon, next())))));
        mon.flush()?;
        no_span.extend(sample(|| {
            drop(black_box(tracked_without_span(&mon, next())))
        }));
        mon.flush()?;
    }
    base.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    no_span.sort_by(f64::total_cmp);
    let (b, w, n) = (p50(&base), p50(&with), p50(&no_span));
    eprintln!(
        "undecorated p50 {b:.1} ns/call, decorated p50 {w:.1} ns/call, decorated without \
         the span p50 {n:.1} ns/call ({} calls each)",
        base.len() * BATCH
    );
    println!(
        "{{\"overhead_ns_p50\":{:.1},\"span_ns_p50\":{:.1}}}",
        (w - b).max(0.0),
        w - n
    );
    Ok(())
}
