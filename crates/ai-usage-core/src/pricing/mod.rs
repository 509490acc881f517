//! Exact pricing of AI calls: (model, tokens) → [`Money`] in one [`Currency`].
//!
//! A [`PricingTable`] maps canonical model ids (lower-case, e.g. `qwen-plus`)
//! to a [`ModelPrice`]. [`PricingTable::builtin`] holds the list prices of the
//! common Chinese and international models; a pricing file (JSON or TOML) or
//! [`PricingTable::register`] adds or overrides entries.
//!
//! # Exactness
//!
//! A [`Rate`] is an integer count of nano-units (1e-9) per 1,000 tokens. The
//! cost of one call is `Σ tokens × rate` over its components (input, cached
//! input, output, reasoning) in 128-bit integers, converted to nano-units
//! (÷ 1,000) and rounded half-up **once** per call. Sums of calls are then
//! exact integer additions of [`Money`].
//!
//! # What is charged how
//!
//! - Cached input tokens (part of `input_tokens`) use `cached_input` when the
//!   model (or band) has one, else the input rate; cache-write tokens (also
//!   part of `input_tokens`) likewise use `cache_write`. Audio tokens are
//!   priced as input / output here (the table has no audio rates; the
//!   catalogue has).
//! - Reasoning tokens (part of `output_tokens`) use `reasoning` when set, else
//!   the output rate that applies to the call.
//! - Token order inside a call follows how providers build it: cached tokens
//!   are the prompt prefix and reasoning tokens precede the answer. Free
//!   allowances (`free_input_tokens_per_call`, `free_output_tokens_per_call`)
//!   cover the *first* tokens of each call, so they consume cached / reasoning
//!   tokens first.
//! - [`Tiers::Graduated`]: every input token is priced in the band its position
//!   falls in (`up_to` is cumulative). Output tokens use the output rate of the
//!   band the **last** input token falls in: the output is generated with the
//!   whole prompt as context, so the size of the prompt decides its price.
//! - [`Tiers::ByRequestSize`]: the request's `input_tokens` choose one band and
//!   all input and output tokens are priced at it (Qwen3-Max, Gemini and Claude
//!   long-context prices). A request larger than the last bounded band, when no
//!   unbounded band exists, is priced at the last band (the provider would
//!   normally reject it; under-reporting it as free would be worse).
//! - Models the table does not know are priced by the genai-prices
//!   [`catalogue`] (when enabled, as in [`PricingTable::builtin`]) in the
//!   provider's currency (USD), at the call's time; costs are exact in
//!   nano-units there and in a [`Quote`] (a 10-token embedding call is
//!   $0.0000002, not 0). The
//!   table's CNY models always keep their price; a non-CNY entry reached only
//!   by dropping `-…` suffixes yields to a catalogue model that claims the
//!   full name.
//! - Unknown model: a [`Quote`] with cost 0 in CNY and `priced: false`, plus a
//!   `tracing` warning once per distinct model name and table.
//!
//! # Model-name resolution
//!
//! Names are trimmed and lower-cased, then tried as: exact id; alias; after a
//! `provider/` prefix (`openai/gpt-4o`, `models/gemini-1.5-pro`); after an
//! OpenAI fine-tune `ft:` prefix; without an `@…` suffix (`…@001`); without a
//! `:…` suffix (`qwen2.5:7b`); and then dropping trailing `-…` parts one at a
//! time (`gpt-4o-mini-2024-07-18` → `gpt-4o-mini-2024-07` → … → `gpt-4o-mini`),
//! checking ids and aliases at every step. Exact hits never allocate; other
//! resolutions are memoised per table.
//!
//! # Pricing files
//!
//! [`PricingTable::load_file`] merges a `.toml` or `.json` file. Prices are per
//! 1K tokens in `currency` (default `CNY`). Model ids are case-insensitive;
//! ids containing dots must be quoted in TOML. TOML:
//!
//! ```toml
//! [models.my-model]
//! display_name = "我的模型"
//! currency = "CNY"          # default CNY
//! input = 0.01              # per 1K tokens
//! output = 0.03
//! cached_input = 0.002      # optional
//! cache_write = 0.0125      # optional; default: the input rate
//! reasoning = 0.03          # optional; default: the output rate
//! free_input_tokens_per_call = 0   # optional
//! price_date = "2025-09"    # optional
//! source = "contract 2025"  # optional
//! unverified = false        # optional; true: not checked against the
//!                           # provider's price page (savings leaves it out)
//!
//! # Tiered prices replace `input`/`output`/`cached_input` with bands.
//! [models."my-long-model"]
//! display_name = "长文本模型"
//! tier_mode = "by_request_size"    # or "graduated"
//! [[models."my-long-model".tiers]]
//! up_to = 32768
//! input = 0.006
//! output = 0.024
//! [[models."my-long-model".tiers]]  # no `up_to`: no upper bound
//! input = 0.010
//! output = 0.040
//!
//! [aliases]
//! my-model-latest = "my-model"
//! ```
//!
//! JSON has the same shape:
//!
//! ```json
//! {
//!   "models": {
//!     "my-model": { "display_name": "我的模型", "input": 0.01, "output": 0.03,
//!                   "cached_input": 0.002 },
//!     "gemini-x": { "currency": "USD", "tier_mode": "graduated",
//!                   "tiers": [ { "up_to": 128000, "input": 0.001, "output": 0.004 },
//!                              { "input": 0.002, "output": 0.008 } ] }
//!   },
//!   "aliases": { "my-model-latest": "my-model" }
//! }
//! ```
//!
//! A `.json` file in LiteLLM's `model_prices_and_context_window.json` format
//! (per-token USD prices, `litellm_provider`) is detected and converted; see
//! the `litellm` module.
//!
//! Unknown fields, negative prices, bad currency codes, unsorted or
//! overlapping bands and aliases to unknown models are errors naming the file,
//! line, column, model and field. A file that fails to load changes nothing.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};
use crate::record::usage::TokenUsage;
pub use rate::{Band, Rate};

