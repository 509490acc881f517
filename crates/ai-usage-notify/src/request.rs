//! Building each provider's HTTP request from a message: pure, so the
//! exact bytes (and signatures, with an injected clock) can be tested.

use std::fmt;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{ChannelConfig, ChannelKind, FeishuMsgType, Language};
use crate::digest::{BudgetLine, DigestMessage, PeriodCost, SavingLine, TopEntry};
use crate::message::{AlertMessage, AlertScope};
use crate::notice::Notice;
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

/// What a notice looks like in each channel's format. An alert and a digest
/// each say it once; [`prepare`] then addresses and signs it the same way
/// for both, so a channel's signing lives in one place.
trait ChannelContent {
    /// The language to write in, given the channel's own.
    fn language(&self, channel: Language) -> Language;
    /// The idempotency id (webhook header).
    fn id(&self) -> &str;
    /// Plain text (Feishu `text`, Slack).
    fn text(&self, language: Language) -> String;
    /// Slack's text (`mrkdwn` where it differs from plain text).
    fn slack(&self, language: Language) -> String {
        self.text(language)
    }
    /// The title of a DingTalk markdown message.
    fn title(&self, language: Language) -> String;
    /// Markdown for DingTalk and WeCom.
    fn markdown(&self, language: Language) -> String;
    /// WeCom's markdown (within its size limit where that can be reached).
    fn wecom(&self, language: Language) -> String {
        self.markdown(language)
    }
    /// A Feishu `interactive` card.
    fn card(&self, language: Language) -> Value;
    /// The webhook event's exact bytes (signed as sent).
    fn webhook_body(&self) -> Vec<u8>;
}

