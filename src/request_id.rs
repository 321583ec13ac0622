//! `X-Request-Id`: taken from the request when well-formed, otherwise generated; put on
//! every response, in the access log, in the error log line of a failed request, in the
//! `alert raised` / `alert acknowledged` log lines, and on alerts created by the request.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

/// Read from the request and echoed on the response, so a client or proxy can join its
/// own logs to ours. Lowercase: `HeaderName::from_static` panics on an uppercase name.
pub const HEADER: &str = "x-request-id";

/// The current request's id, stored in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts 1–128 characters of `[A-Za-z0-9._:-]`; anything else is replaced, so a
/// client cannot inject text into logs through it.
pub fn well_formed(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The id [`middleware`] gave this request (`None` only where the middleware did not run).
pub fn of(req: &actix_web::HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// The middleware. It is the outermost one, so the id exists before the access logger
/// reads it, and a server error (5xx) is logged here once, with the id and the error's
/// source chain (the client only ever sees an opaque problem body).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    // A 5xx built by its handler without an error (the readiness probe's 503) is an
    // answer, not a failure: that handler logs its cause at the level it deserves.
    let failed = res
        .status()
        .is_server_error()
        .then(|| res.response().error())
        .flatten();
    if let Some(error) = failed {
        let api = error.as_error::<crate::error::ApiError>();
        let cause = match api {
            Some(api) => api.internal_chain().unwrap_or_else(|| api.to_string()),
            None => error.to_string(),
        };
        // An instance full of streams (or stopping) is working as configured: a warning,
        // so that clients knocking at the limit cannot flood the error log.
        let level = match api {
            Some(crate::error::ApiError::Unavailable { .. }) => log::Level::Warn,
            _ => log::Level::Error,
        };
        // The request is still at hand in the response: its method and path are only
        // needed here, on the rare failure, not copied for every request.
        let request = res.request();
        log::log!(
            level,
            "request failed request_id={id} {} {} status={}: {cause}",
            request.method(),
            crate::log_value::path_without_credentials(request.path()),
            res.status().as_u16()
        );
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}
