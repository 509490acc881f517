//! Reliability, server side: input limits, JSON on every error, HTTP timeouts
//! and the connection cap, `/healthz` under protected reads, safe report
//! downloads and formula-safe CSV.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_usage_core::{UsageEvent, UsageMonitor};
use ai_usage_server::{HttpLimits, ServeOptions, ServerBuilder};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use common::{assert_error, fixture, fixture_with, get, post_json, send};

/// A real server on a free loopback port; stops (and flushes) on drop.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    monitor: Arc<UsageMonitor>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(opts: ServeOptions) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let monitor = common::monitor_in(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let m = Arc::clone(&monitor);
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        ServerBuilder::new(m)
            .options(opts)
            .serve_listener(listener, stop)
            .await
            .expect("serve");
    });
    Running {
        addr,
        stop: Some(tx),
        monitor,
        _dir: dir,
    }
}

/// One raw HTTP/1.1 exchange (`Connection: close`) on a plain thread, so
/// the async workers under test cannot stall the client: status, head, body.
async fn raw(addr: SocketAddr, request: String) -> std::io::Result<(u16, String, String)> {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(request.as_bytes())?;
        let mut buf = Vec::new();
        // The server may close while we still write a huge head: read what came.
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response: {text:?}")))?;
        Ok((status, head.to_ascii_lowercase(), body.to_string()))
    })
    .await
    .expect("client thread")
}

fn get_request(addr: SocketAddr, target: &str, extra_headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n")
}

/// `GET /healthz` on a fresh connection: status and how long it took.
async fn healthz(addr: SocketAddr) -> (u16, Duration) {
    let t = Instant::now();
    let (s, _, _) = raw(addr, get_request(addr, "/healthz", ""))
        .await
        .expect("healthz");
    (s, t.elapsed())
}

fn json_error(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    assert!(
        v["error"].is_string() && v["detail"].is_string(),
        "not a JSON error: {body:?}"
    );
    v
}

// ---- input limits ---------------------------------------------------------

