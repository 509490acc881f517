//! Sending a prepared request and classifying the answer: delivered,
//! worth retrying, or a configuration error that retrying cannot fix.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{ChannelConfig, ChannelKind};
use crate::digest::DigestMessage;
use crate::message::AlertMessage;
use crate::notice::Notice;
use crate::request::{build_notice_request, PreparedRequest};

/// How long one delivery attempt may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of an answer read (providers answer with a few dozen).
const ANSWER_LIMIT: u64 = 64 * 1024;

/// Most characters of an answer quoted in an error.
const QUOTED_ANSWER_CHARS: usize = 200;

/// Provider codes that mean "slow down / busy" rather than "wrong set-up".
/// DingTalk 130101: sending too fast; WeCom 45009: frequency limit, -1:
/// system busy; Feishu 11232: frequency limited.
const RETRYABLE_PROVIDER_CODES: [(ChannelKind, i64); 4] = [
    (ChannelKind::DingTalk, 130101),
    (ChannelKind::WeCom, 45009),
    (ChannelKind::WeCom, -1),
    (ChannelKind::Feishu, 11232),
];

/// A delivery failed. The text names the channel with its URL redacted and
/// never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The receiver answered with a non-2xx status.
    #[error("{channel}: HTTP {status}{}", quoted(answer))]
    Status {
        /// The channel, redacted.
        channel: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        answer: String,
        /// The `Retry-After` delay (seconds form), if given.
        retry_after: Option<Duration>,
    },
    /// HTTP 2xx, but the provider's `code`/`errcode` says it refused the
    /// message (bad signature, missing keyword, rate limit, …).
    #[error("{channel}: refused with code {code}: {message}")]
    Provider {
        /// The channel, redacted.
        channel: String,
        /// The provider's code.
        code: i64,
        /// The provider's message.
        message: String,
        /// True for the rate-limit / busy codes.
        retryable: bool,
    },
    /// HTTP 2xx, but the answer is not the provider's JSON (the URL probably
    /// does not point at the provider).
    #[error("{channel}: unexpected answer{}", quoted(answer))]
    UnexpectedAnswer {
        /// The channel, redacted.
        channel: String,
        /// The start of the answer's body.
        answer: String,
    },
    /// No answer in time.
    #[error("{channel}: no answer within {timeout:?}")]
    Timeout {
        /// The channel, redacted.
        channel: String,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// Connecting or talking failed (refused, reset, host not found, …).
    #[error("{channel}: network error: {reason}")]
    Network {
        /// The channel, redacted.
        channel: String,
        /// What failed.
        reason: String,
    },
    /// The request cannot be made at all (e.g. `https://` without the
    /// `https` feature, a TLS certificate error, a bad proxy).
    #[error("{channel}: {reason}")]
    Setup {
        /// The channel, redacted.
        channel: String,
        /// What is wrong.
        reason: String,
    },
}

fn quoted(answer: &str) -> String {
    if answer.is_empty() {
        String::new()
    } else {
        format!(": {answer}")
    }
}

impl SendError {
    /// True when trying again later may succeed: 5xx, 429, a timeout, a
    /// network failure, or a provider's rate-limit code. False for
    /// configuration errors (other 4xx, bad signature or keyword, an
    /// unexpected answer), which must be fixed by a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Status { status, .. } => *status >= 500 || *status == 429,
            SendError::Provider { retryable, .. } => *retryable,
            SendError::Timeout { .. } | SendError::Network { .. } => true,
            SendError::UnexpectedAnswer { .. } | SendError::Setup { .. } => false,
        }
    }

    /// The delay the receiver asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Sends `message` to `config`'s channel with [`DEFAULT_TIMEOUT`].
pub fn send(config: &ChannelConfig, message: &AlertMessage) -> Result<(), SendError> {
    send_with_timeout(config, message, DEFAULT_TIMEOUT)
}

/// Sends `message` to `config`'s channel; one attempt of at most `timeout`.
pub fn send_with_timeout(
    config: &ChannelConfig,
    message: &AlertMessage,
    timeout: Duration,
) -> Result<(), SendError> {
    send_notice(config, &Notice::Alert(message.clone()), timeout)
}

/// Sends a digest to `config`'s channel with [`DEFAULT_TIMEOUT`].
pub fn send_digest(config: &ChannelConfig, digest: &DigestMessage) -> Result<(), SendError> {
    send_notice(
        config,
        &Notice::Digest(Box::new(digest.clone())),
        DEFAULT_TIMEOUT,
    )
}

/// Sends an alert or a digest to `config`'s channel; one attempt of at
/// most `timeout`.
pub fn send_notice(
    config: &ChannelConfig,
    notice: &Notice,
    timeout: Duration,
) -> Result<(), SendError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let request = build_notice_request(config, notice, now_ms);
    let result = send_prepared(config, &request, timeout);
    match &result {
        Ok(()) => tracing::debug!(channel = %config, id = %notice.id(), "notice delivered"),
        Err(e) => tracing::warn!(
            channel = %config,
            id = %notice.id(),
            retryable = e.is_retryable(),
            error = %e,
            "notice delivery failed"
        ),
    }
    result
}

