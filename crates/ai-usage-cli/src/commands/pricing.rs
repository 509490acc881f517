//! `cost` and `pricing`.

use ai_usage_core::Tiers;
use ai_usage_core::TokenUsage;
use serde::Serialize;

use crate::args::{Cli, CostArgs};
use crate::context::{pricing, print_json};
use crate::output::{int, money, table};
use crate::{CliError, CliResult};

/// What `cost --json` prints.
#[derive(Serialize)]
struct CostQuote<'a> {
    model: &'a str,
    canonical_model: &'a str,
    display_name: &'a str,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    reasoning_tokens: u64,
    cost: ai_usage_core::Money,
    currency: ai_usage_core::Currency,
    priced: bool,
}

pub fn cost(cli: &Cli, a: &CostArgs) -> CliResult {
    if a.cached > a.input_tokens {
        return Err(CliError::usage(format!(
            "--cached {} is more than the {} input tokens",
            a.cached, a.input_tokens
        )));
    }
    if a.reasoning > a.output_tokens {
        return Err(CliError::usage(format!(
            "--reasoning {} is more than the {} output tokens",
            a.reasoning, a.output_tokens
        )));
    }
    let table_ = pricing(cli)?;
    let Some((id, price)) = table_.resolve(&a.model) else {
        return Err(CliError::usage(format!(
            "unknown model {:?} (see `ai-usage pricing`)",
            a.model
        )));
    };
    let usage = TokenUsage {
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
        total_tokens: None,
        cached_input_tokens: a.cached,
        reasoning_tokens: a.reasoning,
    };
    let q = table_.price(&a.model, &usage);
    let out = CostQuote {
        model: &a.model,
        canonical_model: id,
        display_name: &price.display_name,
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
        cached_input_tokens: a.cached,
        reasoning_tokens: a.reasoning,
        cost: q.cost,
        currency: q.currency,
        priced: q.priced,
    };
    if cli.json {
        return print_json(&out);
    }
    println!(
        "{} ({}): {} input + {} output tokens = {} {}",
        id,
        price.display_name,
        int(a.input_tokens),
        int(a.output_tokens),
        money(q.cost, q.currency),
        q.currency
    );
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
    println!("定价 pricing ({} models; per 1K tokens)", t.len());
    let mut out = table(
        &[
            "模型 model",
            "名称 name",
            "币种",
            "输入 input",
            "输出 output",
            "缓存 cached",
            "备注 notes",
        ],
        &[3, 4, 5],
    );
    for (id, p) in t.models() {
        let notes = match &p.tiers {
            Tiers::Flat => String::new(),
            Tiers::Graduated(b) => format!("graduated, {} bands", b.len()),
            Tiers::ByRequestSize(b) => format!("by request size, {} bands", b.len()),
        };
        out.add_row(vec![
            id.to_string(),
            p.display_name.clone(),
            p.currency.to_string(),
            p.input.to_string(),
            p.output.to_string(),
            p.cached_input
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            notes,
        ]);
    }
    println!("{out}");
    Ok(())
}
