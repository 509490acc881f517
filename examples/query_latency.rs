//! Query latency with a realistic history: records N calls spread over the
//! last 30 days (100,000 distinct users), restarts the monitor (timing the
//! replay of the day files), then times each query and prints one JSON line.
//!
//! `cargo run --release --example query_latency -- --records 1000000`

use std::time::Instant;

use ai_usage_monitor::{UsageEvent, UsageMonitor};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: u64 = arg("--records").map_or(Ok(1_000_000), |s| s.parse())?;
    let users: u64 = arg("--users").map_or(Ok(100_000), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;
    let zone = "+08:00".parse()?;
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
    let anchors: Vec<String> = (0..50).map(|i| format!("anchor_{i:03}")).collect();
    {
        let m = UsageMonitor::builder()
            .dir(tmp.path())
            .timezone(zone)
            .replay(false)
            .build()?;
        let now = ai_usage_monitor::now_timestamp();
        let span = 30.0 * 86_400.0;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..records {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let ts = now - span + span * (i as f64 / records as f64);
            let session = format!("live_{}", (i / 2000));
            m.record(
                &UsageEvent::new(
                    models[(rng % 7) as usize],
                    functions[((rng >> 8) % 3) as usize],
                )
                .tokens(500 + (rng >> 16) % 3000, 50 + (rng >> 32) % 800)
                .duration_ms(300.0 + ((rng >> 40) % 5000) as f64)
                .user(&user_ids[((rng >> 20) % users) as usize])
                .anchor(&anchors[((rng >> 44) % 50) as usize])
                .session(&session)
                .at(ts),
            );
        }
        m.flush()?;
    }
    let start = Instant::now();
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()?;
    // The monitor records at once and loads history in the background.
    assert!(m.wait_until_loaded(std::time::Duration::from_secs(600)));
    let replay_ms = start.elapsed().as_millis();
    assert_eq!(m.health().replay.records, records, "every record replays");
    let daily = p50_us(200, || {
        std::hint::black_box(m.get_daily_summary(0));
    });
    let dashboard = p50_us(200, || {
        std::hint::black_box(m.dashboard());
    });
    let top = p50_us(30, || {
        std::hint::black_box(m.get_top_users(10, 30));
    });
    let trend = p50_us(200, || {
        std::hint::black_box(m.get_cost_trend(30));
    });
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "daily_summary_us_p50": daily,
            "dashboard_us_p50": dashboard,
            "top_users_30d_us_p50": top,
            "cost_trend_30d_us_p50": trend,
            "replay_ms": replay_ms,
        })
    );
    Ok(())
}
