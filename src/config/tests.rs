//! Configuration validated as `vigil serve` reads it: every bad value is refused with
//! a message naming its variable.

use super::*;
use crate::cli::DatabaseArgs;

#[test]
fn ttl_units_are_understood() {
    assert_eq!(parse_ttl("90"), Some(Duration::from_secs(90)));
    assert_eq!(parse_ttl("30m"), Some(Duration::from_secs(1800)));
    assert_eq!(parse_ttl("8h"), Some(Duration::from_secs(28_800)));
    assert_eq!(parse_ttl("2d"), Some(Duration::from_secs(172_800)));
    assert_eq!(parse_ttl("0"), None, "a zero lifetime is useless");
    assert_eq!(parse_ttl("h"), None, "a unit without a number");
    assert_eq!(parse_ttl("5y"), None, "unknown unit");
}

#[test]
fn a_secret_never_prints() {
    let s = Secret::new("super-secret-value");
    assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
}

fn db_args(url: &str, wal_limit_mb: &str) -> DatabaseArgs {
    DatabaseArgs {
        database_url: url.to_owned(),
        sqlite_sync: "normal".to_owned(),
        db_pool_size: "8".to_owned(),
        sqlite_wal_limit_mb: wal_limit_mb.to_owned(),
    }
}

#[test]
fn the_wal_limit_is_in_mebibytes_and_must_fit() {
    let limit =
        |mb: &str| database_config(&db_args("sqlite://vigil.db", mb)).map(|c| c.wal_limit_bytes);
    let error = |mb: &str| limit(mb).err().map(|e| e.to_string());
    assert_eq!(limit("64").ok(), Some(DEFAULT_WAL_LIMIT_BYTES));
    assert_eq!(limit(" 1 ").ok(), Some(1024 * 1024));
    assert_eq!(
        error("0").as_deref(),
        Some("VIGIL_SQLITE_WAL_LIMIT_MB: expected a positive integer")
    );
    assert_eq!(
        error("99999999999999").as_deref(),
        Some("VIGIL_SQLITE_WAL_LIMIT_MB: at most 8796093022207 MiB"),
        "SQLite takes the limit as a signed 64-bit byte count"
    );
}

#[test]
fn a_database_url_neither_backend_opens_is_refused_naming_the_variable() {
    let args = |url: &str| db_args(url, "64");
    for url in [
        "sqlite://vigil.db",
        "sqlite:///var/lib/vigil/vigil.db",
        "vigil.db",
        "file:vigil.db?mode=rwc",
        "file:///var/lib/vigil/vigil.db?mode=rwc&cache=private",
        "postgres://vigil@db/vigil",
        "postgresql://vigil@db/vigil",
    ] {
        assert!(database_config(&args(url)).is_ok(), "{url}");
    }
    for (url, why) in [
        ("mysql://x/y", "unsupported scheme `mysql`"),
        ("redis://localhost/", "unsupported scheme `redis`"),
        ("sqlite://", "names no database file"),
        ("sqlite:", "names no database file"),
        // Each pooled connection would get a database of its own, and all is lost at
        // exit: the server started, and every write failed.
        (":memory:", "names no database file"),
        ("sqlite::memory:", "names no database file"),
        ("sqlite://:memory:", "names no database file"),
        ("file::memory:", "names no database file"),
        ("file:", "names no database file"),
        ("file:/x.db?mode=memory", "names no database file"),
        (
            "file:x.db?cache=shared&MODE=memory",
            "names no database file",
        ),
        // Not a URI: the options would be part of the file's name.
        ("sqlite:///var/lib/vigil/vigil.db?mode=rwc", "file: URI"),
        ("/var/lib/vigil/plain.db?cache=shared", "file: URI"),
    ] {
        let error = database_config(&args(url)).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("DATABASE_URL: ") && e.contains(why)),
            "{url}: {error:?}"
        );
    }
}

