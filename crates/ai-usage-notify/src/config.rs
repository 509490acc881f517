//! One alert channel as written in `budgets.json`'s `"notify"` map, checked
//! when it is read so that a bad entry is reported with the field at fault.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::secret::{ChannelUrl, Secret};

/// Where alerts go: the provider, which decides the message format and the
/// signing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// 飞书 / Lark custom bot (`text` or `interactive` message; optional
    /// signature in the body).
    Feishu,
    /// 钉钉 robot (`markdown` message; optional signature in the URL).
    DingTalk,
    /// 企业微信 group robot (`markdown` message; the key is in the URL).
    WeCom,
    /// Slack incoming webhook (`{"text": …}`).
    Slack,
    /// This project's JSON event, optionally signed in the
    /// `X-AI-Usage-Signature` header.
    Webhook,
}

impl ChannelKind {
    /// Every kind, in documentation order.
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::Feishu,
        ChannelKind::DingTalk,
        ChannelKind::WeCom,
        ChannelKind::Slack,
        ChannelKind::Webhook,
    ];

    /// The name used in `budgets.json`: `feishu`, `dingtalk`, `wecom`,
    /// `slack`, `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Feishu => "feishu",
            ChannelKind::DingTalk => "dingtalk",
            ChannelKind::WeCom => "wecom",
            ChannelKind::Slack => "slack",
            ChannelKind::Webhook => "webhook",
        }
    }

    /// True for the kinds that answer HTTP 200 with a JSON `code`/`errcode`
    /// that must be 0 for the message to have been accepted.
    pub fn has_provider_code(self) -> bool {
        matches!(
            self,
            ChannelKind::Feishu | ChannelKind::DingTalk | ChannelKind::WeCom
        )
    }

    /// True for the kinds that take a `secret`.
    pub fn is_signable(self) -> bool {
        matches!(
            self,
            ChannelKind::Feishu | ChannelKind::DingTalk | ChannelKind::Webhook
        )
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<ChannelKind, ConfigError> {
        let lower = s.trim().to_ascii_lowercase();
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| ConfigError::Invalid {
                field: "kind",
                reason: format!(
                    "unknown kind {s:?} (expected one of feishu, dingtalk, wecom, slack, webhook)"
                ),
            })
    }
}

/// The language of the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// 中文 (the default).
    #[default]
    Zh,
    /// English.
    En,
}

/// The message type of a Feishu custom bot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FeishuMsgType {
    /// A plain `text` message (the default).
    #[default]
    Text,
    /// An `interactive` message card with a coloured header and, when the
    /// dashboard's public URL is known, a button to it.
    Interactive,
}

/// A channel's configuration is wrong; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required field is absent or empty.
    #[error("notify channel: field `{0}` is required")]
    Missing(&'static str),
    /// A field has a value that cannot be used.
    #[error("notify channel: field `{field}`: {reason}")]
    Invalid {
        /// The field at fault (`kind`, `url`, `secret`, `language`, `msg_type`).
        field: &'static str,
        /// What is wrong (never contains the secret).
        reason: String,
    },
    /// The JSON itself does not parse (the text never quotes values).
    #[error("notify channel: {0}")]
    Json(String),
}

/// One alert channel: the value of an entry of `budgets.json`'s `"notify"`
/// map, e.g. `{"kind": "feishu", "url": "https://open.feishu.cn/…", "secret": "…"}`.
///
/// Fields: `kind` (required), `url` (required, `http://` or `https://`),
/// `secret` (optional; Feishu, DingTalk and webhook only), `language`
/// (`zh`, the default, or `en`), `msg_type` (Feishu only: `text`, the
/// default, or `interactive`). Unknown fields are an error, so a typo does
/// not silently turn signing off.
///
/// ```
/// use ai_usage_notify::{ChannelConfig, ChannelKind, Language};
/// let c: ChannelConfig = serde_json::from_str(
///     r#"{"kind": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K-123", "language": "en"}"#,
/// ).unwrap();
/// assert_eq!(c.kind(), ChannelKind::WeCom);
/// assert_eq!(c.language(), Language::En);
/// // The key never shows.
/// assert!(!format!("{c:?}").contains("K-123"));
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawChannelConfig")]
pub struct ChannelConfig {
    kind: ChannelKind,
    url: ChannelUrl,
    secret: Option<Secret>,
    language: Language,
    msg_type: FeishuMsgType,
}

/// The JSON as written, checked by [`ChannelConfig::from_raw`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannelConfig {
    kind: Option<String>,
    url: Option<String>,
    secret: Option<String>,
    language: Option<String>,
    msg_type: Option<String>,
}

impl TryFrom<RawChannelConfig> for ChannelConfig {
    type Error = ConfigError;
    fn try_from(raw: RawChannelConfig) -> Result<ChannelConfig, ConfigError> {
        ChannelConfig::from_raw(raw)
    }
}

