//! `GET /api/v1/alerts/stream`: the wire format (WHATWG Server-sent events), who may open
//! which stream, and how a stream follows the world while it is open (heartbeats, token
//! expiry, care-team changes, clean-up).

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::*;

/// Raw `GET` of the stream, for answers that are not streams (401, 403).
async fn stream_get(app: &TestApp, bearer: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(&format!("/api/v1/alerts/stream?{query}")));
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    req.send().await.expect("GET stream")
}

/// Opens a stream that must be accepted and returns it with its `connected` data.
async fn open_ok(app: &TestApp, who: &str, query: &str, what: &str) -> (SseClient, Value) {
    let mut sse = app.sse(who, query).await;
    assert_eq!(sse.status, 200, "{what}: stream refused");
    let connected = sse.connected().await;
    (sse, connected)
}

fn data(event: &eventsource_stream::Event) -> Value {
    serde_json::from_str(&event.data)
        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", event.data))
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[actix_web::test]
async fn the_stream_has_event_stream_headers_and_opens_with_retry_then_connected() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let nurse = token("alice", "nurse", None);
    let resp = stream_get(&app, Some(&nurse), "patient_id=123").await;
    assert_eq!(resp.status(), 200);
    let header = |name: &str| header_text(resp.headers(), name);
    assert!(
        header("content-type").starts_with("text/event-stream"),
        "{}",
        header("content-type")
    );
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(
        header("x-accel-buffering"),
        "no",
        "proxies must not buffer the stream"
    );

    // Read raw bytes until the first complete event block after the opening.
    let mut body = String::new();
    let mut chunks = resp.bytes_stream();
    while !body.contains("event: connected")
        || !body
            .split("event: connected")
            .nth(1)
            .is_some_and(|rest| rest.contains("\n\n"))
    {
        let chunk = tokio::time::timeout(WAIT, chunks.next())
            .await
            .expect("bytes in time");
        let chunk = chunk.expect("stream still open").expect("chunk");
        body.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("retry: 3000"),
        "the first line announces the reconnection delay: {body:?}"
    );
    let block: Vec<&str> = body
        .split("\n\n")
        .find(|b| b.contains("event: connected"))
        .expect("connected block")
        .lines()
        .filter(|l| !l.starts_with("retry:"))
        .collect();
    assert_eq!(block.first(), Some(&"event: connected"), "{block:?}");
    let data_lines: Vec<&&str> = block.iter().filter(|l| l.starts_with("data:")).collect();
    assert_eq!(data_lines.len(), 1, "data is one line of JSON: {block:?}");
    assert!(
        !block.iter().any(|l| l.starts_with("id:")),
        "connected carries no id (it must not move Last-Event-ID)"
    );
    let connected: Value =
        serde_json::from_str(data_lines[0].trim_start_matches("data:").trim()).expect("JSON");
    assert!(connected["connection_id"].is_string(), "{connected}");
    assert_eq!(connected["user_id"], "alice");
    assert_eq!(connected["role"], "nurse");
    assert_eq!(connected["patients"], serde_json::json!(["123"]));
    assert_eq!(connected["heartbeat_seconds"], 1);
    assert!(is_rfc3339(&connected["server_time"]), "{connected}");
}

#[actix_web::test]
async fn a_stream_without_a_token_or_with_a_bad_one_is_a_401_problem() {
    let app = spawn_app().await;
    expect_problem(stream_get(&app, None, "").await, 401, "no token").await;
    expect_problem(
        stream_get(&app, Some("not.a.jwt"), "").await,
        401,
        "garbage token",
    )
    .await;
    let expired = token_expiring(
        "alice",
        "nurse",
        None,
        chrono::Utc::now().timestamp() - 3600,
    );
    expect_problem(
        stream_get(&app, Some(&expired), "").await,
        401,
        "expired token",
    )
    .await;
    let wrong_key = vigil::auth::Signer::hs256("some-other-secret-0123456789abcdef")
        .sign(&vigil::auth::Claims {
            sub: "alice".into(),
            role: "admin".into(),
            patient_id: None,
            exp: chrono::Utc::now().timestamp() + 3600,
            iat: None,
            iss: None,
            aud: None,
        })
        .expect("sign");
    expect_problem(
        stream_get(&app, Some(&wrong_key), "").await,
        401,
        "token signed with another key",
    )
    .await;
}

