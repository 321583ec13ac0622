//! The whole URL map on one screen, plus the body helper every JSON endpoint uses.

pub mod acknowledge;
pub mod alerts;
pub mod body;
pub mod care_team;
pub mod console;
pub mod health;
pub mod idempotency;
pub mod session;
pub mod stats;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use serde_json::Value;

use crate::error::ApiError;
use crate::openapi;
use crate::strict_json::Changed;
use crate::transport::{sse, ws};

/// Largest request body (DESIGN.md: 413 over 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Registers every route. Each path is one `web::resource` holding all its methods, so
/// a known path asked with another method answers 405 (with `Allow`), not 404. Every
/// resource here must be described in [`crate::openapi::ApiDoc`] (`tests/api/openapi.rs`
/// reads this function to check); the Swagger UI's asset tree under `/api/docs/` is the
/// one service that is not an API route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // HEAD wherever GET answers a whole document (RFC 9110 §9.1: a general-purpose server
    // supports both): probes, pages, documents, and the API's token-guarded reads, which
    // check the token as GET does. The two streams are GET only: an event stream or an
    // upgrade has no headers-only form.
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .route(web::head().to(health::healthz)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(health::readyz))
            .route(web::head().to(health::readyz)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(health::metrics))
            .route(web::head().to(health::metrics)),
    )
    .service(
        web::resource("/")
            .route(web::get().to(console::console))
            .route(web::head().to(console::console)),
    )
    .service(
        web::resource("/legacy")
            .route(web::get().to(console::legacy))
            .route(web::head().to(console::legacy)),
    )
    .service(
        web::resource("/docs/migration")
            .route(web::get().to(console::migration_guide))
            .route(web::head().to(console::migration_guide)),
    )
    .service(web::resource("/ws").route(web::get().to(ws::ws_endpoint)))
    .service(web::resource("/api/docs").route(web::get().to(openapi::swagger_redirect)))
    .service(openapi::swagger_ui())
    .service(
        web::scope("/api/v1")
            // Patient data is never kept by browser or proxy caches (the console reads it
            // with a cookie). Responses that set their own (the SSE stream's `no-cache`)
            // keep it.
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .service(
                web::resource("/openapi.json")
                    .route(web::get().to(openapi::openapi_json))
                    .route(web::head().to(openapi::openapi_json)),
            )
            .service(
                web::resource("/session")
                    .route(web::post().to(session::create))
                    .route(web::get().to(session::get))
                    .route(web::head().to(session::get))
                    .route(web::delete().to(session::delete)),
            )
            .service(
                web::resource("/alerts")
                    .route(web::post().to(alerts::create))
                    .route(web::get().to(alerts::list))
                    .route(web::head().to(alerts::list)),
            )
            .service(web::resource("/alerts/stream").route(web::get().to(sse::stream_alerts)))
            .service(
                web::resource("/alerts/stream/stats")
                    .route(web::get().to(stats::stats))
                    .route(web::head().to(stats::stats)),
            )
            .service(
                web::resource("/alerts/{alert_id}")
                    .route(web::get().to(alerts::get))
                    .route(web::head().to(alerts::get)),
            )
            .service(
                web::resource("/alerts/{alert_id}/acknowledge")
                    .route(web::post().to(acknowledge::acknowledge)),
            )
            .service(
                web::resource("/alerts/alerts/{alert_id}/acknowledge")
                    .route(web::post().to(acknowledge::acknowledge_seed_alias)),
            )
            .service(
                web::resource("/patients/{patient_id}/care-team")
                    .route(web::get().to(care_team::get))
                    .route(web::head().to(care_team::get))
                    .route(web::put().to(care_team::replace))
                    .route(web::delete().to(care_team::clear)),
            )
            .service(
                web::resource("/patients/{patient_id}/care-team/{user_id}")
                    .route(web::get().to(care_team::get_member))
                    .route(web::head().to(care_team::get_member))
                    .route(web::put().to(care_team::assign))
                    .route(web::delete().to(care_team::unassign)),
            ),
    );
}

/// Parses a JSON body: 415 unless `application/json`, 400 if malformed or its type is
/// given twice. An empty body is `empty` (callers decide whether that is allowed), but
/// only when it claims no other media type: a form post or `text/plain` is refused
/// whatever it carries.
pub fn json_body(req: &HttpRequest, body: &[u8], empty: Option<Value>) -> Result<Value, ApiError> {
    // RFC 9110 §8.4: an encoding the server does not decode is 415 (`identity` is none).
    let encodings: Vec<&str> = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
        .collect();
    if !encodings.is_empty() {
        return Err(ApiError::UnsupportedEncoding(encodings.join(", ")));
    }
    // RFC 9110 §8.3: one media type per message. With two, which one a proxy or a
    // framework read is anyone's guess, so neither is trusted.
    let given = req.headers().get_all(header::CONTENT_TYPE).count();
    if given > 1 {
        return Err(ApiError::BadRequest(format!(
            "Content-Type given {given} times: a request body has one media type"
        )));
    }
    let declared = req.headers().get(header::CONTENT_TYPE);
    let essence = declared
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json";
    if declared.is_some() && !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        if let Some(default) = empty {
            return Ok(default);
        }
        return Err(ApiError::BadRequest("a JSON body is required".to_owned()));
    }
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let value = crate::strict_json::parse(body).map_err(|e| {
        // Valid JSON that no double holds: a field's value, named, not a malformed body.
        let unrepresentable = e
            .to_string()
            .starts_with("number out of range")
            .then(|| crate::strict_json::unrepresentable_number(body))
            .flatten();
        match unrepresentable {
            Some((field, literal)) => number_refused(
                &field,
                "holds the number",
                &literal,
                "beyond what a double holds (about ±1.8e308); the body's other fields were \
                 not checked",
            ),
            None => ApiError::BadRequest(format!("malformed JSON: {e}")),
        }
    })?;
    if let Some((field, literal, how)) = crate::strict_json::changed_number(body) {
        return Err(match how {
            Changed::Rounded => number_refused(
                &field,
                "holds the integer",
                &literal,
                "too large to keep exactly (at most 64 bits); send it as a string",
            ),
            Changed::Zeroed => number_refused(
                &field,
                "holds the number",
                &literal,
                "too small for a double (below about 4.9e-324): it would be stored as 0; send it as a string",
            ),
        });
    }
    Ok(value)
}

/// The 422 for a number a double cannot keep: the field, then its literal (the first 40
/// characters of it; a 400-digit number is not echoed whole).
fn number_refused(field: &str, holds: &str, literal: &str, why: &str) -> ApiError {
    let shown: String = literal.chars().take(40).collect();
    ApiError::invalid(field, format!("{holds} {shown}, {why}"))
}

/// The body of a write that takes none: what a client sends anyway is held to the rules
/// of every write body (at most 64 KiB, `application/json`, well-formed) and then ignored,
/// so a form post or a stray upload is refused, not silently acted on.
pub struct NoBody;

impl FromRequest for NoBody {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let body = body::TimedBody::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await?;
            json_body(&req, &body, Some(Value::Null))?;
            Ok(NoBody)
        })
    }
}
