//! The recorder on real files: exact sums under concurrency, SIGKILL in the
//! middle of a stream, and several processes appending to one directory.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use ai_usage_core::dayfile;
use ai_usage_core::UsageMonitor;
use ai_usage_core::{Money, UsageEvent, UsageRecord};

const CHILD_ENV: &str = "AI_USAGE_TEST_CHILD";

fn monitor(dir: &Path) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse().unwrap())
        .build()
        .unwrap()
}

/// Every record in the directory's day files, plus what the reader skipped.
fn read_all(dir: &Path) -> (Vec<UsageRecord>, dayfile::ReadStats) {
    let mut out = Vec::new();
    let mut stats = dayfile::ReadStats::default();
    for (_, path) in dayfile::list_day_files(dir).unwrap() {
        let s = dayfile::read_day_file(&path, |r| out.push(r)).unwrap();
        stats.merge(&s);
    }
    (out, stats)
}

#[test]
fn a_million_tiny_costs_sum_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let cost: Money = "0.0001".parse().unwrap();
    let now = ai_usage_core::now_timestamp();
    for _ in 0..1_000_000 {
        m.record(
            &UsageEvent::new("qwen-plus", "实时分析")
                .tokens(1, 1)
                .cost(cost)
                .at(now),
        );
    }
    m.flush().unwrap();
    let day = m.zone().date_of(now);
    let s = m.get_summary_for_date(day);
    assert_eq!(s.total_calls, 1_000_000);
    assert_eq!(s.total_cost.to_string(), "100.000000");
    let (records, stats) = read_all(tmp.path());
    assert_eq!(stats.skipped_lines + stats.torn_tail, 0);
    let on_disk: Money = records.iter().map(|r| r.cost).sum();
    assert_eq!(on_disk.to_string(), "100.000000");
}

#[test]
fn eight_threads_exact_in_memory_and_on_disk() {
    const THREADS: u64 = 8;
    const PER: u64 = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let m = Arc::new(monitor(tmp.path()));
    let now = ai_usage_core::now_timestamp();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let user = format!("user_{t}");
                for i in 0..PER {
                    // qwen-plus: 0.0008 / 0.002 per 1K → 100 in + 10 out = ¥0.0001
                    let ev = UsageEvent::new("qwen-plus", "问答")
                        .tokens(100, 10)
                        .user(&user)
                        .session("live_concurrent")
                        .at(now);
                    let ev = if i % 100 == 0 {
                        ev.failed("timeout")
                    } else {
                        ev
                    };
                    m.record(&ev);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    m.flush().unwrap();
    let n = THREADS * PER;
    let s = m.get_summary_for_date(m.zone().date_of(now));
    assert_eq!(s.total_calls, n);
    assert_eq!(s.failed_calls, THREADS * PER / 100);
    assert_eq!(s.total_input_tokens, 100 * n);
    assert_eq!(s.total_output_tokens, 10 * n);
    assert_eq!(s.total_cost.micros(), 100 * n as i64);
    assert_eq!(s.by_user.len(), THREADS as usize);
    for g in s.by_user.values() {
        assert_eq!(g.calls, PER);
        assert_eq!(g.cost.micros(), 100 * PER as i64);
    }
    let session = m.get_session_stats("live_concurrent").unwrap();
    assert_eq!(session.calls, n);

    let (records, stats) = read_all(tmp.path());
    assert_eq!((stats.skipped_lines, stats.torn_tail), (0, 0));
    assert_eq!(records.len() as u64, n);
    let total: Money = records.iter().map(|r| r.cost).sum();
    assert_eq!(total.micros(), 100 * n as i64);
    assert_eq!(
        records.iter().filter(|r| !r.success).count() as u64,
        n / 100
    );
    let h = m.health();
    assert_eq!(
        (
            h.writer.as_ref().unwrap().written,
            h.writer.unwrap().write_errors
        ),
        (n, 0)
    );
}

/// Child mode: records forever in batches, printing `acked N` after every
/// completed flush, until the parent kills it.
#[test]
fn child_process_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, tag, limit) = {
        let mut parts = spec.splitn(3, '|');
        (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
            parts.next().and_then(|l| l.parse::<u64>().ok()),
        )
    };
    let m = UsageMonitor::builder()
        .dir(&dir)
        .timezone("+08:00".parse().unwrap())
        .replay(false)
        .flush_interval(std::time::Duration::from_millis(2))
        .build()
        .unwrap();
    let mut seq = 0u64;
    loop {
        for _ in 0..500 {
            let id = format!("{tag}-{seq}");
            m.record(
                &UsageEvent::new("deepseek-chat", "实时分析")
                    .tokens(1000, 200)
                    .request_id(&id)
                    .session(&tag),
            );
            seq += 1;
            if limit == Some(seq) {
                m.flush().unwrap();
                println!("acked {seq}");
                return;
            }
        }
        m.flush().unwrap();
        println!("acked {seq}");
    }
}

