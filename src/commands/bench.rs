//! `vigil bench`: opens N subscribers (SSE, WebSocket or both), waits until each has
//! seen `connected`, raises K alerts at R per second through the HTTP API, and reports
//! loss, duplicates, misrouting, publish→receipt latency and the server's memory (from
//! `/metrics`). Latency runs from the start of the publishing POST to the moment the
//! subscriber has parsed the event. It exits non-zero when anything was lost,
//! duplicated or misrouted, or failed to connect or be raised — and never waits on the
//! server without a deadline.

mod report;
mod sse_stream;
mod subscriber;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

pub use report::{Delivery, Percentiles, Report, Scenario};
use subscriber::{Handle, Server, Tally};

use crate::auth::{Claims, Signer};
use crate::cli::{BenchArgs, BenchTransport};

/// How long the streams stay open once every expected delivery is in, to count
/// duplicates that come after them.
const SETTLE: Duration = Duration::from_millis(500);

/// Runs the benchmark; `Err` carries a message (and failure exit) when something failed.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    super::serve::raise_open_file_limit();
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let report = on_own_runtime(threads, {
        let args = args.clone();
        async move { bench(&args, threads).await }
    })?;
    if args.json {
        crate::stdout::line_or_exit(
            &serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
        );
    } else {
        for line in report.lines() {
            crate::stdout::line_or_exit(&line);
        }
    }
    let problems = report.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// Why a bench's arguments cannot describe a run, for a usage error: N/P subscribers
/// per patient must be a whole number.
pub fn usage_problem(args: &BenchArgs) -> Option<String> {
    (!args.subscribers.is_multiple_of(args.patients)).then(|| {
        format!(
            "--subscribers ({}) must be a multiple of --patients ({}): each patient has \
             N/P subscribers",
            args.subscribers, args.patients
        )
    })
}

/// Runs the bench on a multi-threaded runtime of its own: the command line runs on
/// actix's single-threaded one, and one thread parsing every delivery of 10,000
/// streams would measure the bench rather than the server.
fn on_own_runtime<F>(threads: usize, work: F) -> Result<Report, String>
where
    F: std::future::Future<Output = Result<Report, String>> + Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the bench runtime: {e}"))?
            .block_on(work)
    })
    .join()
    .map_err(|_| "the bench panicked".to_owned())?
}

/// One entry per subscriber: its transport and patient. Patients take subscribers in
/// turn; with `mix` each patient's subscribers alternate SSE and WebSocket, so both
/// transports see every patient's alerts.
fn layout(args: &BenchArgs) -> Vec<(bool, usize)> {
    (0..args.subscribers)
        .map(|i| {
            let ws = match args.transport {
                BenchTransport::Sse => false,
                BenchTransport::Ws => true,
                BenchTransport::Mix => (i / args.patients) % 2 == 1,
            };
            (ws, i % args.patients)
        })
        .collect()
}

/// The run's own names: patients and titles tagged with it keep concurrent runs, and
/// any other alerts on the server, out of each other's counts.
struct Names {
    run: String,
    prefix: Arc<str>,
}

impl Names {
    fn new() -> Self {
        let run = format!("{:08x}", rand::random::<u32>());
        let prefix = format!("bench-{run}-").into();
        Self { run, prefix }
    }

    fn patient(&self, n: usize) -> String {
        format!("bench-{}-p{n}", self.run)
    }

    fn title(&self, k: usize) -> String {
        format!("{}{k}", self.prefix)
    }

    /// A token subject of this run: per-user limits (streams, write rate) are then
    /// this run's own, not shared with a bench running beside it.
    fn user(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }
}

