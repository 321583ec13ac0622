//! `vigil bench`, the binary, against a real server: it must count every delivery on
//! both transports, and fail loudly (non-zero exit, failures in the report) when it
//! cannot subscribe.

use std::process::Output;

use serde_json::{Value, json};

use crate::binary::Served;
use crate::helpers::*;

async fn run_bench(app: &TestApp, secret: &str, extra: &[&str]) -> (Output, Value) {
    run_bench_at(&app.address, secret, extra).await
}

async fn run_bench_at(url: &str, secret: &str, extra: &[&str]) -> (Output, Value) {
    let output = bench_output(url, secret, extra).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout.find('{').expect("a JSON report on stdout");
    let report = serde_json::from_str(&stdout[start..]).expect("the report is JSON");
    (output, report)
}

/// `vigil bench --json` run to its end (it ends by itself: its subscribers stop after
/// the drain deadline).
async fn bench_output(url: &str, secret: &str, extra: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .args(["bench", "--url", url, "--secret", secret, "--json"])
        .args(["--drain-secs", "10", "--threads", "2"])
        .args(extra)
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("bench thread")
        .expect("bench ran")
}

#[actix_web::test]
async fn bench_counts_every_delivery_on_both_transports() {
    let app = spawn_app().await;
    let (output, report) = run_bench(
        &app,
        SECRET,
        &[
            "--subscribers",
            "12",
            "--transport",
            "mix",
            "--patients",
            "3",
            "--alerts",
            "9",
            "--rate",
            "100",
        ],
    )
    .await;
    assert!(output.status.success(), "bench failed: {report:#}");
    assert_eq!(report["connections_established"], 12);
    assert_eq!(report["connections_failed"], 0);
    assert_eq!(report["alerts_raised"], 9);
    // 3 patients with 4 subscribers each; each patient gets 3 of the 9 alerts.
    for transport in ["sse", "ws"] {
        let d = &report[transport];
        assert_eq!(d["expected"], 18, "{transport}: {report:#}");
        assert_eq!(d["received"], 18, "{transport}: {report:#}");
        assert_eq!(d["lost"], 0);
        assert_eq!(d["duplicated"], 0);
    }
    assert_eq!(report["total"]["received"], 36);
    assert!(
        report["server_rss_before_bytes"]
            .as_f64()
            .is_some_and(|b| b > 0.0)
    );
}

