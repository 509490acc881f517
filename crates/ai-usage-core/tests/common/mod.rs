//! Helpers shared by the core's integration tests.
// Each test binary uses only some of them.
#![allow(dead_code)]

use ai_usage_core::{Money, PricingTable, UsageMonitor, Zone};
use chrono::NaiveDate;

/// The zone most tests record in: Shanghai's fixed UTC+8 (no DST).
pub fn zone() -> Zone {
    "+08:00".parse().unwrap()
}

/// The built-in table with the original's price file merged over
/// it: the query tests' figures are the guide's (a qwen-plus call of 1,000
/// input and 500 output tokens is ¥0.01). Pricing itself is tested in the
/// pricing module.
pub fn original_prices() -> PricingTable {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pricing/original-service.toml");
    let mut t = PricingTable::builtin();
    t.load_file(&file).unwrap();
    t
}

/// A monitor on `dir` in `zone`, priced with [`original_prices`]; old test
/// dates are kept (no retention).
pub fn monitor_in(dir: &std::path::Path, zone: Zone) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone(zone)
        .retention_days(100_000)
        .pricing(original_prices())
        .build()
        .unwrap()
}

/// A monitor on `dir` in [`zone`].
pub fn monitor(dir: &std::path::Path) -> UsageMonitor {
    monitor_in(dir, zone())
}

/// A fresh temporary directory, a monitor on it and noon today in [`zone`]
/// (a fixed time keeps every record of a test on one day).
pub fn setup() -> (tempfile::TempDir, UsageMonitor, f64) {
    let dir = tempfile::tempdir().unwrap();
    let m = monitor(dir.path());
    (dir, m, today_noon())
}

/// Noon today in [`zone`].
pub fn today_noon() -> f64 {
    let z = zone();
    z.day_bounds(z.today()).0 + 12.0 * 3600.0
}

/// `YYYY-MM-DD`.
pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Epoch seconds of a UTC date-time `YYYY-MM-DDTHH:MM:SS`.
pub fn utc(s: &str) -> f64 {
    s.parse::<chrono::NaiveDateTime>()
        .unwrap()
        .and_utc()
        .timestamp() as f64
}

/// A decimal amount, e.g. `"0.01"`.
pub fn money(s: &str) -> Money {
    s.parse().unwrap()
}