impl ChannelContent for AlertMessage {
    fn language(&self, channel: Language) -> Language {
        channel
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn text(&self, language: Language) -> String {
        AlertMessage::text(self, language)
    }
    fn title(&self, language: Language) -> String {
        AlertMessage::title(self, language)
    }
    fn markdown(&self, language: Language) -> String {
        AlertMessage::markdown(self, language)
    }
    fn card(&self, language: Language) -> Value {
        feishu_card(self, language)
    }
    fn webhook_body(&self) -> Vec<u8> {
        // Serialised from the struct so the fields keep their documented
        // order; a struct of strings and numbers always serialises.
        serde_json::to_vec(&WebhookEvent::of(self)).unwrap_or_default()
    }
}

impl ChannelContent for DigestMessage {
    fn language(&self, channel: Language) -> Language {
        self.language_for(channel)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn text(&self, language: Language) -> String {
        DigestMessage::text(self, language)
    }
    fn slack(&self, language: Language) -> String {
        DigestMessage::slack(self, language)
    }
    fn title(&self, language: Language) -> String {
        DigestMessage::title(self, language)
    }
    fn markdown(&self, language: Language) -> String {
        DigestMessage::markdown(self, language, true)
    }
    fn wecom(&self, language: Language) -> String {
        wecom_fit(DigestMessage::markdown(self, language, true))
    }
    fn card(&self, language: Language) -> Value {
        digest_card(self, language)
    }
    fn webhook_body(&self) -> Vec<u8> {
        serde_json::to_vec(&DigestEvent::of(self)).unwrap_or_default()
    }
}

/// The request `config` sends for `content`, signed with `now_ms` (epoch
/// milliseconds; Feishu signs with its seconds, DingTalk with the
/// milliseconds).
fn prepare(config: &ChannelConfig, content: &dyn ChannelContent, now_ms: i64) -> PreparedRequest {
    let language = content.language(config.language());
    let secret = config.secret().map(|s| s.expose());
    let mut url = config.url().expose().clone();
    let mut headers = Vec::new();
    let body: Value = match config.kind() {
        ChannelKind::Feishu => {
            let mut body = match config.feishu_msg_type() {
                FeishuMsgType::Text => json!({
                    "msg_type": "text",
                    "content": {"text": content.text(language)},
                }),
                FeishuMsgType::Interactive => json!({
                    "msg_type": "interactive",
                    "card": content.card(language),
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
                "markdown": {"title": content.title(language), "text": content.markdown(language)},
            })
        }
        ChannelKind::WeCom => json!({
            "msgtype": "markdown",
            "markdown": {"content": content.wecom(language)},
        }),
        ChannelKind::Slack => json!({"text": content.slack(language)}),
        ChannelKind::Webhook => {
            let body = content.webhook_body();
            headers.push((EVENT_ID_HEADER, content.id().to_string()));
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

/// The request `config` sends for `message`, signed with `now_ms` (epoch
/// milliseconds; Feishu signs with its seconds, DingTalk with the
/// milliseconds).
pub fn build_request(
    config: &ChannelConfig,
    message: &AlertMessage,
    now_ms: i64,
) -> PreparedRequest {
    prepare(config, message, now_ms)
}

/// The request `config` sends for an alert or a digest (see
/// [`build_request`]).
pub fn build_notice_request(
    config: &ChannelConfig,
    notice: &Notice,
    now_ms: i64,
) -> PreparedRequest {
    match notice {
        Notice::Alert(a) => prepare(config, a, now_ms),
        Notice::Digest(d) => prepare(config, d.as_ref(), now_ms),
    }
}

/// The request `config` sends for a digest, in the channel's own format:
/// Feishu `text` (or an `interactive` card), DingTalk and WeCom `markdown`,
/// Slack `mrkdwn` text, or the webhook's `digest` event; signed like an
/// alert.
pub fn build_digest_request(
    config: &ChannelConfig,
    digest: &DigestMessage,
    now_ms: i64,
) -> PreparedRequest {
    prepare(config, digest, now_ms)
}

/// Most bytes of a WeCom markdown message (the robot refuses longer ones).
const WECOM_MAX_BYTES: usize = 4096;

/// Cuts a WeCom message to whole lines under the robot's limit, saying so.
fn wecom_fit(text: String) -> String {
    if text.len() <= WECOM_MAX_BYTES {
        return text;
    }
    let more = "\n…";
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        if out.len() + line.len() + more.len() > WECOM_MAX_BYTES {
            break;
        }
        out.push_str(line);
    }
    out.push_str(more);
    out
}

/// A Feishu card for a digest: a blue header with the title, the markdown
/// body, and a button to the dashboard when its URL is known.
fn digest_card(digest: &DigestMessage, language: Language) -> Value {
    card(
        digest.title(language),
        "blue",
        digest.markdown(language, false),
        digest.public_url.as_deref(),
        language,
    )
}

/// A Feishu card: a coloured header with `title`, the `body` markdown, and a
/// button to the dashboard when its URL is known.
fn card(
    title: String,
    template: &str,
    body: String,
    public_url: Option<&str>,
    language: Language,
) -> Value {
    let mut elements = vec![json!({"tag": "div", "text": {"tag": "lark_md", "content": body}})];
    if let Some(url) = public_url {
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
            "title": {"tag": "plain_text", "content": title},
            "template": template,
        },
        "elements": elements,
    })
}

/// The `webhook` kind's digest event. Amounts are exact decimal strings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestEvent {
    /// Idempotency key of the period.
    pub id: String,
    /// Always `usage.digest`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// `daily` or `weekly`.
    pub schedule: &'static str,
    /// First local day covered, `YYYY-MM-DD`.
    pub from: String,
    /// Last local day covered.
    pub to: String,
    /// First day of the period compared with.
    pub previous_from: String,
    /// Last day of the period compared with.
    pub previous_to: String,
    /// `[{"currency": "CNY", "cost": "…", "previous": "…"}]`, one per currency.
    pub costs: Vec<PeriodCost>,
    /// Calls in the period.
    pub calls: u64,
    /// Calls in the period before.
    pub previous_calls: u64,
    /// `[{"id", "calls", "tokens", "costs": [{"currency", "amount"}]}]`.
    pub top_functions: Vec<TopEntry>,
    /// As `top_functions`, for models.
    pub top_models: Vec<TopEntry>,
    /// As `top_functions`, for anchors.
    pub top_anchors: Vec<TopEntry>,
    /// Every budget's status when the digest was made.
    pub budgets: Vec<BudgetLine>,
    /// The largest savings found.
    pub savings: Vec<SavingLine>,
    /// When it was made, RFC 3339 with the monitor's offset.
    pub time: String,
    /// The dashboard's public URL or `null`.
    pub dashboard_url: Option<String>,
}

impl DigestEvent {
    /// The event for `digest`.
    pub fn of(digest: &DigestMessage) -> DigestEvent {
        DigestEvent {
            id: digest.id.clone(),
            event_type: "usage.digest",
            schedule: digest.schedule.as_str(),
            from: digest.from.to_string(),
            to: digest.to.to_string(),
            previous_from: digest.previous_from.to_string(),
            previous_to: digest.previous_to.to_string(),
            costs: digest.costs.clone(),
            calls: digest.calls,
            previous_calls: digest.previous_calls,
            top_functions: digest.top_functions.clone(),
            top_models: digest.top_models.clone(),
            top_anchors: digest.top_anchors.clone(),
            budgets: digest.budgets.clone(),
            savings: digest.savings.clone(),
            time: digest.time.to_rfc3339(),
            dashboard_url: digest.public_url.clone(),
        }
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
    let template = if message.threshold >= 100 {
        "red"
    } else {
        "orange"
    };
    card(
        message.title(language),
        template,
        body,
        message.public_url.as_deref(),
        language,
    )
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
