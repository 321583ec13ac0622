//! `GET /api/v1/alerts/stream/stats` (admin): live connections and fan-out counters.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::messages::GetStats;
use crate::state::AppState;

/// This instance's streams and fan-out counters, for an admin checking that alerts reach screens.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/alerts/stream/stats",
    tag = "streams",
    responses(
        (status = 200, description = "Live connections and fan-out counters", body = crate::openapi::StreamStats),
        crate::openapi::Unauthorized,
        (status = 403, description = "Admin only", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn stats(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !principal.role.may_administer() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not read stream stats",
            principal.role
        )));
    }
    let snapshot = state
        .manager
        .send(GetStats)
        .await
        .map_err(|_| ApiError::ManagerUnavailable)?;
    let by_role: Map<String, Value> = snapshot
        .by_role
        .iter()
        .map(|(role, n)| (role.as_str().to_owned(), json!(n)))
        .collect();
    let m = &state.metrics;
    Ok(HttpResponse::Ok().json(json!({
        "connections": {"sse": snapshot.sse, "ws": snapshot.ws, "by_role": by_role},
        "events_published": m.events_published.get(),
        "deliveries": m.deliveries.get(),
        "queue_overflows": m.queue_overflows.get(),
        "resumes": m.resumes.get(),
        "replayed_events": m.replayed_events.get(),
        "head": snapshot.head,
    })))
}
