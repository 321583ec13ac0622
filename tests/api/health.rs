//! Liveness, readiness, metrics, and the embedded migrations run forwards and backwards.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use std::time::Duration;

use diesel::{Connection, RunQueryDsl};
use reqwest::Method;
use serde_json::{Value, json};
use vigil::config::{DatabaseConfig, SqliteSync};
use vigil::db::migrate::{revert_all, run_pending};
use vigil::db::pool::{AnyConnection, build_pool};

use crate::helpers::*;

#[actix_web::test]
async fn healthz_answers_200_without_credentials() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("JSON"),
        json!({"status": "ok"})
    );
}

#[actix_web::test]
async fn readyz_reports_the_database_reachable() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
}

#[actix_web::test]
async fn metrics_are_prometheus_text_and_count_published_events() {
    let app = spawn_app().await;
    let scrape = || async {
        let resp = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain"),
            "Prometheus text format, not {content_type}"
        );
        resp.text().await.expect("text")
    };
    let before = scrape().await;
    assert!(
        before.contains("# TYPE vigil_events_published_total counter"),
        "{before}"
    );
    assert_eq!(
        metric_sample(&before, "vigil_events_published_total", &[]),
        Some(0.0)
    );

    let alert = app.raise("123", "high").await;
    assert_eq!(
        app.ack(
            &admin(),
            alert["id"].as_str().expect("id"),
            "acknowledged",
            None
        )
        .await
        .status(),
        200
    );
    eventually("two events counted as published", || async {
        (metric_sample(&scrape().await, "vigil_events_published_total", &[]) == Some(2.0))
            .then_some(())
    })
    .await;
}

fn database_config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: url.to_owned(),
        sqlite_sync: SqliteSync::Normal,
        wal_limit_bytes: vigil::config::DEFAULT_WAL_LIMIT_BYTES,
        pool_size: 2,
    }
}

/// Whether the `alerts` table answers a query on this connection.
fn alerts_table_exists(conn: &mut AnyConnection) -> bool {
    let query = diesel::sql_query("SELECT id FROM alerts");
    match conn {
        AnyConnection::Sqlite(c) => query.execute(c).is_ok(),
        AnyConnection::Postgresql(c) => c.transaction(|t| query.execute(t)).is_ok(),
    }
}

/// On SQLite the write-ahead log's length is exported, so an operator sees a log held
/// back from starting over; on PostgreSQL there is no such file and no such metric.
#[actix_web::test]
async fn metrics_show_the_sqlite_write_ahead_log_length_on_sqlite_only() {
    let app = spawn_app().await;
    app.raise("wal-metric", "low").await;
    let text = app.metrics_text().await;
    // Without Redis there is no broker to be connected to.
    assert_eq!(metric_sample(&text, "vigil_broker_connected", &[]), None);
    assert_eq!(
        metric_sample(
            &text,
            "vigil_broker_failures_total",
            &[("task", "publisher")]
        ),
        None
    );
    let sample = metric_sample(&text, "vigil_sqlite_wal_bytes", &[]);
    let wal = (!app.database_url.starts_with("postgres"))
        .then(|| format!("{}-wal", app.database_url.trim_start_matches("sqlite://")));
    match wal {
        Some(wal) => {
            let on_disk = std::fs::metadata(&wal).expect("the WAL file exists").len();
            assert!(on_disk > 0, "a commit wrote to the log");
            assert_eq!(
                sample,
                Some(on_disk as f64),
                "the metric is the file's length"
            );
        }
        None => assert_eq!(sample, None, "no WAL metric on PostgreSQL"),
    }
}

/// A database named by a `file:` URI, query and all, has its log watched too: the server
/// asks SQLite which file it opened instead of reading the URL itself.
#[actix_web::test]
async fn the_write_ahead_log_metric_follows_a_database_named_by_a_file_uri() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("uri.db");
    let app = spawn_app_on(&format!("file:{}?mode=rwc", db.display()), |_| {}).await;
    app.raise("wal-uri", "low").await;
    let on_disk = std::fs::metadata(format!("{}-wal", db.display()))
        .expect("the WAL file exists beside the file the URI names")
        .len();
    assert!(on_disk > 0, "a commit wrote to the log");
    assert_eq!(
        metric_sample(&app.metrics_text().await, "vigil_sqlite_wal_bytes", &[]),
        Some(on_disk as f64),
        "the metric is that file's length"
    );
}

