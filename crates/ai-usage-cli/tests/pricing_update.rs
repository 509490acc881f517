//! `pricing update` / `pricing status` end to end: catalogues served by a
//! local HTTP server (never the internet), installed into the records
//! directory, rolled back, and picked up by a running `serve`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{cmd, run, stderr};

/// The built-in snapshot (what the newer catalogues are made from).
const SNAPSHOT: &str = include_str!("../../ai-usage-core/data/genai-prices/data_slim.json");

/// The snapshot with a new OpenAI model (`gpt-9-nova`, $2 / $8 per million
/// tokens) and OpenAI's `ada` at $0.5 instead of $0.4: a newer release.
fn newer_catalogue() -> String {
    let mut v: Value = serde_json::from_str(SNAPSHOT).unwrap();
    let openai = v
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["id"] == "openai")
        .unwrap();
    let models = openai["models"].as_array_mut().unwrap();
    let ada = models.iter_mut().find(|m| m["id"] == "ada").unwrap();
    ada["prices"] = serde_json::json!({"input_mtok": 0.5, "output_mtok": 0.5});
    models.push(serde_json::json!({
        "id": "gpt-9-nova",
        "match": {"equals": "gpt-9-nova"},
        "prices": {"input_mtok": 2, "output_mtok": 8}
    }));
    serde_json::to_string(&v).unwrap()
}

/// A LiteLLM `model_prices_and_context_window.json` in miniature.
const LITELLM: &str = r#"{
  "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0, "litellm_provider": "one of litellm's providers"},
  "brand-new-llm": {"input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06, "litellm_provider": "newco", "mode": "chat"}
}"#;

/// What the test server answers for a path.
enum Reply {
    /// 200 with the body and its length.
    Full(String),
    /// 200 announcing the whole body's length, then only its first half
    /// and a closed connection: a cut download.
    Cut(String),
}

