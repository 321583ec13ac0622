//! Raising, reading and listing alerts over `POST/GET /api/v1/alerts[/{id}]`.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::*;

/// Every member of the alert JSON (DESIGN.md "Domain" and "Fine points").
const ALERT_MEMBERS: &str = "id seq last_seq patient_id severity kind title message data source \
                             status created_at updated_at acknowledgments";

fn id(alert: &Value) -> String {
    alert["id"].as_str().expect("alert id").to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list["alerts"]
        .as_array()
        .expect("`alerts` is an array")
        .iter()
        .map(id)
        .collect()
}

fn members(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect()
}

fn rfc3339(value: &Value, what: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what} {text:?} is not RFC 3339: {e}"))
}

async fn create_with_key(app: &TestApp, caller: &str, key: &str) -> reqwest::Response {
    let request = app
        .client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(caller);
    let request = request
        .header("Idempotency-Key", key)
        .json(&alert_body("123", "high"));
    request.send().await.expect("POST")
}

fn replayed(resp: &reqwest::Response) -> Option<String> {
    let value = resp.headers().get("idempotent-replayed")?;
    value.to_str().ok().map(str::to_owned)
}

#[actix_web::test]
async fn creating_an_alert_answers_201_with_a_location_and_the_complete_alert() {
    let app = spawn_app().await;
    let body = alert_body("123", "critical");
    let resp = app.post_json("/api/v1/alerts", &service(), &body).await;
    assert_eq!(resp.status(), 201);
    let location = resp
        .headers()
        .get("location")
        .expect("Location header")
        .to_str();
    let location = location.expect("ASCII").to_owned();
    assert_eq!(replayed(&resp), None, "a first creation is not a replay");
    let alert: Value = resp.json().await.expect("alert JSON");

    let expected: BTreeSet<String> = ALERT_MEMBERS
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(members(&alert), expected, "alert JSON members: {alert}");
    let uuid = uuid::Uuid::parse_str(&id(&alert)).expect("id is a UUID");
    assert_eq!(uuid.get_version_num(), 7, "id {uuid} must be a UUID v7");
    assert_eq!(location, format!("/api/v1/alerts/{uuid}"));
    let seq = alert["seq"].as_i64().expect("seq is an integer");
    assert!(seq >= 1, "seq {seq} comes from the event log");
    assert_eq!(
        alert["last_seq"], seq,
        "a new alert's latest change is its creation"
    );
    for field in "patient_id severity kind title message data source".split_whitespace() {
        assert_eq!(alert[field], body[field], "{field} is stored as sent");
    }
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["acknowledgments"], json!([]));
    let created = rfc3339(&alert["created_at"], "created_at");
    let updated = rfc3339(&alert["updated_at"], "updated_at");
    assert_eq!(created, updated, "nothing changed since creation");
    let age = chrono::Utc::now().signed_duration_since(created);
    assert!(age.num_seconds().abs() < 60, "created_at {created} is now");

    let fetched = app.get_ok(&location, &admin()).await;
    assert_eq!(fetched, alert, "the Location names the stored alert");
}

#[actix_web::test]
async fn omitted_message_data_and_source_take_their_defaults() {
    let app = spawn_app().await;
    let body = json!({"patient_id": "p-7", "severity": "low", "kind": "spo2_low", "title": "Low"});
    let resp = app.post_json("/api/v1/alerts", &service(), &body).await;
    assert_eq!(resp.status(), 201);
    let alert: Value = resp.json().await.expect("alert JSON");
    assert_eq!(alert["message"], "");
    assert_eq!(alert["data"], json!({}));
    assert_eq!(
        alert["source"], "analyser-1",
        "source defaults to the token's sub"
    );
}

