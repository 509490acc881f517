use serde_json::json;

use super::*;

fn event(v: Value) -> Result<OwnedEvent, IntakeError> {
    let e = UsageInput::from_json(&v)?.into_event()?;
    e.validate(TimeWindow::now())?;
    Ok(e)
}

fn field_of(v: Value) -> String {
    event(v.clone())
        .map(|_| panic!("accepted: {v}"))
        .unwrap_err()
        .field
}

#[test]
fn reads_every_field_and_names_wrong_types() {
    let e = event(
        json!({"model": "qwen-plus", "function": "f", "input_tokens": 12.0,
        "output_tokens": 3, "cost": 0.5, "currency": "USD", "tags": ["a"], "user_id": "u"}),
    )
    .unwrap();
    assert_eq!((e.usage.input_tokens, e.usage.output_tokens), (12, 3));
    assert_eq!(e.cost, Money::from_f64(0.5));
    assert_eq!(e.currency, Currency::new("USD"));
    // Every accepted key is read: a wrong type is refused naming it.
    for key in input_fields() {
        let mut body = json!({"model": "m", "function": "f"});
        body[*key] = json!({"not": "valid"});
        let err = event(body).unwrap_err();
        assert_eq!(err.field, *key, "{err}");
    }
    let err = event(json!({"model": "m", "function": "f", "input_token": 3})).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("input_token", "unknown field")
    );
    assert_eq!(field_of(json!({"function": "f"})), "model");
    assert_eq!(field_of(json!({"model": "m"})), "function");
}

#[test]
fn token_counts_are_whole_non_negative_and_bounded() {
    for (v, words) in [
        (json!(12.5), "whole"),
        (json!(-1), "negative"),
        (json!(-1.0), "negative"),
        (json!(1e13), "10^12"),
        (json!(1_000_000_000_001u64), "10^12"),
        (json!("7"), "integer"),
    ] {
        let err = event(json!({"model": "m", "function": "f", "input_tokens": v})).unwrap_err();
        assert_eq!(err.field, "input_tokens");
        assert!(err.message.contains(words), "{v}: {err}");
    }
    assert_eq!(TokenCount::from_i64("output_tokens", 5), Ok(TokenCount(5)));
    let err = TokenCount::from_i64("output_tokens", -5).unwrap_err();
    assert_eq!(err.field(), "output_tokens");
}

/// A raw response body's counts follow the token fields' rule.
#[test]
fn response_counts_follow_the_same_rule() {
    let body = |prompt: Value| {
        json!({"model": "gpt-4o", "function": "f", "response": {"object": "chat.completion",
            "model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": prompt,
            "completion_tokens": 2, "total_tokens": 12}}})
    };
    let err = event(body(json!(10.5))).unwrap_err();
    assert_eq!(err.field, "response");
    assert!(
        err.message.contains("response.usage.prompt_tokens") && err.message.contains("whole"),
        "{err}"
    );
    let err = event(body(json!(-3))).unwrap_err();
    assert!(err.message.contains("negative"), "{err}");
    let ok = event(body(json!(10.0))).unwrap();
    assert_eq!(ok.usage.input_tokens, 10);
}

#[test]
fn timestamps_must_lie_in_the_window_around_the_clock() {
    let now = crate::zone::now_timestamp();
    let at = |t: f64| json!({"model": "m", "function": "f", "timestamp": t});
    assert!(event(at(now - 3600.0)).is_ok());
    assert!(event(at(now + 1800.0)).is_ok());
    // Milliseconds, a far future, the epoch's first second, a far past.
    for t in [now * 1000.0, now + 7200.0, 1.0, now - 200.0 * 86_400.0] {
        let err = event(at(t)).unwrap_err();
        assert_eq!(err.field, "timestamp", "{t}: {err}");
    }
    let w = TimeWindow::around(now, 93);
    assert_eq!(w.latest, now + MAX_FUTURE_SECS);
    assert!(w.contains(now - 92.0 * 86_400.0) && !w.contains(now - 93.0 * 86_400.0));
}

#[test]
fn costs_ids_and_tags_follow_one_rule() {
    let base = || json!({"model": "m", "function": "f"});
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    assert_eq!(field_of(with("cost", json!(-1.0))), "cost");
    assert_eq!(field_of(with("currency", json!("USD"))), "currency");
    for key in [
        "user_id",
        "anchor_id",
        "session_id",
        "request_id",
        "function",
        "model",
        "provider",
    ] {
        for bad in [
            "a\u{1b}[31mred",
            "line\r",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert_eq!(field_of(with(key, json!(bad))), key, "{key} = {bad:?}");
        }
        assert!(event(with(key, json!("x".repeat(MAX_ID_LEN)))).is_ok());
        // Other non-ASCII text (0xC2 lead bytes outside the C1 range too) is fine.
        assert!(event(with(key, json!("主播·ü©"))).is_ok());
    }
    assert_eq!(field_of(with("tags", json!(["ok", "bad\n"]))), "tags");
    let many: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
    assert_eq!(field_of(with("tags", json!(many))), "tags");
    assert_eq!(
        field_of(with("error_msg", json!("e".repeat(MAX_ERROR_LEN + 1)))),
        "error_msg"
    );
    // Error messages may span lines.
    assert!(event(with("error_msg", json!("line 1\nline 2"))).is_ok());
    assert_eq!(
        check_id_text("session_id", "").unwrap_err().field(),
        "session_id"
    );
}