/// A one-thread HTTP server answering GETs from a fixed map; 404 otherwise.
fn serve_files(files: Vec<(&'static str, Reply)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req);
            let path = text.split(' ').nth(1).unwrap_or("").to_string();
            match files.iter().find(|(p, _)| *p == path).map(|(_, r)| r) {
                Some(Reply::Full(body)) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Some(Reply::Cut(body)) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        body.len(),
                        &body[..body.len() / 2]
                    );
                }
                None => {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    addr
}

fn json_of(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(dir, &all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `cost MODEL 1000000 1000000 --json`, or `None` when the model is unknown.
fn cost_of(dir: &Path, model: &str) -> Option<Value> {
    let out = run(dir, &["--json", "cost", model, "1000000", "1000000"]);
    if out.status.success() {
        return Some(serde_json::from_slice(&out.stdout).unwrap());
    }
    assert!(stderr(&out).contains("unknown model"), "{}", stderr(&out));
    None
}

fn manifest(dir: &Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join("pricing").join("manifest.json")).ok()
}

#[test]
fn update_from_a_url_status_shows_the_changes_and_rollback_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let web = serve_files(vec![(
        "/prices/data_slim.json",
        Reply::Full(newer_catalogue()),
    )]);

    let before = json_of(dir, &["pricing", "status"]);
    assert_eq!(before["in_force"]["kind"], "built-in");
    assert!(before["changes"].is_null(), "{before}");
    assert!(cost_of(dir, "gpt-9-nova").is_none());

    let url = format!("http://{web}/prices/data_slim.json");
    let out = run(dir, &["pricing", "update", "--from", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 new model, 1 changed price"), "{text}");

    let cost = cost_of(dir, "gpt-9-nova").expect("priced now");
    assert_eq!(cost["priced"], true, "{cost}");
    assert_eq!(cost["currency"], "USD");
    assert_eq!(cost["cost_exact"], "10", "{cost}");

    let status = json_of(dir, &["pricing", "status"]);
    assert_eq!(status["in_force"]["kind"], "updated", "{status}");
    assert_eq!(status["in_force"]["stale"], false);
    assert_eq!(status["in_force"]["age_days"], 0);
    assert_eq!(status["installed"]["source"], url.as_str());
    let sha = status["installed"]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(status["previous_is_builtin"], true);
    assert_eq!(
        status["changes"]["added"],
        serde_json::json!(["openai/gpt-9-nova"])
    );
    let changed = status["changes"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{status}");
    assert_eq!(changed[0]["model"], "openai/ada");
    let text = String::from_utf8_lossy(&run(dir, &["pricing", "status"]).stdout).into_owned();
    assert!(
        text.contains(
            "changed: openai/ada: in 0.0004 out 0.0004 USD/1K → in 0.0005 out 0.0005 USD/1K"
        ),
        "{text}"
    );

    // Rollback: back to the built-in snapshot, and the model is unpriced.
    let out = run(dir, &["pricing", "update", "--rollback"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = json_of(dir, &["pricing", "status"]);
    assert_eq!(status["in_force"]["kind"], "built-in", "{status}");
    assert_eq!(status["previous"]["source"], url.as_str());
    assert!(cost_of(dir, "gpt-9-nova").is_none());
    // A second rollback restores the update.
    assert!(run(dir, &["pricing", "update", "--rollback"])
        .status
        .success());
    assert_eq!(cost_of(dir, "gpt-9-nova").unwrap()["cost_exact"], "10");
}

fn fresh_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn update_from_a_file_and_a_litellm_file_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = tmp.path().join("model_prices_and_context_window.json");
    std::fs::write(&file, LITELLM).unwrap();
    let out = json_of(
        dir,
        &["pricing", "update", "--from", file.to_str().unwrap()],
    );
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(out["current"]["format"], "litellm");
    assert_eq!(out["current"]["models"], 1);
    assert_eq!(out["changes"]["added"], 1);
    assert!(cost_of(fresh_dir().path(), "brand-new-llm").is_none());
    let cost = cost_of(dir, "brand-new-llm").expect("priced now");
    assert_eq!(cost["priced"], true, "{cost}");
    assert_eq!(cost["cost_exact"], "5", "{cost}");
    // Models LiteLLM's list lacks are still priced by the built-in snapshot,
    // and the CNY table keeps its models.
    assert_eq!(cost_of(dir, "gpt-4o").unwrap()["currency"], "USD");
    assert_eq!(cost_of(dir, "qwen-plus").unwrap()["currency"], "CNY");

    // The same file again changes nothing.
    let again = json_of(
        dir,
        &["pricing", "update", "--from", file.to_str().unwrap()],
    );
    assert_eq!(again["changed"], false, "{again}");
}

#[test]
fn a_bad_or_partial_download_changes_nothing_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = newer_catalogue();
    let invalid = good.replacen("\"input_mtok\":2", "\"input_mtok\":-2", 1);
    assert_ne!(invalid, good);
    let web = serve_files(vec![
        ("/good.json", Reply::Full(good.clone())),
        ("/cut.json", Reply::Cut(good.clone())),
        (
            "/half.json",
            Reply::Full(good[..good.len() / 2].to_string()),
        ),
        ("/invalid.json", Reply::Full(invalid)),
        ("/page.html", Reply::Full("<html>busy</html>".into())),
    ]);
    let url = |p: &str| format!("http://{web}{p}");
    assert!(
        run(dir, &["pricing", "update", "--from", &url("/good.json")])
            .status
            .success()
    );
    let installed = manifest(dir).expect("a manifest");
    let files = || std::fs::read_dir(dir.join("pricing")).unwrap().count();
    let n_files = files();

    for (path, says) in [
        ("/cut.json", "partial download"),
        ("/half.json", "EOF while parsing"),
        ("/invalid.json", "input_mtok"),
        ("/page.html", "not a price catalogue"),
        ("/missing.json", "HTTP 404"),
    ] {
        let out = run(dir, &["pricing", "update", "--from", &url(path)]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        let err = stderr(&out);
        assert!(err.contains(says), "{path}: {err}");
        assert_eq!(manifest(dir).as_deref(), Some(&installed[..]), "{path}");
        assert_eq!(files(), n_files, "{path}");
    }
    let out = run(dir, &["pricing", "update", "--from", "no/such/file.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no/such/file.json"),
        "{}",
        stderr(&out)
    );
    // Nothing installed in a fresh directory: a rollback says so.
    let fresh = tempfile::tempdir().unwrap();
    let out = run(fresh.path(), &["pricing", "update", "--rollback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no previous price catalogue"),
        "{}",
        stderr(&out)
    );
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

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Stops the server when the test ends, even on a failed assertion.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path, addr: SocketAddr) -> Server {
    start_server_logging(dir, addr, Stdio::null())
}

fn start_server_logging(dir: &Path, addr: SocketAddr, log: Stdio) -> Server {
    let child = cmd(dir)
        .args(["serve", "--addr", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn serve");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        && http(addr, "GET", "/healthz", "").0 == 200)
    {
        assert!(
            Instant::now() < deadline,
            "the server on {addr} did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Records one `gpt-9-nova` call through HTTP ingest: (priced, cost).
fn record_nova(addr: SocketAddr) -> (bool, f64) {
    let (status, body) = http(
        addr,
        "POST",
        "/api/ai_usage/record",
        r#"{"model":"gpt-9-nova","function":"f","input_tokens":1000000,"output_tokens":1000000}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let r = &v["records"][0];
    (r["priced"].as_bool().unwrap(), r["cost"].as_f64().unwrap())
}

/// The issue's bar: a newer catalogue installed with `pricing update --from`
/// prices a model the built-in snapshot does not know, in a `serve` that
/// keeps running; `/healthz` shows the catalogue in force.
#[test]
fn a_running_serve_prices_a_new_model_after_an_update_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let web = serve_files(vec![("/data_slim.json", Reply::Full(newer_catalogue()))]);
    let addr = free_addr();
    let server = start_server(dir, addr);
    let pid = server.0.id();

    assert_eq!(record_nova(addr), (false, 0.0));
    let (_, health) = http(addr, "GET", "/healthz", "");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["pricing_catalogue"]["kind"], "built-in", "{health}");

    let url = format!("http://{web}/data_slim.json");
    let out = run(dir, &["pricing", "update", "--from", &url]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The server looks every 2 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let priced = loop {
        let r = record_nova(addr);
        if r.0 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(priced, (true, 10.0), "$2 + $8 for a million tokens each");
    assert_eq!(server.0.id(), pid, "the same server process");
    let (_, health) = http(addr, "GET", "/healthz", "");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["pricing_catalogue"]["kind"], "updated", "{health}");
    assert_eq!(health["pricing_catalogue"]["stale"], false);
    drop(server);
}

/// The stale-catalogue warning of `serve`'s start (tracing, on stderr).
const STALE_WARNING: &str = "price catalogue is more than 90 days old";

/// A stale catalogue gives one warning when `serve` starts (and none from
/// a query command, which would repeat it on every run); a fresh one none.
#[test]
fn serve_warns_once_at_start_when_the_catalogue_is_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("records");
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = tmp.path().join("serve.log");
    let addr = free_addr();
    let server = start_server_logging(
        &dir,
        addr,
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    );
    let (_, health) = http(addr, "GET", "/healthz", "");
    let health: Value = serde_json::from_str(&health).unwrap();
    let stale = health["pricing_catalogue"]["stale"].as_bool().unwrap();
    assert_eq!(
        stale,
        health["pricing_catalogue"]["age_days"].as_i64().unwrap() > 90
    );
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        log.matches(STALE_WARNING).count(),
        usize::from(stale),
        "{log}"
    );
    let out = run(&dir, &["stats", "daily"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(STALE_WARNING), "{}", stderr(&out));

    // After an update (dated today) serve starts without the warning.
    let file = tmp.path().join("data_slim.json");
    std::fs::write(&file, newer_catalogue()).unwrap();
    assert!(run(
        &dir,
        &["pricing", "update", "--from", file.to_str().unwrap()]
    )
    .status
    .success());
    let addr = free_addr();
    let server = start_server_logging(
        &dir,
        addr,
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    );
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains(STALE_WARNING), "{log}");
}
