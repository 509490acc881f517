//! Validated query parameters.
//!
//! Parameters are read as strings and checked by hand, so an error names the
//! parameter and its allowed range (serde's messages name neither reliably).
//! Each parameter's range is declared once, as an [`IntParam`] or
//! [`ChoiceParam`] constant, read both by the validation here and by the
//! OpenAPI document (through the `…Query` types). The ranges themselves are
//! the core's [`bounds`], which the CLI and Python read too.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use ai_usage_core::bounds;

use crate::error::ApiError;

/// An integer query parameter: its name, range and default.
#[derive(Debug, Clone, Copy)]
pub struct IntParam {
    /// Query-string key.
    pub name: &'static str,
    /// What it means (OpenAPI description).
    pub description: &'static str,
    /// Value when absent; `None`: the handler supplies one (e.g. this year).
    pub default: Option<i64>,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
}

/// A query parameter taking one of a few words.
#[derive(Debug, Clone, Copy)]
pub struct ChoiceParam {
    /// Query-string key.
    pub name: &'static str,
    /// What it means (OpenAPI description).
    pub description: &'static str,
    /// Value when absent.
    pub default: &'static str,
    /// Accepted values (case-insensitive).
    pub choices: &'static [&'static str],
}

/// `hours_ago`: hours before the current one.
pub const HOURS_AGO: IntParam = IntParam {
    name: bounds::HOURS_AGO.name,
    description: "Hours before the current one",
    default: Some(0),
    min: bounds::HOURS_AGO.min,
    max: bounds::HOURS_AGO.max,
};
/// `days_ago`: days before today.
pub const DAYS_AGO: IntParam = IntParam {
    name: bounds::DAYS_AGO.name,
    description: "Days before today",
    default: Some(0),
    min: bounds::DAYS_AGO.min,
    max: bounds::DAYS_AGO.max,
};
/// `year` of a monthly summary (default: this year).
pub const YEAR: IntParam = IntParam {
    name: bounds::YEAR.name,
    description: "Year (default: this year)",
    default: None,
    min: bounds::YEAR.min,
    max: bounds::YEAR.max,
};
/// `month` of a monthly summary (default: this month).
pub const MONTH: IntParam = IntParam {
    name: bounds::MONTH.name,
    description: "Month (default: this month)",
    default: None,
    min: bounds::MONTH.min,
    max: bounds::MONTH.max,
};
/// `limit`: rows of a ranking.
pub const LIMIT: IntParam = IntParam {
    name: bounds::LIMIT.name,
    description: "Rows",
    default: Some(10),
    min: bounds::LIMIT.min,
    max: bounds::LIMIT.max,
};
/// `days`: the window ending today.
pub const DAYS: IntParam = IntParam {
    name: bounds::DAYS.name,
    description: "Days ending today",
    default: Some(7),
    min: bounds::DAYS.min,
    max: bounds::DAYS.max,
};
/// `format` of an exported report.
pub const REPORT_FORMAT: ChoiceParam = ChoiceParam {
    name: "format",
    description: "Report format",
    default: "json",
    choices: &["json", "csv"],
};

impl IntParam {
    /// The OpenAPI description of this query parameter.
    pub fn parameter(&self) -> Parameter {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(self.min as f64))
            .maximum(Some(self.max as f64))
            .default(self.default.map(Into::into));
        ParameterBuilder::new()
            .name(self.name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(self.description))
            .schema(Some(schema))
            .build()
    }
}

impl ChoiceParam {
    /// The OpenAPI description of this query parameter.
    pub fn parameter(&self) -> Parameter {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(self.choices.iter().copied()))
            .default(Some(self.default.into()));
        ParameterBuilder::new()
            .name(self.name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(self.description))
            .schema(Some(schema))
            .build()
    }
}

/// Declares a type whose OpenAPI parameters are the given constants.
macro_rules! query_params {
    ($(#[$doc:meta])* $name:ident: $($param:expr),+) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![$($param.parameter()),+]
            }
        }
    };
}

query_params!(
    /// Parameters of `stats/hourly`.
    HourlyQuery: HOURS_AGO
);
query_params!(
    /// Parameters of `stats/daily`.
    DailyQuery: DAYS_AGO
);
query_params!(
    /// Parameters of `stats/monthly`.
    MonthlyQuery: YEAR, MONTH
);
query_params!(
    /// Parameters of the rankings.
    RankingQuery: LIMIT, DAYS
);
query_params!(
    /// A `days` window alone.
    DaysQuery: DAYS
);
query_params!(
    /// Parameters of `export_report`.
    ExportQuery: DAYS, REPORT_FORMAT
);

