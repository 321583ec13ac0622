//! Acknowledging over HTTP: the answer, the audit trail, `resolved` being final, the
//! seed-era alias, and acknowledgments that race.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;

async fn ok_json(resp: reqwest::Response, what: &str) -> Value {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "{what}: {text}");
    serde_json::from_str(&text).expect("ack JSON")
}

fn id_of(alert: &Value) -> String {
    alert["id"].as_str().expect("alert id").to_owned()
}

fn members(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn trail(alert: &Value) -> &Vec<Value> {
    alert["acknowledgments"]
        .as_array()
        .expect("acknowledgments array")
}

/// The ids of the next three alert events on `stream`.
async fn next_three_ids(stream: &mut SseClient) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(stream.next_alert_event().await.id);
    }
    ids
}

/// Puts `users` on `patient`'s care team in one collection PUT.
async fn team(app: &TestApp, patient: &str, users: &[String]) {
    let path = format!("/api/v1/patients/{patient}/care-team");
    let body = json!({"user_ids": users});
    let resp = app
        .send(reqwest::Method::PUT, &path, &admin(), Some(&body))
        .await;
    assert_eq!(resp.status(), 200, "replacing the care team of {patient}");
}

#[actix_web::test]
async fn acknowledging_answers_200_with_the_alert_and_the_acknowledgment() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let alert = app.raise("123", "critical").await;
    let nurse = token("alice", "nurse", None);
    let resp = app
        .ack(&nurse, &id_of(&alert), "acknowledged", Some("on my way"))
        .await;
    let body = ok_json(resp, "ack").await;

    assert_eq!(members(&body), ["acknowledgment", "alert"]);
    let ack = &body["acknowledgment"];
    assert_eq!(
        members(ack),
        ["created_at", "note", "role", "status", "user_id"]
    );
    assert_eq!(ack["user_id"], "alice");
    assert_eq!(ack["role"], "nurse");
    assert_eq!(ack["status"], "acknowledged");
    assert_eq!(ack["note"], "on my way");
    let created_at = ack["created_at"].as_str().expect("created_at");
    chrono::DateTime::parse_from_rfc3339(created_at).expect("RFC 3339");

    let updated = &body["alert"];
    assert_eq!(updated["id"], alert["id"]);
    assert_eq!(updated["status"], "acknowledged");
    assert_eq!(updated["seq"], alert["seq"], "seq stays the creating event");
    assert!(
        updated["last_seq"].as_i64() > alert["last_seq"].as_i64(),
        "the ack is an event"
    );
    assert_eq!(
        updated["updated_at"], ack["created_at"],
        "changed when the ack was recorded"
    );
    assert_eq!(updated["acknowledgments"], json!([ack]));
}

#[actix_web::test]
async fn an_empty_object_an_empty_body_and_null_all_mean_acknowledged() {
    let app = spawn_app().await;
    let alert = app.raise("123", "high").await;
    let path = format!("/api/v1/alerts/{}/acknowledge", id_of(&alert));

    let empty_object = ok_json(app.post_json(&path, &admin(), &json!({})).await, "{}").await;
    assert_eq!(empty_object["acknowledgment"]["status"], "acknowledged");
    assert_eq!(empty_object["acknowledgment"]["note"], Value::Null);

    let escalate = app.ack(&admin(), &id_of(&alert), "escalated", None).await;
    assert_eq!(
        ok_json(escalate, "escalate").await["alert"]["status"],
        "escalated"
    );

    let no_body = app.send(reqwest::Method::POST, &path, &admin(), None).await;
    let no_body = ok_json(no_body, "empty body").await;
    assert_eq!(no_body["acknowledgment"]["status"], "acknowledged");
    assert_eq!(no_body["alert"]["status"], "acknowledged");

    // The OpenAPI document declares the body optional: a generated client sends `null`.
    let null = ok_json(app.post_json(&path, &admin(), &Value::Null).await, "null").await;
    assert_eq!(null["acknowledgment"]["status"], "acknowledged");
    let acks = ok_json(
        app.get(&path.replace("/acknowledge", ""), &admin()).await,
        "GET",
    )
    .await;
    assert_eq!(acks["acknowledgments"].as_array().map(Vec::len), Some(4));
}