async fn bench(args: &BenchArgs, threads: usize) -> Result<Report, String> {
    let base = args.url.trim_end_matches('/').to_owned();
    let timeout = Duration::from_secs(args.timeout_secs);
    let signer = Signer::hs256(&args.secret);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.producers * 2)
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    check_server(&http, &base, &mint(&signer, args, "bench-check", "admin")?).await?;
    let names = Names::new();
    let mut report = Report {
        run: names.run.clone(),
        scenario: Scenario {
            subscribers: args.subscribers,
            transport: args.transport,
            patients: args.patients,
            alerts: args.alerts,
            rate: args.rate,
            producers: args.producers,
            connect_concurrency: args.connect_concurrency,
            timeout_secs: args.timeout_secs,
            drain_secs: args.drain_secs,
            hold_secs: args.hold_secs,
            threads,
        },
        connections_established: 0,
        connections_failed: 0,
        connection_failures: BTreeMap::new(),
        subscribers_cut_off: 0,
        connect_ms: None,
        connect_all_ms: 0.0,
        alerts_raised: 0,
        alerts_failed: 0,
        alert_failures: BTreeMap::new(),
        post_ms: None,
        alerts_per_second: 0.0,
        total: Delivery::default(),
        sse: Delivery::default(),
        ws: Delivery::default(),
        deliveries_per_second: 0.0,
        server_rss_before_bytes: None,
        server_rss_connected_bytes: None,
        server_rss_per_connection_bytes: None,
    };
    report.server_rss_before_bytes = server_rss(&http, &base).await;
    let token = |sub: &str, role: &str| mint(&signer, args, sub, role);

    // Connect everyone, bounded concurrency; each reports its connect time once ready.
    let subscribers = layout(args);
    let server = Arc::new(Server::resolve(&base, timeout).await?);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let mut handles = Vec::with_capacity(subscribers.len());
    let mut tasks = Vec::with_capacity(subscribers.len());
    // Set when a subscriber saw no `connected` in time: the ones still waiting for a
    // connect slot do not each wait out the timeout as well.
    let unanswered = Arc::new(AtomicBool::new(false));
    for (i, &(ws, patient)) in subscribers.iter().enumerate() {
        let token = token(&names.user(&format!("sub-{i}")), "admin")?;
        let handle = Handle::default();
        let (ready, gate, server) = (ready_tx.clone(), Arc::clone(&gate), Arc::clone(&server));
        let (handle_for_task, prefix, patient) = (
            handle.clone(),
            Arc::clone(&names.prefix),
            names.patient(patient),
        );
        handles.push(handle);
        let unanswered = Arc::clone(&unanswered);
        let alerts = args.alerts;
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            if unanswered.load(Ordering::Acquire) {
                let _ = ready.send(Err("not started: the server stopped answering".to_owned()));
                return;
            }
            let mut tally = Tally::new(
                &handle_for_task,
                prefix,
                patient,
                alerts,
                permit,
                ready.clone(),
            );
            let result = subscriber::subscribe(&server, ws, &token, &mut tally, timeout).await;
            if let Err(e) = result {
                if e.starts_with(subscriber::NOT_CONNECTED) {
                    unanswered.store(true, Ordering::Release);
                }
                // Each subscriber reports once: a stream that ends after `connected` was
                // counted as established, and is counted as cut off when it missed alerts.
                if !handle_for_task.connected.load(Ordering::Acquire) {
                    let _ = ready.send(Err(e));
                }
            }
        }));
    }
    drop(ready_tx);
    let mut connect_times = Vec::new();
    while connect_times.len() + report.connections_failed < subscribers.len() {
        match ready_rx.recv().await {
            Some(Ok(t)) => connect_times.push(ms(t)),
            Some(Err(e)) => {
                report.connections_failed += 1;
                *report.connection_failures.entry(e).or_default() += 1;
            }
            None => break,
        }
    }
    report.connect_all_ms = ms(started.elapsed());
    report.connections_established = connect_times.len();
    report.connect_ms = Percentiles::of(&mut connect_times);
    report.server_rss_connected_bytes = server_rss(&http, &base).await;
    if let (Some(before), Some(after)) = (
        report.server_rss_before_bytes,
        report.server_rss_connected_bytes,
    ) && report.connections_established > 0
    {
        report.server_rss_per_connection_bytes =
            Some((after as f64 - before as f64) / report.connections_established as f64);
    }
    if !subscribers.is_empty() && report.connections_established == 0 {
        // Nobody could receive them: raising alerts would measure nothing.
        if args.alerts > 0 {
            report.alerts_failed = args.alerts;
            report
                .alert_failures
                .insert("not sent: no subscriber connected".to_owned(), args.alerts);
        }
        return Ok(report);
    }
    if args.hold_secs > 0 {
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }

    // Publish K alerts at R/s from several producers.
    let publish_started = Instant::now();
    let outcome = Arc::new(Mutex::new(Published::default()));
    // Set on the first POST the server does not answer: the rest are not sent.
    let server_gone = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let token = token(&names.user(&format!("producer-{p}")), "service")?;
        let (http, base, outcome, server_gone) = (
            http.clone(),
            base.clone(),
            Arc::clone(&outcome),
            Arc::clone(&server_gone),
        );
        let bodies: Vec<(usize, serde_json::Value)> = (p..args.alerts)
            .step_by(args.producers)
            .map(|k| {
                let body = json!({"patient_id": names.patient(k % args.patients), "severity": "high",
                                  "kind": "bench", "title": names.title(k), "source": "vigil-bench"});
                (k, body)
            })
            .collect();
        producers.push(tokio::spawn(async move {
            for (k, body) in bodies {
                if server_gone.load(Ordering::Acquire) {
                    record(&outcome, |o| {
                        o.failed("not sent: the server stopped answering")
                    });
                    continue;
                }
                let due = publish_started + interval.mul_f64(k as f64);
                tokio::time::sleep_until(due.into()).await;
                let start = Instant::now();
                record(&outcome, |o| {
                    o.started.insert(k, start);
                });
                let answer = http
                    .post(format!("{base}/api/v1/alerts"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let took = ms(start.elapsed());
                match answer {
                    Ok(r) if r.status().as_u16() == 201 => record(&outcome, |o| {
                        o.accepted.insert(k);
                        o.post_ms.push(took);
                    }),
                    Ok(r) => record(&outcome, |o| {
                        o.post_ms.push(took);
                        o.failed(&format!("HTTP {}", r.status().as_u16()));
                    }),
                    Err(e) => {
                        server_gone.store(true, Ordering::Release);
                        record(&outcome, |o| o.failed(&failure_of(&e)));
                    }
                }
            }
        }));
    }
    for producer in producers {
        let _ = producer.await;
    }
    let publishing = publish_started.elapsed();
    let published = outcome.lock().map(|o| o.clone()).unwrap_or_default();
    report.alerts_raised = published.accepted.len();
    report.alerts_failed = args.alerts.saturating_sub(report.alerts_raised);
    report.alert_failures = published.failures.clone();
    report.alerts_per_second = report.alerts_raised as f64 / publishing.as_secs_f64().max(0.001);
    let mut accepted_per_patient = vec![0usize; args.patients];
    for k in &published.accepted {
        if let Some(n) = accepted_per_patient.get_mut(k % args.patients) {
            *n += 1;
        }
    }

    // Wait for stragglers: until every subscriber has everything, or the drain deadline.
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    loop {
        // A subscriber whose task has ended (it failed) will receive nothing more.
        let complete =
            subscribers
                .iter()
                .zip(&handles)
                .zip(&tasks)
                .all(|((&(_, patient), handle), task)| {
                    task.is_finished()
                        || handle.progress.load(Ordering::Acquire)
                            >= accepted_per_patient.get(patient).copied().unwrap_or(0)
                });
        if complete || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A duplicate sent after the last expected delivery (a re-send, an echo) arrives
    // after `complete`: the streams stay open a little longer to count it.
    tokio::time::sleep(SETTLE).await;
    // A task already finished here ended by itself: its stream was closed by the server.
    let ended: Vec<bool> = tasks.iter().map(|task| task.is_finished()).collect();
    // Each subscriber hands its receipts over as its task is dropped.
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }

    let mut all = Vec::new();
    let mut last_delivery: Option<Instant> = None;
    let mut sse_lat = Vec::new();
    let mut ws_lat = Vec::new();
    for (i, (&(ws, patient), handle)) in subscribers.iter().zip(&handles).enumerate() {
        if !handle.connected.load(Ordering::Acquire) {
            continue; // counted in connections_failed; it could receive nothing
        }
        let got = handle.sink.lock().map(|v| v.clone()).unwrap_or_default();
        let (delivery, latencies) = if ws {
            (&mut report.ws, &mut ws_lat)
        } else {
            (&mut report.sse, &mut sse_lat)
        };
        let expected = accepted_per_patient.get(patient).copied().unwrap_or(0);
        delivery.expected += expected;
        delivery.misrouted += got.misrouted;
        let mut seen: HashSet<usize> = HashSet::with_capacity(got.own.len());
        for (k, at) in got.own {
            // An alert whose POST failed may still have been stored (a timeout after the
            // commit): it was expected nowhere, so it counts neither way.
            let Some(start) = published
                .started
                .get(&k)
                .filter(|_| published.accepted.contains(&k))
            else {
                continue;
            };
            if !seen.insert(k) {
                delivery.duplicated += 1;
                continue;
            }
            delivery.received += 1;
            last_delivery = last_delivery.max(Some(at));
            let latency = ms(at.saturating_duration_since(*start));
            latencies.push(latency);
            all.push(latency);
        }
        delivery.lost += expected.saturating_sub(seen.len());
        // Whether or not it missed an alert: a stream is to be held until the bench
        // closes it (B5 holds them with no alert at all, and is "all held" only if none
        // ended), and one ended without a word would pass unnoticed.
        if ended.get(i).copied().unwrap_or(false) {
            report.subscribers_cut_off += 1;
        }
    }
    report.sse.latency_ms = Percentiles::of(&mut sse_lat);
    report.ws.latency_ms = Percentiles::of(&mut ws_lat);
    report.total.add_counts(&report.sse);
    report.total.add_counts(&report.ws);
    report.total.latency_ms = Percentiles::of(&mut all);
    // Over the time until the last delivery received: a lost one would otherwise stretch
    // the window to the drain deadline, and the drain loop's 50 ms polling to its step.
    let window = last_delivery.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(publish_started)
    });
    report.deliveries_per_second = report.total.received as f64 / window.as_secs_f64().max(0.001);
    let mut posts = published.post_ms;
    report.post_ms = Percentiles::of(&mut posts);
    Ok(report)
}