#[test]
fn periods_are_at_most_a_day_and_the_websocket_timeout_outlasts_its_ping() {
    assert_eq!(seconds("86400", "VIGIL_HEARTBEAT_SECS").ok(), Some(86_400));
    assert_eq!(
        seconds("99999999999", "VIGIL_HEARTBEAT_SECS")
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("VIGIL_HEARTBEAT_SECS: at most 86400 seconds (one day)")
    );
    let serve = |ping: &str, timeout: &str| {
        let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
        args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
        args.ws_ping_secs = ping.to_owned();
        args.ws_timeout_secs = timeout.to_owned();
        Config::from_args(&args, None).map(|c| (c.ws_ping, c.ws_timeout))
    };
    assert!(serve("30", "60").is_ok());
    for (ping, timeout) in [("100", "5"), ("30", "30")] {
        let error = serve(ping, timeout).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("VIGIL_WS_TIMEOUT_SECS: must be longer")),
            "ping {ping}, timeout {timeout}: {error:?}"
        );
    }
    // Only the ping set, up to the default timeout: the ping is named.
    let error = serve("60", crate::cli::WS_TIMEOUT_SECS)
        .err()
        .map(|e| e.to_string());
    assert!(
        error.as_deref().is_some_and(|e| e.starts_with(
            "VIGIL_WS_PING_SECS: must be shorter than VIGIL_WS_TIMEOUT_SECS (60 s, its default)"
        )),
        "{error:?}"
    );
}

#[test]
fn the_websocket_replay_limit_is_a_positive_number_of_kibibytes_up_to_a_gibibyte() {
    let replay_max = |raw: &str| {
        let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
        args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
        args.ws_replay_max_kib = raw.to_owned();
        Config::from_args(&args, None)
            .map(|c| c.ws_replay_max_bytes.get())
            .map_err(|e| e.to_string())
    };
    assert_eq!(replay_max("1024"), Ok(1024 * 1024));
    assert_eq!(replay_max("1048576"), Ok(1 << 30));
    assert_eq!(
        replay_max("1048577"),
        Err("VIGIL_WS_REPLAY_MAX_KIB: at most 1048576 (1 GiB)".to_owned())
    );
    for bad in ["0", "-1", "lots", ""] {
        assert_eq!(
            replay_max(bad),
            Err("VIGIL_WS_REPLAY_MAX_KIB: expected a positive integer".to_owned()),
            "{bad:?}"
        );
    }
}

#[test]
fn cors_origins_are_origins_a_browser_can_send() {
    assert_eq!(
        parse_origins(
            " https://Console.Example , http://localhost:5173,http://[::1]:8080,http://[::1]"
        )
        .ok(),
        Some(vec![
            "https://console.example".to_owned(),
            "http://localhost:5173".to_owned(),
            "http://[::1]:8080".to_owned(),
            "http://[::1]".to_owned(),
        ]),
        "trimmed and lower-cased, as browsers send them"
    );
    assert_eq!(
        parse_origins("https://b.example:443,http://a.example:80,https://c.example:80,http://[::1]:080,https://d.example:0443")
            .ok(),
        Some(vec![
            "https://b.example".to_owned(),
            "http://a.example".to_owned(),
            "https://c.example:80".to_owned(),
            "http://[::1]".to_owned(),
            "https://d.example".to_owned(),
        ]),
        "the scheme's default port left out, and a port written plainly, as browsers send them"
    );
    for bad in [
        "http://a.com/path",
        "https://a.com/",
        "https://a.com?x=1",
        "https://user@a.com",
        "https://a.com:99999",
        "https://a.com:",
        "ftp://a.com",
        "notaurl",
        "*",
        "https://",
        "http://[::1",
        "http://[zz]:80",
    ] {
        let error = parse_origins(bad).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("VIGIL_CORS_ORIGINS: ")),
            "{bad}: {error:?}"
        );
    }
}

#[test]
fn a_number_too_large_to_hold_says_the_largest_allowed_and_a_blank_secret_is_refused() {
    let serve = |tweak: &dyn Fn(&mut crate::cli::ServeArgs)| {
        let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
        args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
        tweak(&mut args);
        Config::from_args(&args, None).err().map(|e| e.to_string())
    };
    assert_eq!(
        serve(&|a| a.rate_limit = "99999999999".to_owned()).as_deref(),
        Some("VIGIL_RATE_LIMIT: at most 4294967295")
    );
    assert_eq!(
        serve(&|a| a.rate_limit = "-5".to_owned()).as_deref(),
        Some("VIGIL_RATE_LIMIT: expected a positive integer")
    );
    for queue in ["1000001", "18446744073709551615", "99999999999999999999999"] {
        assert_eq!(
            serve(&|a| a.client_queue = queue.to_owned()).as_deref(),
            Some("VIGIL_CLIENT_QUEUE: at most 1000000"),
            "{queue}: more panics in tokio at the first stream"
        );
    }
    assert_eq!(
        serve(&|a| a.heartbeat_secs = "99999999999999999999999".to_owned()).as_deref(),
        Some("VIGIL_HEARTBEAT_SECS: at most 86400 seconds (one day)"),
        "the setting's own limit, not the parser's"
    );
    // Only spaces is "not set" (README), whatever its length.
    for spaces in [4, 40] {
        let blank = serve(&|a| a.jwt.jwt_secret = Some(" ".repeat(spaces)));
        assert!(
            blank
                .as_deref()
                .is_some_and(|e| e.starts_with("VIGIL_JWT_SECRET: set VIGIL_JWT_SECRET")),
            "{blank:?}"
        );
    }
}