/// A wrong secret (or a server requiring `iss`/`aud`) used to end as N × "401" and
/// "no subscriber connected", without saying why: one token is now tried first, and
/// nothing is opened or raised.
#[actix_web::test]
async fn bench_with_the_wrong_secret_says_so_before_opening_anything() {
    let app = spawn_app().await;
    let output = bench_output(
        &app.address,
        "not-the-server-secret-0123456789abcdef",
        &["--subscribers", "4", "--transport", "mix", "--alerts", "2"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the server refuses the tokens the bench mints")
            && stderr.contains("--secret"),
        "{stderr}"
    );
    let listed = app.get_ok("/api/v1/alerts", &admin()).await;
    assert_eq!(listed["alerts"], json!([]), "nothing raised");
}

/// Streams the server refuses are failed connections, and expect nothing: a failed
/// connection is not a lost delivery (the report used to call them lost).
#[actix_web::test]
async fn refused_streams_are_failed_connections_not_lost_deliveries() {
    let app = spawn_app_with(|c| c.max_connections = Some(2)).await;
    let (output, report) = run_bench(
        &app,
        SECRET,
        &[
            "--subscribers",
            "4",
            "--alerts",
            "2",
            "--connect-concurrency",
            "1",
        ],
    )
    .await;
    assert!(!output.status.success(), "bench passed: {report:#}");
    assert_eq!(report["connections_established"], 2, "{report:#}");
    assert_eq!(report["connections_failed"], 2, "{report:#}");
    assert_eq!(
        report["connection_failures"],
        json!({"sse: stream answered 503": 2}),
        "the causes are in the report: {report:#}"
    );
    assert_eq!(report["total"]["expected"], 4, "{report:#}");
    assert_eq!(report["total"]["lost"], 0, "{report:#}");
    assert_eq!(report["subscribers_cut_off"], 0, "{report:#}");
}

/// glibc keeps what the server freed in its arenas; once a wave of streams has closed,
/// the server has it returned (`src/memory.rs`), so its resident memory falls back
/// instead of staying at its peak. Only a process of its own shows that, hence the binary.
#[actix_web::test]
async fn the_server_gives_back_the_memory_of_streams_once_they_have_closed() {
    let served = Served::start("warn,vigil::commands::serve=info");
    let (output, report) = run_bench_at(
        &served.url,
        SECRET,
        &["--subscribers", "3000", "--patients", "1", "--alerts", "0"],
    )
    .await;
    assert!(output.status.success(), "bench failed: {report:#}");
    assert_eq!(report["connections_established"], 3000, "{report:#}");
    let before = report["server_rss_before_bytes"]
        .as_f64()
        .expect("RSS before");
    let connected = report["server_rss_connected_bytes"]
        .as_f64()
        .expect("RSS connected");
    let mib = 1024.0 * 1024.0;
    assert!(
        connected - before > 10.0 * mib,
        "3,000 streams should cost the server over 10 MiB: {report:#}"
    );
    // The bench has exited, so every stream has closed.
    let halfway = before + (connected - before) / 2.0;
    let client = reqwest::Client::new();
    let metrics = format!("{}/metrics", served.url);
    let what = format!(
        "resident memory under {:.1} MiB ({:.1} MiB before the streams, {:.1} with them)",
        halfway / mib,
        before / mib,
        connected / mib
    );
    eventually(&what, || async {
        let text = client.get(&metrics).send().await.ok()?.text().await.ok()?;
        let rss = metric_sample(&text, "vigil_process_resident_memory_bytes", &[])?;
        (rss < halfway).then_some(())
    })
    .await;
}

/// Alerts the server refuses (here 429, two per subject) are expected nowhere: the report
/// names the refusal instead of calling every subscriber's copy lost.
#[actix_web::test]
async fn refused_alerts_are_failures_by_status_not_lost_deliveries() {
    let app =
        spawn_app_with(|c| c.rate_limit = std::num::NonZeroU32::new(2).expect("non-zero")).await;
    let (output, report) = run_bench(
        &app,
        SECRET,
        &[
            "--subscribers",
            "5",
            "--alerts",
            "12",
            "--rate",
            "200",
            "--producers",
            "1",
        ],
    )
    .await;
    assert!(
        !output.status.success(),
        "failed alerts fail the run: {report:#}"
    );
    let raised = report["alerts_raised"].as_u64().expect("alerts_raised");
    assert!(
        (1..12).contains(&raised),
        "some raised, some refused: {report:#}"
    );
    assert_eq!(
        report["alert_failures"],
        json!({"HTTP 429": 12 - raised}),
        "{report:#}"
    );
    assert_eq!(report["total"]["expected"], 5 * raised, "{report:#}");
    assert_eq!(report["total"]["received"], 5 * raised, "{report:#}");
    assert_eq!(report["total"]["lost"], 0, "{report:#}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("alerts failed") && !stderr.contains("lost"),
        "{stderr}"
    );
    assert!(
        stderr.contains("VIGIL_RATE_LIMIT") && stderr.contains("--rate-limit"),
        "a refusal by the rate limit says how to lift it: {stderr}"
    );
}

/// Two runs side by side on one server: each counts only its own alerts (its patients
/// and titles carry its run tag), so neither sees the other's as duplicates; and each
/// has users of its own (their names carry the tag too), so per-user limits — here one
/// stream per user — are not shared: the second run's subscribers had been refused 429.
#[actix_web::test]
async fn two_benches_at_once_each_count_only_their_own_alerts() {
    let app = spawn_app_with(|c| c.max_streams_per_user = 1).await;
    let args = [
        "--subscribers",
        "6",
        "--transport",
        "mix",
        "--alerts",
        "10",
        "--rate",
        "50",
    ];
    let (a, b) = tokio::join!(
        run_bench(&app, SECRET, &args),
        run_bench(&app, SECRET, &args)
    );
    for (output, report) in [a, b] {
        assert!(output.status.success(), "{report:#}");
        assert_eq!(report["total"]["expected"], 60, "{report:#}");
        assert_eq!(report["total"]["received"], 60, "{report:#}");
        assert_eq!(report["total"]["duplicated"], 0, "{report:#}");
        assert_eq!(report["total"]["misrouted"], 0, "{report:#}");
    }
}

/// A port that accepts connections and never answers (a frozen server) must not hang
/// the bench: it gives up after --timeout-secs, names the cause and exits non-zero.
#[actix_web::test]
async fn a_server_that_never_answers_fails_the_bench_instead_of_hanging_it() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .args([
            "bench",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--timeout-secs",
            "1",
        ])
        .env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("bench thread")
        .expect("bench ran");
    drop(silent);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("no Vigil answers at {url}: timed out")),
        "{stderr}"
    );
}

