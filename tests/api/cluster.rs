//! Several instances: one database, events exchanged over Redis, clients free to land
//! on any instance. Needs real Redis (and, for the outage test, PostgreSQL) servers,
//! started by `scripts/test.sh`; without them these tests fail — they never skip.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::servers::{OwnPostgres, OwnRedis, SilentCutProxy, shared_redis_url};

const HOUR: Duration = Duration::from_secs(3600);

/// Three instances on one database and one Redis. The event-log poll is switched off
/// (one hour) so that delivery across instances can only come from Redis.
async fn three_instances(redis: &str) -> (TestApp, TestApp, TestApp) {
    let a = redis_only_instance(redis, None).await;
    let b = redis_only_instance(redis, Some(&a.database_url)).await;
    let c = redis_only_instance(redis, Some(&a.database_url)).await;
    (a, b, c)
}

/// An instance on `database_url` (a new database when `None`) that hears of other
/// instances' events only through Redis (its event-log poll is an hour apart).
async fn redis_only_instance(redis: &str, database_url: Option<&str>) -> TestApp {
    let tweak = |c: &mut vigil::config::Config| {
        c.redis_url = Some(redis.to_owned());
        c.tail_poll = HOUR;
    };
    match database_url {
        None => spawn_app_with(tweak).await,
        Some(url) => spawn_app_on(url, tweak).await,
    }
}

/// Two instances on a new database and `redis` (event-log poll at its default), both
/// subscribed.
async fn two_instances_connected(redis: &str) -> (TestApp, TestApp) {
    let a = spawn_app_with(|c| c.redis_url = Some(redis.to_owned())).await;
    let b = spawn_app_on(&a.database_url, |c| c.redis_url = Some(redis.to_owned())).await;
    for app in [&a, &b] {
        broker_connected(app).await;
    }
    (a, b)
}

/// Waits until an instance's Redis subscription is up (it subscribes asynchronously).
async fn broker_connected(app: &TestApp) {
    eventually("the Redis subscription", || broker_is(app, "connected")).await;
}

/// `Some` when readiness reports the broker as `want`.
async fn broker_is(app: &TestApp, want: &str) -> Option<()> {
    let ready: Value = app.get("/readyz", "").await.json().await.ok()?;
    (ready["broker"] == want).then_some(())
}

#[actix_web::test]
async fn an_alert_raised_on_one_instance_reaches_sse_and_ws_clients_on_the_others() {
    let redis = shared_redis_url();
    let (a, b, c) = three_instances(&redis).await;
    a.assign("p1", "alice").await;
    let nurse = token("alice", "nurse", None);
    let mut sse_b = b.sse(&nurse, "patient_id=p1").await;
    sse_b.connected().await;
    let mut ws_c = c.ws(&nurse, "patient_id=p1").await;
    ws_c.until_type("connected").await;
    let mut sse_a = a.sse(&nurse, "patient_id=p1").await;
    sse_a.connected().await;

    for app in [&a, &b, &c] {
        broker_connected(app).await;
    }
    let alert = a.raise("p1", "critical").await;
    let on_b = sse_b
        .until(WAIT, |e| {
            e.event == "alert" && e.data.contains(alert["id"].as_str().unwrap_or("-"))
        })
        .await;
    assert_eq!(on_b.id, alert["seq"].to_string());
    let on_c = loop {
        let frame = ws_c.until_type("alert").await;
        if frame["alert"]["id"] == alert["id"] {
            break frame;
        }
    };
    assert_eq!(on_c["id"], alert["seq"]);

    // An acknowledgment on C reaches the SSE client on A.
    let id = alert["id"].as_str().expect("id");
    ws_c.send_json(&json!({"type": "ack", "alert_id": id, "status": "acknowledged"}))
        .await;
    let result = ws_c.until_type("ack_result").await;
    assert_eq!(result["ok"], true, "in-socket ack on C: {result}");
    let updated = sse_a
        .until(WAIT, |e| e.event == "alert_updated" && e.data.contains(id))
        .await;
    let data: Value = serde_json::from_str(&updated.data).expect("json");
    assert_eq!(data["alert"]["status"], "acknowledged");
    assert_eq!(data["acknowledgment"]["user_id"], "alice");
}

/// Reads a stream until `want` more alerts (at most `total` in all) were seen or the
/// stream ends; returns whether it ended. Panics if no alert comes for [`WAIT`].
async fn read_some(
    sse: &mut SseClient,
    seen: &mut Vec<(i64, String)>,
    want: usize,
    total: usize,
) -> bool {
    let target = (seen.len() + want).min(total);
    let mut last_alert = std::time::Instant::now();
    while seen.len() < target {
        assert!(
            last_alert.elapsed() < WAIT,
            "no alert for {WAIT:?}; have {} of {total}; missing ids {:?}",
            seen.len(),
            {
                let have: BTreeSet<i64> = seen.iter().map(|(s, _)| *s).collect();
                (1..=have.last().copied().unwrap_or(0))
                    .filter(|s| !have.contains(s))
                    .collect::<Vec<_>>()
            }
        );
        match sse.next_event(WAIT).await {
            Some(event) if event.event == "alert" => {
                let data: Value = serde_json::from_str(&event.data).expect("json");
                seen.push((
                    event.id.parse().expect("numeric id"),
                    data["id"].as_str().unwrap_or_default().to_owned(),
                ));
                last_alert = std::time::Instant::now();
            }
            Some(_) => {}
            None => return true,
        }
    }
    false
}

