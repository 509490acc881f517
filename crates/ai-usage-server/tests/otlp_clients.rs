//! A Python app instrumented the usual way (the official OpenAI
//! instrumentation, the OpenTelemetry SDK and its OTLP/HTTP exporter, from
//! PyPI in the test's own venv) reports to a real server through
//! `POST /v1/traces`. Its calls go to a stdlib stub of the OpenAI API; the
//! records must show the stub's tokens, model and our price, exactly once,
//! though the exporter sends every batch twice and the batches are sent
//! once more after a restart.
//!
//! Without python3 or PyPI (and without `CI`) it prints `skipped: …`.

mod common;
#[path = "otlp/http.rs"]
mod http;
#[path = "otlp/python_env.rs"]
mod python_env;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ai_usage_core::{dayfile, UsageMonitor, UsageRecord};
use ai_usage_server::{ServeOptions, ServerBuilder};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

const TOKEN: &str = "otlp-test-token";
const CALLS: usize = 3;
const MODEL: &str = "gpt-4o-mini";
const INPUT_TOKENS: u64 = 1234;
const OUTPUT_TOKENS: u64 = 567;
const SERVICE: &str = "客服-chat";

struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(monitor: Arc<UsageMonitor>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let opts = ServeOptions {
        token: Some(TOKEN.into()),
        ..ServeOptions::default()
    };
    let task = tokio::spawn(ServerBuilder::new(monitor).options(opts).serve_listener(
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    Running { addr, stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server");
    }
}

fn records(dir: &Path) -> Vec<UsageRecord> {
    let mut out = Vec::new();
    for (_, path) in dayfile::list_day_files(dir).expect("list day files") {
        dayfile::read_day_file(&path, |r| out.push(r)).expect("read day file");
    }
    out
}

/// The length-prefixed protobuf batches the app saved.
fn saved_batches(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("spans file");
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_instrumented_app_is_recorded_exactly_once() {
    let Some(python) = tokio::task::spawn_blocking(python_env::python)
        .await
        .expect("venv task")
    else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let spans_file = data.path().join("spans.bin");
    let records_dir = data.path().join("records");
    let monitor = common::monitor_in(&records_dir);
    let server = start(Arc::clone(&monitor)).await;

    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/openai_app.py");
    let endpoint = format!("http://{}/v1/traces", server.addr);
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&app)
        .env("STUB_MODEL", MODEL)
        .env("STUB_INPUT_TOKENS", INPUT_TOKENS.to_string())
        .env("STUB_OUTPUT_TOKENS", OUTPUT_TOKENS.to_string())
        .env("CALLS", CALLS.to_string())
        .env("SPANS_FILE", &spans_file)
        .env("OTEL_SERVICE_NAME", SERVICE)
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint)
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("Authorization=Bearer {TOKEN}"),
        )
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_TRACES_EXPORTER");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("app task")
        .expect("run the app");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the app failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the app's JSON line");
    assert_eq!(report["stub_calls"], CALLS, "{report}");
    let exports = report["exports"].as_array().expect("exports");
    let mut exported = 0;
    for e in exports {
        assert_eq!(e[0], "SUCCESS", "first send: {report}");
        assert_eq!(e[1], "SUCCESS", "the re-send is answered 200 too: {report}");
        exported += e[2].as_u64().expect("span count") as usize;
    }
    assert_eq!(exported, CALLS, "one span per call: {report}");

    let check = |recs: &[UsageRecord], monitor: &UsageMonitor| {
        assert_eq!(recs.len(), CALLS, "each call exactly once: {recs:#?}");
        let mut ids: Vec<&str> = recs
            .iter()
            .filter_map(|r| r.request_id.as_deref())
            .collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            ["chatcmpl-stub-1", "chatcmpl-stub-2", "chatcmpl-stub-3"]
        );
        for r in recs {
            assert_eq!(r.model, MODEL);
            assert_eq!(r.function, SERVICE, "function from service.name");
            assert_eq!(r.provider.as_deref(), Some("openai"));
            assert_eq!(
                (r.input_tokens, r.output_tokens),
                (INPUT_TOKENS, OUTPUT_TOKENS)
            );
            assert!(r.success);
            assert!(r.duration_ms > 0.0);
            assert!(r.tags.iter().any(|t| t.starts_with("otel.span:")), "{r:?}");
            let at =
                chrono::DateTime::from_timestamp_micros((r.timestamp * 1e6) as i64).expect("time");
            let quote = monitor
                .pricing()
                .price_at(Some("openai"), MODEL, &r.usage(), at);
            assert!(quote.priced, "{MODEL} has a price");
            assert_eq!(
                r.cost, quote.cost,
                "priced by our pricing at the span's time"
            );
            assert_eq!(r.currency.unwrap_or_default(), quote.currency);
            assert!(r.priced.unwrap_or(true));
        }
    };
    monitor.flush().expect("flush");
    check(&records(&records_dir), &monitor);

    // A restart: the same batches sent again are recognised from the day files.
    server.stop().await;
    monitor.shutdown().expect("shutdown");
    drop(monitor);
    let monitor = common::monitor_in(&records_dir);
    let server = start(Arc::clone(&monitor)).await;
    let batches = saved_batches(&spans_file);
    assert!(!batches.is_empty());
    let auth = format!("Bearer {TOKEN}");
    for b in batches {
        let addr = server.addr;
        let auth = auth.clone();
        let answer = tokio::task::spawn_blocking(move || {
            http::post(
                addr,
                "/v1/traces",
                &[
                    ("Content-Type", "application/x-protobuf"),
                    ("Authorization", &auth),
                ],
                &b,
            )
        })
        .await
        .expect("post task");
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/x-protobuf")
        );
        let resp = ExportTraceServiceResponse::decode(&answer.body[..]).expect("a protobuf answer");
        assert_eq!(resp.partial_success, None);
    }
    monitor.flush().expect("flush");
    check(&records(&records_dir), &monitor);
    assert_eq!(
        monitor.health().records_in_memory as usize,
        CALLS,
        "counted once after the restart too"
    );
    server.stop().await;
}