#[actix_web::test]
async fn every_acknowledgment_is_kept_oldest_first_and_the_latest_sets_the_status() {
    let app = spawn_app().await;
    for user in ["alice", "bob", "carol"] {
        app.assign("123", user).await;
    }
    let alert = app.raise("123", "critical").await;
    let id = id_of(&alert);
    let steps = [
        ("alice", "nurse", "acknowledged"),
        ("bob", "caregiver", "escalated"),
        ("carol", "doctor", "acknowledged"),
        ("alice", "nurse", "escalated"),
        ("carol", "doctor", "resolved"),
    ];
    let mut last_seq = alert["last_seq"].as_i64().expect("seq");
    for (user, role, status) in steps {
        let resp = app
            .ack(&token(user, role, None), &id, status, Some(user))
            .await;
        let body = ok_json(resp, &format!("{user} sets {status}")).await;
        assert_eq!(
            body["alert"]["status"], status,
            "the latest acknowledgment decides"
        );
        let seq = body["alert"]["last_seq"].as_i64().expect("last_seq");
        assert!(seq > last_seq, "each acknowledgment is a later event");
        last_seq = seq;
    }
    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    let recorded: Vec<(&str, &str, &str)> = trail(&fetched)
        .iter()
        .map(|a| {
            (
                a["user_id"].as_str().expect("u"),
                a["role"].as_str().expect("r"),
                a["status"].as_str().expect("s"),
            )
        })
        .collect();
    assert_eq!(recorded, steps, "the audit trail, oldest first");
    assert_eq!(fetched["status"], "resolved");
    assert_eq!(fetched["last_seq"], last_seq);
}

#[actix_web::test]
async fn resolved_is_final_and_any_later_acknowledgment_gets_409() {
    let app = spawn_app().await;
    let mut stream = app.sse(&admin(), "patient_id=123").await;
    stream.connected().await;
    let alert = app.raise("123", "critical").await;
    let id = id_of(&alert);
    let resolved = ok_json(
        app.ack(&admin(), &id, "resolved", Some("done")).await,
        "resolve",
    )
    .await;
    let resolved_seq = &resolved["alert"]["last_seq"];
    for status in ["acknowledged", "escalated", "resolved"] {
        let resp = app.ack(&admin(), &id, status, None).await;
        let problem = expect_problem(resp, 409, &format!("{status} after resolved")).await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains("resolved"), "{problem}");
    }
    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    assert_eq!(fetched["status"], "resolved");
    assert_eq!(trail(&fetched).len(), 1, "refused acks leave no row");
    assert_eq!(
        &fetched["last_seq"], resolved_seq,
        "refused acks write no event"
    );
    let head = app.get_ok("/api/v1/alerts", &admin()).await["last_seq"].clone();
    assert_eq!(&head, resolved_seq, "the event log did not move");

    // On the stream: the alert, its resolution, then the next alert; the refused
    // acknowledgments published nothing in between.
    let next = app.raise("123", "low").await;
    assert_eq!(
        next_three_ids(&mut stream).await,
        [&alert["seq"], resolved_seq, &next["seq"]].map(ToString::to_string),
        "refused acks were not streamed"
    );
}

#[actix_web::test]
async fn invalid_acknowledgments_are_422_naming_the_field_and_unknown_alerts_404() {
    let app = spawn_app().await;
    let alert = app.raise("123", "critical").await;
    let path = format!("/api/v1/alerts/{}/acknowledge", id_of(&alert));
    let cases = [
        (json!({"status": "open"}), "status"),
        (json!({"status": "done"}), "status"),
        (json!({"status": 1}), "status"),
        (json!({"note": "n".repeat(2001)}), "note"),
        (json!({"note": ["x"]}), "note"),
        (json!({"note": "bell\u{7}"}), "note"),
        (json!({"statuss": "acknowledged"}), "statuss"),
    ];
    for (body, field) in cases {
        let resp = app.post_json(&path, &admin(), &body).await;
        let problem = expect_problem(resp, 422, &body.to_string()).await;
        assert!(
            error_fields(&problem).contains(&field.to_owned()),
            "{body}: {problem}"
        );
    }
    let fetched = app
        .get_ok(&format!("/api/v1/alerts/{}", id_of(&alert)), &admin())
        .await;
    assert_eq!(fetched["status"], "open", "nothing was recorded");
    // Tab and line breaks are text.
    let lines = "BP 90/60\r\n\tcalled Dr. Lee";
    let answer = app
        .ack(&admin(), &id_of(&alert), "acknowledged", Some(lines))
        .await;
    assert_eq!(answer.status(), 200);

    let unknown = uuid::Uuid::now_v7().to_string();
    let resp = app.ack(&admin(), &unknown, "acknowledged", None).await;
    expect_problem(resp, 404, "acknowledging an unknown alert").await;
}