#[actix_web::test]
async fn concurrent_publishers_on_two_instances_lose_nothing_for_clients_resuming_on_a_third() {
    let redis = shared_redis_url();
    let a = spawn_app_with(|c| c.redis_url = Some(redis.clone())).await;
    let b = spawn_app_on(&a.database_url, |c| c.redis_url = Some(redis.clone())).await;
    let c = spawn_app_on(&a.database_url, |c| c.redis_url = Some(redis.clone())).await;
    const PER_PUBLISHER: usize = 250;
    let publishers = [&a, &a, &b, &b]
        .into_iter()
        .enumerate()
        .map(|(n, app)| async move {
            let mut ids = Vec::new();
            for i in 0..PER_PUBLISHER {
                let patient = format!("ward{}", (n + i) % 3);
                ids.push(
                    app.raise(&patient, "medium").await["id"]
                        .as_str()
                        .expect("id")
                        .to_owned(),
                );
            }
            ids
        });
    let admin_token = admin();
    let reader = async {
        let mut seen: Vec<(i64, String)> = Vec::new();
        // From id 0: alerts raised before this stream registered count too.
        let mut sse = SseClient::open(&c, &admin_token, "patient_id=*", Some("0")).await;
        sse.connected().await;
        let mut round = 0;
        while seen.len() < 4 * PER_PUBLISHER {
            round += 1;
            read_some(&mut sse, &mut seen, 37 + round * 13, 4 * PER_PUBLISHER).await;
            let last = sse.last_id.clone();
            sse.close();
            sse = SseClient::open(&c, &admin_token, "patient_id=*", last.as_deref()).await;
            assert_eq!(sse.status, 200);
        }
        (seen, round)
    };
    let (published, (seen, rounds)) = tokio::join!(join_all(publishers), reader);
    assert!(rounds >= 10, "the client resumed {rounds} times");
    let seqs: Vec<i64> = seen.iter().map(|(s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase: nothing twice, in order"
    );
    let got: BTreeSet<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    let expected: BTreeSet<&str> = published.iter().flatten().map(String::as_str).collect();
    assert_eq!(got.len(), seen.len(), "no alert twice");
    assert_eq!(
        got, expected,
        "every alert raised on A and B reached the client on C"
    );
}

#[actix_web::test]
async fn a_redis_outage_loses_nothing_and_local_clients_keep_receiving() {
    let mut redis = OwnRedis::start();
    let a = spawn_app_with(|c| c.redis_url = Some(redis.url())).await;
    let b = spawn_app_on(&a.database_url, |c| c.redis_url = Some(redis.url())).await;
    let admin_token = admin();
    let mut on_a = a.sse(&admin_token, "patient_id=*").await;
    on_a.connected().await;
    let mut on_b = b.sse(&admin_token, "patient_id=*").await;
    on_b.connected().await;
    // An outage of a Redis that was never reached would test nothing: both must have
    // been subscribed, and must see it go and come back.
    for app in [&a, &b] {
        broker_connected(app).await;
    }

    redis.stop();
    let during = a.raise("p9", "high").await;
    let local = on_a.next_alert_event().await;
    assert_eq!(
        local.id,
        during["seq"].to_string(),
        "A's own client is served without Redis"
    );
    let remote = on_b.next_alert_event().await;
    assert_eq!(
        remote.id,
        during["seq"].to_string(),
        "B recovers the event from the shared log"
    );
    for app in [&a, &b] {
        eventually("readiness reporting the outage", || {
            broker_is(app, "reconnecting")
        })
        .await;
    }

    redis.resume();
    for app in [&a, &b] {
        broker_connected(app).await;
    }
    let after = a.raise("p9", "high").await;
    assert_eq!(on_a.next_alert_event().await.id, after["seq"].to_string());
    assert_eq!(on_b.next_alert_event().await.id, after["seq"].to_string());
}

#[actix_web::test]
async fn a_killed_instance_s_clients_resume_on_another_and_miss_nothing() {
    let redis = shared_redis_url();
    let a = spawn_app_with(|c| c.redis_url = Some(redis.clone())).await;
    let b = spawn_app_on(&a.database_url, |c| c.redis_url = Some(redis.clone())).await;
    let admin_token = admin();
    let mut sse = a.sse(&admin_token, "patient_id=*").await;
    sse.connected().await;
    let mut ws = a.ws(&admin_token, "patient_id=*").await;
    ws.until_type("connected").await;
    let first = b.raise("p1", "low").await;
    assert_eq!(sse.next_alert_event().await.id, first["seq"].to_string());
    let ws_last = ws.until_type("alert").await["id"].clone();
    assert_eq!(ws_last, first["seq"]);

    a.stopper.stop(false).await;
    while sse.next_event(WAIT).await.is_some() {}
    ws.closed(WAIT).await;
    let missed = [b.raise("p1", "low").await, b.raise("p2", "high").await];

    let mut resumed =
        SseClient::open(&b, &admin_token, "patient_id=*", sse.last_id.as_deref()).await;
    assert_eq!(resumed.status, 200);
    let mut ws = b
        .ws(
            &admin_token,
            &format!("patient_id=*&last_event_id={ws_last}"),
        )
        .await;
    ws.until_type("connected").await;
    for alert in &missed {
        assert_eq!(
            resumed.next_alert_event().await.id,
            alert["seq"].to_string()
        );
        let frame = ws
            .next_json(WAIT)
            .await
            .expect("the dashboard's session is open");
        assert_eq!(
            (&frame["type"], &frame["id"]),
            (&"alert".into(), &alert["seq"]),
            "the WebSocket dashboard resumes on the other instance too: {frame}"
        );
    }
}

#[actix_web::test]
async fn a_postgres_outage_answers_503_never_201_and_streams_recover() {
    let pg = OwnPostgres::start();
    let url = fresh_postgres_database(&pg.url());
    let app = spawn_app_on(&url, |_| {}).await;
    let admin_token = admin();
    let mut sse = app.sse(&admin_token, "patient_id=*").await;
    sse.connected().await;

    pg.stop();
    let resp = app
        .post_json("/api/v1/alerts", &service(), &alert_body("p1", "critical"))
        .await;
    assert_eq!(resp.status(), 503, "nothing stored, so never 201");
    let problem: Value = resp.json().await.expect("problem");
    assert_eq!(problem["status"], 503);
    // Counted, as SQLite's refusals are: deployment.md's alert on this counter covers
    // PostgreSQL too.
    let metrics = app.get("/metrics", "").await.text().await.expect("metrics");
    assert_eq!(
        metric_sample(
            &metrics,
            "vigil_write_failures_total",
            &[("cause", "unreachable")]
        ),
        Some(1.0),
        "{metrics}"
    );
    // A probe with a timeout of its own (Kubernetes' default is 1 s; 3 s here leaves a
    // loaded CI room) gets the 503, not a timeout after the pool's 5 s wait.
    let ready = reqwest::Client::new()
        .get(app.url("/readyz"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("readiness answers within a probe's timeout");
    assert_eq!(ready.status(), 503, "readiness reports the outage");
    assert_eq!(
        ready
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(vigil::error::DATABASE_RETRY_AFTER),
        "and says when to look again, as the other 503s do"
    );
    let problem: Value = ready.json().await.expect("readiness problem");
    assert_eq!(
        (&problem["database"], &problem["broker"]),
        (&"unreachable".into(), &"in-process".into()),
        "it names what is down and what is not: {problem}"
    );
    // The stream stays open: heartbeats keep coming.
    sse.until(WAIT, |e| e.event == "heartbeat").await;

    pg.resume();
    let alert = eventually("the database to come back", || async {
        let resp = app
            .post_json("/api/v1/alerts", &service(), &alert_body("p1", "critical"))
            .await;
        if resp.status() == 201 {
            resp.json::<Value>().await.ok()
        } else {
            None
        }
    })
    .await;
    assert_eq!(sse.next_alert_event().await.id, alert["seq"].to_string());
    assert_eq!(app.get("/readyz", "").await.status(), 200);
}

/// A database that takes queries and never answers (a frozen host, a network dropping
/// packets) held every request and readiness until it came back: a POST waited 36 s,
/// readiness never said 503. Now a request gives up after `db::DEADLINE` and readiness
/// after 0.8 s; the write goes on, and once the database answers it is stored once and
/// reaches the screens (its retry with the same key is answered with it).
#[actix_web::test]
async fn a_hung_postgres_gets_503s_within_the_deadline_and_a_late_write_still_reaches_screens() {
    let pg = OwnPostgres::start();
    let url = fresh_postgres_database(&pg.url());
    let app = spawn_app_on(&url, |_| {}).await;
    let mut sse = app.sse(&admin(), "patient_id=*").await;
    sse.connected().await;
    let body = alert_body("p-hung", "critical");
    let raise = || {
        app.client
            .post(app.url("/api/v1/alerts"))
            .bearer_auth(service())
            .header("Idempotency-Key", "hung-1")
            .json(&body)
            .timeout(vigil::db::DEADLINE + Duration::from_secs(5))
            .send()
    };

    pg.freeze();
    let resp = raise()
        .await
        .expect("answered before the client's own timeout");
    let status = resp.status();
    let problem: Value = resp.json().await.expect("problem");
    let ready = reqwest::Client::new()
        .get(app.url("/readyz"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    pg.thaw();
    assert_eq!(status, 503, "{problem}");
    let ready = ready.expect("readiness answers within a probe's timeout");
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.expect("readiness problem");
    assert_eq!(ready["database"], "unreachable", "{ready}");

    let alert = eventually("the database to answer again", || async {
        let resp = raise().await.ok()?;
        (resp.status() == 201).then_some(())?;
        resp.json::<Value>().await.ok()
    })
    .await;
    let event = sse.next_alert_event().await;
    assert_eq!(event.id, alert["seq"].to_string(), "the alert, once");
    let list = app
        .get_ok("/api/v1/alerts?patient_id=p-hung", &admin())
        .await;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(1), "{list}");
}

/// A PostgreSQL connection that breaks during a write (the server stopped or restarted
/// mid-commit) leaves it unknown whether the commit landed: an outside audit saw an alert
/// stored and streamed whose producer had been told "nothing was changed" — a producer
/// believing it and resending under a new key stores it twice. The 503 now says the
/// write may have been stored, and to retry under the same key. Here the write is held
/// in a trigger and its backend terminated.
#[actix_web::test]
async fn a_write_whose_connection_breaks_is_not_said_to_have_changed_nothing() {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let pg = OwnPostgres::start();
    let url = fresh_postgres_database(&pg.url());
    let app = spawn_app_on(&url, |_| {}).await;
    run_sql(
        &url,
        &[
            "CREATE FUNCTION vigil_test_hold() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(60); \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER vigil_test_hold BEFORE INSERT ON alerts FOR EACH ROW \
             EXECUTE FUNCTION vigil_test_hold()",
        ],
    );
    let body = alert_body("p-broken", "critical");
    let raise = || {
        app.client
            .post(app.url("/api/v1/alerts"))
            .bearer_auth(service())
            .header("Idempotency-Key", "broken-1")
            .json(&body)
            .send()
    };
    let terminate = async {
        let mut probe = diesel::PgConnection::establish(&url).expect("a probe connection");
        let held: Backend = eventually("the write held in the trigger", || {
            let held = diesel::sql_query(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' \
                 AND datname = current_database()",
            )
            .get_result::<Backend>(&mut probe)
            .ok();
            std::future::ready(held)
        })
        .await;
        diesel::sql_query(format!("SELECT pg_terminate_backend({})", held.pid))
            .execute(&mut probe)
            .expect("terminate the writing backend");
    };
    let (resp, ()) = futures_util::future::join(raise(), terminate).await;
    let resp = resp.expect("an answer");
    assert_eq!(resp.status(), 503);
    let problem: Value = resp.json().await.expect("problem");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("may or may not have been stored") && detail.contains("Idempotency-Key"),
        "{problem}"
    );
    assert!(!detail.contains("nothing was changed"), "{problem}");

    // Here it was not stored: the retry under the same key stores it, once.
    run_sql(&url, &["DROP TRIGGER vigil_test_hold ON alerts"]);
    let resp = raise().await.expect("the retry");
    assert_eq!(resp.status(), 201);
    let list = app
        .get_ok("/api/v1/alerts?patient_id=p-broken", &admin())
        .await;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(1), "{list}");
}

/// Redis hands every message back to its publisher as well. An event's copy is known by
/// its sequence number; a care-team change has none, so the instance that made it must
/// ignore its own. With Redis lagging (frozen while the changes are made), "add P, remove
/// P" came back as "add P, remove P" once more, P back on the nurse's stream in between
/// (and for good had the last echo been lost). Changes heard from another instance
/// still apply.
#[actix_web::test]
async fn an_instance_ignores_the_redis_echo_of_its_own_care_team_changes() {
    let redis = OwnRedis::start();
    let (a, b) = two_instances_connected(&redis.url()).await;
    a.assign("anchor", "erin").await;
    let mut sse = a.sse(&token("erin", "nurse", None), "").await;
    sse.connected().await;
    redis.freeze();
    a.assign("p-echo", "erin").await;
    a.unassign("p-echo", "erin").await;
    let mut told = Vec::new();
    let mut note = |event: &eventsource_stream::Event| {
        let data: Value = serde_json::from_str(&event.data).expect("json");
        told.push((data["added"].clone(), data["removed"].clone()));
        data["added"] == json!(["sentinel"])
    };
    for _ in 0..2 {
        note(&sse.until(WAIT, |e| e.event == "scope_changed").await);
    }
    redis.thaw();
    // Made on B once Redis runs again, after A's changes reached it: B's reaches A
    // after their echoes.
    b.assign("sentinel", "erin").await;
    while !note(&sse.until(WAIT, |e| e.event == "scope_changed").await) {}
    assert_eq!(
        told,
        vec![
            (json!(["p-echo"]), json!([])),
            (json!([]), json!(["p-echo"])),
            (json!(["sentinel"]), json!([])),
        ],
        "each change once, B's from Redis too"
    );
}

/// Threat: a care-team change an instance never heard of (made on another instance while
/// Redis was away — here there is no Redis at all) left that instance's streams as they
/// were until the client reconnected: a nurse taken off a patient kept receiving its
/// alerts, a nurse put on one missed them. Each instance reads the care teams of its
/// streams back from the database every few seconds and corrects them.
#[actix_web::test]
async fn a_care_team_change_made_on_another_instance_reaches_streams_without_any_broker() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    a.assign("anchor", "fay").await;
    let mut sse = b.sse(&token("fay", "nurse", None), "").await;
    sse.connected().await;

    a.assign("p-elsewhere", "fay").await;
    let told = sse.until(WAIT, |e| e.event == "scope_changed").await;
    let data: Value = serde_json::from_str(&told.data).expect("json");
    assert_eq!(data["added"], json!(["p-elsewhere"]), "{data}");
    let alert = a.raise("p-elsewhere", "critical").await;
    let event = sse.until(WAIT, |e| e.event == "alert").await;
    assert!(event.data.contains(alert["id"].as_str().expect("id")));

    a.unassign("p-elsewhere", "fay").await;
    let told = sse.until(WAIT, |e| e.event == "scope_changed").await;
    let data: Value = serde_json::from_str(&told.data).expect("json");
    assert_eq!(data["removed"], json!(["p-elsewhere"]), "{data}");
    a.raise("p-elsewhere", "critical").await;
    let anchor = a.raise("anchor", "low").await;
    let event = sse.until(WAIT, |e| e.event == "alert").await;
    assert!(
        event.data.contains(anchor["id"].as_str().expect("id")),
        "the removed patient's alert must not reach the stream: {event:?}"
    );
}

/// Threat: an alert raised on instance B moments after a care-team change was answered on
/// instance A was matched on B under the old team. B's own writer hands the alert to B's
/// streams at once, while the change reaches B over Redis a little later (or, without
/// Redis, at B's next read-back of the care teams): a nurse just taken off the patient got
/// the alert, one just put on it missed it. Every event now carries the care teams'
/// version its write saw, and B holds it back until its streams follow that version.
/// Here there is no Redis at all and B's read-back is an hour apart, so only that can
/// put the changes before the alerts.
#[actix_web::test]
async fn an_alert_raised_on_one_instance_right_after_a_care_team_change_on_another_follows_it() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |c| c.tail_poll = HOUR).await;
    a.assign("anchor", "gil").await;
    a.assign("p-off", "gil").await;
    let mut sse = b.sse(&token("gil", "nurse", None), "").await;
    sse.connected().await;

    a.unassign("p-off", "gil").await;
    let off = b.raise("p-off", "critical").await;
    a.assign("p-on", "gil").await;
    let on = b.raise("p-on", "critical").await;
    let anchor = b.raise("anchor", "low").await;
    let names = [("p-off", &off), ("p-on", &on), ("anchor", &anchor)];
    assert_eq!(
        told_until(&mut sse, &anchor, &names).await,
        [
            r#"scope_changed +[] -["p-off"]"#,
            r#"scope_changed +["p-on"] -[]"#,
            "alert p-on",
            "alert anchor"
        ],
        "each change before the alert raised after it, on the instance that did not make it"
    );
}

