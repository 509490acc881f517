//! Match rules (`equals`, `starts_with`, `ends_with`, `contains`, `regex`,
//! `or`, `and`) compiled once at load.
//!
//! Matching is case-insensitive: names are lower-cased before matching and
//! the rules' literals are lower-cased at compile time, regexes are compiled
//! case-insensitive. The catalogue mixes cases (`Qwen/Qwen3-14B-FP8`,
//! `MiniMax-M…`) while callers send whatever their SDK returned, and no two
//! models of the snapshot differ only by case.

use std::fmt;

use regex_lite::{Regex, RegexBuilder};

use super::data::RawClause;
use super::CatalogueError;

/// A compiled match rule.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Equals(Box<str>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Contains(Box<str>),
    Regex(Regex),
    Or(Vec<Matcher>),
    And(Vec<Matcher>),
}

impl Matcher {
    /// Compiles a rule; `what` names its place in the catalogue for errors.
    pub(crate) fn compile(
        raw: &RawClause,
        what: &dyn fmt::Display,
    ) -> Result<Matcher, CatalogueError> {
        Ok(match raw {
            RawClause::Equals(s) => Matcher::Equals(s.to_lowercase().into()),
            RawClause::StartsWith(s) => Matcher::StartsWith(s.to_lowercase().into()),
            RawClause::EndsWith(s) => Matcher::EndsWith(s.to_lowercase().into()),
            RawClause::Contains(s) => Matcher::Contains(s.to_lowercase().into()),
            RawClause::Regex(pattern) => Matcher::Regex(compile_regex(pattern, what)?),
            RawClause::Or(items) => Matcher::Or(compile_all(items, what)?),
            RawClause::And(items) => Matcher::And(compile_all(items, what)?),
        })
    }

    /// Whether `lower` (an already lower-cased name) satisfies the rule.
    /// `regex` searches anywhere in the name unless the pattern anchors itself.
    pub(crate) fn is_match(&self, lower: &str) -> bool {
        match self {
            Matcher::Equals(s) => lower == &**s,
            Matcher::StartsWith(s) => lower.starts_with(&**s),
            Matcher::EndsWith(s) => lower.ends_with(&**s),
            Matcher::Contains(s) => lower.contains(&**s),
            Matcher::Regex(re) => re.is_match(lower),
            Matcher::Or(items) => items.iter().any(|m| m.is_match(lower)),
            Matcher::And(items) => items.iter().all(|m| m.is_match(lower)),
        }
    }
}

fn compile_all(
    items: &[RawClause],
    what: &dyn fmt::Display,
) -> Result<Vec<Matcher>, CatalogueError> {
    items.iter().map(|c| Matcher::compile(c, what)).collect()
}

/// Compiles a case-insensitive regex (model rules, API URL patterns).
pub(crate) fn compile_regex(
    pattern: &str,
    what: &dyn fmt::Display,
) -> Result<Regex, CatalogueError> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map_err(|e| CatalogueError::Regex {
            what: what.to_string(),
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Matcher {
        let raw: RawClause = serde_json::from_str(json).expect("valid rule");
        Matcher::compile(&raw, &"test").expect("compiles")
    }

    #[test]
    fn equals_is_whole_name_only() {
        let m = rule(r#"{"equals": "gpt-4o"}"#);
        assert!(m.is_match("gpt-4o"));
        assert!(!m.is_match("gpt-4o-mini"));
        assert!(!m.is_match("x-gpt-4o"));
    }

    #[test]
    fn starts_ends_contains() {
        let s = rule(r#"{"starts_with": "claude-3"}"#);
        assert!(s.is_match("claude-3-haiku"));
        assert!(!s.is_match("anthropic.claude-3"));
        let e = rule(r#"{"ends_with": "-latest"}"#);
        assert!(e.is_match("mistral-large-latest"));
        assert!(!e.is_match("latest-mistral"));
        let c = rule(r#"{"contains": "sonnet"}"#);
        assert!(c.is_match("us.anthropic.claude-sonnet-4"));
        assert!(!c.is_match("claude-opus-4"));
    }

    #[test]
    fn regex_searches_and_respects_anchors() {
        let free = rule(r#"{"regex": "(?:mi|code)stral"}"#);
        assert!(free.is_match("codestral-latest"));
        assert!(free.is_match("open-mistral-7b"), "search, not full match");
        assert!(!free.is_match("pixtral"));
        let anchored = rule(r#"{"regex": "^grok-4\\.3-\\d{8}$"}"#);
        assert!(anchored.is_match("grok-4.3-20260101"));
        assert!(!anchored.is_match("grok-4.3-2026010"));
        assert!(!anchored.is_match("x-grok-4.3-20260101"));
        assert!(!anchored.is_match("grok-4x3-20260101"), "escaped dot");
    }

    #[test]
    fn or_and_combine() {
        let or = rule(r#"{"or": [{"equals": "a"}, {"starts_with": "b-"}]}"#);
        assert!(or.is_match("a"));
        assert!(or.is_match("b-1"));
        assert!(!or.is_match("c"));
        let and = rule(r#"{"and": [{"contains": "huggingface"}, {"contains": "groq"}]}"#);
        assert!(and.is_match("huggingface/groq"));
        assert!(!and.is_match("groq"));
        assert!(!and.is_match("huggingface"));
        let empty_or = rule(r#"{"or": []}"#);
        assert!(!empty_or.is_match("anything"));
        let empty_and = rule(r#"{"and": []}"#);
        assert!(empty_and.is_match("anything"));
    }

    #[test]
    fn literals_and_regexes_ignore_case() {
        let m = rule(r#"{"equals": "Qwen/Qwen3-14B-FP8"}"#);
        assert!(m.is_match("qwen/qwen3-14b-fp8"));
        let r = rule(r#"{"regex": "^MiniMax-M\\d"}"#);
        assert!(r.is_match("minimax-m2"));
    }

    #[test]
    fn bad_regex_is_a_load_error() {
        let raw: RawClause = serde_json::from_str(r#"{"regex": "("}"#).expect("valid json");
        let err = Matcher::compile(&raw, &"model x").expect_err("unbalanced group");
        assert!(err.to_string().contains("model x"), "{err}");
    }
}
