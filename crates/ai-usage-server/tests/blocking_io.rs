//! The server under a stuck writer and failing disks: ingest never blocks
//! the async workers (503 + `Retry-After` once too many wait), and internal
//! errors tell the client no file-system path.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ai_usage_core::UsageMonitor;
use ai_usage_server::{ServerBuilder, MAX_INGEST_IN_FLIGHT};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use common::send;

fn record_body(n: usize) -> String {
    let one = json!({"model": "qwen-plus", "function": "backpressure",
                     "input_tokens": 100, "output_tokens": 20, "user_id": "u1"});
    if n == 1 {
        one.to_string()
    } else {
        Value::Array(vec![one; n]).to_string()
    }
}

/// One HTTP/1.1 exchange over a plain socket from a plain thread (so a
/// blocked async worker cannot stall the client): status, head, body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {raw:?}")))?;
    Ok((status, head.to_ascii_lowercase(), body.to_string()))
}

/// Opens the FIFO for reading and drains it forever: the stuck writer
/// moves again. Done at the latest on drop, so a failing test still ends.
/// Gives the records directory back (it was replaced by a plain file so
/// that every write failed), on demand or when the test ends.
struct Unstick(Option<PathBuf>);

impl Unstick {
    fn now(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_file(&dir);
            let _ = std::fs::create_dir_all(&dir);
        }
    }
}

impl Drop for Unstick {
    fn drop(&mut self) {
        self.now();
    }
}

/// A writer that cannot drain: the records directory is replaced by a
/// plain file, so every write fails (root ignores permission bits, a file
/// in the way does not), and a one-record queue under the default blocking
/// policy stays full: the writer takes no new records while its disk fails.
/// The server runs on two async workers and is reached over real sockets.
#[cfg(unix)]
#[test]
fn ingest_on_a_stuck_writer_answers_503_and_leaves_workers_free() {
    let parent = tempfile::tempdir().expect("tempdir");
    let records = parent.path().join("records");
    let monitor = Arc::new(
        UsageMonitor::builder()
            .dir(&records)
            .replay(false)
            .queue_capacity(1)
            // Short retry rounds keep the drain after unsticking quick.
            .flush_interval(Duration::from_millis(20))
            .build()
            .expect("monitor"),
    );
    std::fs::remove_dir_all(&records).expect("remove records dir");
    std::fs::write(&records, b"in the way").expect("file in its place");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Declared after the runtime, so dropped before it on a failure: the
    // runtime's shutdown then waits for workers that can finish.
    let mut unstick = Unstick(Some(records.clone()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = ServerBuilder::new(Arc::clone(&monitor)).router();
    rt.spawn(async move { axum::serve(listener, app).await });

    let (tx, rx) = mpsc::channel();
    let post = |n: usize| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = http(
                addr,
                "POST",
                "/api/ai_usage/record",
                &record_body(n),
                Duration::from_secs(120),
            );
            let _ = tx.send((n, r));
        });
    };

    // A batch far larger than the queue: it waits for the writer, holding
    // one ingest slot.
    post(1000);
    // Wait until the writer is stuck: nothing more gets queued for a while.
    let mut last = u64::MAX;
    let mut still_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let enqueued = monitor.health().writer.map(|w| w.enqueued).unwrap_or(0);
        if enqueued != last {
            last = enqueued;
            still_since = Instant::now();
        } else if enqueued > 0 && still_since.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(Instant::now() < deadline, "the writer never got stuck");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        rx.try_recv().is_err(),
        "the batch finished: the writer was not stuck"
    );

    // Many more requests than ingest slots, all at once.
    let extra = 20;
    for _ in 0..MAX_INGEST_IN_FLIGHT - 1 + extra {
        post(1);
    }

    // The async workers stay free: liveness answers at once.
    let (s, _, _) = http(addr, "GET", "/healthz", "", Duration::from_secs(2))
        .expect("/healthz did not answer within 2 s: an async worker is blocked");
    assert!(s == 200 || s == 503, "{s}");

    // Exactly the requests beyond the slots are refused, with Retry-After.
    for _ in 0..extra {
        let (n, r) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a request beyond the slots was not refused in time");
        let (s, head, body) = r.expect("response");
        assert_eq!((n, s), (1, 503), "{body}");
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(body.contains("overloaded"), "{body}");
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a request finished while the writer was stuck"
    );

    // Unstick the writer: every waiting request completes, recorded. A
    // request whose wait saw a failed round may honestly answer 503 "not
    // durable" instead of 200; its records are still counted and written.
    unstick.now();
    for _ in 0..MAX_INGEST_IN_FLIGHT {
        let (n, r) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a waiting request never completed");
        let (s, _, body) = r.expect("response");
        assert!(
            s == 200 || (s == 503 && body.contains("durable")),
            "{n} records: {s} {body}"
        );
    }
    let counted = serde_json::to_value(monitor.get_daily_summary(0)).expect("summary");
    assert_eq!(
        counted["total_calls"],
        json!(1000 + MAX_INGEST_IN_FLIGHT - 1),
        "the batch and every accepted single record, no refused one"
    );
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// A report that cannot be written: the client gets a 500 with an error id
/// and no path; the path goes to the log only.
#[tokio::test]
async fn failed_export_names_no_path() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("secret-records-dir");
    let monitor = Arc::new(
        UsageMonitor::builder()
            .dir(&dir)
            .replay(false)
            .build()
            .expect("monitor"),
    );
    let app = ServerBuilder::new(Arc::clone(&monitor)).router();
    // Replace the records dir by a plain file: every write under it fails,
    // whatever the user's privileges (root ignores permission bits).
    std::fs::remove_dir_all(&dir).expect("remove dir");
    std::fs::write(&dir, b"not a directory").expect("file in its place");

    for format in ["json", "csv"] {
        let (s, _, b) = send(
            &app,
            Method::POST,
            &format!("/api/ai_usage/export_report?format={format}"),
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        let text = String::from_utf8_lossy(&b);
        assert!(!text.contains("secret-records-dir"), "path leaked: {text}");
        assert!(
            !text.contains(&*parent.path().to_string_lossy()),
            "path leaked: {text}"
        );
        let body: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(body["error"], "internal_error");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("cannot write the report") && detail.contains("error id"),
            "{detail}"
        );
    }
}

