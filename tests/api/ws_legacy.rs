//! The legacy WebSocket transport (`GET /ws`): the same events as SSE, in-socket acks
//! through the same rules as HTTP, `subscribe`, bad frames, ping/timeout, and the three
//! `VIGIL_WS_MODE` phases (DESIGN.md "WebSocket protocol").

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use vigil::config::WsMode;

use crate::helpers::*;

/// A WebSocket session past its `connected` frame, and that frame.
async fn ws_ready(app: &TestApp, who: &str, query: &str) -> (WsClient, Value) {
    let mut ws = app.ws(who, query).await;
    let connected = ws.next_json(WAIT).await.expect("a connected frame");
    assert_eq!(
        connected["type"], "connected",
        "the first frame: {connected}"
    );
    (ws, connected)
}

/// Reads frames until one of each `kinds` arrived; returns them by kind. Any other
/// frame type in between fails the test.
async fn frames_of(ws: &mut WsClient, kinds: &[&str]) -> Vec<(String, Value)> {
    let mut got: Vec<(String, Value)> = Vec::new();
    while got.len() < kinds.len() {
        let frame = ws.next_json(WAIT).await.expect("session open");
        let kind = frame["type"].as_str().unwrap_or_default().to_owned();
        assert!(
            kinds.contains(&kind.as_str()) && !got.iter().any(|(k, _)| *k == kind),
            "unexpected frame {frame}"
        );
        got.push((kind, frame));
    }
    got
}

fn frame<'a>(frames: &'a [(String, Value)], kind: &str) -> &'a Value {
    &frames
        .iter()
        .find(|(k, _)| k == kind)
        .expect("frame present")
        .1
}

fn sse_data(event: &eventsource_stream::Event) -> Value {
    serde_json::from_str(&event.data).expect("data JSON")
}

async fn nurse_on_ward(app: &TestApp) -> String {
    app.assign("ward", "alice").await;
    token("alice", "nurse", None)
}

#[actix_web::test]
async fn the_same_alert_reaches_an_sse_client_and_a_websocket_client() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let mut sse = app.sse(&nurse, "patient_id=ward").await;
    sse.connected().await;
    let (mut ws, connected) = ws_ready(&app, &nurse, "patient_id=ward").await;
    assert_eq!(connected["user_id"], "alice");
    assert_eq!(connected["role"], "nurse");
    assert_eq!(connected["patients"], json!(["ward"]));
    assert!(connected["connection_id"].is_string(), "{connected}");

    let alert = app.raise("ward", "critical").await;
    let over_ws = ws.next_json(WAIT).await.expect("alert frame");
    assert_eq!(
        over_ws,
        json!({"type": "alert", "id": alert["seq"], "alert": alert})
    );
    let over_sse = sse.next_alert_event().await;
    assert_eq!(over_sse.id, alert["seq"].to_string());
    assert_eq!(sse_data(&over_sse), alert);
}

#[actix_web::test]
async fn an_in_socket_ack_answers_ack_result_and_reaches_sse_clients_as_alert_updated() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let mut sse = app.sse(&nurse, "").await;
    sse.connected().await;
    let (mut ws, _) = ws_ready(&app, &nurse, "").await;
    let alert = app.raise("ward", "critical").await;
    assert_eq!(ws.until_type("alert").await["alert"]["id"], alert["id"]);
    assert_eq!(sse_data(&sse.next_alert_event().await)["id"], alert["id"]);

    let ack = json!({"type": "ack", "alert_id": alert["id"], "status": "acknowledged", "note": "on my way"});
    ws.send_json(&ack).await;
    let frames = frames_of(&mut ws, &["ack_result", "alert_updated"]).await;
    let result = frame(&frames, "ack_result");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["alert_id"], alert["id"]);
    assert_eq!(result["alert"]["status"], "acknowledged");

    let updated = sse.next_alert_event().await;
    assert_eq!(updated.event, "alert_updated");
    let body = sse_data(&updated);
    assert_eq!(
        updated.id,
        body["alert"]["last_seq"].to_string(),
        "id: is the update's sequence number"
    );
    assert_eq!(
        body["alert"], result["alert"],
        "SSE and the acker see the same state"
    );
    let a = &body["acknowledgment"];
    assert_eq!(
        (&a["user_id"], &a["role"], &a["status"], &a["note"]),
        (
            &json!("alice"),
            &json!("nurse"),
            &json!("acknowledged"),
            &json!("on my way")
        )
    );
    let over_ws = frame(&frames, "alert_updated");
    assert_eq!(over_ws["alert"], body["alert"]);
    assert_eq!(over_ws["id"].to_string(), updated.id);
}

