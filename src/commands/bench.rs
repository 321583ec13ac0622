//! `vigil bench`: opens N subscribers (SSE, WebSocket or both), waits until each has
//! seen `connected`, raises K alerts at R per second through the HTTP API, and reports
//! loss, duplicates, publish→receipt latency and the server's memory (from `/metrics`).
//! Latency runs from the start of the publishing POST to the moment the subscriber has
//! parsed the event. It exits non-zero when anything was lost or duplicated.

mod sse_stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::auth::{Claims, Signer};
use crate::cli::BenchArgs;

/// Read buffer of a bench WebSocket (an alert frame is well under 1 KiB).
const WS_READ_BUFFER: usize = 4096;

/// Receipts of one subscriber: (alert number, when parsed).
type Receipts = Vec<(usize, Instant)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sse,
    Ws,
}

struct Subscriber {
    kind: Kind,
    patient: usize,
}

/// Percentiles in milliseconds.
#[derive(Debug, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Worst.
    pub max: f64,
}

/// Per-transport delivery figures.
#[derive(Debug, Serialize, Default)]
pub struct Delivery {
    /// Deliveries expected (connected subscribers × their patient's alerts).
    pub expected: usize,
    /// Received (first copy of each).
    pub received: usize,
    /// Expected but never received.
    pub lost: usize,
    /// Received more than once.
    pub duplicated: usize,
    /// Publish → receipt latency.
    pub latency_ms: Percentiles,
}

/// The whole report (`--json`).
#[derive(Debug, Serialize, Default)]
pub struct Report {
    /// Scenario.
    pub scenario: Value,
    /// Subscribers connected.
    pub connections_established: usize,
    /// Subscribers that failed to connect (they expect nothing: counted here, not as lost).
    pub connections_failed: usize,
    /// Connected subscribers whose stream the server ended before their last alert came
    /// (a full queue, `VIGIL_CLIENT_QUEUE`, or a shutdown). The bench does not resume, so
    /// what they missed is counted as lost.
    pub subscribers_cut_off: usize,
    /// Time from request to `connected`, ms.
    pub connect_ms: Percentiles,
    /// Wall time to connect everyone, ms.
    pub connect_all_ms: f64,
    /// Alerts raised (201).
    pub alerts_raised: usize,
    /// Alerts refused.
    pub alerts_failed: usize,
    /// POST latency, ms.
    pub post_ms: Percentiles,
    /// Alerts committed (201) per second while the producers ran (ingest rate).
    pub alerts_per_second: f64,
    /// All transports.
    pub total: Delivery,
    /// SSE only.
    pub sse: Delivery,
    /// WebSocket only.
    pub ws: Delivery,
    /// Deliveries per second over the publishing window.
    pub deliveries_per_second: f64,
    /// Server RSS before connecting, bytes.
    pub server_rss_before: Option<f64>,
    /// Server RSS with everyone connected, bytes.
    pub server_rss_connected: Option<f64>,
    /// (connected − before) / connections, bytes.
    pub server_rss_per_connection: Option<f64>,
}

/// Runs the benchmark; `Err` carries a message (and failure exit) when something was lost.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    super::serve::raise_open_file_limit();
    let report = on_own_runtime(args.threads, {
        let args = args.clone();
        async move { bench(&args).await }
    })?;
    let bad = report.total.lost
        + report.total.duplicated
        + report.connections_failed
        + report.alerts_failed;
    if args.json {
        print_line(&serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print_human(&report);
    }
    if bad > 0 {
        return Err(format!(
            "{} lost, {} duplicated, {} connections failed, {} alerts failed",
            report.total.lost,
            report.total.duplicated,
            report.connections_failed,
            report.alerts_failed
        ));
    }
    Ok(())
}

