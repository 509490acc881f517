//! `pricing`: the table in force, how one model is priced (`show`) and the
//! recorded models without a price (`missing`).

use std::collections::BTreeMap;

use ai_usage_core::adjustments::{plan_reprice, RepriceChange, RepriceScope};
use ai_usage_core::catalogue::{Catalogue, ModelMatch};
use ai_usage_core::{Costs, Currency, ModelPrice, Tiers};
use serde::Serialize;

use crate::args::{Cli, PricingAction, PricingArgs};
use crate::context::{open_read, pricing, print_json};
use crate::output::{costs, int, table};
use crate::{CliError, CliResult};

pub fn run(cli: &Cli, a: &PricingArgs) -> CliResult {
    match &a.action {
        None => list(cli),
        Some(PricingAction::Show { model, provider }) => show(cli, model, provider.as_deref()),
        Some(PricingAction::Missing) => missing(cli),
        Some(PricingAction::Update {
            from,
            rollback,
            timeout,
        }) => {
            if *rollback {
                super::pricing_update::rollback(cli)
            } else {
                super::pricing_update::update(
                    cli,
                    from.as_deref(),
                    std::time::Duration::from_secs(*timeout),
                )
            }
        }
        Some(PricingAction::Status) => super::pricing_update::status(cli),
    }
}

/// The catalogue entry of `pricing show`.
#[derive(Serialize)]
struct CatalogueEntry<'a> {
    provider: &'a str,
    provider_name: &'a str,
    model_id: &'a str,
    model_name: Option<&'a str>,
    currency: Currency,
    context_window: Option<u64>,
    deprecated: bool,
    /// Price sets (per million tokens) with when each applies.
    history: Vec<HistoryEntry>,
}

#[derive(Serialize)]
struct HistoryEntry {
    when: String,
    prices: BTreeMap<&'static str, String>,
}

/// What `pricing show --json` prints.
#[derive(Serialize)]
struct ShowResult<'a> {
    model: &'a str,
    /// Which prices apply by default: `"table"`, `"catalogue"` or
    /// `"pricing file"` (a genai-prices file's entry over the table's).
    priced_by: &'static str,
    /// The table's entry (per 1K tokens), when the table knows the model.
    table: Option<TableEntry<'a>>,
    /// The catalogue's entry (also shown when the table wins).
    catalogue: Option<CatalogueEntry<'a>>,
}

#[derive(Serialize)]
struct TableEntry<'a> {
    canonical_model: &'a str,
    #[serde(flatten)]
    price: &'a ModelPrice,
}

fn catalogue_entry<'a>(m: &ModelMatch<'a>) -> CatalogueEntry<'a> {
    CatalogueEntry {
        provider: m.provider_id(),
        provider_name: m.provider_name(),
        model_id: m.model_id(),
        model_name: m.model_name(),
        currency: m.currency(),
        context_window: m.context_window(),
        deprecated: m.deprecated(),
        history: m
            .price_history()
            .into_iter()
            .map(|e| HistoryEntry {
                when: e.when,
                prices: e.prices.into_iter().collect(),
            })
            .collect(),
    }
}

fn show(cli: &Cli, model: &str, provider: Option<&str>) -> CliResult {
    let t = pricing(cli)?;
    let in_table = if provider.is_none() {
        t.resolve(model)
    } else {
        None
    };
    // What prices the call: a genai-prices pricing file, the table, or the
    // built-in catalogue (`catalogue_match` applies that order).
    let chosen = t.catalogue_match(provider, model);
    let priced_by = match (&in_table, &chosen) {
        // Without a provider, only a pricing file's entry beats the table.
        (Some(_), Some(_)) => "pricing file",
        (Some(_), None) => "table",
        (None, Some(_)) => "catalogue",
        (None, None) => {
            return Err(CliError::usage(format!(
                "unknown model {model:?}{} (see `ai-usage pricing`)",
                provider
                    .map(|p| format!(" for provider {p:?}"))
                    .unwrap_or_default()
            )))
        }
    };
    // The catalogue's entry (installed, else built-in) is shown even when
    // the table wins.
    let found = match chosen {
        Some(m) => Some(m),
        None => match t.installed().and_then(|i| i.catalogue()) {
            Some(c) => c.lookup_anywhere(model),
            None => Catalogue::builtin()
                .map_err(|e| {
                    CliError::failed(format!("the built-in price catalogue does not load: {e}"))
                })?
                .lookup_anywhere(model),
        },
    };
    let out = ShowResult {
        model,
        priced_by,
        table: in_table.map(|(canonical_model, price)| TableEntry {
            canonical_model,
            price,
        }),
        catalogue: found.as_ref().map(catalogue_entry),
    };
    if cli.json {
        return print_json(&out);
    }
    outln!("{model}: priced by the {priced_by}");
    if let Some(e) = &out.table {
        let p = e.price;
        outln!(
            "  table: {} ({}), {} per 1K tokens: input {}, output {}, cached {}{}",
            e.canonical_model,
            p.display_name,
            p.currency,
            p.input,
            p.output,
            p.cached_input
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            p.source
                .as_deref()
                .map(|s| format!("; source: {s}"))
                .unwrap_or_default()
        );
    }
    if let Some(c) = &out.catalogue {
        outln!(
            "  catalogue: {} ({}) / {}{}, {} per million tokens{}",
            c.provider,
            c.provider_name,
            c.model_id,
            c.model_name.map(|n| format!(" ({n})")).unwrap_or_default(),
            c.currency,
            if c.deprecated { ", deprecated" } else { "" }
        );
        for h in &c.history {
            let prices: Vec<String> = h.prices.iter().map(|(k, v)| format!("{k} {v}")).collect();
            outln!("    {}: {}", h.when, prices.join(", "));
        }
    }
    Ok(())
}