/// RFC 9745: a deprecation date, never after the sunset it leads to.
#[test]
fn the_deprecation_date_is_a_date_not_after_the_sunset() {
    let serve = |since: &str, sunset: &str| {
        let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
        args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
        args.ws_deprecated_since = since.to_owned();
        args.ws_sunset = sunset.to_owned();
        Config::from_args(&args, None).map_err(|e| e.to_string())
    };
    assert!(
        serve("2027-06-30", "2027-06-30")
            .is_ok_and(|c| c.ws_deprecated_since.to_string() == "2027-06-30")
    );
    assert_eq!(
        serve("soon", "2027-06-30").err().as_deref(),
        Some("VIGIL_WS_DEPRECATED_SINCE: expected a date YYYY-MM-DD")
    );
    assert!(serve("2027-07-01", "2027-06-30").err().is_some_and(|e| {
        e.starts_with("VIGIL_WS_DEPRECATED_SINCE: must not be after VIGIL_WS_SUNSET (2027-06-30)")
    }),);
    // Only the sunset set, before the default deprecation date: the sunset is named.
    assert!(
        serve(crate::cli::WS_DEPRECATED_SINCE, "2026-01-01")
            .err()
            .is_some_and(|e| e.starts_with(
                "VIGIL_WS_SUNSET: must not be before VIGIL_WS_DEPRECATED_SINCE (2026-11-23, its default)"
            ))
    );
}

/// A blank issuer or audience is "not set", as README says of empty settings: it had
/// become a required claim of " " that no token carries, so every token got 401.
#[test]
fn a_blank_issuer_or_audience_is_not_set_and_others_lose_their_surrounding_spaces() {
    let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
    args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
    args.jwt.jwt_issuer = Some("  ".to_owned());
    args.jwt.jwt_audience = Some(" vigil ".to_owned());
    args.jwt.jwt_public_key_file = Some(" ".to_owned());
    let jwt = jwt_config(&args.jwt, None).expect("valid");
    assert_eq!((jwt.issuer, jwt.audience), (None, Some("vigil".to_owned())));
}

/// A Redis URL Redis cannot use is refused with the other settings, before the
/// database is created and migrated.
#[test]
fn a_redis_url_redis_cannot_use_is_refused_naming_the_variable() {
    for (url, says) in [
        ("redis://", "Missing hostname"),
        ("redis://h:99999/", "did not parse"),
        ("http://h/", "expected a redis:// or rediss:// URL"),
    ] {
        let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
        args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
        args.redis_url = Some(url.to_owned());
        let error = Config::from_args(&args, None).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("VIGIL_REDIS_URL: ") && e.contains(says)),
            "{url}: {error:?}"
        );
    }
}

fn redis_args(url: Option<&str>, ca_file: Option<&str>) -> crate::cli::ServeArgs {
    let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
    args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
    args.redis_url = url.map(str::to_owned);
    args.redis_ca_file = ca_file.map(str::to_owned);
    args
}

fn config_error(args: &crate::cli::ServeArgs) -> Option<String> {
    Config::from_args(args, None).err().map(|e| e.to_string())
}

/// A CA file means nothing without a Redis URL: refused rather than silently unused.
#[test]
fn a_redis_ca_file_without_a_redis_url_is_refused() {
    assert_eq!(
        config_error(&redis_args(None, Some("/etc/ssl/redis-ca.pem"))).as_deref(),
        Some("VIGIL_REDIS_CA_FILE: is set, but VIGIL_REDIS_URL is not")
    );
    assert!(config_error(&redis_args(None, Some(" "))).is_none());
}

