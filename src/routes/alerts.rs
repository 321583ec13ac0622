//! `POST/GET /api/v1/alerts`, `GET /api/v1/alerts/{alert_id}`.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use super::json_body;
use crate::auth::Principal;
use crate::domain::{AlertStatus, NewAlert, Severity};
use crate::error::ApiError;
use crate::scope::Requested;
use crate::service::alerts::{self as service, DEFAULT_LIST_LIMIT, ListQuery, MAX_IDEMPOTENCY_KEY, MAX_LIST_LIMIT};
use crate::state::AppState;

/// Raise an alert → 201 (or the original alert again for a repeated `Idempotency-Key`).
pub async fn create(req: HttpRequest, principal: Principal, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !principal.role.may_create() {
        return Err(ApiError::Forbidden(format!("role {} may not raise alerts", principal.role)));
    }
    state.write_limiter.check(&principal)?;
    let key = idempotency_key(&req)?;
    let value = json_body(&req, &body, None)?;
    let new = NewAlert::from_json(&value, &principal.user_id)?;
    let request_id = req.extensions().get::<crate::request_id::RequestId>().map(|r| r.0.clone());
    let (alert, replayed) = service::raise_alert(&state, &principal, new, key, request_id).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("/api/v1/alerts/{}", alert.id)));
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(alert))
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
        .trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid("Idempotency-Key", format!("must be 1-{MAX_IDEMPOTENCY_KEY} characters")));
    }
    Ok(Some(key.to_owned()))
}

/// List alerts in scope.
pub async fn list(req: HttpRequest, principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
    let requested = Requested::parse(pairs.iter().filter(|(k, _)| k == "patient_id").map(|(_, v)| v.as_str()))?;
    let find = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let status = match find("status") {
        Some(s) => Some(s.parse::<AlertStatus>().map_err(|m| ApiError::invalid("status", m))?),
        None => None,
    };
    let severity = match find("severity") {
        Some(s) => Some(s.parse::<Severity>().map_err(|m| ApiError::invalid("severity", m))?),
        None => None,
    };
    let after = match find("after") {
        Some(s) => Some(s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| ApiError::invalid("after", "must be a non-negative integer"))?),
        None => None,
    };
    let limit = match find("limit") {
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be an integer from 1 to {MAX_LIST_LIMIT}")))?,
        None => DEFAULT_LIST_LIMIT,
    };
    let query = ListQuery { requested, status, severity, after, limit };
    Ok(HttpResponse::Ok().json(service::list_alerts(&state, &principal, query).await?))
}

/// One alert with its acknowledgments.
pub async fn get(principal: Principal, path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let alert = service::get_alert(&state, &principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(alert))
}
