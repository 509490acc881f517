//! Validated query parameters.
//!
//! Parameters are read as strings and checked by hand, so an error names the
//! parameter and its allowed range (serde's messages name neither reliably).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::error::ApiError;

/// The query string of a request, as decoded key/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(map)) => Ok(Params(map)),
            Err(e) => Err(ApiError::BadRequest(format!(
                "malformed query string: {}",
                e.body_text()
            ))),
        }
    }
}

impl Params {
    /// Params from pairs (tests, internal callers).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
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
                    ApiError::param(name, format!("required (integer {min}..={max})"))
                })
            }
        };
        let v: i64 = raw.trim().parse().map_err(|_| {
            ApiError::param(
                name,
                format!("{raw:?} is not an integer (expected {min}..={max})"),
            )
        })?;
        if v < min || v > max {
            return Err(ApiError::param(
                name,
                format!("{v} is out of range {min}..={max}"),
            ));
        }
        Ok(v)
    }

    /// [`Params::int`] for `u32` ranges.
    pub fn u32(
        &self,
        name: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, ApiError> {
        // The range check above guarantees the value fits.
        self.int(name, Some(default.into()), min.into(), max.into())
            .map(|v| u32::try_from(v).unwrap_or(default))
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
                ApiError::param(
                    name,
                    format!("{raw:?} is not one of {}", choices.join(", ")),
                )
            })
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
}