#[actix_web::test]
async fn migrations_run_up_down_and_up_again_on_a_fresh_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database_url(&dir, "migrations.db");
    let pool = build_pool(&database_config(&url)).expect("pool");
    let mut conn = pool.get().expect("connection");

    let applied = run_pending(&mut conn).expect("migrations up");
    assert!(
        !applied.is_empty(),
        "a fresh database has migrations to run"
    );
    assert!(alerts_table_exists(&mut conn), "the schema exists after up");
    assert_eq!(
        run_pending(&mut conn).expect("up again").len(),
        0,
        "nothing left to apply"
    );

    let mut reverted = revert_all(&mut conn).expect("migrations down");
    reverted.reverse();
    assert_eq!(reverted, applied, "every applied migration reverts");
    assert!(
        !alerts_table_exists(&mut conn),
        "the schema is gone after down"
    );

    let reapplied = run_pending(&mut conn).expect("migrations up again");
    assert_eq!(
        reapplied, applied,
        "down left nothing behind that blocks up"
    );
    assert!(alerts_table_exists(&mut conn));
    drop(conn);
    drop(pool);

    let app = spawn_app_on(&url, |_| {}).await;
    let alert = app.raise("123", "critical").await;
    assert_eq!(
        alert["seq"], 1,
        "the re-created event log starts from the beginning"
    );
    let fetched = app
        .get_ok(
            &format!("/api/v1/alerts/{}", alert["id"].as_str().expect("id")),
            &admin(),
        )
        .await;
    assert_eq!(fetched["id"], alert["id"]);
}

#[actix_web::test]
async fn instances_started_together_on_a_fresh_database_all_come_up() {
    // Several instances of one deployment start at once (a rollout, a restarted host):
    // each runs the embedded migrations at start, and none may fail for the others.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database_url(&dir, "together.db");
    const INSTANCES: usize = 4;
    let start = std::sync::Arc::new(std::sync::Barrier::new(INSTANCES));
    let starting: Vec<_> = (0..INSTANCES)
        .map(|_| {
            let (url, start) = (url.clone(), std::sync::Arc::clone(&start));
            std::thread::spawn(move || {
                let pool = build_pool(&database_config(&url)).map_err(|e| e.to_string())?;
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                start.wait();
                run_pending(&mut conn).map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut applied = Vec::new();
    for instance in starting {
        let result = instance.join().expect("the instance's thread");
        applied.push(result.expect("every instance's migrations succeed"));
    }
    let ran: Vec<usize> = applied.iter().map(Vec::len).collect();
    assert_eq!(
        ran.iter().filter(|&&n| n > 0).count(),
        1,
        "one instance applies the migrations, the others find them applied: {ran:?}"
    );

    let app = spawn_app_on(&url, |_| {}).await;
    let alert = app.raise("123", "critical").await;
    assert_eq!(alert["seq"], 1, "the schema is whole");
}

#[test]
fn serve_on_a_taken_port_exits_non_zero_naming_vigil_bind_without_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let port = taken.local_addr().expect("its address").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = format!("127.0.0.1:{port}");
    let database_url = format!("sqlite://{}", dir.path().join("v.db").display());
    let (status, stderr) = vigil_exit(
        &["serve"],
        &[
            ("VIGIL_BIND", bind.as_str()),
            ("DATABASE_URL", database_url.as_str()),
            ("VIGIL_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("RUST_LOG", "warn"),
        ],
        Duration::from_secs(60),
        "vigil serve on a taken port",
    );
    assert!(!status.success(), "a taken port is fatal: {stderr}");
    assert!(
        stderr.contains(&format!("VIGIL_BIND: {bind}: ")) && stderr.contains("in use"),
        "the message names the variable, the address and the cause: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "and nothing panics: {stderr}");
    // Found before the database is touched: a new database was created and migrated
    // first, and left behind.
    assert!(!dir.path().join("v.db").exists(), "no database was created");
    drop(taken);
}

/// env_logger would ignore a filter it cannot parse and log at its default: a typo in
/// `RUST_LOG` is refused like any other bad setting (DESIGN: "a bad value makes `vigil
/// serve` exit non-zero at once with a message that names the variable").
#[test]
fn a_log_filter_that_does_not_parse_stops_serve_naming_rust_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}", dir.path().join("v.db").display());
    // Each of these started the server with its log (access and audit lines included)
    // silently off.
    for (spec, says) in [
        ("vigil=[[[", "RUST_LOG: error parsing logger filter"),
        ("", "RUST_LOG: empty"),
        ("infoo", "RUST_LOG: `infoo` would be read as a module name"),
        ("inf", "did you mean `info`?"),
        ("verbose", "RUST_LOG: `verbose` is read as a module name"),
    ] {
        let (status, stderr) = vigil_exit(
            &["serve"],
            &[
                ("VIGIL_BIND", "127.0.0.1:0"),
                ("DATABASE_URL", database_url.as_str()),
                ("VIGIL_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("RUST_LOG", spec),
            ],
            Duration::from_secs(60),
            "vigil serve with a bad RUST_LOG",
        );
        assert!(!status.success(), "{spec:?} is fatal: {stderr}");
        assert!(
            stderr.contains(says),
            "{spec:?}: the message names the variable: {stderr}"
        );
    }
}

/// A setting that is not UTF-8 stopped `vigil` with clap's "invalid UTF-8 was detected in
/// one or more arguments", naming nothing, and a `RUST_LOG` that is not UTF-8 was ignored
/// (the default level used). Each is refused naming the variable.
#[test]
fn a_setting_that_is_not_utf8_stops_vigil_naming_it() {
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}", dir.path().join("v.db").display());
    let not_utf8 = std::ffi::OsStr::from_bytes(b"30\xff");
    for name in [
        "VIGIL_HEARTBEAT_SECS",
        "RUST_LOG",
        "DATABASE_URL",
        "VIGIL_JWT_ISSUER",
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("serve")
            .envs(exit_env(&database_url))
            .env(name, not_utf8)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run vigil");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}: not valid UTF-8")),
            "{name}: the message names the variable: {stderr}"
        );
    }
}