impl ChannelConfig {
    /// A checked channel of `kind` posting to `url`, without a secret, in
    /// Chinese; see the `with_*` methods for the options.
    pub fn new(kind: ChannelKind, url: &str) -> Result<ChannelConfig, ConfigError> {
        Ok(ChannelConfig {
            kind,
            url: check_url(kind, url)?,
            secret: None,
            language: Language::default(),
            msg_type: FeishuMsgType::default(),
        })
    }

    /// Parses and checks one channel from JSON text.
    pub fn from_json(text: &str) -> Result<ChannelConfig, ConfigError> {
        serde_json::from_str::<RawChannelConfig>(text)
            .map_err(|e| ConfigError::Json(json_error_text(&e)))
            .and_then(ChannelConfig::from_raw)
    }

    fn from_raw(raw: RawChannelConfig) -> Result<ChannelConfig, ConfigError> {
        let kind: ChannelKind = match raw.kind.as_deref() {
            None | Some("") => return Err(ConfigError::Missing("kind")),
            Some(k) => k.parse()?,
        };
        let url = match raw.url.as_deref().map(str::trim) {
            None | Some("") => return Err(ConfigError::Missing("url")),
            Some(u) => u,
        };
        let mut config = ChannelConfig::new(kind, url)?;
        if let Some(secret) = raw.secret {
            config = config.with_secret(secret)?;
        }
        if let Some(language) = raw.language {
            config.language = match language.trim().to_ascii_lowercase().as_str() {
                "zh" | "zh-cn" | "cn" => Language::Zh,
                "en" => Language::En,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "language",
                        reason: format!("unknown language {language:?} (expected zh or en)"),
                    })
                }
            };
        }
        if let Some(msg_type) = raw.msg_type {
            let parsed = match msg_type.trim() {
                "text" => FeishuMsgType::Text,
                "interactive" => FeishuMsgType::Interactive,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "msg_type",
                        reason: format!(
                            "unknown msg_type {msg_type:?} (expected text or interactive)"
                        ),
                    })
                }
            };
            config = config.with_feishu_msg_type(parsed)?;
        }
        Ok(config)
    }

    /// Adds the signing secret (Feishu, DingTalk and webhook only; WeCom and
    /// Slack hooks carry their credential in the URL).
    pub fn with_secret(mut self, secret: impl Into<String>) -> Result<ChannelConfig, ConfigError> {
        let secret = secret.into();
        if secret.trim().is_empty() {
            return Err(ConfigError::Invalid {
                field: "secret",
                reason: "is empty (leave it out for an unsigned channel)".into(),
            });
        }
        if !self.kind.is_signable() {
            return Err(ConfigError::Invalid {
                field: "secret",
                reason: format!(
                    "{} hooks are not signed: the credential is part of the url",
                    self.kind
                ),
            });
        }
        self.secret = Some(Secret::new(secret.trim()));
        Ok(self)
    }

    /// Sets the message language.
    pub fn with_language(mut self, language: Language) -> ChannelConfig {
        self.language = language;
        self
    }

    /// Sets the Feishu message type (an error for the other kinds).
    pub fn with_feishu_msg_type(
        mut self,
        msg_type: FeishuMsgType,
    ) -> Result<ChannelConfig, ConfigError> {
        if self.kind != ChannelKind::Feishu {
            return Err(ConfigError::Invalid {
                field: "msg_type",
                reason: format!("only feishu channels have a msg_type, not {}", self.kind),
            });
        }
        self.msg_type = msg_type;
        Ok(self)
    }

    /// The provider.
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// The webhook URL (shown redacted).
    pub fn url(&self) -> &ChannelUrl {
        &self.url
    }

    /// The signing secret, if any.
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// The message language.
    pub fn language(&self) -> Language {
        self.language
    }

    /// The Feishu message type (always `Text` for the other kinds).
    pub fn feishu_msg_type(&self) -> FeishuMsgType {
        self.msg_type
    }
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("secret", &self.secret)
            .field("language", &self.language)
            .field("msg_type", &self.msg_type)
            .finish()
    }
}

impl fmt::Display for ChannelConfig {
    /// `feishu https://open.feishu.cn/open-apis/bot/v2/hook/*** (signed)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.url)?;
        if self.secret.is_some() {
            f.write_str(" (signed)")?;
        }
        Ok(())
    }
}

