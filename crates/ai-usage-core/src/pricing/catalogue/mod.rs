//! The genai-prices catalogue: provider and model matching, usage extraction
//! from provider responses, and exact USD prices.
//!
//! The snapshot in `data/genai-prices/` (MIT, © Pydantic Services Inc.; see
//! its README) is embedded at compile time and parsed on first use by
//! [`Catalogue::builtin`]. [`Catalogue::from_json`] loads another file of the
//! same format.
//!
//! # Resolving a model
//!
//! [`Catalogue::lookup`] takes an optional provider hint and a model name.
//! The hint is tried as a provider id, then against each provider's
//! `api_pattern` (a base URL such as `https://api.openai.com/v1`, matched from
//! its start), then against each `provider_match` rule. A recognised provider
//! is searched first-match-wins in its model list, then in its
//! `fallback_model_providers` (Azure → OpenAI, Anthropic). Without a hint,
//! every provider whose `model_match` accepts the name is searched in
//! catalogue order. A hint that names no provider of the catalogue (DashScope,
//! a private gateway) resolves nothing: such providers often host other
//! vendors' models at their own prices and currency, so guessing from the
//! model name could misprice; callers that want the guess ask again without a
//! hint. Matching ignores case. Results
//! (misses included) are cached per (hint, name) — up to
//! [`MAX_CACHED_NAMES`] of them — so pricing a known name costs two hash
//! lookups under a read lock.
//!
//! # Money
//!
//! Costs are `i64` nano-units (1e-9) of the provider's currency (USD unless
//! the provider names another): a 10-token `text-embedding-3-small` call costs
//! 200 nano-USD, which micro-units would round to 0. `i64` nano-units reach
//! ±9.2e9 units, far beyond any single call, and keep a quote `Copy` and
//! cheap; sums over many calls belong in wider integers (the caller's
//! concern). Prices are read exactly from the JSON text (never through a
//! binary float) as integers of 1e-18 per million tokens, costs are computed
//! in `i128`, and each part is rounded half up once; see [`PartCosts`].
//!
//! # Usage semantics
//!
//! [`CatalogueUsage::input_tokens`] counts **every** input token: cached,
//! cache-written and audio ones included. The extractors take care of it
//! (Anthropic's `input_tokens` excludes cache reads and writes, so its
//! extractor adds them; OpenAI's `prompt_tokens` already includes cached
//! tokens). Pricing then splits input into disjoint parts, each at its own
//! rate: uncached text, cache read, cache write, uncached audio, cached audio.
//! `output_tokens` likewise includes audio output and reasoning tokens.
//!
//! # Tiers and conditional prices
//!
//! Tiered prices follow the schema's cliff rule: once the call's total input
//! tokens exceed a tier's `start`, every token of that part pays the tier
//! price. A model with conditional prices uses the last set whose constraint
//! holds at the call's timestamp (`start_date`: from that UTC date on;
//! `start_time`/`end_time`: a daily UTC window, end exclusive), or the first
//! set when none holds.

use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use regex_lite::Regex;
use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::money::Currency;

mod data;
mod extract;
mod matching;
mod price;

pub use extract::ExtractedUsage;
pub use price::{PartCost, PartCosts, PriceEntry};

use data::RawProvider;
use extract::Extractor;
use matching::{compile_regex, Matcher};
use price::ModelPrices;

/// The date of the embedded genai-prices snapshot.
pub const BUILTIN_SNAPSHOT_DATE: &str = "2026-08-21";

/// The embedded snapshot (genai-prices `data_slim.json`, 2026-08-21).
const BUILTIN_JSON: &str = include_str!("../../../data/genai-prices/data_slim.json");

/// The cache key of [`Catalogue::lookup_anywhere`]'s second pass (no
/// provider id, URL or name can contain a NUL).
const ANYWHERE_HINT: &str = "\0anywhere";

/// How many distinct (provider hint, model name) resolutions are cached;
/// beyond it, new names are resolved on every call instead of growing memory.
pub const MAX_CACHED_NAMES: usize = 16_384;

