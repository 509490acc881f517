//! Price catalogues installed in the records directory, so that a new model
//! is priced without a new release.
//!
//! `ai-usage pricing update` fetches a catalogue — the genai-prices
//! project's `data_slim.json`, or LiteLLM's
//! `model_prices_and_context_window.json` — and hands its bytes to
//! [`CatalogueStore::install`], which validates the whole file with the rules
//! of the built-in snapshot before anything on disk changes. The store lives
//! in `DIR/pricing/`:
//!
//! - `catalogue-<sha256 prefix>.json`: the installed files, as fetched;
//! - `manifest.json`: which file is in force and which one was in force
//!   before it (for [`CatalogueStore::rollback`]), each with its source, fetch
//!   time, date, SHA-256 and model count. `null` stands for the built-in
//!   snapshot.
//!
//! The manifest is replaced atomically (written aside, synced, renamed), so a
//! reader sees the old state or the new one, never half of either. Readers
//! ([`crate::UsageMonitor`], `serve`, the CLI) notice a new install or a
//! rollback by the manifest's content and swap the catalogue in; see
//! [`CatalogueStore::stamp`].
//!
//! An installed catalogue takes the place of the built-in genai-prices
//! snapshot: it prices the models the CNY table (and a user's pricing files)
//! do not. A LiteLLM file becomes a table of USD prices consulted after the
//! CNY table and before the built-in snapshot, which still prices what
//! LiteLLM's list does not hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::catalogue::{self, Catalogue};
use super::{Band, PricingError, PricingTable, Tiers, MAX_PRICING_FILE_BYTES};
use crate::money::Currency;

/// Sub-directory of the records directory holding installed catalogues.
pub const CATALOGUE_DIR: &str = "pricing";

/// The manifest's file name inside [`CATALOGUE_DIR`].
pub const MANIFEST_FILE: &str = "manifest.json";

/// A catalogue older than this many days is reported as stale (a start-up
/// warning, `/healthz`, the dashboard).
pub const STALE_AFTER_DAYS: i64 = 90;

/// The format of an installed catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CatalogueFormat {
    /// genai-prices `data_slim.json`: a JSON array of providers.
    GenaiPrices,
    /// LiteLLM `model_prices_and_context_window.json`: per-token USD prices.
    Litellm,
}

impl std::fmt::Display for CatalogueFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CatalogueFormat::GenaiPrices => "genai-prices",
            CatalogueFormat::Litellm => "LiteLLM",
        })
    }
}

/// What the manifest says about one installed catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledInfo {
    /// The file's format.
    pub format: CatalogueFormat,
    /// File name inside `DIR/pricing/`.
    pub file: String,
    /// Where it came from: a URL or a path.
    pub source: String,
    /// When it was fetched (UTC).
    pub fetched_at: DateTime<Utc>,
    /// The date its prices stand for: the fetch date for a download, the
    /// file's modification date for a local file.
    pub date: NaiveDate,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// How many models it prices.
    pub models: usize,
}

/// The manifest: the catalogue in force and the one before it (`None`: the
/// built-in snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// In force.
    pub current: Option<InstalledInfo>,
    /// In force before it; what [`CatalogueStore::rollback`] returns to.
    pub previous: Option<InstalledInfo>,
}

/// Where an install or a rollback failed; nothing on disk changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The file is not a valid catalogue.
    #[error("{0}")]
    Invalid(#[from] PricingError),
    /// The file is valid JSON but neither format.
    #[error("{name}: not a price catalogue: expected genai-prices data_slim.json (a JSON array of providers) or LiteLLM model_prices_and_context_window.json (an object of models with `input_cost_per_token` / `litellm_provider`)")]
    UnknownFormat {
        /// The file or URL.
        name: String,
    },
    /// The file holds no priced model (an empty or cut-down download).
    #[error("{name}: the catalogue prices no model")]
    Empty {
        /// The file or URL.
        name: String,
    },
    /// The file is not UTF-8 text.
    #[error("{name}: not UTF-8 text (invalid byte at offset {offset})")]
    NotText {
        /// The file or URL.
        name: String,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Reading or writing the store failed.
    #[error("{message} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        message: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest cannot be read as one.
    #[error("price catalogue manifest {}: {message}", .path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A rollback without a previous catalogue.
    #[error(
        "no previous price catalogue to roll back to (nothing was installed with `pricing update`)"
    )]
    NothingToRollBack,
}

