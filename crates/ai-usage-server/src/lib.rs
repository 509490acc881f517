//! HTTP server of `ai-usage-monitor`: the original's JSON API (same routes, same
//! field names), record ingestion for services in other languages,
//! Prometheus metrics, OpenAPI docs with an offline Swagger UI, and the
//! dashboard page — one self-contained HTML file, compiled in.
//!
//! Run it on its own:
//!
//! ```no_run
//! use std::sync::Arc;
//! use ai_usage_core::UsageMonitor;
//! use ai_usage_server::{ServeOptions, ServerBuilder};
//!
//! let monitor = Arc::new(UsageMonitor::builder().dir("records/ai_usage").build()?);
//! ServerBuilder::new(monitor)
//!     .options(ServeOptions::from_env())
//!     .serve_blocking()?; // http://127.0.0.1:10090/
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! or merge its router into an existing axum application (the
//! `embed_router` example; an app with its own `/` moves the dashboard
//! with [`ServerBuilder::dashboard_at`]):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use ai_usage_core::UsageMonitor;
//! # fn app(monitor: Arc<UsageMonitor>) -> axum::Router {
//! axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .merge(ai_usage_server::ServerBuilder::new(monitor).dashboard_at("/ai-usage").router())
//! # }
//! ```
//!
//! Routes: `/api/ai_usage/…` (see `/openapi.json`), `/v1/traces` (OTLP/HTTP
//! GenAI spans in), `/metrics`, `/healthz`,
//! `/docs`, `/` (or the path given to [`ServerBuilder::dashboard_at`]) and
//! `/static/ai_usage_monitor.html`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod answers;
mod auth;
mod body_guard;
mod conn;
mod error;
mod ingest;
mod json;
mod limits;
mod metrics;
mod openapi;
mod otlp;
mod page;
mod params;
mod rate_limit;
mod report_files;
mod routes;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ai_usage_core::{UsageMonitor, UsageQueries};
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

use crate::answers::FleetHealth;
pub use crate::limits::{HttpLimits, MAX_BODY_BYTES};
pub use crate::openapi::document as openapi_document;
pub use crate::state::MAX_INGEST_IN_FLIGHT;

/// Environment variable read by [`ServeOptions::from_env`] for the token.
pub const TOKEN_ENV: &str = "AI_USAGE_TOKEN";

/// Default listen address (the original's port, loopback only).
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 10090);

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Listen address (default `127.0.0.1:10090`).
    pub addr: SocketAddr,
    /// Bearer token required by write routes (`record`, `export_report`);
    /// `None`: no authentication. A blank token is refused by
    /// [`ServerBuilder::serve_listener`] (it would otherwise silently disable auth).
    pub token: Option<String>,
    /// With a token: require it on every `/api` route and `/metrics` too
    /// (and `/healthz` then shows only the status to callers without it).
    pub protect_reads: bool,
    /// Timeouts and the connection cap.
    pub limits: HttpLimits,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("protect_reads", &self.protect_reads)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: DEFAULT_ADDR,
            token: None,
            protect_reads: false,
            limits: HttpLimits::default(),
        }
    }
}

impl ServeOptions {
    /// Defaults, with the token taken from `AI_USAGE_TOKEN` when set (a set
    /// but blank variable is kept, so [`ServerBuilder::serve_listener`] refuses it).
    pub fn from_env() -> ServeOptions {
        ServeOptions {
            token: std::env::var(TOKEN_ENV).ok(),
            ..ServeOptions::default()
        }
    }

    /// Checks the options: a token, when given, must not be blank.
    pub fn validate(&self) -> Result<(), ServeOptionsError> {
        match &self.token {
            Some(t) if t.trim().is_empty() => Err(ServeOptionsError::BlankToken),
            _ => Ok(()),
        }
    }

    fn active_token(&self) -> Option<auth::Token> {
        self.token.as_deref().map(|t| auth::Token::new(t.trim()))
    }
}

/// Options [`ServerBuilder::serve_listener`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServeOptionsError {
    /// `token` is `Some("")` (or whitespace): serving would either lock
    /// every client out or, as before, silently turn authentication off.
    #[error("the token is empty: give a non-empty token, or none to serve without authentication")]
    BlankToken,
}

/// Builds the server: the router to embed, or a listener to serve on.
///
/// ```no_run
/// use std::sync::Arc;
/// use ai_usage_core::UsageMonitor;
/// use ai_usage_server::{ServeOptions, ServerBuilder};
///
/// let monitor = Arc::new(UsageMonitor::builder().dir("records/ai_usage").build()?);
/// ServerBuilder::new(monitor)
///     .options(ServeOptions::from_env())
///     .serve_blocking()?; // http://127.0.0.1:10090/
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ServerBuilder {
    monitor: Arc<UsageMonitor>,
    opts: ServeOptions,
    queries: Option<Arc<dyn UsageQueries>>,
    fleet_health: Option<FleetHealth>,
    dashboard_path: String,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("opts", &self.opts)
            .field("queries", &self.queries.is_some())
            .field("fleet_health", &self.fleet_health.is_some())
            .field("dashboard_path", &self.dashboard_path)
            .finish()
    }
}

impl ServerBuilder {
    /// A server over `monitor`: default options, answers from the monitor,
    /// the dashboard at `/`.
    pub fn new(monitor: Arc<UsageMonitor>) -> ServerBuilder {
        ServerBuilder {
            monitor,
            opts: ServeOptions::default(),
            queries: None,
            fleet_health: None,
            dashboard_path: "/".to_string(),
        }
    }