/// Token usage of one call, as the catalogue prices it.
///
/// `input_tokens` counts every input token (cached, cache-written and audio
/// ones included); `cache_read_tokens`, `cache_write_tokens` and
/// `input_audio_tokens` are parts of it, and `cache_audio_read_tokens` is part
/// of both `cache_read_tokens` and `input_audio_tokens`. `output_tokens`
/// includes `output_audio_tokens` and `reasoning_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueUsage {
    /// All input tokens.
    pub input_tokens: u64,
    /// Input tokens read from the cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the cache.
    pub cache_write_tokens: u64,
    /// Audio input tokens (cached ones included).
    pub input_audio_tokens: u64,
    /// Audio input tokens read from the cache.
    pub cache_audio_read_tokens: u64,
    /// All output tokens.
    pub output_tokens: u64,
    /// Audio output tokens.
    pub output_audio_tokens: u64,
    /// Reasoning ("thinking") tokens, part of `output_tokens`; reported, not
    /// priced separately.
    pub reasoning_tokens: u64,
    /// Requests this usage covers (1 by default), for per-request fees.
    pub requests: u32,
}

impl Default for CatalogueUsage {
    fn default() -> Self {
        CatalogueUsage {
            input_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            input_audio_tokens: 0,
            cache_audio_read_tokens: 0,
            output_tokens: 0,
            output_audio_tokens: 0,
            reasoning_tokens: 0,
            requests: 1,
        }
    }
}