/// Arguments that cannot describe a run are usage errors (exit 2), before anything is
/// opened.
#[test]
fn impossible_bench_arguments_are_usage_errors() {
    for (extra, names) in [
        (&["--transport", "WS"][..], "--transport"),
        (&["--rate", "nan"], "--rate"),
        (&["--rate", "-1"], "--rate"),
        (&["--rate", "1e-300"], "--rate"),
        (&["--patients", "0"], "--patients"),
        (&["--producers", "0"], "--producers"),
        (&["--threads", "0"], "--threads"),
        // A hundred thousand threads aborted the bench (no stack for them).
        (&["--threads", "100000"], "--threads"),
        (&["--connect-concurrency", "0"], "--connect-concurrency"),
        (&["--drain-secs", "0"], "--drain-secs"),
        // It panicked after raising the alerts (an Instant overflow).
        (&["--drain-secs", "18446744073709551615"], "--drain-secs"),
        (
            &["--timeout-secs", "18446744073709551615"],
            "--timeout-secs",
        ),
        (&["--hold-secs", "18446744073709551615"], "--hold-secs"),
        (
            &["--subscribers", "10", "--patients", "3"],
            "multiple of --patients",
        ),
        // With the bench's usage line, not the top-level one.
        (&["--subscribers", "10", "--patients", "3"], "vigil bench"),
        (&["--secret", " "], "--secret"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["bench", "--url", "http://127.0.0.1:9", "--secret", SECRET])
            .args(extra)
            .output()
            .expect("bench ran");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(names), "{extra:?} names {names}: {stderr}");
    }
}

/// Every other stream closed just after its `connected` (a proxy or load balancer
/// dropping connections, a server restarting during the connect phase): each was
/// counted both established and failed, the bench stopped waiting for the others early
/// and published before they were connected, and blamed the server for what they missed.
#[actix_web::test]
async fn a_stream_cut_after_connected_is_counted_once_and_publishing_waits_for_everyone() {
    let app = spawn_app().await;
    let proxy = CutAfterConnected::to(app.port).await;
    let (output, report) = run_bench_at(
        &proxy.address,
        SECRET,
        &["--subscribers", "8", "--alerts", "5", "--rate", "50"],
    )
    .await;
    assert!(
        !output.status.success(),
        "what the cut streams missed is lost"
    );
    assert_eq!(report["connections_established"], 8, "{report:#}");
    assert_eq!(report["connections_failed"], 0, "{report:#}");
    assert_eq!(report["subscribers_cut_off"], 4, "{report:#}");
    // Exactly what the cut streams missed, nothing of the streams left alone.
    assert_eq!(report["total"]["expected"], 40, "{report:#}");
    assert_eq!(report["total"]["received"], 20, "{report:#}");
    assert_eq!(report["total"]["lost"], 20, "{report:#}");
    // Over the time until the last delivery received: the lost ones stretched it to the
    // 10 s drain deadline (2/s), where 20 deliveries of 5 alerts at 50/s took well under 5 s.
    let rate = report["deliveries_per_second"].as_f64().expect("a rate");
    assert!(rate > 4.0, "{report:#}");
}

/// B5 holds its streams with no alert at all, and is "all held" only if none ended: a
/// stream cut without missing an alert was not counted, so a server (or a proxy) that
/// dropped every other stream during the hold passed with "0 failed" and exit 0.
#[actix_web::test]
async fn a_stream_ended_during_a_hold_without_alerts_fails_the_run() {
    let app = spawn_app().await;
    let proxy = CutAfterConnected::to(app.port).await;
    let (output, report) = run_bench_at(
        &proxy.address,
        SECRET,
        &["--subscribers", "8", "--alerts", "0", "--hold-secs", "1"],
    )
    .await;
    assert!(!output.status.success(), "{report:#}");
    assert_eq!(
        (
            &report["connections_established"],
            &report["subscribers_cut_off"]
        ),
        (&json!(8), &json!(4)),
        "{report:#}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("4 streams ended before the bench closed them"),
        "{stderr}"
    );
}

/// A URL where something else answers (a web server, a path under the base) ended as N
/// × "stream answered 404" and "no subscriber connected".
#[actix_web::test]
async fn a_url_where_no_vigil_answers_is_named_before_anything_is_opened() {
    let app = spawn_app().await;
    for url in [
        format!("{}/api", app.address),
        "https://127.0.0.1:9".to_owned(),
    ] {
        let output = bench_output(&url, SECRET, &["--subscribers", "2"]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{url}: {stderr}");
        assert!(
            stderr.contains("no Vigil answers") || stderr.contains("--url"),
            "{url}: {stderr}"
        );
    }
}

/// Relays TCP to a server; every second event stream it carries is closed right after
/// the server's `connected` event has been passed on.
struct CutAfterConnected {
    address: String,
}

impl CutAfterConnected {
    async fn to(upstream: u16) -> CutAfterConnected {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("addr"));
        let streams = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let streams = Arc::clone(&streams);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upward = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = server_read.read(&mut buf).await {
                        if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let chunk = &buf[..n];
                        let connected = chunk.windows(16).any(|w| w == b"event: connected");
                        if connected && streams.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
                            break;
                        }
                    }
                    // Dropping both halves closes the stream both ways.
                    upward.abort();
                });
            }
        });
        CutAfterConnected { address }
    }
}
