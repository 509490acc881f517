//! The data-driven usage extractor: the catalogue's `extractors` say, per
//! provider and API flavour, where a response body holds the model name and
//! the token counts.
//!
//! Semantics (the schema's, plus two choices of ours, marked *):
//! - `root` must lead to an object; every mapping `path` is read under it.
//! - A path is a list of keys and `array-match` steps; an array-match picks
//!   the first object of an array whose `field` satisfies its rule (Gemini's
//!   per-modality `promptTokensDetails`, for instance).
//! - Mappings with the same `dest` add up (Anthropic: `input_tokens` +
//!   `cache_read_input_tokens` + `cache_creation_input_tokens` = all input).
//! - A missing `required` value is an error, a missing optional one is
//!   skipped; a value that is not a non-negative integer is an error; *a JSON
//!   `null` counts as missing (Anthropic sends `null` cache counts).
//! - At least one mapping must produce a value.
//! - *The model name is optional: Bedrock Converse responses carry none, and
//!   the caller knows the model it asked for.
//! - *Reasoning tokens are not in the catalogue's mappings; they are read from
//!   the well-known fields (`completion_tokens_details.reasoning_tokens`,
//!   `output_tokens_details.reasoning_tokens`, Gemini's `thoughtsTokenCount`)
//!   for reporting only: every flavour already counts them in `output_tokens`.

use std::fmt;

use serde_json::Value;

use super::data::{RawExtractor, RawPath, RawStep, UsageField};
use super::matching::Matcher;
use super::{CatalogueError, CatalogueUsage, ExtractError};

/// Where reasoning tokens sit under the usage root, by API family.
const REASONING_PATHS: [&[&str]; 3] = [
    &["completion_tokens_details", "reasoning_tokens"],
    &["output_tokens_details", "reasoning_tokens"],
    &["thoughtsTokenCount"],
];

/// Usage read from a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedUsage {
    /// The model name the response reports, when it has one.
    pub model: Option<String>,
    /// The token counts, `input_tokens` counting every input token.
    pub usage: CatalogueUsage,
}

#[derive(Debug, Clone)]
enum Step {
    Key(Box<str>),
    ArrayMatch { field: Box<str>, matcher: Matcher },
}

impl Step {
    fn label(&self) -> String {
        match self {
            Step::Key(k) => k.to_string(),
            Step::ArrayMatch { field, .. } => format!("[{field}=…]"),
        }
    }
}

/// A compiled path; never empty.
#[derive(Debug, Clone)]
struct Path(Box<[Step]>);

impl Path {
    fn compile(raw: &RawPath, what: &dyn fmt::Display) -> Result<Path, CatalogueError> {
        let steps: Vec<Step> = match raw {
            RawPath::One(k) => vec![Step::Key(k.as_str().into())],
            RawPath::Many(items) => items
                .iter()
                .map(|s| match s {
                    RawStep::Key(k) => Ok(Step::Key(k.as_str().into())),
                    RawStep::ArrayMatch(a) => {
                        if a.kind != "array-match" {
                            return Err(CatalogueError::Invalid {
                                what: what.to_string(),
                                reason: format!("unknown path step type {:?}", a.kind),
                            });
                        }
                        Ok(Step::ArrayMatch {
                            field: a.field.as_str().into(),
                            matcher: Matcher::compile(&a.matcher, what)?,
                        })
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        if steps.is_empty() {
            return Err(CatalogueError::Invalid {
                what: what.to_string(),
                reason: "empty path".to_owned(),
            });
        }
        Ok(Path(steps.into()))
    }

    fn dotted(&self, prefix: Option<&Path>) -> String {
        let mut parts: Vec<String> = prefix
            .map(|p| p.0.iter().map(Step::label).collect())
            .unwrap_or_default();
        parts.extend(self.0.iter().map(Step::label));
        parts.join(".")
    }

    /// Follows the path; `Ok(None)` when a step is absent (or `null`).
    /// `prefix` only names the full path in errors.
    fn resolve<'v>(
        &self,
        data: &'v Value,
        prefix: Option<&Path>,
    ) -> Result<Option<&'v Value>, ExtractError> {
        let mut cur = data;
        for step in self.0.iter() {
            let next = match step {
                Step::Key(k) => match cur {
                    Value::Object(map) => map.get(&**k),
                    _ => {
                        return Err(ExtractError::WrongType {
                            path: self.dotted(prefix),
                            expected: "an object on the way",
                        })
                    }
                },
                Step::ArrayMatch { field, matcher } => match cur {
                    Value::Array(items) => items.iter().find(|item| {
                        item.get(&**field)
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty() && matcher.is_match(&s.to_lowercase()))
                    }),
                    _ => {
                        return Err(ExtractError::WrongType {
                            path: self.dotted(prefix),
                            expected: "an array on the way",
                        })
                    }
                },
            };
            match next {
                None | Some(Value::Null) => return Ok(None),
                Some(v) => cur = v,
            }
        }
        Ok(Some(cur))
    }
}

#[derive(Debug, Clone)]
struct Mapping {
    path: Path,
    dest: UsageField,
    required: bool,
}

/// One provider's extractor for one API flavour.
#[derive(Debug, Clone)]
pub(crate) struct Extractor {
    pub(crate) flavour: Box<str>,
    root: Path,
    model_path: Path,
    mappings: Box<[Mapping]>,
}

impl Extractor {
    pub(crate) fn compile(
        raw: &RawExtractor,
        what: &dyn fmt::Display,
    ) -> Result<Extractor, CatalogueError> {
        let what = format!("{what}, extractor {:?}", raw.api_flavor);
        Ok(Extractor {
            flavour: raw.api_flavor.as_str().into(),
            root: Path::compile(&raw.root, &what)?,
            model_path: Path::compile(&raw.model_path, &what)?,
            mappings: raw
                .mappings
                .iter()
                .map(|m| {
                    Ok(Mapping {
                        path: Path::compile(&m.path, &what)?,
                        dest: m.dest,
                        required: m.required,
                    })
                })
                .collect::<Result<_, CatalogueError>>()?,
        })
    }

