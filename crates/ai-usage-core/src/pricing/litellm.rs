//! Pricing files in LiteLLM's `model_prices_and_context_window.json` format,
//! detected automatically among `.json` pricing files.
//!
//! Field names are LiteLLM's (see that file's `sample_spec` entry): per-token
//! USD prices `input_cost_per_token`, `output_cost_per_token`,
//! `cache_read_input_token_cost`, and `…_above_200k_tokens` variants, which
//! become a by-request-size tier above 200,000 input tokens (the whole call
//! pays the higher price, as the providers bill it). Entries without token
//! prices (images, audio per second, `sample_spec`) are skipped.
//! `cache_creation_input_token_cost` (and its `…_above_200k_tokens` variant)
//! is the cache-write rate.

use serde_json::{Map, Value};

use super::{normalise, Band, ModelPrice, Rate, Tiers};
use crate::money::Currency;

/// Input size above which LiteLLM's `…_above_200k_tokens` prices apply.
const LONG_CONTEXT: u64 = 200_000;

/// True when a parsed JSON file looks like LiteLLM's: no `models` table and
/// an entry with a LiteLLM price field.
pub(super) fn is_litellm(v: &Value) -> bool {
    let Some(top) = v.as_object() else {
        return false;
    };
    !top.contains_key("models")
        && top
            .values()
            .any(|e| e.get("input_cost_per_token").is_some() || e.get("litellm_provider").is_some())
}

/// A problem in one entry: the entry's key and what is wrong, naming the field.
pub(super) struct EntryError {
    pub(super) entry: String,
    pub(super) message: String,
}

/// Converts every priced entry; all-or-nothing.
pub(super) fn models(v: &Value) -> Result<Vec<(String, ModelPrice)>, EntryError> {
    let mut out = Vec::new();
    let Some(top) = v.as_object() else {
        return Ok(out);
    };
    for (key, entry) in top {
        if key == "sample_spec" {
            continue;
        }
        let fail = |message: String| EntryError {
            entry: key.clone(),
            message,
        };
        let Some(fields) = entry.as_object() else {
            return Err(fail("entry must be an object".into()));
        };
        if let Some(price) = entry_price(key, fields).map_err(fail)? {
            let id = normalise(key);
            if id.is_empty() {
                return Err(fail("model name must not be empty".into()));
            }
            out.push((id, price));
        }
    }
    Ok(out)
}

/// A per-token USD price as a [`Rate`] per 1K tokens; `None` when absent.
fn per_token(fields: &Map<String, Value>, field: &str) -> Result<Option<Rate>, String> {
    let Some(v) = fields.get(field) else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(None);
    }
    v.as_f64()
        .and_then(|p| Rate::per_1k(p * 1000.0))
        .map(Some)
        .ok_or_else(|| format!("field `{field}`: must be a non-negative number per token, got {v}"))
}

fn entry_price(key: &str, fields: &Map<String, Value>) -> Result<Option<ModelPrice>, String> {
    let input = per_token(fields, "input_cost_per_token")?;
    let output = per_token(fields, "output_cost_per_token")?;
    let cached = per_token(fields, "cache_read_input_token_cost")?;
    let cache_write = per_token(fields, "cache_creation_input_token_cost")?;
    let (input, output) = match (input, output) {
        (None, None) => return Ok(None),
        (Some(i), o) => (i, o.unwrap_or(Rate::ZERO)),
        (None, Some(_)) => {
            return Err(
                "field `input_cost_per_token`: missing (the entry has an output price)".into(),
            )
        }
    };
    let provider = fields
        .get("litellm_provider")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut price = ModelPrice::with_rates(key.trim(), Currency::USD, input, output);
    if let Some(c) = cached {
        price = price.cached(c);
    }
    if let Some(w) = cache_write {
        price = price.cache_write(w);
    }
    let long_input = per_token(fields, "input_cost_per_token_above_200k_tokens")?;
    let long_output = per_token(fields, "output_cost_per_token_above_200k_tokens")?;
    let long_cached = per_token(fields, "cache_read_input_token_cost_above_200k_tokens")?;
    let long_write = per_token(fields, "cache_creation_input_token_cost_above_200k_tokens")?;
    if long_input.is_some() || long_output.is_some() {
        price = price.tiered(Tiers::ByRequestSize(vec![
            Band {
                up_to: Some(LONG_CONTEXT),
                input,
                output,
                cached_input: cached,
                cache_write,
            },
            Band {
                up_to: None,
                input: long_input.unwrap_or(input),
                output: long_output.unwrap_or(output),
                cached_input: long_cached.or(cached),
                cache_write: long_write.or(cache_write),
            },
        ]));
    }
    price.source = Some(format!(
        "LiteLLM pricing file (litellm_provider: {provider})"
    ));
    Ok(Some(price))
}
