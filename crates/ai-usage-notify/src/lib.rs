//! Budget alerts that reach people: senders for 飞书 (Feishu/Lark), 钉钉
//! (DingTalk), 企业微信 (WeCom), Slack and a signed JSON webhook.
//!
//! Each channel is a [`ChannelConfig`] (an entry of `budgets.json`'s
//! `"notify"` map); an [`AlertMessage`] says what happened; building the
//! provider's request ([`build_request`], pure, with an injected clock) is
//! apart from sending it ([`send`]), whose [`SendError`] tells a retryable
//! failure from a configuration error.
//!
//! Secrets never show: [`Secret`] and [`ChannelUrl`] redact themselves in
//! `Debug`/`Display`, and errors quote neither the secret nor the URL's
//! credentials.
//!
//! Wired to a monitor, a [`Notifier`] (a monitor companion) enters each
//! crossed threshold in a durable [`Outbox`] in the records directory and a
//! sender thread delivers it with retries, once per channel, across restarts.
//! A [`DigestThread`] posts a daily or weekly [`DigestMessage`] through the
//! same outbox, once per period.
//!
//! ```no_run
//! use ai_usage_notify::{send, AlertMessage, AlertScope, ChannelConfig};
//! use ai_usage_core::{BudgetPeriod, Currency, Money};
//! let ops = ChannelConfig::from_json(
//!     r#"{"kind": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/…", "secret": "…"}"#,
//! )?;
//! let message = AlertMessage::new(
//!     "每日总预算", AlertScope::Global, BudgetPeriod::Daily, "2026-12-07", 80,
//!     "40.5".parse::<Money>()?, "50".parse::<Money>()?, Currency::CNY,
//!     chrono::DateTime::parse_from_rfc3339("2026-12-07T14:03:05+08:00")?,
//! );
//! match send(&ops, &message) {
//!     Ok(()) => {}
//!     Err(e) if e.is_retryable() => { /* try again later */ }
//!     Err(e) => eprintln!("fix the channel: {e}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod delivery;
pub mod digest;
pub mod message;
pub mod notice;
pub mod notifier;
pub mod outbox;
pub mod request;
pub mod secret;
pub mod sign;

pub use config::{ChannelConfig, ChannelKind, ConfigError, FeishuMsgType, Language};
pub use delivery::{
    send, send_digest, send_notice, send_prepared, send_with_timeout, SendError, DEFAULT_TIMEOUT,
};
pub use digest::{
    DigestClaims, DigestConfig, DigestError, DigestMessage, DigestPeriod, DigestSchedule,
    DigestStatus, DigestThread,
};
pub use message::{format_money, AlertMessage, AlertScope};
pub use notice::Notice;
pub use notifier::{
    channels_from_json, configuration_problems, ChannelProblem, Notifier, NotifierHandle,
    RetryPolicy,
};
pub use outbox::{Delivery, DeliveryState, Outbox, OutboxCounts, OutboxError, OUTBOX_FILE};
pub use request::{
    build_digest_request, build_notice_request, build_request, DigestEvent, PreparedRequest,
    WebhookEvent, EVENT_ID_HEADER, SIGNATURE_HEADER,
};
pub use secret::{ChannelUrl, Secret};