/// Runs the bench on a multi-threaded runtime of its own: the command line runs on
/// actix's single-threaded one, and one thread parsing every delivery of 10,000
/// streams would measure the bench rather than the server.
fn on_own_runtime<F>(threads: Option<usize>, work: F) -> Result<Report, String>
where
    F: std::future::Future<Output = Result<Report, String>> + Send + 'static,
{
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the bench runtime: {e}"))?
            .block_on(work)
    })
    .join()
    .map_err(|_| "the bench panicked".to_owned())?
}

async fn bench(args: &BenchArgs) -> Result<Report, String> {
    if args.patients == 0 || args.producers == 0 || args.rate <= 0.0 {
        return Err("--patients, --producers and --rate must be positive".to_owned());
    }
    let base = args.url.trim_end_matches('/').to_owned();
    let signer = Signer::hs256(&args.secret);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.producers * 2)
        .build()
        .map_err(|e| e.to_string())?;
    let mut report = Report {
        scenario: json!({"subscribers": args.subscribers, "transport": args.transport, "patients": args.patients,
                         "alerts": args.alerts, "rate": args.rate, "producers": args.producers}),
        ..Report::default()
    };
    report.server_rss_before = server_rss(&http, &base).await;

    let subscribers: Vec<Subscriber> = (0..args.subscribers)
        .map(|i| Subscriber {
            kind: match args.transport.as_str() {
                "ws" => Kind::Ws,
                "mix" if i % 2 == 1 => Kind::Ws,
                _ => Kind::Sse,
            },
            patient: i % args.patients,
        })
        .collect();

    let server = Arc::new(Server::resolve(&base).await?);
    let per_patient: Vec<usize> = (0..args.patients)
        .map(|p| (p..args.alerts).step_by(args.patients).count())
        .collect();
    // Connect everyone, bounded concurrency; each reports its connect time once ready.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let mut receipts: Vec<Arc<Mutex<Receipts>>> = Vec::new();
    let mut completed: Vec<Arc<AtomicBool>> = Vec::new();
    // Per subscriber: it saw `connected` (only those expect alerts).
    let mut connected: Vec<Arc<AtomicBool>> = Vec::new();
    let mut tasks = Vec::new();
    for (i, sub) in subscribers.iter().enumerate() {
        let token = mint(&signer, &format!("bench-sub-{i}"), "admin").map_err(|e| e.to_string())?;
        let sink = Arc::new(Mutex::new(Vec::new()));
        receipts.push(Arc::clone(&sink));
        let expected = per_patient.get(sub.patient).copied().unwrap_or(0);
        let complete = Arc::new(AtomicBool::new(expected == 0));
        completed.push(Arc::clone(&complete));
        let is_connected = Arc::new(AtomicBool::new(false));
        connected.push(Arc::clone(&is_connected));
        let url = base.clone();
        let patient = patient_name(sub.patient);
        let ready = ready_tx.clone();
        let gate = Arc::clone(&gate);
        let kind = sub.kind;
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let mut tally = Tally {
                start: Instant::now(),
                permit,
                ready: ready.clone(),
                received: Vec::with_capacity(expected),
                expected,
                complete,
                connected: is_connected,
                sink,
            };
            let result = match kind {
                Kind::Sse => sse_subscriber(&server, &token, &patient, &mut tally).await,
                Kind::Ws => ws_subscriber(&url, &token, &patient, &mut tally).await,
            };
            if let Err(e) = result {
                let _ = ready.send(Err(e));
            }
        }));
    }
    drop(ready_tx);
    let mut connect_times = Vec::new();
    let mut first_error = None;
    while connect_times.len() + report.connections_failed < subscribers.len() {
        match ready_rx.recv().await {
            Some(Ok(t)) => connect_times.push(ms(t)),
            Some(Err(e)) => {
                report.connections_failed += 1;
                first_error.get_or_insert(e);
            }
            None => break,
        }
    }
    if let Some(e) = first_error {
        log::warn!("bench: first connection failure: {e}");
    }
    report.connect_all_ms = ms(started.elapsed());
    report.connections_established = connect_times.len();
    report.connect_ms = percentiles(&mut connect_times);
    report.server_rss_connected = server_rss(&http, &base).await;
    if let (Some(before), Some(after)) = (report.server_rss_before, report.server_rss_connected)
        && report.connections_established > 0
    {
        report.server_rss_per_connection =
            Some((after - before) / report.connections_established as f64);
    }
    if args.hold_secs > 0 {
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }

    // Publish K alerts at R/s from several producers.
    let publish_started = Instant::now();
    let sent_at: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let post_times: Arc<Mutex<Vec<f64>>> = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let token =
            mint(&signer, &format!("bench-producer-{p}"), "service").map_err(|e| e.to_string())?;
        let (http, base, sent_at, post_times, failed) = (
            http.clone(),
            base.clone(),
            Arc::clone(&sent_at),
            Arc::clone(&post_times),
            Arc::clone(&failed),
        );
        let (alerts, patients, producers_n) = (args.alerts, args.patients, args.producers);
        producers.push(tokio::spawn(async move {
            for k in (p..alerts).step_by(producers_n) {
                let due = publish_started + interval.mul_f64(k as f64);
                tokio::time::sleep_until(due.into()).await;
                let body = json!({"patient_id": patient_name(k % patients), "severity": "high", "kind": "bench",
                                  "title": format!("bench-{k}"), "source": "vigil-bench"});
                let start = Instant::now();
                if let Ok(mut map) = sent_at.lock() {
                    map.insert(k, start);
                }
                let ok = http
                    .post(format!("{base}/api/v1/alerts"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 201)
                    .unwrap_or(false);
                if let Ok(mut times) = post_times.lock() {
                    times.push(ms(start.elapsed()));
                }
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for producer in producers {
        let _ = producer.await;
    }
    let publishing = publish_started.elapsed();
    report.alerts_failed = failed.load(Ordering::Relaxed);
    report.alerts_raised = args.alerts.saturating_sub(report.alerts_failed);
    report.alerts_per_second = report.alerts_raised as f64 / publishing.as_secs_f64().max(0.001);

    // Wait for stragglers: until every subscriber has everything, or the drain deadline.
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    loop {
        // A subscriber whose task has ended (it failed) will receive nothing more.
        let complete = completed
            .iter()
            .zip(&tasks)
            .all(|(done, task)| task.is_finished() || done.load(Ordering::Acquire));
        if complete || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let window = publish_started.elapsed();
    // A task already finished here ended by itself: its stream was closed by the server.
    let ended: Vec<bool> = tasks.iter().map(|task| task.is_finished()).collect();
    // Each subscriber hands its receipts over as its task is dropped.
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }

    let sent = sent_at.lock().map(|m| m.clone()).unwrap_or_default();
    let mut all = Vec::new();
    let mut sse_lat = Vec::new();
    let mut ws_lat = Vec::new();
    for (i, (sub, sink)) in subscribers.iter().zip(&receipts).enumerate() {
        if !connected[i].load(Ordering::Acquire) {
            continue; // counted in connections_failed; it could receive nothing
        }
        let got = sink.lock().map(|v| v.clone()).unwrap_or_default();
        let expected = per_patient.get(sub.patient).copied().unwrap_or(0);
        let mut seen: HashMap<usize, usize> = HashMap::new();
        let target = match sub.kind {
            Kind::Sse => (&mut report.sse, &mut sse_lat),
            Kind::Ws => (&mut report.ws, &mut ws_lat),
        };
        target.0.expected += expected;
        for (k, at) in got {
            let n = seen.entry(k).or_default();
            *n += 1;
            if *n > 1 {
                target.0.duplicated += 1;
                continue;
            }
            target.0.received += 1;
            if let Some(start) = sent.get(&k) {
                let latency = ms(at.saturating_duration_since(*start));
                target.1.push(latency);
                all.push(latency);
            }
        }
        target.0.lost += expected.saturating_sub(seen.len());
        if ended[i] && seen.len() < expected {
            report.subscribers_cut_off += 1;
        }
    }
    report.sse.latency_ms = percentiles(&mut sse_lat);
    report.ws.latency_ms = percentiles(&mut ws_lat);
    report.total = Delivery {
        expected: report.sse.expected + report.ws.expected,
        received: report.sse.received + report.ws.received,
        lost: report.sse.lost + report.ws.lost,
        duplicated: report.sse.duplicated + report.ws.duplicated,
        latency_ms: percentiles(&mut all),
    };
    report.deliveries_per_second = report.total.received as f64 / window.as_secs_f64().max(0.001);
    let mut posts = post_times.lock().map(|v| v.clone()).unwrap_or_default();
    report.post_ms = percentiles(&mut posts);
    Ok(report)
}

fn patient_name(n: usize) -> String {
    format!("bench-p{n}")
}

fn mint(signer: &Signer, sub: &str, role: &str) -> Result<String, crate::auth::keys::TokenError> {
    let now = chrono::Utc::now().timestamp();
    signer.sign(&Claims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        patient_id: None,
        exp: now + 24 * 3600,
        iat: Some(now),
        iss: None,
        aud: None,
    })
}

/// The one field of an alert the bench reads. Deserialising into it (other fields are
/// skipped, nothing allocated) keeps the bench's own cost per delivery small, so the
/// latency it reports is the server's, not the parser's.
#[derive(serde::Deserialize)]
struct Titled<'a> {
    #[serde(borrow)]
    title: std::borrow::Cow<'a, str>,
}

impl Titled<'_> {
    /// The alert number from a bench alert's title (`bench-<k>`).
    fn number(&self) -> Option<usize> {
        self.title.strip_prefix("bench-")?.parse().ok()
    }
}

/// A legacy WebSocket frame, as far as the bench reads it.
#[derive(serde::Deserialize)]
struct WsFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    alert: Option<Titled<'a>>,
}

