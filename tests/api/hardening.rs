//! Hostile and broken HTTP input: one test per threat. Each answer is a precise
//! problem+json error, nothing internal leaks, and other clients never notice.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use std::time::Duration;

use futures_util::future::join_all;
use futures_util::stream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Words that would mean internal error text reached a client (compared lowercased).
const INTERNAL: [&str; 9] = [
    "diesel",
    "sqlite",
    "select ",
    "insert ",
    "postgres",
    "r2d2",
    "panicked",
    "src/",
    "backtrace",
];

fn assert_nothing_internal(body: &str, what: &str) {
    let lower = body.to_lowercase();
    for word in INTERNAL {
        assert!(
            !lower.contains(word),
            "{what}: error body leaks {word:?}: {body}"
        );
    }
}

/// A problem answer with `status` whose body leaks nothing internal.
async fn problem(resp: reqwest::Response, status: u16, what: &str) -> Value {
    let body = expect_problem(resp, status, what).await;
    assert_nothing_internal(&body.to_string(), what);
    body
}

async fn post_raw(
    app: &TestApp,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let request = app
        .client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(service());
    request
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST")
}

async fn create(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post_json("/api/v1/alerts", &service(), body).await
}

/// `POST /api/v1/alerts/{id}/acknowledge` as admin with exactly this type and body.
async fn ack_raw(
    app: &TestApp,
    id: &str,
    content_type: Option<&str>,
    body: &'static str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/alerts/{id}/acknowledge")))
        .bearer_auth(admin());
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    request.body(body).send().await.expect("POST acknowledge")
}

/// The refused requests changed nothing: `id` is the one alert, still open.
async fn only_this_open_alert(app: &TestApp, id: &str) {
    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    assert_eq!(
        fetched["status"], "open",
        "nothing was acknowledged: {fetched}"
    );
    assert_eq!(stored_alerts(app).await, 1, "nothing was raised");
}

async fn stored_alerts(app: &TestApp) -> usize {
    let list = app.get_ok("/api/v1/alerts", &admin()).await;
    list["alerts"].as_array().map_or(0, Vec::len)
}

#[actix_web::test]
async fn malformed_json_is_a_400_problem() {
    // Threat: a parser error turning into a 500 or echoing internals.
    let app = spawn_app().await;
    for body in [
        "{not json",
        "{\"patient_id\": \"1\",}",
        "\"unterminated",
        "{} trailing",
        "\u{0}",
    ] {
        problem(post_raw(&app, "application/json", body).await, 400, body).await;
    }
    assert_eq!(stored_alerts(&app).await, 0);
}

