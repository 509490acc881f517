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