/// One subscriber's bookkeeping, whatever its transport: it frees its connect slot and
/// reports its connect time on `connected`, and records when each alert arrived.
///
/// The receipts stay in the subscriber's own task until it ends: a shared lock per
/// delivery cost the bench 8 % of its CPU in B1 (cache misses on a thousand locks).
struct Tally {
    start: Instant,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ready: mpsc::UnboundedSender<Result<Duration, String>>,
    received: Receipts,
    /// Alerts this subscriber's patient is raised.
    expected: usize,
    /// Set once `expected` receipts are in, so the bench knows when to stop waiting.
    complete: Arc<AtomicBool>,
    /// Set when the server's `connected` arrives: only connected subscribers expect alerts.
    connected: Arc<AtomicBool>,
    /// Where the receipts go when the task ends or is cancelled.
    sink: Arc<Mutex<Receipts>>,
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Ok(mut sink) = self.sink.lock() {
            *sink = std::mem::take(&mut self.received);
        }
    }
}

impl Tally {
    fn connected(&mut self) {
        self.connected.store(true, Ordering::Release);
        self.permit.take();
        let _ = self.ready.send(Ok(self.start.elapsed()));
    }

    fn received(&mut self, alert: Option<Titled<'_>>) {
        if let Some(k) = alert.and_then(|a| a.number()) {
            self.received.push((k, Instant::now()));
            if self.received.len() == self.expected {
                self.complete.store(true, Ordering::Release);
            }
        }
    }
}

