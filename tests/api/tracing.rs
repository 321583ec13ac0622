//! Request tracing: `X-Request-Id` on every answer (the caller's when well-formed, a new
//! UUID v7 otherwise), recorded on the alert a request creates, and — against the real
//! binary, reading its log — on the access-log line of that request, on the error line of
//! a failed one, and on the `alert raised` / `alert acknowledged` lines, so "raised by
//! request X, delivered to N clients, acknowledged by Y" can be followed. Tokens and
//! acknowledgment notes never reach the log.

use diesel::RunQueryDsl;
use diesel::r2d2::ManageConnection;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::json;
use vigil::config::{DatabaseConfig, SqliteSync};
use vigil::db::AnyConnection;
use vigil::db::pool::AnyManager;

use crate::binary::Served;
use crate::helpers::*;

fn request_id(headers: &HeaderMap, what: &str) -> String {
    headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no X-Request-Id"))
        .to_str()
        .expect("ASCII")
        .to_owned()
}

/// A generated id: a UUID, version 7 (time-ordered).
fn assert_generated(id: &str, what: &str) {
    let uuid = uuid::Uuid::parse_str(id)
        .unwrap_or_else(|_| panic!("{what}: {id:?} is neither the caller's id nor a UUID"));
    assert_eq!(uuid.get_version_num(), 7, "{what}: {id} is a UUID v7");
}

/// A direct connection to a test server's database (its own store, not a mock).
fn connect(database_url: &str) -> AnyConnection {
    AnyManager::new(&DatabaseConfig {
        url: database_url.to_owned(),
        sqlite_sync: SqliteSync::Normal,
        wal_limit_bytes: vigil::config::DEFAULT_WAL_LIMIT_BYTES,
        pool_size: 1,
    })
    .connect()
    .expect("connect to the test database")
}

#[actix_web::test]
async fn a_well_formed_request_id_is_echoed_and_anything_else_replaced_by_a_new_uuid() {
    let app = spawn_app().await;
    for id in [
        "abc",
        "trace-0001",
        "019a8f3e-5b1c-7d2e-9f00-1a2b3c4d5e6f",
        "span:42.a_b",
        &"x".repeat(128),
    ] {
        let resp = app
            .client
            .get(app.url("/healthz"))
            .header("X-Request-Id", id)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            request_id(resp.headers(), id),
            id,
            "a well-formed id is echoed"
        );
    }
    let long = "x".repeat(129);
    for bad in [
        "",
        "has space",
        "semi;colon",
        "new\tline",
        "quote\"d",
        "ünïcödé",
        "a/b",
        long.as_str(),
    ] {
        let header =
            reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).expect("header value");
        let resp = app
            .client
            .get(app.url("/healthz"))
            .header("X-Request-Id", header)
            .send()
            .await
            .expect("GET");
        let id = request_id(resp.headers(), bad);
        assert_ne!(id, bad, "{bad:?} is not echoed");
        assert_generated(&id, &format!("replacing {bad:?}"));
    }
    let one = request_id(app.get("/healthz", "").await.headers(), "no id");
    let two = request_id(app.get("/healthz", "").await.headers(), "no id");
    assert_generated(&one, "no id");
    assert_ne!(one, two, "each request gets its own id");
}

