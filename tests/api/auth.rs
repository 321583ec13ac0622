//! Authentication: every way a bearer token can be bad (401 problem), an RS256 server
//! with a pinned algorithm, and the session cookie with its Origin rule.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use vigil::auth::{Claims, Signer};
use vigil::config::JwtKey;

use crate::helpers::*;

const RS256_PRIVATE: &[u8] = include_bytes!("keys/rs256_private.pem");
const RS256_PUBLIC: &[u8] = include_bytes!("keys/rs256_public.pem");

/// Unpadded base64url (RFC 4648 §5), enough to hand-craft a JWT.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| usize::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) & 63]));
        }
    }
    out
}

fn hour_from_now() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

/// Claims signed HS256 with the test server's own secret.
fn hs256(claims: Value) -> String {
    signed(Algorithm::HS256, &claims, SECRET.as_bytes())
}

fn signed(algorithm: Algorithm, claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

async fn expect_401(request: reqwest::RequestBuilder, what: &str) -> Value {
    let resp = request.send().await.expect("request");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok());
    let challenge = challenge.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate header"));
    assert!(
        challenge.starts_with("Bearer"),
        "{what}: WWW-Authenticate {challenge:?} (RFC 6750)"
    );
    let problem = expect_problem(resp, 401, what).await;
    assert_eq!(problem["title"], "Unauthorized", "{what}");
    problem
}

#[actix_web::test]
async fn every_kind_of_bad_credential_is_a_401_problem_naming_its_cause_on_every_door() {
    let app = spawn_app().await;
    let exp = hour_from_now();
    let admin_claims = json!({"sub": "root", "role": "admin", "exp": exp});
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{header}.{}.", b64url(admin_claims.to_string().as_bytes()));
    let other_secret = b"some-other-secret-0123456789abcdef";
    let past = chrono::Utc::now().timestamp() - 60;
    // (what, credential, how the 401's detail begins): the cause is named, so a client
    // (or an operator reading its report) knows whether to refresh, re-mint or fix a claim.
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing token", String::new(), "missing credentials"),
        ("garbage token", "not-a-jwt".to_owned(), "token malformed"),
        (
            "three garbage segments",
            "aaa.bbb.ccc".to_owned(),
            "token malformed",
        ),
        (
            "wrongly signed",
            signed(Algorithm::HS256, &admin_claims, other_secret),
            "token signature invalid",
        ),
        (
            "expired",
            token_expiring("alice", "nurse", None, past),
            "token expired",
        ),
        ("alg none", alg_none, "token malformed"),
        (
            "HS512 against an HS256 server",
            signed(Algorithm::HS512, &admin_claims, SECRET.as_bytes()),
            "token algorithm not accepted",
        ),
        (
            "missing exp",
            hs256(json!({"sub": "alice", "role": "nurse"})),
            "token claims malformed",
        ),
        (
            "exp as text",
            hs256(json!({"sub": "alice", "role": "nurse", "exp": "tomorrow"})),
            "token claims malformed",
        ),
        (
            "not valid before an hour from now (nbf)",
            hs256(json!({"sub": "alice", "role": "nurse", "exp": exp + 3600, "nbf": exp})),
            "token not valid yet",
        ),
        (
            "expiring after the year 9999",
            hs256(json!({"sub": "alice", "role": "nurse", "exp": 8_640_000_001_795_377_737_i64})),
            "token expiry beyond the year 9999",
        ),
        (
            "missing sub",
            hs256(json!({"role": "nurse", "exp": exp})),
            "token claims malformed",
        ),
        (
            "empty sub",
            hs256(json!({"sub": "", "role": "nurse", "exp": exp})),
            "token `sub` must be",
        ),
        // A user id that could never be put on a care team: a newline split the audit
        // log line, ESC reached terminals through the acknowledgment trail.
        (
            "sub with a newline and ESC",
            hs256(json!({"sub": "adm\u{1b}[2J\nFORGED", "role": "admin", "exp": exp})),
            "token `sub` must be",
        ),
        (
            "sub with NUL",
            hs256(json!({"sub": "a\u{0}b", "role": "dispatcher", "exp": exp})),
            "token `sub` must be",
        ),
        (
            "sub of 129 characters",
            hs256(json!({"sub": "é".repeat(129), "role": "nurse", "exp": exp})),
            "token `sub` must be",
        ),
        (
            "missing role",
            hs256(json!({"sub": "alice", "exp": exp})),
            "token claims malformed",
        ),
        (
            "unknown role",
            token("alice", "superuser", None),
            "token role is not one of",
        ),
        (
            "role in the wrong case",
            token("alice", "Admin", None),
            "token role is not one of",
        ),
        (
            "patient token without patient_id",
            token("pat", "patient", None),
            "a patient token needs a `patient_id`",
        ),
        (
            "patient token with a malformed patient_id",
            token("pat", "patient", Some("a b")),
            "token `patient_id` claim is malformed",
        ),
    ];
    for (what, credential, cause) in cases {
        // The same refusal on every door: the API, the SSE stream, and the legacy
        // WebSocket handshake (whose browsers send the token in the query).
        let mut request = app.client.get(app.url("/api/v1/alerts"));
        let mut stream = app.client.get(app.url("/api/v1/alerts/stream"));
        if !credential.is_empty() {
            request = request.bearer_auth(&credential);
            stream = stream.bearer_auth(&credential);
        }
        let api = expect_401(request, what).await;
        let sse = expect_401(stream, &format!("{what} (SSE)")).await;
        let handshake = app.ws_handshake(&format!("token={credential}"), &[]).await;
        let ws = expect_problem(handshake, 401, &format!("{what} (WebSocket)")).await;
        for (door, problem) in [("API", &api), ("SSE", &sse), ("WebSocket", &ws)] {
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(
                detail.starts_with(cause),
                "{what} on the {door}: detail {detail:?} should begin {cause:?}"
            );
            if !credential.is_empty() {
                assert!(
                    !problem.to_string().contains(&credential),
                    "{what} on the {door}: the token is echoed"
                );
            }
        }
    }
    let alerts = app.url("/api/v1/alerts");
    let started = hs256(json!({"sub": "root", "role": "admin", "exp": exp, "nbf": past}));
    let resp = app
        .client
        .get(&alerts)
        .bearer_auth(started)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "a token whose nbf has passed is valid");
    let basic = app.client.get(&alerts).basic_auth("root", Some("pw"));
    expect_401(basic, "Basic credentials").await;
    expect_401(
        app.client.get(&alerts).header("Authorization", "Bearer "),
        "empty bearer",
    )
    .await;
    let post = app.client.post(&alerts).json(&alert_body("1", "high"));
    expect_401(post, "POST without a token").await;
}