/// The environment of a `vigil` run that must stop at start: any port, `database_url`,
/// a valid secret, warnings only.
fn exit_env(database_url: &str) -> [(&'static str, &str); 4] {
    [
        ("VIGIL_BIND", "127.0.0.1:0"),
        ("DATABASE_URL", database_url),
        ("VIGIL_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("RUST_LOG", "warn"),
    ]
}

#[test]
fn a_database_that_cannot_be_opened_stops_serve_and_migrate_naming_database_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-directory").join("v.db");
    let database_url = format!("sqlite://{}", missing.display());
    for command in ["serve", "migrate"] {
        let (status, stderr) = vigil_exit(
            &[command],
            &exit_env(&database_url),
            Duration::from_secs(60),
            "vigil with a database in a missing directory",
        );
        assert!(!status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("DATABASE_URL: cannot open the database")
                && stderr.contains("unable to open database file")
                && stderr.contains(&missing.display().to_string())
                && stderr.contains("its directory does not exist"),
            "{command}: the message names the variable and the cause: {stderr}"
        );
        assert!(
            !stderr.contains("timed out"),
            "{command}: reported from the first attempt, not after the pool's wait: {stderr}"
        );
    }
    // A path that is a directory reads the same in SQLite's words: told apart.
    let database_url = format!("sqlite://{}", dir.path().display());
    let (status, stderr) = vigil_exit(
        &["serve"],
        &exit_env(&database_url),
        Duration::from_secs(60),
        "vigil with a directory as its database",
    );
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("it is a directory"), "{stderr}");
    // A file that is not SQLite's was told to check the directory's permissions.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, [0x5a_u8; 4096]).expect("write junk");
    let database_url = format!("sqlite://{}", junk.display());
    for command in ["serve", "migrate"] {
        let (status, stderr) = vigil_exit(
            &[command],
            &exit_env(&database_url),
            Duration::from_secs(60),
            "vigil with a file that is not a database",
        );
        assert!(!status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("file is not a database")
                && stderr.contains("a file that is not an SQLite database")
                && !stderr.contains("check that this user may"),
            "{command}: {stderr}"
        );
    }
}