/// One row of `pricing missing`.
#[derive(Serialize)]
struct MissingRow {
    model: String,
    /// Calls recorded with this model.
    calls: u64,
    /// Of them, calls recorded without a price.
    unpriced_calls: u64,
    /// Whether the prices in force now know the model (re-pricing would help).
    priced_now: bool,
    /// Unpriced calls `reprice --only-unpriced` would price (retention window).
    reprice_would_price: u64,
    /// The cost that would add, per currency.
    reprice_would_add: Costs,
}

fn missing(cli: &Cli) -> CliResult {
    let monitor = open_read(cli, None)?;
    let mut by_model: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    monitor.for_each_function_model(|_, model, g| {
        let slot = by_model.entry(model.to_owned()).or_default();
        slot.0 += g.calls;
        slot.1 += g.unpriced_calls;
    });
    let t = monitor.pricing();
    // What `reprice --only-unpriced` over the days held would add, per model.
    let today = crate::context::zone(cli).today();
    let scope = RepriceScope {
        from: today - chrono::Duration::days(crate::context::DEFAULT_RETENTION as i64 - 1),
        to: today,
        only_unpriced: true,
        model: None,
    };
    let plan = plan_reprice(&cli.dir, &t, &scope, chrono::Utc::now())?;
    let mut would: BTreeMap<String, RepriceChange> = BTreeMap::new();
    for ((_, model), c) in plan.by_day_and_model() {
        let w = would.entry(model).or_default();
        w.newly_priced += c.newly_priced;
        w.delta.merge(&c.delta);
    }
    let mut rows: Vec<MissingRow> = by_model
        .into_iter()
        .map(|(model, (calls, unpriced_calls))| {
            let priced_now =
                t.resolve(&model).is_some() || t.catalogue_match(None, &model).is_some();
            let w = would.remove(&model).unwrap_or_default();
            MissingRow {
                model,
                calls,
                unpriced_calls,
                priced_now,
                reprice_would_price: w.newly_priced,
                reprice_would_add: w.delta,
            }
        })
        .filter(|r| r.unpriced_calls > 0 || !r.priced_now)
        .collect();
    drop(t);
    rows.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.model.cmp(&b.model)));
    if cli.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        outln!("every recorded model has a price");
        return Ok(());
    }
    outln!("未定价模型 models without a price ({})", rows.len());
    let mut out = table(
        &[
            "模型 model",
            "调用 calls",
            "未定价 unpriced",
            "现可定价 priced now",
            "reprice --only-unpriced",
        ],
        &[1, 2],
    );
    for r in &rows {
        let would = if r.reprice_would_price == 0 {
            "-".to_owned()
        } else {
            format!(
                "{} calls, +{}",
                int(r.reprice_would_price),
                costs(&r.reprice_would_add, Currency::CNY)
            )
        };
        out.add_row(vec![
            r.model.clone(),
            int(r.calls),
            int(r.unpriced_calls),
            if r.priced_now { "yes" } else { "no" }.to_owned(),
            would,
        ]);
    }
    outln!("{out}");
    if rows.iter().any(|r| r.reprice_would_price > 0) {
        outln!("`ai-usage reprice --only-unpriced --from DAY --to DAY` prices them (writes adjustments; usage files stay as they are).");
    }
    Ok(())
}

/// One row of `pricing --json`.
#[derive(Serialize)]
struct PriceRow<'a> {
    model: &'a str,
    #[serde(flatten)]
    price: &'a ai_usage_core::ModelPrice,
}

pub fn list(cli: &Cli) -> CliResult {
    let t = pricing(cli)?;
    if cli.json {
        let rows: Vec<PriceRow> = t
            .models()
            .map(|(model, price)| PriceRow { model, price })
            .collect();
        return print_json(&rows);
    }
    outln!("定价 pricing ({} models; per 1K tokens)", t.len());
    let mut out = table(
        &[
            "模型 model",
            "名称 name",
            "币种",
            "输入 input",
            "输出 output",
            "缓存 cached",
            "来源 source",
            "日期 date",
            "备注 notes",
        ],
        &[3, 4, 5],
    );
    for (id, p) in t.models() {
        let mut notes = match &p.tiers {
            Tiers::Flat => String::new(),
            Tiers::Graduated(b) => format!("graduated, {} bands", b.len()),
            Tiers::ByRequestSize(b) => format!("by request size, {} bands", b.len()),
        };
        if p.unverified {
            let sep = if notes.is_empty() { "" } else { "; " };
            notes = format!("未核实 unverified{sep}{notes}");
        }
        out.add_row(vec![
            id.to_string(),
            p.display_name.clone(),
            p.currency.to_string(),
            p.input.to_string(),
            p.output.to_string(),
            p.cached_input
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            p.source.clone().unwrap_or_else(|| "-".into()),
            p.price_date.clone().unwrap_or_else(|| "-".into()),
            notes,
        ]);
    }
    outln!("{out}");
    let c = t.catalogue_info();
    outln!(
        "注: unverified = not confirmed by the provider's own price page (savings advice leaves it out); \
         other models are priced by the {} price catalogue ({}, {}): `ai-usage pricing show MODEL`, `ai-usage pricing status`.",
        c.kind,
        c.format,
        c.date
    );
    Ok(())
}
