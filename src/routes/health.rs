//! Liveness, readiness (the database answers) and Prometheus metrics.

use std::time::Duration;

use actix_web::{HttpResponse, ResponseError, web};
use serde_json::json;

use crate::db::writer::Failing;
use crate::db::{self, events};
use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(
    method(get, head),
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up", body = crate::openapi::Health,
        example = json!({"status": "ok"})))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// How long readiness waits for a database connection: under a probe's usual one-second
/// timeout, so an unreachable database is reported as 503 rather than as a probe timeout.
const READINESS_CHECKOUT: Duration = Duration::from_millis(800);

/// The database answers; 503 otherwise.
#[utoipa::path(
    method(get, head),
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = crate::openapi::Ready,
            example = json!({"status": "ready", "database": "ok", "broker": "in-process", "head": 42})),
        (status = 503, description = "The database does not answer", body = crate::openapi::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let read = db::run_within(&state.pool, READINESS_CHECKOUT, |c| Ok(events::head(c)?)).await;
    // Reads can work while writes cannot (SQLite locked by another process, a full
    // disk): then the instance cannot store an alert, and is not ready. A test write
    // says so before any alert meets it.
    let checked = match read {
        Ok(head) => state
            .writer
            .check_writable(READINESS_CHECKOUT)
            .await
            .map(|()| head)
            .map_err(|(cause, why)| (why, cause)),
        Err(e) => Err((
            e.internal_chain().unwrap_or_else(|| e.to_string()),
            Failing::Unreachable,
        )),
    };
    let broker = match state.broker.connected() {
        None => "in-process",
        Some(true) => "connected",
        Some(false) => "reconnecting",
    };
    match checked {
        Ok(head) => HttpResponse::Ok()
            .json(json!({"status": "ready", "database": "ok", "broker": broker, "head": head})),
        Err((why, cause)) => {
            log::warn!("readiness check failed ({}): {why}", cause.as_str());
            // Answered, not returned as an error: a failing probe is logged once above,
            // not again as a failed request.
            ApiError::NotReady {
                database: cause,
                broker,
            }
            .error_response()
        }
    }
}

/// Prometheus text format.
#[utoipa::path(
    method(get, head),
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition (`vigil_*`, including `vigil_limit_rejections_total{limit}`)",
        body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(state.broker.connected()))
}