/// Sends a request built by [`build_request`](crate::build_request) for `config` and classifies
/// the answer.
pub fn send_prepared(
    config: &ChannelConfig,
    request: &PreparedRequest,
    timeout: Duration,
) -> Result<(), SendError> {
    let channel = config.to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
        .user_agent(concat!("ai-usage-notify/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut call = agent
        .post(request.url.as_str())
        .header("Content-Type", "application/json; charset=utf-8");
    for (name, value) in &request.headers {
        call = call.header(*name, value.as_str());
    }
    let mut response = match call.send(&request.body[..]) {
        Ok(r) => r,
        Err(e) => return Err(transport_error(config, channel, e, timeout)),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let answer = match response
        .body_mut()
        .with_config()
        .limit(ANSWER_LIMIT)
        .read_to_string()
    {
        Ok(text) => text,
        Err(ureq::Error::Timeout(_)) => return Err(SendError::Timeout { channel, timeout }),
        // An unreadable body of a 2xx still has to be judged below.
        Err(_) => String::new(),
    };
    classify(config, channel, status, &answer, retry_after)
}

/// The verdict on an answer: status first, then the provider's code.
fn classify(
    config: &ChannelConfig,
    channel: String,
    status: u16,
    answer: &str,
    retry_after: Option<Duration>,
) -> Result<(), SendError> {
    let kind = config.kind();
    if !(200..300).contains(&status) {
        // Feishu answers its rate limit with HTTP 400 and code 11232: a
        // provider's "slow down" code wins over the status.
        if let Some((code, message)) = provider_code(answer) {
            if kind.has_provider_code() && RETRYABLE_PROVIDER_CODES.contains(&(kind, code)) {
                return Err(SendError::Provider {
                    channel,
                    code,
                    message: scrub(config, &message),
                    retryable: true,
                });
            }
        }
        return Err(SendError::Status {
            channel,
            status,
            answer: scrub(config, answer),
            retry_after,
        });
    }
    if !kind.has_provider_code() {
        return Ok(());
    }
    match provider_code(answer) {
        Some((0, _)) => Ok(()),
        Some((code, message)) => Err(SendError::Provider {
            channel,
            code,
            message: scrub(config, &message),
            retryable: RETRYABLE_PROVIDER_CODES.contains(&(kind, code)),
        }),
        None => Err(SendError::UnexpectedAnswer {
            channel,
            answer: scrub(config, answer),
        }),
    }
}

/// The provider's code and message in a JSON answer: Feishu's `code`/`msg`
/// (older hooks `StatusCode`/`StatusMessage`), DingTalk's and WeCom's
/// `errcode`/`errmsg`.
fn provider_code(answer: &str) -> Option<(i64, String)> {
    let json: serde_json::Value = serde_json::from_str(answer).ok()?;
    [
        ("code", "msg"),
        ("StatusCode", "StatusMessage"),
        ("errcode", "errmsg"),
    ]
    .into_iter()
    .find_map(|(code, msg)| {
        let code = json.get(code)?.as_i64()?;
        let msg = json.get(msg).and_then(|m| m.as_str()).unwrap_or("");
        Some((code, msg.to_string()))
    })
}

fn transport_error(
    config: &ChannelConfig,
    channel: String,
    e: ureq::Error,
    timeout: Duration,
) -> SendError {
    let reason = scrub(config, &e.to_string());
    match e {
        ureq::Error::Timeout(_) => SendError::Timeout { channel, timeout },
        ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
            SendError::Timeout { channel, timeout }
        }
        ureq::Error::Io(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled
        | ureq::Error::ConnectProxyFailed(_) => SendError::Network { channel, reason },
        _ => SendError::Setup { channel, reason },
    }
}

/// `text` shortened, with anything that could be the channel's credentials
/// (the URL, its query values, the secret) replaced by `***`.
fn scrub(config: &ChannelConfig, text: &str) -> String {
    let mut out: String = text.chars().take(QUOTED_ANSWER_CHARS).collect();
    let url = config.url().expose();
    let mut needles: Vec<String> = vec![url.as_str().to_string()];
    needles.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    // Feishu and Slack hooks carry their token in the path.
    if matches!(config.kind(), ChannelKind::Feishu | ChannelKind::Slack) {
        needles.extend(
            url.path_segments()
                .into_iter()
                .flatten()
                .map(str::to_string),
        );
    }
    if let Some(secret) = config.secret() {
        needles.push(secret.expose().to_string());
    }
    // Only values long enough to be tokens: short ones are words.
    needles.retain(|n| n.len() >= 8);
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for needle in needles {
        out = out.replace(&needle, crate::secret::REDACTED);
    }
    out
}
