//! The pricing-file loader: JSON or TOML, format documented on the parent module.
//!
//! Parsing is all-or-nothing: the file is read, deserialised and validated into
//! a [`Parsed`] before the table is touched.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::rate::{de_opt_cache_write, de_opt_cached_input, rate_field};
use super::Tiers;
use super::{normalise, validate_bands, Band, ModelPrice, PricingError, PricingTable, Rate};
use crate::money::Currency;

/// A validated file, ready to merge.
pub(super) struct Parsed {
    /// Normalised id → price, in file order, without duplicates.
    pub(super) models: Vec<(String, ModelPrice)>,
    /// Normalised alias → canonical id.
    pub(super) aliases: Vec<(String, String)>,
    /// A file in the genai-prices format (a JSON array of providers).
    pub(super) catalogue: Option<super::catalogue::Catalogue>,
}

thread_local! {
    // serde does not tell which map key an error happened under; the models
    // visitor records the key here so the error can name the model.
    static CURRENT_MODEL: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn set_current_model(model: Option<String>) {
    CURRENT_MODEL.with(|c| *c.borrow_mut() = model);
}

fn take_current_model() -> Option<String> {
    CURRENT_MODEL.with(|c| c.borrow_mut().take())
}

#[derive(Clone, Copy)]
enum Format {
    /// JSON: our format, genai-prices' or LiteLLM's.
    Json,
    /// TOML: our format.
    Toml,
}

/// Parses an embedded TOML pricing file (the built-in CNY table) with the
/// rules of a user's file; `name` stands for its path in errors.
pub(super) fn parse_embedded_toml(name: &str, text: &str) -> Result<Parsed, PricingError> {
    parse_text(text, Path::new(name), Format::Toml, &PricingTable::empty())
}

/// Parses the text of a JSON pricing file (genai-prices, LiteLLM or ours)
/// that is not on disk (a downloaded catalogue); `name` names it in errors.
pub(super) fn parse_json_text(name: &str, text: &str) -> Result<Parsed, PricingError> {
    parse_text(text, Path::new(name), Format::Json, &PricingTable::empty())
}

/// A position-bearing problem before the path is attached.
struct Located {
    line: usize,
    column: usize,
    message: String,
}

pub(super) fn parse(path: &Path, table: &PricingTable) -> Result<Parsed, PricingError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("json") => Format::Json,
        Some("toml") => Format::Toml,
        _ => {
            return Err(PricingError::UnsupportedFormat {
                path: path.to_path_buf(),
            })
        }
    };
    let io = |source| PricingError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Checked before reading: a huge file would cost memory (and seconds)
    // long before its model count could be seen.
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > super::MAX_PRICING_FILE_BYTES {
        return Err(PricingError::TooLarge {
            path: path.to_path_buf(),
            message: format!(
                "{size} bytes; a pricing file may have at most {} (split it, or keep only the models you use)",
                super::MAX_PRICING_FILE_BYTES
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_text(&text, path, format, table)
}

/// Parses and validates the text of a pricing file; `path` names it in
/// errors (the built-in CNY table goes through here too, so it obeys the
/// same rules as a user's file).
fn parse_text(
    text: &str,
    path: &Path,
    format: Format,
    table: &PricingTable,
) -> Result<Parsed, PricingError> {
    let too_many = |n: usize| PricingError::TooLarge {
        path: path.to_path_buf(),
        message: format!(
            "{n} models; a pricing file may price at most {}",
            super::MAX_PRICING_MODELS
        ),
    };
    let file_error = |at: Located, model: Option<String>| PricingError::File {
        path: path.to_path_buf(),
        line: at.line,
        column: at.column,
        model,
        message: at.message,
    };

    if matches!(format, Format::Json) && text.trim_start().starts_with('[') {
        // Only the genai-prices format is a top-level array.
        let catalogue = super::catalogue::Catalogue::from_json_located(text).map_err(|e| {
            PricingError::File {
                path: path.to_path_buf(),
                line: e.line.max(1),
                column: e.column.max(1),
                model: e.entry.clone(),
                message: format!(
                    "genai-prices format: {}{}",
                    e.field
                        .as_ref()
                        .map(|f| format!("field `{f}`: "))
                        .unwrap_or_default(),
                    e.message
                ),
            }
        })?;
        let n = catalogue.models().count();
        if n > super::MAX_PRICING_MODELS {
            return Err(too_many(n));
        }
        return Ok(Parsed {
            models: Vec::new(),
            aliases: Vec::new(),
            catalogue: Some(catalogue),
        });
    }
    if matches!(format, Format::Json) {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            if super::litellm::is_litellm(&value) {
                let models = super::litellm::models(&value).map_err(|e| {
                    let at = locate_key(text, &e.entry);
                    file_error(
                        Located {
                            message: e.message,
                            ..at
                        },
                        Some(e.entry),
                    )
                })?;
                if models.len() > super::MAX_PRICING_MODELS {
                    return Err(too_many(models.len()));
                }
                return Ok(Parsed {
                    models,
                    aliases: Vec::new(),
                    catalogue: None,
                });
            }
        }
    }

    set_current_model(None);
    let raw: Result<RawFile, Located> = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| json_error(&e)),
        Format::Toml => toml::from_str(text).map_err(|e| toml_error(text, &e)),
    };
    let model = take_current_model();
    let raw = raw.map_err(|at| file_error(at, model))?;
    if raw.models.0.len() > super::MAX_PRICING_MODELS {
        return Err(too_many(raw.models.0.len()));
    }

    let file_ids: HashSet<&str> = raw.models.0.iter().map(|(id, _)| id.as_str()).collect();
    let file_aliases: BTreeMap<String, String> = raw
        .aliases
        .iter()
        .map(|(a, t)| (normalise(a), normalise(t)))
        .collect();
    let mut aliases = Vec::with_capacity(raw.aliases.len());
    for (alias_raw, target_raw) in &raw.aliases {
        let at = || locate_alias(text, format, alias_raw);
        let alias = normalise(alias_raw);
        if alias.is_empty() {
            return Err(file_error(
                Located {
                    message: "`aliases`: an alias must not be empty".into(),
                    ..at()
                },
                None,
            ));
        }
        if file_ids.contains(alias.as_str()) || table.index.contains_key(&alias) {
            return Err(file_error(
                Located {
                    message: format!("`aliases`: alias `{alias_raw}` is already the id of a model"),
                    ..at()
                },
                None,
            ));
        }
        let Some(canonical) = alias_target(&normalise(target_raw), &file_ids, &file_aliases, table)
        else {
            return Err(file_error(
                Located {
                    message: format!(
                        "`aliases`: alias `{alias_raw}` points to unknown model `{target_raw}`"
                    ),
                    ..at()
                },
                None,
            ));
        };
        aliases.push((alias, canonical));
    }
    Ok(Parsed {
        models: raw.models.0,
        aliases,
        catalogue: None,
    })
}