/// The same with Redis lagging (frozen while the changes are made): the instance that
/// raises the alerts puts the changes before them through its read of the care teams,
/// and when the changes' own messages arrive later they change nothing and tell the
/// stream nothing a second time.
#[actix_web::test]
async fn care_team_changes_heard_late_over_redis_come_before_the_alerts_after_them_and_once() {
    let redis = OwnRedis::start();
    let (a, b) = two_instances_connected(&redis.url()).await;
    a.assign("anchor", "hal").await;
    a.assign("p-off", "hal").await;
    let mut sse = b.sse(&token("hal", "nurse", None), "").await;
    sse.connected().await;

    redis.freeze();
    a.unassign("p-off", "hal").await;
    let off = b.raise("p-off", "critical").await;
    a.assign("p-on", "hal").await;
    let on = b.raise("p-on", "critical").await;
    let anchor = b.raise("anchor", "low").await;
    let names = [("p-off", &off), ("p-on", &on), ("anchor", &anchor)];
    let mut told = told_until(&mut sse, &anchor, &names).await;
    redis.thaw();
    // Published after A's two changes, so heard after them.
    a.assign("sentinel", "hal").await;
    let last = b.raise("sentinel", "low").await;
    let names = [("p-off", &off), ("p-on", &on), ("sentinel", &last)];
    told.extend(told_until(&mut sse, &last, &names).await);
    assert_eq!(
        told,
        [
            r#"scope_changed +[] -["p-off"]"#,
            r#"scope_changed +["p-on"] -[]"#,
            "alert p-on",
            "alert anchor",
            r#"scope_changed +["sentinel"] -[]"#,
            "alert sentinel"
        ],
    );
}

