//! The OpenAPI 3.1 description of the HTTP API, generated at build time by utoipa from
//! the `#[utoipa::path]` attributes on the handlers, and the offline Swagger UI.
//!
//! Handlers read raw bodies and validate by hand (so a bad body is a precise 400, 415 or
//! 422 naming the field), which leaves utoipa no request type to inspect. The schema
//! types below therefore mirror the JSON on the wire; they are never constructed.
//! `tests/api/openapi.rs` keeps them honest: every route in [`crate::routes::configure`]
//! must be documented, every example must match its schema, the request examples must
//! be accepted by a real server, and real answers must match the documented schemas.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::header;
use serde::{Deserialize, Serialize};
use utoipa::openapi::header::Header;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
/// Where the Swagger UI is served (assets are vendored into the binary: no CDN).
pub const SWAGGER_PATH: &str = "/api/docs/";

/// The document: every operation, schema and security scheme of the v1 API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vigil",
        description = "Real-time clinical alert hub: alerts are stored, then fanned out over \
            Server-Sent Events and the legacy WebSocket, and acknowledged over HTTP. Errors are \
            RFC 9457 `application/problem+json`. Every response carries `X-Request-Id`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        crate::routes::alerts::create,
        crate::routes::alerts::list,
        crate::routes::alerts::get,
        crate::routes::acknowledge::acknowledge,
        crate::routes::acknowledge::acknowledge_seed_alias,
        crate::transport::sse::stream_alerts,
        crate::routes::stats::stats,
        crate::transport::ws::ws_endpoint,
        crate::routes::care_team::get,
        crate::routes::care_team::replace,
        crate::routes::care_team::clear,
        crate::routes::care_team::get_member,
        crate::routes::care_team::assign,
        crate::routes::care_team::unassign,
        crate::routes::session::create,
        crate::routes::session::get,
        crate::routes::session::delete,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
        crate::routes::console::console,
        crate::routes::console::legacy,
        crate::routes::console::migration_guide,
        openapi_json,
        swagger_redirect,
    ),
    components(schemas(
        NewAlert,
        Alert,
        Acknowledgment,
        AlertList,
        AckRequest,
        AckOutcome,
        CareTeam,
        CareTeamMember,
        CareTeamAssignment,
        ReplaceCareTeam,
        Session,
        SessionScope,
        StreamStats,
        Connections,
        Health,
        Ready,
        Problem,
        FieldError,
        Severity,
        AlertStatus,
        AckStatus,
        Role,
    )),
    modifiers(&SecuritySchemes, &RequestIdHeader, &HeadOperationIds),
    tags(
        (name = "alerts", description = "Raise, list and read alerts"),
        (name = "acknowledgments", description = "Acknowledge, escalate or resolve over HTTP"),
        (name = "streams", description = "Live alert streams: SSE (current) and WebSocket (legacy)"),
        (name = "care-team", description = "Who may see which patient (admin only)"),
        (name = "session", description = "Cookie session for the browser console"),
        (name = "operations", description = "Liveness, readiness, metrics"),
        (name = "pages", description = "Browser pages and guides"),
        (name = "docs", description = "This document and its viewer"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once (it is a constant derived from the code).
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| match ApiDoc::openapi().to_pretty_json() {
        Ok(json) => json,
        Err(e) => {
            log::error!("OpenAPI document does not serialise: {e}");
            String::from("{}")
        }
    })
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/openapi.json",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(document_json())
}

/// Swagger UI (`/api/docs/`); the bare path redirects there so relative asset URLs work.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "docs",
    responses((status = 308, description = "Redirect to the Swagger UI at `/api/docs/`",
        headers(("Location" = String, description = "`/api/docs/`"))))
)]
pub async fn swagger_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, SWAGGER_PATH))
        .finish()
}

/// The Swagger UI service, reading the document from [`DOCUMENT_PATH`].
pub fn swagger_ui() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
        // `none`: no badge fetched from validator.swagger.io, so the page stays offline.
        .config(utoipa_swagger_ui::Config::from(DOCUMENT_PATH).validator_url("none"))
}

/// Registers the three authentication schemes of DESIGN.md "Authentication".
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").description(Some(
                "A JWT (HS256, RS256 or ES256, pinned by configuration) with `sub`, `role`, `exp` \
                 and, for patients, `patient_id`.",
            )).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "vigil_token",
                "The HttpOnly, SameSite=Strict cookie set by `POST /api/v1/session`. A request \
                 authenticated by it that changes state (or opens `/ws`) must carry an allowed `Origin`.",
            ))),
        );
        components.add_security_scheme(
            "query_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "Accepted on `/ws` only (legacy dashboards that cannot set headers); refused elsewhere.",
            ))),
        );
    }
}