#[actix_web::test]
async fn an_http_ack_reaches_websocket_clients_as_alert_updated() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let (mut ws, _) = ws_ready(&app, &nurse, "patient_id=ward").await;
    let alert = app.raise("ward", "high").await;
    ws.until_type("alert").await;
    let resp = app
        .ack(
            &admin(),
            alert["id"].as_str().expect("id"),
            "escalated",
            Some("paging the doctor"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("ack JSON");
    let updated = ws.next_json(WAIT).await.expect("alert_updated frame");
    let mut expected = answer.clone();
    expected["type"] = json!("alert_updated");
    expected["id"] = answer["alert"]["last_seq"].clone();
    assert_eq!(updated, expected);
}

#[actix_web::test]
async fn subscribe_narrows_the_session_and_an_out_of_scope_subscribe_changes_nothing() {
    // Threat: a dashboard widening its own scope by asking for foreign patients.
    let app = spawn_app().await;
    app.assign("ward-a", "alice").await;
    app.assign("ward-b", "alice").await;
    let nurse = token("alice", "nurse", None);
    let (mut ws, connected) = ws_ready(&app, &nurse, "").await;
    assert_eq!(connected["patients"], json!(["ward-a", "ward-b"]));

    ws.send_json(&json!({"type": "subscribe", "patient_ids": ["ward-a"]}))
        .await;
    assert_eq!(
        ws.next_json(WAIT).await,
        Some(json!({"type": "subscribed", "patient_ids": ["ward-a"]}))
    );
    for foreign in [
        json!(["elsewhere"]),
        json!(["ward-b", "elsewhere"]),
        json!(["*"]),
    ] {
        ws.send_json(&json!({"type": "subscribe", "patient_ids": foreign}))
            .await;
        let error = ws.next_json(WAIT).await.expect("error frame");
        assert_eq!(
            (&error["type"], &error["code"]),
            (&json!("error"), &json!("forbidden")),
            "{foreign}: {error}"
        );
    }
    // A misspelt field, a comma list in one element, or a blank one (`[""]` widened the
    // subscription to every patient in scope) is refused as `ack` refuses them: nothing
    // changes.
    for frame in [
        json!({"type": "subscribe", "patient_ids": ["ward-b"], "patient_id": "ward-a"}),
        json!({"type": "subscribe", "patient_ids": ["ward-a,ward-b"]}),
        json!({"type": "subscribe", "patient_ids": [""]}),
        json!({"type": "subscribe", "patient_ids": ["ward-a", " "]}),
    ] {
        ws.send_json(&frame).await;
        let error = ws.next_json(WAIT).await.expect("error frame");
        assert_eq!(error["code"], "invalid", "{frame}: {error}");
    }
    app.raise("elsewhere", "critical").await;
    app.raise("ward-b", "critical").await;
    let a = app.raise("ward-a", "low").await;
    let next = ws.next_json(WAIT).await.expect("alert");
    assert_eq!(
        next["alert"]["id"], a["id"],
        "only ward-a is subscribed: {next}"
    );
}

/// A token flooding `subscribe` frames (each one allowed: its own patient) had every
/// frame read the database and queue for the manager, whose mailbox every alert passes
/// through: alerts for everyone took seconds. A session applies one subscribe at a time,
/// and of those arriving meanwhile only the last: each earlier one is answered
/// `superseded`. Every frame is answered, the last one applies, and an alert raised
/// right after the burst arrives on the subscription it set.
#[actix_web::test]
async fn a_burst_of_subscribes_is_applied_one_at_a_time_and_the_last_one_wins() {
    let app = spawn_app().await;
    for bed in ["bed-1", "bed-2"] {
        app.assign(bed, "alice").await;
    }
    let nurse = token("alice", "nurse", None);
    let (mut ws, _) = ws_ready(&app, &nurse, "").await;
    // Within the session's frame budget (vigil::transport::ws::MAX_FRAMES_PER_SECOND).
    let burst: Vec<Value> = (0..90)
        .map(|i| {
            let bed = if i % 2 == 0 { "bed-1" } else { "bed-2" };
            json!({"type": "subscribe", "patient_ids": [bed]})
        })
        .collect();
    ws.send_burst(&burst).await;
    let (mut subscribed, mut superseded) = (Vec::new(), 0);
    while subscribed.len() + superseded < burst.len() {
        let frame = ws
            .next_json(WAIT)
            .await
            .expect("an answer to every subscribe");
        match (frame["type"].as_str(), frame["code"].as_str()) {
            (Some("subscribed"), _) => subscribed.push(frame["patient_ids"].clone()),
            (Some("error"), Some("superseded")) => superseded += 1,
            _ => panic!("unexpected frame: {frame}"),
        }
    }
    assert!(
        superseded > 0,
        "a burst is not applied frame by frame ({} applied)",
        subscribed.len()
    );
    assert_eq!(
        subscribed.last(),
        Some(&json!(["bed-2"])),
        "the last one wins"
    );
    app.raise("bed-1", "critical").await;
    let alert = app.raise("bed-2", "critical").await;
    let frame = ws.next_json(WAIT).await.expect("alert");
    assert_eq!(
        frame["alert"]["id"], alert["id"],
        "only bed-2 is subscribed: {frame}"
    );
}

/// A session flooding frames of any kind (here `ack`s for alerts that do not exist,
/// answered cheaply, but each one work on the worker thread other clients share) delayed
/// alerts for everyone on that thread by seconds. Past 100 frames in a second the session
/// is told why and closed (1008); other clients never notice.
#[actix_web::test]
async fn a_session_sending_more_than_its_frame_budget_is_closed_and_others_go_on() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let (mut calm, _) = ws_ready(&app, &nurse, "").await;
    let (mut flood, _) = ws_ready(&app, &admin(), "").await;
    let frames: Vec<Value> = (0..vigil::transport::ws::MAX_FRAMES_PER_SECOND + 50)
        .map(|_| json!({"type": "ack", "alert_id": uuid::Uuid::now_v7().to_string()}))
        .collect();
    flood.send_burst(&frames).await;
    let told = loop {
        let frame = flood
            .next_json(WAIT)
            .await
            .expect("told why before the close");
        if frame["type"] == "error" {
            break frame;
        }
        assert_eq!(frame["type"], "ack_result", "{frame}");
    };
    assert_eq!(told["code"], "too_many_frames", "{told}");
    let close = flood.closed(WAIT).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008, "closed for policy: {close:?}");

    let alert = app.raise("ward", "critical").await;
    let frame = calm.until_type("alert").await;
    assert_eq!(frame["alert"]["id"], alert["id"]);
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric_sample(&metrics, "vigil_ws_frames_total", &[("type", "flood")]),
        Some(1.0),
        "{metrics}"
    );
}