/// The other JSON-taking writes (the acknowledgment on both its paths, and the
/// care-team replacement) read their bodies through the same rules as a raise: malformed
/// JSON is a 400, an oversize body a 413, and neither acts.
#[actix_web::test]
async fn the_acknowledgment_and_care_team_bodies_refuse_malformed_and_oversize_json() {
    let app = spawn_app().await;
    app.assign("77", "u1").await;
    let alert = app.raise("77", "high").await;
    let id = alert["id"].as_str().expect("id");
    let writes = [
        (Method::POST, format!("/api/v1/alerts/{id}/acknowledge")),
        (
            Method::POST,
            format!("/api/v1/alerts/alerts/{id}/acknowledge"),
        ),
        (Method::PUT, "/api/v1/patients/77/care-team".to_owned()),
    ];
    let oversize = format!(r#"{{"note":"{}"}}"#, "x".repeat(100 * 1024));
    for (method, path) in &writes {
        for (case, body, status) in [
            (
                "unterminated object",
                "{\"status\": \"resolved\"".to_owned(),
                400,
            ),
            (
                "trailing comma",
                "{\"status\": \"resolved\",}".to_owned(),
                400,
            ),
            ("trailing garbage", "{} trailing".to_owned(), 400),
            ("NUL", "\u{0}".to_owned(), 400),
            ("100 KiB", oversize.clone(), 413),
        ] {
            let resp = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(admin())
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            problem(resp, status, &format!("{method} {path}: {case}")).await;
        }
    }
    only_this_open_alert(&app, id).await;
    let team = app.get_ok("/api/v1/patients/77/care-team", &admin()).await;
    let members = team["members"].as_array().map_or(0, Vec::len);
    assert_eq!(members, 1, "the care team is unchanged: {team}");
}

#[actix_web::test]
async fn deeply_nested_json_is_refused_without_exhausting_the_stack() {
    // Threat: recursion-depth denial of service through nested arrays in `data`.
    let app = spawn_app().await;
    let (open, close) = ("[".repeat(20_000), "]".repeat(20_000));
    let body = format!("{{\"patient_id\":\"1\",\"data\":{open}{close}}}");
    assert!(
        body.len() < 64 * 1024,
        "under the size limit, so the parser must cope"
    );
    problem(
        post_raw(&app, "application/json", body).await,
        400,
        "20 000 nested arrays",
    )
    .await;
    let health = app.get("/healthz", "").await;
    assert_eq!(health.status(), 200, "the server is still up");
}

#[actix_web::test]
async fn a_body_over_64_kib_is_a_413_problem() {
    // Threat: memory exhaustion through huge request bodies.
    let app = spawn_app().await;
    let mut big = alert_body("1", "high");
    big["message"] = json!("x".repeat(65 * 1024));
    problem(create(&app, &big).await, 413, "65 KiB body").await;

    let alert = app.raise("1", "high").await;
    let id = alert["id"].as_str().expect("id");
    let path = format!("/api/v1/alerts/{id}/acknowledge");
    let note = json!({"note": "n".repeat(70 * 1024)});
    let resp = app.send(Method::POST, &path, &admin(), Some(&note)).await;
    problem(resp, 413, "70 KiB acknowledgment").await;
    let list = app.get_ok("/api/v1/alerts", &admin()).await;
    assert_eq!(
        list["alerts"].as_array().map(Vec::len),
        Some(1),
        "no oversize alert"
    );
    assert_eq!(list["alerts"][0]["status"], "open", "no oversize ack");
}

#[actix_web::test]
async fn a_chunked_body_over_64_kib_is_a_413_problem_too() {
    // Threat: bypassing the size limit by omitting Content-Length (chunked encoding).
    let app = spawn_app().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(stream::iter(chunks));
    let resp = post_raw(&app, "application/json", body).await;
    problem(resp, 413, "80 KiB chunked body").await;
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415() {
    // Threat: form posts from other sites (CSRF) and content-type confusion.
    let app = spawn_app().await;
    let body = alert_body("1", "high").to_string();
    let types = [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        // JSON by another name is still not `application/json`.
        "application/merge-patch+json",
        "application/vnd.api+json",
    ];
    for content_type in types {
        let resp = post_raw(&app, content_type, body.clone()).await;
        problem(resp, 415, content_type).await;
    }
    let request = app
        .client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(service());
    let resp = request.body(body.clone()).send().await.expect("POST");
    problem(resp, 415, "no Content-Type").await;
    assert_eq!(stored_alerts(&app).await, 0);
    let ok = post_raw(&app, "application/json; charset=utf-8", body).await;
    assert_eq!(ok.status(), 201, "JSON with a charset parameter is JSON");
}

/// A body with two `Content-Type` headers was read as the first: `application/json`
/// then `text/plain` stored the alert. A message has one media type (RFC 9110 §8.3), and
/// which one a proxy in front read is unknowable, so two are a 400 that changes nothing.
#[actix_web::test]
async fn a_body_with_two_content_types_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let alert = app.raise("two-types", "high").await;
    let ack = format!(
        "/api/v1/alerts/{}/acknowledge",
        alert["id"].as_str().expect("id")
    );
    for (path, token, body) in [
        (
            "/api/v1/alerts",
            service(),
            alert_body("two-types", "low").to_string(),
        ),
        (ack.as_str(), admin(), r#"{"status":"resolved"}"#.to_owned()),
    ] {
        for (first, second) in [
            ("application/json", "text/plain"),
            ("application/json", "application/json"),
        ] {
            let resp = app
                .client
                .post(app.url(path))
                .bearer_auth(&token)
                .header("content-type", first)
                .header("content-type", second)
                .body(body.clone())
                .send()
                .await
                .expect("POST");
            let what = format!("{path}: {first} and {second}");
            let problem = problem(resp, 400, &what).await;
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("Content-Type given 2 times")),
                "{what}: {problem}"
            );
        }
    }
    only_this_open_alert(&app, alert["id"].as_str().expect("id")).await;
}

