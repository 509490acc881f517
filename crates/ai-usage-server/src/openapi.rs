//! The OpenAPI 3 document: the parts no route carries (title, shared
//! schemas, the bearer scheme); the paths come from the route list in
//! [`crate::routes`].

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::routes;

/// The document's frame; [`document`] adds every route to it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ai-usage-monitor",
        description = "Usage, cost, budgets and reports of AI calls. Write routes (record, export_report) need `Authorization: Bearer <token>` when the server runs with a token; with --protect-reads every /api route does."
    ),
    components(schemas(crate::error::ErrorBody, ai_usage_core::intake::UsageInput, crate::ingest::RecordResponse)),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// The full API description served at `/openapi.json` and browsed at `/docs`.
pub fn document() -> utoipa::openapi::OpenApi {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::all())
        .into_openapi()
}

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