/// A dashboard must learn that its patients changed: a newly assigned patient's open
/// alerts were raised before and will never come as frames (the SSE `scope_changed`).
#[actix_web::test]
async fn a_care_team_change_tells_the_session_its_new_patients_before_their_frames() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let (mut ws, _) = ws_ready(&app, &nurse, "").await;
    app.assign("bed-9", "alice").await;
    let alert = app.raise("bed-9", "critical").await;
    assert_eq!(
        ws.next_json(WAIT).await,
        Some(
            json!({"type": "scope_changed", "patients": ["bed-9", "ward"], "added": ["bed-9"], "removed": []})
        )
    );
    let next = ws.next_json(WAIT).await.expect("alert");
    assert_eq!(
        (&next["type"], &next["alert"]["id"]),
        (&json!("alert"), &alert["id"])
    );
    app.unassign("ward", "alice").await;
    assert_eq!(
        ws.next_json(WAIT).await,
        Some(
            json!({"type": "scope_changed", "patients": ["bed-9"], "added": [], "removed": ["ward"]})
        )
    );
}

#[actix_web::test]
async fn malformed_frames_get_error_frames_and_neither_the_session_nor_other_clients_notice() {
    // Threat: one buggy or hostile dashboard crashing the hub or other sessions.
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    app.assign("ward", "bob").await;
    let (mut rogue, _) = ws_ready(&app, &nurse, "").await;
    let (mut bystander, _) = ws_ready(&app, &token("bob", "doctor", None), "").await;
    let mut sse = app.sse(&token("bob", "doctor", None), "").await;
    sse.connected().await;

    let cases: Vec<(Message, &str)> = vec![
        (Message::text("{not json"), "bad_json"),
        (
            Message::text(r#"{"type":"ping","type":"ack","alert_id":"x"}"#),
            "bad_json",
        ),
        (Message::text("x".repeat(70 * 1024)), "too_large"),
        (Message::binary(vec![0u8, 159, 146, 150]), "unsupported"),
        (
            Message::text(json!({"type": "launch"}).to_string()),
            "unknown_type",
        ),
        (
            Message::text(json!({"patient_ids": ["ward"]}).to_string()),
            "invalid",
        ),
        (Message::text(json!({"type": 7}).to_string()), "invalid"),
        (Message::text("[1, 2, 3]"), "invalid"),
        (
            Message::text(json!({"type": "subscribe", "patient_ids": "ward"}).to_string()),
            "invalid",
        ),
        (Message::text(json!({"type": "ack"}).to_string()), "invalid"),
        (
            Message::text(json!({"type": "ack", "alert_id": 123}).to_string()),
            "invalid",
        ),
    ];
    for (message, code) in cases {
        let shown: String = message.to_string().chars().take(40).collect();
        rogue.send(message).await;
        let error = rogue
            .next_json(WAIT)
            .await
            .unwrap_or_else(|| panic!("{shown}: session closed"));
        assert_eq!(error["type"], "error", "{shown}: {error}");
        assert_eq!(error["code"], code, "{shown}: {error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{shown}: {error}"
        );
    }
    // An `alert_id` that is there but not a string is not called missing.
    let said = error_message_of(&mut rogue, json!({"type": "ack", "alert_id": null})).await;
    assert!(said.contains("required"), "{said}");
    let said = error_message_of(&mut rogue, json!({"type": "ack", "alert_id": 123})).await;
    assert!(said.contains("string") && said.contains("123"), "{said}");
    // Anything else wrong in an `ack` that names an alert is that alert's `ack_result`,
    // refused with the HTTP acknowledgment's status and code.
    let alert_id = "0193a0e0-0000-7000-8000-000000000000";
    rogue
        .send_json(&json!({"type": "ack", "alert_id": alert_id, "x": 1}))
        .await;
    let refused = rogue.next_json(WAIT).await.expect("an answer");
    assert_eq!(
        (
            &refused["type"],
            &refused["alert_id"],
            &refused["ok"],
            &refused["status"]
        ),
        (
            &json!("ack_result"),
            &json!(alert_id),
            &json!(false),
            &json!(422)
        ),
        "{refused}"
    );

    let alert = app.raise("ward", "critical").await;
    for (who, ws) in [("rogue", &mut rogue), ("bystander", &mut bystander)] {
        let next = ws.next_json(WAIT).await.expect("still open");
        assert_eq!(
            (&next["type"], &next["alert"]["id"]),
            (&json!("alert"), &alert["id"]),
            "{who}: {next}"
        );
    }
    assert_eq!(sse_data(&sse.next_alert_event().await)["id"], alert["id"]);
    let stats = app.stats().await;
    assert_eq!(
        (&stats["connections"]["ws"], &stats["connections"]["sse"]),
        (&json!(2), &json!(1)),
        "{stats}"
    );
}

/// A frame that cannot be read ends that session with RFC 6455's code for what broke
/// (1007 text that is not UTF-8, 1009 too big, 1002 anything else), after a `protocol`
/// error frame when one can still be sent; other clients never notice.
/// A client library or a proxy may split one message over several frames (RFC 6455
/// §5.4): an `ack` sent that way was refused, and the alert stayed open while the nurse
/// took it as acknowledged. Fragments are joined, a control frame may come between them,
/// and the 64 KiB limit holds for the whole message. (A fragment out of order breaks the
/// protocol: the codec ends the session, 1002.)
#[actix_web::test]
async fn a_message_sent_in_fragments_is_joined_and_acted_on() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let (mut ws, _) = ws_ready(&app, &nurse, "").await;
    let alert = app.raise("ward", "critical").await;
    assert_eq!(ws.until_type("alert").await["alert"]["id"], alert["id"]);

    let ack = json!({"type": "ack", "alert_id": alert["id"], "status": "acknowledged", "note": "on my way, né"})
        .to_string();
    // Split inside the "é", so the pieces are not UTF-8 on their own; a ping between them.
    let cut = ack.find('é').expect("the accent") + 1;
    let (head, tail) = ack.as_bytes().split_at(cut);
    let (first, middle) = head.split_at(10);
    for (payload, opcode, last) in [
        (first, OpCode::Data(Data::Text), false),
        (middle, OpCode::Data(Data::Continue), false),
    ] {
        ws.send(Message::Frame(Frame::message(
            payload.to_vec(),
            opcode,
            last,
        )))
        .await;
    }
    ws.send(Message::Ping(b"between".to_vec().into())).await;
    ws.send(Message::Frame(Frame::message(
        tail.to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    let frames = frames_of(&mut ws, &["ack_result", "alert_updated"]).await;
    let result = frame(&frames, "ack_result");
    assert_eq!(
        (&result["ok"], &result["alert"]["status"]),
        (&json!(true), &json!("acknowledged")),
        "{result}"
    );
    let stored = app
        .get_ok(
            &format!("/api/v1/alerts/{}", alert["id"].as_str().expect("id")),
            &nurse,
        )
        .await;
    assert_eq!(stored["status"], "acknowledged", "{stored}");
    assert_eq!(
        stored["acknowledgments"][0]["note"], "on my way, né",
        "{stored}"
    );

    // Over 64 KiB in all is refused as a single large frame is, once, at its end.
    ws.send(Message::Frame(Frame::message(
        format!("{{\"type\":\"ping\",\"pad\":\"{}", "x".repeat(40 * 1024)),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    ws.send(Message::Frame(Frame::message(
        format!("{}\"}}", "x".repeat(40 * 1024)),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    let error = ws.next_json(WAIT).await.expect("session open");
    assert_eq!(error["code"], "too_large", "{error}");
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(
        ws.next_json(WAIT).await.expect("open")["type"],
        "pong",
        "one answer for the large message, and the session goes on"
    );
    let metrics = app.metrics_text().await;
    for (kind, count) in [("fragment", 2.0), ("ack", 1.0), ("oversize", 1.0)] {
        assert_eq!(
            metric_sample(&metrics, "vigil_ws_frames_total", &[("type", kind)]),
            Some(count),
            "{kind}: {metrics}"
        );
    }
}

#[actix_web::test]
async fn unreadable_frames_close_the_session_with_the_rfc_6455_code_for_what_broke() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let (mut bystander, _) = ws_ready(&app, &nurse, "").await;
    let not_utf8: &[u8] = b"\xff\xfe{\"type\":\"ping\"}";
    let too_big = vec![b' '; 1024 * 1024 + 1];
    let fragment = |payload: &[u8], first: bool, last: bool| {
        let opcode = if first { Data::Text } else { Data::Continue };
        Frame::message(payload.to_vec(), OpCode::Data(opcode), last)
    };
    for (what, frames, code) in [
        (
            "invalid UTF-8",
            vec![Frame::message(
                not_utf8.to_vec(),
                OpCode::Data(Data::Text),
                true,
            )],
            1007u16,
        ),
        (
            "invalid UTF-8 in fragments",
            vec![
                fragment(b"{\"a\":\"", true, false),
                fragment(b"\xff\"}", false, true),
            ],
            1007,
        ),
        (
            "over 1 MiB",
            vec![Frame::message(too_big, OpCode::Data(Data::Text), true)],
            1009,
        ),
        (
            "reserved opcode",
            vec![Frame::message(
                b"x".to_vec(),
                OpCode::Data(Data::Reserved(3)),
                true,
            )],
            1002,
        ),
        (
            "a continuation with no message begun",
            vec![fragment(b"}", false, true)],
            1002,
        ),
        (
            "a new message before the fragmented one ended",
            vec![fragment(b"{", true, false), fragment(b"{}", true, true)],
            1002,
        ),
    ] {
        let (mut rogue, _) = ws_ready(&app, &nurse, "").await;
        for frame in frames {
            rogue.send(Message::Frame(frame)).await;
        }
        let close = rogue
            .closed(WAIT)
            .await
            .unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(u16::from(close.code), code, "{what}: {close:?}");
    }
    // The frame over 1 MiB is counted as oversize, as a 70 KiB one is.
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric_sample(&metrics, "vigil_ws_frames_total", &[("type", "oversize")]),
        Some(1.0),
        "{metrics}"
    );
    // A close frame whose reason is not UTF-8 (code 1000, reason 0xff; masked with a zero
    // key) was closed with 1002 "Bad opcode": it is text that is not UTF-8, 1007.
    let (mut rogue, _) = ws_ready(&app, &nurse, "").await;
    rogue
        .send_bytes(&[0x88, 0x83, 0, 0, 0, 0, 0x03, 0xe8, 0xff])
        .await;
    let close = rogue.closed(WAIT).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1007, "{close:?}");
    // A close frame with a code RFC 6455 does not allow (999) is a protocol error, 1002,
    // and the session's last frame names it, not "Bad opcode" as it did.
    let (mut rogue, _) = ws_ready(&app, &nurse, "").await;
    rogue
        .send_bytes(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe7])
        .await;
    let said = rogue.next_json(WAIT).await.expect("an error frame");
    assert_eq!(said["code"], "protocol", "{said}");
    let message = said["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid close code 999"), "{said}");
    let close = rogue.closed(WAIT).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1002, "{close:?}");
    // Threat: a frame whose header declares 300 MiB, its payload trickling in. The
    // session is closed (1009) once the header is read, before any of it is held:
    // waiting for the payload let one session grow the server by all it sent.
    let (mut rogue, _) = ws_ready(&app, &nurse, "").await;
    let declared: u64 = 300 * 1024 * 1024;
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&declared.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    header.extend_from_slice(&[b' '; 1024]);
    rogue.send_bytes(&header).await;
    let close = rogue
        .closed(WAIT)
        .await
        .expect("closed at the header, not after 300 MiB");
    assert_eq!(u16::from(close.code), 1009, "{close:?}");

    let alert = app.raise("ward", "high").await;
    let next = bystander.next_json(WAIT).await.expect("still open");
    assert_eq!(next["alert"]["id"], alert["id"], "{next}");
}

#[actix_web::test]
async fn an_in_socket_ack_after_resolve_or_of_an_unknown_alert_is_refused_and_the_session_stays_up()
{
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let (mut ws, _) = ws_ready(&app, &nurse, "").await;
    let alert = app.raise("ward", "critical").await;
    let id = alert["id"].as_str().expect("id");
    assert_eq!(app.ack(&nurse, id, "resolved", None).await.status(), 200);
    ws.until_type("alert_updated").await;

    ws.send_json(&json!({"type": "ack", "alert_id": id, "status": "acknowledged"}))
        .await;
    let result = ws.next_json(WAIT).await.expect("ack_result");
    assert_eq!(result["type"], "ack_result", "{result}");
    assert_eq!(
        (&result["ok"], &result["status"], &result["alert_id"]),
        (&json!(false), &json!(409), &alert["id"]),
        "{result}"
    );
    assert!(
        result["code"].is_string() && result["message"].is_string(),
        "{result}"
    );
    // An alert that does not exist is the HTTP acknowledgment's 404, in the socket.
    let unknown = "0193a0e0-0000-7000-8000-000000000000";
    ws.send_json(&json!({"type": "ack", "alert_id": unknown, "status": "acknowledged"}))
        .await;
    let result = ws.next_json(WAIT).await.expect("ack_result");
    assert_eq!(
        (
            &result["type"],
            &result["ok"],
            &result["status"],
            &result["code"],
            &result["alert_id"]
        ),
        (
            &json!("ack_result"),
            &json!(false),
            &json!(404),
            &json!("not_found"),
            &json!(unknown)
        ),
        "{result}"
    );
    let later = app.raise("ward", "low").await;
    assert_eq!(ws.until_type("alert").await["alert"]["id"], later["id"]);
}

/// `ack_result` names only the alert, so a dashboard matches the answers to its acks by
/// their order. Each ack ran as a task of its own and was answered when it finished: an
/// outside audit saw a caregiver's `resolved` (403, decided by the service) answered
/// after the `"bogus"` status sent behind it (422, decided at once), and a burst of ten
/// acks answered out of order in one run in five. They are carried out and answered in
/// the order sent.
#[actix_web::test]
async fn in_socket_acks_are_carried_out_and_answered_in_the_order_sent() {
    let app = spawn_app().await;
    app.assign("ward", "carol").await;
    let caregiver = token("carol", "caregiver", None);
    let (mut ws, _) = ws_ready(&app, &caregiver, "").await;
    let alert = app.raise("ward", "high").await;
    ws.until_type("alert").await;
    let id = alert["id"].as_str().expect("id");
    ws.send_json(&json!({"type": "ack", "alert_id": id, "status": "resolved"}))
        .await;
    ws.send_json(&json!({"type": "ack", "alert_id": id, "status": "bogus"}))
        .await;
    for n in 0..10 {
        ws.send_json(&json!({"type": "ack", "alert_id": id, "note": format!("n{n}")}))
            .await;
    }
    ws.send_json(&json!({"type": "ack"})).await;

    let mut answers = Vec::new();
    while answers.len() < 13 {
        let frame = ws.next_json(WAIT).await.expect("session open");
        if frame["type"] != "alert_updated" {
            answers.push(frame);
        }
    }
    let refusal = |frame: &Value| {
        (
            frame["type"].clone(),
            frame["ok"].clone(),
            frame["status"].clone(),
        )
    };
    assert_eq!(
        refusal(&answers[0]),
        (json!("ack_result"), json!(false), json!(403)),
        "the caregiver's resolve first: {}",
        answers[0]
    );
    assert_eq!(
        refusal(&answers[1]),
        (json!("ack_result"), json!(false), json!(422)),
        "then the unknown status: {}",
        answers[1]
    );
    for (n, answer) in answers[2..12].iter().enumerate() {
        let trail = answer["alert"]["acknowledgments"]
            .as_array()
            .unwrap_or_else(|| panic!("ack {n} stored: {answer}"));
        assert_eq!(
            (trail.len(), &trail[n]["note"]),
            (n + 1, &json!(format!("n{n}"))),
            "ack {n} answered {n}th, stored {n}th: {answer}"
        );
    }
    assert_eq!(
        (&answers[12]["type"], &answers[12]["code"]),
        (&json!("error"), &json!("invalid")),
        "the ack without an id last: {}",
        answers[12]
    );
}

fn short_timeouts(c: &mut vigil::config::Config) {
    c.ws_ping = Duration::from_secs(1);
    c.ws_timeout = Duration::from_secs(2);
}

#[actix_web::test]
async fn a_session_that_stays_silent_past_the_timeout_is_closed() {
    // Threat: dead dashboards (pulled cables, frozen tabs) holding server resources forever.
    let app = spawn_app_with(|c| {
        short_timeouts(c);
        c.heartbeat = Duration::from_secs(7);
    })
    .await;
    let (mut ws, connected) = ws_ready(&app, &token("root", "admin", None), "").await;
    assert_eq!(
        connected["heartbeat_seconds"], 1,
        "a WebSocket's heartbeat is its ping interval, not the SSE heartbeat: {connected}"
    );
    app.wait_for_stats("the session is open", |s| s["connections"]["ws"] == 1)
        .await;
    // Neither reading nor writing: the server's pings go unanswered.
    app.wait_for_stats("the silent session was closed", |s| {
        s["connections"]["ws"] == 0
    })
    .await;
    ws.closed(WAIT).await;
}

#[actix_web::test]
async fn a_session_that_answers_pings_outlives_the_timeout() {
    let app = spawn_app_with(short_timeouts).await;
    let (mut ws, _) = ws_ready(&app, &admin(), "").await;
    // Four pings at 1 s are twice the 2 s timeout; reading answers each with a pong.
    let mut pings = 0;
    while pings < 4 {
        match ws.next_message(WAIT).await {
            Some(Message::Ping(_)) => pings += 1,
            Some(other) => panic!("unexpected message {other:?}"),
            None => panic!("closed after {pings} pings although every ping was answered"),
        }
    }
    assert_eq!(app.stats().await["connections"]["ws"], 1);
}

#[actix_web::test]
async fn ws_mode_on_sends_no_deprecation_notice() {
    let app = spawn_app_with(|c| c.ws_mode = WsMode::On).await;
    let (mut ws, _) = ws_ready(&app, &admin(), "").await;
    for name in ["deprecation", "sunset"] {
        assert!(ws.headers.get(name).is_none(), "{name} header in phase 1");
    }
    let alert = app.raise("anyone", "low").await;
    let next = ws.next_json(WAIT).await.expect("frame");
    assert_eq!(
        (&next["type"], &next["alert"]["id"]),
        (&json!("alert"), &alert["id"]),
        "{next}"
    );
}

#[actix_web::test]
async fn ws_mode_deprecated_sends_headers_and_a_deprecation_frame_after_connected() {
    let sunset = chrono::NaiveDate::from_ymd_opt(2031, 3, 1).expect("date");
    let app = spawn_app_with(|c| {
        c.ws_mode = WsMode::Deprecated;
        c.ws_sunset = sunset;
    })
    .await;
    let (mut ws, _) = ws_ready(&app, &admin(), "").await;
    let notice = ws.next_json(WAIT).await.expect("deprecation frame");
    assert_eq!(notice["type"], "deprecation", "{notice}");
    assert!(
        notice["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{notice}"
    );
    assert!(
        notice["sunset"]
            .as_str()
            .is_some_and(|s| s.starts_with("2031-03-01")),
        "{notice}"
    );
    assert_eq!(notice["migrate_to"], "/api/v1/alerts/stream");
    let header = |name: &str| header_text(&ws.headers, name);
    assert_eq!(
        header("deprecation"),
        "@1795392000",
        "Deprecation is an RFC 9745 date: 2026-11-23, the default"
    );
    assert_eq!(
        header("sunset"),
        "Sat, 01 Mar 2031 00:00:00 GMT",
        "Sunset is an HTTP-date (RFC 8594)"
    );
    assert!(
        header("link").contains("/docs/migration"),
        "{}",
        header("link")
    );
    let alert = app.raise("anyone", "low").await;
    assert_eq!(
        ws.next_json(WAIT).await.expect("alert")["alert"]["id"],
        alert["id"],
        "still fully served"
    );
}

#[actix_web::test]
async fn ws_mode_off_answers_410_gone_with_a_link_to_the_migration_guide() {
    let app = spawn_app_with(|c| c.ws_mode = WsMode::Off).await;
    let resp = app.get("/ws", &admin()).await;
    let link = resp
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let problem = expect_problem(resp, 410, "GET /ws in phase 3").await;
    assert!(link.contains("</docs/migration>"), "Link: {link}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/api/v1/alerts/stream")),
        "{problem}"
    );

    let url = format!("ws://127.0.0.1:{}/ws?token={}", app.port, admin());
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 410),
        other => panic!(
            "a real handshake must be refused with 410: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    assert_eq!(app.stats().await["connections"]["ws"], 0);
}

#[actix_web::test]
async fn the_ws_gauge_returns_to_zero_after_a_close_and_after_a_dropped_connection() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let (mut polite, _) = ws_ready(&app, &nurse, "").await;
    let (abrupt, _) = ws_ready(&app, &admin(), "").await;
    let stats = app
        .wait_for_stats("two sessions", |s| s["connections"]["ws"] == 2)
        .await;
    assert_eq!(
        (
            &stats["connections"]["by_role"]["nurse"],
            &stats["connections"]["by_role"]["admin"]
        ),
        (&json!(1), &json!(1))
    );

    polite.send(Message::Close(None)).await;
    polite.closed(WAIT).await;
    app.wait_for_stats("the closed session left", |s| {
        s["connections"]["ws"] == 1 && s["connections"]["by_role"]["nurse"] == 0
    })
    .await;
    drop(abrupt);
    let stats = app
        .wait_for_stats("the dropped session left", |s| s["connections"]["ws"] == 0)
        .await;
    let by_role = stats["connections"]["by_role"]
        .as_object()
        .expect("by_role");
    assert_eq!(by_role.len(), 7, "every role is listed: {stats}");
    assert!(by_role.values().all(|n| n == 0), "{stats}");
}

/// After the closing handshake the server closes TCP (RFC 6455 §7.1.1). actix-http held
/// the FIN back for its whole 2 s disconnect timeout, so clients waited that long for the
/// end of every session (Python's `websockets` `close()` took 2 s). Here the client
/// never closes its side: the end of the stream must come from the server, long before
/// that timeout.
#[actix_web::test]
async fn the_server_closes_the_connection_right_after_the_closing_handshake() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let handshake = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        admin()
    );
    socket
        .write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"connected\"") {
        let n = tokio::time::timeout(WAIT, socket.read(&mut buf))
            .await
            .expect("`connected` within WAIT")
            .expect("read");
        assert!(n > 0, "closed before `connected`");
        got.extend_from_slice(&buf[..n]);
    }
    // A masked close frame, code 1000.
    let mask = [1u8, 2, 3, 4];
    let payload = [0x03u8, 0xe8];
    let mut frame = vec![0x88, 0x80 | 2];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    socket.write_all(&frame).await.expect("close frame");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let mut rest = Vec::new();
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return rest,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server ends the connection after its close frame, not after its 2 s timeout");
    assert!(
        ended.windows(2).any(|w| w == [0x88, 0x02]),
        "its close frame came first: {ended:?}"
    );
}

