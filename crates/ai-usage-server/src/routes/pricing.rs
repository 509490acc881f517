//! The pricing table in force, in the original's shape and ours.

use std::collections::BTreeMap;

use ai_usage_core::{Band, Currency, ModelPrice, Money, PricingTable, Rate, TokenUsage};
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use crate::error::ApiError;
use crate::json::{json_bytes, to_json};
use crate::state::AppState;

/// The original's per-provider groups, in its key names.
const SERIES: [&str; 6] = [
    "qwen_series",
    "openai_series",
    "deepseek_series",
    "doubao_series",
    "glm_series",
    "xunfei_series",
];

/// Xunfei Spark's API `domain` names, which the original used as model ids.
const XUNFEI_DOMAINS: [&str; 6] = [
    "lite",
    "generalv3",
    "generalv3.5",
    "4.0ultra",
    "pro-128k",
    "max-32k",
];

/// Ids the table keeps lower-case but the original spelt otherwise; a client
/// looking up a record's model finds both spellings.
const ORIGINAL_SPELLINGS: [(&str, &str); 1] = [("4.0ultra", "4.0Ultra")];

/// Google's list prices for the parts of a Gemini call we do not record,
/// shown under the original's keys: `(model, currency, web_search per 1,000
/// grounded requests, cache_storage per 1K tokens per hour)`. Informational:
/// no recorded cost includes them.
const UNRECORDED_PARTS: [(&str, Currency, Money, Rate); 1] = [(
    "gemini-2.5-flash",
    Currency::USD,
    // $35 per 1,000 grounded prompts.
    Money::from_micros(35_000_000),
    // $1.00 per 1M tokens per hour = $0.001 per 1K.
    Rate::from_nanos_per_1k(1_000_000),
)];

/// The original's USD model keys, which the genai-prices catalogue prices
/// (unless a pricing file prices them, as `pricing/original-service.toml`
/// does in CNY): listed here in the catalogue's current prices, a dated or
/// preview key as an alias of the catalogue model that prices it.
const ORIGINAL_CATALOGUE_KEYS: [&str; 17] = [
    "gpt-4",
    "gpt-4-turbo",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "gpt-3.5-turbo",
    "o1-mini",
    "gemini-1.5-flash",
    "gemini-1.5-pro",
    "gemini-2.0-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "gpt-4-1106-preview",
    "gpt-4-turbo-preview",
    "gemini-2.5-flash-preview-09-2025",
];

/// A key of [`ORIGINAL_CATALOGUE_KEYS`] with the catalogue model that
/// prices it and that model's current price in the table's terms.
struct CatalogueView {
    key: &'static str,
    model_id: String,
    price: ModelPrice,
}

fn catalogue_views(pricing: &PricingTable) -> Vec<CatalogueView> {
    let now = chrono::Utc::now();
    ORIGINAL_CATALOGUE_KEYS
        .iter()
        .filter_map(|&key| {
            let (model_id, price) = pricing.catalogue_price(key, now)?;
            Some(CatalogueView {
                key,
                model_id,
                price,
            })
        })
        .collect()
}

/// The original's worked example: 1,000 input and 500 output tokens.
const EXAMPLE: (&str, u64, u64) = ("qwen-plus", 1000, 500);

/// One model in `*_series` and `all_models`: the original's fields
/// (`input`, `output` per 1K tokens, `display_name`) and ours beside them.
#[derive(Serialize)]
struct Entry<'a> {
    input: Rate,
    output: Rate,
    display_name: &'a str,
    currency: Currency,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_input: Option<Rate>,
    /// For an alias, the model it prices as.
    #[serde(skip_serializing_if = "Option::is_none")]
    alias_of: Option<&'a str>,
    /// The original's name for `cached_input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read: Option<Rate>,
    /// The original's free input tokens per call (0 unless a pricing file
    /// sets them), where the price depends on the call's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    input_free_tokens: Option<u64>,
    /// The size bands (`up_to` input tokens, rates), where the price depends
    /// on the call's size; a free allowance is the first band, at 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tiers: Option<Vec<Band>>,
    /// Per 1,000 web-search (grounded) requests; not recorded by us.
    #[serde(skip_serializing_if = "Option::is_none")]
    web_search: Option<Money>,
    /// Context-cache storage per 1K tokens per hour; not recorded by us.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_storage: Option<Rate>,
}

