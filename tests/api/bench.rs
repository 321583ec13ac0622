//! `vigil bench`, the binary, against a real server: it must count every delivery on
//! both transports, and fail loudly (non-zero exit, failures in the report) when it
//! cannot subscribe.

use std::process::Output;

use serde_json::Value;

use crate::helpers::*;

async fn run_bench(app: &TestApp, secret: &str, extra: &[&str]) -> (Output, Value) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .args(["bench", "--url", &app.address, "--secret", secret, "--json"])
        .args(["--drain-secs", "10", "--threads", "2"])
        .args(extra)
        .env("RUST_LOG", "warn");
    // The bench ends by itself: its subscribers stop after the drain deadline.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("bench thread")
        .expect("bench ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout.find('{').expect("a JSON report on stdout");
    let report = serde_json::from_str(&stdout[start..]).expect("the report is JSON");
    (output, report)
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
        report["server_rss_before"]
            .as_f64()
            .is_some_and(|b| b > 0.0)
    );
}

#[actix_web::test]
async fn bench_with_the_wrong_secret_reports_failed_connections_and_exits_non_zero() {
    let app = spawn_app().await;
    let (output, report) = run_bench(
        &app,
        "not-the-server-secret-0123456789abcdef",
        &["--subscribers", "4", "--transport", "mix", "--alerts", "2"],
    )
    .await;
    assert!(!output.status.success(), "bench passed: {report:#}");
    assert_eq!(report["connections_established"], 0);
    assert_eq!(report["connections_failed"], 4);
    assert_eq!(report["alerts_failed"], 2);
    // Subscribers that never connected expect nothing: a failed connection is not a
    // lost delivery (the report used to call them lost).
    assert_eq!(report["total"]["expected"], 0, "{report:#}");
    assert_eq!(report["total"]["lost"], 0, "{report:#}");
    assert_eq!(report["subscribers_cut_off"], 0, "{report:#}");
}