#[actix_web::test]
async fn an_rs256_server_accepts_rs256_tokens_and_refuses_algorithm_confusion() {
    let app = spawn_app_with(|c| {
        c.jwt.key = JwtKey::PublicPem(RS256_PUBLIC.to_vec());
        c.jwt.algorithm = Algorithm::RS256;
    })
    .await;
    let claims = Claims {
        sub: "root".into(),
        role: "admin".into(),
        patient_id: None,
        exp: hour_from_now(),
        iat: None,
        iss: None,
        aud: None,
    };
    let rs256 = Signer::from_private_pem(Algorithm::RS256, RS256_PRIVATE)
        .expect("RS256 signer")
        .sign(&claims)
        .expect("sign");
    let list = app.get_ok("/api/v1/alerts", &rs256).await;
    assert_eq!(
        list["alerts"],
        json!([]),
        "an RS256 token signed with the private key is accepted"
    );

    let admin_claims = json!({"sub": "root", "role": "admin", "exp": hour_from_now()});
    let confused = signed(Algorithm::HS256, &admin_claims, RS256_PUBLIC);
    expect_401(
        app.client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(&confused),
        "HS256 signed with the public key",
    )
    .await;
    let shared = admin();
    expect_401(
        app.client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(&shared),
        "HS256 with the test secret",
    )
    .await;
}

