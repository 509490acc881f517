use super::*;
use ai_usage_core::dayfile;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

fn now_nanos() -> u64 {
    (ai_usage_core::now_timestamp() * 1e9) as u64
}

fn chat_span(n: u8, model: &str) -> Span {
    let start = now_nanos() - 2_000_000_000;
    Span {
        trace_id: vec![n.max(1); 16],
        span_id: vec![n.max(1); 8],
        name: format!("chat {model}"),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 800_000_000,
        attributes: vec![
            kv("gen_ai.operation.name", Value::StringValue("chat".into())),
            kv("gen_ai.request.model", Value::StringValue(model.into())),
            kv("gen_ai.usage.input_tokens", Value::IntValue(1000)),
            kv("gen_ai.usage.output_tokens", Value::IntValue(100)),
        ],
        ..Span::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("直播助手".into()))],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn monitor(dir: &std::path::Path) -> UsageMonitor {
    UsageMonitor::builder().dir(dir).build().expect("monitor")
}

fn lines(dir: &std::path::Path) -> Vec<ai_usage_core::UsageRecord> {
    let mut out = Vec::new();
    for (_, p) in dayfile::list_day_files(dir).expect("list") {
        dayfile::read_day_file(&p, |r| out.push(r)).expect("read");
    }
    out
}

#[test]
fn records_once_across_resends_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let req = request(vec![chat_span(1, "qwen-plus"), chat_span(2, "qwen-max")]);
    {
        let m = monitor(dir.path());
        let rx = TraceReceiver::new();
        let out = rx.export(&m, &req).expect("export");
        assert_eq!((out.recorded, out.duplicates, out.rejected), (2, 0, 0));
        let again = rx.export(&m, &req).expect("re-send");
        assert_eq!((again.recorded, again.duplicates), (0, 2));
        m.shutdown().expect("shutdown");
    }
    let recs = lines(dir.path());
    assert_eq!(recs.len(), 2);
    let qwen = recs
        .iter()
        .find(|r| r.model == "qwen-plus")
        .expect("qwen-plus");
    assert_eq!(qwen.function, "直播助手");
    let expected = {
        let m = monitor(dir.path());
        let at =
            chrono::DateTime::from_timestamp_micros((qwen.timestamp * 1e6) as i64).expect("at");
        let q = m.pricing().price_at(None, "qwen-plus", &qwen.usage(), at);
        assert!(q.priced);
        q.cost
    };
    assert_eq!(qwen.cost, expected);

    // A new process: the ledger is read back from the day files.
    let m = monitor(dir.path());
    let rx = TraceReceiver::new();
    let out = rx.export(&m, &req).expect("after restart");
    assert_eq!((out.recorded, out.duplicates), (0, 2));
    assert_eq!(rx.ledger().len(), 2);
    let third = request(vec![chat_span(3, "qwen-plus"), chat_span(1, "qwen-plus")]);
    let out = rx.export(&m, &third).expect("one new");
    assert_eq!((out.recorded, out.duplicates), (1, 1));
    m.shutdown().expect("shutdown");
    assert_eq!(lines(dir.path()).len(), 3);
}

#[test]
fn rejected_and_ignored_spans_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = monitor(dir.path());
    let mut old = chat_span(4, "qwen-plus");
    old.start_time_unix_nano = 1_000_000_000; // 1970: outside the window
    old.end_time_unix_nano = 2_000_000_000;
    let http = Span {
        trace_id: vec![5; 16],
        span_id: vec![5; 8],
        name: "POST /v1/chat".into(),
        start_time_unix_nano: now_nanos(),
        end_time_unix_nano: now_nanos(),
        ..Span::default()
    };
    let req = request(vec![chat_span(6, "qwen-plus"), old, http]);
    let out = TraceReceiver::new().export(&m, &req).expect("export");
    assert_eq!((out.recorded, out.rejected, out.ignored), (1, 1, 1));
    assert!(out.messages[0].contains("timestamp"), "{:?}", out.messages);
    assert!(out.messages[0].contains("04040404040404040404040404040404/0404040404040404"));
    let body = encode_response(&out, Encoding::Protobuf);
    let resp = ExportTraceServiceResponse::decode(&body[..]).expect("decode");
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("timestamp"));
    let json: serde_json::Value =
        serde_json::from_slice(&encode_response(&out, Encoding::Json)).expect("json");
    assert!(
        json["partialSuccess"]["rejectedSpans"] == 1
            || json["partialSuccess"]["rejectedSpans"] == "1",
        "{json}"
    );
    // Nothing rejected: no partial_success at all.
    let ok = ExportOutcome {
        recorded: 1,
        ..ExportOutcome::default()
    };
    assert!(
        ExportTraceServiceResponse::decode(&encode_response(&ok, Encoding::Protobuf)[..])
            .expect("decode")
            .partial_success
            .is_none()
    );
}

#[test]
fn decodes_protobuf_json_and_gzip() {
    let req = request(vec![chat_span(7, "qwen-plus")]);
    let pb = req.encode_to_vec();
    let (got, enc) = decode_request(Some("application/x-protobuf"), None, &pb).expect("protobuf");
    assert_eq!((got, enc), (req.clone(), Encoding::Protobuf));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &pb).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let (got, _) = decode_request(Some("application/x-protobuf"), Some("gzip"), &gz).expect("gzip");
    assert_eq!(got, req);

    let err = decode_request(Some("text/plain"), None, &pb).expect_err("415");
    assert_eq!(err.http_status(), 415);
    let err = decode_request(Some("application/x-protobuf"), Some("br"), &pb).expect_err("415");
    assert_eq!(err.http_status(), 415);
    let err =
        decode_request(Some("application/x-protobuf"), Some("gzip"), &pb).expect_err("not gzip");
    assert_eq!(err.http_status(), 400);
    let err =
        decode_request(Some("application/json"), None, b"{\"resourceSpans\": 3}").expect_err("400");
    assert_eq!(err.http_status(), 400);
    let err =
        decode_request(Some("application/x-protobuf"), None, b"\xff\xff\xff").expect_err("400");
    assert_eq!(err.http_status(), 400);

    // A gzip bomb: small on the wire, over the limit inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; MAX_DECODED_BYTES + 10]).expect("gzip");
    let bomb = gz.finish().expect("gzip");
    assert!(bomb.len() < 1 << 20);
    let err = decode_request(Some("application/x-protobuf"), Some("gzip"), &bomb).expect_err("413");
    assert_eq!(err.http_status(), 413);
}

#[test]
fn error_bodies_are_rpc_status() {
    let pb = encode_status(400, "bad body", Encoding::Protobuf);
    let st = RpcStatus::decode(&pb[..]).expect("status");
    assert_eq!((st.code, st.message.as_str()), (3, "bad body"));
    let json: serde_json::Value =
        serde_json::from_slice(&encode_status(503, "busy", Encoding::Json)).expect("json");
    assert_eq!(json["code"], 14);
    assert_eq!(json["message"], "busy");
}
