//! Graceful shutdown: open streams get their end (SSE stream closed, WebSocket close
//! frame) instead of hanging, and a 201 given just before stopping is durable.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::*;

#[actix_web::test]
async fn stopping_ends_open_sse_streams_and_sends_websocket_sessions_a_close_frame() {
    let app = spawn_app().await;
    let mut sse = app.sse(&admin(), "patient_id=*").await;
    sse.connected().await;
    let mut ws = app.ws(&admin(), "").await;
    assert_eq!(ws.until_type("connected").await["role"], "admin");

    let stopper = app.stopper.clone();
    let stopping = actix_web::rt::spawn(async move { stopper.stop(true).await });

    // Heartbeats may still be in flight; after them the stream must end, not hang.
    loop {
        match sse.next_event(WAIT).await {
            None => break,
            Some(event) => assert_eq!(
                event.event, "heartbeat",
                "only heartbeats before the end: {event:?}"
            ),
        }
    }
    let frame = ws
        .closed(WAIT)
        .await
        .expect("a close frame, not a dropped connection");
    assert_eq!(
        frame.code,
        CloseCode::Away,
        "1001: the server is going away ({frame:?})"
    );
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("stop completes promptly")
        .expect("stop task");
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "the server no longer answers"
    );
}

#[actix_web::test]
async fn an_alert_accepted_just_before_stopping_is_in_the_database_for_the_next_server() {
    let app = spawn_app().await;
    let alert = app.raise("123", "critical").await;
    app.stopper.stop(true).await;

    let next = spawn_app_on(&app.database_url, |_| {}).await;
    let listed = next.get_ok("/api/v1/alerts?patient_id=123", &admin()).await;
    let alerts = listed["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{listed}");
    assert_eq!(alerts[0]["id"], alert["id"]);
    assert_eq!(alerts[0]["seq"], alert["seq"]);
    assert_eq!(
        listed["last_seq"], alert["seq"],
        "the event log survived too"
    );

    // The event is also replayable: a console resuming from just before it gets it.
    let before = (alert["seq"].as_i64().expect("seq") - 1).to_string();
    let mut sse = SseClient::open(&next, &admin(), "patient_id=*", Some(&before)).await;
    sse.connected().await;
    let event = sse.next_alert_event().await;
    let data: Value = serde_json::from_str(&event.data).expect("JSON");
    assert_eq!(data["id"], alert["id"]);
}

#[actix_web::test]
async fn every_alert_answered_201_while_the_server_stops_is_in_the_database() {
    // Threat: a producer told "201 Created" for an alert that a shutdown then loses.
    let app = spawn_app().await;
    let producers: Vec<_> = (0..8)
        .map(|p| {
            let (client, url) = (app.client.clone(), app.url("/api/v1/alerts"));
            actix_web::rt::spawn(async move {
                let mut created = Vec::new();
                for i in 0..1000 {
                    let body = alert_body(&format!("p{p}-{i}"), "high");
                    let sent = client
                        .post(&url)
                        .bearer_auth(service())
                        .json(&body)
                        .send()
                        .await;
                    let Ok(resp) = sent else {
                        return (created, true);
                    };
                    if resp.status() == 201 {
                        created.push(resp.json::<Value>().await.expect("alert")["id"].clone());
                    } else {
                        assert!(resp.status().is_server_error(), "{}", resp.status());
                    }
                }
                (created, false)
            })
        })
        .collect();
    app.wait_for_stats("producers are busy", |s| s["head"].as_i64() >= Some(20))
        .await;
    app.stopper.stop(true).await;

    let mut created = Vec::new();
    for producer in producers {
        let (ids, interrupted) = producer.await.expect("producer");
        assert!(
            interrupted,
            "the stop happened while this producer was still sending"
        );
        created.extend(ids);
    }
    let next = spawn_app_on(&app.database_url, |_| {}).await;
    let mut lost = Vec::new();
    for id in &created {
        let id = id.as_str().expect("id");
        if next
            .get(&format!("/api/v1/alerts/{id}"), &admin())
            .await
            .status()
            != 200
        {
            lost.push(id);
        }
    }
    assert!(
        !created.is_empty(),
        "some alerts were accepted before the stop"
    );
    assert!(
        lost.is_empty(),
        "{} of {} alerts answered 201 are missing: {lost:?}",
        lost.len(),
        created.len()
    );
}