/// Documents `X-Request-Id` on every response of every operation (the middleware in
/// [`crate::request_id`] sets it on all of them).
struct RequestIdHeader;

impl Modify for RequestIdHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.head.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response {
                        let mut header =
                            Header::new(ObjectBuilder::new().schema_type(Type::String));
                        header.description = Some(
                            "The caller's id when it is 1-128 of `[A-Za-z0-9._:-]`, else a new UUID v7; \
                             also in the access log line of this request."
                                .to_owned(),
                        );
                        response
                            .headers
                            .insert("X-Request-Id".to_owned(), header.into());
                    }
                }
            }
        }
    }
}

/// `method(get, head)` gives both operations the handler's one id; OpenAPI requires
/// every operation id to be unique (code generators name functions after them), so the
/// HEAD twin of each read is `<id>_head`.
struct HeadOperationIds;

impl Modify for HeadOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            if let Some(head) = item.head.as_mut()
                && let Some(id) = head.operation_id.as_mut()
            {
                id.push_str("_head");
            }
        }
    }
}

/// Alert severity.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// Alert status; the latest acknowledgment's status, or `open`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Not yet acknowledged.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Escalated.
    Escalated,
    /// Final: later acknowledgments get 409.
    Resolved,
}

/// What an acknowledgment sets.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AckStatus {
    /// Someone is on it.
    Acknowledged,
    /// Escalated.
    Escalated,
    /// Final.
    Resolved,
}

/// A role from the token's `role` claim (DESIGN.md "Roles").
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including the `*` wildcard, stats and care teams.
    Admin,
    /// Care-team patients; may resolve.
    Doctor,
    /// Care-team patients; may resolve.
    Nurse,
    /// Care-team patients; may acknowledge, not resolve.
    Caregiver,
    /// Care-team patients; may raise and escalate.
    Dispatcher,
    /// Their own `patient_id` only; read-only.
    Patient,
    /// Producers: may raise alerts, nothing else.
    Service,
}

/// Body of `POST /api/v1/alerts`. Unknown fields are refused (422), so a typo cannot
/// silently drop part of a clinical alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patient_id": "123", "severity": "critical", "kind": "heart_rate_high",
    "title": "Heart rate 148 bpm", "message": "Sustained tachycardia for 5 minutes",
    "data": {"hr": 148, "unit": "bpm"}, "source": "monitor-7"}))]
pub struct NewAlert {
    /// The patient: 1-64 of `[A-Za-z0-9_.-]`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,64}$"
    )]
    pub patient_id: String,
    /// Severity.
    pub severity: Severity,
    /// Machine-readable kind, e.g. `heart_rate_high`: 1-64 of `[A-Za-z0-9_.:-]`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub kind: String,
    /// Short title, 1-200 characters, no NUL.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$")]
    pub title: String,
    /// Longer text, at most 2000 characters, no NUL; default empty.
    #[schema(max_length = 2000, pattern = "^[^\\x00]*$")]
    pub message: Option<String>,
    /// Producer-defined JSON object, at most 16 KiB serialised; default `{}`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// Who raised it, 1-128 characters, no NUL; default: the token's `sub`.
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\x00]*$")]
    pub source: Option<String>,
}

/// One entry of an alert's audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "alice", "role": "nurse", "status": "acknowledged",
    "note": "On my way", "created_at": "2026-11-23T10:01:00.000Z"}))]
pub struct Acknowledgment {
    /// Who (`sub`).
    pub user_id: String,
    /// Their role at the time.
    pub role: Role,
    /// What they set.
    pub status: AckStatus,
    /// Free text, or null.
    #[schema(required = true)]
    pub note: Option<String>,
    /// When (RFC 3339, UTC, milliseconds).
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// An alert with its acknowledgments: the JSON of every API answer and `alert` event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "019a8f3e-5b1c-7d2e-9f00-1a2b3c4d5e6f", "seq": 42, "last_seq": 43,
    "patient_id": "123", "severity": "critical", "kind": "heart_rate_high",
    "title": "Heart rate 148 bpm", "message": "Sustained tachycardia for 5 minutes",
    "data": {"hr": 148, "unit": "bpm"}, "source": "monitor-7", "status": "acknowledged",
    "created_at": "2026-11-23T10:00:00.000Z", "updated_at": "2026-11-23T10:01:00.000Z",
    "acknowledgments": [{"user_id": "alice", "role": "nurse", "status": "acknowledged",
        "note": "On my way", "created_at": "2026-11-23T10:01:00.000Z"}]}))]
