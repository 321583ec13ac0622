//! `POST /api/v1/alerts/{alert_id}/acknowledge` and the seed-era alias.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::json_body;
use crate::auth::Principal;
use crate::domain::PatientId;
use crate::domain::alert::parse_ack_body;
use crate::error::ApiError;
use crate::service::acks::{AckRequest, acknowledge as service_ack};
use crate::state::AppState;

/// Acknowledge, escalate or resolve → 200 `{"alert": …, "acknowledgment": …}`.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{alert_id}/acknowledge",
    tag = "acknowledgments",
    params(
        ("alert_id" = String, Path, description = "The alert's id (UUID v7)", example = "019a8f3e-5b1c-7d2e-9f00-1a2b3c4d5e6f"),
    ),
    request_body(content = Option<crate::openapi::AckRequest>, content_type = "application/json",
        description = "Optional: an empty body means `{\"status\": \"acknowledged\"}`",
        example = json!({"status": "acknowledged", "note": "On my way"})),
    responses(
        (status = 200, description = "Recorded and fanned out as `alert_updated`", body = crate::openapi::AckOutcome),
        (status = 400, description = "Malformed JSON", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad credentials (`WWW-Authenticate: Bearer`)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not acknowledge, or may not set this status (e.g. caregiver resolving); or a cookie request without an allowed Origin", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert, or not in the caller's scope", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The alert is resolved; `resolved` is final", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not `application/json`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, named in `errors`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "More writes per second than VIGIL_RATE_LIMIT for this token subject", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The database is unreachable; nothing was stored", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn acknowledge(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    handle(&req, &principal, path.into_inner(), &body, &state, None).await
}

/// The seed-era path; an optional `?patient_id=` must match the alert's patient.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/alerts/{alert_id}/acknowledge",
    tag = "acknowledgments",
    params(
        ("alert_id" = String, Path, description = "The alert's id (UUID v7)", example = "019a8f3e-5b1c-7d2e-9f00-1a2b3c4d5e6f"),
        ("patient_id" = Option<String>, Query, description = "When given, must be the alert's patient (else 404)", example = "123"),
    ),
    request_body(content = Option<crate::openapi::AckRequest>, content_type = "application/json",
        description = "Optional: an empty body means `{\"status\": \"acknowledged\"}`",
        example = json!({"status": "acknowledged", "note": "On my way"})),
    responses(
        (status = 200, description = "Recorded and fanned out as `alert_updated`", body = crate::openapi::AckOutcome),
        (status = 400, description = "Malformed JSON", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad credentials (`WWW-Authenticate: Bearer`)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not acknowledge, or may not set this status (e.g. caregiver resolving); or a cookie request without an allowed Origin", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert, or not in the caller's scope", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The alert is resolved; `resolved` is final", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not `application/json`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, named in `errors`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "More writes per second than VIGIL_RATE_LIMIT for this token subject", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The database is unreachable; nothing was stored", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn acknowledge_seed_alias(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = crate::query::QueryPairs::parse(req.query_string())?;
    let expected = match query.first("patient_id") {
        Some(raw) => Some(PatientId::parse(raw).map_err(|m| ApiError::invalid("patient_id", m))?),
        None => None,
    };
    handle(&req, &principal, path.into_inner(), &body, &state, expected).await
}

async fn handle(
    req: &HttpRequest,
    principal: &Principal,
    alert_id: String,
    body: &[u8],
    state: &AppState,
    expected_patient: Option<PatientId>,
) -> Result<HttpResponse, ApiError> {
    if !principal.role.may_acknowledge() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not acknowledge alerts",
            principal.role
        )));
    }
    state.write_limiter.check(principal)?;
    let value = json_body(req, body, Some(json!({})))?;
    let (status, note) = parse_ack_body(&value)?;
    let outcome = service_ack(
        state,
        principal,
        AckRequest {
            alert_id,
            status,
            note,
            expected_patient,
            request_id: crate::request_id::of(req),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(outcome))
}
