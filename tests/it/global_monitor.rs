//! The global monitor is a static that is never dropped: the guard from
//! `init_global` flushes it when `main` returns. A child process proves it.

use std::process::Command;

use ai_usage_monitor::dayfile;

const CHILD: &str = "AI_USAGE_GLOBAL_CHILD";
const UNGUARDED: &str = "AI_USAGE_UNGUARDED_CHILD";

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

/// Child mode for the exit-flush test: the README's first program, with no
/// guard and no `flush()`; it ends by returning or by `process::exit`.
#[test]
fn unguarded_child() {
    let Ok(mode) = std::env::var(UNGUARDED) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for minute in 0..3 {
            tracked_analysis(minute, "live_exit_test").await.unwrap();
        }
    });
    let today = ai_usage_monitor::get_usage_monitor().get_daily_summary(0);
    assert_eq!(today.total_calls, 3);
    if mode == "exit" {
        std::process::exit(0);
    }
    // "return": the test harness's `main` returns, and the process exits.
}

#[ai_usage_monitor::track_ai_usage("实时分析", "qwen-plus")]
async fn tracked_analysis(minute: u32, session_id: &str) -> Result<serde_json::Value, String> {
    Ok(serde_json::json!({
        "model": "qwen-plus",
        "choices": [{"message": {"content": format!("第{minute}分钟")}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
    }))
}

#[test]
fn the_global_monitor_is_flushed_at_a_normal_exit_without_a_guard() {
    for mode in ["return", "exit"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("records");
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "global_monitor::unguarded_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(UNGUARDED, mode)
            .env("AI_USAGE_DIR", &dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: {out:?}");
        let mut lines = Vec::new();
        for (_, path) in dayfile::list_day_files(&dir).unwrap() {
            dayfile::read_day_file(&path, |r| lines.push(r)).unwrap();
        }
        assert_eq!(lines.len(), 3, "{mode}: every call is on disk");
        assert!(
            lines.iter().all(
                |r| r.session_id.as_deref() == Some("live_exit_test") && r.input_tokens == 1200
            ),
            "{mode}: {lines:?}"
        );
    }
}
