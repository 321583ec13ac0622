//! The embedded browser pages and the migration guide (no CDN, no build step).

use actix_web::HttpResponse;

const CONSOLE: &str = include_str!("../../static/console.html");
const LEGACY: &str = include_str!("../../static/legacy.html");
const MIGRATION: &str = include_str!("../../docs/migration.md");

/// `GET /`: the SSE alert console.
#[utoipa::path(
    method(get, head),
    path = "/",
    tag = "pages",
    responses((status = 200, description = "The SSE alert console (data needs a login)", body = String, content_type = "text/html; charset=utf-8"))
)]
pub async fn console() -> HttpResponse {
    page(CONSOLE)
}

/// `GET /legacy`: the WebSocket dashboard (phase 1 demonstration).
#[utoipa::path(
    method(get, head),
    path = "/legacy",
    tag = "pages",
    responses((status = 200, description = "The legacy WebSocket dashboard", body = String, content_type = "text/html; charset=utf-8"))
)]
pub async fn legacy() -> HttpResponse {
    page(LEGACY)
}

/// `GET /docs/migration`: the WebSocket → SSE guide, linked from 410 and deprecation headers.
#[utoipa::path(
    method(get, head),
    path = "/docs/migration",
    tag = "pages",
    responses((status = 200, description = "The WebSocket to SSE migration guide", body = String, content_type = "text/markdown; charset=utf-8"))
)]
pub async fn migration_guide() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/markdown; charset=utf-8")
        .body(MIGRATION)
}

/// A page with its security headers. Never framed (`frame-ancestors 'none'`; the app's
/// default headers add `X-Frame-Options` for older browsers, and `nosniff`): a signed-in
/// console inside another site's frame could be clicked into acknowledging alerts.
fn page(html: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(html)
}
