//! CSRF defence for cookie-authenticated requests: the `Origin` must be the server's
//! own or one listed in `VIGIL_CORS_ORIGINS` (cookies are also `SameSite=Strict`).

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::error::ApiError;

/// Passes when the request's `Origin` is this server's origin or an allowed one.
pub fn check(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::Forbidden(
            "a cookie-authenticated request that changes state, or opens a WebSocket, must \
             carry an Origin header"
                .to_owned(),
        ));
    };
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    if origin.eq_ignore_ascii_case(&own) || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "origin {origin} is not allowed for cookie-authenticated requests"
        )))
    }
}