/// One masked client frame with FIN set, as it goes on the wire: for several frames in
/// one write, which a client library sends as separate writes.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | u8::try_from(n).expect("under 126")),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(n).expect("under 64 KiB").to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// Threat (clinical): a clinician clicks "Acknowledge" as the dashboard closes (a browser's
/// `ws.send(ack); ws.close()`) and believes the alert handled while it silently stays
/// open. The ack and the frame that ends the session arrive in one write, so the server
/// reads both at once; stopping the session used to drop the acknowledgment it had just
/// started. It must be stored and reach everyone else all the same.
#[actix_web::test]
async fn an_ack_arriving_with_the_frame_that_ends_the_session_is_still_stored_and_broadcast() {
    let app = spawn_app().await;
    let nurse = nurse_on_ward(&app).await;
    let mut witness = app.sse(&admin(), "").await;
    witness.connected().await;
    // The end of the connection (FIN) right behind the ack raced the frame's decoding:
    // lost about half the time, so those run several times.
    let close = client_frame(0x8, &1000u16.to_be_bytes());
    let mut enders = vec![
        ("a close frame", close.clone(), false),
        ("a protocol error", client_frame(0x3, b"x"), false),
    ];
    for _ in 0..6 {
        enders.push(("the end of the connection", Vec::new(), true));
        enders.push((
            "a close frame and the end of the connection",
            close.clone(),
            true,
        ));
    }
    for (ender, end_frame, fin) in enders {
        let (mut ws, _) = ws_ready(&app, &nurse, "").await;
        let alert = app.raise("ward", "critical").await;
        let id = alert["id"].as_str().expect("id").to_owned();
        assert_eq!(ws.until_type("alert").await["alert"]["id"], alert["id"]);
        assert_eq!(
            sse_data(&witness.next_alert_event().await)["id"],
            alert["id"]
        );

        let ack =
            json!({"type": "ack", "alert_id": id, "status": "acknowledged", "note": "on my way"});
        let mut write = client_frame(0x1, ack.to_string().as_bytes());
        write.extend_from_slice(&end_frame);
        ws.send_bytes(&write).await;
        if fin {
            ws.shut_down_sending().await;
        }

        let updated = witness
            .until(Duration::from_secs(5), |e| e.event == "alert_updated")
            .await;
        let body = sse_data(&updated);
        assert_eq!(body["alert"]["id"], alert["id"], "{ender}: {body}");
        let a = &body["acknowledgment"];
        assert_eq!(
            (&a["user_id"], &a["status"], &a["note"]),
            (&json!("alice"), &json!("acknowledged"), &json!("on my way")),
            "{ender}: {body}"
        );
        let stored = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
        assert_eq!(stored["status"], "acknowledged", "{ender}: {stored}");
        ws.closed(WAIT).await;
    }
}

