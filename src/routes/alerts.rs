//! `POST/GET /api/v1/alerts`, `GET /api/v1/alerts/{alert_id}`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::body::TimedBody;
use super::idempotency::idempotency_key;
use super::json_body;
use crate::auth::Principal;
use crate::domain::{AlertStatus, NewAlert, Severity};
use crate::error::ApiError;
use crate::service::alerts::{self as service, DEFAULT_LIST_LIMIT, ListQuery, MAX_LIST_LIMIT};
use crate::state::AppState;

/// Raise an alert → 201 (or the original alert again for a repeated `Idempotency-Key`).
#[utoipa::path(
    post,
    path = "/api/v1/alerts",
    operation_id = "create_alert",
    tag = "alerts",
    request_body(content = crate::openapi::NewAlert, content_type = "application/json",
        description = "Roles service, dispatcher, admin. Unknown fields are refused.",
        example = json!({"patient_id": "123", "severity": "critical", "kind": "heart_rate_high",
            "title": "Heart rate 148 bpm", "message": "Sustained tachycardia for 5 minutes",
            "data": {"hr": 148, "unit": "bpm"}, "source": "monitor-7"})),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]([ -~]*[!-~])?$", min_length = 1, max_length = 255, description = "1-255 printable ASCII characters, given once, scoped to the caller's `sub`: a repeat of the same alert returns the original (201, `Idempotent-Replayed: true`); the key with a different alert is 422"),
    ),
    responses(
        (status = 201, description = "Committed, then fanned out (or the original alert for a repeated Idempotency-Key)", body = crate::openapi::Alert,
            headers(("Location" = String, description = "`/api/v1/alerts/{id}`"),
                ("Idempotent-Replayed" = String, description = "`true` when this is a repeat"))),
        (status = 400, description = "Malformed JSON or empty body", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::Unauthorized,
        (status = 403, description = "The role may not raise alerts", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::BodyTimeout,
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not `application/json`, or has a `Content-Encoding` (bodies are read uncompressed)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Well-formed but invalid, every bad field named in `errors`; or an Idempotency-Key this caller used for a different alert", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "More writes per second than VIGIL_RATE_LIMIT for this token subject", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        crate::openapi::DatabaseUnavailable,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn create(
    req: HttpRequest,
    principal: Principal,
    body: TimedBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !principal.role.may_create() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not raise alerts",
            principal.role
        )));
    }
    state.write_limiter.check(&principal)?;
    let key = idempotency_key(&req)?;
    let value = json_body(&req, &body, None)?;
    let new = NewAlert::from_json(&value, &principal.user_id)?;
    let request_id = crate::request_id::of(&req);
    let (alert, replayed) = service::raise_alert(&state, &principal, new, key, request_id).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("/api/v1/alerts/{}", alert.id)));
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(alert))
}

/// List alerts in scope.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/alerts",
    operation_id = "list_alerts",
    tag = "alerts",
    params(
        ("patient_id" = Option<Vec<String>>, Query, style = Form, explode, pattern = r"^\s*(\*|(?!\.\.?\s*(,|$))[A-Za-z0-9_.-]{1,64})?\s*(,\s*(\*|(?!\.\.?\s*(,|$))[A-Za-z0-9_.-]{1,64})?\s*)*$", description = "Repeatable or comma list of patient ids (1-64 of `[A-Za-z0-9_.-]`; empty items skipped); `*` (admin) for all; default: every patient in scope"),
        ("status" = Option<crate::openapi::AlertStatus>, Query, description = "Only alerts with this status"),
        ("severity" = Option<crate::openapi::Severity>, Query, description = "Only alerts with this severity"),
        ("after" = Option<i64>, Query, description = "Every alert whose `last_seq` is greater, oldest change first (polling fallback)", minimum = 0),
        ("limit" = Option<i64>, Query, description = "1-500, default 100", minimum = 1, maximum = 500),
        ("role" = Option<crate::openapi::Role>, Query, description = "Seed-era clients: may only name the token's own role"),
    ),
    responses(
        (status = 200, description = "Alerts in scope", body = crate::openapi::AlertList),
        (status = 400, description = "Unparseable query string", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::Unauthorized,
        (status = 403, description = "A requested patient is outside the caller's scope, or `role` is not the token's", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter, named in `errors`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::DatabaseUnavailable,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn list(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = crate::query::QueryPairs::parse(req.query_string())?;
    crate::scope::check_role_param(principal.role, query.single("role")?)?;
    let requested = query.requested()?;
    let status = match query.single("status")? {
        Some(s) => Some(
            s.parse::<AlertStatus>()
                .map_err(|m| ApiError::invalid("status", m))?,
        ),
        None => None,
    };
    let severity = match query.single("severity")? {
        Some(s) => Some(
            s.parse::<Severity>()
                .map_err(|m| ApiError::invalid("severity", m))?,
        ),
        None => None,
    };
    let after = match query.single("after")? {
        Some(s) => Some(s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::invalid("after", "must be an integer from 0 to 9223372036854775807")
        })?),
        None => None,
    };
    let limit = match query.single("limit")? {
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIST_LIMIT}"),
                )
            })?,
        None => DEFAULT_LIST_LIMIT,
    };
    let query = ListQuery {
        requested,
        status,
        severity,
        after,
        limit,
    };
    Ok(HttpResponse::Ok().json(service::list_alerts(&state, &principal, query).await?))
}

/// One alert with its acknowledgments.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/alerts/{alert_id}",
    operation_id = "get_alert",
    tag = "alerts",
    params(
        ("alert_id" = String, Path, description = "The alert's id (UUID v7)", example = "019a8f3e-5b1c-7d2e-9f00-1a2b3c4d5e6f"),
        ("role" = Option<crate::openapi::Role>, Query, description = "Seed-era clients: may only name the token's own role"),
    ),
    responses(
        (status = 200, description = "The alert with its acknowledgments", body = crate::openapi::Alert),
        crate::openapi::Unauthorized,
        (status = 403, description = "The role may not read alerts (service)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert, or not in the caller's scope", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::DatabaseUnavailable,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn get(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = crate::query::QueryPairs::parse(req.query_string())?;
    crate::scope::check_role_param(principal.role, query.single("role")?)?;
    let alert = service::get_alert(&state, &principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(alert))
}
