//! The exporter's HTTP client: ureq (blocking, already in the tree), on
//! the SDK's reader thread, with a few retries and exponential backoff for
//! a collector that is down or busy. Nothing here runs on a caller's thread.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// Attempts per export (the first and the retries).
const ATTEMPTS: u32 = 4;
/// First backoff; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A blocking OTLP/HTTP client with retries.
#[derive(Debug, Clone)]
pub(crate) struct UreqClient {
    agent: ureq::Agent,
}

impl UreqClient {
    pub fn new(timeout: Duration) -> UreqClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        UreqClient { agent }
    }

    fn send_once(&self, request: &Request<Bytes>) -> Result<Response<Bytes>, ureq::Error> {
        let mut builder = http::Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(request.body().to_vec())
            .map_err(|e| ureq::Error::BadUri(e.to_string()))?;
        let mut resp = self.agent.run(req)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.body_mut().read_to_vec()?;
        let mut out = Response::new(Bytes::from(body));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = self.send_once(&request);
            let again = match &result {
                Ok(r) => retryable(r.status().as_u16()),
                Err(_) => true,
            };
            if !again || attempt == ATTEMPTS {
                if let Err(e) = &result {
                    tracing::warn!(error = %e, attempts = attempt, "OTLP metrics export failed; the next export carries the same totals");
                }
                return result.map_err(|e| Box::new(e) as HttpError);
            }
            // On the SDK's reader thread: sleeping here delays only exports.
            std::thread::sleep(backoff);
            backoff *= 2;
            attempt += 1;
        }
    }
}