/// Where one catalogue came from, for [`CatalogueStore::install`].
#[derive(Debug, Clone)]
pub struct Origin {
    /// URL or path.
    pub source: String,
    /// When it was fetched.
    pub fetched_at: DateTime<Utc>,
    /// The date its prices stand for.
    pub date: NaiveDate,
    /// SHA-256 of the bytes, lower-case hex (computed by the caller, which
    /// also checks a download's length).
    pub sha256: String,
}

/// The outcome of [`CatalogueStore::install`].
#[derive(Debug, Clone)]
pub struct Installed {
    /// The manifest now in force.
    pub manifest: Manifest,
    /// False when the same file (same SHA-256) was already in force.
    pub changed: bool,
}

/// A validated catalogue, ready to price.
#[derive(Debug)]
pub struct InstalledCatalogue {
    info: InstalledInfo,
    body: Body,
}

#[derive(Debug)]
enum Body {
    GenaiPrices(Catalogue),
    /// LiteLLM's models as a table of their own (no catalogue fallback).
    Table(PricingTable),
}

/// What the manifest held when last read (`None`: no manifest). The
/// manifest is a few hundred bytes, so comparing its content is cheap, and
/// unlike a modification time it cannot miss two changes within one tick
/// of a coarse file-system clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Option<Vec<u8>>);

/// The text price of one model at one moment, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricePoint {
    /// Currency of the rates.
    pub currency: Currency,
    /// One band per input-size tier, per 1K tokens (one unbounded band for a
    /// flat price).
    pub bands: Vec<Band>,
}

impl std::fmt::Display for PricePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.bands.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if self.bands.len() > 1 {
                match b.up_to {
                    Some(n) => write!(f, "≤{n}: ")?,
                    None => f.write_str("above: ")?,
                }
            }
            write!(f, "in {} out {}", b.input, b.output)?;
            if let Some(c) = b.cached_input {
                write!(f, " cached {c}")?;
            }
        }
        write!(f, " {}/1K", self.currency)
    }
}

/// One model whose price differs between two catalogues.
#[derive(Debug, Clone, Serialize)]
pub struct PriceChange {
    /// The model (`provider/model` for genai-prices).
    pub model: String,
    /// Price in the older catalogue.
    pub old: PricePoint,
    /// Price in the newer one.
    pub new: PricePoint,
}

/// What changed from one catalogue to another.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CatalogueDiff {
    /// Models only the newer one prices.
    pub added: Vec<String>,
    /// Models only the older one priced.
    pub removed: Vec<String>,
    /// Models whose text price changed.
    pub changed: Vec<PriceChange>,
}

impl CatalogueDiff {
    /// Compares the prices of two catalogues (models keyed alike).
    pub fn between(
        old: &BTreeMap<String, PricePoint>,
        new: &BTreeMap<String, PricePoint>,
    ) -> CatalogueDiff {
        let mut d = CatalogueDiff::default();
        for (model, n) in new {
            match old.get(model) {
                None => d.added.push(model.clone()),
                Some(o) if o != n => d.changed.push(PriceChange {
                    model: model.clone(),
                    old: o.clone(),
                    new: n.clone(),
                }),
                Some(_) => {}
            }
        }
        d.removed = old
            .keys()
            .filter(|m| !new.contains_key(*m))
            .cloned()
            .collect();
        d
    }
}

