//! Durable acknowledgement: `record_durable` returns only once its record is
//! in the day file and synced, and callers waiting together share fsyncs.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use ai_usage_core::dayfile;
use ai_usage_core::{UsageEvent, UsageMonitor, UsageRecord};

fn monitor(dir: &Path) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse().unwrap())
        .build()
        .unwrap()
}

fn read_all(dir: &Path) -> Vec<UsageRecord> {
    let mut out = Vec::new();
    for (_, path) in dayfile::list_day_files(dir).unwrap() {
        dayfile::read_day_file(&path, |r| out.push(r)).unwrap();
    }
    out
}

#[test]
fn an_acknowledged_record_is_in_the_file_on_return() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    for i in 0..20 {
        let id = format!("ack-{i}");
        let r = m
            .record_durable(
                &UsageEvent::new("qwen-plus", "问答")
                    .tokens(10, 1)
                    .request_id(&id),
            )
            .unwrap();
        assert_eq!(r.request_id.as_deref(), Some(id.as_str()));
        // Read straight away: no flush, no wait.
        let on_disk = read_all(tmp.path());
        assert!(
            on_disk
                .iter()
                .any(|r| r.request_id.as_deref() == Some(id.as_str())),
            "{id} not on disk at return"
        );
        assert_eq!(on_disk.len(), i + 1);
    }
    let w = m.health().writer.unwrap();
    assert!(w.fsyncs >= 1, "{w:?}");
    assert_eq!(w.written, 20);
}

#[test]
fn a_batch_is_durable_on_return() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let ids: Vec<String> = (0..300).map(|i| format!("batch-{i}")).collect();
    let events: Vec<UsageEvent<'_>> = ids
        .iter()
        .map(|id| {
            UsageEvent::new("qwen-plus", "问答")
                .tokens(1, 1)
                .request_id(id)
        })
        .collect();
    let records = m.record_batch_durable(&events).unwrap();
    assert_eq!(records.len(), 300);
    let on_disk: BTreeSet<String> = read_all(tmp.path())
        .into_iter()
        .filter_map(|r| r.request_id)
        .collect();
    assert_eq!(on_disk, ids.iter().cloned().collect());
}

#[test]
fn concurrent_durable_callers_share_fsyncs() {
    const THREADS: usize = 16;
    const PER: usize = 50;
    let tmp = tempfile::tempdir().unwrap();
    let m = Arc::new(monitor(tmp.path()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    let id = format!("t{t}-{i}");
                    m.record_durable(&UsageEvent::new("qwen-plus", "问答").request_id(&id))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let calls = (THREADS * PER) as u64;
    let w = m.health().writer.unwrap();
    assert_eq!(w.written, calls);
    // Group commit: one fdatasync covers every caller waiting on it.
    assert!(
        w.fsyncs < calls / 2,
        "{} fsyncs for {calls} durable calls",
        w.fsyncs
    );
    println!("{} fsyncs for {calls} durable calls", w.fsyncs);
    assert_eq!(read_all(tmp.path()).len() as u64, calls);
}

#[test]
fn try_record_queues_without_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let r = m
        .try_record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(5, 5)
                .request_id("try-1"),
        )
        .unwrap();
    assert_eq!(r.total_tokens, 10);
    m.flush().unwrap();
    assert_eq!(read_all(tmp.path()).len(), 1);
}
