//! An axum app with its own `/` and every ai-usage route merged in; the
//! dashboard moves to `/ai-usage` so the two `/` routes do not overlap.
//! `docs/server.md` shows the `app` function below, word for word (a test
//! checks it), and `tests/embed.rs` runs it.
//!
//! `cargo run -p ai-usage-server --example embed_router`, then open
//! <http://127.0.0.1:3000/ai-usage>.

// docs/server.md: begin
use std::sync::Arc;

use ai_usage_monitor::UsageMonitor;
use ai_usage_server::ServerBuilder;
use axum::routing::get;
use axum::Router;

/// Your app, with the ai-usage routes merged in.
pub fn app(monitor: Arc<UsageMonitor>) -> Router {
    Router::new()
        .route("/", get(|| async { "my app" }))
        // Every ai-usage route, without auth (put your own auth layer in
        // front, or pass `.options(ServeOptions { token, .. })`). The page
        // moves off `/`, which is the app's.
        .merge(
            ServerBuilder::new(monitor)
                .dashboard_at("/ai-usage")
                .router(),
        )
}
// docs/server.md: end

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("ai-usage-embed-example");
    let monitor = Arc::new(UsageMonitor::builder().dir(dir).build()?);
    let app = app(Arc::clone(&monitor));
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
        println!("http://127.0.0.1:3000/ (the app), /ai-usage (the dashboard)");
        axum::serve(listener, app).await
    })?;
    monitor.flush()?;
    Ok(())
}