/// Which catalogue is in force, for health, status and listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogueInfo {
    /// `"built-in"` or `"updated"`.
    pub kind: &'static str,
    /// Format of the catalogue.
    pub format: CatalogueFormat,
    /// The date its prices stand for.
    pub date: NaiveDate,
    /// Days from `date` to today (UTC).
    pub age_days: i64,
    /// True when older than [`STALE_AFTER_DAYS`].
    pub stale: bool,
    /// How many models it prices.
    pub models: usize,
}

impl CatalogueInfo {
    fn new(kind: &'static str, format: CatalogueFormat, date: NaiveDate, models: usize) -> Self {
        let age_days = (Utc::now().date_naive() - date).num_days();
        CatalogueInfo {
            kind,
            format,
            date,
            age_days,
            stale: age_days > STALE_AFTER_DAYS,
            models,
        }
    }

    /// The built-in genai-prices snapshot.
    pub fn builtin() -> CatalogueInfo {
        let date = NaiveDate::parse_from_str(catalogue::BUILTIN_SNAPSHOT_DATE, "%Y-%m-%d")
            .unwrap_or_default();
        let models = Catalogue::builtin().map_or(0, |c| c.models().count());
        CatalogueInfo::new("built-in", CatalogueFormat::GenaiPrices, date, models)
    }

    /// An installed catalogue.
    pub fn installed(info: &InstalledInfo) -> CatalogueInfo {
        CatalogueInfo::new("updated", info.format, info.date, info.models)
    }

    /// Logs one warning when the catalogue is stale.
    pub fn warn_if_stale(&self) {
        if self.stale {
            tracing::warn!(
                catalogue = self.kind,
                date = %self.date,
                age_days = self.age_days,
                "the price catalogue is more than {STALE_AFTER_DAYS} days old: new models may be unpriced; run `ai-usage pricing update`"
            );
        }
    }
}

/// Detects the format and validates the whole file with the rules of the
/// built-in snapshot; `name` (a URL or a path) names it in errors. Returns
/// the format and the number of models priced. Nothing is installed here.
pub fn validate(name: &str, bytes: &[u8]) -> Result<(CatalogueFormat, usize), UpdateError> {
    parse(name, bytes).map(|(f, _, n)| (f, n))
}

fn parse(name: &str, bytes: &[u8]) -> Result<(CatalogueFormat, Body, usize), UpdateError> {
    if bytes.len() as u64 > MAX_PRICING_FILE_BYTES {
        return Err(PricingError::TooLarge {
            path: PathBuf::from(name),
            message: format!(
                "{} bytes; a price catalogue may have at most {MAX_PRICING_FILE_BYTES}",
                bytes.len()
            ),
        }
        .into());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| UpdateError::NotText {
        name: name.to_string(),
        offset: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start();
    let format = if trimmed.starts_with('[') {
        CatalogueFormat::GenaiPrices
    } else if trimmed.starts_with('{') {
        // A truncated object is reported by the full parse below, with its
        // line and column; only a complete one can be told apart.
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) if super::litellm::is_litellm(&v) => CatalogueFormat::Litellm,
            Ok(_) => {
                return Err(UpdateError::UnknownFormat {
                    name: name.to_string(),
                })
            }
            Err(_) => CatalogueFormat::Litellm,
        }
    } else {
        return Err(UpdateError::UnknownFormat {
            name: name.to_string(),
        });
    };
    let parsed = super::file::parse_json_text(name, text)?;
    let (body, models) = match (format, parsed.catalogue) {
        (CatalogueFormat::GenaiPrices, Some(c)) => {
            let n = c.models().count();
            (Body::GenaiPrices(c), n)
        }
        (CatalogueFormat::Litellm, None) => {
            let n = parsed.models.len();
            let mut t = PricingTable::empty();
            t.insert_all(parsed.models);
            (Body::Table(t), n)
        }
        _ => {
            return Err(UpdateError::UnknownFormat {
                name: name.to_string(),
            })
        }
    };
    if models == 0 {
        return Err(UpdateError::Empty {
            name: name.to_string(),
        });
    }
    Ok((format, body, models))
}

impl InstalledCatalogue {
    /// What the manifest says about it.
    pub fn info(&self) -> &InstalledInfo {
        &self.info
    }