#[actix_web::test]
async fn a_repeated_idempotency_key_from_the_same_caller_returns_the_same_alert() {
    let app = spawn_app().await;
    let mut stream = app.sse(&admin(), "patient_id=123").await;
    stream.connected().await;
    let first = create_with_key(&app, &service(), "retry-42").await;
    assert_eq!(first.status(), 201);
    assert_eq!(replayed(&first), None);
    let first: Value = first.json().await.expect("JSON");

    let second = create_with_key(&app, &service(), "retry-42").await;
    assert_eq!(second.status(), 201, "a replay answers like the original");
    assert_eq!(replayed(&second).as_deref(), Some("true"));
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["seq"], first["seq"]);

    let list = app.get_ok("/api/v1/alerts?patient_id=123", &admin()).await;
    assert_eq!(ids(&list), vec![id(&first)], "nothing doubled");
    assert_eq!(list["last_seq"], first["seq"], "the replay wrote no event");

    let other_key = create_with_key(&app, &service(), "retry-43").await;
    assert_eq!(replayed(&other_key), None, "another key is another alert");
    let other_key: Value = other_key.json().await.expect("JSON");

    // On the stream: the original, then the other key's alert; the replay published
    // nothing in between.
    let streamed = stream.next_alert_event().await;
    assert_eq!(streamed.id, first["seq"].to_string());
    let streamed = stream.next_alert_event().await;
    assert_eq!(
        streamed.id,
        other_key["seq"].to_string(),
        "the replay was not streamed"
    );

    // Threat: a service token (which may raise but not read) retrying its key to read
    // the alert's later state, acknowledgments and notes included.
    let ack = app
        .ack(
            &admin(),
            &id(&first),
            "escalated",
            Some("family says hx of MI"),
        )
        .await;
    assert_eq!(ack.status(), 200);
    let third = create_with_key(&app, &service(), "retry-42").await;
    assert_eq!(replayed(&third).as_deref(), Some("true"));
    let third: Value = third.json().await.expect("JSON");
    assert_eq!(
        third, first,
        "a replay answers the alert as created, not its current state"
    );
}

/// Threat: a producer that reuses a key for a new alert (a counter reset after a restart)
/// must not get the old alert back with 201 — the new one, perhaps critical, would be
/// dropped unseen. It is 422 naming the header; a true retry (same alert, its `data`
/// written with other key order and spacing) is still a replay.
#[actix_web::test]
async fn a_reused_idempotency_key_for_a_different_alert_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    let send = |body: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/v1/alerts"))
                .bearer_auth(service())
                .header("Idempotency-Key", "monitor-7-alarm-1")
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("POST")
        }
    };
    let original = r#"{"patient_id":"p1","severity":"low","kind":"spo2_low","title":"SpO2 93","data":{"spo2":93,"probe":"finger"}}"#;
    let first = send(original.to_owned()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("JSON");

    let different = [
        r#"{"patient_id":"p2","severity":"low","kind":"spo2_low","title":"SpO2 93","data":{"spo2":93,"probe":"finger"}}"#,
        r#"{"patient_id":"p1","severity":"critical","kind":"spo2_low","title":"SpO2 93","data":{"spo2":93,"probe":"finger"}}"#,
        r#"{"patient_id":"p1","severity":"low","kind":"asystole","title":"SpO2 93","data":{"spo2":93,"probe":"finger"}}"#,
        r#"{"patient_id":"p1","severity":"low","kind":"spo2_low","title":"SpO2 91","data":{"spo2":93,"probe":"finger"}}"#,
        r#"{"patient_id":"p1","severity":"low","kind":"spo2_low","title":"SpO2 93","message":"x","data":{"spo2":93,"probe":"finger"}}"#,
        r#"{"patient_id":"p1","severity":"low","kind":"spo2_low","title":"SpO2 93","data":{"spo2":91,"probe":"finger"}}"#,
        r#"{"patient_id":"p1","severity":"low","kind":"spo2_low","title":"SpO2 93","source":"bed-4","data":{"spo2":93,"probe":"finger"}}"#,
    ];
    for body in different {
        let resp = send(body.to_owned()).await;
        let problem = expect_problem(resp, 422, body).await;
        assert_eq!(error_fields(&problem), vec!["Idempotency-Key"], "{problem}");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains(&id(&first)),
            "the detail names the alert the key produced: {detail}"
        );
    }
    let list = app.get_ok("/api/v1/alerts", &admin()).await;
    assert_eq!(ids(&list), vec![id(&first)], "nothing else was stored");
    assert_eq!(list["last_seq"], first["seq"], "no event was written");

    for written_differently in [
        r#"{ "data": {"probe": "finger", "spo2": 93}, "title": "SpO2 93", "kind": "spo2_low", "severity": "low", "patient_id": "p1" }"#,
        r#"{"patient_id":"p1","severity":"low","kind":"spo2_low","title":"SpO2 93","data":{"spo2":93.0,"probe":"finger"}}"#,
        r#"{"patient_id":"p1","severity":"low","kind":"spo2_low","title":"SpO2 93","data":{"spo2":9.3e1,"probe":"finger"},"message":""}"#,
    ] {
        let retry = send(written_differently.to_owned()).await;
        assert_eq!(retry.status(), 201, "{written_differently}");
        assert_eq!(replayed(&retry).as_deref(), Some("true"));
        let retry: Value = retry.json().await.expect("JSON");
        assert_eq!(
            retry, first,
            "a retry written differently is still the same alert: {written_differently}"
        );
    }
}

