//! CORS with an allow-list (`VIGIL_CORS_ORIGINS`), and the Origin check that guards
//! cookie-authenticated state changes. `auth.rs` covers the cookie itself and the Origin
//! check on `POST /api/v1/alerts` and `DELETE /api/v1/session`; this file covers the
//! preflights, the CORS headers on real answers, and the Origin check on the other
//! cookie-authenticated writes and the WebSocket handshake.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::json;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

const CONSOLE: &str = "https://console.example";
const DEV: &str = "http://localhost:5173";

async fn cors_app() -> TestApp {
    spawn_app_with(|c| c.cors_origins = vec![CONSOLE.to_owned(), DEV.to_owned()]).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The comma-separated tokens of a header, lowercased.
fn tokens(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

async fn preflight(
    app: &TestApp,
    path: &str,
    origin: &str,
    method: &str,
    request_headers: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method);
    if !request_headers.is_empty() {
        request = request.header("Access-Control-Request-Headers", request_headers);
    }
    request.send().await.expect("OPTIONS")
}

fn assert_no_cors_grant(headers: &HeaderMap, what: &str) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert!(
            headers.get(name).is_none(),
            "{what}: {name} must be absent, got {:?}",
            headers.get(name)
        );
    }
}

#[actix_web::test]
async fn a_preflight_from_a_listed_origin_is_granted_with_credentials_for_that_origin_only() {
    let app = cors_app().await;
    let cases = [
        (
            "/api/v1/alerts",
            CONSOLE,
            "POST",
            "authorization, content-type, idempotency-key",
        ),
        (
            "/api/v1/alerts/00000000-0000-7000-8000-000000000000/acknowledge",
            DEV,
            "POST",
            "content-type, x-request-id",
        ),
        (
            "/api/v1/alerts/stream",
            CONSOLE,
            "GET",
            "last-event-id, authorization",
        ),
        (
            "/api/v1/patients/123/care-team/alice",
            CONSOLE,
            "PUT",
            "authorization",
        ),
        ("/api/v1/session", DEV, "DELETE", ""),
    ];
    for (path, origin, method, request_headers) in cases {
        let what = format!("preflight {method} {path} from {origin}");
        let resp = preflight(&app, path, origin, method, request_headers).await;
        assert_eq!(resp.status(), 200, "{what}");
        let headers = resp.headers();
        assert_eq!(
            header(headers, "access-control-allow-origin"),
            Some(origin),
            "{what}: the origin is echoed, never `*` (credentials are allowed)"
        );
        assert_eq!(
            header(headers, "access-control-allow-credentials"),
            Some("true"),
            "{what}"
        );
        assert!(
            tokens(headers, "access-control-allow-methods").contains(&method.to_ascii_lowercase()),
            "{what}: allowed methods {:?}",
            headers.get("access-control-allow-methods")
        );
        let allowed = tokens(headers, "access-control-allow-headers");
        for wanted in request_headers
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            assert!(
                allowed.contains(&wanted.to_owned()),
                "{what}: {wanted} not in allowed headers {allowed:?}"
            );
        }
        assert_eq!(
            header(headers, "access-control-max-age"),
            Some("600"),
            "{what}: browsers may cache the grant for ten minutes"
        );
        assert!(
            tokens(headers, "vary").contains(&"origin".to_owned()),
            "{what}: caches must key on Origin"
        );
    }
}

#[actix_web::test]
async fn a_preflight_from_an_unlisted_origin_or_for_a_verb_not_offered_is_refused_without_cors_headers()
 {
    let app = cors_app().await;
    let refused = [
        ("https://evil.example", "POST", "content-type"),
        (
            "https://console.example.evil.example",
            "POST",
            "content-type",
        ),
        ("http://console.example", "POST", "content-type"),
        ("https://console.example:8443", "POST", "content-type"),
        ("null", "POST", "content-type"),
        // A listed origin asking for what the API does not offer.
        (CONSOLE, "PATCH", "content-type"),
        (CONSOLE, "POST", "x-forwarded-host"),
    ];
    for (origin, method, request_headers) in refused {
        let what = format!("preflight {method} [{request_headers}] from {origin}");
        let resp = preflight(&app, "/api/v1/alerts", origin, method, request_headers).await;
        assert_no_cors_grant(resp.headers(), &what);
        assert!(
            header(resp.headers(), "x-request-id").is_some(),
            "{what}: refusals carry a request id too"
        );
        expect_problem(resp, 400, &what).await;
    }
    // Without any configured origin, nothing is granted to anyone.
    let closed = spawn_app().await;
    let resp = preflight(&closed, "/api/v1/alerts", CONSOLE, "POST", "content-type").await;
    assert_no_cors_grant(resp.headers(), "no VIGIL_CORS_ORIGINS");
    expect_problem(resp, 400, "no VIGIL_CORS_ORIGINS").await;
}

