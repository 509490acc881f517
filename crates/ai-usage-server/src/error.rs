//! API errors: every failure leaves the server as `{"error": …, "detail": …}`
//! JSON with a status that says whose fault it was.
//!
//! A validation error (422) keeps FastAPI's shape, which clients of the
//! original service parse: `detail` is an array of `{type, loc, msg, input}`
//! and our sentence moves to `message`. Every other error's `detail` is the
//! sentence itself (as FastAPI's `HTTPException` sends it).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A short machine-readable code, e.g. `invalid_parameter`.
    pub error: String,
    /// What went wrong: a sentence naming the parameter or field involved,
    /// or (422) FastAPI's array of validation issues.
    pub detail: ErrorDetail,
    /// The sentence of a 422, whose `detail` is the array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `detail` of an error body.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ErrorDetail {
    /// What went wrong, in words.
    Text(String),
    /// FastAPI's validation issues (422).
    Issues(Vec<ValidationIssue>),
}

impl From<String> for ErrorDetail {
    fn from(s: String) -> Self {
        ErrorDetail::Text(s)
    }
}

/// One validation issue, as FastAPI (pydantic 2) reports it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ValidationIssue {
    /// What kind of check failed: `missing`, `int_parsing`,
    /// `greater_than_equal`, `less_than_equal`, `enum` or `value_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where: `["query", "days"]`, `["path", "session_id"]`,
    /// `["body", 3, "model"]` (record 3 of a batch) or `["body"]`.
    #[schema(value_type = Vec<Object>)]
    pub loc: Vec<serde_json::Value>,
    /// What is wrong, in words.
    pub msg: String,
    /// The value received (`null` when absent or not kept).
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The check's bound, where FastAPI gives one: `{"ge": 1}`,
    /// `{"le": 72}`, `{"expected": "'csv' or 'json'"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ctx: Option<serde_json::Value>,
}

/// An error returned by a handler.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter is missing, malformed or out of range (422).
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter, e.g. `days` (as the client spelt it, for an
        /// unknown repeated one).
        name: std::borrow::Cow<'static, str>,
        /// What is wrong with it.
        message: String,
        /// The check that failed, as FastAPI names it (`int_parsing`, …).
        kind: &'static str,
        /// The raw value received, if any.
        input: Option<String>,
        /// FastAPI's `ctx`: the bound that was broken, e.g. `{"le": 72}`.
        ctx: Option<serde_json::Value>,
    },
    /// A request body field is invalid (422); `index` is the record's position in a batch.
    #[error("invalid field {field}{}: {message}", index.map(|i| format!(" of record {i}")).unwrap_or_default())]
    InvalidField {
        /// The field, e.g. `model`.
        field: String,
        /// Position in a batch, if the body was a batch.
        index: Option<usize>,
        /// What is wrong with it.
        message: String,
    },
    /// The request itself is malformed (400), e.g. a download name with a path in it.
    #[error("{0}")]
    BadRequest(String),
    /// The body could not be read or parsed; keeps the extractor's status (400/413/415/422).
    #[error("{message}")]
    Body {
        /// Status chosen by the extractor (413 for bodies over the limit).
        status: StatusCode,
        /// The extractor's message.
        message: String,
    },
    /// Missing or wrong bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Nothing there (404).
    #[error("{0}")]
    NotFound(String),
    /// Too many requests of an expensive kind (429).
    #[error("{0}")]
    RateLimited(String),
    /// The server is too busy to take the request now (503, with `Retry-After`).
    #[error("{message}")]
    Unavailable {
        /// What is busy.
        message: String,
        /// Seconds the client should wait before retrying.
        retry_after_secs: u64,
    },
    /// A server-side failure (500). The client gets `context` and `id`;
    /// `detail` (which may name files or directories) only goes to the log,
    /// under the same id.
    #[error("{context} (error id {id})")]
    Internal {
        /// A summary safe to send: names no path.
        context: &'static str,
        /// The underlying error, for the log only.
        detail: String,
        /// Ties the response to its log line.
        id: String,
    },
}