/// What a stream says until the alert `last` (included): each `scope_changed` with what it
/// added and removed, and each alert by its name in `names` ("another" if none).
async fn told_until(sse: &mut SseClient, last: &Value, names: &[(&str, &Value)]) -> Vec<String> {
    let mut told = Vec::new();
    loop {
        let event = sse
            .until(WAIT, |e| e.event == "alert" || e.event == "scope_changed")
            .await;
        let data: Value = serde_json::from_str(&event.data).expect("json");
        if event.event == "scope_changed" {
            told.push(format!(
                "scope_changed +{} -{}",
                data["added"], data["removed"]
            ));
            continue;
        }
        let name = names
            .iter()
            .find(|(_, alert)| alert["id"] == data["id"])
            .map_or("another", |(name, _)| name);
        told.push(format!("alert {name}"));
        if data["id"] == last["id"] {
            return told;
        }
    }
}

/// `vigil migrate --skip-ids` run beside a live instance (not the documented way, which
/// stops them first): the instance hears of an event past the skipped ids from the log
/// while one of its own is already waiting. It must skip only the ids that were never
/// issued and deliver both, not jump past the first and stall behind it.
#[actix_web::test]
async fn an_instance_running_through_skip_ids_delivers_every_event_after_the_gap() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    let first = a.raise("p1", "low").await["seq"].to_string();
    // From after the first alert, which B may not have read from the log yet.
    let mut sse = SseClient::open(&b, &admin(), "patient_id=*", Some(&first)).await;
    sse.connected().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "migrate",
            "--database-url",
            &a.database_url,
            "--skip-ids",
            "50",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vigil migrate");
    assert!(output.status.success(), "{output:?}");
    let from_a = a.raise("p1", "high").await;
    let from_b = b.raise("p1", "critical").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = sse.until(WAIT, |e| e.event == "alert").await;
        seen.push(event.id.clone());
    }
    assert_eq!(
        seen,
        vec![from_a["seq"].to_string(), from_b["seq"].to_string()],
        "both, in order"
    );
    let c = b.raise("p1", "low").await;
    let event = sse.until(WAIT, |e| e.event == "alert").await;
    assert_eq!(event.id, c["seq"].to_string(), "and the stream goes on");
}

/// The deployment id the instances of `database_url` publish under (what a copy of the
/// database, e.g. a staging clone, keeps too).
fn deployment_channel(database_url: &str) -> String {
    use diesel::{Connection, RunQueryDsl, sql_types::Text};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        deployment_id: String,
    }
    let query = diesel::sql_query("SELECT deployment_id FROM deployment");
    let rows: Vec<Row> = if on_postgres() {
        let mut conn = diesel::PgConnection::establish(database_url).expect("connect");
        query.load(&mut conn).expect("deployment id")
    } else {
        let path = vigil::db::pool::sqlite_path(database_url);
        let mut conn = diesel::SqliteConnection::establish(path).expect("open");
        query.load(&mut conn).expect("deployment id")
    };
    let id = &rows.first().expect("a deployment id").deployment_id;
    vigil::hub::redis::channel(id)
}

