//! A real full disk: a 256 KiB tmpfs is filled while records stream in, then
//! space is freed. Every record must be on disk exactly once, no torn line
//! may be counted, and a restart must count what the live process counted.
//!
//! Needs root and a permitted `mount -t tmpfs`. Otherwise (also under CI,
//! whose sandbox may forbid mounting) it prints `skipped:` and passes: the
//! required full-disk test is the injected short-write / ENOSPC one in the
//! crate (`storage::writer::tests`), which runs everywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ai_usage_core::dayfile;
use ai_usage_core::{UsageEvent, UsageMonitor, UsageRecord};

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn read_all(dir: &Path) -> (Vec<UsageRecord>, dayfile::ReadStats) {
    let mut out = Vec::new();
    let mut stats = dayfile::ReadStats::default();
    for (_, path) in dayfile::list_day_files(dir).unwrap() {
        stats.merge(&dayfile::read_day_file(&path, |r| out.push(r)).unwrap());
    }
    (out, stats)
}

#[test]
fn tmpfs_full_then_freed_every_record_exactly_once() {
    const N: u64 = 600;
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("mnt"), "256k") else {
        println!(
            "skipped: needs root and a permitted `mount -t tmpfs` (see the injected-fault test)"
        );
        return;
    };
    // Leave about 56 KiB free: the ~170 KB of records cannot fit until the
    // filler is removed.
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![0u8; 200 * 1024]).unwrap();
    let dir = fs.0.join("records");
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let m = UsageMonitor::builder()
        .dir(&dir)
        .timezone(zone)
        .flush_interval(Duration::from_millis(5))
        .build()
        .unwrap();
    let now = ai_usage_core::now_timestamp();
    for i in 0..N {
        let id = format!("tmpfs-request-{i:06}");
        m.record(
            &UsageEvent::new("deepseek-chat", "实时分析")
                .tokens(1000 + i, 200)
                .user("user-with-a-longish-id")
                .session("session-with-a-longish-id")
                .request_id(&id)
                .at(now),
        );
    }
    assert!(m.flush().is_err(), "the tmpfs really ran full");
    std::fs::remove_file(&filler).unwrap();
    let mut flushed = false;
    for _ in 0..200 {
        if m.flush().is_ok() {
            flushed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(flushed, "the writer recovered once space was freed");
    let w = m.health().writer.unwrap();
    println!(
        "truncations {} write_errors {}",
        w.truncations, w.write_errors
    );
    assert_eq!(w.written, N);

    let (records, stats) = read_all(&dir);
    assert_eq!(
        (stats.skipped_lines, stats.torn_tail),
        (0, 0),
        "no torn line"
    );
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for r in &records {
        *counts.entry(r.request_id.as_deref().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, N);
    assert!(
        counts.values().all(|&c| c == 1),
        "a record was written twice"
    );

    let date = zone.date_of(now);
    let live = m.get_summary_for_date(date);
    drop(m);
    let restarted = UsageMonitor::builder()
        .dir(&dir)
        .timezone(zone)
        .build()
        .unwrap();
    let again = restarted.get_summary_for_date(date);
    assert_eq!(
        (
            again.total_calls,
            again.total_input_tokens,
            again.total_cost
        ),
        (live.total_calls, live.total_input_tokens, live.total_cost)
    );
    drop(restarted);
}
