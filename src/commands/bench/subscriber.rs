//! One bench subscriber, whatever its transport: it connects, reports its connect time on
//! `connected`, and records when each of this run's alerts arrived and whether it was
//! its own patient's.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::sse_stream;

/// Read buffer of a bench WebSocket (an alert frame is well under 1 KiB).
const WS_READ_BUFFER: usize = 4096;

/// What one subscriber received: (alert number, when parsed) for its own patient's
/// alerts, and how many of this run's alerts for other patients reached it.
#[derive(Debug, Default, Clone)]
pub struct Receipts {
    /// Own patient's alerts, in arrival order (duplicates included).
    pub own: Vec<(usize, Instant)>,
    /// This run's alerts for another patient.
    pub misrouted: usize,
}

/// Where the streams connect: resolved once, not per connection.
pub struct Server {
    addr: std::net::SocketAddr,
    /// The `Host` header.
    host: String,
    /// Path prefix of the base URL (empty at the root).
    path: String,
    /// The base URL, for the WebSocket client.
    base: String,
}

impl Server {
    /// Resolves the base URL's host once for every subscriber, to the first of its
    /// addresses that accepts a connection, as the HTTP client does: `localhost` is
    /// often `::1` first, where a server bound to 127.0.0.1 refuses.
    pub async fn resolve(base: &str, timeout: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(base).map_err(|e| format!("--url: {e}"))?;
        if url.scheme() != "http" {
            return Err("--url: the bench speaks plain http".to_owned());
        }
        let host = url.host_str().ok_or("--url has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let mut refused = format!("--url: {host} has no address");
        let mut found = None;
        for addr in tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("--url: {e}"))?
        {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {
                    found = Some(addr);
                    break;
                }
                Ok(Err(e)) => refused = format!("--url: {addr}: {e}"),
                Err(_) => refused = format!("--url: {addr}: no answer within {timeout:?}"),
            }
        }
        let addr = found.ok_or(refused)?;
        Ok(Self {
            addr,
            host: format!("{host}:{port}"),
            path: url.path().trim_end_matches('/').to_owned(),
            base: base.to_owned(),
        })
    }
}

/// The fields of an alert the bench reads. Deserialising into it (other fields are
/// skipped, nothing allocated) keeps the bench's own cost per delivery small, so the
/// latency it reports is the server's, not the parser's.
#[derive(serde::Deserialize)]
struct Alert<'a> {
    #[serde(borrow)]
    title: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    patient_id: std::borrow::Cow<'a, str>,
}

/// A legacy WebSocket frame, as far as the bench reads it.
#[derive(serde::Deserialize)]
struct WsFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    alert: Option<Alert<'a>>,
}

/// One subscriber's bookkeeping.
///
/// The receipts stay in the subscriber's own task until it ends: a shared lock per
/// delivery cost the bench 8 % of its CPU in B1 (cache misses on a thousand locks).
pub struct Tally {
    start: Instant,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ready: mpsc::UnboundedSender<Result<Duration, String>>,
    received: Receipts,
    /// `bench-<run>-`: the title prefix of this run's alerts.
    prefix: Arc<str>,
    /// This subscriber's patient.
    patient: String,
    /// How many alerts the run raises: a title numbered past them is not one of its own.
    alerts: usize,
    /// Distinct alerts received so far, read by the drain loop to know when to stop
    /// waiting: a duplicate must not stand in for an alert still on its way.
    progress: Arc<AtomicUsize>,
    /// Which of this run's alerts arrived, one bit each (`k / 64`, `k % 64`).
    distinct: Vec<u64>,
    /// Set when the server's `connected` arrives: only connected subscribers expect alerts.
    connected: Arc<AtomicBool>,
    /// Where the receipts go when the task ends or is cancelled.
    sink: Arc<Mutex<Receipts>>,
}

/// What the bench keeps of a subscriber while its task runs.
#[derive(Clone, Default)]
pub struct Handle {
    /// Distinct alerts received so far.
    pub progress: Arc<AtomicUsize>,
    /// It saw `connected`.
    pub connected: Arc<AtomicBool>,
    /// Its receipts, once its task has ended.
    pub sink: Arc<Mutex<Receipts>>,
}

impl Tally {
    /// A subscriber for `patient`; `permit` is its connect slot, freed on `connected`.
    pub fn new(
        handle: &Handle,
        prefix: Arc<str>,
        patient: String,
        alerts: usize,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        ready: mpsc::UnboundedSender<Result<Duration, String>>,
    ) -> Self {
        Self {
            start: Instant::now(),
            permit,
            ready,
            received: Receipts::default(),
            distinct: Vec::new(),
            prefix,
            patient,
            alerts,
            progress: Arc::clone(&handle.progress),
            connected: Arc::clone(&handle.connected),
            sink: Arc::clone(&handle.sink),
        }
    }

    fn connected(&mut self) {
        self.connected.store(true, Ordering::Release);
        self.permit.take();
        let _ = self.ready.send(Ok(self.start.elapsed()));
    }