/// Threat: a copy of the production database (staging, a restore drill) running on the
/// same Redis keeps the deployment id, so its instances publish on production's channel;
/// so can anyone who can reach Redis. Production took what Redis said as events: a
/// foreign alert numbered like the next real one was put on screens and the real one
/// dropped as a duplicate, and a number far past the log's head made the instances skip
/// every real event below it. Redis is now a hint: events and care-team changes are read
/// from the instance's own database.
#[actix_web::test]
async fn an_instance_shows_only_its_database_s_events_whatever_is_published_on_redis() {
    let redis = shared_redis_url();
    let a = redis_only_instance(&redis, None).await;
    let b = redis_only_instance(&redis, Some(&a.database_url)).await;
    for app in [&a, &b] {
        broker_connected(app).await;
    }
    a.assign("p-real", "gus").await;
    let first = a.raise("p-real", "low").await;
    let head = first["seq"].as_i64().expect("seq");
    // From right after it (B may not have heard of it yet: "live from now" would be
    // from before it).
    let after_first = head.to_string();
    let mut admin_b = SseClient::open(&b, &admin(), "patient_id=*", Some(&after_first)).await;
    admin_b.connected().await;
    let nurse = token("gus", "nurse", None);
    let mut nurse_b = SseClient::open(&b, &nurse, "", Some(&after_first)).await;
    nurse_b.connected().await;

    let foreign = |seq: i64, patient: &str| {
        json!({"type": "event", "seq": seq, "kind": "alert", "alert_id": "0190c0de-0000-7000-8000-00000000f00d",
               "patient_id": patient, "payload": format!("{{\"id\":\"0190c0de-0000-7000-8000-00000000f00d\",\"seq\":{seq},\"patient_id\":\"{patient}\",\"title\":\"FOREIGN\"}}")})
        .to_string()
    };
    let channel = deployment_channel(&a.database_url);
    let client = redis::Client::open(redis.as_str()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    for message in [
        foreign(head + 1, "p-real"),
        foreign(head + 1000, "p-staging"),
        json!({"type": "care_team", "user_id": "gus", "patient_id": "p-staging", "assigned": true, "origin": "staging"})
            .to_string(),
    ] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(message)
            .query_async(&mut conn)
            .await
            .expect("PUBLISH");
    }

    // Real alerts raised on A after the forged messages: B's screens get exactly these,
    // numbered as in the log, and never the foreign one.
    let staged = a.raise("p-staging", "critical").await;
    let mut real = Vec::new();
    for _ in 0..3 {
        real.push(a.raise("p-real", "high").await);
    }
    let mut ids = Vec::new();
    while ids.len() < 4 {
        let event = admin_b.until(WAIT, |e| e.event == "alert").await;
        assert!(
            !event.data.contains("FOREIGN"),
            "a foreign alert was shown: {event:?}"
        );
        ids.push(event.id.clone());
    }
    let expected: Vec<String> = std::iter::once(&staged)
        .chain(&real)
        .map(|alert| alert["seq"].to_string())
        .collect();
    assert_eq!(ids, expected, "every real alert, in order, none skipped");
    // The nurse was not put on p-staging by the forged care-team message: the next alert
    // her stream receives is her own patient's, not p-staging's raised before it.
    let event = nurse_b
        .until(WAIT, |e| e.event == "alert" || e.event == "scope_changed")
        .await;
    assert_eq!(
        event.event, "alert",
        "no scope change from Redis alone: {event:?}"
    );
    assert_eq!(event.id, real[0]["seq"].to_string(), "{event:?}");
    // And a real care-team change from A still reaches B's stream (confirmed, applied).
    a.assign("p-new", "gus").await;
    let told = nurse_b.until(WAIT, |e| e.event == "scope_changed").await;
    let data: Value = serde_json::from_str(&told.data).expect("json");
    assert_eq!(data["added"], json!(["p-new"]), "{data}");
}

/// A frozen Redis (stopped, overloaded, a network that drops without resetting) keeps its
/// TCP connections open: readiness said "connected" for as long as it lasted, and the
/// publisher waited on it for ever with every event queued behind. Redis must answer
/// within two seconds; until it does again the broker is "reconnecting", and delivery
/// between instances goes on through the event log.
#[actix_web::test]
async fn a_frozen_redis_shows_as_reconnecting_and_delivery_goes_on_through_the_log() {
    let redis = OwnRedis::start();
    let (a, b) = two_instances_connected(&redis.url()).await;
    let mut sse_b = b.sse(&admin(), "patient_id=*").await;
    sse_b.connected().await;

    let broker_gauge = |text: String| metric_sample(&text, "vigil_broker_connected", &[]);
    assert_eq!(broker_gauge(a.metrics_text().await), Some(1.0));
    redis.freeze();
    let during = a.raise("p1", "critical").await;
    eventually("A's broker reconnecting", || broker_is(&a, "reconnecting")).await;
    // Monitoring sees it too, not only the log and `/readyz`'s body (which stays 200).
    assert_eq!(broker_gauge(a.metrics_text().await), Some(0.0));
    let event = sse_b.until(WAIT, |e| e.event == "alert").await;
    assert_eq!(
        event.id,
        during["seq"].to_string(),
        "delivered through the log"
    );

    redis.thaw();
    eventually("A's broker connected again", || broker_is(&a, "connected")).await;
    assert_eq!(broker_gauge(a.metrics_text().await), Some(1.0));
    let after = a.raise("p1", "high").await;
    let event = sse_b.until(WAIT, |e| e.event == "alert").await;
    assert_eq!(event.id, after["seq"].to_string());
}