/// Takes `vigil_token=VALUE` out of a Set-Cookie header, with its attributes.
fn session_cookie(resp: &reqwest::Response) -> (String, String) {
    let header = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("vigil_token="))
        .expect("Set-Cookie vigil_token")
        .to_owned();
    let value = header
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("vigil_token="))
        .expect("value")
        .to_owned();
    (value, header)
}

#[actix_web::test]
async fn a_session_sets_an_httponly_strict_cookie_that_authenticates_reads() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let nurse = token("alice", "nurse", None);
    let resp = app
        .client
        .post(app.url("/api/v1/session"))
        .bearer_auth(&nurse)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let (value, header) = session_cookie(&resp);
    assert_eq!(value, nurse, "the cookie carries the token");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            header.split("; ").any(|a| a == attribute),
            "Set-Cookie {header:?} lacks {attribute}"
        );
    }
    let max_age: i64 = header
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .and_then(|n| n.parse().ok())
        .expect("Max-Age");
    assert!(
        (3500..=3600).contains(&max_age),
        "the cookie lives as long as the token: {max_age}"
    );
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["role"], "nurse");
    assert_eq!(body["patient_id"], Value::Null);
    chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("expires_at"))
        .expect("RFC 3339");

    let cookie = format!("vigil_token={value}");
    let list = app
        .client
        .get(app.url("/api/v1/alerts?patient_id=123"))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(list.status(), 200, "the cookie alone authenticates a read");

    // The scheme is case-insensitive (RFC 9110 §11.1) for the cookie as for the
    // authentication: `BEARER` had signed in (200) without setting it.
    for scheme in ["BEARER", "bearer", "Bearer "] {
        let resp = app
            .client
            .post(app.url("/api/v1/session"))
            .header("Authorization", format!("{scheme} {nurse}"))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200, "{scheme:?}");
        assert_eq!(session_cookie(&resp).0, nurse, "{scheme:?}: the cookie");
    }

    let patient = token("pat", "patient", Some("123"));
    let resp = app
        .client
        .post(app.url("/api/v1/session"))
        .bearer_auth(&patient)
        .send()
        .await
        .expect("POST");
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["patient_id"], "123");

    // Only a patient's `patient_id` means anything: a nurse's grants nothing, so the
    // answer (which the console shows beside the role) does not echo it.
    let nurse_with_claim = token("alice", "nurse", Some("P2"));
    let resp = app
        .client
        .post(app.url("/api/v1/session"))
        .bearer_auth(&nurse_with_claim)
        .send()
        .await
        .expect("POST");
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(
        (&body["role"], &body["patient_id"]),
        (&"nurse".into(), &Value::Null)
    );
}

#[actix_web::test]
async fn a_cookie_authenticated_write_needs_the_servers_own_or_a_configured_origin() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://console.example".to_owned()]).await;
    let cookie = format!("vigil_token={}", admin());
    let own = app.address.clone();
    let cases: [(Option<&str>, u16); 5] = [
        (None, 403),
        (Some(own.as_str()), 201),
        (Some("https://evil.example"), 403),
        (Some("https://console.example"), 201),
        (Some("null"), 403),
    ];
    for (origin, want) in cases {
        let mut request = app
            .client
            .post(app.url("/api/v1/alerts"))
            .header("Cookie", &cookie)
            .json(&alert_body("1", "high"));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let resp = request.send().await.expect("POST");
        if want == 403 {
            expect_problem(resp, 403, &format!("cookie POST with Origin {origin:?}")).await;
        } else {
            assert_eq!(resp.status(), want, "cookie POST with Origin {origin:?}");
        }
    }
    let list = app.get_ok("/api/v1/alerts", &admin()).await;
    assert_eq!(
        list["alerts"].as_array().map(Vec::len),
        Some(2),
        "only the allowed origins stored an alert"
    );

    let bearer = app
        .client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(admin())
        .header("Origin", "https://evil.example")
        .json(&alert_body("1", "high"))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        bearer.status(),
        201,
        "bearer-authenticated requests are not Origin-checked"
    );
}

