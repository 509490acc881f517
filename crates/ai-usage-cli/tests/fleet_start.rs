//! `serve --clickhouse` when ClickHouse refuses the credentials at start
//! (a proxy answering 401 for a few seconds, as while a password
//! propagates): shipping is retried with backoff and recovers, and
//! `/healthz` is not ok while the fleet cannot answer. Needs
//! `clickhouse-server` (skipped without it unless `CI` is set).

#[path = "../../ai-usage-clickhouse/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP proxy to `upstream` that answers every request with 401 until
/// `refuse_until`, then forwards bytes both ways.
struct Proxy {
    port: u16,
    refused: Arc<AtomicU64>,
}

fn start_proxy(upstream: u16, refuse_until: Instant) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    let refused = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&refused);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                if Instant::now() < refuse_until {
                    refuse(client);
                    counter.fetch_add(1, Ordering::SeqCst);
                } else {
                    forward(client, upstream);
                }
            });
        }
    });
    Proxy { port, refused }
}

/// Reads one request (head and body) and answers 401 as ClickHouse's
/// HTTP interface does for a bad password, then closes.
fn refuse(client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(client);
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if line == "\r\n" {
            break;
        }
    }
    if chunked {
        // Read until the last chunk.
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"0\r\n\r\n") && reader.read(&mut byte).unwrap_or(0) == 1 {
            seen.push(byte[0]);
        }
    } else {
        let mut body = vec![0u8; length];
        let _ = reader.read_exact(&mut body);
    }
    let text = "Code: 516. DB::Exception: default: Authentication failed: password is incorrect";
    let mut client = reader.into_inner();
    let _ = write!(
        client,
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn forward(client: TcpStream, upstream: u16) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut c, mut s) = (client, server);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c, &mut s);
        let _ = s.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut s2, &mut c2);
    let _ = c2.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// Status and JSON body of a GET.
fn get(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).ok()?))
}

/// Kills the server child however the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn refused_credentials_at_start_are_retried_and_healthz_says_so() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let upstream: u16 = server
        .url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let dir = tempfile::tempdir().unwrap();
    let demo = Command::new(env!("CARGO_BIN_EXE_ai-usage"))
        .arg("--dir")
        .arg(dir.path())
        .args(["demo", "--days", "2", "--seed", "9"])
        .output()
        .expect("demo");
    assert!(demo.status.success());

    let refuse_for = Duration::from_secs(6);
    let proxy = start_proxy(upstream, Instant::now() + refuse_for);
    let url = format!("http://127.0.0.1:{}/", proxy.port);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _serve = Child(
        Command::new(env!("CARGO_BIN_EXE_ai-usage"))
            .arg("--dir")
            .arg(dir.path())
            .args(["--tz", "Asia/Shanghai", "--clickhouse", url.as_str()])
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env_remove("AI_USAGE_CLICKHOUSE")
            .env_remove("AI_USAGE_TOKEN")
            .spawn()
            .expect("start serve"),
    );
    let started = Instant::now();

    // While ClickHouse refuses: /healthz is 503, not ok, and the shipper
    // keeps trying (running, with the error noted).
    let mut saw_refusal = false;
    while started.elapsed() < refuse_for - Duration::from_secs(1) {
        if let Some((status, h)) = get(port, "/healthz") {
            assert_eq!(status, 503, "{h}");
            assert_eq!(h["ok"], false, "{h}");
            assert_eq!(h["fleet"]["ok"], false, "{h}");
            let shipping = &h["fleet"]["shipping"];
            assert_eq!(shipping["running"], true, "{h}");
            if shipping["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("401"))
            {
                saw_refusal = true;
            }
            // A fleet route says the store is unavailable, nothing more.
            let (s, v) = get(port, "/api/ai_usage/stats/daily").expect("stats");
            assert_eq!(s, 503, "{v}");
            assert!(!v.to_string().contains("Authentication"), "{v}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        proxy.refused.load(Ordering::SeqCst) > 0,
        "the proxy refused nothing"
    );
    assert!(saw_refusal, "the shipper never reported the 401");

    // Then it recovers on its own: schema created, files shipped, healthy.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some((200, h)) = get(port, "/healthz") {
            let s = &h["fleet"]["shipping"];
            if h["ok"] == true
                && s["lag_bytes"] == 0
                && s["shipped_records"].as_u64().unwrap_or(0) > 0
            {
                assert!(s["last_error"].is_null(), "{h}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "shipping did not recover: {:?}",
            get(port, "/healthz")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (s, v) = get(port, "/api/ai_usage/stats/daily?days_ago=1").expect("stats");
    assert_eq!(s, 200, "{v}");
    assert!(v["total_calls"].as_u64().unwrap_or(0) > 0, "{v}");
}