pub mod catalogue;
mod file;
pub mod installed;
mod litellm;
pub(crate) mod rate;
#[cfg(test)]
mod tests;

/// The built-in CNY price table, a pricing file embedded at build time.
const BUILTIN_CNY_TOML: &str = include_str!("../../data/cny/prices.toml");

/// The built-in CNY table, parsed once with the rules of a user's file.
fn builtin_cny() -> Result<&'static file::Parsed, &'static PricingError> {
    static PARSED: std::sync::OnceLock<Result<file::Parsed, PricingError>> =
        std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| {
            file::parse_embedded_toml("<built-in>/data/cny/prices.toml", BUILTIN_CNY_TOML)
        })
        .as_ref()
}

/// Environment variable naming a pricing file for [`PricingTable::from_env_or_builtin`].
pub const PRICING_ENV: &str = "AI_USAGE_PRICING";

/// `Σ tokens × rate` is in units of 1e-24; this many make one nano-unit.
const SUM_PER_NANO: u128 = 1_000_000_000_000_000;

/// The suffix of a provider's free variant of a model (OpenRouter).
const FREE_SUFFIX: &str = ":free";

/// Memoised resolutions and warned names kept per table; bounded so that a
/// stream of distinct junk model names cannot grow memory without limit.
const MEMO_CAP: usize = 4096;

impl FromStr for Rate {
    type Err = PricingError;

    /// Parses a non-negative decimal price per 1K tokens (`"0.0008"`); up to
    /// 21 decimals are exact, other forms (`"8e-4"`) go through `f64`.
    fn from_str(s: &str) -> Result<Rate, PricingError> {
        let t = s.trim();
        rate::parse_decimal_rate(t)
            .or_else(|| t.parse::<f64>().ok().and_then(Rate::per_1k))
            .ok_or_else(|| PricingError::InvalidPrice {
                value: s.to_string(),
            })
    }
}

/// How a model's price depends on the size of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "bands", rename_all = "snake_case")]
pub enum Tiers {
    /// One price: the model's `input` / `output` / `cached_input`.
    #[default]
    Flat,
    /// Each input token priced in the band of its position (cumulative
    /// `up_to`); output at the band of the last input token.
    Graduated(Vec<Band>),
    /// The whole call priced at the band its input size falls in.
    ByRequestSize(Vec<Band>),
}

impl Tiers {
    /// The bands (empty for [`Tiers::Flat`]).
    pub fn bands(&self) -> &[Band] {
        match self {
            Tiers::Flat => &[],
            Tiers::Graduated(b) | Tiers::ByRequestSize(b) => b,
        }
    }

    /// Checks the bands: at least one, `up_to` positive and strictly
    /// increasing, and only the last band may be unbounded.
    pub fn validate(&self) -> Result<(), PricingError> {
        validate_bands(self.bands(), !matches!(self, Tiers::Flat))
            .map_err(|reason| PricingError::InvalidTiers { reason })
    }
}

/// Band rules shared by [`Tiers::validate`] and the file loader.
pub(crate) fn validate_bands(bands: &[Band], need_some: bool) -> Result<(), String> {
    if need_some && bands.is_empty() {
        return Err("at least one band is required".into());
    }
    let mut prev: Option<u64> = None;
    for (i, b) in bands.iter().enumerate() {
        let n = i + 1;
        match b.up_to {
            None if i + 1 != bands.len() => {
                return Err(format!(
                    "band {n} has no `up_to` but is not the last band (bands overlap)"
                ));
            }
            None => {}
            Some(0) => return Err(format!("band {n}: `up_to` must be positive")),
            Some(u) => {
                if let Some(p) = prev {
                    if u <= p {
                        return Err(format!(
                            "band {n}: `up_to` {u} is not above the previous band's {p} \
                             (bands must be sorted and must not overlap)"
                        ));
                    }
                }
                prev = Some(u);
            }
        }
    }
    Ok(())
}

/// The price of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Human-readable name, e.g. `通义千问-Plus`.
    pub display_name: String,
    /// Currency of every rate of this model.
    #[serde(default)]
    pub currency: Currency,
    /// Input rate (for tiered models: the first band's, for display).
    pub input: Rate,
    /// Output rate (for tiered models: the first band's, for display).
    pub output: Rate,
    /// Rate of cached input tokens; `None` = the input rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<Rate>,
    /// Rate of input tokens written to the prompt cache; `None` = the input
    /// rate (for tiered models: the first band's, for display).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<Rate>,
    /// Rate of reasoning tokens; `None` = priced as output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Rate>,
    /// Size-dependent prices; [`Tiers::Flat`] for most models.
    #[serde(default)]
    pub tiers: Tiers,
    /// The first this-many input tokens of each call are free.
    #[serde(default)]
    pub free_input_tokens_per_call: u64,
    /// The first this-many output tokens of each call are free.
    #[serde(default)]
    pub free_output_tokens_per_call: u64,
    /// When the price was taken, e.g. `"2025-09"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_date: Option<String>,
    /// Where the price comes from (price list, contract, seed …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// True when the price could not be checked against the provider's own
    /// published price page: savings advice leaves such a model out and says
    /// when it compares against one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

