//! Values that must never be shown: signing secrets and the tokens some
//! providers put in the webhook URL itself.

use std::fmt;

/// What a redacted value is shown as.
pub const REDACTED: &str = "***";

/// A signing secret. Its `Debug` shows `Secret(***)` and it has no
/// `Display`, so it cannot leak through logs or error messages by accident;
/// [`Secret::expose`] is the one way to read it (for signing).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for computing a signature.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

/// A channel's webhook URL. Several providers put the credential in it (WeCom's
/// `key=`, DingTalk's `access_token=`, the token path of Feishu and Slack
/// hooks), so `Display` and `Debug` show it redacted:
/// every query value and every path segment after `hook/` (Feishu) or
/// `services/` (Slack) become `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelUrl(url::Url);

impl ChannelUrl {
    pub(crate) fn new(url: url::Url) -> ChannelUrl {
        ChannelUrl(url)
    }

    /// The full URL, credentials included: only for sending.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    /// The URL with its credentials replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Display for ChannelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ChannelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelUrl({})", self.redacted())
    }
}

/// `url` with every query value, the user info and the token segments of
/// known hook paths replaced by `***`.
pub fn redact_url(url: &url::Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str(REDACTED);
        out.push('@');
    }
    out.push_str(url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    // Segments after one of these are the hook's token.
    let mut hide_rest = false;
    if let Some(segments) = url.path_segments() {
        for segment in segments {
            out.push('/');
            if hide_rest {
                out.push_str(REDACTED);
            } else {
                out.push_str(segment);
                hide_rest = segment == "hook" || segment == "services";
            }
        }
    }
    let mut first = true;
    for (name, _) in url.query_pairs() {
        out.push(if first { '?' } else { '&' });
        first = false;
        out.push_str(&name);
        out.push('=');
        out.push_str(REDACTED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(s: &str) -> String {
        redact_url(&url::Url::parse(s).unwrap())
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let s = Secret::new("SEC-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "SEC-very-secret");
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            red("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
        );
        assert_eq!(
            red("https://oapi.dingtalk.com/robot/send?access_token=abc123"),
            "https://oapi.dingtalk.com/robot/send?access_token=***"
        );
        assert_eq!(
            red("https://open.feishu.cn/open-apis/bot/v2/hook/0b8e-uuid"),
            "https://open.feishu.cn/open-apis/bot/v2/hook/***"
        );
        assert_eq!(
            red("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/services/***/***/***"
        );
        assert_eq!(
            red("http://u:p@127.0.0.1:8080/alerts"),
            "http://***@127.0.0.1:8080/alerts"
        );
    }
}
