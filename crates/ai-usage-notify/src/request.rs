//! Building each provider's HTTP request from a message: pure, so the
//! exact bytes (and signatures, with an injected clock) can be tested.

use std::fmt;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{ChannelConfig, ChannelKind, FeishuMsgType, Language};
use crate::message::{AlertMessage, AlertScope};
use crate::secret::redact_url;
use crate::sign;

/// The header carrying a webhook event's signature.
pub const SIGNATURE_HEADER: &str = "X-AI-Usage-Signature";

/// The header carrying a webhook event's id (also in the body), so a
/// receiver can drop a redelivery before parsing.
pub const EVENT_ID_HEADER: &str = "X-AI-Usage-Event-Id";

/// One POST ready to send. `Debug` redacts the URL's credentials and the
/// signature header (the body holds no secret; Feishu's `sign` is only valid
/// for its timestamp).
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    /// The full URL, credentials and (DingTalk) signature included.
    pub url: url::Url,
    /// Headers besides `Content-Type: application/json`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body, exactly as sent (and as signed, for webhooks).
    pub body: Vec<u8>,
}

impl fmt::Debug for PreparedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if *name == SIGNATURE_HEADER {
                    "***"
                } else {
                    value
                };
                (*name, shown)
            })
            .collect();
        f.debug_struct("PreparedRequest")
            .field("url", &redact_url(&self.url))
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// The request `config` sends for `message`, signed with `now_ms` (epoch
/// milliseconds; Feishu signs with its seconds, DingTalk with the
/// milliseconds).
pub fn build_request(
    config: &ChannelConfig,
    message: &AlertMessage,
    now_ms: i64,
) -> PreparedRequest {
    let language = config.language();
    let secret = config.secret().map(|s| s.expose());
    let mut url = config.url().expose().clone();
    let mut headers = Vec::new();
    let body: Value = match config.kind() {
        ChannelKind::Feishu => {
            let mut body = match config.feishu_msg_type() {
                FeishuMsgType::Text => json!({
                    "msg_type": "text",
                    "content": {"text": message.text(language)},
                }),
                FeishuMsgType::Interactive => json!({
                    "msg_type": "interactive",
                    "card": feishu_card(message, language),
                }),
            };
            if let Some(secret) = secret {
                let ts = now_ms.div_euclid(1000);
                body["timestamp"] = Value::String(ts.to_string());
                body["sign"] = Value::String(sign::feishu_sign(ts, secret));
            }
            body
        }
        ChannelKind::DingTalk => {
            if let Some(secret) = secret {
                let sign = sign::dingtalk_sign(now_ms, secret);
                // `append_pair` percent-encodes the base64 (`+`, `/`, `=`).
                url.query_pairs_mut()
                    .append_pair("timestamp", &now_ms.to_string())
                    .append_pair("sign", &sign);
            }
            json!({
                "msgtype": "markdown",
                "markdown": {"title": message.title(language), "text": message.markdown(language)},
            })
        }
        ChannelKind::WeCom => json!({
            "msgtype": "markdown",
            "markdown": {"content": message.markdown(language)},
        }),
        ChannelKind::Slack => json!({"text": message.text(language)}),
        ChannelKind::Webhook => {
            // Serialised from the struct so the fields keep their documented
            // order; a struct of strings and numbers always serialises.
            let body = serde_json::to_vec(&WebhookEvent::of(message)).unwrap_or_default();
            headers.push((EVENT_ID_HEADER, message.id.clone()));
            if let Some(secret) = secret {
                headers.push((SIGNATURE_HEADER, sign::webhook_signature(secret, &body)));
            }
            return PreparedRequest { url, headers, body };
        }
    };
    PreparedRequest {
        url,
        headers,
        body: body.to_string().into_bytes(),
    }
}

/// A Feishu message card: a header coloured by severity, the markdown body,
/// and a button to the dashboard when its URL is known.
fn feishu_card(message: &AlertMessage, language: Language) -> Value {
    let body = {
        // The card repeats the title in its header; drop it from the body.
        let md = message.markdown(language);
        match md.split_once("\n\n") {
            Some((_, rest)) => rest.to_string(),
            None => md,
        }
    };
    let mut elements = vec![json!({"tag": "div", "text": {"tag": "lark_md", "content": body}})];
    if let Some(url) = &message.public_url {
        let label = match language {
            Language::Zh => "打开看板",
            Language::En => "Open dashboard",
        };
        elements.push(json!({
            "tag": "action",
            "actions": [{"tag": "button", "text": {"tag": "plain_text", "content": label}, "type": "primary", "url": url}],
        }));
    }
    json!({
        "config": {"wide_screen_mode": true},
        "header": {
            "title": {"tag": "plain_text", "content": message.title(language)},
            "template": if message.threshold >= 100 { "red" } else { "orange" },
        },
        "elements": elements,
    })
}

/// The `webhook` kind's JSON event. Amounts are exact decimal strings (up to
/// nine decimals), never floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    /// Idempotency key: the same for every delivery of one (budget, period,
    /// threshold).
    pub id: String,
    /// Always `budget.threshold`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The budget's name.
    pub budget: String,
    /// `{"kind": "global"}` or `{"kind": "anchor", "id": "anchor_001"}` (kinds
    /// `user`, `anchor`, `function`, `model`, `tag`).
    pub scope: AlertScope,
    /// The period, `YYYY-MM-DD` (daily) or `YYYY-MM` (monthly).
    pub period: String,
    /// `daily` or `monthly`.
    pub period_kind: &'static str,
    /// The threshold crossed, percent of the limit.
    pub threshold: u32,
    /// Spent in the period, exact decimal string.
    pub spent: String,
    /// The limit, exact decimal string.
    pub limit: String,
    /// ISO currency code of every amount.
    pub currency: String,
    /// The month's projected spend (exact decimal string) or `null`.
    pub projected: Option<String>,
    /// When the threshold was crossed, RFC 3339 with the monitor's offset.
    pub time: String,
    /// The dashboard's public URL or `null`.
    pub dashboard_url: Option<String>,
}

impl WebhookEvent {
    /// The event for `message`.
    pub fn of(message: &AlertMessage) -> WebhookEvent {
        WebhookEvent {
            id: message.id.clone(),
            event_type: "budget.threshold",
            budget: message.budget.clone(),
            scope: message.scope.clone(),
            period: message.period_label.clone(),
            period_kind: match message.period {
                ai_usage_core::BudgetPeriod::Daily => "daily",
                ai_usage_core::BudgetPeriod::Monthly => "monthly",
            },
            threshold: message.threshold,
            spent: message.spent.to_string(),
            limit: message.limit.to_string(),
            currency: message.currency.code().to_string(),
            projected: message.projected_month.map(|m| m.to_string()),
            time: message.time.to_rfc3339(),
            dashboard_url: message.public_url.clone(),
        }
    }
}
