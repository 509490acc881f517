//! OTLP load client: N keep-alive connections POST protobuf
//! `ExportTraceServiceRequest`s of 512 GenAI spans each (the Python SDK's
//! default batch) to `/v1/traces` for a while, then print spans per second
//! recorded (a 200 means durable).
//!
//! ```text
//! ai-usage --dir /tmp/otlp-load serve --addr 127.0.0.1:18092 &
//! cargo run --release -p ai-usage-otel --example otlp_load -- --addr 127.0.0.1:18092 --clients 4 --secs 10
//! ```
//!
//! Each span is what the official OpenAI instrumentation emits for a chat
//! call (operation, provider, request and response model, response id,
//! token counts, finish reasons, server address), with its own span id, so
//! every one is a new call.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name}: bad value")),
        None => Ok(default),
    }
}

#[derive(Default)]
struct Tally {
    spans: AtomicU64,
    ok: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

fn text(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

/// A number unique to this run.
fn run_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (u64::from(std::process::id()) << 32) ^ (nanos << 8)
    })
}

/// One batch of `n` chat spans, ids unique to (`client`, `round`).
fn batch(client: usize, round: u64, n: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let models = ["gpt-4o-mini", "gpt-4o", "qwen-plus", "deepseek-chat"];
    let spans = (0..n)
        .map(|i| {
            let mut trace_id = [0u8; 16];
            // This run (process id and start time) and client: a new run
            // never re-sends an earlier run's spans (those would be repeats).
            trace_id[..8].copy_from_slice(&(run_id() ^ (client as u64 + 1)).to_be_bytes());
            trace_id[8..].copy_from_slice(&round.to_be_bytes());
            let span_id = (i as u64 + 1).to_be_bytes().to_vec();
            let model = models[i % models.len()];
            let start = now - 3_000_000_000 + i as u64 * 1000;
            Span {
                trace_id: trace_id.to_vec(),
                span_id,
                name: format!("chat {model}"),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 850_000_000,
                attributes: vec![
                    text("gen_ai.operation.name", "chat"),
                    text("gen_ai.provider.name", "openai"),
                    text("gen_ai.request.model", model),
                    text("gen_ai.response.model", model),
                    text(
                        "gen_ai.response.id",
                        &format!("chatcmpl-{client}-{round}-{i}"),
                    ),
                    kv(
                        "gen_ai.usage.input_tokens",
                        Value::IntValue(1200 + i as i64),
                    ),
                    kv("gen_ai.usage.output_tokens", Value::IntValue(300)),
                    text("gen_ai.response.finish_reasons", "stop"),
                    text("server.address", "api.openai.com"),
                    kv("server.port", Value::IntValue(443)),
                ],
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "load-test")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// One keep-alive connection posting batches until `stop`.
fn client(
    addr: SocketAddr,
    id: usize,
    spans: usize,
    token: Option<String>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let body = batch(id, round, spans);
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(&body)?;
        // The answer: status line, headers, a Content-Length body.
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
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
        let mut answer = vec![0; len];
        reader.read_exact(&mut answer)?;
        if status == 200 {
            tally.ok.fetch_add(1, Ordering::Relaxed);
            tally.spans.fetch_add(spans as u64, Ordering::Relaxed);
        } else if status == 503 || status == 429 {
            tally.busy.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        } else {
            tally.other.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = arg(&args, "--addr", "127.0.0.1:18092".parse()?)?;
    let clients: usize = arg(&args, "--clients", 4)?;
    let secs: f64 = arg(&args, "--secs", 10.0)?;
    let spans: usize = arg(&args, "--batch", 512)?;
    let token = std::env::var("AI_USAGE_TOKEN").ok();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (token, stop, tally) = (token.clone(), Arc::clone(&stop), Arc::clone(&tally));
            std::thread::spawn(move || client(addr, i, spans, token, stop, tally))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Err(e) = t.join().map_err(|_| "a client panicked")? {
            eprintln!("client failed: {e}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let recorded = tally.spans.load(Ordering::Relaxed);
    println!(
        "{clients} clients, batches of {spans}, {elapsed:.1} s: {recorded} spans recorded durably = {:.0} spans/s ({} batches answered 200, {} answered 503/429, {} other)",
        recorded as f64 / elapsed,
        tally.ok.load(Ordering::Relaxed),
        tally.busy.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed)
    );
    Ok(())
}
