//! Prometheus metrics, one registry per application instance (no process-global state,
//! so several servers can run in one test binary).

use std::path::PathBuf;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric Vigil exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Open streams by transport (`sse`, `ws`) and role.
    pub connections: IntGaugeVec,
    /// Events the manager fanned out.
    pub events_published: IntCounter,
    /// Event frames queued to clients.
    pub deliveries: IntCounter,
    /// Clients cut off because their queue was full.
    pub queue_overflows: IntCounter,
    /// Streams opened with a `Last-Event-ID`.
    pub resumes: IntCounter,
    /// Events sent from the database on resume.
    pub replayed_events: IntCounter,
    /// Streams refused by a limit, by limit name.
    pub limit_rejections: IntCounterVec,
    /// WebSocket connections accepted while the transport is deprecated.
    pub ws_deprecated_connections: IntCounter,
    /// WebSocket frames received, by type.
    pub ws_frames: IntCounterVec,
    /// Commit-to-enqueue latency of fan-out, seconds.
    pub fanout_seconds: Histogram,
    /// Publish-to-write latency by transport (`sse`, `ws`), seconds: from the manager
    /// taking a committed event in to its frame handed to a client's connection. Unlike
    /// `fanout_seconds` it includes the wait in the client's queue and for its worker.
    pub delivery_seconds: HistogramVec,
    /// The SQLite write-ahead log's file length, read at each scrape (SQLite only):
    /// shows a log held back from starting over, e.g. by a long-running reader.
    sqlite_wal: Option<(PathBuf, IntGauge)>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("vigil".to_owned()), None)?;
        let connections = IntGaugeVec::new(
            Opts::new("connections", "Open streams"),
            &["transport", "role"],
        )?;
        let events_published = IntCounter::new("events_published_total", "Events fanned out")?;
        let deliveries = IntCounter::new("deliveries_total", "Event frames queued to clients")?;
        let queue_overflows =
            IntCounter::new("queue_overflows_total", "Clients cut off with a full queue")?;
        let resumes = IntCounter::new("resumes_total", "Streams resumed with Last-Event-ID")?;
        let replayed_events =
            IntCounter::new("replayed_events_total", "Events replayed from the database")?;
        let limit_rejections = IntCounterVec::new(
            Opts::new("limit_rejections_total", "Requests refused by a limit"),
            &["limit"],
        )?;
        let ws_deprecated_connections = IntCounter::new(
            "ws_deprecated_connections_total",
            "WebSocket connections while deprecated",
        )?;
        let ws_frames = IntCounterVec::new(
            Opts::new("ws_frames_total", "WebSocket frames received"),
            &["type"],
        )?;
        let fanout_seconds = Histogram::with_opts(
            HistogramOpts::new("fanout_seconds", "Publish to client-queue latency").buckets(vec![
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ]),
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(events_published.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(queue_overflows.clone()))?;
        registry.register(Box::new(resumes.clone()))?;
        registry.register(Box::new(replayed_events.clone()))?;
        registry.register(Box::new(limit_rejections.clone()))?;
        registry.register(Box::new(ws_deprecated_connections.clone()))?;
        registry.register(Box::new(ws_frames.clone()))?;
        let delivery_seconds = HistogramVec::new(
            HistogramOpts::new(
                "delivery_seconds",
                "Publish to write latency: committed event taken in by the manager to its frame handed to the client's connection",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0,
            ]),
            &["transport"],
        )?;
        registry.register(Box::new(fanout_seconds.clone()))?;
        registry.register(Box::new(delivery_seconds.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            connections,
            events_published,
            deliveries,
            queue_overflows,
            resumes,
            replayed_events,
            limit_rejections,
            ws_deprecated_connections,
            ws_frames,
            fanout_seconds,
            delivery_seconds,
            sqlite_wal: None,
        })
    }

    /// Exports `vigil_sqlite_wal_bytes`, the length of the file at `path`.
    pub fn watch_sqlite_wal(&mut self, path: PathBuf) -> Result<(), prometheus::Error> {
        let gauge = IntGauge::new(
            "sqlite_wal_bytes",
            "Length of the SQLite write-ahead log file, bytes",
        )?;
        self.registry.register(Box::new(gauge.clone()))?;
        self.sqlite_wal = Some((path, gauge));
        Ok(())
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        if let Some((path, gauge)) = &self.sqlite_wal {
            let len = crate::db::pool::sqlite_wal_len(path);
            gauge.set(i64::try_from(len).unwrap_or(i64::MAX));
        }
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