/// RFC 6455 §4.2.2 / §4.4: a handshake in a version the server does not speak gets an
/// error naming the one it does, so the client can retry. actix accepted the hybi
/// drafts 7 and 8 and answered the rest 400 without naming any.
#[actix_web::test]
async fn a_handshake_in_another_websocket_version_is_426_naming_version_13() {
    let app = spawn_app().await;
    for version in ["99", "12", "0", "7", "8", "13, 8", "thirteen"] {
        let what = format!("Sec-WebSocket-Version: {version}");
        let resp = app
            .ws_handshake(
                &format!("token={}", admin()),
                &[("sec-websocket-version", version)],
            )
            .await;
        let header = |name: &str| header_text(resp.headers(), name);
        let (offered, upgrade) = (header("sec-websocket-version"), header("upgrade"));
        let problem = expect_problem(resp, 426, &what).await;
        assert_eq!(offered, "13", "{what}: the version spoken is named");
        assert_eq!(upgrade, "websocket", "{what}: RFC 9110 §15.5.22");
        assert_eq!(problem["code"], "upgrade_required", "{what}: {problem}");
    }
    // Without the header it is not a WebSocket handshake at all (400), and 13 opens.
    let resp = app
        .client
        .get(app.url(&format!("/ws?token={}", admin())))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("GET /ws");
    expect_problem(resp, 400, "no Sec-WebSocket-Version").await;
    let resp = app.ws_handshake(&format!("token={}", admin()), &[]).await;
    assert_eq!(resp.status(), 101, "version 13");

    let doc = app.get_ok("/api/v1/openapi.json", "").await;
    let documented = &doc["paths"]["/ws"]["get"]["responses"]["426"];
    assert!(
        documented["headers"]["Sec-WebSocket-Version"].is_object(),
        "426 and its header are documented: {documented}"
    );
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|fields| fields.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// DESIGN.md writes every frame with its `type` first (`{"type":"connected",…}`,
/// `{"type":"error","code":…,"message":…}`) and the SSE `connected` data in a set order;
/// frames went out with their keys sorted (`type` last), and a producer's `data` came
/// back sorted too. Field order carries no meaning in JSON, but a dashboard that
/// matches on a frame's start, or a person reading frames, meets the documented text.
#[actix_web::test]
async fn frames_and_payloads_keep_design_field_order_and_data_keeps_the_producers_order() {
    let app = spawn_app().await;
    let alice = nurse_on_ward(&app).await;
    let (mut ws, connected) = ws_ready(&app, &alice, "patient_id=ward").await;
    let data_order = [
        "type",
        "connection_id",
        "user_id",
        "role",
        "patients",
        "heartbeat_seconds",
        "server_time",
    ];
    assert_eq!(keys(&connected), data_order, "{connected}");
    let mut sse = app.sse(&alice, "patient_id=ward").await;
    let sse_connected = sse.connected().await;
    assert_eq!(keys(&sse_connected), data_order[1..], "{sse_connected}");

    ws.send_text("{").await;
    let error = ws.next_json(WAIT).await.expect("an error frame");
    assert_eq!(keys(&error), ["type", "code", "message"], "{error}");

    let mut body = alert_body("ward", "high");
    body["data"] =
        serde_json::from_str(r#"{"spo2":91,"hr":148,"arrhythmia":"afib"}"#).expect("data");
    let raised = app.post_json("/api/v1/alerts", &service(), &body).await;
    assert_eq!(raised.status(), 201);
    let alert = ws.until_type("alert").await;
    assert_eq!(keys(&alert), ["type", "id", "alert"], "{alert}");
    let producer_order = ["spo2", "hr", "arrhythmia"];
    assert_eq!(keys(&alert["alert"]["data"]), producer_order, "{alert}");
    let sse_alert = sse_data(&sse.next_alert_event().await);
    assert_eq!(keys(&sse_alert["data"]), producer_order, "{sse_alert}");
    assert_eq!(
        keys(&sse_alert),
        keys(&alert["alert"]),
        "one layout of an alert"
    );

    let id = alert["alert"]["id"].as_str().expect("id").to_owned();
    ws.send_json(&json!({"type": "ack", "alert_id": id, "status": "acknowledged"}))
        .await;
    let frames = frames_of(&mut ws, &["ack_result", "alert_updated"]).await;
    let result = frame(&frames, "ack_result");
    assert_eq!(
        keys(result),
        ["type", "alert_id", "ok", "alert"],
        "{result}"
    );
    assert_eq!(
        keys(&result["alert"]),
        keys(&frame(&frames, "alert_updated")["alert"]),
        "the same layout of the alert in both frames"
    );
    assert_eq!(keys(&result["alert"]["data"]), producer_order, "{result}");
}

/// RFC 6455 §4.1/§4.2.1: the key is the base64 of 16 bytes and the handshake HTTP/1.1 or
/// later. actix checked only that a key was there: `not base64!!`, five bytes of base64
/// and an HTTP/1.0 request all opened a session.
#[actix_web::test]
async fn a_handshake_with_a_malformed_key_or_over_http_1_0_is_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    for key in [
        "not base64!!",
        "aGVsbG8=",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZQ=x",
    ] {
        let resp = app
            .ws_handshake(&format!("token={}", admin()), &[("sec-websocket-key", key)])
            .await;
        let problem = expect_problem(resp, 400, &format!("key {key:?}")).await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Sec-WebSocket-Key")),
            "{problem}"
        );
    }
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let request = format!(
        "GET /ws?token={} HTTP/1.0\r\nHost: vigil\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        admin()
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 2048];
    let n = tokio::time::timeout(WAIT, conn.read(&mut answer))
        .await
        .expect("an answer")
        .expect("read");
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.0 400"), "{head}");
    // A well-formed handshake still opens.
    let resp = app.ws_handshake(&format!("token={}", admin()), &[]).await;
    assert_eq!(resp.status(), 101);
}