/// A key the server would have to guess about is refused, storing nothing: two keys
/// (the first one used, a retry carrying only the second stored the alert twice), control
/// characters (a TAB passed as "visible ASCII"), bytes past ASCII, past 255 characters.
#[actix_web::test]
async fn an_idempotency_key_must_be_one_key_of_printable_ascii() {
    let app = spawn_app().await;
    let post = || {
        app.client
            .post(app.url("/api/v1/alerts"))
            .bearer_auth(service())
            .json(&alert_body("123", "high"))
    };
    let refused = [
        (
            "two keys",
            post()
                .header("Idempotency-Key", "a-1")
                .header("Idempotency-Key", "a-2"),
        ),
        ("a TAB", post().header("Idempotency-Key", "a\t1")),
        (
            "UTF-8",
            post().header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes("caf\u{e9}".as_bytes()).expect("value"),
            ),
        ),
        (
            "256 characters",
            post().header("Idempotency-Key", "k".repeat(256)),
        ),
    ];
    for (what, request) in refused {
        let resp = request.send().await.expect("POST");
        let problem = expect_problem(resp, 422, what).await;
        assert_eq!(
            error_fields(&problem),
            vec!["Idempotency-Key"],
            "{what}: {problem}"
        );
    }
    let list = app.get_ok("/api/v1/alerts", &admin()).await;
    assert_eq!(ids(&list), Vec::<String>::new(), "nothing stored");

    let spaced = post().header("Idempotency-Key", "bed 4 alarm 1");
    assert_eq!(spaced.send().await.expect("POST").status(), 201);
    let longest = post().header("Idempotency-Key", "k".repeat(255));
    assert_eq!(longest.send().await.expect("POST").status(), 201);
}

#[actix_web::test]
async fn the_same_idempotency_key_from_different_callers_creates_two_alerts() {
    let app = spawn_app().await;
    let mut created = BTreeSet::new();
    for caller in [service(), token("gateway-9", "service", None)] {
        let resp = create_with_key(&app, &caller, "shared-key").await;
        assert_eq!(resp.status(), 201);
        assert_eq!(replayed(&resp), None, "keys are per caller");
        created.insert(id(&resp.json().await.expect("JSON")));
    }
    assert_eq!(created.len(), 2);
    let list = app.get_ok("/api/v1/alerts?patient_id=123", &admin()).await;
    assert_eq!(ids(&list).into_iter().collect::<BTreeSet<_>>(), created);
}

#[actix_web::test]
async fn the_list_is_newest_first_in_an_envelope_whose_last_seq_is_the_log_head() {
    let app = spawn_app().await;
    let a = app.raise("1", "low").await;
    let b = app.raise("2", "high").await;
    let c = app.raise("3", "critical").await;
    let ack = app.ack(&admin(), &id(&a), "acknowledged", None).await;
    assert_eq!(ack.status(), 200);
    let ack: Value = ack.json().await.expect("JSON");
    let head = ack["alert"]["last_seq"].as_i64().expect("last_seq");

    let list = app.get_ok("/api/v1/alerts", &admin()).await;
    assert_eq!(
        members(&list),
        BTreeSet::from(["alerts", "last_seq"].map(str::to_owned))
    );
    assert_eq!(
        list["last_seq"], head,
        "the envelope carries the event-log head"
    );
    assert_eq!(
        ids(&list),
        [&c, &b, &a].map(id),
        "newest first, by creation"
    );
    assert_eq!(list["alerts"][2]["status"], "acknowledged");
    assert_eq!(list["alerts"][2]["last_seq"], head);
}