/// A PostgreSQL that accepts the connection and never answers (a frozen host, a stuck
/// proxy) held `vigil serve` and `vigil migrate` silent for ever: libpq waits without
/// limit unless told. They stop naming the timeout, after the default bound or the
/// URL's own `connect_timeout`.
#[test]
fn a_postgresql_that_never_answers_stops_serve_and_migrate_naming_the_timeout() {
    // The kernel completes the handshake for the backlog; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let by_default = format!("postgres://vigil@127.0.0.1:{port}/vigil");
    let by_url = format!("{by_default}?connect_timeout=2");
    let runs = [("serve", by_default), ("migrate", by_url)].map(|(command, url)| {
        std::thread::spawn(move || {
            let (status, stderr) = vigil_exit(
                &[command],
                &exit_env(&url),
                Duration::from_secs(60),
                "vigil against a PostgreSQL that never answers",
            );
            (command, url, status, stderr)
        })
    });
    for run in runs {
        let (command, url, status, stderr) = run.join().expect("the run");
        assert!(!status.success(), "{command} {url}: {stderr}");
        assert!(
            stderr.contains("DATABASE_URL")
                && stderr.contains("timeout expired")
                && stderr.contains("connect_timeout"),
            "{command} {url}: the message names the timeout and how to set it: {stderr}"
        );
    }
    drop(silent);
}

/// A rollback onto a database a newer Vigil migrated: this binary does not know its
/// schema, so it refuses to migrate or serve it, naming the unknown migration.
#[test]
fn a_database_migrated_by_a_newer_vigil_is_refused_naming_the_migration() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("newer.db");
    let database_url = format!("sqlite://{}", file.display());
    let env = exit_env(&database_url);
    let (status, stderr) = vigil_exit(&["migrate"], &env, Duration::from_secs(60), "migrate");
    assert!(status.success(), "a fresh database migrates: {stderr}");
    let mut c = SqliteConnection::establish(&file.display().to_string()).expect("open");
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000001')")
        .execute(&mut c)
        .expect("a newer migration");
    for command in ["migrate", "serve"] {
        let (status, stderr) = vigil_exit(&[command], &env, Duration::from_secs(60), command);
        assert!(!status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("migrations this Vigil does not know (29991231000001)"),
            "{command}: {stderr}"
        );
    }
}

/// A mistyped `DATABASE_URL` naming another application's SQLite file: Vigil added its
/// nine tables beside the other application's (or failed half-way on a table name both
/// use). A database with tables but no migration history is refused, untouched.
#[test]
fn another_applications_database_is_refused_untouched() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("other-app.db");
    let mut c = SqliteConnection::establish(&file.display().to_string()).expect("open");
    diesel::sql_query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .execute(&mut c)
        .expect("another application's table");
    let database_url = format!("sqlite://{}", file.display());
    let env = exit_env(&database_url);
    for command in ["migrate", "serve"] {
        let (status, stderr) = vigil_exit(&[command], &env, Duration::from_secs(60), command);
        assert!(!status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("tables of another application (users)"),
            "{command}: {stderr}"
        );
    }
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let tables: Vec<String> =
        diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .load::<Name>(&mut c)
            .expect("tables")
            .into_iter()
            .map(|t| t.name)
            .collect();
    assert_eq!(tables, vec!["users"], "nothing was added");
    // Nor was its journal mode switched to WAL (which an application reading the file
    // with an older SQLite, or from a read-only directory, could no longer open).
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result::<Mode>(&mut c)
        .expect("journal mode");
    assert_eq!(
        mode.journal_mode, "delete",
        "the journal mode is left as it was"
    );
}

#[actix_web::test]
async fn the_pages_answer_head_like_get_without_a_body_and_refuse_to_be_framed() {
    let app = spawn_app().await;
    for page in ["/", "/legacy"] {
        let resp = app.client.head(app.url(page)).send().await.expect("HEAD");
        assert_eq!(resp.status(), 200, "HEAD {page}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/html"),
            "HEAD {page} describes the HTML page"
        );
        // Never framed by another site (a framed, signed-in console could be clicked
        // into acknowledging alerts).
        assert_eq!(resp.headers()["x-frame-options"], "DENY", "{page}");
        assert!(
            header_text(resp.headers(), "content-security-policy")
                .contains("frame-ancestors 'none'"),
            "{page}"
        );
        assert!(
            resp.bytes().await.expect("body").is_empty(),
            "no body on HEAD {page}"
        );
    }
}

