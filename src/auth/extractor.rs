//! The authenticated caller, extracted from `Authorization: Bearer` (RFC 6750), the
//! `token` query parameter (`/ws` only), or the `vigil_token` cookie — in that order of
//! precedence: a credential the client put in the request on purpose wins over the one
//! the browser attaches on its own, so a signed-in console never turns a `/ws?token=…`
//! session (and the acknowledgments it records) into the cookie owner's.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, web};

use crate::domain::{PatientId, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// Name of the session cookie set by `POST /api/v1/session`.
pub const COOKIE_NAME: &str = "vigil_token";

/// Where the token came from; cookie-authenticated writes must pass the Origin check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer`.
    Bearer,
    /// `vigil_token` cookie.
    Cookie,
    /// `?token=` (only `/ws`).
    Query,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `sub`.
    pub user_id: String,
    /// `role`.
    pub role: Role,
    /// `patient_id` claim, for role `patient` only (always present there). Another
    /// role's claim grants nothing, so it is dropped here rather than echoed (the console
    /// showed a nurse "patient P2" from it).
    pub patient_id: Option<PatientId>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// Credential source.
    pub credential: Credential,
}

/// Whether a token whose `exp` is `expires_at` has expired: from the instant of its
/// `exp`, as verification counts it, so that a stream ends when a request with the same
/// token would be refused.
pub fn token_expired(expires_at: i64) -> bool {
    chrono::Utc::now().timestamp() >= expires_at
}

/// Authenticates a request. `allow_query` admits `?token=` (the `/ws` exception for
/// browsers that cannot set headers); elsewhere a `?token=` is a 401 even beside another
/// credential. When several are sent, the header wins, then `?token=`, then the cookie.
pub fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    allow_query: bool,
) -> Result<Principal, ApiError> {
    let (token, credential) = find_token(req, allow_query)?;
    let claims = state
        .verifier
        .verify(&token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let role: Role = claims
        .role
        .parse()
        .map_err(|_| ApiError::Unauthorized("token role is not one of Vigil's roles".to_owned()))?;
    if !crate::domain::is_user_id(&claims.sub) {
        return Err(ApiError::Unauthorized(
            "token `sub` must be 1-128 printable characters, none invisible and no white space at either end, not \".\" or \"..\"".to_owned(),
        ));
    }
    let patient_id = match claims.patient_id.as_deref() {
        Some(raw) => Some(PatientId::parse(raw).map_err(|_| {
            ApiError::Unauthorized("token `patient_id` claim is malformed".to_owned())
        })?),
        None => None,
    };
    if role == Role::Patient && patient_id.is_none() {
        return Err(ApiError::Unauthorized(
            "a patient token needs a `patient_id` claim".to_owned(),
        ));
    }
    let principal = Principal {
        user_id: claims.sub,
        role,
        patient_id: patient_id.filter(|_| role == Role::Patient),
        expires_at: claims.exp,
        credential,
    };
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if principal.credential == Credential::Cookie && changes_state {
        super::origin::check(req, &state.config.cors_origins)?;
    }
    Ok(principal)
}

/// The token of an `Authorization: Bearer` value, read one way wherever it is read (the
/// session copies it into its cookie): RFC 9110 §11.1 makes the scheme case-insensitive
/// and separates it by spaces.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// The token to verify and where it came from: `Authorization`, else `?token=` (when
/// `allow_query`), else the cookie. Only one source is ever read past this choice.
fn find_token(req: &HttpRequest, allow_query: bool) -> Result<(String, Credential), ApiError> {
    let query_token = query_token(req)?;
    // Refused outside /ws even beside a valid credential: a token in a URL ends up in
    // proxy and browser logs, and a client that sends one should learn so at once.
    if query_token.is_some() && !allow_query {
        return Err(ApiError::Unauthorized(
            "the `token` query parameter is only accepted on /ws; use Authorization: Bearer or the session cookie"
                .to_owned(),
        ));
    }
    let mut authorizations = req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION);
    if let Some(value) = authorizations.next() {
        // Two identities are never picked from, as for `?token=`.
        if authorizations.next().is_some() {
            return Err(ApiError::Unauthorized(
                "Authorization given twice; send one credential".to_owned(),
            ));
        }
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("Authorization header is not ASCII".to_owned()))?;
        let token = bearer_token(value).ok_or_else(|| {
            ApiError::Unauthorized("expected `Authorization: Bearer <token>`".to_owned())
        })?;
        return Ok((token.to_owned(), Credential::Bearer));
    }
    // An explicit `?token=` (allowed here, see above) beats the ambient cookie, which is
    // then not read at all: neither its identity, nor its validity, nor its Origin rule
    // applies to this request.
    if let Some(token) = query_token {
        return Ok((token, Credential::Query));
    }
    // A second `vigil_token` is refused, not ordered: a page on a sibling subdomain can
    // plant one with a longer Path, which browsers send first, and the console would
    // then act (and acknowledge) as the planted identity.
    let tokens = match req.cookies() {
        Ok(cookies) => cookies.iter().filter(|c| c.name() == COOKIE_NAME).count(),
        // Not "missing credentials": the browser sent cookies, which cannot be read.
        Err(e) => {
            return Err(ApiError::Unauthorized(format!(
                "the Cookie header cannot be read ({e}); clear this site's cookies and sign in again"
            )));
        }
    };
    if tokens > 1 {
        return Err(ApiError::Unauthorized(format!(
            "{tokens} {COOKIE_NAME} cookies were sent (one may have been set by another site \
             of this domain); clear this site's cookies and sign in again"
        )));
    }
    match req.cookie(COOKIE_NAME) {
        Some(cookie) if !cookie.value().is_empty() => {
            Ok((cookie.value().to_owned(), Credential::Cookie))
        }
        // On /ws the query is named too: it is the one credential a browser's WebSocket
        // can send by itself.
        _ => Err(ApiError::Unauthorized(if allow_query {
            "missing credentials: send ?token=<token>, Authorization: Bearer <token> or the vigil_token cookie"
        } else {
            "missing credentials: send Authorization: Bearer <token> or the vigil_token cookie"
        }
        .to_owned())),
    }
}

/// `?token=`, if given; twice is a 422 (which identity to take is not guessed). An
/// unparseable query string is left to the endpoint's own query parsing.
fn query_token(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Ok(pairs) = crate::query::QueryPairs::parse(req.query_string()) else {
        return Ok(None);
    };
    Ok(pairs.single("token")?.map(str::to_owned))
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => authenticate(req, state, false),
            None => Err(ApiError::Internal("application state missing".to_owned())),
        };
        ready(result.map_err(Into::into))
    }
}