/// A clean stop left the last commits in `vigil.db-wal` only (the checkpointer copies the
/// log every 0.5 s and never empties it): a copy of `vigil.db` taken after the stop, as a
/// backup is, missed them (an audit: 28 of 50 alerts). The log is now copied into the file
/// and emptied as the server stops.
#[actix_web::test]
async fn after_a_clean_stop_the_database_file_alone_holds_every_alert() {
    use diesel::{Connection, RunQueryDsl};

    let mut served = crate::binary::Served::start_on_sqlite("info");
    let mut raised = Vec::new();
    for n in 0..20 {
        let alert = served.raise(&format!("backup-{n}"), "high").await;
        raised.push(alert["id"].as_str().expect("id").to_owned());
    }
    let status = served.signal_and_wait("-TERM");
    assert!(status.success(), "exit status {status:?}");
    let file = std::path::PathBuf::from(served.database_url.trim_start_matches("sqlite://"));
    let wal = std::fs::metadata(format!("{}-wal", file.display())).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the write-ahead log is empty after a clean stop");

    let backup = tempfile::tempdir().expect("tempdir");
    let copy = backup.path().join("vigil.db");
    std::fs::copy(&file, &copy).expect("copy the database file alone");
    let mut conn =
        diesel::SqliteConnection::establish(&copy.display().to_string()).expect("open the copy");
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let kept: Vec<String> = diesel::sql_query("SELECT id FROM alerts ORDER BY seq")
        .load::<Id>(&mut conn)
        .expect("alerts in the copy")
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(
        kept, raised,
        "every alert answered 201 is in the file alone"
    );
    served
        .line_with(&[
            "INFO",
            "write-ahead log copied into the database file and emptied",
        ])
        .await;
}

/// A reader that keeps the log in use (a `sqlite3` shell in a transaction, a second
/// instance) cannot be waited for long: while the last checkpoint waits, SQLite holds back
/// the other connections' writes. It gives up after a second, says so, and the server
/// exits as usual.
#[actix_web::test]
async fn a_reader_holding_the_log_at_stop_is_warned_of_and_the_stop_goes_on() {
    use diesel::{Connection, RunQueryDsl};

    let mut served = crate::binary::Served::start_on_sqlite("info");
    served.raise("held", "high").await;
    let file = served
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    let mut reader = diesel::SqliteConnection::establish(&file).expect("open the database");
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut reader)
        .expect("busy timeout");
    diesel::sql_query("BEGIN")
        .execute(&mut reader)
        .expect("begin");
    diesel::sql_query("SELECT count(*) FROM alerts")
        .execute(&mut reader)
        .expect("read inside the transaction");
    let status = served.signal_and_wait("-TERM");
    assert!(status.success(), "exit status {status:?}");
    served
        .line_with(&[
            "WARN",
            "write-ahead log not emptied at stop",
            "a sqlite3 shell",
        ])
        .await;
    diesel::sql_query("COMMIT")
        .execute(&mut reader)
        .expect("end the read");
}

