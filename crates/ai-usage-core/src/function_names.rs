//! The function display table: how a recorded function name (`live_review`)
//! is shown in `by_function` groups of the HTTP API (`直播复盘`).
//!
//! It is data, not code: the defaults are the original's table, and
//! users add or override entries from code ([`crate::MonitorBuilder::function_name`])
//! or a file ([`crate::MonitorBuilder::function_names_file`], or the file named
//! by [`FUNCTION_NAMES_ENV`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Environment variable naming a function display table file (TOML or JSON)
/// merged over the defaults when a monitor is built.
pub const FUNCTION_NAMES_ENV: &str = "AI_USAGE_FUNCTION_NAMES";

/// The original's display table.
const DEFAULTS: [(&str, &str); 10] = [
    ("live_review", "直播复盘"),
    ("gateway_qwen", "实时分析（通义千问）"),
    ("gateway_openai", "实时分析（OpenAI）"),
    ("gateway_deepseek", "实时分析（DeepSeek）"),
    ("gateway_doubao", "实时分析（豆包）"),
    ("gateway_glm", "实时分析（ChatGLM）"),
    ("gateway_gemini", "直播复盘（Gemini）"),
    ("live_analysis", "实时分析"),
    ("script_generation", "话术生成"),
    ("qa", "问答"),
];

/// Function name → display name. Names not in the table show as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionNames(BTreeMap<String, String>);

impl Default for FunctionNames {
    /// The original's table.
    fn default() -> Self {
        FunctionNames(
            DEFAULTS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl FunctionNames {
    /// A table without entries (every name shows as it is).
    pub fn empty() -> FunctionNames {
        FunctionNames(BTreeMap::new())
    }

    /// How `function` is shown: its table entry, else the name itself.
    pub fn display<'a>(&'a self, function: &'a str) -> &'a str {
        self.0.get(function).map_or(function, String::as_str)
    }

    /// Adds or replaces one entry.
    pub fn insert(&mut self, function: impl Into<String>, display: impl Into<String>) {
        self.0.insert(function.into(), display.into());
    }

    /// The entries, by function name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Merges a table file over this one and returns how many entries it
    /// had. The file is a flat map of strings, `live_review = "直播复盘"`
    /// (TOML) or `{"live_review": "直播复盘"}` (`.json`).
    pub fn load_file(&mut self, path: &Path) -> Result<usize> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "cannot read function names file",
            path: path.to_path_buf(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let entries = parse(&text, is_json).map_err(|message| Error::Config {
            setting: "function names file",
            message: format!("{}: {message}", path.display()),
        })?;
        let n = entries.len();
        self.0.extend(entries);
        Ok(n)
    }
}

/// Parses a flat name → display map; empty names or display names are refused
/// (an empty key would hide every call of that function behind "").
fn parse(text: &str, is_json: bool) -> std::result::Result<BTreeMap<String, String>, String> {
    let map: BTreeMap<String, String> = if is_json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        toml::from_str(text).map_err(|e| e.to_string())?
    };
    if let Some((k, _)) = map
        .iter()
        .find(|(k, v)| k.trim().is_empty() || v.trim().is_empty())
    {
        return Err(format!("entry {k:?} has an empty name or display name"));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_the_originals_names_and_pass_others_through() {
        let t = FunctionNames::default();
        assert_eq!(t.display("live_review"), "直播复盘");
        assert_eq!(t.display("gateway_qwen"), "实时分析（通义千问）");
        assert_eq!(t.display("qa"), "问答");
        assert_eq!(t.display("实时分析"), "实时分析");
        assert_eq!(t.display("unknown_fn"), "unknown_fn");
        assert_eq!(t.iter().count(), 10);
    }

    #[test]
    fn files_extend_and_override_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("names.toml");
        std::fs::write(&toml_path, "qa = \"客服问答\"\nsummarise = \"摘要\"\n").unwrap();
        let mut t = FunctionNames::default();
        assert_eq!(t.load_file(&toml_path).unwrap(), 2);
        assert_eq!(t.display("qa"), "客服问答");
        assert_eq!(t.display("summarise"), "摘要");
        assert_eq!(t.display("live_review"), "直播复盘");

        let json_path = dir.path().join("names.json");
        std::fs::write(&json_path, r#"{"translate": "翻译"}"#).unwrap();
        t.load_file(&json_path).unwrap();
        assert_eq!(t.display("translate"), "翻译");
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "qa = 3\n").unwrap();
        let e = FunctionNames::default().load_file(&p).unwrap_err();
        assert!(e.to_string().contains("bad.toml"), "{e}");
        std::fs::write(&p, "qa = \" \"\n").unwrap();
        assert!(FunctionNames::default().load_file(&p).is_err());
        let missing = FunctionNames::default().load_file(&dir.path().join("none.toml"));
        assert!(matches!(missing, Err(Error::Io { .. })));
    }
}