#[actix_web::test]
async fn a_token_in_the_query_string_is_refused_outside_the_websocket() {
    // Threat: tokens in URLs leak into logs, history and Referer headers.
    let app = spawn_app().await;
    for path in ["/api/v1/alerts", "/api/v1/alerts/stream"] {
        let credential = admin();
        let request = app
            .client
            .get(app.url(&format!("{path}?token={credential}")));
        let problem = expect_401(request, &format!("{path}?token=")).await;
        assert!(
            !problem.to_string().contains(&credential),
            "the token is not echoed"
        );
        // Beside a valid bearer token too: it was silently ignored then, and the client
        // never learned that its URLs carry a token.
        let both = app
            .client
            .get(app.url(&format!("{path}?token={credential}")))
            .bearer_auth(&credential);
        let problem = expect_401(both, &format!("{path}?token= with a bearer")).await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("only accepted on /ws")),
            "{problem}"
        );
    }
    // On /ws, two tokens are not one identity picked from two.
    let twice = app
        .client
        .get(app.url(&format!(
            "/ws?token={}&token={}",
            admin(),
            token("bob", "nurse", None)
        )))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("GET /ws");
    let problem = expect_problem(twice, 422, "/ws with two tokens").await;
    assert_eq!(problem["errors"][0]["field"], "token", "{problem}");
}

#[actix_web::test]
async fn deleting_the_session_clears_the_cookie() {
    let app = spawn_app().await;
    let resp = app
        .client
        .delete(app.url("/api/v1/session"))
        .bearer_auth(admin())
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 204);
    let (value, header) = session_cookie(&resp);
    assert_eq!(value, "", "the cookie is emptied");
    assert!(
        header.split("; ").any(|a| a == "Max-Age=0"),
        "Set-Cookie {header:?} expires the cookie"
    );
    assert!(
        header.split("; ").any(|a| a == "Path=/"),
        "same path as the cookie it clears: {header:?}"
    );

    let cookie = format!("vigil_token={}", admin());
    let foreign = app
        .client
        .delete(app.url("/api/v1/session"))
        .header("Cookie", &cookie)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("DELETE");
    expect_problem(foreign, 403, "cookie DELETE from a foreign origin").await;
    let own = app
        .client
        .delete(app.url("/api/v1/session"))
        .header("Cookie", &cookie)
        .header("Origin", &app.address)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(own.status(), 204, "logout from the console's own origin");

    expect_401(
        app.client.delete(app.url("/api/v1/session")),
        "DELETE session without a token",
    )
    .await;
}

