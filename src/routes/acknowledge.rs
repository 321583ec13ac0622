//! `POST /api/v1/alerts/{alert_id}/acknowledge` and the seed-era alias.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::body::TimedBody;
use super::idempotency::idempotency_key;
use super::json_body;
use crate::auth::Principal;
use crate::domain::PatientId;
use crate::domain::alert::parse_ack_body;
use crate::error::ApiError;
use crate::service::acks::{AckRequest, Acked, acknowledge as service_ack};
use crate::state::AppState;

/// Acknowledge, escalate or resolve → 200 `{"alert": …, "acknowledgment": …}`.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{alert_id}/acknowledge",
    tag = "acknowledgments",
    params(
        ("alert_id" = String, Path, description = "The alert's id (UUID v7)", example = "019a8f3e-5b1c-7d2e-9f00-1a2b3c4d5e6f"),
        ("role" = Option<crate::openapi::Role>, Query, description = "Seed-era clients: may only name the token's own role"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]([ -~]*[!-~])?$", min_length = 1, max_length = 255, description = "1-255 printable ASCII characters, given once, scoped to the caller's `sub`: a repeat of the same acknowledgment (alert, status, note) is answered as the first time (200, `Idempotent-Replayed: true`) and recorded once; the key with a different acknowledgment is 422"),
    ),
    request_body(content = Option<crate::openapi::AckRequest>, content_type = "application/json",
        description = "Optional: an empty body means `{\"status\": \"acknowledged\"}`",
        example = json!({"status": "acknowledged", "note": "On my way"})),
    responses(
        crate::openapi::AckResponses,
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn acknowledge(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    body: TimedBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    handle(
        &req,
        &principal,
        path.into_inner(),
        &body,
        &state,
        AckRoute::Current,
    )
    .await
}

/// The seed-era path; an optional `?patient_id=` must match the alert's patient.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/alerts/{alert_id}/acknowledge",
    tag = "acknowledgments",
    params(
        ("alert_id" = String, Path, description = "The alert's id (UUID v7)", example = "019a8f3e-5b1c-7d2e-9f00-1a2b3c4d5e6f"),
        ("role" = Option<crate::openapi::Role>, Query, description = "Seed-era clients: may only name the token's own role"),
        ("patient_id" = Option<String>, Query, pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "When given, must be the alert's patient (else 404)", example = "123"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]([ -~]*[!-~])?$", min_length = 1, max_length = 255, description = "1-255 printable ASCII characters, given once, scoped to the caller's `sub`: a repeat of the same acknowledgment (alert, status, note) is answered as the first time (200, `Idempotent-Replayed: true`) and recorded once; the key with a different acknowledgment is 422"),
    ),
    request_body(content = Option<crate::openapi::AckRequest>, content_type = "application/json",
        description = "Optional: an empty body means `{\"status\": \"acknowledged\"}`",
        example = json!({"status": "acknowledged", "note": "On my way"})),
    responses(
        crate::openapi::AckResponses,
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn acknowledge_seed_alias(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    body: TimedBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    handle(
        &req,
        &principal,
        path.into_inner(),
        &body,
        &state,
        AckRoute::SeedAlias,
    )
    .await
}

/// Which of the two paths a request came by: only the seed-era alias takes `patient_id`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AckRoute {
    Current,
    SeedAlias,
}

async fn handle(
    req: &HttpRequest,
    principal: &Principal,
    alert_id: String,
    body: &[u8],
    state: &AppState,
    route: AckRoute,
) -> Result<HttpResponse, ApiError> {
    let query = crate::query::QueryPairs::parse(req.query_string())?;
    // Seed-era clients send their `role` here too: it may only name the token's own.
    crate::scope::check_role_param(principal.role, query.single("role")?)?;
    let expected_patient = match route {
        AckRoute::SeedAlias => query
            .single("patient_id")?
            .map(|raw| PatientId::parse(raw).map_err(|m| ApiError::invalid("patient_id", m)))
            .transpose()?,
        AckRoute::Current => None,
    };
    if !principal.role.may_acknowledge() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not acknowledge alerts",
            principal.role
        )));
    }
    state.write_limiter.check(principal)?;
    let key = idempotency_key(req)?;
    let value = match json_body(req, body, Some(json!({})))? {
        // The OpenAPI body is optional, and a generated client sends "no body" as `null`.
        Value::Null => json!({}),
        value => value,
    };
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
            idempotency_key: key,
        },
    )
    .await?;
    Ok(match outcome {
        Acked::Recorded(outcome) => HttpResponse::Ok().json(outcome),
        Acked::Replayed(answer) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("Idempotent-Replayed", "true"))
            .body(answer),
    })
}