pub struct Alert {
    /// UUID v7.
    pub id: String,
    /// Sequence number of the event that raised it (fixed).
    pub seq: i64,
    /// Sequence number of its latest change.
    pub last_seq: i64,
    /// Patient.
    pub patient_id: String,
    /// Severity.
    pub severity: Severity,
    /// Kind.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Message (may be empty).
    pub message: String,
    /// Producer-defined object.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who raised it.
    pub source: String,
    /// Current status.
    pub status: AlertStatus,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Audit trail, oldest first.
    pub acknowledgments: Vec<Acknowledgment>,
}

/// Answer of `GET /api/v1/alerts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    /// Newest first without `after`; oldest change first with `after`.
    pub alerts: Vec<Alert>,
    /// Head of the event log when the query ran. Poll again with `after` = this when the
    /// page held fewer than `limit` alerts; after a full page, continue from its last
    /// alert's `last_seq` (this head would skip the changes not yet read).
    pub last_seq: i64,
}

/// Body of an acknowledgment; an empty body or `null` means `{}` (status `acknowledged`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "acknowledged", "note": "On my way"}))]
pub struct AckRequest {
    /// Default `acknowledged`. Only doctor, nurse and admin may resolve; `resolved` is final.
    pub status: Option<AckStatus>,
    /// At most 2000 characters, no NUL; never logged.
    #[schema(max_length = 2000, pattern = "^[^\\x00]*$")]
    pub note: Option<String>,
}

/// Answer of an acknowledgment; also the data of the `alert_updated` event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AckOutcome {
    /// The alert after the acknowledgment.
    pub alert: Alert,
    /// The acknowledgment just recorded.
    pub acknowledgment: Acknowledgment,
}

/// One care-team member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CareTeamMember {
    /// User (`sub`).
    pub user_id: String,
    /// When assigned (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A patient's care team.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CareTeam {
    /// Patient.
    pub patient_id: String,
    /// Members, sorted by user id.
    pub members: Vec<CareTeamMember>,
}

/// Answer of assigning one member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CareTeamAssignment {
    /// Patient.
    pub patient_id: String,
    /// User (`sub`).
    pub user_id: String,
    /// When assigned (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Body of `PUT /api/v1/patients/{patient_id}/care-team`: the whole new team.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_ids": ["alice", "bob"]}))]
pub struct ReplaceCareTeam {
    /// User ids, 1-128 printable characters each.
    #[schema(
        pattern = "^(?!\\.\\.?$)(?!\\s)(?!.*\\s$)[^\\x00-\\x1F\\x7F-\\x9F\\uFFFD\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF]{1,128}$",
        min_length = 1,
        max_length = 128
    )]
    pub user_ids: Vec<String>,
}

/// Who a session (or bearer token) is for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// `sub`.
    pub user_id: String,
    /// Role.
    pub role: Role,
    /// The `patient_id` claim, or null.
    #[schema(required = true)]
    pub patient_id: Option<String>,
    /// When the token (and the cookie) expire (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Who a credential is for, and the patients it sees now (`GET /api/v1/session`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionScope {
    /// Who, as `POST /api/v1/session` says it.
    #[serde(flatten)]
    pub session: Session,
    /// The patients it may see now: `["*"]` (admin), the claim (patient), the care team
    /// (doctor, nurse, caregiver, dispatcher; sorted), none (service).
    pub patients: Vec<String>,
}

/// Live connections.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Connections {
    /// Open SSE streams.
    pub sse: u64,
    /// Open WebSocket sessions.
    pub ws: u64,
    /// Open streams by role (all seven roles are listed).
    #[schema(value_type = std::collections::HashMap<String, u64>)]
    pub by_role: serde_json::Value,
}

/// Answer of `GET /api/v1/alerts/stream/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamStats {
    /// Live connections; the gauges return to 0 when clients leave.
    pub connections: Connections,
    /// Events fanned out.
    pub events_published: u64,
    /// Event frames queued to clients.
    pub deliveries: u64,
    /// Clients cut off with a full queue (they resume with `Last-Event-ID`).
    pub queue_overflows: u64,
    /// Streams opened with a `Last-Event-ID`.
    pub resumes: u64,
    /// Events replayed from the database on resume.
    pub replayed_events: u64,
    /// The last delivered sequence number.
    pub head: i64,
}

