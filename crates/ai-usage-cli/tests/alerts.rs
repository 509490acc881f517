//! Budget alerts through `serve`: a delivery pending when the server is
//! SIGKILLed arrives once after the restart; `budgets` shows the outbox;
//! `budgets test-notify` sends a sample.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;
use support::{cmd, run};

/// A receiver answering each connection with the next status of `script`
/// (the last one repeated) and passing each request body on.
fn receiver(script: Vec<u16>) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let status = script[n.min(script.len() - 1)];
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (addr, rx)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

// The caller kills and waits for the returned child.
#[allow(clippy::zombie_processes)]
fn start_server(dir: &Path, addr: SocketAddr) -> Child {
    let mut child = cmd(dir)
        .args(["serve", "--addr", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            && http(addr, "GET", "/healthz", "").0 == 200
        {
            return child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server on {addr} did not come up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SECRET: &str = "whsec-cli-alerts-test-secret";

fn write_budgets(dir: &Path, hook: SocketAddr) {
    std::fs::write(
        dir.join("budgets.json"),
        format!(
            r#"{{"notify": {{"ops": {{"kind": "webhook", "url": "http://{hook}/hook", "secret": "{SECRET}"}}}},
               "budgets": [{{"name": "每日总预算", "period": "daily", "limit": 1, "thresholds": [100], "notify": ["ops"]}}]}}"#
        ),
    )
    .unwrap();
}

#[test]
fn a_delivery_pending_at_sigkill_arrives_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The first attempt fails (retried 5 s later: the kill comes first),
    // every later one succeeds.
    let (hook, received) = receiver(vec![503, 200]);
    write_budgets(dir.path(), hook);
    let addr = free_addr();
    let mut server = start_server(dir.path(), addr);
    let record =
        r#"{"model":"qwen-plus","function":"f","input_tokens":10,"output_tokens":5,"cost":2}"#;
    let (status, body) = http(addr, "POST", "/api/ai_usage/record", record);
    assert!((200..300).contains(&status), "{status} {body}");
    let first = received
        .recv_timeout(Duration::from_secs(10))
        .expect("a first attempt");
    // SIGKILL: no shutdown, the delivery is still pending.
    server.kill().unwrap();
    let _ = server.wait();
    let outbox = std::fs::read_to_string(dir.path().join("alert-outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 1, "queued, not settled: {outbox}");
    assert!(!outbox.contains(SECRET));

    let mut server = start_server(dir.path(), addr);
    let second = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the pending delivery after the restart");
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&first).unwrap(),
        serde_json::from_str(&second).unwrap(),
    );
    assert_eq!(a["id"], b["id"]);
    assert_eq!(b["budget"], "每日总预算");
    assert_eq!(b["threshold"], 100);
    // Another record over the limit: its threshold has fired already.
    http(addr, "POST", "/api/ai_usage/record", record);
    assert!(
        received.recv_timeout(Duration::from_millis(1500)).is_err(),
        "delivered once"
    );
    let (_, health) = http(addr, "GET", "/healthz", "");
    assert!(health.contains("\"notify\""), "{health}");
    assert!(!health.contains(SECRET));
    server.kill().unwrap();
    let _ = server.wait();

    let out = run(dir.path(), &["budgets"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 pending, 1 sent, 0 failed"), "{text}");
}

#[test]
fn test_notify_sends_a_sample_and_names_a_refusal_or_unknown_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, received) = receiver(vec![200, 404]);
    write_budgets(dir.path(), hook);
    let out = run(dir.path(), &["budgets", "test-notify", "ops"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let body: serde_json::Value =
        serde_json::from_str(&received.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(body["threshold"], 80);
    // The second answer is a 404: a configuration error, named.
    let out = run(dir.path(), &["budgets", "test-notify", "ops"]);
    assert!(!out.status.success());
    let err = support::stderr(&out);
    assert!(err.contains("HTTP 404") && !err.contains(SECRET), "{err}");
    let out = run(dir.path(), &["budgets", "test-notify", "nope"]);
    assert!(support::stderr(&out).contains("defined: ops"));
}

/// A budgets file whose daily digest was due one minute ago (local +08:00),
/// to the webhook at `hook`.
fn write_digest_budgets(dir: &Path, hook: SocketAddr, at: &str) {
    std::fs::write(
        dir.join("budgets.json"),
        format!(
            r#"{{"notify": {{"ops": {{"kind": "webhook", "url": "http://{hook}/hook", "secret": "{SECRET}"}}}},
               "budgets": [{{"name": "每日总预算", "period": "daily", "limit": 50, "notify": ["ops"]}}],
               "digest": {{"schedule": "daily", "at": "{at}", "notify": ["ops"], "lang": "en"}}}}"#
        ),
    )
    .unwrap();
}

/// Local +08:00 time `minutes` ago, `HH:MM`, and the local date it falls on.
fn local_minutes_ago(minutes: i64) -> (String, chrono::NaiveDate) {
    let t = chrono::Utc::now() + chrono::TimeDelta::hours(8) - chrono::TimeDelta::minutes(minutes);
    (t.format("%H:%M").to_string(), t.date_naive())
}

#[test]
fn serve_posts_a_digest_due_now_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, received) = receiver(vec![200]);
    let (at, posting_day) = local_minutes_ago(1);
    write_digest_budgets(dir.path(), hook, &at);
    // A call of the day the digest covers (the day before the posting day).
    let day = posting_day.pred_opt().unwrap();
    let ts = day.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp() - 8 * 3600;
    let line = serde_json::json!({
        "timestamp": ts as f64, "user_id": null, "anchor_id": "anchor_001", "session_id": null,
        "model": "qwen-plus", "function": "实时分析", "input_tokens": 10, "output_tokens": 5,
        "total_tokens": 15, "cost": 1.25, "duration_ms": 1.0, "success": true,
        "error_msg": null,
    });
    std::fs::write(
        dir.path().join(format!("usage_{day}.jsonl")),
        format!("{line}\n"),
    )
    .unwrap();
    let addr = free_addr();
    let mut server = start_server(dir.path(), addr);
    let body: serde_json::Value = serde_json::from_str(
        &received
            .recv_timeout(Duration::from_secs(20))
            .expect("the digest"),
    )
    .unwrap();
    assert_eq!(body["type"], "usage.digest");
    assert_eq!(body["from"], day.to_string());
    assert_eq!(body["costs"][0]["currency"], "CNY");
    let cost: ai_usage_core::Money = body["costs"][0]["cost"].as_str().unwrap().parse().unwrap();
    assert_eq!(cost, "1.25".parse().unwrap());
    assert_eq!(body["top_functions"][0]["id"], "实时分析");
    // Killed once the outbox recorded the delivery (killed between the
    // receiver's answer and that line, it would be sent again: at least once).
    let outbox = dir.path().join("alert-outbox.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&outbox)
        .unwrap_or_default()
        .contains(r#""op":"sent""#)
    {
        assert!(Instant::now() < deadline, "the delivery was recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill().unwrap();
    let _ = server.wait();
    let mut server = start_server(dir.path(), addr);
    assert!(
        received.recv_timeout(Duration::from_millis(2000)).is_err(),
        "a restart does not post it again"
    );
    server.kill().unwrap();
    let _ = server.wait();
    let out = run(dir.path(), &["budgets"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("报告 digest: daily digest at {at} to ops")),
        "{text}"
    );
    assert!(text.contains("0 pending, 1 sent, 0 failed"), "{text}");
}

#[test]
fn test_notify_digest_sends_the_latest_digest_and_a_bad_digest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, received) = receiver(vec![200]);
    write_digest_budgets(dir.path(), hook, "00:00");
    let out = run(dir.path(), &["budgets", "test-notify", "ops", "--digest"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let body: serde_json::Value =
        serde_json::from_str(&received.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(body["type"], "usage.digest");
    assert_eq!(body["schedule"], "daily");
    assert_eq!(body["from"], body["to"]);
    write_digest_budgets(dir.path(), hook, "9am");
    let out = run(dir.path(), &["budgets"]);
    assert!(!out.status.success());
    let err = support::stderr(&out);
    assert!(err.contains("digest: field `at`"), "{err}");
}
