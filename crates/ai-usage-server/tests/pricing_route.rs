//! `/api/ai_usage/models/pricing`: the original's keys and JSON
//! types, with ours beside them.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use ai_usage_core::UsageMonitor;
use serde_json::Value;

use common::{fixture, get};

const ROUTE: &str = "/api/ai_usage/models/pricing";

const ORIGINAL_SERIES: [&str; 6] = [
    "qwen_series",
    "openai_series",
    "deepseek_series",
    "doubao_series",
    "glm_series",
    "xunfei_series",
];

/// The fields a client of the original reads from one model entry.
fn assert_entry(path: &str, e: &Value) {
    assert!(e["input"].is_number(), "{path}.input: {e}");
    assert!(e["output"].is_number(), "{path}.output: {e}");
    assert!(e["display_name"].is_string(), "{path}.display_name: {e}");
}

fn assert_original_shape(v: &Value) {
    for s in ORIGINAL_SERIES {
        let series = v[s].as_object().unwrap_or_else(|| panic!("{s}: {v}"));
        assert!(!series.is_empty(), "{s} is empty");
        for (model, e) in series {
            assert_entry(&format!("{s}.{model}"), e);
        }
    }
    let all = v["all_models"].as_object().expect("all_models");
    for (model, e) in all {
        assert_entry(&format!("all_models.{model}"), e);
    }
    assert!(v["note"].is_string(), "note");
    let ex = &v["calculation_example"];
    assert!(ex["model"].is_string(), "{ex}");
    assert!(ex["input_tokens"].is_u64(), "{ex}");
    assert!(ex["output_tokens"].is_u64(), "{ex}");
    assert!(ex["cost"].is_number(), "{ex}");
}

#[tokio::test]
async fn original_keys_and_types_beside_ours() {
    let f = fixture();
    let (s, v) = get(&f.app, ROUTE).await;
    assert_eq!(s, axum::http::StatusCode::OK);
    assert_original_shape(&v);
    // Every model the original priced is in `all_models`, in its spelling.
    for m in [
        "qwen-plus",
        "qwen-max-longcontext",
        "gpt-4",
        "deepseek-coder",
        "glm-3-turbo",
        "lite",
        "generalv3",
        "generalv3.5",
        "4.0Ultra",
        "gpt-4-1106-preview",
        "gpt-4-turbo-preview",
        "gpt-4.1-mini",
        "gemini-2.5-flash-preview-09-2025",
    ] {
        assert!(v["all_models"][m].is_object(), "all_models.{m} missing");
    }
    assert_eq!(
        v["qwen_series"]["qwen-plus"]["display_name"],
        "通义千问-Plus"
    );
    // Alibaba Cloud's list price (the original had ¥0.004).
    assert_eq!(v["qwen_series"]["qwen-plus"]["input"], 0.0008);
    assert_eq!(v["openai_series"]["gpt-4"]["currency"], "USD");
    assert_eq!(v["openai_series"]["gpt-4"]["input"], 0.03);
    assert_eq!(v["xunfei_series"]["generalv3"]["alias_of"], "spark-pro");
    assert!(
        v["xunfei_series"]["4.0Ultra"].is_object(),
        "{}",
        v["xunfei_series"]
    );
    assert!(v["deepseek_series"]["deepseek-coder"].is_object());
    assert!(v["doubao_series"]["doubao-lite-32k"].is_object());
    assert!(v["glm_series"]["glm-3-turbo"].is_object());
    // The original's example: qwen-plus, 1000 in + 500 out (¥0.01 at the
    // original's price, ¥0.0018 at Alibaba Cloud's).
    let ex = &v["calculation_example"];
    assert_eq!(
        (&ex["model"], &ex["input_tokens"], &ex["output_tokens"]),
        (
            &Value::from("qwen-plus"),
            &Value::from(1000),
            &Value::from(500)
        )
    );
    assert_eq!(ex["cost"], 0.0018);
    assert_eq!(ex["currency"], "CNY");
    // The original's per-model keys where they apply: qwen3-max is priced
    // by the call's size (ours: by request size, no free tokens).
    let q3 = &v["all_models"]["qwen3-max"];
    assert_eq!(q3["input_free_tokens"], 0, "{q3}");
    let tiers = q3["input_tiers"].as_array().expect("input_tiers");
    assert!(tiers.len() >= 2, "{q3}");
    assert_eq!(tiers[0]["up_to"], 32768, "{q3}");
    assert_eq!(tiers[0]["input"], q3["input"], "{q3}");
    for t in tiers {
        assert!(t["input"].is_number() && t["output"].is_number(), "{t}");
    }
    assert!(v["qwen_series"]["qwen3-max"]["input_tiers"].is_array());
    assert!(v["all_models"]["qwen-plus"].get("input_tiers").is_none());
    // The Gemini preview: cache read, and Google's prices for the parts we
    // do not record.
    let gemini = &v["all_models"]["gemini-2.5-flash-preview-09-2025"];
    assert_eq!(gemini["currency"], "USD", "{gemini}");
    assert_eq!(gemini["cache_read"], 0.00003, "{gemini}");
    assert_eq!(gemini["web_search"], 35.0, "{gemini}");
    assert_eq!(gemini["cache_storage"], 0.001, "{gemini}");
    assert!(v["all_models"]["gpt-4"].get("web_search").is_none());
    // Ours, unchanged.
    assert!(v["models"]["qwen-plus"]["display_name"].is_string(), "{v}");
    assert_eq!(v["aliases"]["generalv3.5"], "spark-max");
    assert_eq!(v["unit"], "per 1K tokens");
}

#[tokio::test]
async fn with_the_original_service_file_the_prices_are_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pricing/original-service.toml");
    let monitor = Arc::new(
        UsageMonitor::builder()
            .dir(dir.path())
            .pricing_file(file)
            .build()
            .unwrap(),
    );
    let app = ai_usage_server::ServerBuilder::new(monitor).router();
    let (_, v) = get(&app, ROUTE).await;
    assert_original_shape(&v);
    let gpt4 = &v["openai_series"]["gpt-4"];
    assert_eq!(
        (&gpt4["input"], &gpt4["output"]),
        (&Value::from(0.21), &Value::from(0.42))
    );
    assert_eq!(gpt4["currency"], "CNY");
    // The original's example gives its own figure again: ¥0.01.
    assert_eq!(v["calculation_example"]["cost"], 0.01);
    assert_eq!(v["qwen_series"]["qwen-plus"]["input"], 0.004);
    assert_eq!(
        v["all_models"]["gpt-4-turbo-preview"]["alias_of"],
        "gpt-4-turbo"
    );
    assert_eq!(v["all_models"]["gpt-4-turbo-preview"]["input"], 0.07);
    assert_eq!(
        v["xunfei_series"]["4.0Ultra"]["display_name"],
        "讯飞星火-4.0 Ultra"
    );
    // The original's own (wrong) qwen3-max rule: 32,000 free input tokens,
    // then one rate, shown as two bands.
    let q3 = &v["all_models"]["qwen3-max"];
    assert_eq!(q3["input_free_tokens"], 32000, "{q3}");
    assert_eq!(q3["input_tiers"][0]["up_to"], 32000, "{q3}");
    assert_eq!(q3["input_tiers"][0]["input"], 0.0, "{q3}");
    assert_eq!(q3["input_tiers"][1]["input"], 0.006, "{q3}");
    assert!(q3["input_tiers"][1].get("up_to").is_none(), "{q3}");
}