    fn received(&mut self, alert: Option<Alert<'_>>) {
        let Some(alert) = alert else { return };
        let Some(k) = alert
            .title
            .strip_prefix(&*self.prefix)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&k| k < self.alerts)
        else {
            return; // not this run's alert
        };
        if alert.patient_id != self.patient {
            self.received.misrouted += 1;
            return;
        }
        self.received.own.push((k, Instant::now()));
        let (word, bit) = (k / 64, 1u64 << (k % 64));
        if self.distinct.len() <= word {
            self.distinct.resize(word + 1, 0);
        }
        if self.distinct[word] & bit == 0 {
            self.distinct[word] |= bit;
            self.progress.fetch_add(1, Ordering::Release);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Ok(mut sink) = self.sink.lock() {
            *sink = std::mem::take(&mut self.received);
        }
    }
}

/// How a subscriber that timed out before `connected` reports it.
pub const NOT_CONNECTED: &str = "no `connected`";

/// Runs one subscriber until its stream ends (always an `Err`: the bench cancels the
/// task when it is done). One that has not seen `connected` within `limit` gives up.
pub async fn subscribe(
    server: &Server,
    ws: bool,
    token: &str,
    tally: &mut Tally,
    limit: Duration,
) -> Result<(), String> {
    let connected = Arc::clone(&tally.connected);
    let patient = tally.patient.clone();
    let run = async {
        if ws {
            ws_subscriber(&server.base, token, &patient, tally).await
        } else {
            sse_subscriber(server, token, &patient, tally).await
        }
    };
    let mut run = std::pin::pin!(run);
    tokio::select! {
        result = &mut run => result,
        () = tokio::time::sleep(limit) => {
            if connected.load(Ordering::Acquire) {
                run.await
            } else {
                Err(format!("{NOT_CONNECTED} within {} s", limit.as_secs()))
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
    .await
    .map_err(|e| format!("sse: {e}"))?;
    let mut events = std::pin::pin!(body.eventsource());
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| format!("sse: {e}"))?;
        match event.event.as_str() {
            "connected" => tally.connected(),
            "alert" => tally.received(serde_json::from_str(&event.data).ok()),
            _ => {}
        }
    }
    Err("sse: stream ended".to_owned())
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
    .map_err(|e| format!("ws: {e}"))?;
    while let Some(msg) = socket.next().await {
        let Message::Text(text) = msg.map_err(|e| format!("ws: {e}"))? else {
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
    Err("ws: socket closed".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use std::sync::atomic::Ordering;

    use super::{Alert, Handle, Tally};

    fn alert<'a>(title: &'a str, patient_id: &'a str) -> Option<Alert<'a>> {
        Some(Alert {
            title: title.into(),
            patient_id: patient_id.into(),
        })
    }

    /// A subscriber of run r1's patient p0, in a run of `alerts` alerts.
    fn tally_of_p0(handle: &Handle, alerts: usize) -> Tally {
        let (ready, _rx) = mpsc::unbounded_channel();
        Tally::new(
            handle,
            Arc::from("bench-r1-"),
            "bench-r1-p0".into(),
            alerts,
            None,
            ready,
        )
    }

    /// The bench must see a scope leak: a server that handed patient p1's alert to p0's
    /// subscriber would otherwise look lossless (the alert numbers still add up).
    #[test]
    fn another_patients_alert_is_misrouted_and_another_runs_is_ignored() {
        let handle = Handle::default();
        {
            let mut tally = tally_of_p0(&handle, 3);
            tally.received(alert("bench-r1-0", "bench-r1-p0"));
            tally.received(alert("bench-r1-1", "bench-r1-p1"));
            tally.received(alert("bench-r2-2", "bench-r1-p0"));
            tally.received(alert("HR 148", "bench-r1-p0"));
            // Numbered past the run's alerts: someone else's, however it is titled.
            tally.received(alert("bench-r1-99999999999999", "bench-r1-p0"));
        }
        let got = handle.sink.lock().map(|r| r.clone()).unwrap_or_default();
        let own: Vec<usize> = got.own.iter().map(|(k, _)| *k).collect();
        assert_eq!((own, got.misrouted), (vec![0], 1));
    }

    /// The drain loop stopped waiting once a subscriber's receipts reached what it
    /// expected, duplicates included: one duplicate stood in for an alert still on its
    /// way, which was then reported lost instead of late. Progress counts distinct alerts.
    #[test]
    fn a_duplicate_does_not_count_as_progress() {
        let handle = Handle::default();
        let mut tally = tally_of_p0(&handle, 200);
        for title in ["bench-r1-0", "bench-r1-0", "bench-r1-130", "bench-r1-130"] {
            tally.received(alert(title, "bench-r1-p0"));
        }
        assert_eq!(handle.progress.load(Ordering::Acquire), 2);
        tally.received(alert("bench-r1-199", "bench-r1-p0"));
        assert_eq!(handle.progress.load(Ordering::Acquire), 3);
    }
}