/// Sends `frame` and returns the message of the `error` frame it gets.
async fn error_message_of(ws: &mut WsClient, frame: Value) -> String {
    ws.send_json(&frame).await;
    let error = ws.next_json(WAIT).await.expect("an error frame");
    assert_eq!(error["type"], "error", "{frame}: {error}");
    error["message"].as_str().unwrap_or_default().to_owned()
}

/// The handshake applies the SSE stream's scope rules (DESIGN.md "Roles"): a session is
/// refused with a 403 problem before it opens, never opened and left empty, so a
/// dashboard cannot reach a patient's alerts by naming them in its URL.
#[actix_web::test]
async fn each_role_may_open_exactly_the_websocket_sessions_its_scope_allows() {
    let app = spawn_app().await;
    let care_roles = ["doctor", "nurse", "caregiver", "dispatcher"];
    for role in care_roles {
        app.assign("p-1", &format!("{role}-user")).await;
    }
    let patient = token("pat", "patient", Some("p-1"));
    let mut allowed = vec![
        (admin(), "patient_id=*", json!(["*"])),
        (admin(), "patient_id=anyone", json!(["anyone"])),
        (patient.clone(), "patient_id=p-1", json!(["p-1"])),
        (patient.clone(), "", json!(["p-1"])),
    ];
    let mut forbidden = vec![
        ("patient", patient.clone(), "patient_id=p-2".to_owned()),
        ("patient", patient, "patient_id=*".to_owned()),
        ("service", service(), String::new()),
        ("service", service(), "patient_id=p-1".to_owned()),
        ("service", service(), "patient_id=*".to_owned()),
    ];
    for role in care_roles {
        let who = token(&format!("{role}-user"), role, None);
        allowed.push((who.clone(), "patient_id=p-1", json!(["p-1"])));
        let other = if role == "nurse" { "doctor" } else { "nurse" };
        for query in [
            "patient_id=p-2".to_owned(),
            "patient_id=p-1,p-2".to_owned(),
            "patient_id=*".to_owned(),
            format!("role={other}"),
            "role=admin&patient_id=*".to_owned(),
        ] {
            forbidden.push((role, who.clone(), query));
        }
    }
    for (who, query, patients) in allowed {
        let (_ws, connected) = ws_ready(&app, &who, query).await;
        assert_eq!(connected["patients"], patients, "{query:?}: {connected}");
    }
    for (role, who, query) in forbidden {
        let handshake = app.ws_handshake(&format!("token={who}&{query}"), &[]).await;
        let what = format!("WebSocket handshake {query:?} for a {role}");
        let problem = expect_problem(handshake, 403, &what).await;
        assert_eq!(problem["title"], "Forbidden", "{what}");
    }
    let stats = app
        .wait_for_stats("the allowed sessions closed", |s| {
            s["connections"]["ws"] == 0
        })
        .await;
    assert_eq!(stats["connections"]["sse"], 0, "{stats}");
}
