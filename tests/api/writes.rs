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

/// Under sustained writes SQLite's checkpoint never caught up with the writer, so the
/// write-ahead log never started over: it grew by every commit (540 MB after 20,000
/// alerts) and never shrank. It must stay near `VIGIL_SQLITE_WAL_LIMIT_MB`, and be cut
/// back to it. SQLite only: PostgreSQL has no such file.
#[actix_web::test]
async fn sustained_writes_keep_the_sqlite_write_ahead_log_near_its_limit() {
    const LIMIT: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("wal.db");
    let wal = dir.path().join("wal.db-wal");
    let app = spawn_app_on(&format!("sqlite://{}", database.display()), |config| {
        config.database.wal_limit_bytes = LIMIT;
    })
    .await;
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());

    // Four producers raising back to back: ~25 MB of log if nothing bounds it.
    let largest = std::cell::Cell::new(0);
    let producers = (0..4).map(|p| {
        let (app, largest) = (&app, &largest);
        async move {
            for i in 0..250 {
                let body = alert_body(&format!("wal-{p}-{}", i % 5), "low");
                let resp = app.post_json("/api/v1/alerts", &service(), &body).await;
                assert_eq!(resp.status(), 201, "raise {p}/{i}");
                largest.set(largest.get().max(wal_len()));
            }
        }
    });
    join_all(producers).await;
    assert!(
        largest.get() <= 4 * LIMIT,
        "the log stayed near its limit under load: it reached {} bytes",
        largest.get()
    );

    // Once the writer has caught up, the next commits start the log over and cut the
    // file back to the limit.
    eventually("the log cut back to its limit", || async {
        app.raise("wal-after", "low").await;
        (wal_len() <= LIMIT).then_some(())
    })
    .await;
    let listed = app.get_ok("/api/v1/alerts?limit=1", &admin()).await;
    assert_eq!(
        listed["alerts"][0]["patient_id"], "wal-after",
        "the newest alert is stored and listed"
    );
}