/// Where a JSON object key first appears (1-based line and column), else 1:1.
fn locate_key(text: &str, key: &str) -> Located {
    let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\""));
    let (line, column) = match text.find(&quoted) {
        Some(at) => {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        }
        None => (1, 1),
    };
    Located {
        line,
        column,
        message: String::new(),
    }
}

/// Follows aliases of this file and of the table (a few hops, no cycles) to
/// a canonical id of the file or the table.
fn alias_target(
    target: &str,
    file_ids: &HashSet<&str>,
    file_aliases: &BTreeMap<String, String>,
    table: &PricingTable,
) -> Option<String> {
    let mut cur = target.to_string();
    for _ in 0..8 {
        if file_ids.contains(cur.as_str()) {
            return Some(cur);
        }
        if let Some(id) = table.canonical_id(&cur) {
            return Some(id.to_string());
        }
        cur = file_aliases.get(&cur)?.clone();
    }
    None
}

fn json_error(e: &serde_json::Error) -> Located {
    let full = e.to_string();
    // Display appends " at line L column C"; the position is reported apart.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    Located {
        line: e.line(),
        column: e.column(),
        message,
    }
}

fn toml_error(text: &str, e: &toml::de::Error) -> Located {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    Located {
        line,
        column,
        message: e.message().trim_end().to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where an alias key is written: after the `aliases` section header/key.
/// serde keeps no positions for a check made after parsing, so search the text.
fn locate_alias(text: &str, format: Format, alias: &str) -> Located {
    let header = match format {
        Format::Json => "\"aliases\"",
        Format::Toml => "[aliases]",
    };
    let section = text.find(header).unwrap_or(0);
    let rest = &text[section..];
    // Prefer a quoted key, then a bare key at a line start, then any match.
    let at = rest
        .find(&format!("\"{alias}\""))
        .or_else(|| rest.find(&format!("\n{alias}")).map(|i| i + 1))
        .or_else(|| rest.find(alias))
        .map_or(section, |i| section + i);
    let (line, column) = line_col(text, at);
    Located {
        line,
        column,
        message: String::new(),
    }
}

// ---------------------------------------------------------------------------
// Raw file shape
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    models: RawModels,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

/// Models, validated while deserialising so errors carry a position.
#[derive(Default)]
struct RawModels(Vec<(String, ModelPrice)>);

impl<'de> Deserialize<'de> for RawModels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawModels, D::Error> {
        d.deserialize_map(ModelsVisitor)
    }
}

struct ModelsVisitor;

impl<'de> Visitor<'de> for ModelsVisitor {
    type Value = RawModels;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of models keyed by model id")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawModels, A::Error> {
        let mut out: Vec<(String, ModelPrice)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            set_current_model(Some(key.clone()));
            let raw: RawModel = map.next_value()?;
            let id = normalise(&key);
            if id.is_empty() {
                return Err(A::Error::custom("a model id must not be empty"));
            }
            if !seen.insert(id.clone()) {
                return Err(A::Error::custom(format_args!(
                    "duplicate model id `{id}` (ids are case-insensitive)"
                )));
            }
            let price = raw.into_price(&key).map_err(A::Error::custom)?;
            out.push((id, price));
        }
        set_current_model(None);
        Ok(RawModels(out))
    }
}