impl ModelPrice {
    /// A flat price from floats per 1K tokens.
    ///
    /// Invalid rates (negative, NaN, infinite) are logged and treated as 0;
    /// use [`ModelPrice::try_flat`] to reject them instead.
    pub fn flat(
        display_name: impl Into<String>,
        currency: Currency,
        input_per_1k: f64,
        output_per_1k: f64,
    ) -> ModelPrice {
        let display_name = display_name.into();
        let rate = |v: f64| {
            Rate::per_1k(v).unwrap_or_else(|| {
                tracing::warn!(model = %display_name, price = v, "invalid price treated as 0");
                Rate::ZERO
            })
        };
        let (input, output) = (rate(input_per_1k), rate(output_per_1k));
        ModelPrice::with_rates(display_name, currency, input, output)
    }

    /// Like [`ModelPrice::flat`], but an invalid rate is an error.
    pub fn try_flat(
        display_name: impl Into<String>,
        currency: Currency,
        input_per_1k: f64,
        output_per_1k: f64,
    ) -> Result<ModelPrice, PricingError> {
        let rate = |v: f64| {
            Rate::per_1k(v).ok_or_else(|| PricingError::InvalidPrice {
                value: v.to_string(),
            })
        };
        Ok(ModelPrice::with_rates(
            display_name,
            currency,
            rate(input_per_1k)?,
            rate(output_per_1k)?,
        ))
    }

    /// A flat price from exact rates.
    pub fn with_rates(
        display_name: impl Into<String>,
        currency: Currency,
        input: Rate,
        output: Rate,
    ) -> ModelPrice {
        ModelPrice {
            display_name: display_name.into(),
            currency,
            input,
            output,
            cached_input: None,
            cache_write: None,
            reasoning: None,
            tiers: Tiers::Flat,
            free_input_tokens_per_call: 0,
            free_output_tokens_per_call: 0,
            price_date: None,
            source: None,
            unverified: false,
        }
    }

    /// Sets the cached-input rate.
    pub fn cached(mut self, rate: Rate) -> ModelPrice {
        self.cached_input = Some(rate);
        self
    }

    /// Sets the cache-write rate.
    pub fn cache_write(mut self, rate: Rate) -> ModelPrice {
        self.cache_write = Some(rate);
        self
    }

    /// Sets the reasoning-token rate.
    pub fn reasoning(mut self, rate: Rate) -> ModelPrice {
        self.reasoning = Some(rate);
        self
    }

    /// Sets tiers; `input`/`output`/`cached_input`/`cache_write` become the
    /// first band's.
    pub fn tiered(mut self, tiers: Tiers) -> ModelPrice {
        if let Some(first) = tiers.bands().first() {
            self.input = first.input;
            self.output = first.output;
            self.cached_input = first.cached_input;
            self.cache_write = first.cache_write;
        }
        self.tiers = tiers;
        self
    }

    /// Sets the free input / output tokens per call.
    pub fn free_per_call(mut self, input_tokens: u64, output_tokens: u64) -> ModelPrice {
        self.free_input_tokens_per_call = input_tokens;
        self.free_output_tokens_per_call = output_tokens;
        self
    }

    /// Sets where the price comes from and when it was taken.
    pub fn sourced(
        mut self,
        source: impl Into<String>,
        price_date: impl Into<String>,
    ) -> ModelPrice {
        self.source = Some(source.into());
        self.price_date = Some(price_date.into());
        self
    }

    /// The exact cost of one call in this model's currency (rounded half-up
    /// to a nano-unit once).
    pub fn cost(&self, usage: &TokenUsage) -> Money {
        let sum = self.cost_sum(usage);
        // Rounded half up to the nearest nano-unit, once per call.
        let nanos = sum.saturating_add(SUM_PER_NANO / 2) / SUM_PER_NANO;
        Money::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// `Σ tokens × rate` over all components (units of 1e-24).
    fn cost_sum(&self, usage: &TokenUsage) -> u128 {
        let input = usage.input_tokens;
        let cached = usage.cached_input_tokens.min(input);
        let split = InputSplit {
            input,
            cached,
            written: cached.saturating_add(usage.cache_write_tokens).min(input),
            free: self.free_input_tokens_per_call.min(input),
        };
        let flat_band = Band {
            up_to: None,
            input: self.input,
            output: self.output,
            cached_input: self.cached_input,
            cache_write: self.cache_write,
        };
        let mut sum: u128 = 0;
        let out_band = match &self.tiers {
            Tiers::Graduated(bands) if !bands.is_empty() => {
                let mut lo = 0u64;
                for (i, b) in bands.iter().enumerate() {
                    // The last band takes everything above, bounded or not.
                    let hi = match b.up_to {
                        Some(u) if i + 1 < bands.len() => u,
                        _ => u64::MAX,
                    };
                    if hi <= lo {
                        continue; // unsorted band (only via `register`): empty range
                    }
                    sum = sum.saturating_add(split.cost_in(lo, hi, b));
                    lo = hi;
                }
                band_for(bands, input)
            }
            Tiers::ByRequestSize(bands) if !bands.is_empty() => {
                let b = band_for(bands, input);
                sum = split.cost_in(0, u64::MAX, b);
                b
            }
            _ => {
                sum = split.cost_in(0, u64::MAX, &flat_band);
                &flat_band
            }
        };
        let output = usage.output_tokens;
        let reasoning = usage.reasoning_tokens.min(output);
        let free = self.free_output_tokens_per_call.min(output);
        let billable_reasoning = reasoning.saturating_sub(free);
        let billable_answer = output - reasoning.max(free);
        let reasoning_rate = self.reasoning.unwrap_or(out_band.output);
        sum.saturating_add(mul(billable_reasoning, reasoning_rate))
            .saturating_add(mul(billable_answer, out_band.output))
    }
}

/// The band a request of `input` tokens (or the `input`-th token) falls in;
/// beyond the last bounded band, the last band.
fn band_for(bands: &[Band], input: u64) -> &Band {
    bands
        .iter()
        .find(|b| b.up_to.is_none_or(|u| input <= u))
        .or(bands.last())
        .unwrap_or(&FREE_BAND)
}

/// Only reached for empty band lists, which callers exclude.
static FREE_BAND: Band = Band {
    up_to: None,
    input: Rate::ZERO,
    output: Rate::ZERO,
    cached_input: None,
    cache_write: None,
};

fn mul(tokens: u64, rate: Rate) -> u128 {
    u128::from(tokens).saturating_mul(rate.0)
}

/// Input token positions 1..=input: cached tokens are the prefix 1..=cached,
/// cache-written tokens follow them up to `written` (the cache holds a
/// prefix of the prompt), free tokens are the prefix 1..=free.
struct InputSplit {
    input: u64,
    cached: u64,
    /// End of the cache-written positions (`cached + cache_write`, at most `input`).
    written: u64,
    free: u64,
}

impl InputSplit {
    /// Cost of the billable input tokens whose positions lie in `(lo, hi]`.
    fn cost_in(&self, lo: u64, hi: u64, band: &Band) -> u128 {
        let cached = overlap(lo, hi, self.free, self.cached);
        let written = overlap(lo, hi, self.free.max(self.cached), self.written);
        let fresh = overlap(lo, hi, self.free.max(self.written), self.input);
        mul(cached, band.cached_rate())
            .saturating_add(mul(written, band.cache_write_rate()))
            .saturating_add(mul(fresh, band.input))
    }
}

/// Size of the intersection of the position ranges `(a, b]` and `(c, d]`.
fn overlap(a: u64, b: u64, c: u64, d: u64) -> u64 {
    b.min(d).saturating_sub(a.max(c))
}

/// The price of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// Exact cost (0 for unknown models).
    pub cost: Money,
    /// Currency of `cost` (CNY for unknown models).
    pub currency: Currency,
    /// False when the model is unknown to the table.
    pub priced: bool,
}

