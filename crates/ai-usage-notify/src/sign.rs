//! The signatures, each exactly as its provider documents it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_key_length(),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_key_length() -> ! {
    unreachable!("HMAC accepts keys of every length")
}

/// Feishu custom bot: base64 of HMAC-SHA256 keyed with
/// `timestamp + "\n" + secret` over an empty message; `timestamp` in seconds.
pub fn feishu_sign(timestamp_secs: i64, secret: &str) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    BASE64.encode(hmac_sha256(key.as_bytes(), b""))
}

/// DingTalk robot: base64 of HMAC-SHA256 keyed with `secret` over
/// `timestamp + "\n" + secret`; `timestamp` in milliseconds. The caller
/// URL-encodes it into the query.
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    let message = format!("{timestamp_ms}\n{secret}");
    BASE64.encode(hmac_sha256(secret.as_bytes(), message.as_bytes()))
}

/// Webhook: the `X-AI-Usage-Signature` header's value,
/// `sha256=` + lower-case hex of HMAC-SHA256 keyed with `secret` over the
/// exact body bytes.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_differ_by_scheme_and_time() {
        assert_ne!(feishu_sign(1, "s"), feishu_sign(2, "s"));
        assert_ne!(dingtalk_sign(1000, "s"), dingtalk_sign(1001, "s"));
        // Same inputs, different schemes (key and message swapped roles).
        assert_ne!(feishu_sign(1, "s"), dingtalk_sign(1, "s"));
        assert!(webhook_signature("s", b"{}").starts_with("sha256="));
        assert_eq!(webhook_signature("s", b"{}").len(), 7 + 64);
    }
}
