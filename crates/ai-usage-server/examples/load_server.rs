//! Load-test target: records N synthetic calls (fixed seed, spread over the
//! last 30 days) into a temporary directory, then serves the API.
//!
//! ```text
//! cargo run --release -p ai-usage-server --example load_server -- --port 18090 --records 1000000
//! wrk -t2 -c32 -d10s http://127.0.0.1:18090/api/ai_usage/dashboard
//! ```

use std::sync::Arc;
use std::time::Instant;

use ai_usage_core::now_timestamp;
use ai_usage_core::UsageEvent;
use ai_usage_core::UsageMonitor;
use ai_usage_server::{ServeOptions, ServerBuilder};

const MODELS: [&str; 5] = [
    "qwen-plus",
    "qwen-max",
    "qwen-turbo",
    "doubao-pro-32k",
    "gemini-2.0-flash",
];
const FUNCTIONS: [&str; 4] = ["实时分析", "话术生成", "弹幕回复", "直播复盘"];

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name} expects a number")),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let port = arg(&args, "--port", 18090)?;
    let records = arg(&args, "--records", 1_000_000)?;
    let seed = arg(&args, "--seed", 42)?;
    let days = arg(&args, "--days", 30)?.max(1);

    let dir = tempfile::tempdir()?;
    let monitor = Arc::new(
        UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            .build()?,
    );
    // A fixed seed: every run records the same data.
    let mut rng = fastrand::Rng::with_seed(seed);
    let now = now_timestamp();
    let span = (days * 86_400) as f64;
    let started = Instant::now();
    let users: Vec<String> = (0..1000).map(|i| format!("user_{i:04}")).collect();
    let anchors: Vec<String> = (0..50).map(|i| format!("anchor_{i:03}")).collect();
    let sessions: Vec<String> = (0..2000).map(|i| format!("live_{i:05}")).collect();
    for _ in 0..records {
        let ts = now - (rng.u64(..1_000_000) as f64 / 1_000_000.0) * span;
        let mut ev = UsageEvent::new(
            MODELS[rng.usize(..MODELS.len())],
            FUNCTIONS[rng.usize(..FUNCTIONS.len())],
        )
        .tokens(200 + rng.u64(..3000), 50 + rng.u64(..800))
        .duration_ms(100.0 + rng.u64(..4000) as f64)
        .user(&users[rng.usize(..users.len())])
        .anchor(&anchors[rng.usize(..anchors.len())])
        .session(&sessions[rng.usize(..sessions.len())])
        .at(ts);
        if rng.u64(..100) < 2 {
            ev = ev.failed("timeout");
        }
        monitor.record(&ev);
    }
    monitor.flush()?;
    eprintln!(
        "recorded {records} records over {days} days in {:.1} s (dir {})",
        started.elapsed().as_secs_f64(),
        dir.path().display()
    );
    let opts = ServeOptions {
        addr: ([127, 0, 0, 1], port as u16).into(),
        ..ServeOptions::default()
    };
    eprintln!(
        "serving http://{}/api/ai_usage/dashboard (Ctrl-C to stop)",
        opts.addr
    );
    ServerBuilder::new(monitor).options(opts).serve_blocking()?;
    Ok(())
}
