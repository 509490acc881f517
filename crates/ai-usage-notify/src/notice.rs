//! What the outbox delivers: a budget alert or a digest.

use serde::Serialize;

use crate::digest::DigestMessage;
use crate::message::AlertMessage;

/// One thing to deliver to a channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// A budget threshold crossed.
    Alert(AlertMessage),
    /// A scheduled digest.
    Digest(Box<DigestMessage>),
}

impl Notice {
    /// The idempotency key.
    pub fn id(&self) -> &str {
        match self {
            Notice::Alert(a) => &a.id,
            Notice::Digest(d) => &d.id,
        }
    }

    /// What it is about, for people: the budget's name, or `digest
    /// 2026-11-30~2026-12-06`.
    pub fn subject(&self) -> String {
        match self {
            Notice::Alert(a) => a.budget.clone(),
            Notice::Digest(d) => format!("digest {}", d.period_label()),
        }
    }

    /// The budget alert, if it is one.
    pub fn as_alert(&self) -> Option<&AlertMessage> {
        match self {
            Notice::Alert(a) => Some(a),
            Notice::Digest(_) => None,
        }
    }

    /// The digest, if it is one.
    pub fn as_digest(&self) -> Option<&DigestMessage> {
        match self {
            Notice::Alert(_) => None,
            Notice::Digest(d) => Some(d),
        }
    }
}

impl From<AlertMessage> for Notice {
    fn from(a: AlertMessage) -> Notice {
        Notice::Alert(a)
    }
}

impl From<DigestMessage> for Notice {
    fn from(d: DigestMessage) -> Notice {
        Notice::Digest(Box::new(d))
    }
}