/// A backup moved over the database while the server ran (refused writes say so), then a
/// clean stop: the old write-ahead log stayed beside the new file, and SQLite applied it
/// when the file was next opened, corrupting the restored file (an outside audit). The
/// log is moved aside at the stop, and the restored file opens as it was.
#[actix_web::test]
async fn a_file_moved_over_the_database_is_not_damaged_by_the_old_log_at_the_next_start() {
    use diesel::{Connection, RunQueryDsl};

    let mut backup_server = crate::binary::Served::start_on_sqlite("info");
    backup_server.raise("restored", "high").await;
    assert!(backup_server.signal_and_wait("-TERM").success());
    let backup = backup_server
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();

    let mut served = crate::binary::Served::start_on_sqlite("info");
    for n in 0..40 {
        served.raise(&format!("lost-{n}"), "high").await;
    }
    let file = served
        .database_url
        .trim_start_matches("sqlite://")
        .to_owned();
    let copy = format!("{file}.incoming");
    std::fs::copy(&backup, &copy).expect("copy the backup beside the database");
    std::fs::rename(&copy, &file).expect("move the backup over the database");
    assert!(served.signal_and_wait("-TERM").success());

    let mut conn = diesel::SqliteConnection::establish(&file).expect("open the restored file");
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .expect("integrity_check");
    assert_eq!(check.len(), 1);
    assert_eq!(check[0].integrity_check, "ok");
    #[derive(diesel::QueryableByName)]
    struct Patient {
        #[diesel(sql_type = diesel::sql_types::Text)]
        patient_id: String,
    }
    let patients: Vec<String> = diesel::sql_query("SELECT patient_id FROM alerts")
        .load::<Patient>(&mut conn)
        .expect("the restored file's alerts")
        .into_iter()
        .map(|p| p.patient_id)
        .collect();
    assert_eq!(
        patients,
        ["restored"],
        "the restored file as it was moved in"
    );
    served
        .line_with(&[
            "WARN",
            "moved aside to",
            "so that it is not applied to the new one",
        ])
        .await;
}

/// SIGHUP (a closed terminal, `vigil serve &` included) killed the process at once: no
/// stream got its end. It stops like SIGTERM: streams end, exit status 0.
#[actix_web::test]
async fn a_hangup_stops_the_server_gracefully_like_sigterm() {
    let mut served = crate::binary::Served::start("info");
    let mut stream = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts/stream", served.url))
        .bearer_auth(admin())
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    served.line_with(&["stream opened"]).await;
    let status = served.signal_and_wait("-HUP");
    assert!(status.success(), "exit status {status:?}");
    // The stream was ended by the server (a clean end of the chunked body), not cut.
    while let Some(chunk) = stream.chunk().await.expect("the stream ends cleanly") {
        assert!(!chunk.is_empty());
    }
    served.line_with(&["vigil stopped"]).await;
}

/// A second Ctrl-C (or SIGTERM) was ignored: with an upload stalled mid-body the server
/// waited out the whole 10 s grace however often it was asked. A second signal now
/// stops it at once, with status 130.
#[actix_web::test]
async fn a_second_signal_stops_at_once_instead_of_waiting_out_a_stalled_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut served = crate::binary::Served::start("info");
    let address = served.url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    // One whole request first, so the server holds this connection for certain.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: vigil\r\n\r\n")
        .await
        .expect("write");
    let mut answer = [0u8; 512];
    let n = tokio::time::timeout(WAIT, conn.read(&mut answer))
        .await
        .expect("healthz answered within WAIT")
        .expect("read");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "healthz answered");
    // Then an upload whose body never comes. `Expect: 100-continue`: the server answers
    // `100 Continue` once it has taken the request in, so the signal below cannot come
    // before it (under load it did, and the connection was closed as idle).
    let stalled = format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: vigil\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
        service()
    );
    conn.write_all(stalled.as_bytes()).await.expect("write");
    let n = tokio::time::timeout(WAIT, conn.read(&mut answer))
        .await
        .expect("100 Continue within WAIT")
        .expect("read");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    conn.write_all(b"{\"patient_id\":").await.expect("write");

    served.signal("-INT");
    served.line_with(&["shutdown signal received"]).await;
    assert!(
        served.running(),
        "the graceful stop waits for the stalled upload"
    );
    let status = served.signal_and_wait("-INT");
    assert_eq!(status.code(), Some(130), "{status:?}");
    served
        .line_with(&["WARN", "second shutdown signal: exiting"])
        .await;
}
