//! First-use load time and per-call pricing latency of the genai-prices
//! catalogue.
//!
//! ```sh
//! cargo run --release -p ai-usage-core --example catalogue_latency [-- --check]
//! ```
//!
//! Budgets: first use ≤ 20 ms, pricing a call p50 ≤ 300 ns. With
//! `--check` the process exits with status 1 when a budget is exceeded.
//! Per-call figures are batch means (64 calls per timed batch, so the clock's
//! own cost is amortised); p50/p99 are taken over 20,000 batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ai_usage_core::catalogue::{Catalogue, CatalogueUsage};
use chrono::{TimeZone, Utc};

const BATCH: u32 = 64;
const SAMPLES: usize = 20_000;

/// Realistic (provider hint, model name) pairs, as SDKs report them.
const CALLS: [(Option<&str>, &str); 8] = [
    (Some("anthropic"), "claude-sonnet-4-5-20250929"),
    (Some("openai"), "gpt-4o-mini-2024-07-18"),
    (None, "gpt-5"),
    (Some("google"), "gemini-2.5-flash"),
    (Some("deepseek"), "deepseek-chat"),
    (
        Some("https://openrouter.ai/api/v1"),
        "anthropic/claude-sonnet-4.5",
    ),
    (Some("aws"), "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    (None, "claude-opus-4-6"),
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn per_call_ns(mut f: impl FnMut(usize)) -> (f64, f64) {
    let mut samples = Vec::with_capacity(SAMPLES);
    for s in 0..SAMPLES {
        let start = Instant::now();
        for i in 0..BATCH as usize {
            f(s.wrapping_add(i));
        }
        samples.push(start.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn main() {
    let check = std::env::args().any(|a| a == "--check");

    let started = Instant::now();
    let catalogue = match Catalogue::builtin() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("catalogue does not load: {e}");
            std::process::exit(2);
        }
    };
    let first_use = started.elapsed();

    // A fresh parse, repeated, for the steady cost without first-touch effects.
    let json = include_str!("../data/genai-prices/data_slim.json");
    let mut reparse: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let c = Catalogue::from_json(black_box(json));
            let d = t.elapsed();
            assert!(c.is_ok());
            d
        })
        .collect();
    reparse.sort();

    let at = Utc
        .with_ymd_and_hms(2026, 8, 21, 12, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let usage = CatalogueUsage {
        input_tokens: 13_119,
        cache_read_tokens: 10_000,
        cache_write_tokens: 1_024,
        output_tokens: 503,
        ..CatalogueUsage::default()
    };
    // Warm the per-name cache (the steady state of a running service).
    for (hint, model) in CALLS {
        if catalogue.lookup(hint, model).is_none() {
            eprintln!("{model} does not resolve");
            std::process::exit(2);
        }
    }

    let (price_p50, price_p99) = per_call_ns(|i| {
        let (hint, model) = CALLS[i % CALLS.len()];
        let q = catalogue.price(black_box(hint), black_box(model), black_box(&usage), at);
        black_box(q.map(|q| q.total_nanos).unwrap_or(0));
    });
    let (lookup_p50, lookup_p99) = per_call_ns(|i| {
        let (hint, model) = CALLS[i % CALLS.len()];
        black_box(
            catalogue
                .lookup(black_box(hint), black_box(model))
                .map(|m| m.model_id().len()),
        );
    });

    let first_ms = first_use.as_secs_f64() * 1e3;
    println!("catalogue first use (parse + compile, once): {first_ms:.2} ms  [budget 20 ms]");
    println!(
        "catalogue re-parse: min {:.2} ms, median {:.2} ms",
        reparse[0].as_secs_f64() * 1e3,
        reparse[reparse.len() / 2].as_secs_f64() * 1e3
    );
    println!("price (lookup + quote), per call: p50 {price_p50:.0} ns, p99 {price_p99:.0} ns  [budget p50 300 ns]");
    println!("lookup only, per call:            p50 {lookup_p50:.0} ns, p99 {lookup_p99:.0} ns");
    if cfg!(debug_assertions) {
        println!("note: debug build; measure with --release");
    }

    if check && (first_ms > 20.0 || price_p50 > 300.0) {
        eprintln!("budget exceeded");
        std::process::exit(1);
    }
}
