//! Bearer-token check for write routes (and, optionally, reads).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The expected token, shared by the middleware of every protected route.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, even in debug logs.
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its text.
    pub fn new(token: &str) -> Token {
        Token(Arc::from(token.as_bytes()))
    }

    /// True when `header` is exactly `Bearer <token>`.
    ///
    /// The comparison runs in constant time for a given length, so response
    /// timing does not reveal how many leading bytes were right.
    pub fn matches_header(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else { return false };
        let Some(given) = h
            .strip_prefix(b"Bearer ")
            .or_else(|| h.strip_prefix(b"bearer "))
        else {
            return false;
        };
        // An empty expected token matches nothing: a blank `--token` must
        // not let `Bearer ` through.
        !self.0.is_empty() && bool::from(given.ct_eq(&self.0))
    }
}

/// Middleware: 401 JSON unless the request carries the token.
pub async fn require_token(State(token): State<Token>, req: Request, next: Next) -> Response {
    let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    if token.matches_header(header) {
        next.run(req).await
    } else {
        tracing::warn!(path = %req.uri().path(), "rejected request without a valid bearer token");
        ApiError::Unauthorized.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_must_match_exactly() {
        let t = Token::new("s3cret");
        assert!(t.matches_header(Some(b"Bearer s3cret")));
        assert!(!t.matches_header(Some(b"Bearer s3cre")));
        assert!(!t.matches_header(Some(b"Bearer s3cret ")));
        assert!(!t.matches_header(Some(b"Basic s3cret")));
        assert!(!t.matches_header(Some(b"s3cret")));
        assert!(!t.matches_header(None));
        let blank = Token::new("");
        assert!(!blank.matches_header(Some(b"Bearer ")));
        assert_eq!(format!("{t:?}"), "Token(..)");
    }
}