impl<'a> Entry<'a> {
    /// The entry of `p`, the price of the model `id` (for an alias, the
    /// model it prices as).
    fn new(id: &str, p: &'a ModelPrice, alias_of: Option<&'a str>) -> Entry<'a> {
        let sized = !p.tiers.bands().is_empty() || p.free_input_tokens_per_call > 0;
        let unrecorded = UNRECORDED_PARTS
            .iter()
            .find(|(model, currency, ..)| *model == id && *currency == p.currency);
        Entry {
            input: p.input,
            output: p.output,
            display_name: &p.display_name,
            currency: p.currency,
            cached_input: p.cached_input,
            alias_of,
            cache_read: p.cached_input,
            input_free_tokens: sized.then_some(p.free_input_tokens_per_call),
            input_tiers: sized.then(|| input_tiers(p)),
            web_search: unrecorded.map(|u| u.2),
            cache_storage: unrecorded.map(|u| u.3),
        }
    }
}

/// The size bands of `p`; a flat price with a free allowance is two bands:
/// the free input tokens at 0, then the model's rates.
fn input_tiers(p: &ModelPrice) -> Vec<Band> {
    let bands = p.tiers.bands();
    if !bands.is_empty() {
        return bands.to_vec();
    }
    let band = |up_to, input| Band {
        up_to,
        input,
        output: p.output,
        cached_input: None,
        cache_write: None,
    };
    vec![
        band(Some(p.free_input_tokens_per_call), Rate::ZERO),
        band(None, p.input),
    ]
}

/// `calculation_example`: what one call of the example size costs.
#[derive(Serialize)]
struct Example<'a> {
    model: &'a str,
    input_tokens: u64,
    output_tokens: u64,
    cost: Money,
    currency: Currency,
}

/// The whole payload: the original's keys, then ours (`models`, `aliases`, `unit`).
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(flatten)]
    series: BTreeMap<&'static str, BTreeMap<&'a str, Entry<'a>>>,
    all_models: BTreeMap<&'a str, Entry<'a>>,
    note: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    calculation_example: Option<Example<'a>>,
    models: BTreeMap<&'a str, &'a ModelPrice>,
    aliases: BTreeMap<&'a str, &'a str>,
    unit: &'static str,
}

/// The original's group of a model id; `gemini_series` is ours (the original
/// listed Gemini only in `all_models`).
fn series_of(id: &str) -> Option<&'static str> {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| id.starts_with(p));
    if starts(&["qwen"]) {
        Some("qwen_series")
    } else if starts(&["gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding"]) {
        Some("openai_series")
    } else if starts(&["deepseek"]) {
        Some("deepseek_series")
    } else if starts(&["doubao"]) {
        Some("doubao_series")
    } else if starts(&["glm", "chatglm"]) {
        Some("glm_series")
    } else if starts(&["spark"]) || XUNFEI_DOMAINS.contains(&id) {
        Some("xunfei_series")
    } else if starts(&["gemini"]) {
        Some("gemini_series")
    } else {
        None
    }
}