/// The catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Not JSON, or not the genai-prices format (including price kinds or
    /// usage fields this engine does not implement).
    #[error("catalogue does not follow the genai-prices format: {0}")]
    Format(#[from] serde_json::Error),
    /// A regex does not compile.
    #[error("{what}: regex {pattern:?} does not compile: {reason}")]
    Regex {
        /// Where in the catalogue.
        what: String,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// A value is well-formed JSON but not usable.
    #[error("{what}: {reason}")]
    Invalid {
        /// Where in the catalogue.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

/// A catalogue file does not load; says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}{}{}{message}",
    if *.line > 0 { format!("line {}, column {}: ", .line, .column) } else { String::new() },
    .entry.as_ref().map(|e| format!("{e}: ")).unwrap_or_default(),
    .field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default()
)]
pub struct LocatedCatalogueError {
    /// 1-based line (0 when the problem is not at one place in the text).
    pub line: usize,
    /// 1-based column (0 with `line`).
    pub column: usize,
    /// The provider and model, e.g. `provider "acme", model "acme-1"`.
    pub entry: Option<String>,
    /// The field path inside the entry, e.g. `prices.input_mtok`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// serde_json's message without its " at line L column C" suffix.
fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// Turns a path such as `[2].models[5].prices.input_mtok` into the entry
/// (`provider "x", model "y"`, ids read from the text) and the field
/// inside it (`prices.input_mtok`).
fn name_entry(json: &str, path: &serde_path_to_error::Path) -> (Option<String>, Option<String>) {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some(Segment::Seq { index: p }) = segments.first() else {
        return (None, None);
    };
    // The text is valid JSON whenever serde got as far as a field.
    let doc: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let provider = doc.get(*p);
    let id_of = |v: Option<&Value>, i: usize| {
        v.and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", i + 1), |s| format!("{s:?}"))
    };
    let mut entry = format!("provider {}", id_of(provider, *p));
    let mut rest = &segments[1..];
    if let [Segment::Map { key }, Segment::Seq { index: m }, tail @ ..] = rest {
        if key == "models" {
            let model = provider
                .and_then(|v| v.get("models"))
                .and_then(|v| v.get(*m));
            entry.push_str(&format!(", model {}", id_of(model, *m)));
            rest = tail;
        }
    }
    let field: Vec<String> = rest
        .iter()
        .map(|s| match s {
            Segment::Seq { index } => format!("[{index}]"),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_owned(),
        })
        .collect();
    let field = (!field.is_empty()).then(|| field.join(".").replace(".[", "["));
    (Some(entry), field)
}

/// A call could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// No model of the catalogue matches.
    #[error("model {model:?} (provider {provider:?}) is not in the catalogue")]
    UnknownModel {
        /// The provider hint given.
        provider: Option<String>,
        /// The model name given.
        model: String,
    },
    /// The usage's parts exceed their whole (e.g. more cache reads than input).
    #[error("inconsistent usage: {0}")]
    InconsistentUsage(&'static str),
    /// The cost does not fit 64-bit nano-units.
    #[error("cost overflows 64-bit nano-units")]
    Overflow,
}

/// Usage could not be read from a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// No provider matches the given id, URL or name.
    #[error("no provider matches {0:?}")]
    UnknownProvider(String),
    /// The provider has no extractors.
    #[error("provider {0:?} has no usage extractors")]
    NoExtractors(String),
    /// The provider has no extractor for this API flavour.
    #[error("provider {provider:?} has no API flavour {flavour:?}; it has: {allowed}")]
    UnknownFlavour {
        /// Provider id.
        provider: String,
        /// Flavour asked for.
        flavour: String,
        /// Flavours available.
        allowed: String,
    },
    /// No flavour given, and the provider has several but no `default`.
    #[error("provider {provider:?} needs an API flavour, one of: {allowed}")]
    AmbiguousFlavour {
        /// Provider id.
        provider: String,
        /// Flavours available.
        allowed: String,
    },
    /// A required value is absent.
    #[error("missing value at `{path}`")]
    Missing {
        /// Dotted path in the body.
        path: String,
    },
    /// A value has the wrong JSON type.
    #[error("value at `{path}` is not {expected}")]
    WrongType {
        /// Dotted path in the body.
        path: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The usage object holds none of the mapped values.
    #[error("no usage information found at `{path}`")]
    NoUsage {
        /// Dotted path of the usage root.
        path: String,
    },
    /// A token count sum overflows 64 bits.
    #[error("token counts overflow 64 bits")]
    TooLarge,
}

#[derive(Debug)]
struct Provider {
    id: Box<str>,
    name: Box<str>,
    api_pattern: Regex,
    model_match: Option<Matcher>,
    provider_match: Option<Matcher>,
    extractors: Box<[Extractor]>,
    fallbacks: Box<[usize]>,
    currency: Currency,
    models: Box<[Model]>,
}

#[derive(Debug)]
struct Model {
    id: Box<str>,
    name: Option<Box<str>>,
    matcher: Matcher,
    context_window: Option<u64>,
    deprecated: bool,
    prices: ModelPrices,
}

/// (provider index, model index) of a resolution.
type Slot = Option<(u32, u32)>;

#[derive(Debug, Default)]
struct ResolutionCache {
    /// provider hint ("" for none) → model name as given → resolution.
    by_hint: FxHashMap<Box<str>, FxHashMap<Box<str>, Slot>>,
    len: usize,
}

/// A loaded catalogue. Cheap to share (`&'static` for the built-in one).
#[derive(Debug)]
pub struct Catalogue {
    providers: Box<[Provider]>,
    cache: RwLock<ResolutionCache>,
}

/// A model of the catalogue, as resolved by [`Catalogue::lookup`].
#[derive(Debug, Clone, Copy)]
pub struct ModelMatch<'a> {
    provider: &'a Provider,
    model: &'a Model,
}

impl<'a> ModelMatch<'a> {
    /// Provider id, e.g. `"anthropic"`.
    pub fn provider_id(&self) -> &'a str {
        &self.provider.id
    }

    /// Provider display name, e.g. `"Anthropic"`.
    pub fn provider_name(&self) -> &'a str {
        &self.provider.name
    }

    /// Model id, e.g. `"claude-sonnet-4-5"`.
    pub fn model_id(&self) -> &'a str {
        &self.model.id
    }

    /// Model display name, when the catalogue has one.
    pub fn model_name(&self) -> Option<&'a str> {
        self.model.name.as_deref()
    }

    /// The model's name in the catalogue, else one made from its id (the
    /// slim catalogue has no names): `gpt-4o-mini` → "GPT-4o Mini",
    /// `gemini-2.0-flash` → "Gemini 2.0 Flash"; ids of the `o1-mini` kind
    /// stay as they are.
    pub fn display_name(&self) -> String {
        self.model_name()
            .map_or_else(|| display_name_of_id(self.model_id()), str::to_string)
    }

    /// Maximum input tokens, when known.
    pub fn context_window(&self) -> Option<u64> {
        self.model.context_window
    }

    /// Every model of this model's provider (itself included), in
    /// catalogue order: the like-for-like alternatives of a model.
    pub fn siblings(&self) -> impl Iterator<Item = ModelMatch<'a>> {
        let provider = self.provider;
        provider
            .models
            .iter()
            .map(move |model| ModelMatch { provider, model })
    }

    /// Deprecated by the provider but still served.
    pub fn deprecated(&self) -> bool {
        self.model.deprecated
    }

    /// Currency of the prices (USD unless the provider names another).
    pub fn currency(&self) -> Currency {
        self.provider.currency
    }

    /// The model's price sets with when each applies (dated price changes,
    /// daily windows), in catalogue order.
    pub fn price_history(&self) -> Vec<PriceEntry> {
        self.model.prices.history()
    }

    /// The text prices in force at `at` in the table's terms: one band per
    /// input-size tier (a single unbounded band when the price is flat).
    /// `None` when the model has no input or output price (e.g. a
    /// per-request price only).
    pub fn bands_at(&self, at: DateTime<Utc>) -> Option<Vec<crate::pricing::rate::Band>> {
        self.model.prices.at(at).as_bands()
    }

    /// Prices `usage` with the price set in force at `at`.
    pub fn quote(
        &self,
        usage: &CatalogueUsage,
        at: DateTime<Utc>,
    ) -> Result<CatalogueQuote<'a>, PriceError> {
        let parts = price::cost(self.model.prices.at(at), usage)?;
        let total_nanos = parts
            .iter()
            .try_fold(0i64, |sum, (_, p)| sum.checked_add(p.nanos))
            .ok_or(PriceError::Overflow)?;
        Ok(CatalogueQuote {
            model: *self,
            currency: self.provider.currency,
            parts,
            total_nanos,
        })
    }
}

