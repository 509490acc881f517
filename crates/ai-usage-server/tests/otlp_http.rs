//! `POST /v1/traces` over HTTP: the OTLP JSON encoding written by hand to
//! the spec (hex ids, camelCase names, 64-bit integers as strings), gzip,
//! the token, and the spec's error answers.

mod common;

use ai_usage_core::{dayfile, UsageRecord};
use ai_usage_server::ServeOptions;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::{json, Value};

const TOKEN: &str = "s3cret-token";

fn fixture() -> common::Fixture {
    common::fixture_with(Some(ServeOptions {
        token: Some(TOKEN.into()),
        ..ServeOptions::default()
    }))
}

fn records(f: &common::Fixture) -> Vec<UsageRecord> {
    f.monitor.flush().expect("flush");
    let mut out = Vec::new();
    for (_, p) in dayfile::list_day_files(f.dir.path()).expect("list") {
        dayfile::read_day_file(&p, |r| out.push(r)).expect("read");
    }
    out
}

/// `google.rpc.Status`, as an exporter reads an error body.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn nanos_ago(secs: u64) -> u64 {
    (ai_usage_core::now_timestamp() as u64 - secs) * 1_000_000_000
}

/// An export request as the OTLP JSON mapping spells it.
fn spec_json() -> Value {
    let start = nanos_ago(60);
    json!({
      "resourceSpans": [{
        "resource": {"attributes": [
          {"key": "service.name", "value": {"stringValue": "弹幕助手"}},
          {"key": "ai_usage.function", "value": {"stringValue": "弹幕回复"}}
        ]},
        "scopeSpans": [{
          "scope": {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.4b0"},
          "spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b174",
              "parentSpanId": "",
              "name": "chat qwen-plus",
              "kind": 3,
              "startTimeUnixNano": start.to_string(),
              "endTimeUnixNano": (start + 850_000_000).to_string(),
              "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.provider.name", "value": {"stringValue": "dashscope"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "qwen-plus"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "300"}},
                {"key": "gen_ai.response.id", "value": {"stringValue": "resp-1"}},
                {"key": "user.id", "value": {"stringValue": "u1"}},
                {"key": "ai_usage.anchor_id", "value": {"stringValue": "anchor_123"}},
                {"key": "session.id", "value": {"stringValue": "session_456"}}
              ],
              "status": {}
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "0102030405060708",
              "name": "chat gpt-4o",
              "kind": 3,
              "startTimeUnixNano": (start + 1_000_000_000).to_string(),
              "endTimeUnixNano": (start + 3_000_000_000u64).to_string(),
              "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 10}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "0"}},
                {"key": "gen_ai.usage.cost.amount", "value": {"doubleValue": 0.0123}},
                {"key": "gen_ai.usage.cost.currency", "value": {"stringValue": "USD"}},
                {"key": "error.type", "value": {"stringValue": "timeout"}}
              ],
              "status": {"code": 2, "message": "deadline exceeded"}
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "1112131415161718",
              "name": "GET /healthz",
              "kind": 2,
              "startTimeUnixNano": start.to_string(),
              "endTimeUnixNano": start.to_string()
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "2122232425262728",
              "name": "chat",
              "kind": 3,
              "startTimeUnixNano": start.to_string(),
              "endTimeUnixNano": start.to_string(),
              "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}
              ]
            }
          ]
        }]
      }]
    })
}

async fn post(
    f: &common::Fixture,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let (s, h, b) = common::send(
        &f.app,
        Method::POST,
        "/v1/traces",
        headers,
        Body::from(body),
    )
    .await;
    (s, h, b.to_vec())
}