/// What the producers did, shared between them (one lock per alert, not per delivery).
#[derive(Default, Clone)]
struct Published {
    /// When each alert's POST started.
    started: HashMap<usize, Instant>,
    /// Alerts answered 201.
    accepted: HashSet<usize>,
    /// POST round trips, ms.
    post_ms: Vec<f64>,
    /// Why alerts were not raised, with how many.
    failures: BTreeMap<String, usize>,
}

impl Published {
    fn failed(&mut self, why: &str) {
        *self.failures.entry(why.to_owned()).or_default() += 1;
    }
}

fn record(outcome: &Mutex<Published>, change: impl FnOnce(&mut Published)) {
    if let Ok(mut o) = outcome.lock() {
        change(&mut o);
    }
}

/// Nothing is opened against a URL where no Vigil answers, nor with tokens it refuses:
/// either would end as N identical failures that do not say why.
async fn check_server(http: &reqwest::Client, base: &str, token: &str) -> Result<(), String> {
    let url =
        reqwest::Url::parse(base).map_err(|e| format!("--url: expected http://HOST:PORT ({e})"))?;
    if url.scheme() != "http" || !url.has_host() {
        return Err(format!(
            "--url: expected http://HOST:PORT, got {base} (the bench speaks plain http)"
        ));
    }
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| format!("no Vigil answers at {base}: {}", failure_of(&e)))?;
    let status = health.status();
    let body: serde_json::Value = health.json().await.unwrap_or_default();
    if !status.is_success() || body.get("status").and_then(|s| s.as_str()) != Some("ok") {
        return Err(format!(
            "no Vigil answers at {base}: GET /healthz answered {status}, not Vigil's {{\"status\":\"ok\"}} (is --url the server's base URL, without a path?)"
        ));
    }
    let probe = http
        .get(format!("{base}/api/v1/alerts?limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("no Vigil answers at {base}: {}", failure_of(&e)))?;
    if probe.status() == reqwest::StatusCode::UNAUTHORIZED {
        let body: serde_json::Value = probe.json().await.unwrap_or_default();
        let detail = body
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or("refused");
        return Err(format!(
            "the server refuses the tokens the bench mints ({detail}): is --secret the \
             server's VIGIL_JWT_SECRET, and does it require --jwt-issuer or --jwt-audience?"
        ));
    }
    Ok(())
}

/// A failed request's cause in a few words, the same for every request it hit.
fn failure_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "connection failed".to_owned()
    }
}