/// The query string of a request, as decoded key/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let pairs = match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => pairs,
            Err(e) => {
                return Err(ApiError::BadRequest(format!(
                    "malformed query string: {}",
                    e.body_text()
                )))
            }
        };
        // `limit=500&limit=1` would otherwise mean whichever came last:
        // a repeated key is refused, naming it.
        let mut map = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(ApiError::param(
                    k.clone(),
                    format!("{k:?} is given more than once"),
                ));
            }
            map.insert(k, v);
        }
        Ok(Params(map))
    }
}

impl Params {
    /// Params from pairs (tests).
    #[cfg(test)]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The names given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The raw value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An integer in `min..=max`; `default` when absent (an error when absent
    /// without a default). An empty value counts as malformed, not absent.
    pub fn int(
        &self,
        name: &'static str,
        default: Option<i64>,
        min: i64,
        max: i64,
    ) -> Result<i64, ApiError> {
        let raw = match self.get(name) {
            Some(v) => v,
            None => {
                return default.ok_or_else(|| {
                    ApiError::param_check(
                        name,
                        "missing",
                        None,
                        format!("required (integer {min}..={max})"),
                    )
                })
            }
        };
        let v: i64 = raw.trim().parse().map_err(|_| {
            ApiError::param_check(
                name,
                "int_parsing",
                Some(raw),
                format!("{raw:?} is not an integer (expected {min}..={max})"),
            )
        })?;
        if v < min || v > max {
            let (kind, ctx) = if v < min {
                ("greater_than_equal", serde_json::json!({ "ge": min }))
            } else {
                ("less_than_equal", serde_json::json!({ "le": max }))
            };
            return Err(ApiError::param_check(
                name,
                kind,
                Some(raw),
                format!("{v} is out of range {min}..={max}"),
            )
            .with_ctx(ctx));
        }
        Ok(v)
    }

    /// The value of `p`, checked against its range; `fallback` when absent
    /// and `p` has no default of its own.
    pub fn int_of(&self, p: &IntParam, fallback: Option<i64>) -> Result<i64, ApiError> {
        self.int(p.name, p.default.or(fallback), p.min, p.max)
    }

    /// [`Params::int_of`] for parameters whose range fits `u32`.
    pub fn u32_of(&self, p: &IntParam, fallback: Option<u32>) -> Result<u32, ApiError> {
        let v = self.int_of(p, fallback.map(i64::from))?;
        u32::try_from(v).map_err(|_| ApiError::param(p.name, format!("{v} does not fit u32")))
    }

    /// The value of a [`ChoiceParam`].
    pub fn choice_of(&self, p: &ChoiceParam) -> Result<&'static str, ApiError> {
        self.choice(p.name, p.default, p.choices)
    }

    /// One of `choices` (case-insensitive); `default` when absent.
    pub fn choice(
        &self,
        name: &'static str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .copied()
            .find(|c| c.eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| {
                ApiError::param_check(
                    name,
                    "enum",
                    Some(raw),
                    format!("{raw:?} is not one of {}", choices.join(", ")),
                )
                .with_ctx(serde_json::json!({ "expected": fastapi_expected(choices) }))
            })
    }
}

/// FastAPI's `ctx.expected` of an enum: `'a', 'b' or 'c'`.
fn fastapi_expected(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_bounds_and_errors_name_the_parameter() {
        let p = Params::from_pairs([("days", "91"), ("limit", "x"), ("ok", "5"), ("empty", "")]);
        let e = p.int("days", Some(7), 1, 90).unwrap_err().to_string();
        assert!(e.contains("days") && e.contains("1..=90"), "{e}");
        assert!(p
            .int("limit", Some(10), 1, 100)
            .unwrap_err()
            .to_string()
            .contains("limit"));
        assert!(p.int("empty", Some(1), 0, 9).is_err());
        assert_eq!(p.int("ok", None, 1, 5).unwrap(), 5);
        assert_eq!(p.int("absent", Some(3), 1, 5).unwrap(), 3);
        assert!(p.int("absent", None, 1, 5).is_err());
    }

    #[test]
    fn choice_is_case_insensitive() {
        let p = Params::from_pairs([("format", "CSV"), ("bad", "xml")]);
        assert_eq!(p.choice("format", "json", &["json", "csv"]).unwrap(), "csv");
        assert_eq!(
            p.choice("missing", "json", &["json", "csv"]).unwrap(),
            "json"
        );
        assert!(p
            .choice("bad", "json", &["json", "csv"])
            .unwrap_err()
            .to_string()
            .contains("bad"));
    }

    #[test]
    fn an_enum_issue_names_the_choices_as_fastapi_does() {
        let p = Params::from_pairs([("format", "xml")]);
        let body = p
            .choice("format", "json", &["json", "csv", "xlsx"])
            .unwrap_err()
            .body();
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["detail"][0]["type"], "enum", "{v}");
        assert_eq!(
            v["detail"][0]["ctx"]["expected"], "'json', 'csv' or 'xlsx'",
            "{v}"
        );
    }
}
