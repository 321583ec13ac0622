//! Resuming a legacy WebSocket with `last_event_id` (query) or `Last-Event-ID` (header):
//! the missed events in scope, exactly once, in order, then live — the SSE promise on
//! the legacy transport — and a `reset` frame, never a partial replay, when the id
//! cannot be honoured or the missed events exceed `VIGIL_WS_REPLAY_MAX_KIB`.

use std::num::NonZeroUsize;

use serde_json::Value;

use crate::helpers::*;
use crate::replay::{
    ResumingClient, id_of, reconnecting_ten_times_during_four_concurrent_publishers,
};

fn nurse() -> String {
    token("alice", "nurse", None)
}

/// A nurse's session on `/ws?{query}`, past its `connected` frame.
async fn nurse_session(app: &TestApp, query: &str) -> WsClient {
    let mut ws = app.ws(&nurse(), query).await;
    let connected = ws.next_json(WAIT).await.expect("a connected frame");
    assert_eq!(
        connected["type"], "connected",
        "the first frame: {connected}"
    );
    ws
}

/// The next frame, which must be an event: its id and the frame.
async fn next_event(ws: &mut WsClient) -> (i64, Value) {
    let frame = ws.next_json(WAIT).await.expect("session open");
    let kind = frame["type"].as_str().unwrap_or_default();
    assert!(
        kind == "alert" || kind == "alert_updated",
        "expected an event frame, got {frame}"
    );
    let id = frame["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("an event frame carries its sequence number: {frame}"));
    (id, frame)
}

fn alert_id(frame: &Value) -> String {
    frame["alert"]["id"].as_str().expect("alert id").to_owned()
}

fn seq_of(alert: &Value) -> i64 {
    alert["seq"].as_i64().expect("alert seq")
}

#[actix_web::test]
async fn a_dashboard_that_reconnects_with_last_event_id_gets_exactly_the_missed_events_then_live() {
    let app = spawn_app().await;
    app.assign("ward", "alice").await;
    let mut ws = nurse_session(&app, "").await;
    let first = app.raise("ward", "high").await;
    let (last, frame) = next_event(&mut ws).await;
    assert_eq!(alert_id(&frame), id_of(&first));
    drop(ws);

    // Missed while away: a new alert, one out of scope, and an acknowledgment.
    let missed = app.raise("ward", "critical").await;
    app.raise("elsewhere", "critical").await;
    let ack = app
        .ack(&nurse(), &id_of(&first), "acknowledged", Some("on it"))
        .await;
    assert_eq!(ack.status(), 200);

    let mut back = nurse_session(&app, &format!("last_event_id={last}")).await;
    let (a, raised) = next_event(&mut back).await;
    assert_eq!(
        (raised["type"].as_str(), alert_id(&raised)),
        (Some("alert"), id_of(&missed)),
        "the missed alert first: {raised}"
    );
    let (b, updated) = next_event(&mut back).await;
    assert_eq!(
        (updated["type"].as_str(), alert_id(&updated)),
        (Some("alert_updated"), id_of(&first)),
        "then the missed acknowledgment: {updated}"
    );
    assert_eq!(updated["acknowledgment"]["status"], "acknowledged");
    assert!(last < a && a < b, "in order after {last}: {a}, {b}");

    let live = app.raise("ward", "low").await;
    let (c, frame) = next_event(&mut back).await;
    assert_eq!(
        alert_id(&frame),
        id_of(&live),
        "then live, the out-of-scope alert never sent"
    );
    assert!(c > b);
    let stats = app.stats().await;
    assert_eq!(stats["resumes"], 1);
    assert_eq!(stats["replayed_events"], 2, "the two missed events only");
}

#[actix_web::test]
async fn the_last_event_id_header_resumes_a_websocket_and_wins_over_the_query() {
    let app = spawn_app().await;
    app.assign("ward", "alice").await;
    let raised = [
        app.raise("ward", "high").await,
        app.raise("ward", "high").await,
        app.raise("ward", "high").await,
    ];
    let url = format!(
        "ws://127.0.0.1:{}/ws?token={}&last_event_id=0",
        app.port,
        nurse()
    );
    let header = seq_of(&raised[1]).to_string();
    let mut ws = WsClient::connect_with(&url, &[("last-event-id", &header)]).await;
    let connected = ws.next_json(WAIT).await.expect("connected");
    assert_eq!(connected["type"], "connected");
    let (_, frame) = next_event(&mut ws).await;
    assert_eq!(
        alert_id(&frame),
        id_of(&raised[2]),
        "resumed after the header's id, not from 0"
    );
    let live = app.raise("ward", "low").await;
    let (_, frame) = next_event(&mut ws).await;
    assert_eq!(alert_id(&frame), id_of(&live), "then live, nothing doubled");
}

#[actix_web::test]
async fn a_last_event_id_that_is_not_a_number_or_is_ahead_of_the_log_gets_a_reset_frame_then_live()
{
    // Threat: a dashboard resuming from an id this server never issued silently gets a
    // partial history (and believes it is complete).
    let app = spawn_app().await;
    app.assign("ward", "alice").await;
    let mut head = seq_of(&app.raise("ward", "high").await);
    for (bad, why) in [
        ("abc", "not a decimal integer"),
        ("-1", "negative"),
        ("", "empty"),
        ("999999", "ahead of the head"),
        ("%201%20", "spaces around a number"),
        ("%091", "a tab before a number"),
    ] {
        let mut ws = nurse_session(&app, &format!("last_event_id={bad}")).await;
        let reset = ws.next_json(WAIT).await.expect("session open");
        assert_eq!(reset["type"], "reset", "{why}: {reset}");
        assert!(
            reset["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{why}: {reset}"
        );
        assert_eq!(reset["oldest_id"], 1, "{why}: {reset}");
        assert_eq!(reset["head"], head, "{why}: {reset}");
        assert_eq!(
            reset["id"], head,
            "{why}: the client continues from the head"
        );
        assert_eq!(reset["reload"], "/api/v1/alerts", "{why}: {reset}");
        let live = app.raise("ward", "low").await;
        let (_, frame) = next_event(&mut ws).await;
        assert_eq!(
            alert_id(&frame),
            id_of(&live),
            "{why}: live after the reset, no partial replay"
        );
        head = seq_of(&live);
    }
}

/// Raises an alert for `ward` whose `data` carries ~10 KB, so its frame is 10–11 KB.
async fn raise_10_kb(app: &TestApp) -> Value {
    let mut body = alert_body("ward", "high");
    body["data"] = serde_json::json!({"trace": "x".repeat(10_000)});
    let resp = app.post_json("/api/v1/alerts", &service(), &body).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.expect("alert JSON")
}

#[actix_web::test]
async fn missed_events_past_vigil_ws_replay_max_kib_get_a_reset_frame_not_a_partial_replay() {
    // Threat: a dashboard (or a token) resuming from far back while not reading makes
    // the server hold the whole history in the session's unbounded write buffer.
    let budget = 32 * 1024;
    let app = spawn_app_with(|c| {
        c.ws_replay_max_bytes = NonZeroUsize::new(budget).expect("> 0");
    })
    .await;
    app.assign("ward", "alice").await;
    let from = seq_of(&app.raise("ward", "high").await);
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(id_of(&raise_10_kb(&app).await));
    }

    let mut ws = nurse_session(&app, &format!("last_event_id={from}")).await;
    let mut replayed = Vec::new();
    let mut bytes = 0;
    for _ in 0..3 {
        let (_, frame) = next_event(&mut ws).await;
        bytes += frame.to_string().len();
        replayed.push(alert_id(&frame));
    }
    assert_eq!(
        replayed, missed,
        "three frames within the budget are replayed"
    );
    assert!(
        bytes <= budget && bytes + bytes / 3 > budget,
        "the test's premise: three frames ({bytes} bytes) fit in {budget}, four do not"
    );
    drop(ws);

    let head = seq_of(&raise_10_kb(&app).await);
    let mut ws = nurse_session(&app, &format!("last_event_id={from}")).await;
    let reset = ws.next_json(WAIT).await.expect("session open");
    assert_eq!(
        reset["type"], "reset",
        "four missed, room for three: {reset}"
    );
    assert!(
        reset["reason"]
            .as_str()
            .is_some_and(|r| r.contains("VIGIL_WS_REPLAY_MAX_KIB")),
        "{reset}"
    );
    assert_eq!((&reset["head"], &reset["id"]), (&head.into(), &head.into()));
    let live = app.raise("ward", "low").await;
    let (_, frame) = next_event(&mut ws).await;
    assert_eq!(
        alert_id(&frame),
        id_of(&live),
        "none of the four missed is sent: the dashboard reloads them over HTTP"
    );
    let stats = app.stats().await;
    assert_eq!(stats["resumes"], 2);
    assert_eq!(
        stats["replayed_events"], 3,
        "only the first resume replayed"
    );
}

#[actix_web::test]
async fn a_long_replay_within_the_budget_arrives_whole_across_read_batches() {
    // The replay is read 50 rows at a time: 120 missed events cross two batch seams.
    let app = spawn_app().await;
    app.assign("ward", "alice").await;
    let from = seq_of(&app.raise("ward", "high").await);
    let mut missed = Vec::new();
    for i in 0..120 {
        let patient = if i % 7 == 0 { "elsewhere" } else { "ward" };
        let alert = app.raise(patient, "low").await;
        if patient == "ward" {
            missed.push(id_of(&alert));
        }
    }
    let mut ws = nurse_session(&app, &format!("last_event_id={from}")).await;
    let mut replayed = Vec::new();
    for _ in 0..missed.len() {
        replayed.push(alert_id(&next_event(&mut ws).await.1));
    }
    assert_eq!(replayed, missed);
    let live = app.raise("ward", "low").await;
    assert_eq!(alert_id(&next_event(&mut ws).await.1), id_of(&live));
}

impl ResumingClient for WsClient {
    async fn resume(app: &TestApp, last: i64) -> Self {
        nurse_session(app, &format!("last_event_id={last}")).await
    }

    async fn next_alert(&mut self) -> (i64, Value) {
        let (id, frame) = next_event(self).await;
        (id, frame["alert"].clone())
    }
}

#[actix_web::test]
async fn a_dashboard_reconnecting_ten_times_during_four_concurrent_publishers_misses_nothing_and_sees_nothing_twice()
 {
    reconnecting_ten_times_during_four_concurrent_publishers::<WsClient>().await;
}

#[actix_web::test]
async fn after_subscribed_a_resuming_dashboard_gets_no_missed_event_of_a_patient_it_left() {
    // A dashboard reconnecting with `last_event_id` sends its `subscribe` at once, while
    // the server is still reading the missed events: those of the patients it no longer
    // watches must not follow `subscribed`, and those of the one it keeps all arrive.
    let app = spawn_app().await;
    app.assign("ward-a", "alice").await;
    app.assign("ward-b", "alice").await;
    let from = seq_of(&app.raise("ward-a", "high").await);
    let mut kept = Vec::new();
    for i in 0..300 {
        let patient = if i % 2 == 0 { "ward-a" } else { "ward-b" };
        let alert = app.raise(patient, "low").await;
        if patient == "ward-a" {
            kept.push(id_of(&alert));
        }
    }
    for attempt in 0..3 {
        let mut ws = nurse_session(&app, &format!("last_event_id={from}")).await;
        ws.send_json(&serde_json::json!({"type": "subscribe", "patient_ids": ["ward-a"]}))
            .await;
        let live = app.raise("ward-a", "low").await;
        let (mut subscribed, mut received) = (false, Vec::new());
        while !subscribed || received.last() != Some(&id_of(&live)) {
            let frame = ws.next_json(WAIT).await.expect("session open");
            match frame["type"].as_str() {
                Some("subscribed") => subscribed = true,
                Some("alert") => {
                    let patient = frame["alert"]["patient_id"].as_str();
                    assert!(
                        !subscribed || patient == Some("ward-a"),
                        "attempt {attempt}: after `subscribed` [ward-a], {frame}"
                    );
                    if patient == Some("ward-a") {
                        received.push(alert_id(&frame));
                    }
                }
                _ => panic!("attempt {attempt}: unexpected {frame}"),
            }
        }
        assert_eq!(received.pop(), Some(id_of(&live)));
        assert_eq!(
            received, kept,
            "attempt {attempt}: every missed ward-a alert, once"
        );
        kept.push(id_of(&live));
    }
}
