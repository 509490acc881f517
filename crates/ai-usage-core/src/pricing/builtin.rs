//! The built-in price table.
//!
//! Rates are written as integer nano-units per 1K tokens, which is the same
//! number as micro-units per 1M tokens: ¥4 per million tokens = `4_000_000`.
//! Keeping them as integers keeps the table exact and free of fallible parsing.
//!
//! Sources:
//! - "seed": the Python implementation this crate replaces; its prices were
//!   verified against the records it wrote. It kept no date, so `price_date`
//!   is `None`. OpenAI prices there are USD list prices converted at ¥7/$; the
//!   extra OpenAI entries below follow the same convention so reports stay in
//!   one currency.
//! - "provider list price, 2025": public list prices at `price_date`; check
//!   them against your contract or override them with a pricing file.
//! - Gemini is priced in USD, as Google bills it.

use super::{Band, ModelPrice, Rate, Tiers};
use crate::money::Currency;

const SEED: &str = "seed implementation (verified against its records)";
const LIST: &str = "provider list price, 2025";

/// Aliases: alias → canonical id (both already normalised).
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("qwen-max-longcontext", "qwen-max"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("deepseek-v3", "deepseek-chat"),
    ("deepseek-r1", "deepseek-reasoner"),
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

/// A band with a cache price; `up_to` in input tokens.
fn band(up_to: Option<u64>, input: u64, output: u64, cached: Option<u64>) -> Band {
    Band {
        up_to,
        input: r(input),
        output: r(output),
        cached_input: cached.map(r),
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
        ("gpt-4o", seed("GPT-4o", 35_000_000, 105_000_000)),
        ("gpt-4o-mini", seed("GPT-4o Mini", 1_000_000, 4_000_000)),
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
            "glm-4-plus",
            list("ChatGLM-4-Plus", cny, 50_000_000, 50_000_000, "2025-01"),
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
        // --- OpenAI, USD list price converted at ¥7/$ like the seed ---
        (
            "gpt-4-turbo",
            list("GPT-4 Turbo", cny, 70_000_000, 210_000_000, "2025-01"),
        ),
        (
            "gpt-3.5-turbo",
            list("GPT-3.5 Turbo", cny, 3_500_000, 10_500_000, "2025-01"),
        ),
        (
            // $1.10 / $4.40 per M, cached $0.55; reasoning billed as output.
            "o1-mini",
            list("o1-mini", cny, 7_700_000, 30_800_000, "2025-01")
                .cached(r(3_850_000))
                .reasoning(r(30_800_000)),
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
            list("Gemini 2.5 Flash", usd, 300_000, 2_500_000, "2025-06").cached(r(75_000)),
        ),
    ];
    v.into_iter().map(|(id, p)| (id.to_string(), p)).collect()
}