#[actix_web::test]
async fn the_seed_era_alias_acknowledges_and_checks_the_patient_id_query() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let alert = app.raise("123", "high").await;
    let id = id_of(&alert);
    let nurse = token("alice", "nurse", None);
    let alias = format!("/api/v1/alerts/alerts/{id}/acknowledge");
    let escalate = json!({"status": "escalated"});

    let plain = app
        .post_json(&alias, &nurse, &json!({"status": "acknowledged"}))
        .await;
    assert_eq!(
        ok_json(plain, "alias").await["alert"]["status"],
        "acknowledged"
    );

    let wrong = app
        .post_json(&format!("{alias}?patient_id=999"), &nurse, &escalate)
        .await;
    expect_problem(wrong, 404, "alias with another patient's id").await;
    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &nurse).await;
    assert_eq!(
        fetched["status"], "acknowledged",
        "a mismatched alias request changes nothing"
    );
    assert_eq!(trail(&fetched).len(), 1);

    for twice in [
        "patient_id=123&patient_id=999",
        "patient_id=999&patient_id=123",
    ] {
        let resp = app
            .post_json(&format!("{alias}?{twice}"), &nurse, &escalate)
            .await;
        let problem = expect_problem(resp, 422, &format!("alias with {twice}")).await;
        assert_eq!(error_fields(&problem), vec!["patient_id"], "{twice}");
    }

    let right = app
        .post_json(&format!("{alias}?patient_id=123"), &nurse, &escalate)
        .await;
    let right = ok_json(right, "alias with the matching patient id").await;
    assert_eq!(right["alert"]["status"], "escalated");
    assert_eq!(trail(&right["alert"]).len(), 2);
}

/// Every `alert_updated` carries its alert's whole trail, so an unbounded trail made each
/// acknowledgment's event bigger than the last (an outside audit: a caregiver's 400
/// acknowledgments with 8 KB notes made one event 2.4 MB, and one screen was sent
/// 654 MB). Before it is resolved an alert keeps 200 acknowledgments and 32 KiB of
/// notes; past either, 409, and nothing is recorded or streamed. An acknowledgment
/// without a note never meets the notes' bound, and resolving is always possible. (Many
/// users fill it here: one user adds at most 20, see the next test.)
#[actix_web::test]
async fn an_alert_s_trail_is_bounded_yet_the_alert_can_always_be_resolved() {
    let app = spawn_app().await;
    let mut stream = app.sse(&admin(), "patient_id=123").await;
    stream.connected().await;
    let alert = app.raise("123", "critical").await;
    let id = id_of(&alert);
    let long = "n".repeat(2000);
    let admin_no = |n: usize| token(&format!("admin-{n}"), "admin", None);
    for k in 0..16 {
        ok_json(
            app.ack(&admin_no(k / 4), &id, "acknowledged", Some(&long))
                .await,
            "ack",
        )
        .await;
    }
    // 32,000 bytes of notes so far: another 2,000 would pass 32,768, 700 do not.
    let resp = app.ack(&admin(), &id, "escalated", Some(&long)).await;
    let problem = expect_problem(resp, 409, "a note past the trail's bytes").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("32768")),
        "{problem}"
    );
    ok_json(
        app.ack(&admin(), &id, "acknowledged", Some(&"s".repeat(700)))
            .await,
        "a note that fits",
    )
    .await;
    for k in 17..200 {
        ok_json(
            app.ack(&admin_no(10 + k / 10), &id, "escalated", None)
                .await,
            "no note",
        )
        .await;
    }
    let resp = app.ack(&admin(), &id, "escalated", None).await;
    let problem = expect_problem(resp, 409, "the 201st acknowledgment").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("200 acknowledgments")),
        "{problem}"
    );
    let resolved = ok_json(
        app.ack(&admin(), &id, "resolved", Some(&long)).await,
        "resolving a full trail",
    )
    .await;
    assert_eq!(
        trail(&resolved["alert"]).len(),
        201,
        "the refused left no row"
    );

    // On the stream: the alert, then exactly the 201 recorded updates.
    let resolved_id = resolved["alert"]["last_seq"].to_string();
    let mut updates = 0;
    loop {
        let event = stream.next_alert_event().await;
        if event.event == "alert_updated" {
            updates += 1;
        }
        if event.id == resolved_id {
            break;
        }
    }
    assert_eq!(updates, 201, "refused acknowledgments were not streamed");
}

