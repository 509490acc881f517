//! The pure request builder with an injected clock: exact bytes and
//! signatures, and the samples shown in docs/budgets.md.

mod common;

use ai_usage_notify::{
    build_digest_request, build_request, ChannelConfig, DigestEvent, Language, WebhookEvent,
    SIGNATURE_HEADER,
};
use common::*;

/// 2026-12-07T06:03:05.123Z.
const NOW_MS: i64 = 1_796_623_385_123;

#[test]
fn feishu_signature_uses_the_injected_seconds() {
    let c = ChannelConfig::from_json(
        r#"{"kind":"feishu","url":"https://open.feishu.cn/open-apis/bot/v2/hook/h","secret":"s"}"#,
    )
    .unwrap();
    let r = build_request(&c, &sample_message(), NOW_MS);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["timestamp"], "1796623385");
    assert_eq!(
        body["sign"],
        b64(&hmac_sha256(b"1796623385\ns", b"")).as_str()
    );
    assert_eq!(
        r.url.as_str(),
        "https://open.feishu.cn/open-apis/bot/v2/hook/h"
    );
}

#[test]
fn dingtalk_signature_uses_the_injected_milliseconds() {
    let c = ChannelConfig::from_json(
        r#"{"kind":"dingtalk","url":"https://oapi.dingtalk.com/robot/send?access_token=t","secret":"s"}"#,
    )
    .unwrap();
    let r = build_request(&c, &sample_message(), NOW_MS);
    let sign = b64(&hmac_sha256(b"s", b"1796623385123\ns"));
    let encoded = percent_encoding::utf8_percent_encode(&sign, percent_encoding::NON_ALPHANUMERIC);
    assert_eq!(
        r.url.as_str(),
        format!("https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1796623385123&sign={encoded}")
    );
    // Debug shows neither the token nor the signature.
    let shown = format!("{r:?}");
    assert!(
        shown.contains("access_token=***&timestamp=***&sign=***"),
        "{shown}"
    );
}

#[test]
fn webhook_signature_covers_the_exact_body() {
    let c = ChannelConfig::from_json(
        r#"{"kind":"webhook","url":"https://example.com/h","secret":"s"}"#,
    )
    .unwrap();
    let r = build_request(&c, &sample_message(), NOW_MS);
    let signature = r
        .headers
        .iter()
        .find(|(n, _)| *n == SIGNATURE_HEADER)
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(
        signature,
        format!("sha256={}", hex::encode(hmac_sha256(b"s", &r.body)))
    );
    assert!(!format!("{r:?}").contains(&signature[7..]));
    // The same message at another time is the same event (idempotent).
    assert_eq!(
        r.body,
        build_request(&c, &sample_message(), NOW_MS + 60_000).body
    );
}

/// The rendered samples in docs/budgets.md are what the code renders.
#[test]
fn docs_show_the_rendered_messages() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/budgets.md"
    ))
    .unwrap();
    let message = sample_message();
    for rendered in [
        message.text(Language::Zh),
        message.text(Language::En),
        message.markdown(Language::Zh),
        message.markdown(Language::En),
    ] {
        assert!(
            docs.contains(&rendered),
            "docs/budgets.md lacks:\n{rendered}"
        );
    }
    let pretty = serde_json::to_string_pretty(&WebhookEvent::of(&message)).unwrap();
    assert!(
        docs.contains(&pretty),
        "docs/budgets.md lacks the event:\n{pretty}"
    );
}