/// Threat: a browser signed in to the console (the `vigil_token` cookie) opens
/// `/ws?token=<someone else's token>` from the same origin, as the `/legacy` page does.
/// The cookie used to win: the session, and every acknowledgment it recorded, took the
/// cookie owner's identity. A credential the client sent on purpose wins over the one the
/// browser adds on its own — header, then `?token=`, then the cookie — and the cookie is
/// then not read at all: neither its identity, nor its validity, nor its Origin rule.
#[actix_web::test]
async fn on_the_websocket_an_explicit_token_wins_over_the_session_cookie() {
    let app = spawn_app().await;
    app.assign("ward", "alice").await;
    app.assign("ward", "bob").await;
    let alice = token("alice", "nurse", None);
    let alice_cookie = format!("vigil_token={alice}");
    let bob_url = format!(
        "ws://127.0.0.1:{}/ws?token={}",
        app.port,
        token("bob", "caregiver", None)
    );
    let origin = app.address.as_str();
    let garbage = "vigil_token=not.a.token";
    let cases: [(&str, &[(&'static str, &str)]); 4] = [
        (
            "alice's cookie, same Origin",
            &[("cookie", &alice_cookie), ("origin", origin)],
        ),
        ("alice's cookie, no Origin", &[("cookie", &alice_cookie)]),
        (
            "a cookie that does not verify",
            &[("cookie", garbage), ("origin", origin)],
        ),
        (
            "a cookie that does not verify, no Origin",
            &[("cookie", garbage)],
        ),
    ];
    for (what, headers) in cases {
        let mut ws = WsClient::connect_with(&bob_url, headers).await;
        let connected = ws.next_json(WAIT).await.expect("connected frame");
        assert_eq!(
            (
                &connected["type"],
                &connected["user_id"],
                &connected["role"]
            ),
            (&json!("connected"), &json!("bob"), &json!("caregiver")),
            "?token= with {what}: {connected}"
        );
    }

    // What bob does in that session is bob's: a caregiver may not resolve, and his
    // escalation is recorded as his.
    let mut ws =
        WsClient::connect_with(&bob_url, &[("cookie", &alice_cookie), ("origin", origin)]).await;
    ws.until_type("connected").await;
    let alert = app.raise("ward", "critical").await;
    ws.until_type("alert").await;
    ws.send_json(&json!({"type": "ack", "alert_id": alert["id"], "status": "resolved"}))
        .await;
    let refused = ws.until_type("ack_result").await;
    assert_eq!(
        (&refused["ok"], &refused["status"]),
        (&json!(false), &json!(403)),
        "{refused}"
    );
    ws.send_json(&json!({"type": "ack", "alert_id": alert["id"], "status": "escalated"}))
        .await;
    let done = ws.until_type("ack_result").await;
    assert_eq!(done["ok"], true, "{done}");
    let id = alert["id"].as_str().expect("id");
    let stored = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    let acks = stored["acknowledgments"]
        .as_array()
        .expect("acknowledgments");
    assert_eq!(acks.len(), 1, "{stored}");
    assert_eq!(
        (&acks[0]["user_id"], &acks[0]["role"], &acks[0]["status"]),
        (&json!("bob"), &json!("caregiver"), &json!("escalated")),
        "{stored}"
    );

    // The header still wins over the query (and the cookie).
    let mut ws = WsClient::connect_with(
        &bob_url,
        &[
            ("authorization", &format!("Bearer {alice}")),
            ("cookie", garbage),
        ],
    )
    .await;
    let connected = ws.until_type("connected").await;
    assert_eq!(connected["user_id"], "alice", "{connected}");

    // The cookie alone is still the credential, with its Origin rule.
    let resp = app.ws_handshake("", &[("cookie", &alice_cookie)]).await;
    expect_problem(resp, 403, "cookie /ws without Origin").await;
    let mut ws = WsClient::connect_with(
        &format!("ws://127.0.0.1:{}/ws", app.port),
        &[("cookie", &alice_cookie), ("origin", origin)],
    )
    .await;
    let connected = ws.until_type("connected").await;
    assert_eq!(connected["user_id"], "alice", "{connected}");
}

/// Two credentials of one kind were ordered, not refused: the first `Authorization`
/// header won, and of two `vigil_token` cookies the first — the one a page on a sibling
/// subdomain can plant with a longer Path, which browsers send first — so the console
/// would act, and acknowledge, as the planted identity. Both are now a 401, as two
/// `?token=` are refused.
#[actix_web::test]
async fn two_credentials_of_one_kind_are_refused_never_picked_from() {
    let app = spawn_app().await;
    let (root, nurse) = (admin(), token("alice", "nurse", None));
    let client = reqwest::Client::new();
    let stats = app.url("/api/v1/alerts/stream/stats");
    let twice = client
        .get(&stats)
        .header("authorization", format!("Bearer {root}"))
        .header("authorization", format!("Bearer {nurse}"));
    let problem = expect_401(twice, "two Authorization headers").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("twice")),
        "{problem}"
    );
    let two_cookies = client
        .get(&stats)
        .header("cookie", format!("vigil_token={root}; vigil_token={nurse}"));
    let problem = expect_401(two_cookies, "two vigil_token cookies").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2 vigil_token cookies")),
        "{problem}"
    );
    // The WebSocket handshake by cookie too.
    let handshake = app
        .ws_handshake(
            "",
            &[
                (
                    "cookie",
                    &format!("vigil_token={nurse}; vigil_token={root}"),
                ),
                ("origin", &app.address),
            ],
        )
        .await;
    assert_eq!(handshake.status(), 401);
    // One of each kind is still read as documented: the header wins over the cookie.
    let one_each = client
        .get(&stats)
        .bearer_auth(&root)
        .header("cookie", format!("vigil_token={nurse}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(one_each.status(), 200);
}

/// A bare `/ws` handshake was told to send a bearer header or the cookie, neither of
/// which a browser's `WebSocket` can send by itself: the 401 names `?token=` there, and
/// only there (elsewhere a query token is refused).
#[actix_web::test]
async fn missing_credentials_name_the_query_token_on_ws_only() {
    let app = spawn_app().await;
    let handshake = app.ws_handshake("", &[]).await;
    let problem = expect_problem(handshake, 401, "bare /ws handshake").await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("?token=<token>"), "{problem}");
    let stats = app.client.get(app.url("/api/v1/alerts/stream/stats"));
    let problem = expect_401(stats, "no credentials").await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("missing credentials"), "{problem}");
    assert!(!detail.contains("token="), "{problem}");
}