/// With the trail's bounds alone, one caregiver filled a critical alert's trail in 3 s
/// (an outside audit): nobody could escalate it after that, and a dispatcher could do
/// nothing with it at all. One user adds at most 20 acknowledgments and 8 KiB of notes
/// to an alert before it is resolved; the rest of the care team can still act on it.
#[actix_web::test]
async fn one_user_cannot_fill_an_alert_s_trail_for_the_rest_of_the_team() {
    let app = spawn_app().await;
    team(&app, "123", &["carer".to_owned(), "dispatch".to_owned()]).await;
    let alert = app.raise("123", "critical").await;
    let id = id_of(&alert);
    let caregiver = token("carer", "caregiver", None);
    for _ in 0..20 {
        ok_json(app.ack(&caregiver, &id, "acknowledged", None).await, "ack").await;
    }
    let resp = app.ack(&caregiver, &id, "escalated", None).await;
    let problem = expect_problem(resp, 409, "the caregiver's 21st").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("you have added 20 acknowledgments")),
        "{problem}"
    );
    let dispatcher = token("dispatch", "dispatcher", None);
    let escalated = ok_json(
        app.ack(&dispatcher, &id, "escalated", Some(&"d".repeat(2000)))
            .await,
        "the dispatcher escalates all the same",
    )
    .await;
    assert_eq!(escalated["alert"]["status"], "escalated");
    assert_eq!(
        trail(&escalated["alert"]).len(),
        21,
        "the refused left no row"
    );

    // Notes: four of the longest kind, and no fifth, from one user; others still write.
    let long = "n".repeat(2000);
    for _ in 0..3 {
        ok_json(
            app.ack(&dispatcher, &id, "escalated", Some(&long)).await,
            "note",
        )
        .await;
    }
    let resp = app.ack(&dispatcher, &id, "escalated", Some(&long)).await;
    let problem = expect_problem(resp, 409, "the dispatcher's fifth long note").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("your notes on this alert would pass 8192 bytes")),
        "{problem}"
    );
    ok_json(
        app.ack(&dispatcher, &id, "escalated", None).await,
        "the same user without a note",
    )
    .await;
    ok_json(
        app.ack(&admin(), &id, "acknowledged", Some(&long)).await,
        "another user's note",
    )
    .await;
}

