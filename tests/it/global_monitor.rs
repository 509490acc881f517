//! The global monitor is a static that is never dropped: the guard from
//! `init_global` flushes it when `main` returns. A child process proves it.

use std::process::Command;

use ai_usage_monitor::dayfile;

const CHILD: &str = "AI_USAGE_GLOBAL_CHILD";

/// Child mode: configure the global monitor, record, and return without an
/// explicit flush; only the guard's drop can put the records on disk.
#[test]
fn global_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let guard = ai_usage_monitor::init_global(
        ai_usage_monitor::MonitorBuilder::default()
            .dir(&dir)
            // A long interval: without the guard nothing would be written yet.
            .flush_interval(std::time::Duration::from_secs(3600))
            .fsync(ai_usage_monitor::FsyncPolicy::OnFlush),
    )
    .unwrap();
    for i in 0..1000u64 {
        ai_usage_monitor::record_ai_usage(
            &ai_usage_monitor::UsageEvent::new("qwen-plus", "实时分析").tokens(i, 1),
        );
    }
    // A second init is refused with a clear error.
    let again =
        ai_usage_monitor::init_global(ai_usage_monitor::MonitorBuilder::default().dir(&dir));
    assert!(again
        .unwrap_err()
        .to_string()
        .contains("already initialised"));
    drop(guard);
    // Skip the process's normal teardown too: only the guard flushed.
    std::process::exit(0);
}

#[test]
fn the_guard_flushes_the_global_monitor_at_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "global_monitor::global_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut n = 0;
    for (_, path) in dayfile::list_day_files(tmp.path()).unwrap() {
        n += dayfile::read_day_file(&path, |_| {}).unwrap().records;
    }
    assert_eq!(n, 1000);
}