#[actix_web::test]
async fn listing_after_a_sequence_returns_every_change_since_oldest_change_first() {
    let app = spawn_app().await;
    let a = app.raise("1", "low").await;
    let _b = app.raise("1", "medium").await;
    let mark = app.get_ok("/api/v1/alerts", &admin()).await["last_seq"]
        .as_i64()
        .expect("head");
    let ack = app
        .ack(&admin(), &id(&a), "escalated", Some("call the doctor"))
        .await;
    assert_eq!(ack.status(), 200);
    let d = app.raise("1", "critical").await;

    let since = app
        .get_ok(&format!("/api/v1/alerts?after={mark}"), &admin())
        .await;
    assert_eq!(
        ids(&since),
        [id(&a), id(&d)],
        "the changed alert, then the new one"
    );
    let changed = &since["alerts"][0];
    assert_eq!(
        changed["status"], "escalated",
        "the acknowledged alert reappears, updated"
    );
    assert_eq!(changed["last_seq"], mark + 1);
    assert_eq!(changed["acknowledgments"][0]["note"], "call the doctor");
    assert_eq!(since["alerts"][1]["last_seq"], mark + 2);
    assert_eq!(since["last_seq"], mark + 2);

    let all = app.get_ok("/api/v1/alerts?after=0", &admin()).await;
    let seqs: Vec<i64> = all["alerts"]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x["last_seq"].as_i64().expect("n"))
        .collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest change first: {seqs:?}"
    );

    let current = app
        .get_ok(&format!("/api/v1/alerts?after={}", mark + 2), &admin())
        .await;
    assert_eq!(
        current["alerts"],
        json!([]),
        "a poller that is up to date gets nothing"
    );
    assert_eq!(current["last_seq"], mark + 2);
}

#[actix_web::test]
async fn patient_id_may_be_repeated_or_given_as_a_comma_list() {
    let app = spawn_app().await;
    for patient in ["p1", "p2", "p3"] {
        app.raise(patient, "high").await;
    }
    let cases = [
        ("patient_id=p1&patient_id=p2", vec!["p1", "p2"]),
        ("patient_id=p1,p3", vec!["p1", "p3"]),
        ("patient_id=p3,p1&patient_id=p2", vec!["p1", "p2", "p3"]),
        ("patient_id=p2", vec!["p2"]),
        ("patient_id=nobody", vec![]),
    ];
    for (query, expected) in cases {
        let list = app
            .get_ok(&format!("/api/v1/alerts?{query}"), &admin())
            .await;
        let alerts = list["alerts"].as_array().expect("array");
        let mut patients: Vec<&str> = alerts
            .iter()
            .map(|a| a["patient_id"].as_str().expect("p"))
            .collect();
        patients.sort_unstable();
        assert_eq!(patients, expected, "{query}");
    }
}

#[actix_web::test]
async fn status_and_severity_filters_narrow_the_list() {
    let app = spawn_app().await;
    let low = app.raise("1", "low").await;
    let high = app.raise("1", "high").await;
    let crit = app.raise("1", "critical").await;
    assert_eq!(
        app.ack(&admin(), &id(&high), "acknowledged", None)
            .await
            .status(),
        200
    );
    let cases = [
        ("status=open", vec![id(&crit), id(&low)]),
        ("status=acknowledged", vec![id(&high)]),
        ("status=resolved", vec![]),
        ("severity=critical", vec![id(&crit)]),
        ("severity=high&status=open", vec![]),
        ("severity=low&status=open", vec![id(&low)]),
    ];
    for (query, expected) in cases {
        let list = app
            .get_ok(&format!("/api/v1/alerts?{query}"), &admin())
            .await;
        assert_eq!(ids(&list), expected, "{query}");
    }
}