#[actix_web::test]
async fn an_empty_body_declared_as_anything_but_json_is_415_and_changes_nothing() {
    // Threat: a form post with no body acknowledging an alert (an empty acknowledgment
    // body means "acknowledged", so it would otherwise act).
    let app = spawn_app().await;
    let alert = app.raise("123", "high").await;
    let id = alert["id"].as_str().expect("id");
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/html",
    ] {
        let resp = ack_raw(&app, id, Some(content_type), "").await;
        problem(
            resp,
            415,
            &format!("empty acknowledgment as {content_type}"),
        )
        .await;
        let resp = post_raw(&app, content_type, "").await;
        problem(resp, 415, &format!("empty alert as {content_type}")).await;
    }
    only_this_open_alert(&app, id).await;

    // Without a Content-Type, an empty acknowledgment still means "acknowledged".
    let resp = ack_raw(&app, id, None, "").await;
    assert_eq!(resp.status(), 200, "an empty acknowledgment with no type");
}

#[actix_web::test]
async fn a_body_sent_to_a_write_that_takes_none_is_held_to_the_same_rules() {
    // Threat: a form post or a stray upload acting on an endpoint that ignores its body.
    let app = spawn_app().await;
    let big = "x".repeat(100 * 1024);
    let writes = [
        (Method::PUT, "/api/v1/patients/77/care-team/u1"),
        (Method::DELETE, "/api/v1/patients/77/care-team/u1"),
        (Method::DELETE, "/api/v1/patients/77/care-team"),
        (Method::POST, "/api/v1/session"),
        (Method::DELETE, "/api/v1/session"),
    ];
    for (method, path) in &writes {
        let send = |content_type: Option<&'static str>, body: String| {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(admin());
            if let Some(content_type) = content_type {
                request = request.header("Content-Type", content_type);
            }
            request.body(body).send()
        };
        let what = |case: &str| format!("{method} {path}: {case}");
        let resp = send(Some("text/plain"), "hello".to_owned())
            .await
            .expect("send");
        problem(resp, 415, &what("text/plain")).await;
        let resp = send(Some("application/json"), "{bad".to_owned())
            .await
            .expect("send");
        problem(resp, 400, &what("malformed JSON")).await;
        let resp = send(Some("application/json"), big.clone())
            .await
            .expect("send");
        problem(resp, 413, &what("100 KiB")).await;
    }
    let team = app.get_ok("/api/v1/patients/77/care-team", &admin()).await;
    assert_eq!(team["members"], json!([]), "nothing was assigned: {team}");

    // Without a body, or with an empty JSON one, they work as before.
    let resp = app
        .client
        .put(app.url("/api/v1/patients/77/care-team/u1"))
        .bearer_auth(admin())
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 201, "no body at all");
    let resp = app
        .client
        .delete(app.url("/api/v1/patients/77/care-team/u1"))
        .bearer_auth(admin())
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 204, "an empty JSON object");
}

#[actix_web::test]
async fn a_repeated_key_is_a_400_naming_it_and_changes_nothing() {
    // Threat: an ambiguous body read one way by a proxy or audit tool and another way by
    // Vigil (serde_json alone keeps the last of two equal keys).
    let app = spawn_app().await;
    let alert = app.raise("123", "high").await;
    let id = alert["id"].as_str().expect("id");
    let resp = post_raw(
        &app,
        "application/json",
        r#"{"patient_id":"123","patient_id":"456","severity":"high","kind":"k","title":"t"}"#,
    )
    .await;
    let answer = problem(resp, 400, "a repeated patient_id").await;
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("duplicate key `patient_id`")),
        "{answer}"
    );
    let resp = ack_raw(
        &app,
        id,
        Some("application/json"),
        r#"{"status":"acknowledged","status":"resolved"}"#,
    )
    .await;
    let answer = problem(resp, 400, "a repeated status").await;
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("duplicate key `status`")),
        "{answer}"
    );
    only_this_open_alert(&app, id).await;
}