#[actix_web::test]
async fn every_answer_carries_a_request_id_errors_streams_and_websockets_included() {
    let app = spawn_app_with(|c| c.max_connections = Some(1)).await;
    let root = admin();
    let alert = app.raise("1", "high").await;
    let id = alert["id"].as_str().expect("id");
    let huge = json!({"message": "x".repeat(70 * 1024)});
    let cases: Vec<(Method, String, String, Option<serde_json::Value>, u16)> = vec![
        (Method::GET, "/healthz".into(), String::new(), None, 200),
        (Method::GET, "/metrics".into(), String::new(), None, 200),
        (Method::GET, "/".into(), String::new(), None, 200),
        (Method::GET, "/api/docs/".into(), String::new(), None, 200),
        (
            Method::GET,
            "/api/v1/alerts".into(),
            root.clone(),
            None,
            200,
        ),
        (
            Method::GET,
            format!("/api/v1/alerts/{id}"),
            root.clone(),
            None,
            200,
        ),
        (
            Method::GET,
            "/no/such/route".into(),
            root.clone(),
            None,
            404,
        ),
        (
            Method::GET,
            "/api/v1/alerts".into(),
            String::new(),
            None,
            401,
        ),
        (
            Method::GET,
            "/api/v1/alerts".into(),
            "not-a-jwt".into(),
            None,
            401,
        ),
        (
            Method::POST,
            "/api/v1/alerts".into(),
            service(),
            Some(huge),
            413,
        ),
        (
            Method::POST,
            "/api/v1/alerts".into(),
            service(),
            Some(json!({})),
            422,
        ),
        (
            Method::GET,
            "/api/v1/alerts/stream/stats".into(),
            service(),
            None,
            403,
        ),
        (
            Method::DELETE,
            "/api/v1/alerts".into(),
            root.clone(),
            None,
            405,
        ),
        (Method::GET, "/ws".into(), root.clone(), None, 400),
    ];
    for (method, path, who, body, status) in cases {
        let what = format!("{method} {path}");
        let resp = app.send(method, &path, &who, body.as_ref()).await;
        assert_eq!(resp.status(), status, "{what}");
        assert_generated(&request_id(resp.headers(), &what), &what);
    }

    // The SSE stream's headers, and the refusal of a second stream (503, the limit is 1).
    let mut sse = SseClient::open(&app, &root, "", None).await;
    assert_eq!(sse.status, 200);
    assert_generated(&request_id(&sse.headers, "SSE stream"), "SSE stream");
    sse.connected().await;
    let refused = app
        .client
        .get(app.url("/api/v1/alerts/stream"))
        .bearer_auth(&root)
        .header("X-Request-Id", "refused-stream-1")
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), 503);
    assert_eq!(request_id(refused.headers(), "503"), "refused-stream-1");
    sse.close();
    app.wait_for_stats("the stream is gone", |s| s["connections"]["sse"] == 0)
        .await;

    // The WebSocket handshake answer (101).
    let socket = app.ws(&root, "").await;
    let ws_id = socket
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("the 101 carries X-Request-Id")
        .to_owned();
    assert_generated(&ws_id, "WebSocket handshake");
}

#[actix_web::test]
async fn an_alert_records_the_id_of_the_request_that_created_it() {
    use vigil::db::alerts;
    let app = spawn_app().await;
    let create = |given_id: Option<&'static str>, key: &'static str| {
        let app = &app;
        async move {
            let mut request = app
                .client
                .post(app.url("/api/v1/alerts"))
                .bearer_auth(service())
                .header("Idempotency-Key", key)
                .json(&alert_body("1", "high"));
            if let Some(id) = given_id {
                request = request.header("X-Request-Id", id);
            }
            let resp = request.send().await.expect("POST");
            assert_eq!(resp.status(), 201);
            let echoed = request_id(resp.headers(), "create");
            let alert: serde_json::Value = resp.json().await.expect("alert");
            (alert["id"].as_str().expect("id").to_owned(), echoed)
        }
    };
    let (given, echoed) = create(Some("producer-trace-7"), "k1").await;
    assert_eq!(echoed, "producer-trace-7");
    let (generated, generated_id) = create(None, "k2").await;
    assert_generated(&generated_id, "create without an id");
    // A retry with the same Idempotency-Key is the same alert: it keeps the first id.
    let (retried, retry_id) = create(Some("producer-trace-8"), "k1").await;
    assert_eq!(retried, given);
    assert_eq!(
        retry_id, "producer-trace-8",
        "the retry's own answer has its own id"
    );

    // The alert JSON is the contract's (DESIGN.md, Domain): the id is kept for operators
    // in the database and the log, not shown to every subscriber.
    let url = app.database_url.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let mut conn = connect(&url);
        let first = alerts::get(&mut conn, &given).expect("query").expect("row");
        let second = alerts::get(&mut conn, &generated)
            .expect("query")
            .expect("row");
        (first.request_id, second.request_id)
    })
    .await
    .expect("blocking");
    assert_eq!(first.as_deref(), Some("producer-trace-7"));
    assert_eq!(second, Some(generated_id), "a generated id is recorded too");
}

