//! The demo generator: deterministic, realistic shape.

use ai_usage_core::demo;
use ai_usage_core::Currency;
use ai_usage_core::UsageMonitor;
use ai_usage_core::Zone;

fn monitor(dir: &std::path::Path) -> UsageMonitor {
    let zone: Zone = "+08:00".parse().unwrap();
    UsageMonitor::builder()
        .dir(dir)
        .timezone(zone)
        .replay(false)
        .build()
        .unwrap()
}

/// 2025-10-26 23:00 +08:00.
const NOW: f64 = 1_761_490_800.0;

fn day_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("usage_"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_seed_same_data_and_a_realistic_month() {
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (m1, m2, m3) = (monitor(d1.path()), monitor(d2.path()), monitor(d3.path()));
    let calls = std::cell::Cell::new(0u64);
    let progress = |done: u64, total: u64| {
        assert!(done <= total);
        calls.set(calls.get() + 1);
    };
    let s1 = demo::generate_at(&m1, 30, 7, NOW, Some(&progress));
    let s2 = demo::generate_at(&m2, 30, 7, NOW, None);
    let s3 = demo::generate_at(&m3, 30, 8, NOW, None);
    assert!(calls.get() > 0, "progress was reported");
    assert_eq!(s1, s2);
    assert_ne!(s1.records, s3.records, "another seed, other data");
    for m in [&m1, &m2] {
        m.flush().unwrap();
    }
    assert_eq!(
        day_files(d1.path()),
        day_files(d2.path()),
        "identical day files"
    );
    assert!(
        (20_000..=60_000).contains(&s1.records),
        "{} records",
        s1.records
    );
    assert!(s1.last_timestamp <= NOW);
    assert!(s1.first_timestamp >= NOW - 31.0 * 86_400.0);
    let fail_pct = s1.failed as f64 * 100.0 / s1.records as f64;
    assert!((1.0..=3.0).contains(&fail_pct), "{fail_pct} % failed");
    assert!(
        s1.costs.get(Currency::USD).micros() > 0,
        "a little Gemini in USD"
    );
    assert!(s1.costs.get(Currency::CNY) > s1.costs.get(Currency::USD));
    assert_eq!(s1.anchors, 6);
    // Sessions are the broadcasts, named live_YYYYMMDD_HHMMSS.
    let sessions = m1.recent_sessions(usize::MAX);
    assert_eq!(sessions.len() as u64, s1.sessions);
    assert!(
        sessions.iter().all(|s| s.session_id.starts_with("live_")
            && s.session_id.len() == "live_20251026_193000".len()),
        "session ids"
    );
    let zone: Zone = "+08:00".parse().unwrap();
    let to = zone.date_of(NOW);
    let from = to - chrono::Duration::days(40);
    let trend = m1.cost_trend_range(from, to).unwrap();
    let days = trend.iter().filter(|p| p.calls > 0).count();
    assert!((30..=31).contains(&days), "{days} days");
    let period = m1.get_range_summary(from, to).unwrap();
    for f in ["实时分析", "话术生成", "问答", "直播复盘", "商品文案"] {
        assert!(period.by_function.contains_key(f), "{f}");
    }
    assert!(period.by_anchor.contains_key("小美的直播间"));
    assert!(period.by_anchor.contains_key("anchor_001"));
    // A broadcast of 2–4 hours has 120–240 analyses, one a minute.
    for s in &sessions {
        let analyses = s.functions.get("实时分析").copied().unwrap_or(0);
        assert!(analyses <= 240, "{analyses}");
    }
}
