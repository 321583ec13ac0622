//! The event log's retention (`VIGIL_EVENT_RETENTION_DAYS`): events past it are deleted,
//! alerts are kept, a resume from a deleted id gets `reset` (never a partial replay), and
//! an acknowledgment retried under its key is still answered once its event has gone.
//!
//! Events are made old by setting their `created_at` in the database, as another client
//! would, and the pruner (every 50 ms here) is awaited through `/metrics`: no test waits
//! days, and none depends on the clock.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// A server whose pruner looks every 50 ms (retention: the default week).
async fn pruning_app() -> TestApp {
    spawn_app_with(|c| c.prune_every = Duration::from_millis(50)).await
}

fn seq_of(alert: &Value) -> i64 {
    alert["seq"].as_i64().expect("alert seq")
}

fn id_of(alert: &Value) -> String {
    alert["id"].as_str().expect("alert id").to_owned()
}

/// Makes every event up to `through` a year old, and waits until the pruner has deleted
/// `expected` events in all.
async fn age_and_await_pruning(app: &TestApp, through: i64, expected: f64) {
    run_sql(
        &app.database_url,
        &[&format!(
            "UPDATE events SET created_at = created_at - 31536000000 WHERE seq <= {through}"
        )],
    );
    eventually("the aged events pruned", || async {
        let pruned = metric_sample(&app.metrics_text().await, "vigil_events_pruned_total", &[])
            .unwrap_or_default();
        (pruned >= expected).then_some(())
    })
    .await;
}

fn data(event: &eventsource_stream::Event) -> Value {
    serde_json::from_str(&event.data).expect("event data is JSON")
}

/// The `id:`s of the next `n` alert events.
async fn next_ids(sse: &mut SseClient, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let event = sse.next_alert_event().await;
        ids.push(event.id.parse().expect("numeric id"));
    }
    ids
}

#[actix_web::test]
async fn a_resume_from_a_pruned_event_is_reset_and_one_from_the_kept_history_replays() {
    let app = pruning_app().await;
    let old = [
        app.raise("r-1", "high").await,
        app.raise("r-1", "low").await,
    ];
    let pruned_through = seq_of(&old[1]);
    age_and_await_pruning(&app, pruned_through, 2.0).await;
    let kept = [
        app.raise("r-1", "critical").await,
        app.raise("r-1", "medium").await,
    ];
    let kept_ids: Vec<i64> = kept.iter().map(seq_of).collect();

    // The alerts themselves are kept: only their replay history went.
    for alert in &old {
        let fetched = app
            .get_ok(&format!("/api/v1/alerts/{}", id_of(alert)), &admin())
            .await;
        assert_eq!(fetched["id"], alert["id"]);
    }

    // A screen that saw only the first old event missed the second, which is gone.
    let first = seq_of(&old[0]).to_string();
    let mut sse = SseClient::open(&app, &admin(), "", Some(&first)).await;
    assert_eq!(sse.status, 200);
    sse.connected().await;
    let reset = sse.until(WAIT, |e| e.event != "heartbeat").await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    let body = data(&reset);
    assert_eq!(
        body["reason"], "Last-Event-ID is older than the retained history",
        "{body}"
    );
    assert_eq!(
        body["oldest_id"], kept_ids[0],
        "names the oldest id held: {body}"
    );
    let live = app.raise("r-1", "info").await;
    assert_eq!(
        next_ids(&mut sse, 1).await,
        [seq_of(&live)],
        "then live, no partial replay"
    );
    sse.close();

    // One that saw every pruned event missed nothing that went: a replay. So does 0,
    // "from the oldest retained".
    for from in [pruned_through.to_string(), "0".to_owned()] {
        let mut sse = SseClient::open(&app, &admin(), "", Some(&from)).await;
        sse.connected().await;
        assert_eq!(
            next_ids(&mut sse, 3).await,
            [kept_ids[0], kept_ids[1], seq_of(&live)],
            "from {from}: the kept events, in order"
        );
        sse.close();
    }

    // The legacy dashboard: the same rules.
    let mut ws = app.ws(&admin(), &format!("last_event_id={first}")).await;
    assert_eq!(ws.until_type("connected").await["type"], "connected");
    let reset = ws.next_json(WAIT).await.expect("session open");
    assert_eq!(reset["type"], "reset", "{reset}");
    assert_eq!(reset["oldest_id"], kept_ids[0], "{reset}");
    let mut ws = app
        .ws(&admin(), &format!("last_event_id={pruned_through}"))
        .await;
    ws.until_type("connected").await;
    let frame = ws.next_json(WAIT).await.expect("session open");
    assert_eq!(frame["type"], "alert", "a replay: {frame}");
    assert_eq!(frame["id"], kept_ids[0], "{frame}");
}

/// An acknowledgment's `Idempotency-Key` answers a retry with the first answer, read from
/// its event. Once the event was pruned the retry got a 500 ("points at a missing event");
/// it is now answered with the acknowledgment as recorded and the alert as it is.
#[actix_web::test]
async fn an_acknowledgment_retried_after_its_event_was_pruned_is_answered_not_recorded_again() {
    let app = pruning_app().await;
    let alert = app.raise("r-2", "critical").await;
    let path = format!("/api/v1/alerts/{}/acknowledge", id_of(&alert));
    let ack = |key: &'static str| {
        app.client
            .post(app.url(&path))
            .bearer_auth(admin())
            .header("Idempotency-Key", key)
            .json(&json!({"status": "acknowledged", "note": "on my way"}))
            .send()
    };
    let first = ack("ack-1").await.expect("acknowledge");
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    let ack_seq = first["alert"]["last_seq"].as_i64().expect("last_seq");
    age_and_await_pruning(&app, ack_seq, 2.0).await;

    let retry = ack("ack-1").await.expect("acknowledge again");
    assert_eq!(retry.status(), 200);
    assert_eq!(header_text(retry.headers(), "idempotent-replayed"), "true");
    let retry: Value = retry.json().await.expect("json");
    assert_eq!(retry["acknowledgment"], first["acknowledgment"], "{retry}");
    assert_eq!(retry["alert"]["status"], "acknowledged", "{retry}");
    let stored = app
        .get_ok(&format!("/api/v1/alerts/{}", id_of(&alert)), &admin())
        .await;
    assert_eq!(
        stored["acknowledgments"].as_array().map(Vec::len),
        Some(1),
        "recorded once: {stored}"
    );
}