/// The Swagger UI (whose "Try it out" sends the session cookie) and the migration guide
/// had no security headers, so another site could frame them (an outside audit). Every
/// answer now refuses framing and sniffing; the console pages keep their own policy.
#[actix_web::test]
async fn documents_and_api_answers_refuse_to_be_framed_or_sniffed() {
    let app = spawn_app().await;
    for path in [
        "/api/docs/",
        "/api/docs/index.html",
        "/api/v1/openapi.json",
        "/docs/migration",
        "/healthz",
    ] {
        let resp = app.client.get(app.url(path)).send().await.expect("GET");
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            resp.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert!(
            header_text(resp.headers(), "content-security-policy")
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    let console = app.client.get(app.url("/")).send().await.expect("GET /");
    assert!(
        header_text(console.headers(), "content-security-policy").contains("default-src 'self'"),
        "the console keeps its own policy"
    );
}

/// Probes and documents answer HEAD as GET does, minus the body (RFC 9110 §9.1: uptime
/// checks and load balancers probe with it).
#[actix_web::test]
async fn probes_and_documents_answer_head_like_get_without_a_body() {
    let app = spawn_app().await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs/migration",
        "/api/v1/openapi.json",
    ] {
        head_answers_as_get(&app, path, "", 200).await;
    }
}

/// Asks `path` with GET and with HEAD: both answer `status`, HEAD with GET's
/// `Content-Type` and no body.
async fn head_answers_as_get(app: &TestApp, path: &str, token: &str, status: u16) {
    let get = app.send(Method::GET, path, token, None).await;
    let head = app.send(Method::HEAD, path, token, None).await;
    assert_eq!(get.status(), status, "GET {path}");
    assert_eq!(head.status(), status, "HEAD {path} answers as GET does");
    assert_eq!(
        head.headers().get("content-type"),
        get.headers().get("content-type"),
        "HEAD {path} describes what GET returns"
    );
    assert!(
        !get.bytes().await.expect("GET body").is_empty(),
        "GET {path} has a body"
    );
    assert!(
        head.bytes().await.expect("HEAD body").is_empty(),
        "no body on HEAD {path}"
    );
}

/// The token-guarded reads answer HEAD with GET's status and headers and no body: the
/// same token check (401), the same scope (403/404), the same validation (422).
#[actix_web::test]
async fn the_api_reads_answer_head_as_get_does_without_a_body() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let alert = app.raise("123", "high").await;
    let id = alert["id"].as_str().expect("id");
    let nurse = token("alice", "nurse", None);
    let cases = [
        ("/api/v1/alerts", admin(), 200),
        ("/api/v1/alerts?patient_id=123", nurse.clone(), 200),
        (&format!("/api/v1/alerts/{id}") as &str, nurse.clone(), 200),
        ("/api/v1/alerts/stream/stats", admin(), 200),
        ("/api/v1/patients/123/care-team", admin(), 200),
        ("/api/v1/patients/123/care-team/alice", admin(), 200),
        ("/api/v1/alerts", String::new(), 401),
        ("/api/v1/alerts?patient_id=999", nurse.clone(), 403),
        ("/api/v1/alerts/stream/stats", nurse.clone(), 403),
        (
            "/api/v1/alerts/01a2ffff-0000-7000-8000-000000000000",
            admin(),
            404,
        ),
        ("/api/v1/alerts?limit=0", admin(), 422),
    ];
    for (path, who, status) in cases {
        head_answers_as_get(&app, path, &who, status).await;
    }
    for stream in ["/api/v1/alerts/stream", "/ws"] {
        let head = app.send(Method::HEAD, stream, &admin(), None).await;
        assert_eq!(
            head.status(),
            405,
            "HEAD {stream}: a stream has no headers-only form"
        );
        assert_eq!(head.headers()["allow"], "GET", "HEAD {stream}");
    }
}