#[actix_web::test]
async fn heartbeats_arrive_without_an_id_while_nothing_happens() {
    let app = spawn_app().await;
    let (mut sse, _) = open_ok(&app, &admin(), "patient_id=*", "admin").await;
    for n in 0..2 {
        let beat = sse
            .until(Duration::from_secs(5), |e| e.event == "heartbeat")
            .await;
        assert!(
            beat.id.is_empty(),
            "heartbeat #{n} must not carry an id: {beat:?}"
        );
        assert!(
            is_rfc3339(&data(&beat)["timestamp"]),
            "heartbeat #{n}: {}",
            beat.data
        );
    }
}

#[actix_web::test]
async fn a_raised_alert_arrives_with_its_seq_as_id_and_exactly_the_alert_as_data() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let (mut sse, _) = open_ok(
        &app,
        &token("alice", "nurse", None),
        "patient_id=123",
        "nurse",
    )
    .await;
    let alert = app.raise("123", "critical").await;
    let event = sse.next_alert_event().await;
    assert_eq!(event.event, "alert");
    assert_eq!(
        event.id,
        alert["seq"].to_string(),
        "id: is the event sequence number"
    );
    assert_eq!(
        data(&event),
        alert,
        "data is the alert as the 201 answered it"
    );
    assert!(
        !event.data.contains('\n'),
        "data is one line of compact JSON"
    );
}

#[actix_web::test]
async fn a_nurse_on_patient_a_never_receives_patient_bs_alert() {
    // Threat: a clinician seeing alerts about a patient outside their care team.
    let app = spawn_app().await;
    app.assign("pat-a", "alice").await;
    app.assign("pat-b", "bob").await;
    let nurse = token("alice", "nurse", None);
    let (mut explicit, _) = open_ok(&app, &nurse, "patient_id=pat-a", "explicit").await;
    let (mut implicit, connected) = open_ok(&app, &nurse, "", "whole scope").await;
    assert_eq!(connected["patients"], serde_json::json!(["pat-a"]));

    let for_b = app.raise("pat-b", "critical").await;
    let for_a = app.raise("pat-a", "low").await;
    for sse in [&mut explicit, &mut implicit] {
        let event = sse.next_alert_event().await;
        assert_eq!(
            data(&event)["id"],
            for_a["id"],
            "B's alert (seq {}) leaked",
            for_b["seq"]
        );
    }
}

#[actix_web::test]
async fn stats_return_to_zero_sse_connections_after_the_client_drops() {
    // A heartbeat far beyond the wait: the close itself must be noticed, not a failed write.
    let app = spawn_app_with(|c| c.heartbeat = Duration::from_secs(3600)).await;
    let (mut sse, _) = open_ok(&app, &admin(), "", "admin").await;
    let stats = app
        .wait_for_stats("one stream", |s| s["connections"]["sse"] == 1)
        .await;
    assert_eq!(stats["connections"]["by_role"]["admin"], 1);
    sse.close();
    let stats = app
        .wait_for_stats("no streams", |s| s["connections"]["sse"] == 0)
        .await;
    let by_role = stats["connections"]["by_role"]
        .as_object()
        .expect("by_role");
    assert_eq!(by_role.len(), 7, "every role is listed: {stats}");
    assert!(by_role.values().all(|n| n == 0), "{stats}");
}