impl ApiError {
    /// Shorthand for [`ApiError::InvalidParameter`] (a `value_error`,
    /// without the value).
    pub fn param(
        name: impl Into<std::borrow::Cow<'static, str>>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::InvalidParameter {
            name: name.into(),
            message: message.into(),
            kind: "value_error",
            input: None,
            ctx: None,
        }
    }

    /// [`ApiError::InvalidParameter`] naming the failed check (FastAPI's
    /// `type`) and the value received.
    pub fn param_check(
        name: &'static str,
        kind: &'static str,
        input: Option<&str>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError::InvalidParameter {
            name: name.into(),
            message: message.into(),
            kind,
            input: input.map(str::to_string),
            ctx: None,
        }
    }

    /// Adds FastAPI's `ctx` (the broken bound) to an
    /// [`ApiError::InvalidParameter`]; other errors are returned unchanged.
    pub fn with_ctx(mut self, bound: serde_json::Value) -> ApiError {
        if let ApiError::InvalidParameter { ctx, .. } = &mut self {
            *ctx = Some(bound);
        }
        self
    }

    /// An internal error: `context` is sent to the client, `cause` only logged.
    pub fn internal(context: &'static str, cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            context,
            detail: cause.to_string(),
            id: next_error_id(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParameter { .. } | ApiError::InvalidField { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Body { status, .. } => *status,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::InvalidField { .. } => "invalid_record",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Body { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => {
                "payload_too_large"
            }
            ApiError::Body { .. } => "invalid_body",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable { .. } => "overloaded",
            ApiError::Internal { .. } => "internal_error",
        }
    }

    /// FastAPI's validation issues of a 422, `None` for other errors.
    fn issues(&self) -> Option<Vec<ValidationIssue>> {
        let issue = match self {
            ApiError::InvalidParameter {
                name,
                message,
                kind,
                input,
                ctx,
            } => ValidationIssue {
                kind: (*kind).to_string(),
                // Path parameters are checked by the handler too.
                loc: vec![
                    if name == "session_id" {
                        "path"
                    } else {
                        "query"
                    }
                    .into(),
                    name.to_string().into(),
                ],
                msg: message.clone(),
                input: input.clone().map_or(serde_json::Value::Null, Into::into),
                ctx: ctx.clone(),
            },
            ApiError::InvalidField {
                field,
                index,
                message,
            } => {
                let mut loc: Vec<serde_json::Value> = vec!["body".into()];
                loc.extend(index.map(serde_json::Value::from));
                loc.push(field.as_str().into());
                ValidationIssue {
                    kind: "value_error".into(),
                    loc,
                    msg: message.clone(),
                    input: serde_json::Value::Null,
                    ctx: None,
                }
            }
            ApiError::Body { status, message } if *status == StatusCode::UNPROCESSABLE_ENTITY => {
                ValidationIssue {
                    kind: "value_error".into(),
                    loc: vec!["body".into()],
                    msg: message.clone(),
                    input: serde_json::Value::Null,
                    ctx: None,
                }
            }
            _ => return None,
        };
        Some(vec![issue])
    }

    /// The response body.
    pub fn body(&self) -> ErrorBody {
        let text = self.to_string();
        match self.issues() {
            Some(issues) => ErrorBody {
                error: self.code().to_string(),
                detail: ErrorDetail::Issues(issues),
                message: Some(text),
            },
            None => ErrorBody {
                error: self.code().to_string(),
                detail: ErrorDetail::Text(text),
                message: None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal {
            context,
            detail,
            id,
        } = &self
        {
            tracing::error!(error_id = %id, error = %detail, "{context}");
        } else if status.is_server_error() {
            tracing::warn!(error = %self, "request refused");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request rejected");
        }
        let mut resp = (status, Json(self.body())).into_response();
        if let ApiError::Unavailable {
            retry_after_secs, ..
        } = &self
        {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after_secs),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// A short id, unique within this process and unlikely to repeat across
/// restarts: start time (ms, hex) and a sequence number.
pub(crate) fn next_error_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static START: OnceLock<u128> = OnceLock::new();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let start = START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    });
    format!("{start:x}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::Body {
            status: r.status(),
            message: r.body_text(),
        }
    }
}

/// Longest text body of a non-JSON error that is carried over as `detail`.
const MAX_FALLBACK_DETAIL: usize = 4096;

/// Middleware: rewrites an error response that is not JSON (an extractor's
/// `text/plain` rejection, e.g. a path that is not UTF-8, or an empty body)
/// into the `{"error", "detail"}` shape, keeping its status and headers.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // OTLP answers its errors in protobuf when asked in protobuf.
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/x-protobuf")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_FALLBACK_DETAIL)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error");
    let body = ErrorBody {
        error: reason.to_ascii_lowercase().replace([' ', '-'], "_"),
        detail: ErrorDetail::Text(if text.is_empty() {
            reason.to_string()
        } else {
            text
        }),
        message: None,
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    match serde_json::to_vec(&body) {
        Ok(bytes) => Response::from_parts(parts, axum::body::Body::from(bytes)),
        Err(e) => ApiError::internal("cannot serialise an error", e).into_response(),
    }
}
