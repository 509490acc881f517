//! The metrics export, read by an independent decoder: a capture server
//! takes what the monitor exports over OTLP/HTTP, and the official Python
//! `opentelemetry-proto` package decodes it. Names, units, attributes,
//! bucket boundaries and sums must equal the records.
//!
//! Without python3 or PyPI (and without `CI`) it prints `skipped: …`.
#![cfg(feature = "export")]

#[path = "../../ai-usage-server/tests/otlp/python_env.rs"]
mod python_env;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_usage_core::{Money, UsageEvent, UsageMonitor};
use ai_usage_otel::export::instruments::{DURATION_BUCKETS, TOKEN_BUCKETS};
use ai_usage_otel::export::{OtlpExt, OtlpMetrics};
use serde_json::Value;

type Captured = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A stand-in collector: keeps every request body, answers 200.
fn capture_server() -> (SocketAddr, Captured) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got: Captured = Arc::default();
    let keep = Arc::clone(&got);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let keep = Arc::clone(&keep);
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut w = conn;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((n, v)) = h.split_once(':') {
                            if n.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    keep.lock().expect("lock").push((path, body));
                    let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if w.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, got)
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn exported_metrics_decode_to_the_records() {
    let Some(python) = python_env::python() else {
        return;
    };
    let (addr, captured) = capture_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let monitor = UsageMonitor::builder()
        .dir(dir.path())
        .otlp_metrics(
            OtlpMetrics::from_env()
                .endpoint(format!("http://{addr}/v1/metrics"))
                .export_interval(Duration::from_millis(300))
                .with_user_id(true),
        )
        .build()
        .expect("monitor");
    let calls = [
        (
            "qwen-plus",
            "弹幕回复",
            1200u64,
            300u64,
            850.0,
            true,
            None,
            "u1",
        ),
        ("qwen-plus", "弹幕回复", 5000, 20, 120.0, true, None, "u1"),
        (
            "qwen-plus",
            "弹幕回复",
            70,
            0,
            33000.0,
            false,
            Some("RateLimitError"),
            "u1",
        ),
        (
            "gpt-4o-mini",
            "摘要",
            100_000,
            4000,
            2500.0,
            true,
            None,
            "u2",
        ),
    ];
    let mut records = Vec::new();
    for (model, function, input, output, ms, ok, err, user) in calls {
        let mut ev = UsageEvent::new(model, function)
            .tokens(input, output)
            .duration_ms(ms)
            .user(user);
        ev.success = ok;
        ev.error_msg = err;
        if model == "gpt-4o-mini" {
            ev = ev.provider("openai");
        }
        records.push(monitor.record(&ev));
    }
    // An explicit cost in another currency: its own series.
    let mut ev = UsageEvent::new("qwen-plus", "弹幕回复")
        .tokens(10, 10)
        .user("u1");
    ev.cost = Some(Money::from_f64(0.25).expect("money"));
    ev.currency = ai_usage_core::Currency::new("EUR");
    records.push(monitor.record(&ev));
    monitor.shutdown().expect("shutdown: the last export");

    let bodies: Vec<Vec<u8>> = captured
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| p == "/v1/metrics")
        .map(|(_, b)| b.clone())
        .collect();
    assert!(!bodies.is_empty(), "nothing exported");
    let last = dir.path().join("last-export.bin");
    std::fs::write(&last, bodies.last().expect("a body")).expect("write");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/decode_metrics.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&last)
        .output()
        .expect("run the decoder");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("decoder JSON");
    let m = &got["metrics"];
    assert_eq!(got["scope"], "ai-usage-monitor");
    assert!(got["resource"]["service.name"].is_string(), "{got}");

    // Tokens: one point per (series, type); sums and counts equal the records.
    let tokens = &m["gen_ai.client.token.usage"];
    assert_eq!(tokens["unit"], "{token}");
    assert_eq!(tokens["kind"], "histogram");
    assert_eq!(tokens["temporality"], 2, "cumulative");
    let mut sums: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for p in tokens["points"].as_array().expect("points") {
        let a = &p["attributes"];
        assert_eq!(a["gen_ai.operation.name"], "chat");
        assert_eq!(a["gen_ai.request.model"], a["gen_ai.response.model"]);
        assert!(a["ai_usage.function"].is_string());
        assert!(a["user.id"].is_string(), "opted in");
        let bounds: Vec<f64> = serde_json::from_value(p["bounds"].clone()).expect("bounds");
        assert_eq!(bounds, TOKEN_BUCKETS);
        let e = sums
            .entry((
                a["gen_ai.request.model"].as_str().unwrap_or("").to_owned(),
                a["gen_ai.token.type"].as_str().unwrap_or("").to_owned(),
            ))
            .or_default();
        e.0 += p["count"].as_u64().expect("count");
        e.1 += p["sum"].as_f64().expect("sum");
    }
    for model in ["qwen-plus", "gpt-4o-mini"] {
        let of = |f: fn(&ai_usage_core::UsageRecord) -> u64| -> f64 {
            records
                .iter()
                .filter(|r| r.model == model)
                .map(|r| f(r) as f64)
                .sum()
        };
        let n = records.iter().filter(|r| r.model == model).count() as u64;
        assert_eq!(
            sums[&(model.to_owned(), "input".to_owned())],
            (n, of(|r| r.input_tokens))
        );
        assert_eq!(
            sums[&(model.to_owned(), "output".to_owned())],
            (n, of(|r| r.output_tokens))
        );
    }
    let gpt = tokens["points"]
        .as_array()
        .expect("points")
        .iter()
        .find(|p| p["attributes"]["gen_ai.request.model"] == "gpt-4o-mini")
        .expect("gpt point");
    assert_eq!(gpt["attributes"]["gen_ai.provider.name"], "openai");

    // Duration: seconds, the spec's buckets, error.type on the failure only.
    let duration = &m["gen_ai.client.operation.duration"];
    assert_eq!(duration["unit"], "s");
    let mut total = 0.0;
    let mut failed = 0;
    for p in duration["points"].as_array().expect("points") {
        let bounds: Vec<f64> = serde_json::from_value(p["bounds"].clone()).expect("bounds");
        assert_eq!(bounds, DURATION_BUCKETS);
        total += p["sum"].as_f64().expect("sum");
        if let Some(e) = p["attributes"]["error.type"].as_str() {
            assert_eq!(e, "RateLimitError");
            failed += p["count"].as_u64().expect("count");
            let buckets: Vec<u64> = serde_json::from_value(p["buckets"].clone()).expect("buckets");
            // 33 s falls in (20.48, 40.96].
            assert_eq!(buckets[12], 1, "{buckets:?}");
        }
    }
    assert_eq!(failed, 1);
    let want: f64 = records.iter().map(|r| r.duration_ms / 1000.0).sum();
    assert!(approx(total, want), "{total} vs {want}");

    // Cost: a sum per currency, equal to the records' costs.
    let cost = &m["gen_ai.client.cost"];
    assert_eq!(cost["kind"], "monotonic_sum");
    let mut by_currency: BTreeMap<String, f64> = BTreeMap::new();
    for p in cost["points"].as_array().expect("points") {
        let c = p["attributes"]["currency"]
            .as_str()
            .expect("currency")
            .to_owned();
        *by_currency.entry(c).or_default() += p["value"].as_f64().expect("value");
    }
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for r in &records {
        let c = r.currency.unwrap_or_default().code().to_owned();
        *want.entry(c).or_default() += r.cost.as_f64();
    }
    assert_eq!(
        by_currency.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (c, v) in &want {
        assert!(approx(by_currency[c], *v), "{c}: {} vs {v}", by_currency[c]);
    }
    assert!(want.contains_key("EUR"));
}
