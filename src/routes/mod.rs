//! The whole URL map on one screen, plus the body helper every JSON endpoint uses.

pub mod acknowledge;
pub mod alerts;
pub mod care_team;
pub mod console;
pub mod health;
pub mod session;
pub mod stats;

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde_json::Value;

use crate::error::ApiError;
use crate::transport::{sse, ws};

/// Largest request body (DESIGN.md: 413 over 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/", web::get().to(console::console))
        .route("/legacy", web::get().to(console::legacy))
        .route("/docs/migration", web::get().to(console::migration_guide))
        .route("/ws", web::get().to(ws::ws_endpoint))
        .service(
            web::scope("/api/v1")
                .route("/session", web::post().to(session::create))
                .route("/session", web::delete().to(session::delete))
                .route("/alerts", web::post().to(alerts::create))
                .route("/alerts", web::get().to(alerts::list))
                .route("/alerts/stream", web::get().to(sse::stream_alerts))
                .route("/alerts/stream/stats", web::get().to(stats::stats))
                .route("/alerts/{alert_id}", web::get().to(alerts::get))
                .route("/alerts/{alert_id}/acknowledge", web::post().to(acknowledge::acknowledge))
                .route("/alerts/alerts/{alert_id}/acknowledge", web::post().to(acknowledge::acknowledge_seed_alias))
                .route("/patients/{patient_id}/care-team", web::get().to(care_team::get))
                .route("/patients/{patient_id}/care-team", web::put().to(care_team::replace))
                .route("/patients/{patient_id}/care-team", web::delete().to(care_team::clear))
                .route("/patients/{patient_id}/care-team/{user_id}", web::get().to(care_team::get_member))
                .route("/patients/{patient_id}/care-team/{user_id}", web::put().to(care_team::assign))
                .route("/patients/{patient_id}/care-team/{user_id}", web::delete().to(care_team::unassign)),
        );
}

/// Parses a JSON body: 415 unless `application/json`, 400 if malformed. An empty body
/// is `empty` (callers decide whether that is allowed).
pub fn json_body(req: &HttpRequest, body: &[u8], empty: Option<Value>) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        if let Some(default) = empty {
            return Ok(default);
        }
        return Err(ApiError::BadRequest("a JSON body is required".to_owned()));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence != "application/json" && !(essence.starts_with("application/") && essence.ends_with("+json")) {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}
