//! The built-in price table.
//!
//! Rates are written as integer nano-units per 1K tokens, which is the same
//! number as micro-units per 1M tokens: ¥4 per million tokens = `4_000_000`.
//! Keeping them as integers keeps the table exact and free of fallible parsing.
//!
//! Currency policy: Chinese-market models (Qwen, DeepSeek, Doubao, GLM,
//! Xunfei Spark) are priced in CNY, OpenAI and Gemini models in USD, the
//! currency each provider bills in. The original service's CNY figures for
//! OpenAI models (USD list × ¥7) are in `pricing/original-service.toml` at the
//! repository root; `docs/pricing.md` lists every deliberate difference.
//!
//! Sources:
//! - "seed": the Python implementation this crate replaces; its prices were
//!   verified against the records it wrote. It kept no date, so `price_date`
//!   is `None`.
//! - "provider list price, 2025": public list prices at `price_date`; check
//!   them against your contract or override them with a pricing file.
//! - USD prices of OpenAI and Gemini models: the providers' list prices as
//!   recorded in the genai-prices snapshot of 2026-08-21
//!   (`data/genai-prices/data_slim.json`).

use super::{Band, ModelPrice, Rate, Tiers};
use crate::money::Currency;

const SEED: &str = "the original service (verified against its records)";
const LIST: &str = "provider list price, 2025";
const GENAI: &str = "provider list price (USD), genai-prices snapshot 2026-08-21";
const GENAI_DATE: &str = "2026-08-21";

/// Aliases: alias → canonical id (both already normalised).
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("qwen-max-longcontext", "qwen-max"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4-1106-preview", "gpt-4-turbo"),
    ("gpt-4-turbo-preview", "gpt-4-turbo"),
    ("deepseek-v3", "deepseek-chat"),
    ("deepseek-r1", "deepseek-reasoner"),
    // Xunfei Spark API `domain` names, as the original service used them.
    ("lite", "spark-lite"),
    ("generalv3", "spark-pro"),
    ("generalv3.5", "spark-max"),
    ("4.0ultra", "spark-4.0-ultra"),
    // Google lists the September 2025 preview under Gemini 2.5 Flash.
    ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
];

const fn r(nanos_per_1k: u64) -> Rate {
    Rate::from_nanos_per_1k(nanos_per_1k)
}

fn seed(name: &str, input: u64, output: u64) -> ModelPrice {
    let mut p = ModelPrice::with_rates(name, Currency::CNY, r(input), r(output));
    p.source = Some(SEED.to_string());
    p
}

fn list(name: &str, currency: Currency, input: u64, output: u64, date: &str) -> ModelPrice {
    ModelPrice::with_rates(name, currency, r(input), r(output)).sourced(LIST, date)
}

/// A USD list price taken from the genai-prices snapshot.
fn usd_list(name: &str, input: u64, output: u64) -> ModelPrice {
    ModelPrice::with_rates(name, Currency::USD, r(input), r(output)).sourced(GENAI, GENAI_DATE)
}

/// A band with a cache price; `up_to` in input tokens.
fn band(up_to: Option<u64>, input: u64, output: u64, cached: Option<u64>) -> Band {
    Band {
        up_to,
        input: r(input),
        output: r(output),
        cached_input: cached.map(r),
        cache_write: None,
    }
}