fn spawn_child(dir: &Path, tag: &str, limit: Option<u64>) -> std::process::Child {
    let spec = format!(
        "{}|{tag}|{}",
        dir.display(),
        limit.map_or(String::new(), |l| l.to_string())
    );
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut acked_ids = Vec::new();
    for round in 0..5 {
        let tag = format!("r{round}");
        let mut child = spawn_child(tmp.path(), &tag, None);
        let stdout = child.stdout.take().unwrap();
        let mut acked = 0u64;
        // Kill at a different point each round, while the child keeps writing.
        let kill_after = 3 + round * 2;
        for (i, line) in BufReader::new(stdout).lines().enumerate() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.trim().parse().unwrap();
            }
            if i >= kill_after {
                child.kill().unwrap(); // SIGKILL on Unix
                break;
            }
        }
        child.wait().unwrap();
        assert!(acked > 0, "round {round}: child acknowledged nothing");
        acked_ids.extend((0..acked).map(|s| format!("{tag}-{s}")));

        // What a restarted monitor replays: every acked record, no torn data.
        let (records, stats) = read_all(tmp.path());
        let present: BTreeSet<&str> = records
            .iter()
            .filter_map(|r| r.request_id.as_deref())
            .collect();
        for id in &acked_ids {
            assert!(
                present.contains(id.as_str()),
                "round {round}: acknowledged record {id} lost"
            );
        }
        assert_eq!(
            stats.skipped_lines, 0,
            "round {round}: a partial line was read as garbage mid-file"
        );
        assert!(stats.torn_tail <= 1);
        let unique: BTreeSet<&str> = present.iter().copied().collect();
        assert_eq!(unique.len(), records.len(), "no record is duplicated");
    }
    let m = monitor(tmp.path());
    assert!(m.wait_until_loaded(std::time::Duration::from_secs(60)));
    assert!(m.health().replay.records >= acked_ids.len() as u64);
}

#[test]
fn two_processes_append_whole_lines() {
    const EACH: u64 = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|t| spawn_child(tmp.path(), t, Some(EACH)))
        .collect();
    for mut c in children {
        let last_ack = BufReader::new(c.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("acked "))
            .last();
        assert_eq!(last_ack, Some(format!("acked {EACH}")));
        assert!(c.wait().unwrap().success());
    }
    let (records, stats) = read_all(tmp.path());
    assert_eq!(
        (stats.skipped_lines, stats.torn_tail),
        (0, 0),
        "interleaved or torn lines"
    );
    assert_eq!(records.len() as u64, 2 * EACH);
    for tag in ["a", "b"] {
        let ids: BTreeSet<&str> = records
            .iter()
            .filter(|r| r.session_id.as_deref() == Some(tag))
            .filter_map(|r| r.request_id.as_deref())
            .collect();
        assert_eq!(ids.len() as u64, EACH, "process {tag}");
    }
}

#[test]
fn torn_tail_is_terminated_before_appending() {
    let tmp = tempfile::tempdir().unwrap();
    let now = ai_usage_core::now_timestamp();
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let path = dayfile::day_file_path(tmp.path(), zone.date_of(now));
    std::fs::write(&path, b"{\"timestamp\": 1.0, \"model\": \"qwen-pl").unwrap();
    let m = monitor(tmp.path());
    assert!(m.wait_until_loaded(std::time::Duration::from_secs(60)));
    assert_eq!(m.health().replay.torn_tail, 1);
    m.record(&UsageEvent::new("qwen-plus", "问答").tokens(10, 10).at(now));
    m.flush().unwrap();
    let (records, stats) = read_all(tmp.path());
    assert_eq!(records.len(), 1, "the new record is intact");
    assert_eq!((stats.skipped_lines, stats.torn_tail), (1, 0));
}

#[test]
fn write_errors_are_counted_retried_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let now = ai_usage_core::now_timestamp();
    let path = dayfile::day_file_path(tmp.path(), m.zone().date_of(now));
    // A directory where the day file should be: every append fails.
    std::fs::create_dir(&path).unwrap();
    for i in 0..10u64 {
        m.record(&UsageEvent::new("qwen-plus", "问答").tokens(i, 1).at(now));
    }
    let err = m.flush().unwrap_err();
    assert!(matches!(err, ai_usage_core::Error::NotDurable(_)), "{err}");
    let h = m.health();
    assert!(!h.ok);
    let w = h.writer.unwrap();
    assert!(w.write_errors > 0);
    assert!(w
        .last_error
        .unwrap()
        .contains(&tmp.path().display().to_string()));
    assert_eq!(w.written, 0);
    // The caller's view is unaffected.
    assert_eq!(
        m.get_summary_for_date(m.zone().date_of(now)).total_calls,
        10
    );
    // Once the disk is usable again, the retried records all land.
    std::fs::remove_dir(&path).unwrap();
    m.flush().unwrap();
    let (records, _) = read_all(tmp.path());
    assert_eq!(records.len(), 10);
    assert_eq!(m.health().writer.unwrap().written, 10);
}

#[test]
fn lossy_mode_counts_what_it_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .queue_capacity(4)
        .queue_policy(ai_usage_core::QueuePolicy::DropNewest)
        .flush_interval(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let now = ai_usage_core::now_timestamp();
    let path = dayfile::day_file_path(tmp.path(), m.zone().date_of(now));
    // Stall the writer on a failing file so the queue cannot drain.
    std::fs::create_dir(&path).unwrap();
    for i in 0..1000u64 {
        m.record(&UsageEvent::new("qwen-plus", "问答").tokens(i, 1).at(now));
    }
    let w = m.health().writer.unwrap();
    assert!(w.dropped > 0, "a full queue drops in lossy mode");
    assert_eq!(w.enqueued, 1000);
    // Rollups still count every call.
    assert_eq!(
        m.get_summary_for_date(m.zone().date_of(now)).total_calls,
        1000
    );
    std::fs::remove_dir(&path).unwrap();
    let _ = m.flush();
    m.flush().unwrap();
    let (records, _) = read_all(tmp.path());
    let w = m.health().writer.unwrap();
    assert_eq!(records.len() as u64, w.written);
    assert_eq!(
        w.written + w.dropped,
        1000,
        "every record is either on disk or counted as dropped"
    );
}