#[actix_web::test]
async fn each_role_may_open_exactly_the_streams_its_scope_allows() {
    let app = spawn_app().await;
    let care_roles = ["doctor", "nurse", "caregiver", "dispatcher"];
    for role in care_roles {
        app.assign("p-1", &format!("{role}-user")).await;
    }
    let forbidden = |who: String, query: &'static str, what: String| {
        let app = &app;
        async move { expect_problem(stream_get(app, Some(&who), query).await, 403, &what).await }
    };

    let (_all, c) = open_ok(&app, &admin(), "patient_id=*", "admin wildcard").await;
    assert_eq!(c["patients"], serde_json::json!(["*"]));
    let (_any, c) = open_ok(&app, &admin(), "patient_id=anyone", "admin, any patient").await;
    assert_eq!(c["patients"], serde_json::json!(["anyone"]));

    let patient = token("pat", "patient", Some("p-1"));
    let (_own, c) = open_ok(&app, &patient, "patient_id=p-1", "patient, own id").await;
    assert_eq!(c["patients"], serde_json::json!(["p-1"]));
    let (_implicit, c) = open_ok(&app, &patient, "", "patient, no patient_id").await;
    assert_eq!(c["patients"], serde_json::json!(["p-1"]));
    forbidden(
        patient.clone(),
        "patient_id=p-2",
        "patient, other id".into(),
    )
    .await;
    forbidden(patient.clone(), "patient_id=*", "patient, wildcard".into()).await;

    for query in ["", "patient_id=p-1", "patient_id=*"] {
        forbidden(service(), query, format!("service, {query:?}")).await;
    }

    for role in care_roles {
        let who = token(&format!("{role}-user"), role, None);
        let (_s, c) = open_ok(&app, &who, "patient_id=p-1", &format!("{role}, assigned")).await;
        assert_eq!(c["role"], role);
        assert_eq!(c["patients"], serde_json::json!(["p-1"]));
        forbidden(who.clone(), "patient_id=p-2", format!("{role}, unassigned")).await;
        forbidden(
            who.clone(),
            "patient_id=p-1,p-2",
            format!("{role}, one unassigned of two"),
        )
        .await;
        forbidden(who.clone(), "patient_id=*", format!("{role}, wildcard")).await;
        let other = if role == "nurse" { "doctor" } else { "nurse" };
        let narrowed = format!("role={role}&patient_id=p-1");
        let (_r, _) = open_ok(
            &app,
            &who,
            &narrowed,
            &format!("{role}, role param naming its own role"),
        )
        .await;
        let resp = stream_get(&app, Some(&who), &format!("role={other}")).await;
        expect_problem(resp, 403, &format!("{role} asking for role {other}")).await;
        let resp = stream_get(&app, Some(&who), "role=admin&patient_id=*").await;
        expect_problem(resp, 403, &format!("{role} escalating to admin by query")).await;
        // Given twice, neither value is picked silently (the first used to win).
        let twice = format!("role={role}&role=admin");
        let resp = stream_get(&app, Some(&who), &twice).await;
        let problem = expect_problem(resp, 422, &format!("{role}: {twice}")).await;
        assert_eq!(error_fields(&problem), vec!["role"]);
    }
}

#[actix_web::test]
async fn a_token_that_expires_mid_stream_ends_it_with_auth_expired() {
    // Threat: a revoked/expired session keeps receiving patient data on an open stream.
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    // Seconds, whole: a 2 s token left about one to open the stream on a loaded machine.
    let exp = chrono::Utc::now().timestamp() + 4;
    let short = token_expiring("alice", "nurse", None, exp);
    let (mut sse, _) = open_ok(&app, &short, "patient_id=123", "short-lived token").await;
    let last = sse.until(WAIT, |e| e.event != "heartbeat").await;
    assert_eq!(last.event, "auth_expired", "{last:?}");
    assert!(
        chrono::Utc::now().timestamp() >= exp,
        "ended before the token expired"
    );
    assert!(
        data(&last).is_object(),
        "auth_expired data is JSON: {}",
        last.data
    );
    assert!(
        sse.next_event(WAIT).await.is_none(),
        "the stream ends after auth_expired"
    );
    app.wait_for_stats("the expired stream is gone", |s| {
        s["connections"]["sse"] == 0
    })
    .await;
    app.raise("123", "critical").await;
    let stats = app
        .wait_for_stats("the alert was published", |s| s["events_published"] == 1)
        .await;
    assert_eq!(
        stats["deliveries"], 0,
        "nothing was delivered to the expired stream"
    );
}