/// Checks the URL: absolute `http(s)` with a host, and for the kinds whose
/// credential is a query parameter, that parameter present.
fn check_url(kind: ChannelKind, text: &str) -> Result<ChannelUrl, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        field: "url",
        reason,
    };
    // The url parser's message never quotes the input, so it cannot leak a key.
    let url =
        url::Url::parse(text.trim()).map_err(|e| invalid(format!("not an absolute URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "scheme {:?} is not supported (expected https:// or http://)",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host".into()));
    }
    let required = match kind {
        ChannelKind::WeCom => Some("key"),
        ChannelKind::DingTalk => Some("access_token"),
        _ => None,
    };
    if let Some(name) = required {
        let present = url.query_pairs().any(|(k, v)| k == name && !v.is_empty());
        if !present {
            return Err(invalid(format!(
                "a {kind} robot URL carries `{name}=` in its query; copy the whole URL from the robot's settings"
            )));
        }
    }
    if kind == ChannelKind::DingTalk
        && url
            .query_pairs()
            .any(|(k, _)| k == "timestamp" || k == "sign")
    {
        return Err(invalid(
            "must not carry `timestamp`/`sign`: they are added per message from `secret`".into(),
        ));
    }
    Ok(ChannelUrl::new(url))
}

/// A serde_json error's position and category, without the offending text
/// (which could be a secret).
fn json_error_text(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Data => {
            // Data errors name fields and types ("unknown field `secrt`"),
            // never string values.
            return e.to_string();
        }
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Io => "unreadable JSON",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        ChannelConfig::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_kind_with_options() {
        let c = ChannelConfig::from_json(
            r#"{"kind":"feishu","url":"https://open.feishu.cn/open-apis/bot/v2/hook/abc","secret":"s3","language":"en","msg_type":"interactive"}"#,
        )
        .unwrap();
        assert_eq!(c.kind(), ChannelKind::Feishu);
        assert_eq!(c.language(), Language::En);
        assert_eq!(c.feishu_msg_type(), FeishuMsgType::Interactive);
        assert_eq!(c.secret().map(Secret::expose), Some("s3"));
        for kind in ChannelKind::ALL {
            let url = match kind {
                ChannelKind::WeCom => "https://h/x?key=k",
                ChannelKind::DingTalk => "https://h/x?access_token=t",
                _ => "https://h/x",
            };
            let c =
                ChannelConfig::from_json(&format!(r#"{{"kind":"{kind}","url":"{url}"}}"#)).unwrap();
            assert_eq!(c.kind(), kind);
            assert_eq!(c.language(), Language::Zh);
            assert_eq!(c.feishu_msg_type(), FeishuMsgType::Text);
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"{"kind":"teams","url":"https://h"}"#).contains("field `kind`"));
        assert!(err(r#"{"url":"https://h"}"#).contains("field `kind` is required"));
        assert!(err(r#"{"kind":"slack"}"#).contains("field `url` is required"));
        assert!(err(r#"{"kind":"slack","url":"hooks.slack.com/x"}"#).contains("field `url`"));
        assert!(err(r#"{"kind":"slack","url":"ftp://h/x"}"#).contains("field `url`"));
        assert!(err(r#"{"kind":"wecom","url":"https://h/send"}"#).contains("`key=`"));
        assert!(err(r#"{"kind":"dingtalk","url":"https://h/send"}"#).contains("`access_token=`"));
        assert!(err(r#"{"kind":"slack","url":"https://h","language":"fr"}"#)
            .contains("field `language`"));
        assert!(
            err(r#"{"kind":"slack","url":"https://h","msg_type":"text"}"#)
                .contains("field `msg_type`")
        );
        assert!(
            err(r#"{"kind":"feishu","url":"https://h","msg_type":"post"}"#)
                .contains("field `msg_type`")
        );
        assert!(err(r#"{"kind":"feishu","url":"https://h","secrt":"x"}"#)
            .contains("unknown field `secrt`"));
    }

    #[test]
    fn secrets_stay_out_of_errors_debug_and_display() {
        let e = err(r#"{"kind":"wecom","url":"https://h/send?key=KEY-42","secret":"SEC-42"}"#);
        assert!(e.contains("field `secret`"), "{e}");
        assert!(!e.contains("SEC-42") && !e.contains("KEY-42"), "{e}");
        // A syntax error right after a secret does not quote it.
        let e = err(r#"{"kind":"feishu","url":"https://h","secret":"SEC-42" oops}"#);
        assert!(!e.contains("SEC-42"), "{e}");
        let c = ChannelConfig::from_json(
            r#"{"kind":"dingtalk","url":"https://oapi.dingtalk.com/robot/send?access_token=TOK-42","secret":"SEC-42"}"#,
        )
        .unwrap();
        for shown in [format!("{c:?}"), c.to_string()] {
            assert!(
                !shown.contains("SEC-42") && !shown.contains("TOK-42"),
                "{shown}"
            );
            assert!(shown.contains("access_token=***"), "{shown}");
        }
        // Through serde as part of a larger document too.
        let map: std::collections::BTreeMap<String, ChannelConfig> = serde_json::from_str(
            r#"{"ops":{"kind":"feishu","url":"https://open.feishu.cn/open-apis/bot/v2/hook/HOOK-42","secret":"SEC-42"}}"#,
        )
        .unwrap();
        let shown = format!("{map:?}");
        assert!(
            !shown.contains("SEC-42") && !shown.contains("HOOK-42"),
            "{shown}"
        );
    }
}
