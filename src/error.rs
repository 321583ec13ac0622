//! One error type for the HTTP layer and the one place it becomes a response.
//!
//! Policy: handlers and services return [`ApiError`]. Client variants carry only text
//! that is safe to show; internal variants (database, pool, manager) are logged with
//! their source chain and answered with an opaque body, so internal text never reaches
//! a client. Every error body is RFC 9457 `application/problem+json`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::writer::Failing;

/// One invalid field in a 422 answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// JSON field (or query parameter) name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// `Retry-After` (seconds) of a 503 for an unreachable database, on the API and on
/// `/readyz` alike: clients and probes back off instead of retrying into the outage.
pub const DATABASE_RETRY_AFTER: &str = "5";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or a parameter cannot be parsed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials that do not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller's role or scope does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource (or not in the caller's scope).
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the change conflicts with the current state (e.g. ack after resolve).
    #[error("{0}")]
    Conflict(String),
    /// 410: the WebSocket transport is retired (phase 3); the answer links the migration
    /// guide and the SSE stream that succeeds it (its only use).
    #[error("{0}")]
    Gone(String),
    /// 426: a WebSocket handshake offering a version other than 13; the answer names
    /// the one spoken (RFC 6455 §4.4) so the client can retry with it.
    #[error("{0}")]
    UpgradeRequired(String),
    /// 408: the body did not arrive within the request timeout of its head; the
    /// connection is closed, since the rest of the body may still be on its way.
    #[error("the request body did not arrive within {} s; nothing was stored", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    /// 413: body over the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: the body is not `application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 415: the body is compressed (or claims to be): bodies are read as sent, and a
    /// compressed one would be "malformed JSON", a mislabelled one stored as if plain.
    #[error("Content-Encoding {0} is not accepted: send the JSON body uncompressed")]
    UnsupportedEncoding(String),
    /// 422: well-formed but invalid; names the fields.
    #[error("{detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// Each offending field.
        errors: Vec<FieldError>,
    },
    /// 429: too many streams or requests.
    #[error("{detail}")]
    TooManyRequests {
        /// Which limit.
        detail: String,
        /// Seconds to wait, when known.
        retry_after: Option<u64>,
    },
    /// 503: the instance is at capacity.
    #[error("{detail}")]
    Unavailable {
        /// Why.
        detail: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: the database cannot be reached (pool timeout, connection refused).
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 503: the database took the request but did not answer in time (a frozen host, a
    /// network dropping packets). Unlike [`ApiError::DatabaseUnavailable`], a write may
    /// still be carried out when it answers.
    #[error("the database did not answer within {} s", .0.as_secs_f64())]
    DatabaseTimeout(std::time::Duration),
    /// 500: a database error that is not the client's fault.
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 503: the connection manager did not answer.
    #[error("connection manager unavailable")]
    ManagerUnavailable,
    /// 503 from `/readyz`: the instance cannot store an alert. The body names the
    /// database's state and the broker's, for the operator reading the probe.
    #[error("{}", .database.detail())]
    NotReady {
        /// Why the database does not take writes.
        database: Failing,
        /// The broker link: `in-process`, `connected` or `reconnecting`.
        broker: &'static str,
    },
    /// 500: anything else internal.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.to_owned(),
                message,
            }],
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "Bad Request",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) => "Not Found",
            ApiError::MethodNotAllowed => "Method Not Allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::Gone(_) => "Gone",
            ApiError::UpgradeRequired(_) => "Upgrade Required",
            ApiError::BodyTimeout(_) => "Request Timeout",
            ApiError::PayloadTooLarge { .. } => "Payload Too Large",
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => {
                "Unsupported Media Type"
            }
            ApiError::Validation { .. } => "Unprocessable Content",
            ApiError::TooManyRequests { .. } => "Too Many Requests",
            ApiError::Unavailable { .. }
            | ApiError::DatabaseUnavailable(_)
            | ApiError::DatabaseTimeout(_)
            | ApiError::ManagerUnavailable
            | ApiError::NotReady { .. } => "Service Unavailable",
            ApiError::Database(_) | ApiError::Internal(_) => "Internal Server Error",
        }
    }

    /// A stable machine-readable code, also used in WebSocket `error` frames.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Gone(_) => "gone",
            ApiError::UpgradeRequired(_) => "upgrade_required",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => {
                "unsupported_media_type"
            }
            ApiError::Validation { .. } => "invalid",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable { .. }
            | ApiError::DatabaseUnavailable(_)
            | ApiError::DatabaseTimeout(_)
            | ApiError::ManagerUnavailable
            | ApiError::NotReady { .. } => "unavailable",
            ApiError::Database(_) | ApiError::Internal(_) => "internal",
        }
    }

    /// Text safe to show a client: internal causes are replaced by a generic sentence.
    pub fn client_detail(&self) -> String {
        match self {
            ApiError::DatabaseUnavailable(cause) if crate::db::connection_broke(cause.as_ref()) => {
                "the connection to the database broke during the request; a write may or may not have been stored: retry with the same Idempotency-Key (a raise or an acknowledgment under the same key is stored once), or read before acting again"
                    .to_owned()
            }
            ApiError::DatabaseUnavailable(cause) => {
                // Classified as the writer counts failures, so the two never disagree.
                let text = cause.to_string();
                match Failing::of_error(&text) {
                    Failing::Locked => {
                        "the database is locked by another process; nothing was changed, retry later"
                            .to_owned()
                    }
                    Failing::Full => {
                        "the database's disk is full; nothing was changed, retry later".to_owned()
                    }
                    Failing::Replaced => format!(
                        "{}; nothing was changed: the server must be restarted",
                        crate::db::files::REPLACED
                    ),
                    Failing::ReadOnly => {
                        "the database's files cannot be written (read-only); nothing was changed, retry later"
                            .to_owned()
                    }
                    Failing::Other if text.contains("disk I/O error") => {
                        "the database's files could not be written (I/O error); nothing was changed, retry later"
                            .to_owned()
                    }
                    Failing::Other | Failing::Unreachable => {
                        "the database is unreachable; nothing was changed, retry later".to_owned()
                    }
                }
            }
            ApiError::DatabaseTimeout(waited) => format!(
                "the database did not answer within {} s; a write may still be carried out when it does: retry later (a raise with the same Idempotency-Key is stored once)",
                waited.as_secs_f64()
            ),
            ApiError::ManagerUnavailable => "the connection manager is not available".to_owned(),
            ApiError::Database(_) | ApiError::Internal(_) => {
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// For a server error (5xx), the error with its whole source chain, for the error
    /// log; `None` for client errors. Never sent to a client (see [`Self::client_detail`]).
    /// The request-id middleware ([`crate::request_id::middleware`]) logs it with the
    /// request's id, so every error line can be joined to its access-log line.
    pub fn internal_chain(&self) -> Option<String> {
        if !self.status_code().is_server_error() {
            return None;
        }
        let mut chain = self.to_string();
        if let ApiError::Internal(detail) = self {
            chain.push_str(": ");
            chain.push_str(detail);
        }
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        Some(chain)
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    /// Readiness's extension members ([`ApiError::NotReady`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<&'static str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. }
            | ApiError::DatabaseUnavailable(_)
            | ApiError::DatabaseTimeout(_)
            | ApiError::ManagerUnavailable
            | ApiError::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (database, broker) = match self {
            ApiError::NotReady { database, broker } => (Some(database.as_str()), Some(*broker)),
            _ => (None, None),
        };
        let problem = Problem {
            kind: "about:blank",
            title: self.title(),
            status: status.as_u16(),
            detail: self.client_detail(),
            code: self.code(),
            errors: match self {
                ApiError::Validation { errors, .. } => Some(errors),
                _ => None,
            },
            database,
            broker,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        match self {
            ApiError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"vigil\""));
            }
            ApiError::TooManyRequests {
                retry_after: Some(secs),
                ..
            }
            | ApiError::Unavailable {
                retry_after: secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            ApiError::DatabaseUnavailable(_)
            | ApiError::DatabaseTimeout(_)
            | ApiError::NotReady { .. } => {
                response.insert_header((header::RETRY_AFTER, DATABASE_RETRY_AFTER));
            }
            ApiError::Gone(_) => {
                response.insert_header((
                    header::LINK,
                    "</docs/migration>; rel=\"help\", </api/v1/alerts/stream>; rel=\"successor-version\"",
                ));
            }
            // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to (actix adds the
            // `Connection: upgrade` that goes with it).
            // The rest of the body may still arrive: it must not be read as a next request.
            ApiError::BodyTimeout(_) => {
                response.force_close();
            }
            ApiError::UpgradeRequired(_) => {
                response.insert_header((header::SEC_WEBSOCKET_VERSION, "13"));
                response.insert_header((header::UPGRADE, "websocket"));
            }
            _ => {}
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

/// Turns actix's own extractor and routing errors into problem+json.
pub mod handlers {
    use actix_web::dev::ServiceResponse;
    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
    use actix_web::http::StatusCode;
    use actix_web::middleware::ErrorHandlerResponse;
    use actix_web::{HttpRequest, ResponseError};

    use super::ApiError;

    /// Maps JSON body errors: 413 size, 415 content type, 400 syntax, 422 shape.
    pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
        let api = match &err {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit: *limit },
            JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
            JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::Validation {
                detail: e.to_string(),
                errors: Vec::new(),
            },
            JsonPayloadError::Deserialize(e) => {
                ApiError::BadRequest(format!("malformed JSON: {e}"))
            }
            other => ApiError::BadRequest(other.to_string()),
        };
        api.into()
    }

    /// Maps query-string errors to 400.
    pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
        ApiError::BadRequest(format!("bad query string: {err}")).into()
    }

    /// Maps path-segment errors to 404 (a path that does not parse names nothing).
    pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
        ApiError::NotFound(format!("no such resource: {err}")).into()
    }

    /// Whether a response already carries a problem body (the application's own).
    fn is_problem<B>(res: &ServiceResponse<B>) -> bool {
        res.headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"))
    }

    /// Rewrites actix-cors's plain-text refusal of a preflight (an origin not listed in
    /// `VIGIL_CORS_ORIGINS`, or a method or header not allowed) as a 400 problem. It
    /// carries no CORS headers, so a browser still blocks the cross-origin request.
    /// Problems from the application pass through unchanged.
    pub fn cors_refusal_to_problem<B>(
        res: ServiceResponse<B>,
    ) -> actix_web::Result<ErrorHandlerResponse<B>> {
        let is_problem = is_problem(&res);
        if is_problem || !res.status().is_client_error() {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let (req, _) = res.into_parts();
        let response = ApiError::BadRequest(
            "CORS request refused: the origin is not listed in VIGIL_CORS_ORIGINS, or the method or headers are not allowed"
                .to_owned(),
        )
        .error_response();
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, response).map_into_right_body(),
        ))
    }

    /// Rewrites actix's plain-text 4xx/5xx (unknown route, 405, …) as problem+json.
    pub fn plain_to_problem<B>(
        res: ServiceResponse<B>,
    ) -> actix_web::Result<ErrorHandlerResponse<B>> {
        let is_problem = is_problem(&res);
        if is_problem {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        // Only the body changes: `Allow` (RFC 9110 §15.5.6: a 405 names the allowed
        // methods) and the `/api/v1` scope's `Cache-Control: no-store` stay.
        let kept: Vec<_> = res
            .headers()
            .iter()
            .filter(|(name, _)| {
                **name != actix_web::http::header::CONTENT_TYPE
                    && **name != actix_web::http::header::CONTENT_LENGTH
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let api = match status {
            StatusCode::NOT_FOUND => ApiError::NotFound("no such resource".to_owned()),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                limit: crate::routes::MAX_BODY_BYTES,
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            s if s.is_client_error() => {
                ApiError::BadRequest(s.canonical_reason().unwrap_or("bad request").to_owned())
            }
            _ => ApiError::Internal(format!("unhandled {status}")),
        };
        let (req, _) = res.into_parts();
        let mut response = api.error_response();
        for (name, value) in kept {
            if !response.headers().contains_key(&name) {
                response.headers_mut().append(name, value);
            }
        }
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, response).map_into_right_body(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;
    use std::time::Duration;

    /// Readiness waits 0.8 s: its log said "did not answer within 0 s".
    #[test]
    fn a_timeout_under_a_second_is_said_in_tenths() {
        let short = ApiError::DatabaseTimeout(Duration::from_millis(800));
        assert_eq!(
            short.to_string(),
            "the database did not answer within 0.8 s"
        );
        let whole = ApiError::DatabaseTimeout(Duration::from_secs(10));
        assert!(
            whole
                .client_detail()
                .starts_with("the database did not answer within 10 s;")
        );
    }
}