/// The exact cost of one call.
#[derive(Debug, Clone, Copy)]
pub struct CatalogueQuote<'a> {
    /// The model that priced it.
    pub model: ModelMatch<'a>,
    /// Currency of every amount here.
    pub currency: Currency,
    /// Cost per part, nano-units.
    pub parts: PartCosts,
    /// Sum of the parts, nano-units (1e-9) of `currency`.
    pub total_nanos: i64,
}

static BUILTIN: OnceLock<Result<Catalogue, CatalogueError>> = OnceLock::new();

impl Catalogue {
    /// The embedded snapshot, parsed on first use (thread-safe, once).
    pub fn builtin() -> Result<&'static Catalogue, &'static CatalogueError> {
        BUILTIN
            .get_or_init(|| {
                let started = Instant::now();
                let loaded = Catalogue::from_json(BUILTIN_JSON);
                match &loaded {
                    Ok(c) => tracing::debug!(
                        providers = c.providers.len(),
                        models = c.providers.iter().map(|p| p.models.len()).sum::<usize>(),
                        micros = started.elapsed().as_micros() as u64,
                        "genai-prices catalogue loaded"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "embedded genai-prices catalogue does not load")
                    }
                }
                loaded
            })
            .as_ref()
    }

    /// Loads a catalogue in the genai-prices `data_slim.json` format.
    pub fn from_json(json: &str) -> Result<Catalogue, CatalogueError> {
        let raw: Vec<RawProvider> = serde_json::from_str(json)?;
        Catalogue::compile(&raw)
    }

    /// Like [`Catalogue::from_json`], for files users write: an error names
    /// the entry (`provider "x", model "y"`) and the field path inside it
    /// (`prices.input_mtok`), with the line and column. Slower than
    /// `from_json` only when the file is wrong.
    pub fn from_json_located(json: &str) -> Result<Catalogue, LocatedCatalogueError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let raw: Vec<RawProvider> = match serde_path_to_error::deserialize(&mut de) {
            Ok(raw) => raw,
            Err(e) => {
                let (entry, field) = name_entry(json, e.path());
                let inner = e.into_inner();
                return Err(LocatedCatalogueError {
                    line: inner.line(),
                    column: inner.column(),
                    entry,
                    field,
                    message: strip_position(&inner),
                });
            }
        };
        Catalogue::compile(&raw).map_err(|e| {
            let (entry, message) = match e {
                CatalogueError::Regex {
                    what,
                    pattern,
                    reason,
                } => (
                    Some(what),
                    format!("regex {pattern:?} does not compile: {reason}"),
                ),
                CatalogueError::Invalid { what, reason } => (Some(what), reason),
                CatalogueError::Format(e) => (None, e.to_string()),
            };
            LocatedCatalogueError {
                line: 0,
                column: 0,
                entry,
                field: None,
                message,
            }
        })
    }

    fn compile(raw: &[RawProvider]) -> Result<Catalogue, CatalogueError> {
        let mut providers = Vec::with_capacity(raw.len());
        for p in raw {
            providers.push(compile_provider(p)?);
        }
        // Fallback providers are ids; resolve them once all are known.
        for (i, p) in raw.iter().enumerate() {
            let mut fallbacks = Vec::with_capacity(p.fallback_model_providers.len());
            for id in &p.fallback_model_providers {
                let idx = providers
                    .iter()
                    .position(|q: &Provider| *q.id == **id)
                    .ok_or_else(|| CatalogueError::Invalid {
                        what: format!("provider {:?}", p.id),
                        reason: format!("unknown fallback provider {id:?}"),
                    })?;
                fallbacks.push(idx);
            }
            providers[i].fallbacks = fallbacks.into();
        }
        if u32::try_from(providers.len()).is_err()
            || providers
                .iter()
                .any(|p| u32::try_from(p.models.len()).is_err())
        {
            return Err(CatalogueError::Invalid {
                what: "catalogue".to_owned(),
                reason: "too many providers or models".to_owned(),
            });
        }
        Ok(Catalogue {
            providers: providers.into(),
            cache: RwLock::new(ResolutionCache::default()),
        })
    }

    /// Resolves a model name, with an optional provider hint (id, API base
    /// URL or name). See the module docs for the order of the rules.
    pub fn lookup(&self, provider: Option<&str>, model: &str) -> Option<ModelMatch<'_>> {
        let hint = provider.unwrap_or("");
        let cached = self
            .cache
            .read()
            .by_hint
            .get(hint)
            .and_then(|m| m.get(model))
            .copied();
        let slot = match cached {
            Some(slot) => slot,
            None => {
                let slot = self.resolve(hint, model);
                let mut cache = self.cache.write();
                if cache.len < MAX_CACHED_NAMES {
                    let names = cache.by_hint.entry(hint.into()).or_default();
                    if names.insert(model.into(), slot).is_none() {
                        cache.len += 1;
                    }
                }
                slot
            }
        };
        slot.map(|(p, m)| self.at(p as usize, m as usize))
    }

    /// Resolves a model name without a provider: first like
    /// [`Catalogue::lookup`] without a hint, then — for names no provider's
    /// `model_match` claims, such as `text-embedding-3-small` — in the model
    /// lists of all providers, first-party ones (without fallback providers)
    /// before resellers such as Azure. Cached like `lookup`.
    pub fn lookup_anywhere(&self, model: &str) -> Option<ModelMatch<'_>> {
        self.lookup(None, model)
            .or_else(|| self.lookup(Some(ANYWHERE_HINT), model))
    }

    /// Looks the model up and prices `usage` at `at`.
    pub fn price(
        &self,
        provider: Option<&str>,
        model: &str,
        usage: &CatalogueUsage,
        at: DateTime<Utc>,
    ) -> Result<CatalogueQuote<'_>, PriceError> {
        self.lookup(provider, model)
            .ok_or_else(|| PriceError::UnknownModel {
                provider: provider.map(str::to_owned),
                model: model.to_owned(),
            })?
            .quote(usage, at)
    }

    /// Reads model name and usage from a provider's response body.
    ///
    /// `provider` is resolved like a lookup hint (id, API URL or name).
    /// Without `flavour`, the provider's `default` extractor is used, or its
    /// only one.
    pub fn extract(
        &self,
        provider: &str,
        flavour: Option<&str>,
        body: &Value,
    ) -> Result<ExtractedUsage, ExtractError> {
        let p = self
            .find_provider(provider)
            .map(|i| &self.providers[i])
            .ok_or_else(|| ExtractError::UnknownProvider(provider.to_owned()))?;
        if p.extractors.is_empty() {
            return Err(ExtractError::NoExtractors(p.id.to_string()));
        }
        let allowed = || {
            p.extractors
                .iter()
                .map(|e| &*e.flavour)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let extractor = match flavour {
            Some(f) => p
                .extractors
                .iter()
                .find(|e| &*e.flavour == f)
                .ok_or_else(|| ExtractError::UnknownFlavour {
                    provider: p.id.to_string(),
                    flavour: f.to_owned(),
                    allowed: allowed(),
                })?,
            None => match p.extractors.iter().find(|e| &*e.flavour == "default") {
                Some(e) => e,
                None if p.extractors.len() == 1 => &p.extractors[0],
                None => {
                    return Err(ExtractError::AmbiguousFlavour {
                        provider: p.id.to_string(),
                        allowed: allowed(),
                    })
                }
            },
        };
        extractor.extract(body)
    }

    /// Every model of every provider, in catalogue order.
    pub fn models(&self) -> impl Iterator<Item = ModelMatch<'_>> {
        self.providers.iter().flat_map(|provider| {
            provider
                .models
                .iter()
                .map(move |model| ModelMatch { provider, model })
        })
    }

    /// Provider ids with their API flavours, in catalogue order.
    pub fn providers(&self) -> impl Iterator<Item = (&str, Vec<&str>)> {
        self.providers
            .iter()
            .map(|p| (&*p.id, p.extractors.iter().map(|e| &*e.flavour).collect()))
    }

    fn at(&self, p: usize, m: usize) -> ModelMatch<'_> {
        let provider = &self.providers[p];
        ModelMatch {
            provider,
            model: &provider.models[m],
        }
    }

    /// Provider index for a hint: id, then API URL pattern, then rule.
    fn find_provider(&self, hint: &str) -> Option<usize> {
        let lower = hint.trim().to_lowercase();
        if lower.is_empty() {
            return None;
        }
        let ps = &self.providers;
        ps.iter()
            .position(|p| *p.id == *lower)
            .or_else(|| ps.iter().position(|p| p.api_pattern.is_match(&lower)))
            .or_else(|| {
                ps.iter().position(|p| {
                    p.provider_match
                        .as_ref()
                        .is_some_and(|m| m.is_match(&lower))
                })
            })
    }

    /// First matching model of provider `p`, then of its fallbacks.
    fn find_model(&self, p: usize, lower: &str) -> Slot {
        let provider = &self.providers[p];
        let own = provider
            .models
            .iter()
            .position(|m| m.matcher.is_match(lower))
            .map(|m| (p, m));
        own.or_else(|| {
            provider.fallbacks.iter().find_map(|&f| {
                self.providers[f]
                    .models
                    .iter()
                    .position(|m| m.matcher.is_match(lower))
                    .map(|m| (f, m))
            })
        })
        .map(|(p, m)| (p as u32, m as u32))
    }

    fn resolve(&self, hint: &str, model: &str) -> Slot {
        let lower = model.trim().to_lowercase();
        if hint == ANYWHERE_HINT {
            let (first_party, resellers): (Vec<usize>, Vec<usize>) =
                (0..self.providers.len()).partition(|&p| self.providers[p].fallbacks.is_empty());
            return first_party.into_iter().chain(resellers).find_map(|p| {
                self.providers[p]
                    .models
                    .iter()
                    .position(|m| m.matcher.is_match(&lower))
                    .map(|m| (p as u32, m as u32))
            });
        }
        if !hint.trim().is_empty() {
            let found = self
                .find_provider(hint)
                .and_then(|p| self.find_model(p, &lower));
            if found.is_none() {
                tracing::debug!(
                    provider = hint,
                    model,
                    "model not in the genai-prices catalogue"
                );
            }
            return found;
        }
        let found = (0..self.providers.len())
            .filter(|&p| {
                self.providers[p]
                    .model_match
                    .as_ref()
                    .is_some_and(|m| m.is_match(&lower))
            })
            .find_map(|p| self.find_model(p, &lower));
        if found.is_none() {
            tracing::debug!(
                provider = hint,
                model,
                "model not in the genai-prices catalogue"
            );
        }
        found
    }
}