#[test]
fn webhook_fields_keep_their_documented_order() {
    let c =
        ChannelConfig::from_json(r#"{"kind":"webhook","url":"https://example.com/h"}"#).unwrap();
    let body = String::from_utf8(build_request(&c, &sample_message(), NOW_MS).body).unwrap();
    let order = [
        "\"id\"",
        "\"type\"",
        "\"budget\"",
        "\"scope\"",
        "\"period\"",
        "\"period_kind\"",
        "\"threshold\"",
        "\"spent\"",
        "\"limit\"",
        "\"currency\"",
        "\"projected\"",
        "\"time\"",
        "\"dashboard_url\"",
    ];
    let positions: Vec<usize> = order.iter().map(|k| body.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{body}");
}

#[test]
fn a_signed_feishu_card_carries_the_signature_beside_the_card() {
    let c = ChannelConfig::from_json(
        r#"{"kind":"feishu","url":"https://open.feishu.cn/open-apis/bot/v2/hook/h","secret":"s","msg_type":"interactive"}"#,
    )
    .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&build_request(&c, &sample_message(), NOW_MS).body).unwrap();
    assert_eq!(body["msg_type"], "interactive");
    assert_eq!(body["timestamp"], "1796623385");
    assert_eq!(
        body["sign"],
        b64(&hmac_sha256(b"1796623385\ns", b"")).as_str()
    );
    assert_eq!(
        body["card"]["header"]["title"]["content"],
        "预算提醒：主播日预算 已达 80%"
    );
    let md = body["card"]["elements"][0]["text"]["content"]
        .as_str()
        .unwrap();
    assert!(
        md.starts_with("**范围**：主播 anchor_001"),
        "the title is not repeated: {md}"
    );
}

/// Each kind renders the digest in its own format, signed like an alert.
#[test]
fn digest_requests_follow_each_kinds_format() {
    let digest = sample_digest();
    let json = |kind: &str| {
        let c = ChannelConfig::from_json(kind).unwrap();
        let r = build_digest_request(&c, &digest, NOW_MS);
        (
            r.clone(),
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(),
        )
    };
    let (_, feishu) = json(
        r#"{"kind":"feishu","url":"https://open.feishu.cn/open-apis/bot/v2/hook/h","secret":"s"}"#,
    );
    assert_eq!(feishu["msg_type"], "text");
    assert_eq!(
        feishu["content"]["text"],
        digest.text(Language::Zh).as_str()
    );
    assert_eq!(
        feishu["sign"],
        b64(&hmac_sha256(b"1796623385\ns", b"")).as_str()
    );
    let (_, card) = json(
        r#"{"kind":"feishu","url":"https://open.feishu.cn/open-apis/bot/v2/hook/h","msg_type":"interactive","language":"en"}"#,
    );
    assert_eq!(
        card["card"]["header"]["title"]["content"],
        "AI usage weekly digest 2026-11-30 ~ 2026-12-06"
    );
    assert_eq!(
        card["card"]["elements"][1]["actions"][0]["url"],
        "https://ai-usage.example.com"
    );
    let (r, ding) = json(
        r#"{"kind":"dingtalk","url":"https://oapi.dingtalk.com/robot/send?access_token=t","secret":"s"}"#,
    );
    assert!(r.url.as_str().contains("&timestamp=1796623385123&sign="));
    assert_eq!(ding["msgtype"], "markdown");
    assert_eq!(
        ding["markdown"]["title"],
        "AI 用量周报 2026-11-30 ~ 2026-12-06"
    );
    assert_eq!(
        ding["markdown"]["text"],
        digest.markdown(Language::Zh, true).as_str()
    );
    let (_, wecom) =
        json(r#"{"kind":"wecom","url":"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}"#);
    assert_eq!(
        wecom["markdown"]["content"],
        digest.markdown(Language::Zh, true).as_str()
    );
    let (_, slack) =
        json(r#"{"kind":"slack","url":"https://hooks.slack.com/services/T/B/X","language":"en"}"#);
    assert_eq!(slack["text"], digest.slack(Language::En).as_str());
    let (r, event) = json(r#"{"kind":"webhook","url":"https://example.com/h","secret":"s"}"#);
    assert_eq!(event["type"], "usage.digest");
    assert_eq!(event["costs"][0]["cost"], "1286.400000");
    assert_eq!(event["savings"][0]["saving"], "840.700000");
    let signature = r
        .headers
        .iter()
        .find(|(n, _)| *n == SIGNATURE_HEADER)
        .unwrap();
    assert_eq!(
        signature.1,
        format!("sha256={}", hex::encode(hmac_sha256(b"s", &r.body)))
    );
    // A forced language wins over the channel's.
    let en = digest.clone().with_language(Some(Language::En));
    let c = ChannelConfig::from_json(
        r#"{"kind":"slack","url":"https://hooks.slack.com/services/T/B/X"}"#,
    )
    .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&build_digest_request(&c, &en, NOW_MS).body).unwrap();
    assert!(body["text"]
        .as_str()
        .unwrap()
        .starts_with("*AI usage weekly digest"));
}

/// The digest samples in docs/budgets.md are what the code renders.
#[test]
fn docs_show_the_rendered_digest() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/budgets.md"
    ))
    .unwrap();
    let digest = sample_digest();
    for rendered in [
        digest.text(Language::Zh),
        digest.markdown(Language::Zh, true),
        digest.slack(Language::En),
    ] {
        assert!(
            docs.contains(&rendered),
            "docs/budgets.md lacks:\n{rendered}\n---"
        );
    }
    let pretty = serde_json::to_string_pretty(&DigestEvent::of(&digest)).unwrap();
    assert!(
        docs.contains(&pretty),
        "docs/budgets.md lacks the event:\n{pretty}\n---"
    );
}

/// WeCom refuses markdown over 4096 bytes: a long digest is cut at a line.
#[test]
fn a_long_digest_fits_wecoms_limit() {
    let mut digest = sample_digest();
    let entry = digest.top_functions[0].clone();
    for list in [
        &mut digest.top_functions,
        &mut digest.top_models,
        &mut digest.top_anchors,
    ] {
        *list = (0..20)
            .map(|i| ai_usage_notify::digest::TopEntry {
                id: format!("一个很长很长的功能名称用来测试企业微信的长度限制-{i}"),
                ..entry.clone()
            })
            .collect();
    }
    let full = digest.markdown(Language::Zh, true);
    assert!(full.len() > 4096, "{}", full.len());
    let c = ChannelConfig::from_json(
        r#"{"kind":"wecom","url":"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}"#,
    )
    .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&build_digest_request(&c, &digest, NOW_MS).body).unwrap();
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= 4096, "{}", content.len());
    assert!(content.ends_with("\n…"), "{content}");
    let kept = content.strip_suffix("\n…").unwrap();
    assert!(full.starts_with(kept.trim_end_matches('\n')));
}