    /// The genai-prices catalogue, when it is one.
    pub fn catalogue(&self) -> Option<&Catalogue> {
        match &self.body {
            Body::GenaiPrices(c) => Some(c),
            Body::Table(_) => None,
        }
    }

    /// LiteLLM's models as a table, when it is one.
    pub fn table(&self) -> Option<&PricingTable> {
        match &self.body {
            Body::Table(t) => Some(t),
            Body::GenaiPrices(_) => None,
        }
    }

    /// Every model's text price in force at `at`.
    pub fn price_points(&self, at: DateTime<Utc>) -> BTreeMap<String, PricePoint> {
        match &self.body {
            Body::GenaiPrices(c) => catalogue_points(c, at),
            Body::Table(t) => t
                .models()
                .map(|(id, p)| {
                    let bands = match &p.tiers {
                        Tiers::Flat => vec![Band {
                            up_to: None,
                            input: p.input,
                            output: p.output,
                            cached_input: p.cached_input,
                            cache_write: p.cache_write,
                        }],
                        Tiers::Graduated(b) | Tiers::ByRequestSize(b) => b.clone(),
                    };
                    (
                        id.to_string(),
                        PricePoint {
                            currency: p.currency,
                            bands,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// The text prices of a genai-prices catalogue at `at`, keyed `provider/model`.
pub fn catalogue_points(c: &Catalogue, at: DateTime<Utc>) -> BTreeMap<String, PricePoint> {
    c.models()
        .filter_map(|m| {
            let bands = m.bands_at(at)?;
            Some((
                format!("{}/{}", m.provider_id(), m.model_id()),
                PricePoint {
                    currency: m.currency(),
                    bands,
                },
            ))
        })
        .collect()
}

/// The installed catalogues of one records directory.
#[derive(Debug, Clone)]
pub struct CatalogueStore {
    dir: PathBuf,
}

impl CatalogueStore {
    /// The store of `records_dir` (`records_dir/pricing`; created on the
    /// first install).
    pub fn new(records_dir: &Path) -> CatalogueStore {
        CatalogueStore {
            dir: records_dir.join(CATALOGUE_DIR),
        }
    }

    /// `DIR/pricing`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// The manifest's content now (cheap: one small read).
    pub fn stamp(&self) -> Stamp {
        Stamp(std::fs::read(self.manifest_path()).ok())
    }

    /// The manifest (empty when nothing was ever installed).
    pub fn manifest(&self) -> Result<Manifest, UpdateError> {
        let path = self.manifest_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(source) => {
                return Err(UpdateError::Io {
                    message: "cannot read",
                    path,
                    source,
                })
            }
        };
        serde_json::from_str(&text).map_err(|e| UpdateError::Manifest {
            path,
            message: e.to_string(),
        })
    }

    /// Loads and validates one installed catalogue.
    pub fn load(&self, info: &InstalledInfo) -> Result<InstalledCatalogue, UpdateError> {
        let path = self.file_path(info)?;
        let bytes = std::fs::read(&path).map_err(|source| UpdateError::Io {
            message: "cannot read",
            path: path.clone(),
            source,
        })?;
        let (_, body, _) = parse(&path.display().to_string(), &bytes)?;
        Ok(InstalledCatalogue {
            info: info.clone(),
            body,
        })
    }

    /// The catalogue in force, if one was installed (`None`: the built-in
    /// snapshot).
    pub fn load_current(&self) -> Result<Option<InstalledCatalogue>, UpdateError> {
        match self.manifest()?.current {
            Some(info) => self.load(&info).map(Some),
            None => Ok(None),
        }
    }

    /// A manifest's file name must stay inside the store.
    fn file_path(&self, info: &InstalledInfo) -> Result<PathBuf, UpdateError> {
        let plain = !info.file.is_empty()
            && !info.file.starts_with('.')
            && !info.file.contains(['/', '\\']);
        if !plain {
            return Err(UpdateError::Manifest {
                path: self.manifest_path(),
                message: format!("file name {:?} is not a plain name", info.file),
            });
        }
        Ok(self.dir.join(&info.file))
    }

    /// Validates `bytes` completely, then installs them as the catalogue in
    /// force; the one in force before becomes the previous one. A file that
    /// fails validation changes nothing. Installing the file already in
    /// force (same SHA-256) changes nothing either.
    pub fn install(&self, bytes: &[u8], origin: Origin) -> Result<Installed, UpdateError> {
        let (format, models) = validate(&origin.source, bytes)?;
        let _lock = self.lock()?;
        let old = self.manifest()?;
        if old
            .current
            .as_ref()
            .is_some_and(|c| c.sha256 == origin.sha256)
        {
            return Ok(Installed {
                manifest: old,
                changed: false,
            });
        }
        let prefix: String = origin
            .sha256
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(16)
            .collect();
        let file = format!("catalogue-{prefix}.json");
        let info = InstalledInfo {
            format,
            file,
            source: origin.source,
            fetched_at: origin.fetched_at,
            date: origin.date,
            sha256: origin.sha256,
            bytes: bytes.len() as u64,
            models,
        };
        let path = self.file_path(&info)?;
        write(&path, bytes)?;
        let manifest = Manifest {
            current: Some(info),
            previous: old.current,
        };
        self.write_manifest(&manifest)?;
        self.remove_unused(&manifest);
        Ok(Installed {
            manifest,
            changed: true,
        })
    }

    /// Swaps the catalogue in force with the previous one (the built-in
    /// snapshot when the first update was in force). A second rollback
    /// undoes the first.
    pub fn rollback(&self) -> Result<Manifest, UpdateError> {
        // Nothing installed: say so without creating the store.
        if self.manifest()? == Manifest::default() {
            return Err(UpdateError::NothingToRollBack);
        }
        let _lock = self.lock()?;
        let old = self.manifest()?;
        if old.current.is_none() && old.previous.is_none() {
            return Err(UpdateError::NothingToRollBack);
        }
        if let Some(p) = &old.previous {
            // Refuse to switch to a file that is gone or damaged.
            self.load(p)?;
        }
        let manifest = Manifest {
            current: old.previous,
            previous: old.current,
        };
        self.write_manifest(&manifest)?;
        Ok(manifest)
    }

    /// Serialises installs and rollbacks of several processes (the
    /// manifest is read, changed and written; unused files are removed).
    /// Readers need no lock: the manifest is replaced atomically. Released
    /// when the returned file is dropped.
    fn lock(&self) -> Result<std::fs::File, UpdateError> {
        let path = self.dir.join(".lock");
        let io = |message, source| UpdateError::Io {
            message,
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io("cannot create the directory of", e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("cannot open", e))?;
        file.lock().map_err(|e| io("cannot lock", e))?;
        Ok(file)
    }

    fn write_manifest(&self, m: &Manifest) -> Result<(), UpdateError> {
        let text = serde_json::to_vec_pretty(m).map_err(|e| UpdateError::Manifest {
            path: self.manifest_path(),
            message: e.to_string(),
        })?;
        write(&self.manifest_path(), &text)
    }

    /// Deletes catalogue files the manifest no longer names (best effort).
    fn remove_unused(&self, m: &Manifest) {
        let keep: Vec<&str> = [&m.current, &m.previous]
            .into_iter()
            .flatten()
            .map(|i| i.file.as_str())
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with("catalogue-") && name.ends_with(".json") && !keep.contains(&name) {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot remove an unused price catalogue");
                }
            }
        }
    }
}

/// Writes a file atomically (temporary file, sync, rename).
fn write(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    crate::export::write_atomic(path, bytes, false)
        .map(|_| ())
        .map_err(|e| UpdateError::Io {
            message: "cannot write",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::usage::TokenUsage;

    const SNAPSHOT: &str = include_str!("../../data/genai-prices/data_slim.json");

    /// The built-in snapshot with one new OpenAI model and OpenAI's `ada`
    /// at a new price: what a newer genai-prices release looks like.
    fn newer_catalogue() -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(SNAPSHOT).unwrap();
        let openai = v
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["id"] == "openai")
            .unwrap();
        let models = openai["models"].as_array_mut().unwrap();
        let ada = models.iter_mut().find(|m| m["id"] == "ada").unwrap();
        ada["prices"] = serde_json::json!({"input_mtok": 0.5, "output_mtok": 0.5});
        models.push(serde_json::json!({
            "id": "gpt-9-nova",
            "match": {"equals": "gpt-9-nova"},
            "prices": {"input_mtok": 2, "output_mtok": 8}
        }));
        serde_json::to_vec(&v).unwrap()
    }

    fn origin(bytes: &[u8], tag: &str) -> Origin {
        Origin {
            source: format!("test:{tag}"),
            fetched_at: Utc::now(),
            date: Utc::now().date_naive(),
            // Distinct per content (the CLI computes SHA-256).
            sha256: {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                format!("{:016x}", h.finish()).repeat(4)
            },
        }
    }

    fn usage(input: u64, output: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: input,
            output_tokens: output,
            ..TokenUsage::default()
        }
    }

    #[test]
    fn an_installed_catalogue_prices_a_model_the_snapshot_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogueStore::new(dir.path());
        let mut table = PricingTable::builtin();
        let before = table.price("gpt-9-nova", &usage(1_000_000, 1_000_000));
        assert!(!before.priced);

        let bytes = newer_catalogue();
        let done = store.install(&bytes, origin(&bytes, "a")).unwrap();
        assert!(done.changed);
        let info = done.manifest.current.clone().unwrap();
        assert_eq!(info.format, CatalogueFormat::GenaiPrices);
        assert_eq!(
            info.models,
            Catalogue::builtin().unwrap().models().count() + 1
        );
        assert!(
            done.manifest.previous.is_none(),
            "before it: the built-in snapshot"
        );
        assert!(store.dir().join(&info.file).is_file());

        table.set_installed(store.load_current().unwrap().map(std::sync::Arc::new));
        let q = table.price("gpt-9-nova", &usage(1_000_000, 1_000_000));
        assert!(q.priced);
        assert_eq!(q.currency, Currency::USD);
        // $2 + $8 per million tokens, exactly.
        assert_eq!(q.cost.nanos(), 10_000_000_000);
        // The CNY table still wins for its own models.
        assert_eq!(
            table.price("qwen-plus", &usage(1000, 0)),
            PricingTable::builtin().price("qwen-plus", &usage(1000, 0))
        );
        assert_eq!(table.catalogue_info().kind, "updated");
        assert_eq!(table.catalogue_info().age_days, 0);
        assert!(!table.catalogue_info().stale);
    }

    #[test]
    fn a_truncated_or_invalid_download_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogueStore::new(dir.path());
        let good = newer_catalogue();
        store.install(&good, origin(&good, "good")).unwrap();
        let manifest = std::fs::read(store.dir().join(MANIFEST_FILE)).unwrap();
        let files = || {
            let mut v: Vec<_> = std::fs::read_dir(store.dir())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let files_before = files();

        let cut = &good[..good.len() / 2];
        let e = store.install(cut, origin(cut, "cut")).unwrap_err();
        assert!(e.to_string().contains("EOF"), "{e}");
        assert!(e.to_string().contains("test:cut"), "{e}");

        // A price that is not a number, deep inside an otherwise good file.
        let text = String::from_utf8(good.clone()).unwrap();
        let bad = text.replacen("\"input_mtok\":0.5", "\"input_mtok\":\"cheap\"", 1);
        assert_ne!(bad, text);
        let e = store
            .install(bad.as_bytes(), origin(bad.as_bytes(), "bad"))
            .unwrap_err();
        assert!(e.to_string().contains("input_mtok"), "{e}");

        for (junk, what) in [
            (&b"[]"[..], "prices no model"),
            (&b"<html>rate limited</html>"[..], "not a price catalogue"),
            (&br#"{"models": {}}"#[..], "not a price catalogue"),
            (&b"\xff\xfe"[..], "not UTF-8"),
        ] {
            let e = store.install(junk, origin(junk, "junk")).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        assert_eq!(
            std::fs::read(store.dir().join(MANIFEST_FILE)).unwrap(),
            manifest
        );
        assert_eq!(files(), files_before);
    }

    #[test]
    fn litellm_files_are_detected_and_price_after_the_cny_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogueStore::new(dir.path());
        let litellm = br#"{
            "sample_spec": {"input_cost_per_token": 0, "litellm_provider": "x"},
            "brand-new-llm": {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000004, "litellm_provider": "newco"},
            "qwen-plus": {"input_cost_per_token": 0.0000004, "output_cost_per_token": 0.0000012, "litellm_provider": "dashscope"}
        }"#;
        let done = store.install(litellm, origin(litellm, "l")).unwrap();
        let info = done.manifest.current.unwrap();
        assert_eq!(info.format, CatalogueFormat::Litellm);
        assert_eq!(info.models, 2);
        let mut table = PricingTable::builtin();
        table.set_installed(store.load_current().unwrap().map(std::sync::Arc::new));
        let q = table.price("brand-new-llm", &usage(1_000_000, 1_000_000));
        assert!(q.priced);
        assert_eq!((q.cost.nanos(), q.currency), (5_000_000_000, Currency::USD));
        // qwen-plus keeps its CNY price from the table.
        assert_eq!(
            table.price("qwen-plus", &usage(1000, 0)).currency,
            Currency::CNY
        );
        // Models neither lists are still priced by the built-in snapshot.
        assert!(table.price("gpt-4o", &usage(1000, 0)).priced);
    }

    #[test]
    fn rollback_swaps_with_the_previous_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogueStore::new(dir.path());
        assert!(matches!(
            store.rollback(),
            Err(UpdateError::NothingToRollBack)
        ));
        assert!(!store.dir().exists(), "a refused rollback creates nothing");
        let first = newer_catalogue();
        store.install(&first, origin(&first, "1")).unwrap();
        // The same file again changes nothing (the previous one stays).
        assert!(!store.install(&first, origin(&first, "1")).unwrap().changed);
        let second = String::from_utf8(first.clone())
            .unwrap()
            .replace("gpt-9-nova", "gpt-9-nova-pro")
            .into_bytes();
        store.install(&second, origin(&second, "2")).unwrap();
        let m = store.manifest().unwrap();
        assert_eq!(m.current.as_ref().unwrap().source, "test:2");
        assert_eq!(m.previous.as_ref().unwrap().source, "test:1");

        let back = store.rollback().unwrap();
        assert_eq!(back.current.as_ref().unwrap().source, "test:1");
        assert_eq!(back.previous.as_ref().unwrap().source, "test:2");
        let c = store.load_current().unwrap().unwrap();
        assert!(c
            .catalogue()
            .unwrap()
            .lookup_anywhere("gpt-9-nova")
            .is_some());
        assert!(c
            .catalogue()
            .unwrap()
            .lookup_anywhere("gpt-9-nova-pro")
            .is_none());

        // From the first update, a rollback returns to the built-in snapshot.
        let dir2 = tempfile::tempdir().unwrap();
        let store2 = CatalogueStore::new(dir2.path());
        store2.install(&first, origin(&first, "1")).unwrap();
        let m = store2.rollback().unwrap();
        assert!(m.current.is_none());
        assert!(store2.load_current().unwrap().is_none());
    }

    #[test]
    fn the_diff_names_new_models_and_changed_prices() {
        let bytes = newer_catalogue();
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogueStore::new(dir.path());
        store.install(&bytes, origin(&bytes, "n")).unwrap();
        let now = Utc::now();
        let old = catalogue_points(Catalogue::builtin().unwrap(), now);
        let new = store.load_current().unwrap().unwrap().price_points(now);
        let d = CatalogueDiff::between(&old, &new);
        assert_eq!(d.added, vec!["openai/gpt-9-nova".to_string()]);
        assert!(d.removed.is_empty());
        assert_eq!(d.changed.len(), 1, "{:?}", d.changed);
        let c = &d.changed[0];
        assert_eq!(c.model, "openai/ada");
        assert_eq!(c.old.to_string(), "in 0.0004 out 0.0004 USD/1K");
        assert_eq!(c.new.to_string(), "in 0.0005 out 0.0005 USD/1K");
    }

    #[test]
    fn a_manifest_cannot_point_outside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogueStore::new(dir.path());
        std::fs::create_dir_all(store.dir()).unwrap();
        let m = serde_json::json!({"current": {
            "format": "genai-prices", "file": "../usage_2026-01-01.jsonl", "source": "x",
            "fetched_at": "2026-01-01T00:00:00Z", "date": "2026-01-01",
            "sha256": "00", "bytes": 1, "models": 1}, "previous": null});
        std::fs::write(store.dir().join(MANIFEST_FILE), m.to_string()).unwrap();
        let e = store.load_current().unwrap_err();
        assert!(e.to_string().contains("not a plain name"), "{e}");
    }

    #[test]
    fn a_running_monitor_picks_up_an_install_and_a_rollback() {
        use crate::{UsageEvent, UsageMonitor};
        let dir = tempfile::tempdir().unwrap();
        let monitor = UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            .build()
            .unwrap();
        let ev = UsageEvent::new("gpt-9-nova", "f").tokens(1_000_000, 1_000_000);
        assert_eq!(monitor.record(&ev).cost.nanos(), 0);
        assert!(!monitor.refresh_price_catalogue(), "nothing installed yet");
        assert_eq!(monitor.health().pricing_catalogue.kind, "built-in");

        let store = CatalogueStore::new(dir.path());
        let bytes = newer_catalogue();
        store.install(&bytes, origin(&bytes, "a")).unwrap();
        assert!(monitor.refresh_price_catalogue());
        assert!(!monitor.refresh_price_catalogue(), "no change since");
        assert_eq!(monitor.record(&ev).cost.nanos(), 10_000_000_000);
        assert_eq!(monitor.health().pricing_catalogue.kind, "updated");

        store.rollback().unwrap();
        assert!(monitor.refresh_price_catalogue());
        assert_eq!(monitor.record(&ev).cost.nanos(), 0);
        assert_eq!(monitor.health().pricing_catalogue.kind, "built-in");
    }

    #[test]
    fn concurrent_installs_keep_a_consistent_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogueStore::new(dir.path());
        let base = String::from_utf8(newer_catalogue()).unwrap();
        std::thread::scope(|s| {
            for i in 0..4 {
                let store = store.clone();
                let bytes = base.replace("gpt-9-nova", &format!("gpt-9-nova-{i}"));
                s.spawn(move || {
                    store
                        .install(bytes.as_bytes(), origin(bytes.as_bytes(), &i.to_string()))
                        .unwrap()
                });
            }
        });
        // Whatever the order, both files the manifest names are there.
        let m = store.manifest().unwrap();
        let current = m.current.as_ref().unwrap();
        let previous = m.previous.as_ref().unwrap();
        assert_ne!(current.source, previous.source);
        for info in [current, previous] {
            let i = info.source.trim_start_matches("test:");
            let c = store.load(info).unwrap();
            let cat = c.catalogue().unwrap();
            assert!(cat.lookup_anywhere(&format!("gpt-9-nova-{i}")).is_some());
        }
    }

    #[test]
    fn the_builtin_snapshot_reports_its_age() {
        let info = CatalogueInfo::builtin();
        assert_eq!(info.kind, "built-in");
        assert_eq!(info.date.to_string(), catalogue::BUILTIN_SNAPSHOT_DATE);
        assert_eq!(info.models, Catalogue::builtin().unwrap().models().count());
        assert_eq!(info.stale, info.age_days > STALE_AFTER_DAYS);
    }
}