/// A `Cookie` header that is not UTF-8 (another site of the domain, a broken extension)
/// read as "missing credentials", though the browser had sent cookies: the 401 now says
/// the header cannot be read and what to do.
#[actix_web::test]
async fn a_cookie_header_that_cannot_be_read_is_named_as_such() {
    let app = spawn_app().await;
    let unreadable = reqwest::header::HeaderValue::from_bytes(b"vigil_token=\xff\xfe")
        .expect("obs-text is a valid header value");
    let request = app
        .client
        .get(app.url("/api/v1/alerts"))
        .header("cookie", unreadable);
    let problem = expect_401(request, "a cookie header that is not UTF-8").await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("the Cookie header cannot be read")
            && detail.contains("clear this site's cookies"),
        "{problem}"
    );
}

/// `GET /api/v1/session`: who the credential is for and the patients it sees now, as a
/// stream's `connected` names them. A console tab that only polls hears no
/// `scope_changed`; it reads this to say a care-team change instead of letting rows vanish.
#[actix_web::test]
async fn the_session_says_who_the_credential_is_for_and_the_patients_it_sees_now() {
    let app = spawn_app().await;
    app.assign("p-20", "alice").await;
    app.assign("p-10", "alice").await;
    let nurse = token("alice", "nurse", None);
    let session = app.get_ok("/api/v1/session", &nurse).await;
    assert_eq!(session["user_id"], "alice");
    assert_eq!(session["role"], "nurse");
    assert_eq!(session["patient_id"], Value::Null);
    assert_eq!(
        session["patients"],
        json!(["p-10", "p-20"]),
        "sorted: {session}"
    );

    // The same list a stream opened now is told.
    let mut sse = app.sse(&nurse, "").await;
    assert_eq!(sse.connected().await["patients"], session["patients"]);
    sse.close();

    app.unassign("p-20", "alice").await;
    app.assign("p-30", "alice").await;
    let session = app.get_ok("/api/v1/session", &nurse).await;
    assert_eq!(
        session["patients"],
        json!(["p-10", "p-30"]),
        "as it is now: {session}"
    );

    // By the cookie too (a read: no Origin needed).
    let resp = app
        .client
        .get(app.url("/api/v1/session"))
        .header("Cookie", format!("vigil_token={nurse}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let by_cookie: Value = resp.json().await.expect("JSON");
    assert_eq!(by_cookie["patients"], json!(["p-10", "p-30"]));

    for (who, patients) in [
        (admin(), json!(["*"])),
        (token("pat", "patient", Some("p-99")), json!(["p-99"])),
        (service(), json!([])),
        (token("nobody", "doctor", None), json!([])),
    ] {
        let session = app.get_ok("/api/v1/session", &who).await;
        assert_eq!(session["patients"], patients, "{session}");
    }

    let resp = app
        .client
        .head(app.url("/api/v1/session"))
        .bearer_auth(&nurse)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("body").len(), 0);

    let resp = app
        .client
        .get(app.url("/api/v1/session"))
        .send()
        .await
        .expect("GET");
    expect_problem(resp, 401, "no credentials").await;
    let resp = app.get("/api/v1/session", "not-a-token").await;
    expect_problem(resp, 401, "a bad token").await;
}