/// A display name made from a catalogue model id; see
/// [`ModelMatch::display_name`].
fn display_name_of_id(id: &str) -> String {
    let mut parts = id.split('-');
    let first = parts.next().unwrap_or_default();
    if first.len() > 1 && first.starts_with('o') && first[1..].bytes().all(|b| b.is_ascii_digit()) {
        return id.to_string();
    }
    let word = |w: &str| {
        let mut c = w.chars();
        match c.next() {
            Some(f) if w.bytes().all(|b| b.is_ascii_alphabetic()) => {
                f.to_uppercase().chain(c).collect::<String>()
            }
            _ => w.to_string(),
        }
    };
    let mut out = if first == "gpt" {
        // "GPT-4o": the version stays joined to the family.
        match parts.next() {
            Some(v) => format!("GPT-{v}"),
            None => "GPT".to_string(),
        }
    } else {
        word(first)
    };
    for p in parts {
        out.push(' ');
        out.push_str(&word(p));
    }
    out
}

/// Names a model in load errors without formatting it unless one occurs.
struct ModelPlace<'a> {
    provider: &'a str,
    model: &'a str,
}

impl fmt::Display for ModelPlace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider {:?}, model {:?}", self.provider, self.model)
    }
}

fn compile_provider(raw: &RawProvider) -> Result<Provider, CatalogueError> {
    let what = format!("provider {:?}", raw.id);
    // `api_pattern` identifies a base URL from its start.
    let api_pattern = compile_regex(
        &format!("^(?:{})", raw.api_pattern),
        &format_args!("{what} api_pattern"),
    )?;
    let currency = match &raw.currency {
        None => Currency::USD,
        Some(code) => Currency::new(code).ok_or_else(|| CatalogueError::Invalid {
            what: what.clone(),
            reason: format!("invalid currency {code:?}"),
        })?,
    };
    let mut models = Vec::with_capacity(raw.models.len());
    for m in &raw.models {
        let what = ModelPlace {
            provider: &raw.id,
            model: &m.id,
        };
        models.push(Model {
            id: m.id.as_str().into(),
            name: m.name.as_deref().map(Into::into),
            matcher: Matcher::compile(&m.matcher, &what)?,
            context_window: m.context_window,
            deprecated: m.deprecated,
            prices: ModelPrices::from_raw(&m.prices, &what)?,
        });
    }
    Ok(Provider {
        id: raw.id.to_lowercase().into(),
        name: raw.name.as_str().into(),
        api_pattern,
        model_match: raw
            .model_match
            .as_ref()
            .map(|c| Matcher::compile(c, &what))
            .transpose()?,
        provider_match: raw
            .provider_match
            .as_ref()
            .map(|c| Matcher::compile(c, &what))
            .transpose()?,
        extractors: raw
            .extractors
            .iter()
            .map(|e| Extractor::compile(e, &what))
            .collect::<Result<_, _>>()?,
        fallbacks: Box::new([]),
        currency,
        models: models.into(),
    })
}

#[cfg(test)]
mod tests;
