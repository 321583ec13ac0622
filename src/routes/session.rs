//! `POST/DELETE /api/v1/session`: the console trades a token for the HttpOnly,
//! `SameSite=Strict` `vigil_token` cookie (browsers' EventSource cannot send headers);
//! `GET` says who the credential is for and which patients it sees.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::NoBody;
use crate::auth::Principal;
use crate::auth::extractor::COOKIE_NAME;
use crate::error::ApiError;
use crate::state::AppState;

fn cookie<'a>(req: &HttpRequest, value: String, max_age: i64) -> Cookie<'a> {
    let mut cookie = Cookie::new(COOKIE_NAME, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_secure(req.connection_info().scheme() == "https");
    cookie.set_max_age(CookieDuration::seconds(max_age.max(0)));
    cookie
}

/// Sets the cookie from the bearer token; answers who the token is for.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    operation_id = "create_session",
    tag = "session",
    responses(
        crate::openapi::StrayBody,
        (status = 200, description = "Who the token is for; with a Bearer token, also sets the cookie", body = crate::openapi::Session,
            headers(("Set-Cookie" = String, description = "`vigil_token=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=<token lifetime>` (`Secure` over https)"))),
        crate::openapi::Unauthorized,
        (status = 403, description = "Cookie-authenticated without an allowed Origin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn create(
    req: HttpRequest,
    principal: Principal,
    _body: NoBody,
    _state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer_token)
        .map(str::to_owned);
    let mut response = HttpResponse::Ok();
    if let Some(token) = token {
        let max_age = principal.expires_at - chrono::Utc::now().timestamp();
        response.cookie(cookie(&req, token, max_age));
    }
    Ok(response.json(who(&principal)))
}

/// Who `principal` is, as both session answers say it.
fn who(principal: &Principal) -> serde_json::Value {
    json!({
        "user_id": principal.user_id,
        "role": principal.role.as_str(),
        "patient_id": principal.patient_id.as_ref().map(|p| p.as_str()),
        "expires_at": crate::domain::format_millis(principal.expires_at.saturating_mul(1000)),
    })
}

/// Who the credential is for and the patients it sees now. A console tab that only polls
/// hears no `scope_changed` (that comes on a stream): it compares these to say a
/// care-team change in words, where rows would otherwise vanish unexplained.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/session",
    operation_id = "get_session",
    tag = "session",
    responses(
        (status = 200, description = "Who the credential is for, and `patients`: the patients it may see now (`[\"*\"]` for admin, the `patient_id` claim for patient, the care team for clinical roles, none for service), as a stream's `connected` says them", body = crate::openapi::SessionScope),
        crate::openapi::Unauthorized,
        (status = 503, description = "The database is unreachable or did not answer in time", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn get(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who_asks = principal.clone();
    let allowed = crate::db::run(&state.pool, move |c| {
        Ok(crate::service::scope::allowed_in(c, &who_asks)?)
    })
    .await?;
    let patients: Vec<String> = match allowed {
        crate::scope::Allowed::All => vec!["*".to_owned()],
        crate::scope::Allowed::Patients(patients) => patients.into_iter().collect(),
    };
    let mut body = who(&principal);
    body["patients"] = json!(patients);
    Ok(HttpResponse::Ok().json(body))
}

/// Clears the cookie.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    operation_id = "delete_session",
    tag = "session",
    responses(
        crate::openapi::StrayBody,
        (status = 204, description = "The cookie is cleared", headers(("Set-Cookie" = String, description = "An expired `vigil_token`"))),
        crate::openapi::Unauthorized,
        (status = 403, description = "Cookie-authenticated without an allowed Origin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn delete(req: HttpRequest, _principal: Principal, _body: NoBody) -> HttpResponse {
    let mut expired = cookie(&req, String::new(), 0);
    expired.make_removal();
    HttpResponse::NoContent().cookie(expired).finish()
}
