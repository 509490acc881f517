//! `ai-usage compact`: every answer read from the day files is the same
//! before and after old days are compressed.

use std::path::Path;
use std::process::{Command, Output};

fn ai_usage(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ai-usage"))
        .arg("--dir")
        .arg(dir)
        .args(["--tz", "Asia/Shanghai"])
        .args(args)
        .env_remove("AI_USAGE_CLICKHOUSE")
        .output()
        .expect("run ai-usage")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Every answer the CLI gives from the local day files, as text.
fn answers(dir: &Path, out: &Path, tag: &str) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for days_ago in ["0", "3", "9", "15"] {
        let q = ["stats", "daily", "--days-ago", days_ago, "--json"];
        all.push((q.join(" "), ok(ai_usage(dir, &q))));
    }
    for q in [
        &["stats", "monthly", "--json"][..],
        &["top-users", "--days", "20", "--json"],
        &["top-anchors", "--days", "20", "--json"],
        &["trend", "--days", "20", "--json"],
    ] {
        all.push((q.join(" "), ok(ai_usage(dir, q))));
    }
    for format in ["json", "csv", "records"] {
        let file = out.join(format!("{tag}.{format}"));
        let file = file.to_str().unwrap();
        ok(ai_usage(
            dir,
            &[
                "report", "--days", "20", "--format", format, "--output", file,
            ],
        ));
        let mut text = std::fs::read_to_string(file).unwrap();
        if format == "json" {
            // The report's own creation time differs between two runs.
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v.as_object_mut()
                .unwrap()
                .retain(|k, _| !k.contains("generated"));
            text = v.to_string();
        }
        all.push((format!("report {format}"), text));
    }
    all
}

#[test]
fn every_answer_is_the_same_after_old_days_are_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    ok(ai_usage(
        dir.path(),
        &["demo", "--days", "20", "--seed", "3"],
    ));
    let before = answers(dir.path(), out.path(), "before");
    let done = ok(ai_usage(dir.path(), &["compact", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&done).unwrap();
    // Today plus seven days stay plain; the twelve older ones are compressed.
    assert_eq!(r["compressed"], 12, "{done}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("usage_"))
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".jsonl.zst")).count(),
        12
    );
    assert_eq!(names.iter().filter(|n| n.ends_with(".jsonl")).count(), 8);
    let bytes_per_record = r["compressed_bytes"].as_f64().unwrap() / r["lines"].as_f64().unwrap();
    assert!(
        bytes_per_record <= 40.0,
        "{bytes_per_record} bytes per record"
    );
    let after = answers(dir.path(), out.path(), "after");
    for ((q, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{q} differs after compaction");
    }
    // Nothing left to do the second time.
    let again = ok(ai_usage(dir.path(), &["compact"]));
    assert!(again.starts_with("compressed 0 day files"), "{again}");
}

fn day_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("usage_"))
        .collect();
    v.sort();
    v
}

#[test]
fn delete_after_removes_old_days_when_nothing_is_shipped() {
    let dir = tempfile::tempdir().unwrap();
    ok(ai_usage(
        dir.path(),
        &["demo", "--days", "6", "--seed", "4"],
    ));
    let before = day_files(dir.path());
    let out = ok(ai_usage(
        dir.path(),
        &["compact", "--delete-after", "3", "--json"],
    ));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let deleted = r["deleted"].as_u64().unwrap() as usize;
    assert!(deleted >= 1, "{out}");
    // The oldest days went; the four newest (today and three back) stay.
    assert_eq!(day_files(dir.path()), before[deleted..]);
    assert!(before.len() - deleted <= 4, "{before:?} {out}");
}

#[test]
fn today_is_never_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let out = ai_usage(dir.path(), &["compact", "--older-than", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--older-than"), "{err}");
}

#[test]
fn serve_compresses_old_days_in_the_background_unless_told_not_to() {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let serve = |dir: &Path, extra: &[&str], wait_for: &dyn Fn() -> bool| {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ai-usage"))
            .arg("--dir")
            .arg(dir)
            .args(["--tz", "Asia/Shanghai", "serve", "--addr", &addr])
            .args(extra)
            .env_remove("AI_USAGE_CLICKHOUSE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = false;
        for _ in 0..100 {
            if std::net::TcpStream::connect(&addr).is_ok() && wait_for() {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    };
    let compressed = |dir: &Path| {
        day_files(dir)
            .iter()
            .filter(|n| n.ends_with(".zst"))
            .count()
    };

    let off = tempfile::tempdir().unwrap();
    ok(ai_usage(
        off.path(),
        &["demo", "--days", "5", "--seed", "6"],
    ));
    let listening = serve(
        off.path(),
        &["--compact-after", "1", "--no-compact"],
        &|| true,
    );
    assert!(listening);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        compressed(off.path()),
        0,
        "--no-compact keeps every day plain"
    );

    let on = tempfile::tempdir().unwrap();
    ok(ai_usage(on.path(), &["demo", "--days", "5", "--seed", "6"]));
    // Days more than one day before today in Shanghai (UTC+8, no DST) are
    // compressed; whether today already has a file depends on the hour.
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let old = day_files(on.path())
        .iter()
        .filter(|n| {
            let date = &n["usage_".len().."usage_YYYY-MM-DD".len()];
            let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
            (today - date).num_days() > 1
        })
        .count();
    assert!(old >= 2, "{:?}", day_files(on.path()));
    let dir = on.path().to_path_buf();
    assert!(
        serve(on.path(), &["--compact-after", "1"], &|| compressed(&dir)
            == old),
        "{:?}",
        day_files(on.path())
    );
}