/// What issue #7 asks `/metrics` to show, each moved by a real stream: open streams by
/// transport and role, events published and deliveries, resumes and replayed events,
/// the publish → write latency by transport, and the process's resident memory.
#[actix_web::test]
async fn metrics_follow_streams_deliveries_resumes_and_publish_to_write_latency() {
    let app = spawn_app().await;
    // Before any stream: every series is there at zero, so a dashboard has a value (and
    // `rate()` sees the first increment).
    let text = app.metrics_text().await;
    for (name, label, values) in [
        (
            "vigil_limit_rejections_total",
            "limit",
            &[
                "per_user",
                "instance",
                "shutdown",
                "write_rate",
                "body_timeout",
            ][..],
        ),
        (
            "vigil_ws_frames_total",
            "type",
            &[
                "subscribe",
                "ack",
                "ping",
                "oversize",
                "malformed",
                "unknown",
                "binary",
                "fragment",
                "flood",
            ],
        ),
        ("vigil_write_failures_total", "cause", &WRITE_FAILURE_CAUSES),
    ] {
        for value in values {
            assert_eq!(
                metric_sample(&text, name, &[(label, value)]),
                Some(0.0),
                "{name}{{{label}={value}}}: {text}"
            );
        }
    }
    for transport in ["sse", "ws"] {
        for role in ROLES {
            assert_eq!(
                metric_sample(
                    &text,
                    "vigil_connections",
                    &[("transport", transport), ("role", role)]
                ),
                Some(0.0),
                "{transport}/{role} before any stream: {text}"
            );
        }
        assert_eq!(
            metric_sample(
                &text,
                "vigil_delivery_seconds_count",
                &[("transport", transport)]
            ),
            Some(0.0),
            "{transport}: {text}"
        );
    }
    app.assign("123", "alice").await;
    let mut sse = app
        .sse(&token("alice", "nurse", None), "patient_id=123")
        .await;
    sse.connected().await;
    let mut ws = app.ws(&admin(), "patient_id=123").await;
    ws.until_type("connected").await;
    let text = app.metrics_text().await;
    let open = |transport, role| {
        metric_sample(
            &text,
            "vigil_connections",
            &[("transport", transport), ("role", role)],
        )
    };
    assert_eq!(open("sse", "nurse"), Some(1.0), "{text}");
    assert_eq!(open("ws", "admin"), Some(1.0), "{text}");
    assert!(
        metric_sample(&text, "vigil_process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0),
        "resident memory: {text}"
    );

    let alert = app.raise("123", "high").await;
    assert_eq!(data_of(&sse.next_alert_event().await)["id"], alert["id"]);
    assert_eq!(ws.until_type("alert").await["alert"]["id"], alert["id"]);
    let text = app.metrics_text().await;
    let delivered = |transport, what| {
        metric_sample(
            &text,
            &format!("vigil_delivery_seconds_{what}"),
            &[("transport", transport)],
        )
    };
    assert_eq!(
        metric_sample(&text, "vigil_events_published_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric_sample(&text, "vigil_deliveries_total", &[]),
        Some(2.0)
    );
    for transport in ["sse", "ws"] {
        assert_eq!(
            delivered(transport, "count"),
            Some(1.0),
            "{transport}: {text}"
        );
        assert!(
            delivered(transport, "sum").is_some_and(|s| s > 0.0 && s < 60.0),
            "{transport}: a publish → write time was recorded: {text}"
        );
    }

    let mut resumed = SseClient::open(&app, &admin(), "patient_id=123", Some("0")).await;
    resumed.connected().await;
    assert_eq!(
        data_of(&resumed.next_alert_event().await)["id"],
        alert["id"]
    );
    let text = app.metrics_text().await;
    assert_eq!(metric_sample(&text, "vigil_resumes_total", &[]), Some(1.0));
    assert_eq!(
        metric_sample(&text, "vigil_replayed_events_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric_sample(
            &text,
            "vigil_delivery_seconds_count",
            &[("transport", "sse")]
        ),
        Some(1.0),
        "a replayed event was not published now: it is not a publish → write sample"
    );

    sse.close();
    eventually("the closed stream leaves the gauge", || async {
        let text = app.metrics_text().await;
        (metric_sample(
            &text,
            "vigil_connections",
            &[("transport", "sse"), ("role", "nurse")],
        ) == Some(0.0))
        .then_some(())
    })
    .await;
}

fn data_of(event: &eventsource_stream::Event) -> Value {
    serde_json::from_str(&event.data).expect("event data is JSON")
}