/// How many connections are subscribed to `channel` on the Redis server at `redis`.
async fn subscribers(redis: &str, channel: &str) -> i64 {
    let client = redis::Client::open(redis).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

/// A subscription only listens, so it could not tell a quiet channel from a connection
/// that died without a sign (a firewall that forgot it overnight, Redis restarted behind
/// a partition): it stayed deaf for good, readiness said "connected", and other
/// instances' alerts reached its screens only through the event-log poll — here an hour
/// apart. A quiet subscription now PINGs Redis, and subscribes again when no answer
/// comes: what tells the fix apart is Redis counting B's subscription again. (The cut
/// also takes B's publisher connection, whose failed PING marks the link down, so B
/// reads the log at every tick meanwhile: the alert raised while B was deaf arrives
/// either way, and both alerts must reach B's screen, in order.)
#[actix_web::test]
async fn a_subscription_cut_off_without_a_sign_subscribes_again() {
    let redis = OwnRedis::start();
    let proxy = SilentCutProxy::start(redis.port).await;
    let a = redis_only_instance(&redis.url(), None).await;
    let b = redis_only_instance(&proxy.redis_url(), Some(&a.database_url)).await;
    for app in [&a, &b] {
        broker_connected(app).await;
    }
    let channel = deployment_channel(&a.database_url);
    assert_eq!(subscribers(&redis.url(), &channel).await, 2);
    let mut admin_b = b.sse(&admin(), "patient_id=*").await;
    admin_b.connected().await;

    proxy.cut();
    eventually("Redis sees B's subscription gone", || async {
        (subscribers(&redis.url(), &channel).await == 1).then_some(())
    })
    .await;
    let missed = a.raise("p1", "critical").await;
    // B hears nothing for 5 s, then its PING goes unanswered for 2 s.
    eventually_within(Duration::from_secs(30), "B subscribed again", || async {
        (subscribers(&redis.url(), &channel).await == 2).then_some(())
    })
    .await;
    let next = a.raise("p1", "high").await;
    for expected in [missed, next] {
        let event = admin_b.until(WAIT, |e| e.event == "alert").await;
        assert_eq!(event.id, expected["seq"].to_string());
    }
}

/// A transaction of the test's own holding the care-team table locked (until COMMIT),
/// so that whatever reads or writes it waits.
fn lock_care_team(url: &str) -> diesel::PgConnection {
    use diesel::{Connection, RunQueryDsl};
    let mut lock = diesel::PgConnection::establish(url).expect("a connection of the test's own");
    diesel::sql_query("BEGIN")
        .execute(&mut lock)
        .expect("BEGIN");
    diesel::sql_query("LOCK TABLE care_team IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .expect("lock the care team");
    lock
}

/// Waits until a query of a connection named like `application` (`LIKE` pattern) waits
/// on the care-team lock: what a test holds the lock for has been reached.
async fn care_team_lock_waited_on(url: &str, application: &str) {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut probe = diesel::PgConnection::establish(url).expect("a probe connection");
    eventually("a care-team query waiting on the lock", || {
        let waiting: Waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE $1 \
             AND wait_event_type = 'Lock' AND query ILIKE '%care_team%'",
        )
        .bind::<diesel::sql_types::Text, _>(application)
        .get_result(&mut probe)
        .expect("pg_stat_activity");
        std::future::ready((waiting.n > 0).then_some(()))
    })
    .await;
}

/// A nurse taken off a patient on instance A, and an alert for that patient raised on A
/// after the removal's 204: instance B, streaming to her, read the alert from the log and
/// the removal from the care team as two separate reads, and when the log read finished
/// first it matched the alert under her old team — she received it (DESIGN: "a change
/// applies to live subscriptions at once"). Here B's read of the care team is held up (the
/// table locked once the removal has committed, its announcement held in a frozen Redis
/// until then) so that the log read always finishes first: the alert must wait for the
/// removal, reach the admin's screen once it is settled, and never hers.
#[actix_web::test]
async fn an_alert_raised_after_a_removal_on_another_instance_never_reaches_the_removed_nurse() {
    use diesel::RunQueryDsl;

    let pg = OwnPostgres::start();
    let url = fresh_postgres_database(&pg.url());
    let redis = OwnRedis::start();
    let a = redis_only_instance(&redis.url(), Some(&url)).await;
    // Named, so that the probe below sees B's read waiting, not A's own confirming read.
    let b_url = format!("{url}?application_name=vigil-b");
    let b = redis_only_instance(&redis.url(), Some(&b_url)).await;
    for app in [&a, &b] {
        broker_connected(app).await;
    }
    a.assign("p-gone", "hana").await;
    a.assign("p-kept", "hana").await;
    let mut nurse_b = b.sse(&token("hana", "nurse", None), "").await;
    let connected = nurse_b.connected().await;
    assert_eq!(
        connected["patients"],
        json!(["p-gone", "p-kept"]),
        "{connected}"
    );
    let mut admin_b = b.sse(&admin(), "patient_id=*").await;
    admin_b.connected().await;

    redis.freeze();
    a.unassign("p-gone", "hana").await;
    let mut lock = lock_care_team(&url);
    let gone = a.raise("p-gone", "critical").await;
    redis.thaw();

    // B has the announcements now; its log read finishes, its care-team read cannot.
    // The window below means something only once that read is waiting on the lock.
    care_team_lock_waited_on(&url, "vigil-b").await;
    // Before the fix the alert went out at once, to both screens.
    let early = tokio::time::timeout(
        Duration::from_secs(2),
        admin_b.until(WAIT, |e| e.event == "alert"),
    )
    .await;
    if let Ok(event) = early {
        let nurse_saw = nurse_b
            .until(WAIT, |e| e.event == "alert" || e.event == "scope_changed")
            .await;
        panic!(
            "the alert went out before the removal was settled ({:?}); the removed nurse's \
             next event: {} {}",
            event.id, nurse_saw.event, nurse_saw.data
        );
    }
    diesel::sql_query("COMMIT")
        .execute(&mut lock)
        .expect("release the lock");

    let told = nurse_b
        .until(WAIT, |e| e.event == "alert" || e.event == "scope_changed")
        .await;
    assert_eq!(told.event, "scope_changed", "removal first: {told:?}");
    let change: Value = serde_json::from_str(&told.data).expect("json");
    assert_eq!(change["removed"], json!(["p-gone"]), "{change}");
    let event = admin_b.until(WAIT, |e| e.event == "alert").await;
    assert_eq!(
        event.id,
        gone["seq"].to_string(),
        "then the alert, to the admin"
    );

    let kept = a.raise("p-kept", "high").await;
    let event = nurse_b.until(WAIT, |e| e.event == "alert").await;
    assert_eq!(
        event.id,
        kept["seq"].to_string(),
        "her next alert is her own patient's, never the removed one's"
    );
}

/// The database loses committed events under two running instances (a failover to an
/// asynchronous standby). The instance that writes next knows, through Redis, the ids
/// the other handed out, and retires them: its alert reaches the other instance's
/// screen, which had seen the lost ones (it was dropped there as already delivered).
#[actix_web::test]
async fn after_the_database_lost_events_an_alert_written_on_another_instance_reaches_every_screen()
{
    let (a, b) = two_instances_connected(&shared_redis_url()).await;
    let mut on_a = a.sse(&admin(), "patient_id=p1").await;
    on_a.connected().await;
    let mut on_b = b.sse(&admin(), "patient_id=p1").await;
    on_b.connected().await;
    for _ in 0..3 {
        a.raise("p1", "low").await;
    }
    for screen in [&mut on_a, &mut on_b] {
        for _ in 0..3 {
            screen.next_alert_event().await;
        }
    }
    run_sql(
        &a.database_url,
        &[
            "DELETE FROM events WHERE seq > 1",
            "DELETE FROM alerts WHERE seq > 1",
            "UPDATE event_head SET seq = 1 WHERE id = 1",
        ],
    );
    let alert = b.raise("p1", "critical").await;
    assert_eq!(
        alert["seq"],
        3 + vigil::db::events::REWIND_SKIP + 1,
        "{alert}"
    );
    for screen in [&mut on_a, &mut on_b] {
        let event = screen.next_alert_event().await;
        assert!(
            event.data.contains(alert["id"].as_str().unwrap_or("-")),
            "{event:?}"
        );
    }
}

/// Threat: a care-team change made on one instance overtook, on another, the alerts
/// raised before it: the change came over Redis at once, while those alerts were still
/// being read from the log, so a removal dropped alerts raised while the nurse was on
/// the team (an outside audit: 2–3 in 30 never reached her) and a re-addition let one
/// raised while she was off it through. Each change now carries its place in the event
/// log, and every instance applies it between the events before and after it. Each
/// change is made right after an alert (the race), and the next alert once the other
/// instance has told her stream of the change (`scope_changed`).
#[actix_web::test]
async fn care_team_changes_on_one_instance_apply_between_the_same_alerts_on_another() {
    const ROUNDS: usize = 20;
    let (a, b) = two_instances_connected(&shared_redis_url()).await;
    a.assign("p5", "carol").await;
    let nurse = token("carol", "nurse", None);
    let mut stream = b.sse(&nurse, "").await;
    stream.connected().await;
    let service = service();
    let raise = |title: String| {
        let mut body = alert_body("p5", "high");
        body["title"] = json!(title);
        let (a, service) = (&a, &service);
        async move {
            let resp = a.post_json("/api/v1/alerts", service, &body).await;
            assert_eq!(resp.status(), 201);
        }
    };
    // Reads her stream up to the `scope_changed` that adds or removes p5, keeping the
    // titles of the alerts before it.
    let mut titles = Vec::new();
    let until_scope = async |stream: &mut SseClient, titles: &mut Vec<String>, list: &str| {
        loop {
            let event = stream.next_event(WAIT).await.expect("an event");
            let data: Value = serde_json::from_str(&event.data).unwrap_or_default();
            match event.event.as_str() {
                "alert" => titles.push(data["title"].as_str().unwrap_or_default().to_owned()),
                "scope_changed" if data[list] == json!(["p5"]) => return,
                _ => {}
            }
        }
    };
    for round in 0..ROUNDS {
        raise(format!("in-{round}")).await;
        a.unassign("p5", "carol").await;
        until_scope(&mut stream, &mut titles, "removed").await;
        raise(format!("out-{round}")).await;
        a.assign("p5", "carol").await;
        until_scope(&mut stream, &mut titles, "added").await;
    }
    let expected: Vec<String> = (0..ROUNDS).map(|round| format!("in-{round}")).collect();
    assert_eq!(titles, expected, "on the team for in-*, off it for out-*");
}

/// A Redis server that refuses connections was logged by the publisher as "no answer
/// within 2s" (its connection manager spent the whole timeout retrying), while the
/// subscriber said "refused": both now give the cause.
#[actix_web::test]
async fn a_redis_server_refusing_connections_is_logged_as_refusing_them() {
    let closed = crate::servers::free_port();
    let url = format!("redis://127.0.0.1:{closed}/");
    let served = crate::binary::Served::start_with("info", &[("VIGIL_REDIS_URL", &url)]);
    let line = served.line_with(&["redis publisher cannot connect"]).await;
    assert!(line.to_lowercase().contains("refused"), "{line}");
    served
        .line_with(&["INFO", "Redis at 127.0.0.1, without TLS (on this host)"])
        .await;
}

/// How many failed or lost connections `task` (`publisher`, `subscriber`) has counted.
async fn broker_failures(served: &crate::binary::Served, task: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", served.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    metric_sample(&text, "vigil_broker_failures_total", &[("task", task)])
        .expect("vigil_broker_failures_total for each task")
}

/// The warnings so far from `task`'s link to Redis.
fn redis_warnings(served: &crate::binary::Served, task: &str) -> Vec<String> {
    let prefix = match task {
        "publisher" => "redis publisher",
        _ => "redis subscri",
    };
    served
        .lines()
        .into_iter()
        .filter(|line| line.contains("WARN") && line.contains(prefix))
        .collect()
}

/// With Redis gone, the publisher and the subscriber each logged a warning every backoff
/// round (4 s apart at most) for as long as the outage lasted: 1,800 lines an hour. Each
/// now says it once, then at most every 30 s, while `vigil_broker_failures_total` counts
/// every attempt; once Redis is back, that is said, and a new outage is said at once.
#[actix_web::test]
async fn a_lasting_redis_outage_is_said_once_per_task_and_every_attempt_is_counted() {
    let mut redis = OwnRedis::start();
    let served = crate::binary::Served::start_with("info", &[("VIGIL_REDIS_URL", &redis.url())]);
    served.line_with(&["redis subscriber connected"]).await;
    redis.stop();
    // The publisher finds out at its next command: this alert's PUBLISH (or its idle PING).
    served.raise("p1", "high").await;
    // Three failures each: the loss, then the backoff's first rounds (0.25 and 0.5 s).
    for task in ["publisher", "subscriber"] {
        eventually(&format!("three failures counted by the {task}"), || async {
            (broker_failures(&served, task).await >= 3.0).then_some(())
        })
        .await;
    }
    for task in ["publisher", "subscriber"] {
        let said = redis_warnings(&served, task);
        assert_eq!(said.len(), 1, "the {task}'s outage said once: {said:#?}");
        assert!(
            said[0].contains("(said again in 30 s if it lasts)"),
            "{said:#?}"
        );
    }

    redis.resume();
    served
        .line_with(&["INFO", "redis subscriber connected again"])
        .await;
    served
        .line_with(&["INFO", "redis publisher connected again"])
        .await;
    redis.stop();
    eventually("a new outage said at once", || async {
        (redis_warnings(&served, "subscriber").len() == 2).then_some(())
    })
    .await;
}

/// A Redis that wants a password the URL lacks accepts the connection and refuses every
/// command ("NOAUTH"): each alert's PUBLISH logged a warning and then "connected again"
/// (an outside audit: 24 warnings in 6 s). The link counts as back only once a PING is
/// answered, so the refusal is said once, as any lasting failure.
#[actix_web::test]
async fn a_redis_refusing_every_command_is_said_once_not_at_every_publish() {
    let redis = OwnRedis::start();
    let client = redis::Client::open(redis.url().as_str()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret-for-the-test")
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET requirepass");
    let served = crate::binary::Served::start_with("info", &[("VIGIL_REDIS_URL", &redis.url())]);
    for n in 0..5 {
        served.raise(&format!("noauth-{n}"), "high").await;
    }
    eventually("three failures counted by the publisher", || async {
        (broker_failures(&served, "publisher").await >= 3.0).then_some(())
    })
    .await;
    let said = redis_warnings(&served, "publisher");
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(said[0].contains("NOAUTH"), "{said:#?}");
    let lines = served.lines();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("redis publisher connected again")),
        "{lines:#?}"
    );
}

