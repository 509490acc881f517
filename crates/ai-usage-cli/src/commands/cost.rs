//! `cost`: the price of one call, from token counts or from a provider's raw
//! response body (`--response`, `--responses`).
//!
//! Models of the built-in table (the seed's CNY models) are priced by the
//! table, in micro-units; every other model by the genai-prices catalogue in
//! exact nano-units, in the provider's currency.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ai_usage_core::catalogue::{
    Catalogue, CatalogueQuote, CatalogueUsage, ExtractError, ExtractedUsage, ModelMatch,
};
use ai_usage_core::{json_text, Currency, Money, PricingTable, TokenUsage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::args::{Cli, CostArgs};
use crate::context::{pricing, print_json};
use crate::output::{exact_amount, int};
use crate::{CliError, CliResult};

/// One priced call, as `cost --json` and `--responses` print it.
#[derive(Debug, Serialize)]
struct CostResult {
    /// The model name asked for or reported by the response.
    model: String,
    /// The provider whose catalogue entry priced the call (`null` for the table).
    provider: Option<String>,
    /// The matched catalogue model id (`null` for the table).
    catalogue_model: Option<String>,
    /// The table's canonical id, or the catalogue model id.
    canonical_model: String,
    /// Human-readable model name.
    display_name: String,
    /// Every input token, cached and cache-written ones included.
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    /// Same as `cache_read_tokens` (the name records use).
    cached_input_tokens: u64,
    reasoning_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    input_audio_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_audio_read_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    output_audio_tokens: u64,
    /// Cost of each part with tokens (exact decimal strings).
    parts: Vec<PartJson>,
    /// The total as an exact number (at most 9 decimals, never `2e-7`).
    cost: Money,
    /// The total as an exact decimal string.
    cost_exact: String,
    currency: Currency,
    priced: bool,
    /// Which prices: `"table"`, `"catalogue"` or `null` (unpriced).
    priced_by: Option<&'static str>,
    /// The moment whose prices apply (RFC 3339).
    at: String,
}

#[derive(Debug, Serialize)]
struct PartJson {
    part: &'static str,
    tokens: u64,
    cost: String,
    /// The same cost, for human output.
    #[serde(skip)]
    nanos: Money,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `nanos` as an exact decimal without trailing zeros (`200` → `0.0000002`).
pub fn decimal_nanos(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let a = nanos.unsigned_abs();
    let (int, frac) = (a / 1_000_000_000, a % 1_000_000_000);
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let digits = format!("{frac:09}");
    format!("{sign}{int}.{}", digits.trim_end_matches('0'))
}

fn catalogue() -> Result<&'static Catalogue, String> {
    Catalogue::builtin().map_err(|e| format!("the built-in price catalogue does not load: {e}"))
}

pub fn run(cli: &Cli, a: &CostArgs) -> CliResult {
    let at = a.at.unwrap_or_else(Utc::now);
    let table = pricing(cli)?;
    if let Some(path) = &a.responses {
        return responses(&table, a, path, at);
    }
    if let Some(path) = &a.response {
        let text = read_input(path)?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::usage(format!("{}: not JSON: {e}", path.display())))?;
        let r = price_body(&table, a, &body, at).map_err(CliError::usage)?;
        return show(cli, &r);
    }
    // clap requires the three positionals without --response(s).
    let (Some(model), Some(input), Some(output)) =
        (a.model.as_deref(), a.input_tokens, a.output_tokens)
    else {
        return Err(CliError::usage(
            "MODEL INPUT_TOKENS OUTPUT_TOKENS are required",
        ));
    };
    if a.cached.saturating_add(a.cache_write) > input {
        return Err(CliError::usage(format!(
            "--cached-tokens {} plus --cache-write-tokens {} is more than the {} input tokens",
            a.cached, a.cache_write, input
        )));
    }
    if a.reasoning > output {
        return Err(CliError::usage(format!(
            "--reasoning-tokens {} is more than the {} output tokens",
            a.reasoning, output
        )));
    }
    let usage = CatalogueUsage {
        input_tokens: input,
        cache_read_tokens: a.cached,
        cache_write_tokens: a.cache_write,
        output_tokens: output,
        reasoning_tokens: a.reasoning,
        ..CatalogueUsage::default()
    };
    let r =
        price_usage(&table, a.provider.as_deref(), model, &usage, at).map_err(CliError::usage)?;
    if !r.priced {
        return Err(CliError::usage(format!(
            "unknown model {model:?}{} (see `ai-usage pricing`)",
            a.provider
                .as_deref()
                .map(|p| format!(" for provider {p:?}"))
                .unwrap_or_default()
        )));
    }
    show(cli, &r)
}

