//! Every CLI sample of `docs/cli.md` (its `console` blocks) is run with the
//! real binary and its output compared, with `trycmd`.
//!
//! The samples read demo data pinned to one moment (2026-11-28 08:51 at
//! +08:00, seed 42), written here before the samples run, so their figures
//! never depend on the wall clock. The few samples that are about "now"
//! (`forecast`, `budgets`, `savings`, `record`, a fresh `demo`) elide what
//! changes with the clock with `[..]`.
//!
//! After a deliberate change of output: `TRYCMD=overwrite cargo test -p
//! ai-usage-cli --test cli_docs` rewrites the samples from the real output
//! (then put the `[..]` of the clock-dependent ones back).

use std::path::Path;

use ai_usage_core::{demo, UsageMonitor, Zone};

/// The moment the docs' demo data is generated as of: 2026-11-28 08:51:00 +08:00.
const PINNED_NOW: f64 = 1_795_827_060.0;
/// The zone of the docs' samples.
const TZ: &str = "+08:00";

#[test]
fn cli_md_samples_match_the_binary() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let docs = docs.canonicalize().expect("docs/cli.md");
    // The samples run in a fresh directory, with the default records
    // directory `records/ai_usage` holding the pinned demo data.
    let work = tempfile::tempdir().unwrap();
    let records = work.path().join("records/ai_usage");
    let zone: Zone = TZ.parse().unwrap();
    let monitor = UsageMonitor::builder()
        .dir(&records)
        .timezone(zone)
        .build()
        .expect("monitor");
    let stats = demo::generate_at(&monitor, 30, 42, PINNED_NOW, None);
    monitor.flush().expect("flush");
    drop(monitor);
    assert!(stats.records > 10_000, "{stats:?}");
    std::fs::write(
        records.join("budgets.json"),
        r#"{"budgets": [
  {"name": "每日总预算", "period": "daily", "limit": 50, "thresholds": [80, 100]},
  {"name": "anchor_002 月预算", "anchor": "anchor_002", "period": "monthly", "limit": 300},
  {"name": "qwen-max 每日", "model": "qwen-max", "period": "daily", "limit": "20.00", "thresholds": [50, 80, 100]}
]}"#,
    )
    .unwrap();
    // trycmd runs each command in the test's working directory, with the
    // test's environment (this file's only test: nothing else reads it).
    std::env::set_current_dir(work.path()).unwrap();
    for var in [
        "AI_USAGE_DIR",
        "AI_USAGE_PRICING",
        "AI_USAGE_BUDGETS",
        "AI_USAGE_RATES",
        "AI_USAGE_TOKEN",
        "AI_USAGE_CLICKHOUSE",
        "AI_USAGE_LOG",
        "RUST_LOG",
    ] {
        std::env::remove_var(var);
    }
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("ai-usage", Path::new(env!("CARGO_BIN_EXE_ai-usage")))
        .env("AI_USAGE_TZ", TZ)
        .env("NO_COLOR", "1");
    cases.case(&docs);
    cases.run();
}
