//! `GET/PUT/DELETE /api/v1/patients/{patient_id}/care-team[/{user_id}]` (admin only).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::body::TimedBody;
use super::{NoBody, json_body};
use crate::auth::Principal;
use crate::domain::PatientId;
use crate::error::ApiError;
use crate::service::care_team::{self as service, parse_user_id, parse_user_id_in};
use crate::state::AppState;

fn patient(raw: &str) -> Result<PatientId, ApiError> {
    PatientId::parse(raw).map_err(|m| ApiError::invalid("patient_id", m))
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.role.may_administer() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "role {} may not manage care teams",
            principal.role
        )))
    }
}

/// The team.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/patients/{patient_id}/care-team",
    operation_id = "get_care_team",
    tag = "care-team",
    params(
        ("patient_id" = String, Path, pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "1-64 of `[A-Za-z0-9_.-]`", example = "123"),
    ),
    responses(
        (status = 200, description = "The team (possibly empty)", body = crate::openapi::CareTeam),
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
        crate::openapi::CareTeamRefusals,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn get(
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&principal)?;
    Ok(HttpResponse::Ok().json(service::get(&state, &principal, patient(&path)?).await?))
}

/// Replace the team: body `{"user_ids": ["alice", …]}`.
#[utoipa::path(
    put,
    path = "/api/v1/patients/{patient_id}/care-team",
    operation_id = "replace_care_team",
    tag = "care-team",
    params(
        ("patient_id" = String, Path, pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "1-64 of `[A-Za-z0-9_.-]`", example = "123"),
    ),
    request_body(content = crate::openapi::ReplaceCareTeam, content_type = "application/json",
        description = "The whole new team; open streams rescope at once",
        example = json!({"user_ids": ["alice", "bob"]})),
    responses(
        (status = 200, description = "The new team", body = crate::openapi::CareTeam),
        (status = 400, description = "Malformed JSON", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::BodyTimeout,
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not `application/json`, or has a `Content-Encoding` (bodies are read uncompressed)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
        crate::openapi::CareTeamRefusals,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn replace(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    body: TimedBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&principal)?;
    let patient = patient(&path)?;
    let value = json_body(&req, &body, None)?;
    // As on alerts and acknowledgments: a misspelt field is refused, not dropped.
    if let Some(unknown) = value
        .as_object()
        .and_then(|fields| fields.keys().find(|k| *k != "user_ids"))
    {
        return Err(ApiError::invalid(unknown, "unknown field"));
    }
    let users = value
        .get("user_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("user_ids", "must be an array of user ids"))?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // Named by position, so the client knows which entry to fix.
            let field = format!("user_ids[{i}]");
            v.as_str()
                .ok_or_else(|| ApiError::invalid(&field, "must be a string"))
                .and_then(|raw| parse_user_id_in(&field, raw))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(service::replace(&state, &principal, patient, users).await?))
}

/// Remove every member.
#[utoipa::path(
    delete,
    path = "/api/v1/patients/{patient_id}/care-team",
    operation_id = "clear_care_team",
    tag = "care-team",
    params(
        ("patient_id" = String, Path, pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "1-64 of `[A-Za-z0-9_.-]`", example = "123"),
    ),
    responses(
        crate::openapi::StrayBody,
        (status = 204, description = "The team is empty"),
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
        crate::openapi::CareTeamRefusals,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn clear(
    principal: Principal,
    _body: NoBody,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&principal)?;
    service::replace(&state, &principal, patient(&path)?, Vec::new()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One membership as `GET` and `PUT` of one member both answer it: a client keeps one type.
fn assignment(patient_id: &str, member: &service::Member) -> Value {
    serde_json::json!({"patient_id": patient_id, "user_id": member.user_id, "created_at": member.created_at})
}

/// One member, or 404.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/patients/{patient_id}/care-team/{user_id}",
    operation_id = "get_care_team_member",
    tag = "care-team",
    params(
        ("patient_id" = String, Path, pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "1-64 of `[A-Za-z0-9_.-]`", example = "123"),
        ("user_id" = String, Path, pattern = "^(?!\\.\\.?$)(?!\\s)(?!.*\\s$)[^\\x00-\\x1F\\x7F-\\x9F\\uFFFD\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]{1,128}$", min_length = 1, max_length = 128, description = "1-128 printable characters (a token `sub`), none invisible, no white space at either end", example = "alice"),
    ),
    responses(
        (status = 200, description = "The member", body = crate::openapi::CareTeamAssignment),
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
        crate::openapi::CareTeamRefusals,
        (status = 404, description = "Not a member", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn get_member(
    principal: Principal,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&principal)?;
    let (patient_raw, user_raw) = path.into_inner();
    let user = parse_user_id(&user_raw)?;
    let team = service::get(&state, &principal, patient(&patient_raw)?).await?;
    match team.members.into_iter().find(|m| m.user_id == user) {
        Some(member) => Ok(HttpResponse::Ok().json(assignment(&patient_raw, &member))),
        None => Err(ApiError::NotFound(format!(
            "{user} is not on the care team of patient {patient_raw}"
        ))),
    }
}

/// Add a member: 201 when added, 200 when already there.
#[utoipa::path(
    put,
    path = "/api/v1/patients/{patient_id}/care-team/{user_id}",
    operation_id = "assign_care_team_member",
    tag = "care-team",
    params(
        ("patient_id" = String, Path, pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "1-64 of `[A-Za-z0-9_.-]`", example = "123"),
        ("user_id" = String, Path, pattern = "^(?!\\.\\.?$)(?!\\s)(?!.*\\s$)[^\\x00-\\x1F\\x7F-\\x9F\\uFFFD\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]{1,128}$", min_length = 1, max_length = 128, description = "1-128 printable characters (a token `sub`), none invisible, no white space at either end", example = "alice"),
    ),
    responses(
        crate::openapi::StrayBody,
        (status = 201, description = "Added; the user's open streams see the patient at once", body = crate::openapi::CareTeamAssignment),
        (status = 200, description = "Already a member", body = crate::openapi::CareTeamAssignment),
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
        crate::openapi::CareTeamRefusals,
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn assign(
    principal: Principal,
    _body: NoBody,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&principal)?;
    let (patient_raw, user_raw) = path.into_inner();
    let (member, created) = service::assign(
        &state,
        &principal,
        patient(&patient_raw)?,
        parse_user_id(&user_raw)?,
    )
    .await?;
    let body = assignment(&patient_raw, &member);
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// Remove a member: 204, or 404 when not a member.
#[utoipa::path(
    delete,
    path = "/api/v1/patients/{patient_id}/care-team/{user_id}",
    operation_id = "unassign_care_team_member",
    tag = "care-team",
    params(
        ("patient_id" = String, Path, pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "1-64 of `[A-Za-z0-9_.-]`", example = "123"),
        ("user_id" = String, Path, pattern = "^(?!\\.\\.?$)(?!\\s)(?!.*\\s$)[^\\x00-\\x1F\\x7F-\\x9F\\uFFFD\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]{1,128}$", min_length = 1, max_length = 128, description = "1-128 printable characters (a token `sub`), none invisible, no white space at either end", example = "alice"),
    ),
    responses(
        crate::openapi::StrayBody,
        (status = 204, description = "Removed; the user's open streams stop seeing the patient at once"),
        crate::openapi::Unauthorized,
        crate::openapi::DatabaseUnavailable,
        crate::openapi::CareTeamRefusals,
        (status = 404, description = "Not a member", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn unassign(
    principal: Principal,
    _body: NoBody,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&principal)?;
    let (patient_raw, user_raw) = path.into_inner();
    service::unassign(
        &state,
        &principal,
        patient(&patient_raw)?,
        parse_user_id(&user_raw)?,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