async fn sse_subscriber(
    server: &Server,
    token: &str,
    patient: &str,
    tally: &mut Tally,
) -> Result<(), String> {
    let body = sse_stream::open(
        server.addr,
        &server.host,
        &format!("{}/api/v1/alerts/stream?patient_id={patient}", server.path),
        token,
    )
    .await?;
    let mut events = std::pin::pin!(body.eventsource());
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| e.to_string())?;
        match event.event.as_str() {
            "connected" => tally.connected(),
            "alert" => tally.received(serde_json::from_str(&event.data).ok()),
            _ => {}
        }
    }
    Err("stream ended".to_owned())
}

/// Where the streams connect: resolved once, not per connection.
struct Server {
    addr: std::net::SocketAddr,
    /// The `Host` header.
    host: String,
    /// Path prefix of the base URL (empty at the root).
    path: String,
}

impl Server {
    async fn resolve(base: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(base).map_err(|e| format!("--url: {e}"))?;
        if url.scheme() != "http" {
            return Err("--url: the bench speaks plain http".to_owned());
        }
        let host = url.host_str().ok_or("--url has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("--url: {e}"))?
            .next()
            .ok_or_else(|| format!("--url: {host} has no address"))?;
        Ok(Self {
            addr,
            host: format!("{host}:{port}"),
            path: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

async fn ws_subscriber(
    base: &str,
    token: &str,
    patient: &str,
    tally: &mut Tally,
) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    let ws_base = base.replacen("http", "ws", 1);
    // tungstenite zero-fills its whole read buffer before every read: at its default
    // of 128 KiB that cost more than the rest of a delivery. Frames here are small.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(
        format!("{ws_base}/ws?token={token}&patient_id={patient}"),
        Some(config),
        true,
    )
    .await
    .map_err(|e| e.to_string())?;
    while let Some(msg) = socket.next().await {
        let Message::Text(text) = msg.map_err(|e| e.to_string())? else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<WsFrame>(&text) else {
            continue;
        };
        match frame.kind.as_ref() {
            "connected" => tally.connected(),
            "alert" => tally.received(frame.alert),
            _ => {}
        }
    }
    Err("socket closed".to_owned())
}

async fn server_rss(http: &reqwest::Client, base: &str) -> Option<f64> {
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
        .and_then(|v| v.parse().ok())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentiles(values: &mut [f64]) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let idx = ((values.len() as f64 * q).ceil() as usize)
            .saturating_sub(1)
            .min(values.len() - 1);
        values.get(idx).copied().unwrap_or_default()
    };
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
    }
}

#[allow(clippy::print_stdout)]
fn print_line(text: &str) {
    println!("{text}");
}

fn print_human(r: &Report) {
    let p = |x: &Percentiles| {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
            x.p50, x.p90, x.p99, x.p999, x.max
        )
    };
    print_line(&format!("scenario            {}", r.scenario));
    print_line(&format!(
        "connections         {} established, {} failed, all in {:.0} ms",
        r.connections_established, r.connections_failed, r.connect_all_ms
    ));
    print_line(&format!("connect time        {}", p(&r.connect_ms)));
    print_line(&format!(
        "alerts              {} raised, {} failed, {:.0}/s; POST {}",
        r.alerts_raised,
        r.alerts_failed,
        r.alerts_per_second,
        p(&r.post_ms)
    ));
    for (name, d) in [("total", &r.total), ("sse", &r.sse), ("ws", &r.ws)] {
        if d.expected > 0 {
            print_line(&format!(
                "deliveries {name:<8} expected {} received {} lost {} duplicated {}",
                d.expected, d.received, d.lost, d.duplicated
            ));
            print_line(&format!("latency {name:<11} {}", p(&d.latency_ms)));
        }
    }
    if r.subscribers_cut_off > 0 {
        print_line(&format!(
            "cut off             {} subscribers' streams ended before their last alert (a full queue, VIGIL_CLIENT_QUEUE, or a shutdown); the bench does not resume, so what they missed counts as lost",
            r.subscribers_cut_off
        ));
    }
    print_line(&format!(
        "deliveries/s        {:.0}",
        r.deliveries_per_second
    ));
    if let (Some(b), Some(a)) = (r.server_rss_before, r.server_rss_connected) {
        print_line(&format!(
            "server RSS          {:.1} MiB before, {:.1} MiB connected, {:.1} KiB per connection",
            b / 1048576.0,
            a / 1048576.0,
            r.server_rss_per_connection.unwrap_or_default() / 1024.0
        ));
    }
}