/// A writer that fails (today's day file is a directory): `/healthz` says
/// so with 503, without naming the records directory.
#[tokio::test]
async fn failing_writer_health_names_no_path() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("secret-records-dir");
    let monitor = Arc::new(
        UsageMonitor::builder()
            .dir(&dir)
            .replay(false)
            .build()
            .expect("monitor"),
    );
    let day_file = dir.join(format!(
        "usage_{}.jsonl",
        monitor.today().format("%Y-%m-%d")
    ));
    std::fs::create_dir_all(&day_file).expect("trap");
    let app = ServerBuilder::new(Arc::clone(&monitor)).router();
    monitor.record(&ai_usage_core::UsageEvent::new("qwen-plus", "health").tokens(10, 5));
    // The failure shows once the writer has tried; flush waits for that.
    assert!(monitor.flush().is_err(), "the write should fail");
    let (s, _, b) = send(&app, Method::GET, "/healthz", &[], Body::empty()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let text = String::from_utf8_lossy(&b);
    assert!(!text.contains("secret-records-dir"), "path leaked: {text}");
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["writer"]["last_error"], "see the server log", "{v}");
    assert!(v["writer"]["write_errors"].as_u64() > Some(0), "{v}");
}

/// A following monitor behind the router sees what another process
/// appended: its follower thread reads it, never the query handlers.
#[tokio::test]
async fn queries_see_records_appended_by_another_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Arc::new(
        UsageMonitor::builder()
            .dir(dir.path())
            .follow(Duration::from_millis(10))
            .build()
            .expect("served monitor"),
    );
    let app = ServerBuilder::new(Arc::clone(&served)).router();
    let other = UsageMonitor::builder()
        .dir(dir.path())
        .replay(false)
        .build()
        .expect("other monitor");
    for _ in 0..3 {
        other.record(&ai_usage_core::UsageEvent::new("qwen-plus", "elsewhere").tokens(100, 10));
    }
    other.flush().expect("flush");
    // The monitor's follower thread reads the appends on its own timer; no
    // query reads files. Poll the route until it shows them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _, b) = send(
            &app,
            Method::GET,
            "/api/ai_usage/stats/daily",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).expect("json");
        if v["total_calls"] == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never counted the other writer's records: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