/// A build without TLS says how to get one, for each setting that needs it, instead of
/// failing later in libpq's or Redis's words.
#[cfg(not(feature = "tls"))]
#[test]
fn tls_settings_in_a_build_without_tls_name_the_feature_that_brings_it() {
    for args in [
        redis_args(Some("rediss://h/"), None),
        redis_args(Some("redis://h/"), Some("/etc/ssl/redis-ca.pem")),
    ] {
        let error = config_error(&args);
        assert!(
            error.as_deref().is_some_and(|e| e.contains("needs TLS")
                && e.contains("--features tls")
                && e.starts_with("VIGIL_REDIS_")),
            "{error:?}"
        );
    }
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!("postgres://vigil@db/vigil?application_name=v&sslmode={mode}");
        let error = database_config(&db_args(&url, "64"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error,
            Some(format!("DATABASE_URL: sslmode={mode} {}", super::NO_TLS)),
        );
    }
    for url in [
        "postgres://vigil@db/vigil?sslmode=prefer",
        "postgres://vigil@db/vigil?sslmode=disable",
    ] {
        assert!(database_config(&db_args(url, "64")).is_ok(), "{url}");
    }
}

/// With TLS built in, a CA file must name a readable file of certificates and go with a
/// `rediss://` URL; each mistake names the variable at fault.
#[cfg(feature = "tls")]
#[test]
fn a_redis_ca_file_is_read_and_checked_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "no certificate here").expect("write");
    let not_pem = not_pem.to_string_lossy().into_owned();
    let missing = dir
        .path()
        .join("missing.pem")
        .to_string_lossy()
        .into_owned();
    for (url, file, says) in [
        ("redis://h/", not_pem.as_str(), "applies to a rediss:// URL"),
        ("rediss://h/", missing.as_str(), "cannot read"),
        ("rediss://h/", not_pem.as_str(), "contains no certificates"),
    ] {
        let error = config_error(&redis_args(Some(url), Some(file)));
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("VIGIL_REDIS_CA_FILE: ") && e.contains(says)),
            "{url} {file}: {error:?}"
        );
    }
    assert!(config_error(&redis_args(Some("rediss://h/"), None)).is_none());
    // The URL parser drops tabs and line breaks: the client would read each as #insecure.
    for url in [
        "rediss://h:6380/0#insecure",
        "rediss://:pw@h:6380/#insec\ture",
        "rediss://h/#insecu\nre",
    ] {
        let insecure = config_error(&redis_args(Some(url), None));
        assert!(
            insecure
                .as_deref()
                .is_some_and(|e| e.starts_with("VIGIL_REDIS_URL: #insecure would accept any")),
            "{url:?}: {insecure:?}"
        );
    }
    assert!(database_config(&db_args("postgres://v@db/v?sslmode=verify-full", "64")).is_ok());
}

#[test]
fn bad_numbers_name_their_variable() {
    let e = seconds("0", "VIGIL_HEARTBEAT_SECS")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("VIGIL_HEARTBEAT_SECS: expected a positive integer")
    );
}

/// `VIGIL_EVENT_RETENTION_DAYS`: whole days, a week by default, 0 for ever; anything
/// else is refused naming the variable.
#[test]
fn the_event_retention_is_whole_days_a_week_by_default_and_zero_keeps_for_ever() {
    let retention = |raw: Option<&str>| {
        let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
        args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
        if let Some(raw) = raw {
            args.event_retention_days = raw.to_owned();
        }
        Config::from_args(&args, None)
            .map(|c| c.event_retention)
            .map_err(|e| e.to_string())
    };
    let day = Duration::from_secs(86_400);
    assert_eq!(retention(None), Ok(Some(day * 7)));
    assert_eq!(retention(Some(" 30 ")), Ok(Some(day * 30)));
    assert_eq!(retention(Some("0")), Ok(None));
    for bad in ["", "-1", "1.5", "7d", "week"] {
        assert_eq!(
            retention(Some(bad)),
            Err("VIGIL_EVENT_RETENTION_DAYS: expected a whole number of days (0 keeps events for ever)".to_owned()),
            "{bad:?}"
        );
    }
    for long in ["36501", "99999999999999999999999"] {
        assert_eq!(
            retention(Some(long)),
            Err("VIGIL_EVENT_RETENTION_DAYS: at most 36500 days (a hundred years); 0 keeps events for ever".to_owned()),
            "{long:?}"
        );
    }
}