    /// Reads the model name and usage out of `body`.
    pub(crate) fn extract(&self, body: &Value) -> Result<ExtractedUsage, ExtractError> {
        let model = match self.model_path.resolve(body, None)? {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ExtractError::WrongType {
                    path: self.model_path.dotted(None),
                    expected: "a string",
                })
            }
        };
        let root = match self.root.resolve(body, None)? {
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                return Err(ExtractError::WrongType {
                    path: self.root.dotted(None),
                    expected: "an object",
                })
            }
            None => {
                return Err(ExtractError::Missing {
                    path: self.root.dotted(None),
                })
            }
        };
        let mut usage = CatalogueUsage::default();
        let mut any = false;
        for m in self.mappings.iter() {
            let value = match m.path.resolve(root, Some(&self.root))? {
                None if m.required => {
                    return Err(ExtractError::Missing {
                        path: m.path.dotted(Some(&self.root)),
                    })
                }
                None => continue,
                Some(v) => v.as_u64().ok_or_else(|| ExtractError::WrongType {
                    path: m.path.dotted(Some(&self.root)),
                    expected: "a non-negative integer",
                })?,
            };
            any = true;
            let slot = match m.dest {
                UsageField::InputTokens => &mut usage.input_tokens,
                UsageField::CacheReadTokens => &mut usage.cache_read_tokens,
                UsageField::CacheWriteTokens => &mut usage.cache_write_tokens,
                UsageField::OutputTokens => &mut usage.output_tokens,
                UsageField::InputAudioTokens => &mut usage.input_audio_tokens,
                UsageField::CacheAudioReadTokens => &mut usage.cache_audio_read_tokens,
                UsageField::OutputAudioTokens => &mut usage.output_audio_tokens,
            };
            *slot = slot.checked_add(value).ok_or(ExtractError::TooLarge)?;
        }
        if !any {
            return Err(ExtractError::NoUsage {
                path: self.root.dotted(None),
            });
        }
        usage.reasoning_tokens = REASONING_PATHS
            .iter()
            .find_map(|path| {
                path.iter()
                    .try_fold(root, |v, k| v.get(*k))
                    .and_then(Value::as_u64)
            })
            .unwrap_or(0);
        Ok(ExtractedUsage { model, usage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extractor(json: &str) -> Extractor {
        let raw: RawExtractor = serde_json::from_str(json).expect("valid extractor");
        Extractor::compile(&raw, &"test").expect("compiles")
    }

    const SUMMING: &str = r#"{"root": "usage", "mappings": [
        {"path": "input_tokens", "dest": "input_tokens"},
        {"path": "cache_read_input_tokens", "dest": "input_tokens", "required": false},
        {"path": "cache_read_input_tokens", "dest": "cache_read_tokens", "required": false},
        {"path": "output_tokens", "dest": "output_tokens"}]}"#;

    #[test]
    fn same_dest_sums_and_optional_may_be_absent_or_null() {
        let e = extractor(SUMMING);
        assert_eq!(&*e.flavour, "default");
        let got = e
            .extract(&json!({"model": "m", "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 5}}))
            .expect("extracts");
        assert_eq!(got.model.as_deref(), Some("m"));
        assert_eq!(
            (
                got.usage.input_tokens,
                got.usage.cache_read_tokens,
                got.usage.output_tokens
            ),
            (100, 90, 5)
        );
        let got = e
            .extract(&json!({"usage": {"input_tokens": 10, "cache_read_input_tokens": null, "output_tokens": 5}}))
            .expect("extracts");
        assert_eq!(got.model, None);
        assert_eq!(
            (got.usage.input_tokens, got.usage.cache_read_tokens),
            (10, 0)
        );
    }

    #[test]
    fn required_missing_and_wrong_types_are_errors() {
        let e = extractor(SUMMING);
        let err = e
            .extract(&json!({"usage": {"input_tokens": 10}}))
            .expect_err("no output_tokens");
        assert_eq!(err.to_string(), "missing value at `usage.output_tokens`");
        let err = e
            .extract(&json!({"usage": {"input_tokens": -1, "output_tokens": 1}}))
            .expect_err("negative");
        assert!(
            matches!(err, ExtractError::WrongType { ref path, .. } if path == "usage.input_tokens"),
            "{err}"
        );
        let err = e
            .extract(&json!({"usage": 3}))
            .expect_err("root not an object");
        assert!(matches!(err, ExtractError::WrongType { .. }), "{err}");
        let err = e.extract(&json!({"other": {}})).expect_err("no root");
        assert!(matches!(err, ExtractError::Missing { .. }), "{err}");
        let err = e
            .extract(&json!({"model": 7, "usage": {"input_tokens": 1, "output_tokens": 1}}))
            .expect_err("model not a string");
        assert!(matches!(err, ExtractError::WrongType { .. }), "{err}");
    }

    #[test]
    fn all_optional_and_absent_is_no_usage() {
        let e = extractor(
            r#"{"root": "usage", "mappings": [{"path": ["tokens", "input_tokens"], "dest": "input_tokens", "required": false}]}"#,
        );
        assert!(matches!(
            e.extract(&json!({"usage": {}})),
            Err(ExtractError::NoUsage { .. })
        ));
        let got = e
            .extract(&json!({"usage": {"tokens": {"input_tokens": 4}}}))
            .expect("nested key");
        assert_eq!(got.usage.input_tokens, 4);
    }

    #[test]
    fn array_match_picks_the_matching_item() {
        let e = extractor(
            r#"{"root": "usageMetadata", "model_path": "modelVersion", "mappings": [
                {"path": "promptTokenCount", "dest": "input_tokens"},
                {"path": ["promptTokensDetails", {"type": "array-match", "field": "modality", "match": {"equals": "AUDIO"}}, "tokenCount"],
                 "dest": "input_audio_tokens", "required": false}]}"#,
        );
        let body = json!({"modelVersion": "g", "usageMetadata": {"promptTokenCount": 30,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 20}, {"modality": "AUDIO", "tokenCount": 10}]}});
        let got = e.extract(&body).expect("extracts");
        assert_eq!(
            (got.usage.input_tokens, got.usage.input_audio_tokens),
            (30, 10)
        );
        let text_only = json!({"usageMetadata": {"promptTokenCount": 30,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 30}]}});
        assert_eq!(
            e.extract(&text_only)
                .expect("optional")
                .usage
                .input_audio_tokens,
            0
        );
        let not_array = json!({"usageMetadata": {"promptTokenCount": 1, "promptTokensDetails": {"modality": "AUDIO"}}});
        assert!(matches!(
            e.extract(&not_array),
            Err(ExtractError::WrongType { .. })
        ));
    }

    #[test]
    fn reasoning_tokens_are_read_for_reporting() {
        let e = extractor(
            r#"{"root": "usage", "mappings": [{"path": "completion_tokens", "dest": "output_tokens"}]}"#,
        );
        let got = e
            .extract(&json!({"usage": {"completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 30}}}))
            .expect("extracts");
        assert_eq!(
            (got.usage.output_tokens, got.usage.reasoning_tokens),
            (50, 30)
        );
    }
}