#[actix_web::test]
async fn limit_pages_the_list_and_must_be_between_1_and_500() {
    let app = spawn_app().await;
    let mut raised = Vec::new();
    for _ in 0..3 {
        raised.push(id(&app.raise("1", "info").await));
    }
    let two = app.get_ok("/api/v1/alerts?limit=2", &admin()).await;
    assert_eq!(
        ids(&two),
        [raised[2].clone(), raised[1].clone()],
        "the newest two"
    );
    let after = app.get_ok("/api/v1/alerts?after=0&limit=2", &admin()).await;
    assert_eq!(
        ids(&after),
        [raised[0].clone(), raised[1].clone()],
        "the oldest two changes"
    );
    for ok in ["1", "500"] {
        let resp = app
            .get(&format!("/api/v1/alerts?limit={ok}"), &admin())
            .await;
        assert_eq!(resp.status(), 200, "limit={ok}");
    }
    for bad in ["0", "501", "-1", "ten"] {
        let resp = app
            .get(&format!("/api/v1/alerts?limit={bad}"), &admin())
            .await;
        let problem = expect_problem(resp, 422, &format!("limit={bad}")).await;
        assert_eq!(
            error_fields(&problem),
            vec!["limit"],
            "limit={bad}: {problem}"
        );
    }
}

#[actix_web::test]
async fn malformed_or_repeated_status_severity_after_and_limit_are_422_naming_the_parameter() {
    let app = spawn_app().await;
    let cases = [
        ("status=closed", "status"),
        ("status=OPEN", "status"),
        ("severity=urgent", "severity"),
        ("after=-1", "after"),
        ("after=abc", "after"),
        ("after=1.5", "after"),
        ("patient_id=a%20b", "patient_id"),
        // One value each: a second would silently be ignored.
        ("status=open&status=resolved", "status"),
        ("severity=high&severity=low", "severity"),
        ("after=1&after=2", "after"),
        ("limit=5&limit=10", "limit"),
        ("role=superuser", "role"),
        ("role=admin&role=nurse", "role"),
    ];
    for (query, field) in cases {
        let resp = app.get(&format!("/api/v1/alerts?{query}"), &admin()).await;
        let problem = expect_problem(resp, 422, query).await;
        assert_eq!(error_fields(&problem), vec![field], "{query}: {problem}");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(field), "{query}: detail names {field}");
    }
}

#[actix_web::test]
async fn the_role_parameter_may_only_name_the_tokens_own_role_on_the_list_too() {
    // DESIGN.md "Roles": a seed-era `role` query may only narrow to a role the token
    // holds; the list used to ignore it.
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    app.raise("123", "high").await;
    let nurse = token("alice", "nurse", None);
    let own = app.get_ok("/api/v1/alerts?role=nurse", &nurse).await;
    assert_eq!(own["alerts"].as_array().map(Vec::len), Some(1));
    for other in ["admin", "doctor"] {
        let resp = app
            .get(&format!("/api/v1/alerts?role={other}"), &nurse)
            .await;
        expect_problem(resp, 403, &format!("a nurse asking for role {other}")).await;
    }
}

