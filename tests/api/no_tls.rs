//! A build without the `tls` feature (the default): it says so, and every setting that
//! needs TLS stops the binary at once naming the feature, before anything is opened.

use std::time::Duration;

use crate::helpers::{SECRET, vigil_exit, vigil_version};

/// Runs the binary with `args` and `settings` to its end (at most a minute); returns
/// whether it succeeded, and its stderr.
fn vigil(args: &[&str], settings: &[(&str, &str)]) -> (bool, String) {
    let (status, stderr) = vigil_exit(args, settings, Duration::from_secs(60), "vigil");
    (status.success(), stderr)
}

#[test]
fn the_version_says_the_build_has_no_tls_and_how_to_get_it() {
    let stdout = vigil_version();
    assert!(
        stdout.contains("no TLS to PostgreSQL and Redis: build with --features tls"),
        "{stdout}"
    );
}

/// `watch` given an `https://` server retried for ever, saying only "scheme is not
/// http": this build's HTTP client has no TLS.
#[test]
fn watch_given_an_https_server_stops_at_once_naming_the_feature() {
    for url in ["https://127.0.0.1:1", "HTTPS://vigil.example.org/"] {
        let (ok, stderr) = vigil(&["watch", "--url", url, "--token", "t"], &[]);
        assert!(!ok, "{url}: {stderr}");
        assert!(
            stderr.contains("--url: this build of vigil has no TLS")
                && stderr.contains("--features tls"),
            "{url}: {stderr}"
        );
    }
}

#[test]
fn a_tls_setting_stops_serve_and_migrate_naming_the_feature() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", dir.path().join("v.db").display());
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().expect("path");
    // Nothing listens at these addresses: the start must stop before trying them.
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "DATABASE_URL",
            vec![(
                "DATABASE_URL",
                "postgres://v@127.0.0.1:1/v?sslmode=verify-full",
            )],
        ),
        (
            "PGSSLMODE",
            vec![
                ("DATABASE_URL", "postgres://v@127.0.0.1:1/v"),
                ("PGSSLMODE", "require"),
            ],
        ),
        (
            "VIGIL_REDIS_URL",
            vec![
                ("DATABASE_URL", &sqlite),
                ("VIGIL_REDIS_URL", "rediss://127.0.0.1:1/"),
            ],
        ),
        (
            "VIGIL_REDIS_CA_FILE",
            vec![
                ("DATABASE_URL", &sqlite),
                ("VIGIL_REDIS_URL", "redis://127.0.0.1:1/"),
                ("VIGIL_REDIS_CA_FILE", ca),
            ],
        ),
        (
            "DATABASE_URL",
            vec![(
                "DATABASE_URL",
                "postgresql://v@127.0.0.1:1/v?sslmode=verify-ca",
            )],
        ),
    ];
    for (variable, mut settings) in cases {
        settings.extend([("VIGIL_JWT_SECRET", SECRET), ("VIGIL_BIND", "127.0.0.1:0")]);
        let commands: &[&str] = if ["DATABASE_URL", "PGSSLMODE"].contains(&variable) {
            &["serve", "migrate"]
        } else {
            &["serve"]
        };
        for command in commands {
            let (ok, stderr) = vigil(&[command], &settings);
            assert!(!ok, "{command} {settings:?}: {stderr}");
            assert!(
                stderr.contains(&format!("{variable}: "))
                    && stderr.contains("needs TLS")
                    && stderr.contains("--features tls"),
                "{command} {settings:?}: {stderr}"
            );
        }
    }
    assert!(
        !dir.path().join("v.db").exists(),
        "refused before the database was created"
    );
}

/// Settings the start-up check does not read, and a server that takes TLS only, get
/// libpq's refusal with how to get a build that has TLS: libpq's words alone ("SSL
/// support is not compiled in", "no encryption") do not say.
#[test]
fn libpq_refusing_for_want_of_tls_is_told_how_to_get_it() {
    let certificate = crate::servers::TestCertificate::new();
    let pg = crate::servers::OwnPostgres::start_tls(&certificate);
    for url in [
        format!("{}?requiressl=1", pg.url()),
        format!("{}?sslrootcert=system", pg.url()),
        pg.url(),
    ] {
        let settings = [("DATABASE_URL", url.as_str())];
        let (ok, stderr) = vigil(&["migrate"], &settings);
        assert!(!ok, "{url}: {stderr}");
        assert!(
            stderr.contains("this build leaves out") && stderr.contains("--features tls"),
            "{url}: {stderr}"
        );
    }
}