#[actix_web::test]
async fn a_stream_without_patient_id_follows_care_team_changes_live() {
    let app = spawn_app().await;
    app.assign("anchor", "alice").await;
    let (mut sse, connected) = open_ok(&app, &token("alice", "nurse", None), "", "nurse").await;
    assert_eq!(connected["patients"], serde_json::json!(["anchor"]));
    app.raise("newcomer", "high").await;
    app.raise("anchor", "low").await;
    let event = sse.next_alert_event().await;
    assert_eq!(
        data(&event)["patient_id"],
        "anchor",
        "not yet on newcomer's team"
    );

    // The stream is told first (newcomer's alert raised before is open, and no event
    // of this stream will ever carry it): `scope_changed`, then the live events.
    app.assign("newcomer", "alice").await;
    app.raise("newcomer", "high").await;
    assert_eq!(
        data(&scope_event(&mut sse).await),
        serde_json::json!({"patients": ["anchor", "newcomer"], "added": ["newcomer"], "removed": []})
    );
    let event = sse.next_alert_event().await;
    assert_eq!(
        data(&event)["patient_id"],
        "newcomer",
        "assignment applies to the open stream"
    );

    app.unassign("newcomer", "alice").await;
    app.raise("newcomer", "critical").await;
    app.raise("anchor", "medium").await;
    assert_eq!(
        data(&scope_event(&mut sse).await),
        serde_json::json!({"patients": ["anchor"], "added": [], "removed": ["newcomer"]})
    );
    let event = sse.next_alert_event().await;
    assert_eq!(
        data(&event)["patient_id"],
        "anchor",
        "removal applies to the open stream"
    );

    // A change that alters nothing of this stream says nothing.
    app.assign("anchor", "alice").await;
    app.assign("elsewhere", "bob").await;
    app.raise("anchor", "info").await;
    let event = sse.until(WAIT, |e| e.event != "heartbeat").await;
    assert_eq!(
        event.event, "alert",
        "no scope_changed for a no-op: {event:?}"
    );
}

/// The next event that is not a heartbeat, which must be `scope_changed`.
async fn scope_event(sse: &mut SseClient) -> eventsource_stream::Event {
    let event = sse.until(WAIT, |e| e.event != "heartbeat").await;
    assert_eq!(event.event, "scope_changed", "{event:?}");
    event
}

#[actix_web::test]
async fn a_stream_naming_its_patients_is_told_when_one_leaves_and_rejoins_the_care_team() {
    let app = spawn_app().await;
    app.assign("a", "alice").await;
    app.assign("b", "alice").await;
    let (mut sse, _) = open_ok(
        &app,
        &token("alice", "nurse", None),
        "patient_id=a",
        "nurse",
    )
    .await;
    app.unassign("b", "alice").await;
    app.unassign("a", "alice").await;
    assert_eq!(
        data(&scope_event(&mut sse).await),
        serde_json::json!({"patients": [], "added": [], "removed": ["a"]}),
        "b was never on this stream: only a's removal is told"
    );
    app.assign("a", "alice").await;
    assert_eq!(
        data(&scope_event(&mut sse).await),
        serde_json::json!({"patients": ["a"], "added": ["a"], "removed": []})
    );
}

#[actix_web::test]
async fn a_care_team_change_racing_the_stream_opening_is_not_lost() {
    // Threat: a clinician removed from a care team while their console (re)connects keeps
    // receiving that patient's alerts: the stream read its scope before the removal
    // committed and registered after the manager had applied it to the open streams.
    let app = spawn_app().await;
    let (mut leaked, mut missed) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let (user, gone, added) = (format!("u-{i}"), format!("gone-{i}"), format!("added-{i}"));
        app.assign("anchor", &user).await;
        app.assign(&gone, &user).await;
        let nurse = token(&user, "nurse", None);
        let open = async {
            let (sse, _) = open_ok(&app, &nurse, "", "racing stream").await;
            sse
        };
        let (mut removal_race, ()) = tokio::join!(open, app.unassign(&gone, &user));
        let (mut addition_race, ()) = tokio::join!(
            open_ok(&app, &nurse, "", "racing stream"),
            app.assign(&added, &user)
        );
        app.raise(&gone, "critical").await;
        app.raise(&added, "high").await;
        app.raise("anchor", "low").await;
        // The first stream also follows the later assignment; it must only skip `gone`.
        if data(&removal_race.next_alert_event().await)["patient_id"] == gone.as_str() {
            leaked.push(i);
        }
        if data(&addition_race.0.next_alert_event().await)["patient_id"] != added.as_str() {
            missed.push(i);
        }
    }
    assert!(
        leaked.is_empty(),
        "streams still received a removed patient's alerts in rounds {leaked:?}"
    );
    assert!(
        missed.is_empty(),
        "streams missed a newly assigned patient in rounds {missed:?}"
    );
}