#[actix_web::test]
async fn the_role_parameter_may_only_name_the_tokens_own_role_on_one_alert_and_its_acknowledgment()
{
    // Seed-era clients send `role` with every request, the acknowledgment on the
    // seed-era alias above all; these endpoints used to ignore a role the token lacks.
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let alert = app.raise("123", "high").await;
    let alert_id = id(&alert);
    let nurse = token("alice", "nurse", None);
    let one = format!("/api/v1/alerts/{alert_id}");
    let current = format!("/api/v1/alerts/{alert_id}/acknowledge");
    let alias = format!("/api/v1/alerts/alerts/{alert_id}/acknowledge?patient_id=123&");
    let body = json!({"status": "acknowledged"});
    for other in ["admin", "doctor"] {
        let resp = app.get(&format!("{one}?role={other}"), &nurse).await;
        expect_problem(resp, 403, &format!("GET one alert as role {other}")).await;
        for path in [
            format!("{current}?role={other}"),
            format!("{alias}role={other}"),
        ] {
            let resp = app.post_json(&path, &nurse, &body).await;
            expect_problem(resp, 403, &format!("POST {path}")).await;
        }
    }
    let resp = app.get(&format!("{one}?role=superuser"), &nurse).await;
    let problem = expect_problem(resp, 422, "an unknown role").await;
    assert_eq!(error_fields(&problem), vec!["role"]);
    let fetched = app.get_ok(&format!("{one}?role=nurse"), &nurse).await;
    assert_eq!(
        fetched["status"], "open",
        "refused acknowledgments recorded nothing"
    );
    for path in [
        format!("{current}?role=nurse"),
        format!("{alias}role=nurse"),
    ] {
        let resp = app.post_json(&path, &nurse, &body).await;
        assert_eq!(resp.status(), 200, "POST {path}");
    }
    let fetched = app.get_ok(&one, &nurse).await;
    let trail = fetched["acknowledgments"].as_array().map(Vec::len);
    assert_eq!(trail, Some(2), "{fetched}");
}

#[actix_web::test]
async fn one_alert_is_returned_with_its_acknowledgments() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let alert = app.raise("123", "critical").await;
    let nurse = token("alice", "nurse", None);
    let ack = app
        .ack(&nurse, &id(&alert), "acknowledged", Some("on my way"))
        .await;
    assert_eq!(ack.status(), 200);

    let fetched = app
        .get_ok(&format!("/api/v1/alerts/{}", id(&alert)), &nurse)
        .await;
    assert_eq!(fetched["id"], alert["id"]);
    assert_eq!(fetched["seq"], alert["seq"], "seq is fixed at creation");
    assert_eq!(fetched["status"], "acknowledged");
    let acks = fetched["acknowledgments"].as_array().expect("array");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["user_id"], "alice");
    assert_eq!(acks[0]["role"], "nurse");
    assert_eq!(acks[0]["status"], "acknowledged");
    assert_eq!(acks[0]["note"], "on my way");
    let updated = rfc3339(&fetched["updated_at"], "updated_at");
    assert!(updated >= rfc3339(&fetched["created_at"], "created_at"));
}

#[actix_web::test]
async fn an_alert_id_in_upper_case_names_the_same_alert() {
    // A UUID is the same in any case (RFC 9562); a dashboard that upper-cases ids must
    // still reach the alert it shows, to read and to acknowledge it.
    let app = spawn_app().await;
    let alert = app.raise("123", "high").await;
    let upper = id(&alert).to_ascii_uppercase();
    let fetched = app
        .get_ok(&format!("/api/v1/alerts/{upper}"), &admin())
        .await;
    assert_eq!(fetched["id"], alert["id"], "the stored (lower-case) id");
    let ack = app.ack(&admin(), &upper, "acknowledged", None).await;
    assert_eq!(ack.status(), 200);
    let alias = app
        .post_json(
            &format!("/api/v1/alerts/alerts/{upper}/acknowledge"),
            &admin(),
            &json!({}),
        )
        .await;
    assert_eq!(alias.status(), 200);
    let fetched = app
        .get_ok(&format!("/api/v1/alerts/{}", id(&alert)), &admin())
        .await;
    assert_eq!(fetched["acknowledgments"].as_array().map(Vec::len), Some(2));
}