#[actix_web::test]
async fn an_unknown_field_in_an_alert_is_422_naming_it() {
    // Threat: silently dropped fields (a typo like `severty` must not raise a default alert).
    let app = spawn_app().await;
    let mut body = alert_body("1", "high");
    body["severty"] = json!("critical");
    let answer = problem(create(&app, &body).await, 422, "unknown field").await;
    assert_eq!(error_fields(&answer), vec!["severty"]);
    let detail = answer["detail"].as_str().expect("detail");
    assert!(detail.contains("severty"), "{detail}");
    assert_eq!(stored_alerts(&app).await, 0);
}

#[actix_web::test]
async fn every_invalid_alert_field_is_422_naming_that_field() {
    // Threat: oversize or malformed values reaching storage and every subscriber's screen.
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("patient_id", json!("12 3"), "patient id with a space"),
        ("patient_id", json!("p".repeat(65)), "65-char patient id"),
        ("patient_id", json!(""), "empty patient id"),
        ("patient_id", json!(123), "numeric patient id"),
        ("severity", json!("urgent"), "unknown severity"),
        ("severity", json!("CRITICAL"), "severity in capitals"),
        ("kind", json!("k".repeat(65)), "65-character kind"),
        ("title", json!(""), "empty title"),
        ("title", json!("t".repeat(201)), "201-character title"),
        ("message", json!("m".repeat(2001)), "2001-character message"),
        ("source", json!("s".repeat(129)), "129-character source"),
        // Six bytes each in JSON (`\u0001`): a trail of them had been six times its bound.
        (
            "title",
            json!("HR\u{1}high"),
            "a control character in the title",
        ),
        ("message", json!("ok\u{7f}"), "DEL in the message"),
        (
            "source",
            json!("mon\u{85}itor"),
            "a C1 control in the source",
        ),
        ("data", json!([1, 2]), "data as an array"),
        ("data", json!("text"), "data as a string"),
        (
            "data",
            json!({"b": "x".repeat(17 * 1024)}),
            "data over 16 KiB",
        ),
    ];
    for (field, value, why) in cases {
        let mut body = alert_body("1", "high");
        body[field] = value;
        let answer = problem(create(&app, &body).await, 422, why).await;
        assert_eq!(error_fields(&answer), vec![field], "{why}: {answer}");
        let message = answer["errors"][0]["message"].as_str();
        assert!(
            message.is_some_and(|m| !m.is_empty()),
            "{why}: the error says what is wrong"
        );
    }
    for field in ["patient_id", "severity", "kind", "title"] {
        let mut body = alert_body("1", "high");
        body.as_object_mut().expect("object").remove(field);
        let answer = problem(create(&app, &body).await, 422, field).await;
        assert_eq!(error_fields(&answer), vec![field], "missing {field}");
    }
    problem(create(&app, &json!([1])).await, 422, "an array body").await;
    // An integer past 64 bits would be kept as a double (1.2345678901234568e29), and a
    // number below the smallest double as 0: a clinical value changed without a word.
    // Only raw text can carry one.
    for (number, why) in [
        (
            "123456789012345678901234567890",
            "an integer past 64 bits in data",
        ),
        ("0.1e-400", "a number a double would store as 0"),
    ] {
        let raw = format!(
            r#"{{"patient_id":"1","severity":"high","kind":"k","title":"t","data":{{"v":{number}}}}}"#
        );
        let resp = app
            .client
            .post(app.url("/api/v1/alerts"))
            .bearer_auth(service())
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("POST");
        let answer = problem(resp, 422, why).await;
        assert_eq!(error_fields(&answer), vec!["data"], "{answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(number), "{why}: {answer}");
        assert_eq!(stored_alerts(&app).await, 0, "no invalid alert was stored");
    }

    let at_limits = json!({
        "patient_id": "p".repeat(64), "severity": "info", "kind": "k".repeat(64),
        "title": "t".repeat(200), "message": "m".repeat(2000), "source": "s".repeat(128),
        "data": {"blob": "x".repeat(16 * 1024 - 20)},
    });
    let resp = create(&app, &at_limits).await;
    assert_eq!(resp.status(), 201, "values at the limits are accepted");
}

#[actix_web::test]
async fn an_unknown_route_is_a_404_problem() {
    // Threat: framework default pages revealing the stack.
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v2/alerts",
        "/api/v1/alerts/x/y",
    ] {
        problem(app.get(path, &admin()).await, 404, path).await;
    }
}