/// `redis://` to a port that takes only TLS was logged as "Connection reset by peer",
/// which reads as anything but a scheme to change: the line now says which.
#[actix_web::test]
async fn a_plain_redis_url_to_a_tls_only_port_is_told_to_use_rediss() {
    let certificate = crate::servers::TestCertificate::new();
    let redis = OwnRedis::start_tls(&certificate);
    let plain = redis.url().replacen("rediss://", "redis://", 1);
    let served = crate::binary::Served::start_with("info", &[("VIGIL_REDIS_URL", &plain)]);
    let line = served
        .line_with(&["WARN", "redis subscriber cannot connect"])
        .await;
    assert!(
        line.contains("if that port takes only TLS, give the URL as rediss://"),
        "{line}"
    );
}

/// Redis on another host over plain TCP carries every alert across the network in the
/// clear: the start-up log warns (the address is TEST-NET-1, never reached).
#[actix_web::test]
async fn a_redis_on_another_host_without_tls_is_warned_of_at_start() {
    let url = "redis://192.0.2.1:6379/";
    let served = crate::binary::Served::start_with("info", &[("VIGIL_REDIS_URL", url)]);
    served
        .line_with(&["WARN", "Redis at 192.0.2.1 is reached without TLS"])
        .await;
}

/// With PostgreSQL down, the pool logged every failed connection attempt at error level
/// (r2d2's own handler): about 250 lines in 20 s per instance, burying everything else.
/// The cause is now said once, then at most every 30 s while it lasts.
#[actix_web::test]
async fn a_postgres_outage_is_logged_once_not_at_every_connection_attempt() {
    let pg = OwnPostgres::start();
    let url = fresh_postgres_database(&pg.url());
    let served = crate::binary::Served::start_on_database("info", &url);
    pg.stop();
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let resp = client
            .get(format!("{}/readyz", served.url))
            .send()
            .await
            .expect("readyz");
        assert_eq!(resp.status(), 503);
    }
    served.line_with(&["database connection failed"]).await;
    let lines = served.lines();
    let said = lines
        .iter()
        .filter(|line| line.contains("database connection failed"))
        .count();
    assert_eq!(said, 1, "{lines:#?}");
    assert!(
        !lines.iter().any(|line| line.contains(" r2d2]")),
        "{lines:#?}"
    );
}

/// While Redis is down, other instances' events reach a stream only through the event
/// log. Read every second, each read handed every stream a second's events at once, and
/// a busy ward's screen overflowed its queue (100) however fast it read: it was cut off
/// and resumed about once a second (an outside audit: 572 of 749 events at 150/s, then
/// `overflow`). With the link down the log is read every 50 ms.
#[actix_web::test]
async fn while_redis_is_down_a_busy_stream_on_another_instance_is_not_cut_off() {
    let mut redis = OwnRedis::start();
    let every_second = |c: &mut vigil::config::Config| {
        c.redis_url = Some(redis.url());
        c.tail_poll = Duration::from_secs(1);
    };
    let a = spawn_app_with(every_second).await;
    let b = spawn_app_on(&a.database_url, every_second).await;
    broker_connected(&b).await;
    let mut on_b = b.sse(&admin(), "patient_id=*").await;
    on_b.connected().await;
    redis.stop();
    eventually("B's broker reconnecting", || broker_is(&b, "reconnecting")).await;
    busy_ward_reaches_another_instance_uncut(a, &b, &mut on_b).await;
}