impl Quote {
    /// The quote of an unknown model: 0 CNY, not priced.
    pub const UNPRICED: Quote = Quote {
        cost: Money::ZERO,
        currency: Currency::CNY,
        priced: false,
    };
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Largest pricing file read (bytes). The largest public price lists
/// (LiteLLM's, the genai-prices catalogue) are near 1-2 MiB.
pub const MAX_PRICING_FILE_BYTES: u64 = 4 << 20;

/// Most models one pricing file may price (LiteLLM's list has about 2,500).
pub const MAX_PRICING_MODELS: usize = 20_000;

/// Errors of the pricing engine and the pricing-file loader.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The pricing file could not be read.
    #[error("cannot read pricing file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is over [`MAX_PRICING_FILE_BYTES`] or prices more than
    /// [`MAX_PRICING_MODELS`] models.
    #[error("pricing file {}: {message}", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Which limit, and the file's figure.
        message: String,
    },
    /// The file name ends neither in `.json` nor in `.toml`.
    #[error("pricing file {}: unsupported format; the name must end in .json or .toml", .path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is malformed or its content is invalid.
    #[error(
        "pricing file {}, line {line}, column {column}: {}{message}",
        .path.display(),
        .model.as_ref().map(|m| format!("model `{m}`: ")).unwrap_or_default()
    )]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The model whose entry is wrong, when known.
        model: Option<String>,
        /// What is wrong, naming the field.
        message: String,
    },
    /// An alias points to a model the table does not have.
    #[error("alias `{alias}` points to unknown model `{target}`")]
    UnknownAliasTarget {
        /// The alias.
        alias: String,
        /// The missing target.
        target: String,
    },
    /// An alias would shadow a model id (ids win over aliases).
    #[error("alias `{alias}` is already the id of a model")]
    AliasIsModel {
        /// The alias.
        alias: String,
    },
    /// A price is not a non-negative number.
    #[error("invalid price {value:?}: expected a non-negative number per 1K tokens")]
    InvalidPrice {
        /// The offending text.
        value: String,
    },
    /// Tiers whose bands are missing, unsorted or overlapping.
    #[error("invalid tiers: {reason}")]
    InvalidTiers {
        /// What is wrong.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// Model prices keyed by canonical id, with aliases and name resolution.
///
/// `Clone + Send + Sync`; cheap to query from many threads (`&self`).
#[derive(Debug, Clone)]
pub struct PricingTable {
    /// Sorted by id, so [`PricingTable::models`] needs no sort.
    entries: Vec<(String, ModelPrice)>,
    /// id → position in `entries`.
    index: FxHashMap<String, usize>,
    /// Normalised alias → canonical id.
    aliases: FxHashMap<String, String>,
    memo: Memo,
    /// Fall back to the built-in genai-prices catalogue for models this
    /// table does not know (parsed lazily, on the first such model).
    catalogue: bool,
    /// Pricing files in the genai-prices format, the last loaded first:
    /// they win over the table and the built-in catalogue.
    user_catalogues: Vec<Arc<catalogue::Catalogue>>,
    /// A catalogue installed with `ai-usage pricing update`: it takes the
    /// built-in snapshot's place (see [`installed`]).
    installed: Option<Arc<installed::InstalledCatalogue>>,
}

/// Per-table memo of slow resolutions and of names already warned about.
#[derive(Debug, Default)]
struct Memo(RwLock<MemoInner>);

#[derive(Debug, Default, Clone)]
struct MemoInner {
    /// Raw model string → entry position (`None` = unknown).
    resolved: FxHashMap<String, Option<usize>>,
    /// Unknown model names already reported.
    warned: FxHashSet<String>,
}

impl Clone for Memo {
    fn clone(&self) -> Memo {
        Memo(RwLock::new(self.0.read().clone()))
    }
}

/// Shorter spellings of a model name for the catalogue, tried in order when
/// it does not know the name as given: first without one trailing part at a
/// time — an `@version` (`gemini-1.5-pro@002`), a `:tag` (`gpt-4o:latest`),
/// a date or `-latest` (`gpt-4o-mini-2099-01-01`, `…-0613`) — then each of
/// those without leading `provider/` segments (`models/gemini-2.5-flash`).
/// Never a shorter model name: `gpt-4o-mini-tts` does not become
/// `gpt-4o-mini`.
fn catalogue_name_variants(model: &str) -> Vec<String> {
    let full = normalise(model);
    let mut chain: Vec<String> = vec![full.clone()];
    let mut cur = full.as_str();
    loop {
        let shorter = strip_version_suffix(cur)
            .or_else(|| cur.rsplit_once('@').map(|(head, _)| head))
            .or_else(|| cur.rsplit_once(':').map(|(head, _)| head))
            .filter(|h| !h.is_empty());
        match shorter {
            Some(h) => {
                chain.push(h.to_string());
                cur = h;
            }
            None => break,
        }
    }
    let mut out: Vec<String> = chain.iter().skip(1).cloned().collect();
    for form in &chain {
        let mut rest = form.as_str();
        while let Some((_, tail)) = rest.split_once('/') {
            if tail.is_empty() {
                break;
            }
            out.push(tail.to_string());
            rest = tail;
        }
    }
    let mut seen = FxHashSet::default();
    out.retain(|v| v != &full && seen.insert(v.clone()));
    out
}

/// `name` without a trailing `-latest`, `-YYYY-MM-DD`, `-YYYYMMDD`,
/// `-YYMMDD` or `-MMDD` part (a dated snapshot), if it has one.
fn strip_version_suffix(name: &str) -> Option<&str> {
    if let Some(head) = name.strip_suffix("-latest") {
        return Some(head);
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYY-MM-DD
    let mut it = name.rsplitn(4, '-');
    if let (Some(d), Some(m), Some(y), Some(head)) = (it.next(), it.next(), it.next(), it.next()) {
        if digits(y, 4) && digits(m, 2) && digits(d, 2) {
            return Some(head);
        }
    }
    let (head, last) = name.rsplit_once('-')?;
    (digits(last, 8) || digits(last, 6) || digits(last, 4)).then_some(head)
}

/// Trim + lower-case, as the seed normalises model names.
fn normalise(model: &str) -> String {
    model.trim().to_lowercase()
}

impl Default for PricingTable {
    fn default() -> Self {
        PricingTable::empty()
    }
}

impl PricingTable {
    /// A table without models.
    pub fn empty() -> PricingTable {
        PricingTable {
            entries: Vec::new(),
            index: FxHashMap::default(),
            aliases: FxHashMap::default(),
            memo: Memo::default(),
            catalogue: false,
            user_catalogues: Vec::new(),
            installed: None,
        }
    }

    /// Turns the fallback to the built-in genai-prices catalogue on or off
    /// (on for [`PricingTable::builtin`], off for [`PricingTable::empty`]).
    pub fn with_catalogue(mut self, enabled: bool) -> PricingTable {
        self.catalogue = enabled;
        self.invalidate();
        self
    }

    /// True when models unknown to the table are looked up in the catalogue.
    pub fn uses_catalogue(&self) -> bool {
        self.catalogue
    }

    /// The catalogue entry that prices `model` for this table: first from
    /// the pricing files in the genai-prices format (the last loaded first),
    /// which win over the table; then from the built-in catalogue: with a
    /// `provider`, that provider's entry (an explicit provider wins over the
    /// table); without one, only for models the table does not know.
    pub fn catalogue_match(
        &self,
        provider: Option<&str>,
        model: &str,
    ) -> Option<catalogue::ModelMatch<'_>> {
        let provider = provider.map(str::trim).filter(|p| !p.is_empty());
        if let Some(m) = self.user_catalogue_match(provider, model) {
            return Some(m);
        }
        if !self.catalogue {
            return None;
        }
        if provider.is_none() && self.resolve(model).is_some() {
            return None;
        }
        let cat = self.base_catalogue()?;
        let find = |name: &str| match provider {
            Some(p) => cat.lookup(Some(p), name),
            None => cat.lookup_anywhere(name),
        };
        // The name as given first, so a model the catalogue knows by its
        // full name is never priced as another; then without the parts a
        // provider or a gateway adds to a name.
        find(model).or_else(|| catalogue_name_variants(model).iter().find_map(|n| find(n)))
    }

    /// The genai-prices catalogue that prices what the table does not: an
    /// installed one, else the built-in snapshot.
    fn base_catalogue(&self) -> Option<&catalogue::Catalogue> {
        if let Some(c) = self.installed.as_ref().and_then(|i| i.catalogue()) {
            return Some(c);
        }
        match catalogue::Catalogue::builtin() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "genai-prices catalogue unavailable");
                None
            }
        }
    }

    /// Puts an installed catalogue in the built-in snapshot's place (`None`:
    /// back to the snapshot). Only for a table that uses the catalogue
    /// ([`PricingTable::uses_catalogue`]); the table's own models and the
    /// user's pricing files keep winning over it.
    pub fn set_installed(&mut self, catalogue: Option<Arc<installed::InstalledCatalogue>>) {
        self.installed = catalogue;
        self.invalidate();
    }

    /// The installed catalogue in force, if any.
    pub fn installed(&self) -> Option<&installed::InstalledCatalogue> {
        self.installed.as_deref()
    }

    /// Which catalogue prices the models the table does not know: the
    /// installed one or the built-in snapshot, its date, age and size.
    pub fn catalogue_info(&self) -> installed::CatalogueInfo {
        match &self.installed {
            Some(i) => installed::CatalogueInfo::installed(i.info()),
            None => installed::CatalogueInfo::builtin(),
        }
    }

    /// The entry of a loaded genai-prices file that prices `model`.
    fn user_catalogue_match(
        &self,
        provider: Option<&str>,
        model: &str,
    ) -> Option<catalogue::ModelMatch<'_>> {
        self.user_catalogues.iter().find_map(|c| match provider {
            Some(p) => c.lookup(Some(p), model),
            None => c.lookup_anywhere(model),
        })
    }

    /// Adds a catalogue in the genai-prices format (what
    /// [`PricingTable::load_file`] does with such a file): its models win
    /// over the table's and the built-in catalogue's; a catalogue added later
    /// wins over one added earlier.
    pub fn add_catalogue(&mut self, catalogue: catalogue::Catalogue) {
        self.user_catalogues.insert(0, Arc::new(catalogue));
        self.invalidate();
    }

    /// The built-in table: the CNY models of `data/cny/prices.toml` (see
    /// `docs/pricing.md` for their sources and dates), with the genai-prices
    /// catalogue for every other model (USD).
    pub fn builtin() -> PricingTable {
        let mut t = PricingTable::empty().with_catalogue(true);
        match builtin_cny() {
            Ok(parsed) => {
                t.insert_all(parsed.models.clone());
                t.aliases.extend(parsed.aliases.iter().cloned());
            }
            // Checked by a test; never reached in a release, but recording
            // must not panic, so the table is left without CNY models.
            Err(e) => tracing::error!(error = %e, "built-in CNY price table unavailable"),
        }
        t
    }

    /// The built-in table merged with the file named by `AI_USAGE_PRICING`,
    /// when that variable is set and not empty. A bad file is an error.
    pub fn from_env_or_builtin() -> Result<PricingTable, PricingError> {
        let mut t = PricingTable::builtin();
        if let Some(path) = std::env::var_os(PRICING_ENV).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            let n = t.load_file(&path)?;
            tracing::info!(file = %path.display(), models = n, "loaded pricing file");
        }
        Ok(t)
    }

    /// Merges a `.json` or `.toml` pricing file (see the module docs); returns
    /// the number of models added or overridden. On error nothing changes.
    pub fn load_file(&mut self, path: &Path) -> Result<usize, PricingError> {
        let parsed = file::parse(path, self)?;
        if let Some(cat) = parsed.catalogue {
            let n = cat.models().count();
            self.add_catalogue(cat);
            return Ok(n);
        }
        let n = parsed.models.len();
        self.insert_all(parsed.models);
        for (alias, target) in parsed.aliases {
            self.aliases.insert(alias, target);
        }
        self.invalidate();
        Ok(n)
    }

    /// Adds or overrides a model. The id is trimmed and lower-cased; an alias
    /// of the same name is removed (ids win). Bands are not checked here
    /// (pricing never panics on bad bands); see [`Tiers::validate`].
    pub fn register(&mut self, model_id: &str, price: ModelPrice) {
        let id = normalise(model_id);
        if id.is_empty() {
            tracing::warn!("ignored a model price registered under an empty id");
            return;
        }
        self.insert_all(vec![(id, price)]);
        self.invalidate();
    }

    /// Makes `alias` resolve to `target` (an id or an existing alias).
    pub fn add_alias(&mut self, alias: &str, target: &str) -> Result<(), PricingError> {
        let a = normalise(alias);
        let t = normalise(target);
        let canonical = self
            .canonical_id(&t)
            .ok_or_else(|| PricingError::UnknownAliasTarget {
                alias: alias.to_string(),
                target: target.to_string(),
            })?
            .to_string();
        if self.index.contains_key(&a) {
            return Err(PricingError::AliasIsModel {
                alias: alias.to_string(),
            });
        }
        self.aliases.insert(a, canonical);
        self.invalidate();
        Ok(())
    }

    /// The canonical id and price of `model`, after name resolution: the
    /// table's own entry, else an installed LiteLLM catalogue's.
    pub fn resolve(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        self.lookup(model)
            .and_then(|i| self.entries.get(i))
            .map(|(id, p)| (id.as_str(), p))
            .or_else(|| {
                self.installed
                    .as_ref()
                    .and_then(|i| i.table())
                    .and_then(|t| t.resolve(model))
            })
    }

    /// The resolved model's display name; for a model the catalogue prices,
    /// [`catalogue::ModelMatch::display_name`]; else `model` unchanged.
    pub fn display_name(&self, model: &str) -> String {
        match self.resolve(model) {
            Some((_, p)) => p.display_name.clone(),
            None => match self.catalogue_match(None, model) {
                Some(m) => m.display_name(),
                None => model.to_string(),
            },
        }
    }

    /// The catalogue's price of `model` in force at `at`, in the table's
    /// terms, with the catalogue's model id: how listings (`ai-usage
    /// pricing`, `/models/pricing`) show a model the table leaves to the
    /// catalogue. `None` when the table prices `model` itself, the catalogue
    /// does not know it, or it has no per-token text price.
    pub fn catalogue_price(
        &self,
        model: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<(String, ModelPrice)> {
        let m = self.catalogue_match(None, model)?;
        let p = self.catalogue_model_price(&m, at)?;
        Some((m.model_id().to_string(), p))
    }

    /// The catalogue's other models of `model`'s provider (its own
    /// included), not deprecated and callable by their id, each with its text price in force at `at`
    /// in the table's terms: the like-for-like alternatives savings advice
    /// offers for a model the catalogue prices. Empty when the table prices
    /// `model` itself or no catalogue knows it.
    pub fn catalogue_siblings(
        &self,
        model: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(String, ModelPrice)> {
        let Some(m) = self.catalogue_match(None, model) else {
            return Vec::new();
        };
        m.siblings()
            // Only models a call can name: an entry such as `ft:gpt-4o-mini`
            // (fine-tuned models' rates) is no model to switch to.
            .filter(|s| {
                !s.deprecated()
                    && self
                        .catalogue_match(Some(s.provider_id()), s.model_id())
                        .is_some_and(|x| x.model_id() == s.model_id())
            })
            .filter_map(|s| {
                Some((
                    s.model_id().to_string(),
                    self.catalogue_model_price(&s, at)?,
                ))
            })
            .collect()
    }

    /// A catalogue model's text price in force at `at` as a table entry
    /// (`None`: no per-token text price).
    fn catalogue_model_price(
        &self,
        m: &catalogue::ModelMatch<'_>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<ModelPrice> {
        let bands = m.bands_at(at)?;
        let mut p = ModelPrice::with_rates(m.display_name(), m.currency(), Rate::ZERO, Rate::ZERO);
        match <[Band; 1]>::try_from(bands) {
            Ok([b]) => {
                p.input = b.input;
                p.output = b.output;
                p.cached_input = b.cached_input;
                p.cache_write = b.cache_write;
            }
            Err(bands) => p = p.tiered(Tiers::ByRequestSize(bands)),
        }
        p.source = Some(format!("genai-prices catalogue ({})", m.provider_name()));
        p.price_date = Some(self.catalogue_info().date.to_string());
        Some(p)
    }

    /// The currency the model is priced in, when known (the table's, else
    /// the catalogue's).
    pub fn currency_of(&self, model: &str) -> Option<Currency> {
        if let Some(m) = self.user_catalogue_match(None, model) {
            return Some(m.currency());
        }
        self.resolve(model)
            .map(|(_, p)| p.currency)
            .or_else(|| self.catalogue_match(None, model).map(|m| m.currency()))
    }

    /// Prices one call, now. The table's entry wins; models it does not know
    /// are priced by the catalogue (when enabled). Unknown models give
    /// [`Quote::UNPRICED`] and a warning once per distinct name.
    pub fn price(&self, model: &str, usage: &TokenUsage) -> Quote {
        if let Some(q) = self.free_variant(model) {
            return q;
        }
        // The table's prices do not depend on time: skip reading the clock
        // (unless a genai-prices file may claim the model first).
        if !self.user_catalogues.is_empty() {
            return self.price_at(None, model, usage, chrono::Utc::now());
        }
        if let Some((_, p)) = self.resolve(model) {
            return Quote {
                cost: p.cost(usage),
                currency: p.currency,
                priced: true,
            };
        }
        self.price_at(None, model, usage, chrono::Utc::now())
    }

    /// Prices one call at `at` (catalogue prices can change over time), with
    /// an optional provider (id, API base URL or name): a provider the
    /// catalogue knows picks its own entry for the model, over the table's.
    ///
    /// Catalogue costs are exact nano-units, as is the [`Quote`] (a 200
    /// nano-USD call stays 200); [`PricingTable::catalogue_match`] gives the
    /// cost of each part.
    pub fn price_at(
        &self,
        provider: Option<&str>,
        model: &str,
        usage: &TokenUsage,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Quote {
        self.price_when(provider, model, usage, || at)
    }

    /// [`PricingTable::price_at`] with the moment computed only when a
    /// catalogue price needs it (the table's prices do not depend on time),
    /// so recording a table model skips the timestamp conversion.
    pub(crate) fn price_when(
        &self,
        provider: Option<&str>,
        model: &str,
        usage: &TokenUsage,
        at: impl FnOnce() -> chrono::DateTime<chrono::Utc>,
    ) -> Quote {
        if let Some(q) = self.free_variant(model) {
            return q;
        }
        let table_first = provider.is_none_or(|p| p.trim().is_empty());
        if table_first && self.user_catalogue_match(None, model).is_none() {
            if let Some((_, p)) = self.resolve(model) {
                return Quote {
                    cost: p.cost(usage),
                    currency: p.currency,
                    priced: true,
                };
            }
        }
        if let Some(m) = self.catalogue_match(provider, model) {
            match m.quote(&catalogue::CatalogueUsage::from(usage), at()) {
                Ok(q) => {
                    return Quote {
                        cost: Money::from_nanos(q.total_nanos),
                        currency: q.currency,
                        priced: true,
                    }
                }
                Err(e) => tracing::warn!(model, error = %e, "catalogue could not price the call"),
            }
        }
        if !table_first {
            if let Some((_, p)) = self.resolve(model) {
                return Quote {
                    cost: p.cost(usage),
                    currency: p.currency,
                    priced: true,
                };
            }
        }
        self.warn_unknown(model);
        Quote::UNPRICED
    }

    /// Where [`PricingTable::price_at`] takes the price of `model` from, for
    /// an audit trail: the table entry with its source and date, a
    /// catalogue file, or the built-in catalogue with its snapshot date.
    pub fn price_source(&self, provider: Option<&str>, model: &str) -> String {
        if self.free_variant(model).is_some() {
            return "free variant (:free costs 0)".to_owned();
        }
        let from_table = |id: &str, p: &ModelPrice| {
            format!(
                "table {id}: {} ({})",
                p.source.as_deref().unwrap_or("no source"),
                p.price_date.as_deref().unwrap_or("no date")
            )
        };
        let table_first = provider.is_none_or(|p| p.trim().is_empty());
        if table_first && self.user_catalogue_match(None, model).is_none() {
            if let Some((id, p)) = self.resolve(model) {
                return from_table(id, p);
            }
        }
        if let Some(m) = self.catalogue_match(provider, model) {
            let which = if self.user_catalogue_match(provider, model).is_some() {
                "catalogue file".to_owned()
            } else {
                format!(
                    "genai-prices catalogue {}",
                    catalogue::BUILTIN_SNAPSHOT_DATE
                )
            };
            return format!("{which}: {} {}", m.provider_name(), m.model_id());
        }
        match self.resolve(model) {
            Some((id, p)) => from_table(id, p),
            None => "no price".to_owned(),
        }
    }

    /// Whether [`PricingTable::price_at`] has a price for `model` (asked
    /// without the warning an unknown model gives when priced).
    pub fn knows(&self, provider: Option<&str>, model: &str) -> bool {
        self.free_variant(model).is_some()
            || self.resolve(model).is_some()
            || self.catalogue_match(provider, model).is_some()
    }

    /// A `:free` variant (OpenRouter's `google/gemini-2.0-flash-exp:free`)
    /// costs 0: dropping the suffix would price the paid model. Its currency
    /// is the paid model's (USD when unknown). `None` for other names, and
    /// for a `:free` name the table prices under its own full id.
    fn free_variant(&self, model: &str) -> Option<Quote> {
        let t = model.trim();
        let head = t
            .len()
            .checked_sub(FREE_SUFFIX.len())
            .filter(|&i| t.is_char_boundary(i) && t[i..].eq_ignore_ascii_case(FREE_SUFFIX))
            .map(|i| &t[..i])?;
        if self.exact(&normalise(t)).is_some() {
            return None;
        }
        Some(Quote {
            cost: Money::ZERO,
            currency: self.currency_of(head).unwrap_or(Currency::USD),
            priced: true,
        })
    }

    /// All models, sorted by id.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.entries.iter().map(|(id, p)| (id.as_str(), p))
    }

    /// All aliases (alias, canonical id), sorted by alias.
    pub fn aliases(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .aliases
            .iter()
            .map(|(a, t)| (a.as_str(), t.as_str()))
            .collect();
        v.sort_unstable();
        v
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table has no models.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    // --- internals ---------------------------------------------------------

    /// Inserts or replaces entries, keeping `entries` sorted and `index` exact.
    fn insert_all(&mut self, models: Vec<(String, ModelPrice)>) {
        for (id, price) in models {
            self.aliases.remove(&id);
            match self.index.get(&id).and_then(|&i| self.entries.get_mut(i)) {
                Some(slot) => slot.1 = price,
                None => {
                    self.index.insert(id.clone(), self.entries.len());
                    self.entries.push((id, price));
                }
            }
        }
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i))
            .collect();
    }

    fn invalidate(&mut self) {
        self.memo.0.get_mut().resolved.clear();
    }

    /// Exact id or alias of an already-normalised name.
    fn exact(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied().or_else(|| {
            self.aliases
                .get(name)
                .and_then(|t| self.index.get(t.as_str()).copied())
        })
    }

    /// The canonical id of a normalised id or alias (no suffix stripping).
    pub(crate) fn canonical_id(&self, name: &str) -> Option<&str> {
        self.exact(name)
            .and_then(|i| self.entries.get(i))
            .map(|(id, _)| id.as_str())
    }

    /// Hot path: exact hits and memo hits do not allocate.
    fn lookup(&self, model: &str) -> Option<usize> {
        if let Some(i) = self.exact(model) {
            return Some(i);
        }
        if let Some(hit) = self.memo.0.read().resolved.get(model) {
            return *hit;
        }
        let found = self
            .resolve_slow(model)
            .filter(|&i| !self.catalogue_knows_better(model, i));
        let mut memo = self.memo.0.write();
        if memo.resolved.len() < MEMO_CAP {
            memo.resolved.insert(model.to_string(), found);
        }
        found
    }

    /// True when `model` reached the table's non-CNY entry `i` only by
    /// dropping `-…` parts and a provider of the catalogue claims the full
    /// name (`gemini-2.5-flash-lite` is not `gemini-2.5-flash`). The seed's
    /// CNY models always keep the table's price.
    fn catalogue_knows_better(&self, model: &str, i: usize) -> bool {
        if !self.catalogue {
            return false;
        }
        let Some((id, price)) = self.entries.get(i) else {
            return false;
        };
        if price.currency == Currency::CNY {
            return false;
        }
        let n = normalise(model);
        let base = n.rsplit_once('/').map_or(n.as_str(), |(_, rest)| rest);
        // Reached by the id itself, an alias, or an `@`/`:` suffix: the table's.
        let head = base.split(['@', ':']).next().unwrap_or(base);
        if head == id.as_str() || self.exact(head).is_some() {
            return false;
        }
        self.base_catalogue()
            .is_some_and(|cat| cat.lookup(None, model).is_some())
    }

    /// Normalisation and suffix stripping, as documented on the module.
    fn resolve_slow(&self, model: &str) -> Option<usize> {
        let n = normalise(model);
        let mut cur = n.as_str();
        let try_name = |name: &str| {
            if name.is_empty() {
                None
            } else {
                self.exact(name)
            }
        };
        if let Some(i) = try_name(cur) {
            return Some(i);
        }
        if let Some((_, rest)) = cur.rsplit_once('/') {
            cur = rest;
            if let Some(i) = try_name(cur) {
                return Some(i);
            }
        }
        if let Some(rest) = cur.strip_prefix("ft:") {
            cur = rest;
        }
        for sep in ['@', ':'] {
            if let Some((head, _)) = cur.split_once(sep) {
                cur = head;
                if let Some(i) = try_name(cur) {
                    return Some(i);
                }
            }
        }
        while let Some((head, _)) = cur.rsplit_once('-') {
            cur = head;
            if let Some(i) = try_name(cur) {
                return Some(i);
            }
        }
        None
    }

    fn warn_unknown(&self, model: &str) {
        if self.memo.0.read().warned.contains(model) {
            return;
        }
        let mut memo = self.memo.0.write();
        // Past the cap every call warns: noisy beats silent.
        let first = memo.warned.len() >= MEMO_CAP || memo.warned.insert(model.to_string());
        drop(memo);
        if first {
            tracing::warn!(model, "unknown model: cost recorded as 0 (priced = false)");
        }
    }
}