#[derive(Clone, Copy)]
enum TierMode {
    Graduated,
    ByRequestSize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_currency")]
    currency: Option<Currency>,
    #[serde(default, deserialize_with = "de_opt_input")]
    input: Option<Rate>,
    #[serde(default, deserialize_with = "de_opt_output")]
    output: Option<Rate>,
    #[serde(default, deserialize_with = "de_opt_cached_input")]
    cached_input: Option<Rate>,
    #[serde(default, deserialize_with = "de_opt_cache_write")]
    cache_write: Option<Rate>,
    #[serde(default, deserialize_with = "de_opt_reasoning")]
    reasoning: Option<Rate>,
    #[serde(default, deserialize_with = "de_opt_tier_mode")]
    tier_mode: Option<TierMode>,
    #[serde(default, deserialize_with = "de_opt_tiers")]
    tiers: Option<Vec<Band>>,
    #[serde(default)]
    free_input_tokens_per_call: u64,
    #[serde(default)]
    free_output_tokens_per_call: u64,
    #[serde(default)]
    price_date: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    unverified: bool,
}

impl RawModel {
    /// Cross-field checks serde cannot express.
    fn into_price(self, key: &str) -> Result<ModelPrice, String> {
        let display_name = self
            .display_name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| key.trim().to_string());
        let currency = self.currency.unwrap_or(Currency::CNY);
        let base = |input: Rate, output: Rate, cached_input: Option<Rate>| ModelPrice {
            display_name: display_name.clone(),
            currency,
            input,
            output,
            cached_input,
            cache_write: self.cache_write,
            reasoning: self.reasoning,
            tiers: Tiers::Flat,
            free_input_tokens_per_call: self.free_input_tokens_per_call,
            free_output_tokens_per_call: self.free_output_tokens_per_call,
            price_date: self.price_date.clone(),
            source: self.source.clone(),
            unverified: self.unverified,
        };
        match (self.tier_mode, self.tiers.clone()) {
            (None, None) => {
                let input = self
                    .input
                    .ok_or("missing field `input` (price per 1K input tokens)")?;
                let output = self
                    .output
                    .ok_or("missing field `output` (price per 1K output tokens)")?;
                Ok(base(input, output, self.cached_input))
            }
            (Some(_), None) => Err("field `tier_mode` needs `tiers` (a list of bands)".into()),
            (None, Some(_)) => {
                Err("field `tiers` needs `tier_mode` = \"graduated\" or \"by_request_size\"".into())
            }
            (Some(mode), Some(bands)) => {
                for (field, set) in [
                    ("input", self.input.is_some()),
                    ("output", self.output.is_some()),
                    ("cached_input", self.cached_input.is_some()),
                    ("cache_write", self.cache_write.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "field `{field}` is not allowed together with `tiers`; \
                             give the prices in each band"
                        ));
                    }
                }
                let tiers = match mode {
                    TierMode::Graduated => Tiers::Graduated(bands),
                    TierMode::ByRequestSize => Tiers::ByRequestSize(bands),
                };
                Ok(base(Rate::ZERO, Rate::ZERO, None).tiered(tiers))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Field deserialisers: they name the field in their errors.
// ---------------------------------------------------------------------------

fn de_opt_input<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
    rate_field(d, "input").map(Some)
}

fn de_opt_output<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
    rate_field(d, "output").map(Some)
}

fn de_opt_reasoning<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
    rate_field(d, "reasoning").map(Some)
}

fn de_opt_currency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Currency>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().eq_ignore_ascii_case("rmb") {
        // Three letters, so Currency would accept it, but it would split
        // reports into "RMB" and "CNY" columns.
        return Err(D::Error::custom(
            "field `currency`: \"RMB\" is not an ISO code; use \"CNY\"",
        ));
    }
    Currency::new(&s).map(Some).ok_or_else(|| {
        D::Error::custom(format_args!(
            "field `currency`: invalid currency code {s:?}; expected three letters such as CNY or USD"
        ))
    })
}

fn de_opt_tier_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TierMode>, D::Error> {
    let s = String::deserialize(d)?;
    match s.trim() {
        "graduated" => Ok(Some(TierMode::Graduated)),
        "by_request_size" => Ok(Some(TierMode::ByRequestSize)),
        other => Err(D::Error::custom(format_args!(
            "field `tier_mode`: unknown mode {other:?}; expected \"graduated\" or \"by_request_size\""
        ))),
    }
}

fn de_opt_tiers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Band>>, D::Error> {
    let bands = Vec::<Band>::deserialize(d)?;
    validate_bands(&bands, true)
        .map_err(|reason| D::Error::custom(format_args!("field `tiers`: {reason}")))?;
    Ok(Some(bands))
}
