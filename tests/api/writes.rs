//! Concurrent writes. On SQLite they are group-committed (several requests share one
//! transaction, each in its own savepoint): a refused write must undo only itself, an
//! accepted one must be stored, and the event log must stay gapless.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::*;

#[actix_web::test]
async fn concurrent_writes_that_fail_undo_only_themselves_and_the_log_stays_gapless() {
    let app = spawn_app().await;
    let doctor = token("dr-who", "doctor", None);
    app.assign("w1", "dr-who").await;
    let done = app.raise("w1", "high").await;
    let done_id = done["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.ack(&doctor, &done_id, "resolved", None).await.status(),
        200
    );

    // 40 raises interleaved with 40 acks that must fail (the alert is resolved: 409),
    // 40 with an idempotency key used twice, all at once.
    let raises = (0..40).map(|i| {
        let app = &app;
        async move {
            let resp = app
                .post_json(
                    "/api/v1/alerts",
                    &service(),
                    &alert_body(&format!("w{}", i % 3), "low"),
                )
                .await;
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.expect("json"),
            )
        }
    });
    let refused = (0..40).map(|_| {
        let (app, doctor, id) = (&app, &doctor, &done_id);
        async move {
            app.ack(doctor, id, "resolved", None)
                .await
                .status()
                .as_u16()
        }
    });
    let keyed = (0..40).map(|i| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(app.url("/api/v1/alerts"))
                .bearer_auth(service())
                .header("Idempotency-Key", format!("key-{}", i / 2))
                .json(&alert_body("w9", "medium"))
                .send()
                .await
                .expect("POST");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    });
    let (raised, refused, keyed) =
        tokio::join!(join_all(raises), join_all(refused), join_all(keyed));

    assert!(raised.iter().all(|(s, _)| *s == 201), "every raise is 201");
    assert!(
        refused.iter().all(|s| *s == 409),
        "every ack after resolve is 409: {refused:?}"
    );
    assert!(
        keyed.iter().all(|(s, _)| *s == 201 || *s == 200),
        "an idempotent replay answers 200 or 201: {:?}",
        keyed.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    let keyed_ids: BTreeSet<&str> = keyed.iter().filter_map(|(_, a)| a["id"].as_str()).collect();
    assert_eq!(keyed_ids.len(), 20, "one alert per idempotency key");

    // Everything answered 201 is stored, nothing else; ids 1..=head, no gap.
    let mut sse = SseClient::open(&app, &admin(), "patient_id=*", Some("0")).await;
    sse.connected().await;
    let expected_events = 1 + 1 + 40 + 20; // first raise, its resolve, raises, keyed
    let mut ids = Vec::new();
    while ids.len() < expected_events {
        let event = sse.next_alert_event().await;
        ids.push(event.id.parse::<i64>().expect("numeric id"));
    }
    let want: Vec<i64> = (1..=i64::try_from(expected_events).expect("small")).collect();
    assert_eq!(ids, want, "the event log is gapless and in order");
    let stored: BTreeSet<String> = app.get_ok("/api/v1/alerts?limit=500", &admin()).await["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    for (_, alert) in &raised {
        assert!(
            stored.contains(alert["id"].as_str().expect("id")),
            "a 201 alert is stored"
        );
    }
    assert_eq!(
        stored.len(),
        1 + 40 + 20,
        "nothing stored that was not answered 201"
    );
}
