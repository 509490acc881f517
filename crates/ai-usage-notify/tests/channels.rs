//! Each kind against a local receiver that checks the request exactly as the
//! provider documents it, and the classification of the answers.

mod common;

use std::time::Duration;

use ai_usage_notify::{
    send, send_with_timeout, ChannelConfig, SendError, EVENT_ID_HEADER, SIGNATURE_HEADER,
};
use common::*;

const SECRET: &str = "SEC-d9f1c0ffee";

fn config(json: String) -> ChannelConfig {
    ChannelConfig::from_json(&json).unwrap()
}

fn assert_mentions_alert(text: &str) {
    for needle in [
        "主播日预算",
        "anchor_001",
        "80%",
        "¥40.50",
        "¥50.00",
        "¥1203.25",
        "2026-12-07",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}

#[test]
fn feishu_text_signed_as_documented() {
    let stub = Stub::start(vec![reply(200, r#"{"code":0,"msg":"success","data":{}}"#)]);
    let c = config(format!(
        r#"{{"kind":"feishu","url":"{}","secret":"{SECRET}"}}"#,
        stub.url("/open-apis/bot/v2/hook/0b1e2d3c-hook-token")
    ));
    let before = now_ms() / 1000;
    send(&c, &sample_message()).unwrap();
    let after = now_ms() / 1000;
    let r = stub.next();
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/open-apis/bot/v2/hook/0b1e2d3c-hook-token");
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = r.json();
    assert_eq!(body["msg_type"], "text");
    let text = body["content"]["text"].as_str().unwrap();
    assert_mentions_alert(text);
    assert!(text.contains("预算提醒") && text.contains("看板：https://ai-usage.example.com"));
    // timestamp: seconds, as a string.
    let ts_text = body["timestamp"].as_str().expect("timestamp is a string");
    let ts: i64 = ts_text.parse().unwrap();
    assert!(
        (before..=after).contains(&ts),
        "{ts} not in {before}..={after}"
    );
    // sign = base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = "")).
    let expected = b64(&hmac_sha256(format!("{ts_text}\n{SECRET}").as_bytes(), b""));
    assert_eq!(body["sign"], expected.as_str());
    assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
}

#[test]
fn feishu_interactive_card_in_english_unsigned() {
    let stub = Stub::start(vec![reply(
        200,
        r#"{"StatusCode":0,"StatusMessage":"success"}"#,
    )]);
    let c = config(format!(
        r#"{{"kind":"feishu","url":"{}","msg_type":"interactive","language":"en"}}"#,
        stub.url("/open-apis/bot/v2/hook/x")
    ));
    send(&c, &sample_message()).unwrap();
    let body = stub.next().json();
    assert_eq!(body["msg_type"], "interactive");
    assert!(body.get("sign").is_none() && body.get("timestamp").is_none());
    let card = &body["card"];
    assert_eq!(
        card["header"]["title"]["content"],
        "Budget warning: 主播日预算 reached 80%"
    );
    assert_eq!(card["header"]["template"], "orange");
    let md = card["elements"][0]["text"]["content"].as_str().unwrap();
    assert_eq!(card["elements"][0]["text"]["tag"], "lark_md");
    assert!(md.contains("**Scope**: anchor anchor_001"), "{md}");
    assert!(md.contains("¥40.50 of ¥50.00 (81.00%)"), "{md}");
    let button = &card["elements"][1]["actions"][0];
    assert_eq!(button["url"], "https://ai-usage.example.com");
    assert_eq!(button["text"]["content"], "Open dashboard");
}

#[test]
fn dingtalk_markdown_signed_in_the_url_as_documented() {
    let stub = Stub::start(vec![reply(200, r#"{"errcode":0,"errmsg":"ok"}"#)]);
    let c = config(format!(
        r#"{{"kind":"dingtalk","url":"{}","secret":"{SECRET}"}}"#,
        stub.url("/robot/send?access_token=TOKEN-abc123")
    ));
    let before = now_ms();
    send(&c, &sample_message()).unwrap();
    let after = now_ms();
    let r = stub.next();
    assert!(r
        .target
        .starts_with("/robot/send?access_token=TOKEN-abc123&timestamp="));
    assert_eq!(
        r.query_value("access_token").as_deref(),
        Some("TOKEN-abc123")
    );
    let ts_text = r.query_value("timestamp").unwrap();
    let ts: i64 = ts_text.parse().unwrap();
    assert!((before..=after).contains(&ts), "milliseconds: {ts}");
    // sign = urlencode(base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret))).
    let expected = b64(&hmac_sha256(
        SECRET.as_bytes(),
        format!("{ts_text}\n{SECRET}").as_bytes(),
    ));
    assert_eq!(r.query_value("sign").unwrap(), expected);
    let raw_sign = r.target.split("&sign=").nth(1).unwrap();
    let encoded: String =
        percent_encoding::utf8_percent_encode(&expected, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    assert_eq!(
        raw_sign, encoded,
        "the base64 is percent-encoded in the URL"
    );
    let body = r.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"]["title"], "预算提醒：主播日预算 已达 80%");
    let text = body["markdown"]["text"].as_str().unwrap();
    assert_mentions_alert(text);
    assert!(text.contains("**范围**：主播 anchor_001"));
}

#[test]
fn wecom_markdown_with_the_key_in_the_url() {
    let stub = Stub::start(vec![reply(200, r#"{"errcode":0,"errmsg":"ok"}"#)]);
    let c = config(format!(
        r#"{{"kind":"wecom","url":"{}"}}"#,
        stub.url("/cgi-bin/webhook/send?key=693axxx6-7aoc-4bc4-97a0-0ec2sifa5aaa")
    ));
    send(&c, &sample_message()).unwrap();
    let r = stub.next();
    assert_eq!(
        r.target,
        "/cgi-bin/webhook/send?key=693axxx6-7aoc-4bc4-97a0-0ec2sifa5aaa"
    );
    let body = r.json();
    assert_eq!(body["msgtype"], "markdown");
    let content = body["markdown"]["content"].as_str().unwrap();
    assert_mentions_alert(content);
    assert!(content.contains("[打开看板](https://ai-usage.example.com)"));
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "nothing else in the body"
    );
}

#[test]
fn slack_incoming_webhook_text() {
    let stub = Stub::start(vec![reply(200, "ok")]);
    let c = config(format!(
        r#"{{"kind":"slack","url":"{}","language":"en"}}"#,
        stub.url("/services/T000/B000/XXXXXXXXXXXX")
    ));
    send(&c, &sample_message()).unwrap();
    let body = stub.next().json();
    assert_eq!(body.as_object().unwrap().len(), 1);
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("Budget warning: 主播日预算 reached 80%\n"));
    assert!(
        text.contains("\nSpent: ¥40.50 of ¥50.00 (81.00%)\n"),
        "{text}"
    );
    assert!(text.contains("\nMonth projection: ¥1203.25\n"), "{text}");
    assert!(
        text.ends_with("\nDashboard: https://ai-usage.example.com"),
        "{text}"
    );
}

#[test]
fn webhook_event_signed_in_the_header() {
    let stub = Stub::start(vec![reply(204, "")]);
    let c = config(format!(
        r#"{{"kind":"webhook","url":"{}","secret":"{SECRET}"}}"#,
        stub.url("/hooks/ai-usage")
    ));
    let message = sample_message();
    send(&c, &message).unwrap();
    let r = stub.next();
    // sha256=<hex HMAC-SHA256(key = secret, message = the raw body)>.
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(SECRET.as_bytes(), &r.body))
    );
    assert_eq!(r.header(SIGNATURE_HEADER), Some(expected.as_str()));
    assert_eq!(r.header(EVENT_ID_HEADER), Some(message.id.as_str()));
    let e = r.json();
    assert_eq!(e["id"], message.id.as_str());
    assert_eq!(e["type"], "budget.threshold");
    assert_eq!(e["budget"], "主播日预算");
    assert_eq!(
        e["scope"],
        serde_json::json!({"kind": "anchor", "id": "anchor_001"})
    );
    assert_eq!(e["period"], "2026-12-07");
    assert_eq!(e["period_kind"], "daily");
    assert_eq!(e["threshold"], 80);
    assert_eq!(e["spent"], "40.500000");
    assert_eq!(e["limit"], "50.000000");
    assert_eq!(e["currency"], "CNY");
    assert_eq!(e["projected"], "1203.250000");
    assert_eq!(e["time"], "2026-12-07T14:03:05+08:00");
    assert_eq!(e["dashboard_url"], "https://ai-usage.example.com");
    // Amounts read back exactly.
    assert_eq!(money(e["spent"].as_str().unwrap()), message.spent);
}

#[test]
fn unsigned_webhook_has_no_signature_header() {
    let stub = Stub::start(vec![reply(200, "{}")]);
    let c = config(format!(
        r#"{{"kind":"webhook","url":"{}"}}"#,
        stub.url("/h")
    ));
    send(&c, &sample_message()).unwrap();
    assert_eq!(stub.next().header(SIGNATURE_HEADER), None);
}

#[test]
fn a_500_is_retried_then_delivered() {
    let stub = Stub::start(vec![reply(500, "busy"), reply(200, "{}")]);
    let c = config(format!(
        r#"{{"kind":"webhook","url":"{}"}}"#,
        stub.url("/h")
    ));
    let message = sample_message();
    let first = send(&c, &message).unwrap_err();
    assert!(first.is_retryable(), "{first}");
    assert!(
        matches!(first, SendError::Status { status: 500, .. }),
        "{first:?}"
    );
    send(&c, &message).unwrap();
    let (a, b) = (stub.next(), stub.next());
    assert_eq!(a.body, b.body, "the retry sends the same event");
    assert!(stub.idle());
}

#[test]
fn a_400_is_a_configuration_error() {
    let stub = Stub::start(vec![reply(400, "invalid_payload")]);
    let c = config(format!(
        r#"{{"kind":"slack","url":"{}"}}"#,
        stub.url("/services/T/B/C")
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("HTTP 400: invalid_payload"), "{e}");
}

#[test]
fn a_429_is_retryable_with_its_delay() {
    let stub = Stub::start(vec![Reply::Http(
        429,
        vec![("Retry-After", "7")],
        "slow down".into(),
    )]);
    let c = config(format!(
        r#"{{"kind":"webhook","url":"{}"}}"#,
        stub.url("/h")
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
}

#[test]
fn provider_codes_decide_on_http_200() {
    let cases = [
        // Feishu: signature check failed.
        (
            "feishu",
            "/open-apis/bot/v2/hook/x",
            r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
            false,
        ),
        // Feishu: keyword check failed.
        (
            "feishu",
            "/open-apis/bot/v2/hook/x",
            r#"{"code":19024,"msg":"Key Words Not Found"}"#,
            false,
        ),
        // DingTalk: keyword / signature / IP check failed.
        (
            "dingtalk",
            "/robot/send?access_token=t",
            r#"{"errcode":310000,"errmsg":"sign not match"}"#,
            false,
        ),
        // DingTalk: sending too fast.
        (
            "dingtalk",
            "/robot/send?access_token=t",
            r#"{"errcode":130101,"errmsg":"send too fast"}"#,
            true,
        ),
        // Feishu: rate limited (answered with HTTP 400 too, see below).
        (
            "feishu",
            "/open-apis/bot/v2/hook/x",
            r#"{"code":11232,"msg":"frequency limited"}"#,
            true,
        ),
        // WeCom: invalid webhook URL.
        (
            "wecom",
            "/cgi-bin/webhook/send?key=k",
            r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
            false,
        ),
        // WeCom: frequency limit.
        (
            "wecom",
            "/cgi-bin/webhook/send?key=k",
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
            true,
        ),
    ];
    for (kind, path, answer, retryable) in cases {
        let stub = Stub::start(vec![reply(200, answer)]);
        let c = config(format!(r#"{{"kind":"{kind}","url":"{}"}}"#, stub.url(path)));
        let e = send(&c, &sample_message()).unwrap_err();
        assert!(
            matches!(e, SendError::Provider { .. }),
            "{kind} {answer}: {e:?}"
        );
        assert_eq!(e.is_retryable(), retryable, "{kind} {answer}: {e}");
    }
}

#[test]
fn a_200_that_is_not_the_providers_answer_is_an_error() {
    let stub = Stub::start(vec![reply(200, "<html>login</html>")]);
    let c = config(format!(
        r#"{{"kind":"feishu","url":"{}"}}"#,
        stub.url("/hook/x")
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(matches!(e, SendError::UnexpectedAnswer { .. }), "{e:?}");
    assert!(!e.is_retryable());
}

#[test]
fn refused_connections_and_timeouts_are_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = config(format!(
        r#"{{"kind":"webhook","url":"http://127.0.0.1:{port}/h"}}"#
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(matches!(e, SendError::Network { .. }), "{e:?}");
    assert!(e.is_retryable());

    let stub = Stub::start(vec![Reply::Silence]);
    let c = config(format!(
        r#"{{"kind":"webhook","url":"{}"}}"#,
        stub.url("/h")
    ));
    let started = std::time::Instant::now();
    let e = send_with_timeout(&c, &sample_message(), Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e, SendError::Timeout { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn secrets_never_show_in_errors() {
    // A receiver that echoes the credentials back in its answer.
    let token = "TOKEN-0123456789abcdef";
    let echo = format!("bad access_token {token}, secret {SECRET}");
    let stub = Stub::start(vec![Reply::Http(403, Vec::new(), echo)]);
    let c = config(format!(
        r#"{{"kind":"dingtalk","url":"{}","secret":"{SECRET}"}}"#,
        stub.url(&format!("/robot/send?access_token={token}"))
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(!e.is_retryable());
    for shown in [
        e.to_string(),
        format!("{e:?}"),
        format!("{c:?}"),
        c.to_string(),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(token), "{shown}");
    }
    assert!(e.to_string().contains("access_token=***"), "{e}");

    // Nothing listening: the transport error does not quote the URL either.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = config(format!(
        r#"{{"kind":"wecom","url":"http://127.0.0.1:{port}/cgi-bin/webhook/send?key={token}"}}"#
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(token), "{shown}");
    }
}

#[test]
fn feishu_rate_limit_on_http_400_is_retryable() {
    let stub = Stub::start(vec![
        reply(400, r#"{"code":11232,"msg":"frequency limited"}"#),
        reply(400, r#"{"code":9499,"msg":"Bad Request"}"#),
    ]);
    let c = config(format!(
        r#"{{"kind":"feishu","url":"{}"}}"#,
        stub.url("/hook/x")
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(
        matches!(e, SendError::Provider { code: 11232, .. }),
        "{e:?}"
    );
    assert!(e.is_retryable());
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(matches!(e, SendError::Status { status: 400, .. }), "{e:?}");
    assert!(!e.is_retryable());
}

#[test]
fn a_slack_hook_token_echoed_back_is_redacted() {
    let token = "XXXXsecretTOKENxxxx";
    let stub = Stub::start(vec![reply(404, &format!("no_service for {token}"))]);
    let c = config(format!(
        r#"{{"kind":"slack","url":"{}"}}"#,
        stub.url(&format!("/services/T0001/B0001/{token}"))
    ));
    let e = send(&c, &sample_message()).unwrap_err();
    assert!(!e.is_retryable());
    let shown = e.to_string();
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.contains("/services/***/***/***"), "{shown}");
    assert!(shown.contains("HTTP 404: no_service for ***"), "{shown}");
}