/// Answer of `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Answer of `GET /readyz` when ready.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// `ok`.
    pub database: String,
    /// `in-process`, `connected` or `reconnecting` (a Redis outage does not make an
    /// instance unready).
    pub broker: String,
    /// Head of the event log.
    pub head: i64,
}

/// One invalid field of a 422.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// JSON field, query parameter or header.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// RFC 9457 problem details: the body of every error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Unprocessable Content", "status": 422,
    "detail": "severity: must be one of info, low, medium, high, critical", "code": "invalid",
    "errors": [{"field": "severity", "message": "must be one of info, low, medium, high, critical"}]}))]
pub struct Problem {
    /// Always `about:blank`: the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, safe to show (internal causes are never included).
    pub detail: String,
    /// Stable machine-readable code (also used in WebSocket `error` frames).
    pub code: Option<String>,
    /// For 422: each invalid field.
    pub errors: Option<Vec<FieldError>>,
}

/// The 401 every authenticated endpoint answers, declared once.
#[derive(IntoResponses)]
#[response(
    status = 401,
    content_type = "application/problem+json",
    description = "No or bad credentials (`WWW-Authenticate: Bearer`)",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"vigil\"` (RFC 6750)"))
)]
pub struct Unauthorized(pub Problem);

/// The 503 of endpoints that need the database, declared once.
#[derive(IntoResponses)]
#[response(status = 503, content_type = "application/problem+json",
    description = "The database is unreachable (nothing was changed), did not answer in time, or its connection broke during the request (the detail says so: a write may then have been stored; retry under the same Idempotency-Key)",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
pub struct DatabaseUnavailable(pub Problem);

/// The 408 of every endpoint that reads a body, declared once: the body must arrive
/// within `VIGIL_REQUEST_TIMEOUT_SECS` of the request head.
#[derive(IntoResponses)]
#[response(
    status = 408,
    content_type = "application/problem+json",
    description = "The body did not arrive within VIGIL_REQUEST_TIMEOUT_SECS of the request head; nothing was stored, and the connection is closed"
)]
pub struct BodyTimeout(pub Problem);

/// What a write that takes no body answers when one is sent anyway (`routes::NoBody`).
#[derive(IntoResponses)]
pub enum StrayBody {
    /// A body that is not well-formed JSON
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// A body that did not arrive within VIGIL_REQUEST_TIMEOUT_SECS of the request head
    #[response(status = 408, content_type = "application/problem+json")]
    TimedOut(Problem),
    /// A body over 64 KiB
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// A body declared as anything but `application/json`, or with a `Content-Encoding`
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
}

/// The refusals every care-team endpoint shares, declared once.
#[derive(IntoResponses)]
pub enum CareTeamRefusals {
    /// Admin only (and an allowed Origin for cookie writes)
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Malformed `patient_id` or `user_id`
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

/// The answers of both acknowledge endpoints (the current path and the seed-era alias)
/// besides [`Unauthorized`] and [`DatabaseUnavailable`], declared once so the two can
/// never drift apart.
#[derive(IntoResponses)]
#[expect(
    clippy::large_enum_variant,
    reason = "never built: it only describes responses"
)]
pub enum AckResponses {
    /// Recorded and fanned out as `alert_updated` (or, for a repeated Idempotency-Key, the answer it got the first time)
    #[response(status = 200,
        headers(("Idempotent-Replayed" = String, description = "`true` when this is a repeat: nothing was recorded again")))]
    Recorded(AckOutcome),
    /// Malformed JSON
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// The role may not acknowledge, or may not set this status (e.g. caregiver resolving); or a cookie request without an allowed Origin
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such alert, or not in the caller's scope
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The body did not arrive within VIGIL_REQUEST_TIMEOUT_SECS of the request head; nothing was recorded
    #[response(status = 408, content_type = "application/problem+json")]
    TimedOut(Problem),
    /// The alert is resolved (`resolved` is final); or, short of `resolved`, its trail already has 200 acknowledgments (20 from this user) or this note would take its notes past 32 KiB (8 KiB of this user's)
    #[response(status = 409, content_type = "application/problem+json")]
    Resolved(Problem),
    /// Body over 64 KiB
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Body is not `application/json`, or has a `Content-Encoding`
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// Invalid field, named in `errors`; or an Idempotency-Key this caller used for a different acknowledgment
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
    /// More writes per second than VIGIL_RATE_LIMIT for this token subject
    #[response(status = 429, content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    TooMany(Problem),
}
