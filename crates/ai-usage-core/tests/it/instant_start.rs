//! The monitor records from the moment it is built while its history loads
//! in the background; records made during the load count exactly once.

use std::time::Duration;

use ai_usage_core::{UsageEvent, UsageMonitor};

const HISTORY: u64 = 30_000;
const DURING: u64 = 500;

fn build(dir: &std::path::Path) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse().unwrap())
        .build()
        .unwrap()
}

fn calls_today(m: &UsageMonitor) -> u64 {
    m.get_daily_summary(0).total_calls
}

#[test]
fn records_made_while_history_loads_count_once() {
    let tmp = tempfile::tempdir().unwrap();
    let now = ai_usage_core::now_timestamp();
    {
        let m = UsageMonitor::builder()
            .dir(tmp.path())
            .timezone("+08:00".parse().unwrap())
            .replay(false)
            .build()
            .unwrap();
        for i in 0..HISTORY {
            m.record(
                &UsageEvent::new("qwen-plus", "问答")
                    .tokens(10, 5)
                    .user(&format!("u{}", i % 97))
                    .at(now - 1.0),
            );
        }
        m.flush().unwrap();
    }
    let m = build(tmp.path());
    // Recorded at once, whether or not the load has finished yet.
    for _ in 0..DURING {
        m.record(&UsageEvent::new("qwen-plus", "问答").tokens(10, 5));
    }
    m.flush().unwrap();
    // A query waits for the history: it never answers from part of it.
    assert_eq!(calls_today(&m), HISTORY + DURING);
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let h = m.health();
    assert!(!h.loading && !h.load.loading);
    assert_eq!(h.load.percent, 100.0);
    assert_eq!(h.load.files_done, h.load.files_total);
    assert_eq!(h.load.bytes_done, h.load.bytes_total);
    assert_eq!(
        h.replay.records, HISTORY,
        "the loader stops where the live records begin"
    );
    assert_eq!(h.records_in_memory, HISTORY + DURING);
    drop(m);
    // And each record is on disk once.
    let again = build(tmp.path());
    assert_eq!(calls_today(&again), HISTORY + DURING);
}

#[test]
fn health_shows_the_load_without_waiting_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let m = build(tmp.path());
        for _ in 0..HISTORY {
            m.record(&UsageEvent::new("qwen-plus", "问答").tokens(10, 5));
        }
    }
    let m = build(tmp.path());
    let h = m.health();
    // Either still loading (with its progress) or done: never a mix.
    if h.loading {
        assert!(h.load.percent < 100.0 || h.load.bytes_done == h.load.bytes_total);
        assert!(h.load.files_total >= 1);
    } else {
        assert_eq!(h.replay.records, HISTORY);
    }
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let done = m.health();
    assert!(!done.loading);
    assert_eq!(done.load.error, None);
    assert_eq!(done.replay.records, HISTORY);
}