#[actix_web::test]
async fn answers_to_a_listed_origin_carry_the_cors_headers_and_answers_to_others_none() {
    let app = cors_app().await;
    let get = |origin: &'static str, path: &'static str, token: String| {
        let app = &app;
        async move {
            let mut request = app.client.get(app.url(path)).header("Origin", origin);
            if !token.is_empty() {
                request = request.bearer_auth(token);
            }
            request.send().await.expect("GET")
        }
    };

    let resp = get(CONSOLE, "/api/v1/alerts", admin()).await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(CONSOLE)
    );
    assert_eq!(
        header(headers, "access-control-allow-credentials"),
        Some("true")
    );
    let exposed = tokens(headers, "access-control-expose-headers");
    for name in ["x-request-id", "location", "idempotent-replayed"] {
        assert!(
            exposed.contains(&name.to_owned()),
            "{name} is readable by the page: {exposed:?}"
        );
    }
    assert!(tokens(headers, "vary").contains(&"origin".to_owned()));

    // Errors reach a listed page readably too (it can show the problem).
    for (path, token, status) in [
        ("/api/v1/alerts", String::new(), 401),
        ("/api/v1/nope", admin(), 404),
    ] {
        let resp = get(DEV, path, token).await;
        assert_eq!(
            header(resp.headers(), "access-control-allow-origin"),
            Some(DEV),
            "{path}: a {status} is readable by the listed page"
        );
        expect_problem(resp, status, path).await;
    }

    // An unlisted origin gets the answer (CORS is enforced by the browser), but no grant:
    // the browser withholds it from the page.
    let resp = get("https://evil.example", "/api/v1/alerts", admin()).await;
    assert_eq!(resp.status(), 200);
    assert_no_cors_grant(resp.headers(), "GET from an unlisted origin");

    // The SSE stream, the one resource a cross-origin console reads longest.
    let resp = app
        .client
        .get(app.url("/api/v1/alerts/stream"))
        .bearer_auth(admin())
        .header("Origin", CONSOLE)
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(resp.headers(), "access-control-allow-origin"),
        Some(CONSOLE)
    );
}

#[actix_web::test]
async fn cookie_authenticated_acknowledgments_care_team_changes_and_websockets_need_an_allowed_origin()
 {
    // Threat: CSRF. A page on another origin makes the browser send the session cookie
    // (if SameSite were ever weakened); the Origin check refuses the state change.
    let app = cors_app().await;
    app.assign("123", "alice").await;
    let alert = app.raise("123", "high").await;
    let alert_id = alert["id"].as_str().expect("id");
    let nurse_cookie = format!("vigil_token={}", token("alice", "nurse", None));
    let admin_cookie = format!("vigil_token={}", admin());
    let ack_path = format!("/api/v1/alerts/{alert_id}/acknowledge");

    for origin in [None, Some("https://evil.example"), Some("null")] {
        let what = format!("cookie ack with Origin {origin:?}");
        let mut request = app
            .client
            .post(app.url(&ack_path))
            .header("Cookie", &nurse_cookie)
            .json(&json!({"status": "acknowledged", "note": "forged"}));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        expect_problem(request.send().await.expect("POST"), 403, &what).await;

        let mut request = app
            .client
            .put(app.url("/api/v1/patients/123/care-team/mallory"))
            .header("Cookie", &admin_cookie);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let what = format!("cookie care-team PUT with Origin {origin:?}");
        expect_problem(request.send().await.expect("PUT"), 403, &what).await;
    }
    let stored = app
        .get_ok(&format!("/api/v1/alerts/{alert_id}"), &admin())
        .await;
    assert_eq!(
        stored["status"], "open",
        "no forged acknowledgment was stored"
    );
    let team = app.get_ok("/api/v1/patients/123/care-team", &admin()).await;
    assert_eq!(team["members"].as_array().map(Vec::len), Some(1), "{team}");

    // The listed origin and the server's own origin pass.
    for origin in [CONSOLE, app.address.as_str()] {
        let resp = app
            .client
            .post(app.url(&ack_path))
            .header("Cookie", &nurse_cookie)
            .header("Origin", origin)
            .json(&json!({"status": "acknowledged"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200, "cookie ack from {origin}");
    }

    // The WebSocket handshake: browsers send the cookie and Origin, and no CORS applies
    // to WebSockets, so the Origin check is the only guard.
    let ws_with = |origin: Option<&str>| {
        let mut request = format!("ws://127.0.0.1:{}/ws?patient_id=123", app.port)
            .into_client_request()
            .expect("request");
        let headers = request.headers_mut();
        headers.insert("Cookie", nurse_cookie.parse().expect("cookie header"));
        if let Some(origin) = origin {
            headers.insert("Origin", origin.parse().expect("origin header"));
        }
        tokio_tungstenite::connect_async(request)
    };
    for origin in [None, Some("https://evil.example")] {
        match ws_with(origin).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "cookie WebSocket from {origin:?}");
            }
            Ok(_) => panic!("a cookie WebSocket from {origin:?} was accepted"),
            Err(e) => panic!("cookie WebSocket from {origin:?}: {e}"),
        }
    }
    let (mut socket, _) = ws_with(Some(CONSOLE))
        .await
        .expect("a cookie WebSocket from the listed origin");
    use futures_util::StreamExt;
    let first = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("a first frame")
        .expect("open")
        .expect("frame");
    assert!(
        first.to_text().expect("text").contains("\"connected\""),
        "{first:?}"
    );
}