/// Every built-in model with its canonical (lower-case) id.
pub(super) fn models() -> Vec<(String, ModelPrice)> {
    let cny = Currency::CNY;
    let usd = Currency::USD;
    let v: Vec<(&str, ModelPrice)> = vec![
        // --- seed prices (CNY per 1K: qwen-plus 0.004 / 0.012 …) ---
        ("qwen-plus", seed("通义千问-Plus", 4_000_000, 12_000_000)),
        ("qwen-max", seed("通义千问-Max", 20_000_000, 60_000_000)),
        ("qwen-turbo", seed("通义千问-Turbo", 2_000_000, 6_000_000)),
        (
            "deepseek-chat",
            // Cache-hit price from DeepSeek's list of the same period (¥0.1/M).
            seed("DeepSeek-Chat", 1_000_000, 2_000_000).cached(r(100_000)),
        ),
        ("doubao-pro-32k", seed("豆包-Pro-32K", 8_000_000, 8_000_000)),
        ("glm-4-flash", seed("ChatGLM-4-Flash (免费)", 0, 0)),
        // --- Qwen3-Max: whole request priced by its input size (K = 1024),
        // Alibaba Cloud Model Studio mainland list, 2025-09. Replaces the
        // seed's incorrect "first 32K free". ---
        (
            "qwen3-max",
            ModelPrice::with_rates("通义千问3-Max", cny, Rate::ZERO, Rate::ZERO)
                .tiered(Tiers::ByRequestSize(vec![
                    band(Some(32_768), 6_000_000, 24_000_000, None),
                    band(Some(131_072), 10_000_000, 40_000_000, None),
                    band(Some(258_048), 15_000_000, 60_000_000, None),
                ]))
                .sourced(
                    "Alibaba Cloud Model Studio price list (mainland)",
                    "2025-09",
                ),
        ),
        // --- other Chinese models, CNY ---
        (
            "qwen-long",
            list("通义千问-Long", cny, 500_000, 2_000_000, "2025-01"),
        ),
        (
            "qwen-vl-plus",
            list("通义千问-VL-Plus", cny, 1_500_000, 4_500_000, "2025-01"),
        ),
        (
            // Merged into DeepSeek-Chat (V2.5) and billed at its price.
            "deepseek-coder",
            seed("DeepSeek-Coder", 1_000_000, 2_000_000).cached(r(100_000)),
        ),
        (
            "deepseek-reasoner",
            // Reasoning tokens are billed as output.
            list("DeepSeek-Reasoner", cny, 4_000_000, 16_000_000, "2025-02").cached(r(1_000_000)),
        ),
        (
            "doubao-lite-32k",
            list("豆包-Lite-32K", cny, 300_000, 600_000, "2025-01"),
        ),
        (
            "doubao-pro-128k",
            list("豆包-Pro-128K", cny, 5_000_000, 9_000_000, "2025-01"),
        ),
        (
            "glm-4",
            list("ChatGLM-4", cny, 100_000_000, 100_000_000, "2025-01"),
        ),
        (
            // ¥5 per M since Zhipu's April 2025 price cut (¥50 before).
            "glm-4-plus",
            ModelPrice::with_rates("ChatGLM-4-Plus", cny, r(5_000_000), r(5_000_000))
                .sourced("Zhipu BigModel price list (GLM-4-Plus cut 90%)", "2025-04"),
        ),
        (
            "glm-3-turbo",
            list("ChatGLM-3-Turbo", cny, 1_000_000, 1_000_000, "2025-01"),
        ),
        (
            "glm-4-air",
            list("ChatGLM-4-Air", cny, 500_000, 500_000, "2025-01"),
        ),
        // Xunfei bills all tokens of a call at one rate (token packages).
        (
            "spark-lite",
            list("讯飞星火-Lite (免费)", cny, 0, 0, "2025-01"),
        ),
        (
            "spark-pro",
            list("讯飞星火-Pro", cny, 18_000_000, 18_000_000, "2025-01"),
        ),
        (
            "spark-max",
            list("讯飞星火-Max", cny, 21_000_000, 21_000_000, "2025-01"),
        ),
        (
            "spark-4.0-ultra",
            list("讯飞星火-4.0 Ultra", cny, 70_000_000, 70_000_000, "2025-01"),
        ),
        // --- OpenAI, USD list prices. The original converted them to CNY at
        // ¥7/$; those figures live in pricing/original-service.toml. ---
        ("gpt-4", usd_list("GPT-4", 30_000_000, 60_000_000)),
        (
            "gpt-4-turbo",
            usd_list("GPT-4 Turbo", 10_000_000, 30_000_000),
        ),
        (
            "gpt-4o",
            usd_list("GPT-4o", 2_500_000, 10_000_000).cached(r(1_250_000)),
        ),
        (
            "gpt-4o-mini",
            usd_list("GPT-4o Mini", 150_000, 600_000).cached(r(75_000)),
        ),
        (
            "gpt-4.1-mini",
            usd_list("GPT-4.1 Mini", 400_000, 1_600_000).cached(r(100_000)),
        ),
        (
            "gpt-3.5-turbo",
            usd_list("GPT-3.5 Turbo", 500_000, 1_500_000),
        ),
        (
            // Reasoning tokens are billed as output.
            "o1-mini",
            usd_list("o1-mini", 1_100_000, 4_400_000)
                .cached(r(550_000))
                .reasoning(r(4_400_000)),
        ),
        // --- Gemini, USD (Google AI list prices) ---
        (
            "gemini-1.5-flash",
            ModelPrice::with_rates("Gemini 1.5 Flash", usd, Rate::ZERO, Rate::ZERO)
                .tiered(Tiers::ByRequestSize(vec![
                    band(Some(128_000), 75_000, 300_000, Some(18_750)),
                    band(None, 150_000, 600_000, Some(37_500)),
                ]))
                .sourced(LIST, "2025-01"),
        ),
        (
            "gemini-1.5-pro",
            ModelPrice::with_rates("Gemini 1.5 Pro", usd, Rate::ZERO, Rate::ZERO)
                .tiered(Tiers::ByRequestSize(vec![
                    band(Some(128_000), 1_250_000, 5_000_000, Some(312_500)),
                    band(None, 2_500_000, 10_000_000, Some(625_000)),
                ]))
                .sourced(LIST, "2025-01"),
        ),
        (
            "gemini-2.0-flash",
            list("Gemini 2.0 Flash", usd, 100_000, 400_000, "2025-02").cached(r(25_000)),
        ),
        (
            // Thinking tokens are billed as output.
            "gemini-2.5-pro",
            ModelPrice::with_rates("Gemini 2.5 Pro", usd, Rate::ZERO, Rate::ZERO)
                .tiered(Tiers::ByRequestSize(vec![
                    band(Some(200_000), 1_250_000, 10_000_000, Some(310_000)),
                    band(None, 2_500_000, 15_000_000, Some(625_000)),
                ]))
                .sourced(LIST, "2025-06"),
        ),
        (
            "gemini-2.5-flash",
            // Cache-read price as cut by Google (was $0.075 per M).
            ModelPrice::with_rates("Gemini 2.5 Flash", usd, r(300_000), r(2_500_000))
                .cached(r(30_000))
                .sourced(GENAI, GENAI_DATE),
        ),
    ];
    v.into_iter().map(|(id, p)| (id.to_string(), p)).collect()
}
