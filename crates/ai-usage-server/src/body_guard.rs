//! Request bodies on the wire: a deadline and a byte budget.
//!
//! hyper's header-read timeout ends at the blank line after the head; the
//! body after it had no deadline, so a client that declared
//! `Content-Length: 100` and sent one byte held its connection (and a slot
//! of the connection cap) forever, and hundreds of clients each holding a
//! nearly complete 1 MB body held hundreds of MB.
//!
//! Every request body is therefore read here, before any route sees it:
//! - within [`HttpLimits::body_read_timeout`] plus one second per
//!   [`HttpLimits::min_body_bytes_per_sec`] bytes declared (a minimum rate),
//!   else the client gets a 408 and the connection is closed;
//! - only while it holds its size in a server-wide budget of
//!   [`HttpLimits::max_body_bytes_in_flight`] bytes, so memory for bodies in
//!   flight is bounded whatever the number of connections. A body that finds
//!   the budget spent waits (its bytes stay in the kernel's buffers) for at
//!   most the same timeout, then gets a 503 with `Retry-After`.
//!
//! At most [`MAX_BODY_BYTES`] + 1 bytes are read: the route's own limit then
//! answers 413 as before.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::limits::{HttpLimits, MAX_BODY_BYTES};

/// The shared state of [`guard_body`]: the limits and the byte budget.
#[derive(Clone)]
pub(crate) struct BodyGuard {
    limits: HttpLimits,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

impl BodyGuard {
    pub(crate) fn new(limits: HttpLimits) -> BodyGuard {
        // Below one maximal body, no such body could ever be read.
        let budget_bytes = limits.max_body_bytes_in_flight.max(MAX_BODY_BYTES + 1);
        BodyGuard {
            limits,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
        }
    }

    /// How long a body of `bytes` may take: the base timeout plus the time
    /// the minimum rate allows for its size.
    fn allowance(&self, bytes: usize) -> Duration {
        let rate = self.limits.min_body_bytes_per_sec.max(1) as f64;
        self.limits.body_read_timeout + Duration::from_secs_f64(bytes as f64 / rate)
    }
}

/// Middleware: reads the whole body under the deadline and the budget, then
/// hands the request on with the body in memory.
pub(crate) async fn guard_body(
    State(guard): State<BodyGuard>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    // Declared length (or, when chunked, the most we would read).
    let cap = MAX_BODY_BYTES + 1;
    let hint = body.size_hint();
    let expected = hint.exact().map_or(cap, |n| (n as usize).min(cap));
    let want = u32::try_from(expected.min(guard.budget_bytes)).unwrap_or(u32::MAX);
    let permit = match tokio::time::timeout(
        guard.limits.body_read_timeout,
        Arc::clone(&guard.budget).acquire_many_owned(want),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            tracing::warn!(
                budget = guard.budget_bytes,
                "request bodies in flight fill the memory budget; refusing one"
            );
            return closing(ApiError::Unavailable {
                message: "too many request bodies are being received; retry later".into(),
                retry_after_secs: 1,
            });
        }
    };
    let deadline = Instant::now() + guard.allowance(expected);
    let bytes = match read_until(body, cap, deadline).await {
        Ok(b) => b,
        Err(ReadError::TimedOut(got)) => {
            tracing::debug!(got, expected, "request body too slow; closing");
            return closing(ApiError::Body {
                status: StatusCode::REQUEST_TIMEOUT,
                message: format!(
                    "the request body did not arrive in time ({got} of {expected} bytes within {:.1} s)",
                    guard.allowance(expected).as_secs_f64()
                ),
            });
        }
        Err(ReadError::Broken(e)) => {
            return closing(ApiError::BadRequest(format!(
                "the request body could not be read: {e}"
            )))
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(permit); // the body lived until the route was done with it
    response
}

enum ReadError {
    /// The deadline passed after this many bytes.
    TimedOut(usize),
    /// The connection broke mid-body.
    Broken(axum::Error),
}

/// Reads `body` until its end, `cap` bytes or `deadline`, whichever first.
async fn read_until(mut body: Body, cap: usize, deadline: Instant) -> Result<Bytes, ReadError> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout_at(deadline, frame).await {
            Err(_) => return Err(ReadError::TimedOut(buf.len())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ReadError::Broken(e)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    let room = cap - buf.len();
                    buf.extend_from_slice(&data[..data.len().min(room)]);
                    if buf.len() >= cap {
                        break; // over the limit: the route answers 413
                    }
                }
            }
        }
    }
    Ok(Bytes::from(buf))
}

/// The error as a response that also closes the connection: the rest of
/// the body may still be on its way, and no next request can follow it.
fn closing(e: ApiError) -> Response {
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