/// The same when only the other instance cannot publish (here: it has no Redis at all)
/// while this one's link is up: once a read of the log finds events no message
/// announced, the log is read again 50 ms later, for as long as reads keep finding some.
#[actix_web::test]
async fn events_of_an_instance_that_cannot_publish_reach_a_busy_stream_uncut() {
    let redis = shared_redis_url();
    let a = spawn_app_with(|c| c.tail_poll = Duration::from_secs(1)).await;
    let b = spawn_app_on(&a.database_url, |c| {
        c.redis_url = Some(redis.clone());
        c.tail_poll = Duration::from_secs(1);
    })
    .await;
    broker_connected(&b).await;
    let mut on_b = b.sse(&admin(), "patient_id=*").await;
    on_b.connected().await;
    // The first read that finds A's events starts the quick reads: the first event
    // raised alone, so that the burst after it is read in small steps.
    let first = a.raise("busy-ward", "high").await;
    assert_eq!(on_b.next_alert_event().await.id, first["seq"].to_string());
    busy_ward_reaches_another_instance_uncut(a, &b, &mut on_b).await;
}

/// Raises 300 alerts on `a`, four producers at once (hundreds a second), and checks that
/// `on_b`, a stream on `b` hearing of them only through the log, gets all of them in
/// order without being cut off.
async fn busy_ward_reaches_another_instance_uncut(a: TestApp, b: &TestApp, on_b: &mut SseClient) {
    let a = std::sync::Arc::new(a);
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let a = std::sync::Arc::clone(&a);
            actix_web::rt::spawn(async move {
                for _ in 0..75 {
                    a.raise("busy-ward", "high").await;
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    while seen.len() < 300 {
        let event = on_b
            .next_event(WAIT)
            .await
            .unwrap_or_else(|| panic!("B's stream ended after {} events", seen.len()));
        match event.event.as_str() {
            "alert" => seen.push(event.id.parse::<i64>().expect("a sequence number")),
            "heartbeat" => {}
            other => panic!("B's stream said {other} after {} events", seen.len()),
        }
    }
    for producer in producers {
        producer.await.expect("producer");
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    let stats = b.stats().await;
    assert_eq!(stats["queue_overflows"], 0, "{stats}");
}

/// On PostgreSQL, care-team writes take turns within an instance. A write waiting for
/// its turn held a pooled connection while it waited, so a few writes queued behind
/// one held up (here by a lock on the table) took the whole pool, and every read — the
/// screens' lists, stream openings, readiness — waited for a connection and got 503.
/// Waiting writes now hold no connection; reads go on.
#[actix_web::test]
async fn care_team_writes_waiting_their_turn_leave_the_pool_to_reads() {
    use diesel::RunQueryDsl;

    let pg = OwnPostgres::start();
    let url = fresh_postgres_database(&pg.url());
    let app = spawn_app_on(&url, |c| c.database.pool_size = 4).await;
    let mut lock = lock_care_team(&url);
    let puts: Vec<_> = (0..6)
        .map(|i| {
            let (client, url) = (
                app.client.clone(),
                app.url(&format!("/api/v1/patients/held/care-team/u{i}")),
            );
            tokio::spawn(async move {
                client
                    .put(url)
                    .bearer_auth(admin())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    care_team_lock_waited_on(&url, "%").await;
    for _ in 0..3 {
        let list = app.get("/api/v1/alerts", &admin()).await;
        assert_eq!(list.status(), 200, "a read while care-team writes wait");
    }
    diesel::sql_query("COMMIT")
        .execute(&mut lock)
        .expect("release the lock");
    for put in puts {
        let status = put.await.expect("task").expect("an answer");
        assert_eq!(
            status, 201,
            "each write is carried out once the lock is gone"
        );
    }
}

/// `vigil_events_pruned_total` of one instance.
async fn pruned(app: &TestApp) -> f64 {
    metric_sample(&app.metrics_text().await, "vigil_events_pruned_total", &[]).unwrap_or_default()
}

/// Two instances pruning one event log at once (every 50 ms each): every aged event is
/// deleted once — the two counters add up to exactly the events aged, with neither
/// instance's deletion failing on the other's — and a resume on either instance obeys
/// the one mark they share.
#[actix_web::test]
async fn two_instances_prune_one_log_together_and_agree_on_the_retained_history() {
    let redis = shared_redis_url();
    let tweak = |c: &mut vigil::config::Config| {
        c.redis_url = Some(redis.clone());
        c.prune_every = Duration::from_millis(50);
    };
    let a = spawn_app_with(tweak).await;
    let b = spawn_app_on(&a.database_url, tweak).await;
    let mut raised = Vec::new();
    for n in 0..40 {
        let app = if n % 2 == 0 { &a } else { &b };
        raised.push(app.raise("prune-1", "low").await);
    }
    let through = raised
        .iter()
        .filter_map(|alert| alert["seq"].as_i64())
        .max()
        .expect("seqs");
    run_sql(
        &a.database_url,
        &[&format!(
            "UPDATE events SET created_at = created_at - 31536000000 WHERE seq <= {through}"
        )],
    );
    eventually("the 40 aged events pruned", || async {
        (pruned(&a).await + pruned(&b).await >= 40.0).then_some(())
    })
    .await;
    assert_eq!(
        pruned(&a).await + pruned(&b).await,
        40.0,
        "each event deleted once"
    );

    let kept = a.raise("prune-1", "high").await;
    for (app, from, resets) in [(&b, 1, true), (&a, through, false), (&b, through, false)] {
        let mut sse = SseClient::open(app, &admin(), "", Some(&from.to_string())).await;
        sse.connected().await;
        let first = sse.until(WAIT, |e| e.event != "heartbeat").await;
        if resets {
            assert_eq!(first.event, "reset", "from {from}: {first:?}");
        } else {
            assert_eq!(first.event, "alert", "from {from}: {first:?}");
            assert_eq!(first.id, kept["seq"].to_string(), "from {from}: {first:?}");
        }
    }
}

/// Saying how PostgreSQL is reached is a courtesy: a server that does not let Vigil's
/// user read `pg_stat_ssl` still serves alerts, with a warning that it cannot tell.
#[actix_web::test]
async fn a_postgres_that_hides_its_tls_status_still_serves_and_says_it_cannot_tell() {
    let pg = OwnPostgres::start();
    let database = fresh_postgres_database(&pg.url());
    let name = database.rsplit('/').next().expect("database name");
    run_sql(
        &database,
        &[
            "CREATE ROLE vigil_limited LOGIN",
            &format!("ALTER DATABASE {name} OWNER TO vigil_limited"),
            "ALTER SCHEMA public OWNER TO vigil_limited",
            "REVOKE SELECT ON pg_stat_ssl FROM PUBLIC",
        ],
    );
    let limited = database.replacen("postgres@", "vigil_limited@", 1);
    let served = crate::binary::Served::start_on_database("info", &limited);
    served
        .line_with(&[
            "WARN",
            "PostgreSQL: cannot tell whether it is reached over TLS",
        ])
        .await;
    let ready = reqwest::get(format!("{}/readyz", served.url))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
}
