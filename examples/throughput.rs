//! Records N realistic calls through the global-style API from this thread,
//! flushes, and prints one JSON line of figures (the README's performance table).
//!
//! `cargo run --release --example throughput -- --records 1000000 --dir DIR`

use std::time::Instant;

use ai_usage_monitor::{init_global, record_ai_usage, MonitorBuilder, UsageEvent};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: usize = arg("--records").map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = match arg("--dir") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("ai-usage-throughput-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let guard = init_global(MonitorBuilder::default().dir(&dir).replay(false))?;

    // Realistic variety, prepared up front so the loop measures recording only.
    let models = [
        "qwen-plus",
        "qwen-max",
        "deepseek-chat",
        "qwen-turbo",
        "doubao-pro-32k",
        "glm-4-flash",
    ];
    let functions = ["实时分析", "话术生成", "问答"];
    let users: Vec<String> = (0..1000).map(|i| format!("user_{i}")).collect();
    let anchors: Vec<String> = (0..20).map(|i| format!("anchor_{i:03}")).collect();
    let sessions: Vec<String> = (0..200)
        .map(|i| format!("live_20251026_{:06}", 120000 + i))
        .collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut lat = Vec::with_capacity(records);
    let start = Instant::now();
    for i in 0..records {
        let r = next();
        let ev = UsageEvent::new(models[(r % 6) as usize], functions[((r >> 8) % 3) as usize])
            .tokens(500 + (r >> 16) % 3000, 50 + (r >> 32) % 800)
            .duration_ms(300.0 + ((r >> 40) % 5000) as f64)
            .user(&users[(r >> 20) as usize % users.len()])
            .anchor(&anchors[(r >> 28) as usize % anchors.len()])
            .session(&sessions[i / 5000 % sessions.len()]);
        let t = Instant::now();
        record_ai_usage(&ev);
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let recorded = start.elapsed().as_secs_f64();
    ai_usage_monitor::get_usage_monitor().flush()?;
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "recording took {recorded:.3} s, the final flush {:.3} s",
        seconds - recorded
    );
    drop(guard);
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let bytes: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "records_per_sec": (records as f64 / seconds).round(),
            "record_ns_p50": pct(0.50),
            "record_ns_p99": pct(0.99),
            "bytes_per_record": (bytes as f64 / records.max(1) as f64 * 10.0).round() / 10.0,
        })
    );
    Ok(())
}