fn mint(signer: &Signer, args: &BenchArgs, sub: &str, role: &str) -> Result<String, String> {
    let now = chrono::Utc::now().timestamp();
    signer
        .sign(&Claims {
            sub: sub.to_owned(),
            role: role.to_owned(),
            patient_id: None,
            exp: now + 24 * 3600,
            iat: Some(now),
            iss: crate::config::set_value(args.jwt_issuer.as_deref()),
            aud: crate::config::set_value(args.jwt_audience.as_deref()).map(Into::into),
        })
        .map_err(|e| format!("cannot mint a token: {e}"))
}

async fn server_rss(http: &reqwest::Client, base: &str) -> Option<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| {
            l.starts_with("vigil_process_resident_memory_bytes ")
                || l.starts_with("process_resident_memory_bytes ")
        })
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        // Prometheus writes every value as a float; these are whole bytes.
        .filter(|bytes| bytes.is_finite() && *bytes >= 0.0)
        .map(|bytes| bytes.round() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::layout;
    use crate::cli::{Cli, Command};

    fn bench_args(extra: &[&str]) -> crate::cli::BenchArgs {
        let mut argv = vec!["vigil", "bench", "--secret", "s"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Some(Command::Bench(args))) => args,
            other => panic!("not a bench command line: {other:?}"),
        }
    }

    #[test]
    fn mix_gives_every_patient_both_transports() {
        let args = bench_args(&[
            "--subscribers",
            "8",
            "--patients",
            "2",
            "--transport",
            "mix",
        ]);
        let per_patient = |p: usize| {
            let ws = layout(&args)
                .iter()
                .filter(|&&(ws, q)| q == p && ws)
                .count();
            let sse = layout(&args)
                .iter()
                .filter(|&&(ws, q)| q == p && !ws)
                .count();
            (sse, ws)
        };
        assert_eq!((per_patient(0), per_patient(1)), ((2, 2), (2, 2)));
    }
}