#[actix_web::test]
async fn the_real_binary_logs_the_request_id_on_access_error_and_audit_lines_and_never_a_token_or_a_note()
 {
    let served = Served::start("info,vigil::hub::manager=debug");
    // Which database it opened is logged, so a backup copies the right file; and for
    // PostgreSQL, how it is reached (the test server: loopback, no TLS).
    let file = served.database_url.strip_prefix("sqlite://");
    let opened = match file {
        Some(path) => format!("database: SQLite file {path}"),
        None => "PostgreSQL at 127.0.0.1, without TLS (on this host)".to_owned(),
    };
    served.line_with(&[opened.as_str()]).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", served.url);
    let analyser = service();
    let root = admin();
    let alice = token("alice", "nurse", None);
    let note = "patient-said-the-secret-word-7f3a9c";

    let resp = client
        .put(url("/api/v1/patients/123/care-team/alice"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("PUT");
    assert!(resp.status().is_success());
    // A stream, so the alert has somebody to be delivered to.
    let stream = client
        .get(url("/api/v1/alerts/stream?patient_id=123"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    served
        .line_with(&["stream opened", "user_id=alice", "request_id="])
        .await;
    // A `sub` that could pass for another field is written quoted.
    let forged = client
        .get(url("/api/v1/alerts/stream"))
        .bearer_auth(token("svc user_id=root", "admin", None))
        .send()
        .await
        .expect("stream");
    assert_eq!(forged.status(), 200);
    served
        .line_with(&["stream opened", "user_id=\"svc user_id=root\" role=admin"])
        .await;
    drop(forged);

    let resp = client
        .post(url("/api/v1/alerts"))
        .bearer_auth(&analyser)
        .header("X-Request-Id", "trace-raise-0001")
        .json(&alert_body("123", "critical"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 201);
    let alert: serde_json::Value = resp.json().await.expect("alert");
    let alert_id = alert["id"].as_str().expect("id").to_owned();

    let resp = client
        .post(url(&format!("/api/v1/alerts/{alert_id}/acknowledge")))
        .bearer_auth(&alice)
        .header("X-Request-Id", "trace-ack-0001")
        .json(&json!({"status": "acknowledged", "note": note}))
        .send()
        .await
        .expect("ack");
    assert_eq!(resp.status(), 200);

    // Credentials in places a careless logger would print: the query and the cookie.
    let resp = client
        .get(url(&format!("/ws?token={alice}")))
        .header("X-Request-Id", "trace-ws-0001")
        .send()
        .await
        .expect("GET /ws");
    assert_eq!(resp.status(), 400, "not a WebSocket handshake");
    let resp = client
        .get(url(&format!("/api/v1/alerts?token={root}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 401);
    let resp = client
        .get(url("/api/v1/alerts?patient_id=123"))
        .header("Cookie", format!("vigil_token={alice}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let resp = client.get(url("/healthz")).send().await.expect("GET");
    let generated = request_id(resp.headers(), "healthz");

    // A server error: its table gone, reading the alert fails inside the server.
    let database_url = served.database_url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = connect(&database_url);
        diesel::sql_query("DROP TABLE acknowledgments")
            .execute(&mut conn)
            .expect("drop a table under the server");
    })
    .await
    .expect("blocking");
    let resp = client
        .get(url(&format!("/api/v1/alerts/{alert_id}")))
        .bearer_auth(&root)
        .header("X-Request-Id", "trace-500")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.expect("body");
    assert!(
        !body.to_lowercase().contains("acknowledgments"),
        "no internals reach the client: {body}"
    );

    // The access-log line of each request carries its id (the caller's or the generated one).
    served
        .line_with(&["POST /api/v1/alerts 201", "request_id=trace-raise-0001"])
        .await;
    served
        .line_with(&[
            &format!("POST /api/v1/alerts/{alert_id}/acknowledge 200"),
            "request_id=trace-ack-0001",
        ])
        .await;
    served
        .line_with(&["GET /ws 400", "request_id=trace-ws-0001"])
        .await;
    served
        .line_with(&["GET /healthz 200", &format!("request_id={generated}")])
        .await;
    served
        .line_with(&[
            &format!("GET /api/v1/alerts/{alert_id} 500"),
            "request_id=trace-500",
        ])
        .await;
    // The error line of the failed request carries it too, with the internal cause.
    let error = served
        .line_with(&["ERROR", "request failed", "request_id=trace-500"])
        .await;
    assert!(error.contains("database error"), "{error}");

    // Raised by request X, delivered to N clients, acknowledged by Y.
    let raised = served
        .line_with(&["alert raised", &format!("alert_id={alert_id}")])
        .await;
    assert!(raised.contains("request_id=trace-raise-0001"), "{raised}");
    assert!(raised.contains("user_id=analyser-1"), "{raised}");
    let delivered = served
        .line_with(&["event delivered", &format!("alert_id={alert_id}")])
        .await;
    assert!(delivered.contains("recipients=1"), "{delivered}");
    let acknowledged = served
        .line_with(&["alert acknowledged", &format!("alert_id={alert_id}")])
        .await;
    for part in [
        "request_id=trace-ack-0001",
        "user_id=alice",
        "status=acknowledged",
    ] {
        assert!(acknowledged.contains(part), "{part} in {acknowledged}");
    }
    drop(stream);

    // Never a credential or clinical free text, whatever the level.
    let log = served.lines().join("\n");
    for (secret, what) in [
        (analyser.as_str(), "the service token"),
        (root.as_str(), "the admin token"),
        (alice.as_str(), "the nurse token"),
        (SECRET, "the JWT secret"),
        (note, "the acknowledgment note"),
        ("heart rate 148", "the alert message"),
    ] {
        assert!(!log.contains(secret), "{what} appears in the log:\n{log}");
    }
    for token in [&analyser, &root, &alice] {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(
            !log.contains(signature),
            "a token signature appears in the log"
        );
    }
    assert!(!log.contains("token="), "no query string is logged:\n{log}");
}

/// A readiness probe's 503 is an answer about the instance, logged once as a warning
/// naming the cause; it used to be logged a second time as an `ERROR request failed …:
/// no error attached`, an alarm with no cause, on every probe for as long as it lasted.
#[actix_web::test]
async fn a_readiness_503_is_logged_once_as_a_warning_with_its_cause_not_as_a_failed_request() {
    use diesel::{Connection, SqliteConnection};

    let served = Served::start_on_sqlite("info");
    let file = served
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite file");
    let mut other = SqliteConnection::establish(file).expect("open");
    // The server's own lock may be held at that instant (a checkpoint, a commit).
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut other)
        .expect("busy timeout");
    diesel::sql_query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .expect("take the write lock");
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", served.url))
        .header("X-Request-Id", "probe-locked-0001")
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    served
        .line_with(&["WARN", "readiness check failed (locked)"])
        .await;
    // The access line is written after any error line of the same request.
    served
        .line_with(&["GET /readyz 503", "request_id=probe-locked-0001"])
        .await;
    let log = served.lines().join("\n");
    assert!(
        !log.lines()
            .any(|l| l.contains("ERROR") && l.contains("/readyz")),
        "no error line for the probe:\n{log}"
    );
}

/// A stream refused because the instance is full is the configured limit at work: it
/// was logged as `ERROR request failed`, one line per attempt, so clients knocking at
/// the limit flooded the error log. It is a warning; real failures stay errors.
#[actix_web::test]
async fn a_stream_refused_by_the_instance_limit_is_logged_as_a_warning_not_an_error() {
    let served = Served::start_with("info", &[("VIGIL_MAX_CONNECTIONS", "1")]);
    let client = reqwest::Client::new();
    let stream = |id: &'static str| {
        client
            .get(format!("{}/api/v1/alerts/stream", served.url))
            .bearer_auth(admin())
            .header("X-Request-Id", id)
            .send()
    };
    let held = stream("limit-held-0001").await.expect("stream");
    assert_eq!(held.status(), 200);
    let refused = stream("limit-refused-0001").await.expect("stream");
    assert_eq!(refused.status(), 503);
    let line = served
        .line_with(&["request failed", "request_id=limit-refused-0001"])
        .await;
    assert!(line.contains("WARN") && !line.contains("ERROR"), "{line}");
}

/// A client's broken WebSocket frame is its own error, answered on its session: a ping
/// sent in fragments (FIN clear, which RFC 6455 forbids for control frames) was also
/// logged by actix-http as `ERROR Unfinished fragment Ping`, so any client holding a
/// token could write an error line per connection.
#[actix_web::test]
async fn a_fragmented_ping_closes_its_session_without_an_error_line() {
    let served = Served::start("info");
    let ws_url = served.url.replacen("http://", "ws://", 1);
    let mut rogue = WsClient::connect(&format!("{ws_url}/ws?token={}", admin())).await;
    rogue.until_type("connected").await;
    // A ping, FIN clear, masked with a zero key, no payload.
    rogue.send_bytes(&[0x09, 0x80, 0, 0, 0, 0]).await;
    let close = rogue.closed(WAIT).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1002, "{close:?}");
    // A request after it: its access line comes after anything the close logged.
    let after = reqwest::Client::new()
        .get(format!("{}/healthz", served.url))
        .header("X-Request-Id", "after-fragmented-ping")
        .send()
        .await
        .expect("healthz");
    assert_eq!(after.status(), 200);
    served
        .line_with(&["GET /healthz 200", "request_id=after-fragmented-ping"])
        .await;
    let log = served.lines().join("\n");
    assert!(
        !log.lines().any(|l| l.contains("ERROR")),
        "no error line:\n{log}"
    );
}

/// A token put in the path by mistake (`/ws;token=…` for `/ws?token=…`, or pasted where
/// an id goes) is answered 404, and its access line used to carry the whole token.
#[actix_web::test]
async fn a_token_put_in_the_path_by_mistake_is_not_logged() {
    let served = Served::start("info");
    let client = reqwest::Client::new();
    let nurse = token("alice", "nurse", None);
    for (path, request_id) in [
        (format!("/ws;token={nurse}"), "path-token-0001"),
        (format!("/api/v1/alerts/{nurse}"), "path-token-0002"),
    ] {
        let resp = client
            .get(format!("{}{path}", served.url))
            .bearer_auth(&nurse)
            .header("X-Request-Id", request_id)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 404, "{path}");
        let line = served
            .line_with(&["404", &format!("request_id={request_id}")])
            .await;
        assert!(line.contains("<redacted>"), "{line}");
    }
    let log = served.lines().join("\n");
    let signature = nurse.rsplit('.').next().expect("signature");
    assert!(!log.contains(signature), "the token is in the log:\n{log}");
}

/// An alert's `data` is stored only after validation, so a row that no longer parses was
/// changed outside Vigil. It used to be answered as `{}` without a word; the alert is
/// still answered (its other fields are intact), and the damage is logged as an error.
#[actix_web::test]
async fn stored_data_damaged_outside_vigil_is_logged_not_hidden() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let served = Served::start_on_sqlite("info");
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/api/v1/alerts", served.url))
        .bearer_auth(service())
        .json(&alert_body("123", "high"))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("the alert");
    let id = created["id"].as_str().expect("id").to_owned();
    let file = served
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite file");
    let mut other = SqliteConnection::establish(file).expect("open");
    // The server's checkpointer or writer may hold a lock at that instant: wait for it,
    // as any other process writing the file would (this had failed "database is locked").
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut other)
        .expect("busy timeout");
    diesel::sql_query("UPDATE alerts SET data = '{not json'")
        .execute(&mut other)
        .expect("damage the row");
    let fetched: serde_json::Value = client
        .get(format!("{}/api/v1/alerts/{id}", served.url))
        .bearer_auth(admin())
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("the alert");
    assert_eq!(fetched["data"], serde_json::json!({}), "{fetched}");
    assert_eq!(fetched["id"], created["id"], "{fetched}");
    served
        .line_with(&[
            "ERROR",
            &format!("alert {id} has stored data that is not JSON"),
        ])
        .await;
}