fn payload<'a>(pricing: &'a PricingTable, views: &'a [CatalogueView]) -> Payload<'a> {
    let mut series: BTreeMap<&'static str, BTreeMap<&str, Entry<'_>>> =
        SERIES.iter().map(|s| (*s, BTreeMap::new())).collect();
    let mut all_models = BTreeMap::new();
    let mut models = BTreeMap::new();
    for (id, p) in pricing.models() {
        models.insert(id, p);
        all_models.insert(id, Entry::new(id, p, None));
        if let Some(s) = series_of(id) {
            series
                .entry(s)
                .or_default()
                .insert(id, Entry::new(id, p, None));
        }
    }
    for v in views {
        let alias_of = (v.key != v.model_id).then_some(v.model_id.as_str());
        let id = v.model_id.as_str();
        all_models.insert(v.key, Entry::new(id, &v.price, alias_of));
        if let Some(s) = series_of(v.key) {
            series
                .entry(s)
                .or_default()
                .insert(v.key, Entry::new(id, &v.price, alias_of));
        }
    }
    let aliases: BTreeMap<&str, &str> = pricing.aliases().into_iter().collect();
    // A client of the original looks a record's model up in `all_models`
    // directly, so aliases are entries there too.
    for (&alias, &target) in &aliases {
        let Some((id, p)) = pricing.resolve(target) else {
            continue;
        };
        all_models.insert(alias, Entry::new(id, p, Some(id)));
        if let Some(s) = series_of(alias).or_else(|| series_of(id)) {
            series
                .entry(s)
                .or_default()
                .insert(alias, Entry::new(id, p, Some(id)));
        }
    }
    for (ours, theirs) in ORIGINAL_SPELLINGS {
        if let Some((id, p)) = pricing.resolve(ours) {
            let alias_of = (id != ours).then_some(id);
            all_models.insert(theirs, Entry::new(id, p, alias_of));
            if let Some(s) = series_of(ours) {
                series
                    .entry(s)
                    .or_default()
                    .insert(theirs, Entry::new(id, p, alias_of));
            }
        }
    }
    let (model, input_tokens, output_tokens) = EXAMPLE;
    let example_model = pricing
        .resolve(model)
        .map(|_| model)
        .or_else(|| pricing.models().next().map(|(id, _)| id));
    let calculation_example = example_model.map(|model| {
        let q = pricing.price(model, &TokenUsage::new(input_tokens, output_tokens));
        Example {
            model,
            input_tokens,
            output_tokens,
            cost: q.cost,
            currency: q.currency,
        }
    });
    Payload {
        series,
        all_models,
        note: "价格单位：每 1K tokens，币种见各模型的 currency（国内模型 CNY，OpenAI / Gemini 为 USD）。\
               Prices per 1K tokens in each model's currency.",
        calculation_example,
        models,
        aliases,
        unit: "per 1K tokens",
    }
}

/// The pricing table in force.
#[utoipa::path(get, path = "/api/ai_usage/models/pricing", tag = "pricing",
    responses((status = 200, description = "The original's keys: `qwen_series`, `openai_series`, \
`deepseek_series`, `doubao_series`, `glm_series`, `xunfei_series` (and `gemini_series`), each and \
`all_models` mapping model or alias → `{input, output, display_name, currency, cached_input?, alias_of?}`; \
where the price depends on the call's size also `input_free_tokens` and `input_tiers [{up_to?, input, output}]`; \
`cache_read` (= `cached_input`); on Gemini 2.5 Flash (and its preview) `web_search` (per 1,000 grounded requests) \
and `cache_storage` (per 1K tokens per hour), Google's prices for parts we do not record; \
`note`; `calculation_example {model, input_tokens, output_tokens, cost, currency}`. Ours beside them: \
`models: {id: {display_name, currency, input, output, …}}`, `aliases: {alias: id}`, `unit`. \
Rates per 1K tokens in the model's currency.", body = serde_json::Value)))]
pub async fn models_pricing(State(st): State<AppState>) -> Result<Response, ApiError> {
    // Serialised under the read lock, from borrowed data: no table copy.
    let pricing = st.monitor.pricing();
    let views = catalogue_views(&pricing);
    let body = to_json(&payload(&pricing, &views))?;
    Ok(json_bytes(body))
}
