//! Connection handling of [`ServerBuilder::serve_listener`](crate::ServerBuilder::serve_listener): the
//! accept loop with a cap on open connections, hyper's header-read timeout
//! (which also closes idle keep-alive connections), and the request-head
//! limits that answer 414 / 431 with a JSON body. Request bodies get their
//! deadline and memory budget in the `body_guard` module.
//!
//! `axum::serve` has no timeouts, so a client holding sockets open with a
//! partial request (slowloris) kept them forever. Here every
//! connection must deliver a complete request head within
//! [`HttpLimits::header_read_timeout`] of opening or of its previous
//! response, and at most [`HttpLimits::max_connections`] are open at once;
//! further clients wait in the kernel's backlog until a slot frees.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use crate::error::ErrorBody;
use crate::limits::HttpLimits;

/// Longest request target we answer (bytes); longer ones get 414 JSON.
///
/// hyper itself refuses targets over 64 KiB before the router runs, with
/// an empty 414: this limit is well below that so clients see JSON.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (header names + values) we answer; larger gets 431 JSON.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines we answer; more gets 431 JSON.
pub const MAX_HEADER_COUNT: usize = 100;
/// hyper's own hard limits, above ours so that ours (with JSON bodies)
/// apply first; past these hyper closes with a bare 431.
const HYPER_MAX_HEADERS: usize = 2 * MAX_HEADER_COUNT;
const HYPER_MAX_BUF: usize = 4 * MAX_HEADER_BYTES;
/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the
/// loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` and serves `app` on each, within
/// `limits`, until `shutdown` completes; then waits (up to 10 s) for the
/// requests in flight.
pub(crate) async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(HYPER_MAX_BUF);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    // Bodies get their own deadline and memory budget (hyper has neither).
    let app = app.layer(axum::middleware::from_fn_with_state(
        crate::body_guard::BodyGuard::new(limits),
        crate::body_guard::guard_body,
    ));
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    let mut warned_full = false;
    loop {
        // A slot first, then accept: at the cap, new clients wait in the
        // backlog instead of costing a descriptor each.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        if slots.available_permits() == 0 && !warned_full {
            warned_full = true;
            tracing::warn!(
                max = limits.max_connections,
                "connection cap reached; new clients wait until others close"
            );
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying shortly");
                drop(permit);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = http.serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Timeouts, resets and malformed heads end up here.
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still running after the shutdown grace period");
        }
    }
}

/// Middleware: 414 / 431 JSON for a request head over our limits.
pub async fn limit_request_head(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return head_error(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {uri_len} bytes; at most {MAX_URI_BYTES} are accepted"),
        );
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if headers.len() > MAX_HEADER_COUNT || header_bytes > MAX_HEADER_BYTES {
        return head_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "{} header lines, {header_bytes} bytes; at most {MAX_HEADER_COUNT} lines and {MAX_HEADER_BYTES} bytes are accepted",
                headers.len()
            ),
        );
    }
    next.run(req).await
}

fn head_error(status: StatusCode, code: &str, detail: String) -> Response {
    tracing::debug!(status = status.as_u16(), %detail, "request head refused");
    let body = ErrorBody {
        error: code.into(),
        detail: crate::error::ErrorDetail::Text(detail),
        message: None,
    };
    let mut resp = (status, Json(body)).into_response();
    // The client may keep sending a huge head: don't read another request.
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}
