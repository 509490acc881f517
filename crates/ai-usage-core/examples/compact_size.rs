//! Bytes per record on disk for compressed day files: writes demo data (the
//! live-streaming app of `ai-usage demo`) for `--days` days, compresses every
//! day with each zstd level given, and prints one JSON line per
//! level: plain and compressed bytes per record and the compression speed.
//!
//! `cargo run --release -p ai-usage-core --example compact_size -- --days 30 --levels 3,9,19`
//!
//! `--from DIR` compresses copies of DIR's day files instead (e.g. the
//! `throughput` example's output).

use std::time::Instant;

use ai_usage_core::compact::{compact_dir, CompactOptions};
use ai_usage_core::UsageMonitor;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let days: u32 = arg("--days").map_or(Ok(30), |s| s.parse())?;
    let levels: Vec<i32> = arg("--levels")
        .unwrap_or_else(|| "19".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let generated = tempfile::tempdir()?;
    let source = match arg("--from") {
        Some(d) => std::path::PathBuf::from(d),
        None => generated.path().to_path_buf(),
    };
    if arg("--from").is_none() {
        let m = UsageMonitor::builder().dir(&source).replay(false).build()?;
        ai_usage_core::demo::generate(&m, days, 7, None);
        m.flush()?;
    }
    let files = ai_usage_core::dayfile::list_day_files(&source)?;
    let last = files.last().ok_or("no day files written")?.0;
    for level in levels {
        let dir = tempfile::tempdir()?;
        for (_, path) in &files {
            std::fs::copy(path, dir.path().join(path.file_name().ok_or("name")?))?;
        }
        let opts = CompactOptions {
            older_than_days: 1,
            delete_after_days: None,
            level,
        };
        let start = Instant::now();
        let r = compact_dir(
            dir.path(),
            last + chrono::Duration::days(2),
            &opts,
            &|_, _| false,
        )?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "level": level,
                "days": r.compressed,
                "records": r.lines,
                "plain_bytes_per_record": (r.plain_bytes as f64 / r.lines.max(1) as f64 * 10.0).round() / 10.0,
                "compressed_bytes_per_record": (r.compressed_bytes as f64 / r.lines.max(1) as f64 * 10.0).round() / 10.0,
                "ratio": (r.plain_bytes as f64 / r.compressed_bytes.max(1) as f64 * 10.0).round() / 10.0,
                "mb_per_sec": (r.plain_bytes as f64 / 1e6 / secs * 10.0).round() / 10.0,
            })
        );
    }
    Ok(())
}
