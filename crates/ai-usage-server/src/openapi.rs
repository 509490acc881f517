//! The OpenAPI 3 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers;

/// The API description served at `/openapi.json` and browsed at `/docs`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ai-usage-monitor",
        description = "Usage, cost, budgets and reports of AI calls. Write routes (record, export_report) need `Authorization: Bearer <token>` when the server runs with a token; with --protect-reads every /api route does."
    ),
    paths(
        handlers::stats_current,
        handlers::stats_hourly,
        handlers::stats_daily,
        handlers::stats_monthly,
        handlers::session,
        handlers::top_users,
        handlers::top_anchors,
        handlers::cost_trend,
        handlers::models_pricing,
        handlers::dashboard,
        handlers::budgets,
        handlers::forecast,
        handlers::savings,
        handlers::record,
        handlers::export_report,
        handlers::download_report,
        handlers::healthz,
        handlers::metrics_text,
    ),
    components(schemas(crate::error::ErrorBody, crate::ingest::RecordInput, crate::ingest::RecordResponse)),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