#[actix_web::test]
async fn a_wrong_method_is_a_405_problem_naming_the_allowed_methods() {
    // Threat: framework default pages revealing the stack; verbs the API never meant to offer.
    let app = spawn_app().await;
    let cases = [
        (Method::PATCH, "/api/v1/alerts", "GET, HEAD, POST"),
        (Method::DELETE, "/api/v1/alerts", "GET, HEAD, POST"),
        (Method::PUT, "/api/v1/alerts/stream", "GET"),
        (
            Method::POST,
            "/api/v1/alerts/00000000-0000-7000-8000-000000000000",
            "GET, HEAD",
        ),
        (Method::GET, "/api/v1/alerts/x/acknowledge", "POST"),
        (Method::PUT, "/api/v1/session", "DELETE, GET, HEAD, POST"),
        (
            Method::PATCH,
            "/api/v1/patients/1/care-team",
            "DELETE, GET, HEAD, PUT",
        ),
        (Method::POST, "/healthz", "GET, HEAD"),
    ];
    for (method, path, allowed) in cases {
        let what = format!("{method} {path}");
        let resp = app.send(method, path, &admin(), None).await;
        let allow = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut methods: Vec<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
        methods.sort_unstable();
        problem(resp, 405, &what).await;
        assert_eq!(
            methods.join(", "),
            allowed,
            "{what}: the Allow header (RFC 9110)"
        );
    }
}

#[actix_web::test]
async fn injection_shaped_query_values_are_rejected_as_invalid() {
    // Threat: SQL injection through list filters, and integer overflow in `after`/`limit`.
    let app = spawn_app().await;
    app.raise("1", "high").await;
    let cases = [
        ("patient_id=1'%20OR%20'1'='1", "patient_id"),
        ("status=open'--", "status"),
        ("severity=high%3B%20DROP%20TABLE%20alerts", "severity"),
        ("after=99999999999999999999999", "after"),
        ("limit=99999999999999999999999", "limit"),
    ];
    for (query, field) in cases {
        let answer = problem(
            app.get(&format!("/api/v1/alerts?{query}"), &admin()).await,
            422,
            query,
        )
        .await;
        assert_eq!(error_fields(&answer), vec![field], "{query}");
    }
    assert_eq!(stored_alerts(&app).await, 1, "the table is intact");
}

#[actix_web::test]
async fn a_barrage_of_bad_requests_goes_unnoticed_by_other_clients_and_leaks_nothing() {
    // Threat: one misbehaving client degrading service for everyone (or crashing a worker).
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let mut sse = app
        .sse(&token("alice", "nurse", None), "patient_id=123")
        .await;
    assert_eq!(sse.status, 200);
    sse.connected().await;

    let (svc, root, nil) = (service(), admin(), String::new());
    let zero = "/api/v1/alerts/00000000-0000-7000-8000-000000000000";
    let cases: Vec<(Method, &str, &String, Option<Value>)> = vec![
        (Method::POST, "/api/v1/alerts", &svc, Some(json!({"x": 1}))),
        (
            Method::POST,
            "/api/v1/alerts",
            &svc,
            Some(json!({"data": "x".repeat(70_000)})),
        ),
        (
            Method::POST,
            "/api/v1/alerts",
            &nil,
            Some(alert_body("123", "high")),
        ),
        (Method::GET, "/api/v1/alerts?after=-5", &root, None),
        (Method::GET, zero, &root, None),
        (
            Method::POST,
            "/api/v1/alerts/x/acknowledge",
            &root,
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/alerts/x/acknowledge",
            &root,
            Some(json!({"status": []})),
        ),
        (Method::GET, "/api/v1/patients/a%20b/care-team", &root, None),
        (Method::DELETE, "/api/v1/alerts", &root, None),
        (Method::GET, "/definitely/not/here", &nil, None),
    ];
    let sends = cases
        .iter()
        .map(|(method, path, who, body)| app.send(method.clone(), path, who, body.as_ref()));
    let raws =
        [("application/json", "{oops"), ("text/plain", "hi")].map(|(ct, b)| post_raw(&app, ct, b));
    let (mut answers, raw_answers) =
        futures_util::future::join(join_all(sends), join_all(raws)).await;
    answers.extend(raw_answers);
    for (i, resp) in answers.into_iter().enumerate() {
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(
            status.is_client_error(),
            "bad request #{i} answered {status}: {text}"
        );
        assert_nothing_internal(&text, &format!("bad request #{i}"));
    }

    assert_eq!(app.get("/healthz", "").await.status(), 200);
    let alert = app.raise("123", "critical").await;
    let event = sse.next_alert_event().await;
    assert_eq!(event.event, "alert", "the open stream kept working");
    assert_eq!(event.id, alert["seq"].to_string());
    let stats = app
        .wait_for_stats("the stream is still counted", |s| {
            s["connections"]["sse"] == 1
        })
        .await;
    assert_eq!(stats["queue_overflows"], 0);
    assert!(
        sse.next_event(Duration::from_secs(5)).await.is_some(),
        "heartbeats continue"
    );
}