    /// Address, token rules and limits (the router uses only the token
    /// rules). A blank token is not an open door: guarded routes then
    /// refuse every request, and serving refuses to start.
    pub fn options(mut self, opts: ServeOptions) -> ServerBuilder {
        self.opts = opts;
        self
    }

    /// The read routes answer from `queries` instead of the monitor
    /// (`stats/*`, `session`, rankings, `cost_trend`, `dashboard`,
    /// `budgets`, `forecast`, `savings`, `export_report`): e.g. the
    /// ClickHouse fleet's `FleetQueries`, which evaluates this server's
    /// budgets on the whole fleet's spend. Records are still ingested by
    /// the monitor. A query `queries` cannot answer is a 503.
    pub fn queries(mut self, queries: Arc<dyn UsageQueries>) -> ServerBuilder {
        self.queries = Some(queries);
        self
    }

    /// What `/healthz` adds under `fleet` (e.g. whether the fleet store
    /// answers, the shipper's lag); an object with `"ok": false` makes
    /// `/healthz` answer 503. Called on the blocking pool.
    pub fn fleet_health(
        mut self,
        health: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> ServerBuilder {
        self.fleet_health = Some(Arc::new(health));
        self
    }

    /// Where the dashboard page is served besides
    /// `/static/ai_usage_monitor.html` (default `/`). Give another path
    /// (e.g. `/ai-usage`) to merge the router into an app that has its
    /// own `/`.
    pub fn dashboard_at(mut self, path: impl Into<String>) -> ServerBuilder {
        let path = path.into();
        self.dashboard_path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self
    }

    /// The router: every route, with the token rules of the options.
    ///
    /// Subscribes the metrics to the monitor: build one router per monitor.
    pub fn router(&self) -> Router {
        build_router(self)
    }

    /// Serves on an already-bound listener until `shutdown` completes, then
    /// flushes the monitor. Fails at once (`InvalidInput`) on options that
    /// [`ServeOptions::validate`] refuses.
    pub async fn serve_listener(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.opts
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let app = self.router();
        let (monitor, opts) = (self.monitor, self.opts);
        let addr = listener.local_addr()?;
        tracing::info!(%addr, auth = opts.active_token().is_some(), protect_reads = opts.protect_reads, limits = ?opts.limits, "ai-usage server listening");
        let watcher = tokio::spawn(watch_price_catalogue(Arc::clone(&monitor)));
        conn::serve_connections(listener, app, opts.limits, shutdown).await;
        watcher.abort();
        let flushed = tokio::task::spawn_blocking(move || monitor.flush()).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("ai-usage server stopped; records flushed"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "ai-usage server stopped; records NOT all flushed")
            }
            Err(e) => tracing::error!(error = %e, "flush task failed"),
        }
        Ok(())
    }

    /// Binds the options' address and serves until Ctrl-C (or SIGTERM),
    /// then flushes the monitor.
    pub async fn serve(self) -> std::io::Result<()> {
        self.opts
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = tokio::net::TcpListener::bind(self.opts.addr).await?;
        self.serve_listener(listener, shutdown_signal()).await
    }

    /// [`serve`](Self::serve) on a new multi-thread tokio runtime (for
    /// non-async callers).
    pub fn serve_blocking(self) -> std::io::Result<()> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("ai-usage-http")
            .build()?
            .block_on(self.serve())
    }
}

/// How often a running server looks for a price catalogue installed (or
/// rolled back) by `ai-usage pricing update`.
pub const CATALOGUE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Swaps in a newly installed price catalogue while the server runs, so a
/// new model is priced without a restart (one small file read per check).
async fn watch_price_catalogue(monitor: Arc<UsageMonitor>) {
    let mut tick = tokio::time::interval(CATALOGUE_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let m = Arc::clone(&monitor);
        if tokio::task::spawn_blocking(move || m.refresh_price_catalogue())
            .await
            .is_err()
        {
            tracing::error!("price catalogue check failed");
        }
    }
}

fn build_router(b: &ServerBuilder) -> Router {
    let opts = &b.opts;
    let mut state = AppState::new(Arc::clone(&b.monitor));
    if let Some(q) = &b.queries {
        state.queries = Arc::clone(q);
        state.answers_follow_records = false;
    }
    state.fleet_health = b.fleet_health.clone();
    let token = opts.active_token();
    if opts.validate().is_err() {
        tracing::error!("blank token: every guarded route will answer 401");
    }
    let state = state.with_private_health(token.clone().filter(|_| opts.protect_reads));
    if opts.protect_reads && token.is_none() {
        tracing::warn!("protect_reads is set but no token is: reads stay open");
    }

    let reads = routes::queries().merge(routes::other_reads());
    // The OTLP/HTTP trace receiver is a write: behind the token.
    let writes = routes::writes().merge(otlp::routes());
    let (reads, writes) = match token {
        Some(t) => {
            let guard = axum::middleware::from_fn_with_state(t, auth::require_token);
            let reads = if opts.protect_reads {
                reads.route_layer(guard.clone())
            } else {
                reads
            };
            (reads, writes.route_layer(guard))
        }
        None => (reads, writes),
    };
    // Liveness, the page and the docs stay open: the page asks for the token
    // itself when the API answers 401.
    let mut open = routes::open().route(page::PAGE_PATH, get(page::dashboard_page));
    if b.dashboard_path != page::PAGE_PATH {
        open = open.route(&b.dashboard_path, get(page::dashboard_page));
    }

    let (api, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(open)
        .merge(reads)
        .merge(writes)
        .split_for_parts();
    api.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(conn::limit_request_head))
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