#[actix_web::test]
async fn unknown_and_out_of_scope_alert_ids_are_404_problems() {
    let app = spawn_app().await;
    app.assign("mine", "alice").await;
    let theirs = app.raise("theirs", "critical").await;
    for unknown in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let resp = app
            .get(&format!("/api/v1/alerts/{unknown}"), &admin())
            .await;
        expect_problem(resp, 404, &format!("GET /api/v1/alerts/{unknown}")).await;
    }
    // A path segment that is not an alert id is not echoed back (NUL, escapes, 65,000
    // characters came back whole), on reads and on acknowledgments alike.
    let long = "a".repeat(65_000);
    for segment in ["%00%1b%5B2J", long.as_str()] {
        for resp in [
            app.get(&format!("/api/v1/alerts/{segment}"), &admin())
                .await,
            app.post_json(
                &format!("/api/v1/alerts/{segment}/acknowledge"),
                &admin(),
                &json!({}),
            )
            .await,
        ] {
            let problem = expect_problem(resp, 404, "a segment that is no alert id").await;
            assert_eq!(
                problem["detail"],
                "no alert with that id (alert ids are UUIDs)"
            );
        }
    }
    let nurse = token("alice", "nurse", None);
    let resp = app
        .get(&format!("/api/v1/alerts/{}", id(&theirs)), &nurse)
        .await;
    let problem = expect_problem(resp, 404, "out-of-scope alert").await;
    assert!(
        !problem.to_string().contains("theirs"),
        "the 404 hides the patient: {problem}"
    );
}

/// Patient data must not stay in a browser's or a proxy's cache: every API answer says
/// `no-store`, except the SSE stream, whose `no-cache` DESIGN.md names. Refusals made
/// before a handler runs (no such route, 405, 413) say it too: they lost the header when
/// they were rewritten as problem+json.
#[actix_web::test]
async fn api_answers_are_not_stored_by_caches_and_the_stream_keeps_its_own_header() {
    let app = spawn_app().await;
    let alert = app.raise("c1", "high").await;
    for path in [
        "/api/v1/alerts".to_owned(),
        format!("/api/v1/alerts/{}", id(&alert)),
        "/api/v1/alerts/nope".to_owned(),
    ] {
        let resp = app.get(&path, &admin()).await;
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
    }
    let refused = [
        (app.get("/api/v1/nonexistent", &admin()).await, 404),
        (app.get("/api/v1/alerts/", &admin()).await, 404),
        (
            app.send(reqwest::Method::PUT, "/api/v1/alerts", &admin(), None)
                .await,
            405,
        ),
        (
            app.client
                .post(app.url("/api/v1/alerts"))
                .bearer_auth(service())
                .header("Content-Type", "application/json")
                .body(vec![b' '; 64 * 1024 + 1])
                .send()
                .await
                .expect("POST"),
            413,
        ),
    ];
    for (resp, status) in refused {
        assert_eq!(resp.status(), status);
        assert_eq!(resp.headers()["cache-control"], "no-store", "{status}");
        if status == 405 {
            assert!(resp.headers().contains_key("allow"), "405 keeps Allow");
        }
    }
    let stream = app
        .client
        .get(app.url("/api/v1/alerts/stream"))
        .bearer_auth(admin())
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.headers()["cache-control"], "no-cache");
}

/// A list is one moment of the database: its alerts, their acknowledgments and the log's
/// head were read by separate queries, so under concurrent acknowledgments an answer
/// could carry an alert whose `last_seq` is past the envelope's head, or an alert still
/// `open` beside the acknowledgment that made it `acknowledged`.
#[actix_web::test]
async fn a_list_under_concurrent_acknowledgments_is_one_consistent_snapshot() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(id(&app.raise(&format!("snap-{i}"), "high").await));
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acking = async {
        for round in 0..150 {
            let status = if round % 2 == 0 {
                "acknowledged"
            } else {
                "escalated"
            };
            let resp = app
                .ack(&admin(), &ids[round % ids.len()], status, None)
                .await;
            assert_eq!(resp.status(), 200);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let polling = async {
        let mut polls = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) || polls < 20 {
            polls += 1;
            let list = app.get_ok("/api/v1/alerts?limit=500", &admin()).await;
            let head = list["last_seq"].as_i64().expect("head");
            for alert in list["alerts"].as_array().expect("alerts") {
                assert!(
                    alert["last_seq"].as_i64().expect("last_seq") <= head,
                    "an alert changed after the envelope's head: {alert} (head {head})"
                );
                let latest = alert["acknowledgments"]
                    .as_array()
                    .and_then(|acks| acks.last())
                    .map_or("open", |ack| ack["status"].as_str().unwrap_or("?"));
                assert_eq!(
                    alert["status"], latest,
                    "status and audit trail disagree: {alert}"
                );
            }
        }
    };
    tokio::join!(acking, polling);
}