#[tokio::test]
async fn json_written_to_the_spec_is_recorded_once() {
    let f = fixture();
    let auth = format!("Bearer {TOKEN}");
    let body = serde_json::to_vec(&spec_json()).expect("json");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    let (status, h, b) = post(&f, &headers, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h["content-type"], "application/json");
    let answer: Value = serde_json::from_slice(&b).expect("JSON answer");
    let partial = &answer["partialSuccess"];
    assert!(
        partial["rejectedSpans"] == 1 || partial["rejectedSpans"] == "1",
        "{answer}"
    );
    let msg = partial["errorMessage"].as_str().expect("message");
    assert!(
        msg.contains("2122232425262728") && msg.contains("model"),
        "{msg}"
    );

    let recs = records(&f);
    assert_eq!(
        recs.len(),
        2,
        "two calls; the HTTP span is ignored, the model-less one rejected"
    );
    let qwen = recs
        .iter()
        .find(|r| r.model == "qwen-plus")
        .expect("qwen-plus");
    assert_eq!(qwen.function, "弹幕回复");
    assert_eq!((qwen.input_tokens, qwen.output_tokens), (1200, 300));
    assert_eq!(qwen.provider.as_deref(), Some("dashscope"));
    assert_eq!(qwen.request_id.as_deref(), Some("resp-1"));
    assert_eq!(qwen.user_id.as_deref(), Some("u1"));
    assert_eq!(qwen.anchor_id.as_deref(), Some("anchor_123"));
    assert_eq!(qwen.session_id.as_deref(), Some("session_456"));
    assert_eq!(qwen.duration_ms, 850.0);
    assert!(qwen.success);
    let at = chrono::DateTime::from_timestamp_micros((qwen.timestamp * 1e6) as i64).expect("at");
    let quote = f
        .monitor
        .pricing()
        .price_at(Some("dashscope"), "qwen-plus", &qwen.usage(), at);
    assert!(quote.priced);
    assert_eq!(qwen.cost, quote.cost);

    let gpt = recs.iter().find(|r| r.model == "gpt-4o").expect("gpt-4o");
    assert!(!gpt.success);
    assert_eq!(gpt.error_msg.as_deref(), Some("timeout"));
    assert_eq!(
        gpt.cost,
        ai_usage_core::Money::from_f64(0.0123).expect("money"),
        "the span's own cost, kept as given"
    );
    assert_eq!(gpt.currency.map(|c| c.to_string()).as_deref(), Some("USD"));
    assert_eq!(gpt.duration_ms, 2000.0);

    // The exporter re-sends: 200 again, nothing counted twice.
    let (status, _, b) = post(&f, &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(records(&f).len(), 2);
    assert_eq!(f.monitor.health().records_in_memory, 2);
}

#[tokio::test]
async fn protobuf_and_gzip_answer_in_protobuf() {
    let f = fixture();
    let auth = format!("Bearer {TOKEN}");
    let req: ExportTraceServiceRequest =
        serde_json::from_value(spec_json()).expect("the JSON mapping");
    let pb = req.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &pb).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let headers = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
        ("authorization", auth.as_str()),
    ];
    let (status, h, b) = post(&f, &headers, gz).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["content-type"], "application/x-protobuf");
    let resp = ExportTraceServiceResponse::decode(&b[..]).expect("protobuf answer");
    assert_eq!(resp.partial_success.expect("partial").rejected_spans, 1);
    assert_eq!(records(&f).len(), 2);
}

#[tokio::test]
async fn errors_follow_the_spec() {
    let f = fixture();
    let auth = format!("Bearer {TOKEN}");
    let pb = ExportTraceServiceRequest::default().encode_to_vec();

    // The server's token guards the route.
    let (status, _, _) = post(
        &f,
        &[("content-type", "application/x-protobuf")],
        pb.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong = [
        ("content-type", "application/x-protobuf"),
        ("authorization", "Bearer nope"),
    ];
    assert_eq!(
        post(&f, &wrong, pb.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );

    // An empty request is a valid one.
    let ok = [
        ("content-type", "application/x-protobuf"),
        ("authorization", auth.as_str()),
    ];
    assert_eq!(post(&f, &ok, pb).await.0, StatusCode::OK);

    let (status, h, b) = post(&f, &ok, b"\x0a\xff\xff\xff".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(h["content-type"], "application/x-protobuf");
    let st = RpcStatus::decode(&b[..]).expect("a google.rpc.Status");
    assert!(st.message.contains("protobuf"), "{}", st.message);

    let json = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    let (status, h, b) = post(&f, &json, b"{\"resourceSpans\": {}}".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(h["content-type"], "application/json");
    let st: Value = serde_json::from_slice(&b).expect("JSON status");
    assert!(
        st["message"].as_str().is_some_and(|m| m.contains("JSON")),
        "{st}"
    );

    let text = [
        ("content-type", "text/plain"),
        ("authorization", auth.as_str()),
    ];
    assert_eq!(
        post(&f, &text, b"hi".to_vec()).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    let big = vec![0u8; ai_usage_server::MAX_BODY_BYTES + 1];
    assert_eq!(post(&f, &ok, big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(records(&f).is_empty());
}