#[tokio::test]
async fn out_of_range_values_are_refused_and_nothing_is_written() {
    let f = fixture();
    let cases = [
        (
            json!({"model": "m", "function": "f", "input_tokens": 18446744073709551615u64}),
            "input_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "output_tokens": 1_000_000_000_001u64}),
            "output_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "total_tokens": 1e20}),
            "total_tokens",
        ),
        (
            json!({"model": "m", "function": "f", "duration_ms": 1e306}),
            "duration_ms",
        ),
        (
            json!({"model": "m", "function": "f", "duration_ms": 1_000_000_000.5}),
            "duration_ms",
        ),
        // One bad record refuses the whole batch.
        (
            json!([{"model": "m", "function": "f"}, {"model": "m", "function": "f", "reasoning_tokens": 5e12, "output_tokens": 1}]),
            "reasoning_tokens",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = post_json(&f.app, "/api/ai_usage/record", &body, &[]).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, field);
    }
    // JSON has no NaN or infinity literals: such a body is not JSON at all.
    for bad in [
        r#"{"model":"m","function":"f","duration_ms":NaN}"#,
        r#"{"model":"m","function":"f","duration_ms":Infinity}"#,
    ] {
        let (s, _, b) = send(
            &f.app,
            Method::POST,
            "/api/ai_usage/record",
            &[("content-type", "application/json")],
            Body::from(bad),
        )
        .await;
        assert!(s.is_client_error(), "{bad}: {s}");
        json_error(&String::from_utf8_lossy(&b));
    }
    f.monitor.flush().expect("flush");
    assert_eq!(f.monitor.get_daily_summary(0).total_calls, 0);
    let on_disk: usize = std::fs::read_dir(f.dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(on_disk, 0, "a refused record reached the disk");

    // The limits themselves are accepted, and a 2xx means on disk.
    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/record",
        &json!({"model": "m", "function": "f", "input_tokens": 1_000_000_000_000u64, "duration_ms": 1e9}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let day_file = f.dir.path().join(format!(
        "usage_{}.jsonl",
        f.monitor.today().format("%Y-%m-%d")
    ));
    let text = std::fs::read_to_string(&day_file).expect("day file written before the answer");
    assert!(text.contains("1000000000000"), "{text}");
}

// ---- every error is JSON -------------------------------------------------

#[tokio::test]
async fn extractor_rejections_and_repeated_parameters_are_json() {
    let f = fixture();
    // A path segment that is not UTF-8: axum's Path rejection is text/plain.
    let (s, h, b) = send(
        &f.app,
        Method::GET,
        "/api/ai_usage/session/%ff",
        &[],
        Body::empty(),
    )
    .await;
    assert!(s.is_client_error(), "{s}");
    assert_eq!(h["content-type"], "application/json");
    json_error(&String::from_utf8_lossy(&b));
    // A body that is not JSON at all, and a wrong content type.
    let (s, h, b) = send(
        &f.app,
        Method::POST,
        "/api/ai_usage/record",
        &[("content-type", "text/plain")],
        Body::from("x"),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h["content-type"], "application/json");
    json_error(&String::from_utf8_lossy(&b));

    // `limit=500&limit=1` would pass as 1: refused, naming the parameter.
    let (s, v) = get(&f.app, "/api/ai_usage/top_users?limit=500&limit=1").await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "limit");
    let (s, v) = get(&f.app, "/api/ai_usage/stats/daily?days_ago=0&days_ago=0").await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "days_ago");
    let (s, v) = get(&f.app, "/api/ai_usage/top_users?x=1&x=2").await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "\"x\"");
    let (s, _) = get(&f.app, "/api/ai_usage/top_users?limit=5&days=3").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_targets_and_heads_get_json_414_and_431() {
    let srv = start(ServeOptions::default()).await;
    let addr = srv.addr;
    let long = format!("/api/ai_usage/top_users?pad={}", "a".repeat(10_000));
    let (s, head, body) = raw(addr, get_request(addr, &long, "")).await.expect("414");
    assert_eq!(s, 414, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(json_error(&body)["error"], "uri_too_long");

    let big = format!("X-Pad: {}\r\n", "b".repeat(70_000));
    let (s, head, body) = raw(addr, get_request(addr, "/healthz", &big))
        .await
        .expect("431");
    assert_eq!(s, 431, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(json_error(&body)["error"], "headers_too_large");

    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (s, _, body) = raw(addr, get_request(addr, "/healthz", &many))
        .await
        .expect("431");
    assert_eq!(s, 431);
    json_error(&body);

    // Unknown routes and methods too.
    let (s, head, body) = raw(addr, get_request(addr, "/nope", ""))
        .await
        .expect("404");
    assert_eq!(s, 404);
    assert!(head.contains("content-type: application/json"), "{head}");
    json_error(&body);
}

// ---- token rules -----------------------------------------------------------

#[tokio::test]
async fn a_blank_token_is_refused_not_ignored() {
    for blank in ["", "   "] {
        let opts = ServeOptions {
            token: Some(blank.into()),
            ..ServeOptions::default()
        };
        assert!(opts.validate().is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let err = ServerBuilder::new(common::monitor_in(dir.path()))
            .options(opts.clone())
            .serve_listener(listener, async {})
            .await
            .expect_err("a blank token must not serve");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("token is empty"), "{err}");
        // Mounted directly, the router fails closed: writes answer 401.
        let f = fixture_with(Some(opts));
        let (s, _) = post_json(
            &f.app,
            "/api/ai_usage/record",
            &json!({"model": "m", "function": "f"}),
            &[("authorization", "Bearer ")],
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn protected_health_shows_only_the_status_without_the_token() {
    let opts = ServeOptions {
        token: Some("s3cret".into()),
        protect_reads: true,
        ..ServeOptions::default()
    };
    let f = fixture_with(Some(opts));
    let (s, v) = get(&f.app, "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"ok": true}), "status only");
    let (s, _, b) = send(
        &f.app,
        Method::GET,
        "/healthz",
        &[("authorization", "Bearer s3cret")],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert!(v["writer"].is_object(), "full view with the token: {v}");
    assert!(v.get("dir").is_none(), "never the directory: {v}");
    // Without protected reads, the (path-free) full view stays open.
    let (_, v) = get(&fixture().app, "/healthz").await;
    assert!(v["writer"].is_object(), "{v}");
}

// ---- HTTP limits -----------------------------------------------------------

/// The soft open-files limit (Linux), to size the socket counts.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_starve_healthz() {
    // Each idle socket costs two descriptors here (client and server side).
    let want = 1000;
    let n = match open_files_limit() {
        Some(limit) if limit < 2 * want + 200 => {
            println!(
                "open-files limit {limit}: using {} sockets",
                (limit - 200) / 2
            );
            (limit.saturating_sub(200)) / 2
        }
        _ => want,
    };
    let srv = start(ServeOptions {
        limits: HttpLimits {
            max_connections: n + 64,
            ..HttpLimits::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(
            tokio::net::TcpStream::connect(srv.addr)
                .await
                .expect("connect"),
        );
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let (s, took) = healthz(srv.addr).await;
        assert_eq!(s, 200);
        worst = worst.max(took);
    }
    assert!(
        worst < Duration::from_millis(100),
        "/healthz took {worst:?} with {n} idle sockets"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(800);
    let srv = start(ServeOptions {
        limits: HttpLimits {
            header_read_timeout: timeout,
            max_connections: 300,
            ..HttpLimits::default()
        },
        ..ServeOptions::default()
    })
    .await;
    // 250 half-open requests: a partial head, never finished.
    let mut slow = Vec::new();
    for i in 0..250 {
        let mut s = tokio::net::TcpStream::connect(srv.addr)
            .await
            .expect("connect");
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ").as_bytes())
            .await
            .expect("partial head");
        slow.push(s);
    }
    // Plus idle sockets that never send a byte.
    for _ in 0..40 {
        slow.push(
            tokio::net::TcpStream::connect(srv.addr)
                .await
                .expect("connect"),
        );
    }
    let (s, took) = healthz(srv.addr).await;
    assert_eq!(s, 200, "healthz while slow clients hold connections");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // Keep trickling bytes: the timeout counts the whole head, not each read.
    tokio::time::sleep(timeout / 2).await;
    for s in slow.iter_mut().take(250) {
        let _ = s.write_all(b"a").await;
    }
    tokio::time::sleep(timeout + Duration::from_millis(700)).await;
    let mut closed = 0;
    for s in &mut slow {
        let mut buf = [0u8; 1024];
        // Closed by the server: EOF (or a reset) right away, never a wait.
        let eof = tokio::time::timeout(Duration::from_millis(200), async {
            use tokio::io::AsyncReadExt;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue, // e.g. a 408 head before the close
                }
            }
        })
        .await;
        if eof.is_ok() {
            closed += 1;
        }
    }
    assert_eq!(closed, slow.len(), "every slow connection closed");
    // Slots are free again: more clients than the cap minus the slow ones.
    let (s, _) = healthz(srv.addr).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::AsyncReadExt;
    let timeout = Duration::from_millis(600);
    let srv = start(ServeOptions {
        limits: HttpLimits {
            header_read_timeout: timeout,
            ..HttpLimits::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the whole answer; the connection stays open (keep-alive).
    while !String::from_utf8_lossy(&got).contains("\"ok\"") {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();
    // Then nothing: the server closes the idle connection after the timeout.
    let n = tokio::time::timeout(timeout * 4, s.read(&mut buf))
        .await
        .expect("the idle keep-alive connection was not closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected EOF");
    assert!(
        idle_since.elapsed() >= timeout / 2,
        "closed too early: {:?}",
        idle_since.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_new_clients_until_a_slot_frees() {
    let srv = start(ServeOptions {
        limits: HttpLimits {
            header_read_timeout: Duration::from_millis(700),
            max_connections: 20,
            ..HttpLimits::default()
        },
        ..ServeOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(
            tokio::net::TcpStream::connect(srv.addr)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The 21st connects (kernel backlog) but is served only once a slot
    // frees: here when the idle ones time out.
    let (s, took) = healthz(srv.addr).await;
    assert_eq!(s, 200);
    assert!(
        took >= Duration::from_millis(400),
        "served before any slot was free ({took:?}): the cap did not hold"
    );
    drop(held);
    let (s, took) = healthz(srv.addr).await;
    assert_eq!(s, 200);
    assert!(took < Duration::from_millis(100), "{took:?}");
    let _ = &srv.monitor;
}

// ---- report downloads -----------------------------------------------------

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_refuse_links_and_fifos() {
    let f = fixture();
    let dir = f.dir.path();
    let secret = tempfile::NamedTempFile::new().expect("secret");
    std::fs::write(secret.path(), "TOP SECRET").expect("write");

    // A hard link in the records directory to a file elsewhere.
    let hard = "usage_report_20250101_000000.json";
    std::fs::hard_link(secret.path(), dir.join(hard)).expect("hard link");
    // A symbolic link.
    let soft = "usage_report_20250101_000001.json";
    std::os::unix::fs::symlink(secret.path(), dir.join(soft)).expect("symlink");
    // A FIFO nobody writes to: opening it for reading would block.
    let fifo = "usage_report_20250101_000002.json";
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join(fifo))
        .status()
        .is_ok_and(|s| s.success());
    // A directory.
    let sub = "usage_report_20250101_000003.json";
    std::fs::create_dir(dir.join(sub)).expect("dir");
    // A genuine report (one link) still downloads.
    let good = "usage_report_20250101_000004.json";
    std::fs::write(dir.join(good), "{}").expect("report");

    let mut names = vec![hard, soft, sub];
    if made {
        names.push(fifo);
    } else {
        assert!(std::env::var_os("CI").is_none(), "mkfifo failed");
        println!("skipped (FIFO case): install coreutils (mkfifo)");
    }
    for name in names {
        let t = Instant::now();
        let uri = format!("/api/ai_usage/download_report?path={name}");
        let fut = get(&f.app, &uri);
        let (s, v) = tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .unwrap_or_else(|_| panic!("{name}: the download blocked"));
        assert_error(s, &v, StatusCode::NOT_FOUND, name);
        assert!(!v.to_string().contains("TOP SECRET"));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            t.elapsed()
        );
    }
    let (s, _, b) = send(
        &f.app,
        Method::GET,
        &format!("/api/ai_usage/download_report?path={good}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&b[..], b"{}");
}

// ---- CSV formula injection -------------------------------------------------

/// Ids a spreadsheet would run as formulas.
pub const HOSTILE: [&str; 6] = [
    "=HYPERLINK(\"http://evil\",\"x\")",
    "+cmd|' /C calc'!A0",
    "@SUM(1)",
    "-2+3",
    "\tTAB",
    "\rCR",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_csv_neutralises_formula_cells() {
    let f = fixture();
    for (i, id) in HOSTILE.iter().enumerate() {
        f.monitor.record(
            &UsageEvent::new(id, id)
                .tokens(10 + i as u64, 1)
                .user(id)
                .session(id),
        );
    }
    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/export_report?format=csv",
        &json!({}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url = v["download_url"]
        .as_str()
        .expect("download_url")
        .to_string();
    assert!(url.contains("usage_daily_"), "{url}");
    let (s, _, b) = send(&f.app, Method::GET, &url, &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let csv = String::from_utf8_lossy(&b).into_owned();
    for id in HOSTILE {
        // RFC 4180 quoting of the neutralised cell.
        let cell = format!("'{id}");
        let cell = if cell.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell
        };
        assert!(
            csv.contains(&format!(",{cell},")),
            "{id:?} not neutralised in:\n{csv}"
        );
    }
    // No cell (at a line start or after a comma, quoted or not) starts a formula.
    for line in csv.split('\n').skip(1) {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "formula cell {cell:?} in {line:?}"
            );
        }
    }
}

/// Reads from `s` until EOF or a reset; true when that came within `wait`.
async fn closed_within(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // the 408 head before the close
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_trickling_request_bodies_are_cut_off() {
    let timeout = Duration::from_millis(800);
    let srv = start(ServeOptions {
        limits: HttpLimits {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 300,
            body_read_timeout: timeout,
            ..HttpLimits::default()
        },
        ..ServeOptions::default()
    })
    .await;
    // 250 POST heads promising 100 bytes, then one byte, then nothing:
    // without a body deadline each held its slot forever.
    let mut stalled = Vec::new();
    for _ in 0..250 {
        let mut s = tokio::net::TcpStream::connect(srv.addr)
            .await
            .expect("connect");
        s.write_all(
            b"POST /api/ai_usage/record HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("head");
        stalled.push(s);
    }
    // One more keeps its body trickling, a byte every 100 ms.
    let mut trickle = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    trickle
        .write_all(b"POST /api/ai_usage/record HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("head");
    let started = Instant::now();
    let trickler = tokio::spawn(async move {
        for _ in 0..40 {
            if trickle.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trickle
    });

    // A new client is answered while they hold their connections.
    let (s, took) = healthz(srv.addr).await;
    assert_eq!(s, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");

    tokio::time::sleep(timeout + Duration::from_millis(400)).await;
    let mut closed = 0;
    for s in &mut stalled {
        if closed_within(s, Duration::from_millis(300)).await {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        stalled.len(),
        "every stalled body's connection closed"
    );
    let mut trickle = trickler.await.expect("trickler");
    assert!(
        closed_within(&mut trickle, Duration::from_millis(500)).await,
        "a body trickling a byte every 100 ms is cut off"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A stalled body gets a 408 that names the cause.
    let (s, _, body) = raw(
        srv.addr,
        "POST /api/ai_usage/record HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"a\"".into(),
    )
    .await
    .expect("raw");
    assert_eq!(s, 408, "{body}");
    assert!(body.contains("did not arrive in time"), "{body}");
    // Complete bodies still go through.
    let (s, _, body) = raw(
        srv.addr,
        "POST /api/ai_usage/record HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".into(),
    )
    .await
    .expect("raw");
    assert_eq!(s, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_share_a_bounded_memory_budget() {
    let timeout = Duration::from_millis(1500);
    let max = ai_usage_server::MAX_BODY_BYTES;
    // Room for one maximal body at a time.
    let srv = start(ServeOptions {
        limits: HttpLimits {
            body_read_timeout: timeout,
            // No extra time for size: A is cut off right after the timeout.
            min_body_bytes_per_sec: u32::MAX,
            max_body_bytes_in_flight: max + 1,
            ..HttpLimits::default()
        },
        ..ServeOptions::default()
    })
    .await;
    // A holds the whole budget: it declares a maximal body and stalls.
    let mut a = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    a.write_all(
        format!("POST /api/ai_usage/record HTTP/1.1\r\nHost: x\r\nContent-Length: {max}\r\n\r\n{{")
            .as_bytes(),
    )
    .await
    .expect("head");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // B's small complete body is not read (nor held in memory) until A's
    // bytes are released, when A is cut off.
    let started = Instant::now();
    let (s, _, body) = raw(
        srv.addr,
        "POST /api/ai_usage/record HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".into(),
    )
    .await
    .expect("raw");
    let waited = started.elapsed();
    assert_eq!(s, 422, "{body}");
    assert!(
        waited >= Duration::from_millis(800),
        "B was read while A held the budget: {waited:?}"
    );
    assert!(closed_within(&mut a, Duration::from_secs(2)).await);
    // Requests without a body never wait for the budget.
    let (s, took) = healthz(srv.addr).await;
    assert_eq!(s, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

// ---- the intake rules every door shares ------------------------------------

/// Timestamps outside the window around the clock, control characters in
/// ids, over-long ids and fractional counts inside a raw response are
/// refused naming the field; nothing is recorded. The `/session/{id}` route
/// takes the same id length as ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_rules_are_applied_at_ingest() {
    let f = fixture();
    let now = ai_usage_core::now_timestamp();
    let long = "s".repeat(ai_usage_core::intake::MAX_ID_LEN + 1);
    let cases = [
        (
            json!({"model": "m", "function": "f", "timestamp": now * 1000.0}),
            "timestamp",
        ),
        (
            json!({"model": "m", "function": "f", "timestamp": 1}),
            "timestamp",
        ),
        (
            json!({"model": "m", "function": "f", "timestamp": now - 400.0 * 86_400.0}),
            "timestamp",
        ),
        (
            json!({"model": "m", "function": "f", "user_id": "u\u{1b}[2J"}),
            "user_id",
        ),
        (
            json!({"model": "m", "function": "f", "anchor_id": "a\r"}),
            "anchor_id",
        ),
        (
            json!({"model": "m", "function": "f\u{1b}", "request_id": "r"}),
            "function",
        ),
        (
            json!({"model": "m", "function": "f", "request_id": "r\n"}),
            "request_id",
        ),
        (
            json!({"model": "m", "function": "f", "session_id": long}),
            "session_id",
        ),
        (
            json!({"model": "gpt-4o", "function": "f", "response": {"object": "chat.completion",
                "model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 10.5, "completion_tokens": 2}}}),
            "response",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = post_json(&f.app, "/api/ai_usage/record", &body, &[]).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, field);
    }
    assert_eq!(f.monitor.get_daily_summary(0).total_calls, 0);
    // An hour-old timestamp and a 256-byte session id are accepted.
    let ok_id = "s".repeat(ai_usage_core::intake::MAX_ID_LEN);
    let (s, v) = post_json(
        &f.app,
        "/api/ai_usage/record",
        &json!({"model": "m", "function": "f", "timestamp": now - 3600.0, "session_id": ok_id}),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = get(&f.app, &format!("/api/ai_usage/session/{ok_id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = get(&f.app, &format!("/api/ai_usage/session/{long}")).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "session_id");
}