/// Prices one call: the table for its models (unless a provider is named),
/// else the catalogue; unpriced when neither knows the model.
fn price_usage(
    table: &PricingTable,
    provider: Option<&str>,
    model: &str,
    usage: &CatalogueUsage,
    at: DateTime<Utc>,
) -> Result<CostResult, String> {
    if provider.is_none() {
        if let Some((id, price)) = table.resolve(model) {
            // Cache writes at the table's cache-write rate (else input).
            let t = TokenUsage::from(usage);
            let nanos = price.cost(&t).nanos();
            let mut r = result(model, usage, nanos, price.currency, at);
            r.canonical_model = id.to_owned();
            r.display_name = price.display_name.clone();
            r.priced_by = Some("table");
            return Ok(r);
        }
    }
    match table.catalogue_match(provider, model) {
        Some(m) => {
            let q = m.quote(usage, at).map_err(|e| format!("{model}: {e}"))?;
            Ok(from_quote(model, usage, &m, &q, at))
        }
        None => {
            let mut r = result(model, usage, 0, Currency::CNY, at);
            r.priced = false;
            r.priced_by = None;
            Ok(r)
        }
    }
}

fn result(
    model: &str,
    u: &CatalogueUsage,
    nanos: i64,
    currency: Currency,
    at: DateTime<Utc>,
) -> CostResult {
    CostResult {
        model: model.to_owned(),
        provider: None,
        catalogue_model: None,
        canonical_model: model.to_owned(),
        display_name: model.to_owned(),
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_read_tokens: u.cache_read_tokens,
        cache_write_tokens: u.cache_write_tokens,
        cached_input_tokens: u.cache_read_tokens,
        reasoning_tokens: u.reasoning_tokens,
        input_audio_tokens: u.input_audio_tokens,
        cache_audio_read_tokens: u.cache_audio_read_tokens,
        output_audio_tokens: u.output_audio_tokens,
        parts: Vec::new(),
        cost: Money::from_nanos(nanos),
        cost_exact: decimal_nanos(nanos),
        currency,
        priced: true,
        priced_by: None,
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

fn from_quote(
    model: &str,
    usage: &CatalogueUsage,
    m: &ModelMatch<'_>,
    q: &CatalogueQuote<'_>,
    at: DateTime<Utc>,
) -> CostResult {
    let mut r = result(model, usage, q.total_nanos, q.currency, at);
    r.provider = Some(m.provider_id().to_owned());
    r.catalogue_model = Some(m.model_id().to_owned());
    r.canonical_model = m.model_id().to_owned();
    r.display_name = m.display_name();
    r.priced_by = Some("catalogue");
    r.parts = q
        .parts
        .iter()
        .filter(|(part, p)| (p.units > 0 && *part != "requests") || p.nanos != 0)
        .map(|(part, p)| PartJson {
            part,
            tokens: p.units,
            cost: decimal_nanos(p.nanos),
            nanos: Money::from_nanos(p.nanos),
        })
        .collect();
    r
}

/// Reads usage and model from a response body of `--provider`, then prices it.
fn price_body(
    table: &PricingTable,
    a: &CostArgs,
    body: &Value,
    at: DateTime<Utc>,
) -> Result<CostResult, String> {
    let provider = a.provider.as_deref().unwrap_or_default();
    let cat = catalogue()?;
    let ExtractedUsage { model, usage } =
        extract(cat, provider, a.api.as_deref(), body).map_err(|e| e.to_string())?;
    let model = model
        .or_else(|| a.model.clone())
        .ok_or_else(|| "the response names no model".to_owned())?;
    let r = price_usage(table, Some(provider), &model, &usage, at)?;
    if r.priced {
        return Ok(r);
    }
    // A provider that resells others' models under their own names.
    price_usage(table, None, &model, &usage, at)
}

/// Usage from a response body. Without `--api`, a provider with no
/// `default` flavour (OpenAI: chat, responses, embeddings) is read with the
/// first of its flavours, in catalogue order, that understands the body.
fn extract(
    cat: &Catalogue,
    provider: &str,
    api: Option<&str>,
    body: &Value,
) -> Result<ExtractedUsage, ExtractError> {
    let id = match cat.extract(provider, api, body) {
        Err(ExtractError::AmbiguousFlavour { provider: id, .. }) => id,
        other => return other,
    };
    let flavours: Vec<&str> = cat
        .providers()
        .find(|(p, _)| *p == id)
        .map(|(_, f)| f)
        .unwrap_or_default();
    let mut error = None;
    for flavour in flavours {
        match cat.extract(provider, Some(flavour), body) {
            Ok(u) => return Ok(u),
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    Err(error.unwrap_or(ExtractError::NoExtractors(id)))
}

fn show(cli: &Cli, r: &CostResult) -> CliResult {
    if cli.json {
        return print_json(r);
    }
    let via = match (&r.provider, &r.catalogue_model) {
        (Some(p), Some(m)) => format!("{p}: {m}"),
        _ => r.display_name.clone(),
    };
    outln!(
        "{} ({}): {} input + {} output tokens = {}{} {}",
        r.model,
        via,
        int(r.input_tokens),
        int(r.output_tokens),
        r.currency.symbol(),
        // The price of one call: exact, unlike the rounded tables.
        exact_amount(r.cost),
        r.currency
    );
    if r.cache_read_tokens > 0 || r.cache_write_tokens > 0 {
        outln!(
            "  cache: {} read, {} written",
            int(r.cache_read_tokens),
            int(r.cache_write_tokens)
        );
    }
    for p in &r.parts {
        outln!(
            "  {:<16} {:>12} tokens  {}{}",
            p.part,
            int(p.tokens),
            r.currency.symbol(),
            exact_amount(p.nanos)
        );
    }
    Ok(())
}

/// `--responses`: one JSON line per input line, in order; bad lines (not
/// UTF-8, not JSON, not priceable) report their error and the rest go on.
/// Any bad line makes the command fail at the end, with their count.
fn responses(table: &PricingTable, a: &CostArgs, path: &Path, at: DateTime<Utc>) -> CliResult {
    let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", path.display())))?;
        Box::new(BufReader::new(f))
    };
    let (mut lines, mut failed) = (0usize, 0usize);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", path.display())))?;
        if read == 0 {
            break;
        }
        lines += 1;
        let raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let outcome = std::str::from_utf8(raw)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|line| {
                serde_json::from_str::<Value>(line).map_err(|e| format!("not JSON: {e}"))
            })
            .and_then(|body| price_body(table, a, &body, at));
        let text = match outcome {
            Ok(r) => json_text::to_string(&r),
            Err(error) => {
                failed += 1;
                json_text::to_string(&serde_json::json!({ "line": lines, "error": error }))
            }
        }
        .map_err(|e| CliError::failed(format!("cannot serialise output: {e}")))?;
        outln!("{text}");
    }
    if failed > 0 {
        return Err(CliError::failed(format!(
            "{failed} of {lines} response line(s) could not be priced"
        )));
    }
    Ok(())
}

fn read_input(path: &Path) -> CliResult<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::failed(format!("cannot read stdin: {e}")))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", path.display())))?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::decimal_nanos;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal_nanos(200), "0.0000002");
        assert_eq!(decimal_nanos(4_500_000), "0.0045");
        assert_eq!(decimal_nanos(3_000_000_000), "3");
        assert_eq!(decimal_nanos(-1), "-0.000000001");
    }
}
