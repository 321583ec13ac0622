//! TLS to PostgreSQL and Redis (builds with `--features tls`): against servers of the
//! test's own that take TLS connections only, so nothing here can pass over plain TCP.
//! `scripts/test.sh` runs these in a pass of their own; they never skip.

use std::time::Duration;

use diesel::{Connection, PgConnection};
use serde_json::Value;

use crate::binary::Served;
use crate::helpers::*;
use crate::servers::{OwnPostgres, OwnRedis, TestCertificate, TlsProxy};
use crate::watch::{Watcher, short};

/// `pg`'s `postgres` database over TLS, checked against `authority`.
fn verified_url(pg: &OwnPostgres, authority: &TestCertificate) -> String {
    format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        authority.cert.display()
    )
}

/// Waits until readiness reports the Redis subscription up.
async fn broker_connected(app: &TestApp) {
    eventually("the Redis subscription over TLS", || async {
        let ready: Value = app.get("/readyz", "").await.json().await.ok()?;
        (ready["broker"] == "connected").then_some(())
    })
    .await;
}

#[test]
fn the_version_says_the_build_has_tls() {
    let stdout = vigil_version();
    assert!(stdout.contains("(TLS to PostgreSQL and Redis)"), "{stdout}");
}

#[actix_web::test]
async fn alerts_are_stored_over_tls_and_reach_another_instance_through_redis_over_tls() {
    let certificate = TestCertificate::new();
    let pg = OwnPostgres::start_tls(&certificate);
    let redis = OwnRedis::start_tls(&certificate);
    // The servers refuse what is not TLS, so the instances below cannot fall back to it.
    let plain = PgConnection::establish(&format!("{}?sslmode=disable", pg.url()));
    assert!(
        plain
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no encryption")),
        "PostgreSQL took a connection without TLS: {:?}",
        plain.err()
    );

    let database_url = fresh_postgres_database(&verified_url(&pg, &certificate));
    let tweak = |c: &mut vigil::config::Config| {
        c.redis_url = Some(redis.url());
        c.redis_ca_pem = Some(certificate.pem());
        // No event-log poll: the other instance hears of an alert through Redis only.
        c.tail_poll = Duration::from_secs(3600);
    };
    let a = spawn_app_on(&database_url, tweak).await;
    let b = spawn_app_on(&database_url, tweak).await;
    for app in [&a, &b] {
        broker_connected(app).await;
    }
    a.assign("p1", "alice").await;
    let nurse = token("alice", "nurse", None);
    let mut on_a = a.sse(&nurse, "patient_id=p1").await;
    on_a.connected().await;
    let mut on_b = b.sse(&nurse, "patient_id=p1").await;
    on_b.connected().await;

    let alert = a.raise("p1", "critical").await;
    let id = alert["id"].as_str().expect("id").to_owned();
    on_b.until(WAIT, |e| e.event == "alert" && e.data.contains(&id))
        .await;
    let acked = b.ack(&nurse, &id, "acknowledged", None).await;
    assert_eq!(acked.status(), 200);
    on_a.until(WAIT, |e| {
        e.event == "alert_updated" && e.data.contains(&id) && e.data.contains("acknowledged")
    })
    .await;

    // Every connection of the instances to the database is encrypted.
    run_sql(
        &database_url,
        &["DO $$ BEGIN
             IF (SELECT count(*) FILTER (WHERE NOT s.ssl) > 0 OR count(*) FILTER (WHERE s.ssl) = 0
                 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid())
             THEN RAISE EXCEPTION 'an instance connected without TLS';
             END IF;
           END $$"],
    );
}

#[actix_web::test]
async fn a_redis_server_whose_certificate_the_ca_file_did_not_sign_is_refused_and_said() {
    let certificate = TestCertificate::new();
    let redis = OwnRedis::start_tls(&certificate);
    let stranger = TestCertificate::new();
    let served = Served::start_with(
        "info",
        &[
            ("VIGIL_REDIS_URL", &redis.url()),
            ("VIGIL_REDIS_CA_FILE", stranger.cert.to_str().expect("path")),
        ],
    );
    served
        .line_with(&[
            "INFO",
            "Redis at 127.0.0.1, over TLS, its certificate and name checked (rediss://)",
        ])
        .await;
    served
        .line_with(&[
            "redis subscriber cannot connect",
            "certificate verify failed",
        ])
        .await;
    let ready: Value = reqwest::get(format!("{}/readyz", served.url))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("JSON");
    assert_eq!(ready["broker"], "reconnecting", "{ready}");
}

/// Runs `vigil <command>` on `database_url` to its end (at most a minute); returns its
/// exit status and stderr.
fn vigil(command: &str, database_url: &str) -> (std::process::ExitStatus, String) {
    let settings = [
        ("DATABASE_URL", database_url),
        ("VIGIL_JWT_SECRET", SECRET),
        ("VIGIL_BIND", "127.0.0.1:0"),
    ];
    vigil_exit(&[command], &settings, Duration::from_secs(60), command)
}

#[actix_web::test]
async fn a_postgres_server_whose_certificate_sslrootcert_did_not_sign_is_refused_at_start() {
    let certificate = TestCertificate::new();
    let pg = OwnPostgres::start_tls(&certificate);
    let stranger = TestCertificate::new();
    for command in ["migrate", "serve"] {
        // Still running a minute on would fail `vigil_exit` itself.
        let (status, stderr) = vigil(command, &verified_url(&pg, &stranger));
        assert!(!status.success(), "{command}: {status:?} {stderr}");
        assert!(
            stderr.contains("certificate verify failed"),
            "{command}: {stderr}"
        );
    }
    // The right authority is all it takes, and the log says the link is encrypted.
    let (status, stderr) = vigil("migrate", &verified_url(&pg, &certificate));
    assert!(status.success(), "{stderr}");
    let served = Served::start_on_database("info", &verified_url(&pg, &certificate));
    served
        .line_with(&[
            "INFO",
            "PostgreSQL at 127.0.0.1, over TLS, its certificate and name checked (sslmode=verify-full)",
        ])
        .await;
}

/// `sslmode=require` encrypts without checking who answers, and its start-up line read
/// "over TLS" as `verify-full`'s did: it now says the name is not checked (and warns when
/// the server is on another host, which `link_security`'s unit tests cover).
#[actix_web::test]
async fn a_postgres_link_under_sslmode_require_says_its_name_is_not_checked() {
    let certificate = TestCertificate::new();
    let pg = OwnPostgres::start_tls(&certificate);
    let url = fresh_postgres_database(&format!("{}?sslmode=require", pg.url()));
    let served = Served::start_on_database("info", &url);
    served
        .line_with(&[
            "INFO",
            "PostgreSQL at 127.0.0.1, over TLS (on this host), its name not checked (sslmode=require)",
        ])
        .await;
}

/// `vigil watch` could not reach an `https://` server in any build (its HTTP client had
/// no TLS): behind the TLS proxy deployment.md describes, a nurse at a terminal saw
/// nothing. The TLS build reaches it, trusting the authorities OpenSSL is told of
/// (`SSL_CERT_FILE`), and refuses a certificate nobody vouched for.
#[actix_web::test]
async fn watch_follows_a_server_behind_https_and_refuses_an_unknown_certificate() {
    let certificate = TestCertificate::new();
    let app = spawn_app().await;
    let target = app
        .address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("the app's port");
    let proxy = TlsProxy::start(&certificate, target);
    let url = format!("https://localhost:{}", proxy.port);
    let trusted = certificate.cert.to_str().expect("path");

    let watch = Watcher::start_with(&url, &admin(), &[("SSL_CERT_FILE", trusted)]);
    watch.says("connected as root").await;
    let alert = app.raise("p-https", "critical").await;
    let line = watch.says(&short(&alert)).await;
    assert!(line.contains("p-https"), "{line}");

    let stranger = TestCertificate::new();
    let untrusted = stranger.cert.to_str().expect("path");
    let refused = Watcher::start_with(&url, &admin(), &[("SSL_CERT_FILE", untrusted)]);
    let complaint = refused.complains("cannot connect").await;
    assert!(complaint.contains("certificate"), "{complaint}");
}

/// `rediss://` to a plain port waits for an answer to its TLS greeting that never comes,
/// and was logged as "no answer within 2s" or "timed out": the line now says the scheme
/// may be wrong.
#[actix_web::test]
async fn a_rediss_url_to_a_plain_port_is_told_to_use_redis() {
    let redis = OwnRedis::start();
    let tls = redis.url().replacen("redis://", "rediss://", 1);
    let served = Served::start_with("info", &[("VIGIL_REDIS_URL", &tls)]);
    let line = served
        .line_with(&["WARN", "redis subscriber cannot connect"])
        .await;
    assert!(
        line.contains("if that port takes plain connections, give the URL as redis://"),
        "{line}"
    );
}