/// Content-Encoding was ignored: a gzip-compressed alert was "malformed JSON", a plain
/// body labelled `br` was stored as if it had been decoded, and so was an acknowledgment.
/// Bodies are read as sent, so any encoding but `identity` is 415 naming it.
#[actix_web::test]
async fn a_request_body_with_a_content_encoding_is_415_naming_it() {
    let app = spawn_app().await;
    let alert = app.raise("enc", "high").await;
    let body = alert_body("enc", "low").to_string();
    let ack = format!(
        "/api/v1/alerts/{}/acknowledge",
        alert["id"].as_str().expect("id")
    );
    for (path, token, encoding) in [
        ("/api/v1/alerts", service(), "gzip"),
        ("/api/v1/alerts", service(), "br"),
        ("/api/v1/alerts", service(), "identity, gzip"),
        (ack.as_str(), admin(), "gzip"),
    ] {
        let resp = app
            .client
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(if path == ack {
                "{}".to_owned()
            } else {
                body.clone()
            })
            .send()
            .await
            .expect("POST");
        let problem = expect_problem(resp, 415, &format!("{path} {encoding}")).await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("gzip") || d.contains("br")),
            "{problem}"
        );
    }
    only_the_first_alert_stands(&app, "enc").await;
    // `identity` is no encoding at all.
    let resp = app
        .client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(service())
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 201);
}

/// A number past a double's range (`1e309`, a 400-digit integer) is valid JSON but was
/// answered 400 "number out of range" with no field named, while `5` for a status is a
/// 422 naming it. It is a 422 naming the field, and nothing is stored.
#[actix_web::test]
async fn a_number_beyond_a_double_is_422_naming_its_field() {
    let app = spawn_app().await;
    let alert = app.raise("num", "high").await;
    let ack = format!(
        "/api/v1/alerts/{}/acknowledge",
        alert["id"].as_str().expect("id")
    );
    let digits = "9".repeat(400);
    for (path, token, body, field) in [
        (
            "/api/v1/alerts",
            service(),
            r#"{"patient_id":"num","severity":"low","kind":"k","title":"t","data":{"n":1e309}}"#
                .to_owned(),
            "data",
        ),
        (
            "/api/v1/alerts",
            service(),
            format!(
                r#"{{"patient_id":"num","severity":"low","kind":"k","title":"t","data":{{"n":[{digits}]}}}}"#
            ),
            "data",
        ),
        (
            ack.as_str(),
            admin(),
            r#"{"status":1e309}"#.to_owned(),
            "status",
        ),
    ] {
        let resp = app
            .client
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("POST");
        let problem = expect_problem(resp, 422, &format!("{path} {body:.60}")).await;
        assert_eq!(error_fields(&problem), [field], "{problem}");
        // Said plainly: such a body cannot be read, so nothing else in it was checked.
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("other fields were not checked")),
            "{problem}"
        );
    }
    only_the_first_alert_stands(&app, "num").await;
}

/// The refused writes changed nothing: `patient` still has one alert, still open.
async fn only_the_first_alert_stands(app: &TestApp, patient: &str) {
    let path = format!("/api/v1/alerts?patient_id={patient}");
    let listed = app.get_ok(&path, &admin()).await;
    assert_eq!(
        listed["alerts"].as_array().map(Vec::len),
        Some(1),
        "nothing stored"
    );
    assert_eq!(
        listed["alerts"][0]["status"], "open",
        "nothing acknowledged"
    );
}