#[actix_web::test]
async fn fifty_concurrent_acknowledgments_are_all_recorded_with_distinct_sequence_numbers() {
    let app = spawn_app().await;
    let nurses: Vec<String> = (0..50).map(|i| format!("nurse-{i:02}")).collect();
    team(&app, "123", &nurses).await;
    let alert = app.raise("123", "critical").await;
    let id = id_of(&alert);

    let requests = nurses.iter().enumerate().map(|(i, user)| {
        let status = if i % 3 == 0 {
            "escalated"
        } else {
            "acknowledged"
        };
        let (app, id, who) = (&app, &id, token(user, "nurse", None));
        async move {
            (
                user.clone(),
                status,
                app.ack(&who, id, status, Some(user)).await,
            )
        }
    });
    let mut answers = Vec::new();
    for (user, status, resp) in join_all(requests).await {
        let body = ok_json(resp, &format!("concurrent ack by {user}")).await;
        assert_eq!(body["acknowledgment"]["user_id"], user.as_str());
        assert_eq!(body["acknowledgment"]["status"], status);
        answers.push((
            body["alert"]["last_seq"].as_i64().expect("last_seq"),
            user,
            status,
        ));
    }
    let seqs: BTreeSet<i64> = answers.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs.len(), 50, "every acknowledgment got its own event");
    answers.sort();
    let (last_seq, _, last_status) = answers.last().cloned().expect("fifty answers");

    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    let users: Vec<&str> = trail(&fetched)
        .iter()
        .map(|a| a["user_id"].as_str().expect("u"))
        .collect();
    let by_seq: Vec<&str> = answers.iter().map(|(_, user, _)| user.as_str()).collect();
    assert_eq!(users, by_seq, "50 rows, in event order");
    assert_eq!(
        fetched["status"], last_status,
        "the status is the last acknowledgment's"
    );
    assert_eq!(fetched["last_seq"], last_seq);

    let polled = app.get_ok("/api/v1/alerts?after=0", &admin()).await;
    assert_eq!(
        polled["last_seq"], last_seq,
        "the log head is the last acknowledgment"
    );
    assert_eq!(polled["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(polled["alerts"][0], fetched, "polling and fetching agree");
}

#[actix_web::test]
async fn concurrent_resolves_let_exactly_one_win_and_later_acks_get_409() {
    let app = spawn_app().await;
    let nurses: Vec<String> = (0..12).map(|i| format!("nurse-{i:02}")).collect();
    team(&app, "123", &nurses).await;
    let alert = app.raise("123", "critical").await;
    let id = id_of(&alert);

    let requests = nurses.iter().enumerate().map(|(i, user)| {
        let status = if i % 2 == 0 {
            "resolved"
        } else {
            "acknowledged"
        };
        let (app, id, who) = (&app, &id, token(user, "nurse", None));
        async move { (status, app.ack(&who, id, status, None).await) }
    });
    let mut ok = Vec::new();
    let mut conflicts = 0;
    for (status, resp) in join_all(requests).await {
        match resp.status().as_u16() {
            200 => ok.push(status),
            409 => {
                expect_problem(resp, 409, "ack after resolve").await;
                conflicts += 1;
            }
            other => panic!("a racing {status} answered {other}"),
        }
    }
    assert!(!ok.is_empty(), "at least one acknowledgment succeeds");
    let resolves = ok.iter().filter(|s| **s == "resolved").count();
    assert_eq!(
        resolves, 1,
        "exactly one resolve wins ({conflicts} conflicts)"
    );
    assert_eq!(ok.len() + conflicts, nurses.len());

    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    let statuses: Vec<&str> = trail(&fetched)
        .iter()
        .map(|a| a["status"].as_str().expect("s"))
        .collect();
    assert_eq!(statuses.len(), ok.len(), "one row per 200, none for a 409");
    assert_eq!(
        statuses.last(),
        Some(&"resolved"),
        "nothing is recorded after the resolve"
    );
    assert_eq!(statuses.iter().filter(|s| **s == "resolved").count(), 1);
    assert_eq!(fetched["status"], "resolved");
}

/// An acknowledgment sent with `Idempotency-Key: key`.
async fn ack_with_key(
    app: &TestApp,
    token: &str,
    alert_id: &str,
    body: &Value,
    key: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/alerts/{alert_id}/acknowledge")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("acknowledge")
}

fn replayed(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// A client whose resolve got no answer (a timeout, a restart) retries it: without a key
/// it got 409 "resolved is final" for the resolve that did land, or a second entry in the
/// audit trail for an acknowledgment. With the same key it gets the first answer again,
/// and nothing is recorded or streamed twice.
#[actix_web::test]
async fn a_retry_under_the_same_idempotency_key_is_answered_as_the_first_and_recorded_once() {
    let app = spawn_app().await;
    let mut stream = app.sse(&admin(), "patient_id=123").await;
    stream.connected().await;
    let alert = app.raise("123", "critical").await;
    let id = id_of(&alert);
    let resolve = json!({"status": "resolved", "note": "done"});

    let first = ack_with_key(&app, &admin(), &id, &resolve, "resolve-1").await;
    assert!(!replayed(&first), "the first is recorded, not replayed");
    let first = ok_json(first, "first resolve").await;
    let retry = ack_with_key(&app, &admin(), &id, &resolve, "resolve-1").await;
    assert!(replayed(&retry), "Idempotent-Replayed: true");
    assert_eq!(
        ok_json(retry, "retried resolve").await,
        first,
        "the first answer again"
    );

    // The key with another acknowledgment is refused, naming the key; so is a note
    // changed on the retry.
    for other in [
        json!({"status": "acknowledged"}),
        json!({"status": "resolved", "note": "done!"}),
    ] {
        let resp = ack_with_key(&app, &admin(), &id, &other, "resolve-1").await;
        let problem = expect_problem(resp, 422, &format!("{other}")).await;
        assert_eq!(error_fields(&problem), vec!["Idempotency-Key"], "{problem}");
    }
    // A key is the caller's own: another caller's same key is a new acknowledgment
    // (here refused, the alert being resolved).
    app.assign("123", "alice").await;
    let nurse = token("alice", "nurse", None);
    let resp = ack_with_key(
        &app,
        &nurse,
        &id,
        &json!({"status": "acknowledged"}),
        "resolve-1",
    )
    .await;
    expect_problem(resp, 409, "another caller's key").await;

    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    assert_eq!(trail(&fetched).len(), 1, "recorded once");
    // On the stream: the alert, its one resolution, then the next alert.
    let next = app.raise("123", "low").await;
    assert_eq!(
        next_three_ids(&mut stream).await,
        [&alert["seq"], &first["alert"]["last_seq"], &next["seq"]].map(ToString::to_string),
        "the retry was not streamed"
    );
}

/// An alert id is read in any case (a UUID's hex digits are), so a client that writes
/// it in capitals and retries under its key is answered as the first: the retry had
/// been refused as "a different acknowledgment" of the same alert.
#[actix_web::test]
async fn a_retry_naming_the_alert_in_capitals_is_the_same_acknowledgment() {
    let app = spawn_app().await;
    let alert = app.raise("123", "critical").await;
    let upper = id_of(&alert).to_ascii_uppercase();
    let ack = json!({"status": "acknowledged", "note": "on my way"});
    let first = ack_with_key(&app, &admin(), &upper, &ack, "ack-upper").await;
    let first = ok_json(first, "first acknowledgment").await;
    for (what, id) in [
        ("in capitals", upper.clone()),
        ("in lower case", id_of(&alert)),
    ] {
        let retry = ack_with_key(&app, &admin(), &id, &ack, "ack-upper").await;
        assert!(replayed(&retry), "{what}: Idempotent-Replayed: true");
        assert_eq!(
            ok_json(retry, what).await,
            first,
            "{what}: the first answer"
        );
    }
    let fetched = app
        .get_ok(&format!("/api/v1/alerts/{upper}"), &admin())
        .await;
    assert_eq!(trail(&fetched).len(), 1, "recorded once");
}

/// Retries that overlap (a client that gave up on its first try while it was still
/// queued) are recorded once too: the writer runs them one after the other.
#[actix_web::test]
async fn concurrent_requests_under_one_idempotency_key_record_one_acknowledgment() {
    let app = spawn_app().await;
    let alert = app.raise("123", "high").await;
    let id = id_of(&alert);
    let body = json!({"status": "acknowledged", "note": "on my way"});
    let caller = admin();
    let answers = join_all((0..8).map(|_| ack_with_key(&app, &caller, &id, &body, "ack-1"))).await;
    let mut recorded = 0;
    let mut bodies = Vec::new();
    for resp in answers {
        if !replayed(&resp) {
            recorded += 1;
        }
        bodies.push(ok_json(resp, "concurrent ack").await);
    }
    assert_eq!(recorded, 1, "one recorded, the others replayed");
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );
    let fetched = app.get_ok(&format!("/api/v1/alerts/{id}"), &admin()).await;
    assert_eq!(trail(&fetched).len(), 1, "recorded once");
}
