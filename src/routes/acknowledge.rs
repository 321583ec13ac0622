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
pub async fn acknowledge(req: HttpRequest, principal: Principal, path: web::Path<String>, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    handle(&req, &principal, path.into_inner(), &body, &state, None).await
}

/// The seed-era path; an optional `?patient_id=` must match the alert's patient.
pub async fn acknowledge_seed_alias(req: HttpRequest, principal: Principal, path: web::Path<String>, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
    let expected = match pairs.iter().find(|(k, _)| k == "patient_id") {
        Some((_, raw)) => Some(PatientId::parse(raw).map_err(|m| ApiError::invalid("patient_id", m))?),
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
        return Err(ApiError::Forbidden(format!("role {} may not acknowledge alerts", principal.role)));
    }
    state.write_limiter.check(principal)?;
    let value = json_body(req, body, Some(json!({})))?;
    let (status, note) = parse_ack_body(&value)?;
    let outcome = service_ack(state, principal, AckRequest { alert_id, status, note, expected_patient }).await?;
    Ok(HttpResponse::Ok().json(outcome))
}