/// All at once, 10,000 streams' heartbeats were 10,000 socket writes in one burst, and an
/// alert raised during it waited 60–80 ms behind them. Each stream still gets one per
/// period, but the streams are served in groups, each at its own tick — so streams
/// opened one after another receive heartbeats stamped at different moments.
#[actix_web::test]
async fn heartbeats_are_spread_over_the_period_not_sent_to_every_stream_at_once() {
    let app = spawn_app().await;
    let mut streams = Vec::new();
    for i in 0..32 {
        let (sse, _) = open_ok(
            &app,
            &token(&format!("beat-{i}"), "admin", None),
            "",
            "stream",
        )
        .await;
        streams.push(sse);
    }
    let mut stamps = std::collections::BTreeSet::new();
    for sse in &mut streams {
        let beat = sse.until(WAIT, |e| e.event == "heartbeat").await;
        assert!(is_rfc3339(&data(&beat)["timestamp"]), "{}", beat.data);
        stamps.insert(data(&beat)["timestamp"].to_string());
    }
    // Sent together, they would share one or two ticks (one if no tick fell while the
    // streams were opening); spread, nearly every stream has a tick of its own.
    assert!(
        stamps.len() >= streams.len() / 2,
        "32 streams' first heartbeats came from only {} ticks: {stamps:?}",
        stamps.len()
    );
}

/// Connections start with small I/O buffers (vendor/actix-http.patch) that must grow for
/// large messages: an alert at every size limit — an 18 KiB request, a larger event —
/// reaches an SSE and a WebSocket subscriber whole, and the stream carries on after it.
#[actix_web::test]
async fn an_alert_at_every_size_limit_reaches_sse_and_websocket_subscribers_whole() {
    let app = spawn_app().await;
    let (mut sse, _) = open_ok(&app, &admin(), "patient_id=123", "admin").await;
    let mut ws = app.ws(&admin(), "patient_id=123").await;
    assert_eq!(ws.until_type("connected").await["type"], "connected");

    let at_limits = serde_json::json!({
        "patient_id": "123", "severity": "critical", "kind": "k".repeat(64),
        "title": "t".repeat(200), "message": "m".repeat(2000), "source": "s".repeat(128),
        "data": {"blob": "x".repeat(16 * 1024 - 20)},
    });
    let resp = app
        .post_json("/api/v1/alerts", &service(), &at_limits)
        .await;
    assert_eq!(resp.status(), 201, "values at the limits are accepted");
    let big: Value = resp.json().await.expect("201 JSON");
    let small = app.raise("123", "low").await;

    let event = sse.next_alert_event().await;
    assert_eq!(data(&event), big, "SSE: the large alert, byte for byte");
    assert_eq!(
        data(&sse.next_alert_event().await),
        small,
        "SSE: then the next"
    );
    assert_eq!(
        ws.until_type("alert").await["alert"],
        big,
        "WebSocket: the large alert"
    );
    assert_eq!(
        ws.until_type("alert").await["alert"],
        small,
        "WebSocket: then the next"
    );
}

/// HTTP/1.0 has no chunked encoding: a 1.0 client (or a proxy speaking 1.0 to its
/// backends, nginx's default) would read chunk sizes as part of the events. The stream
/// goes out as it is, without `Transfer-Encoding`, and ends with the connection.
#[actix_web::test]
async fn an_http_1_0_client_gets_the_stream_without_chunked_encoding() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let request = format!(
        "GET /api/v1/alerts/stream?patient_id=123 HTTP/1.0\r\nAuthorization: Bearer {}\r\n\r\n",
        admin()
    );
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let mut raised = None;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if raised.is_none() && text.contains("event: connected") {
            raised = Some(app.raise("123", "high").await);
        }
        if text.contains("event: alert\n") && text.ends_with("\n\n") {
            break;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let n = tokio::time::timeout(left, socket.read(&mut buf))
            .await
            .expect("the stream within the wait")
            .expect("read");
        assert!(n > 0, "closed early: {text}");
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        body.starts_with("retry: 3000\n\nevent: connected\n"),
        "{body}"
    );
    let alert = raised.expect("raised");
    let id = alert["id"].as_str().expect("id");
    assert!(
        body.contains(&format!("id: {}\nevent: alert\ndata: {{", alert["seq"]))
            && body.contains(id),
        "the alert as a plain event: {body}"
    );
}
