//! Prometheus metrics, one registry per application instance (no process-global state,
//! so several servers can run in one test binary).

use std::path::PathBuf;

use crate::hub::messages::Transport;

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
    /// Events deleted by the retention pruner: shows it keeps pace with the log.
    pub events_pruned: IntCounter,
    /// Streams refused by a limit, by limit name.
    pub limit_rejections: IntCounterVec,
    /// SQLite writes refused (503) by cause: `locked`, `full`, `failing`.
    pub write_failures: IntCounterVec,
    /// Times a read of the event log found it behind what this instance had delivered:
    /// the database lost committed events, which an operator must hear of.
    pub event_log_behind: IntCounter,
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
    /// `vigil_broker_connected`, with Redis only.
    broker_connected: Option<IntGauge>,
    /// Redis connections that could not be made or were lost, by the task that holds them
    /// (`publisher`, `subscriber`); exported with Redis only. The log says a lasting
    /// outage once every 30 s, so this is what tells it goes on, and how hard it retries.
    pub broker_failures: IntCounterVec,
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
        let deliveries = IntCounter::new(
            "deliveries_total",
            "Live event frames queued to clients (a resume's replay is counted apart)",
        )?;
        let queue_overflows =
            IntCounter::new("queue_overflows_total", "Clients cut off with a full queue")?;
        let resumes = IntCounter::new("resumes_total", "Streams resumed with Last-Event-ID")?;
        let replayed_events =
            IntCounter::new("replayed_events_total", "Events replayed from the database")?;
        let events_pruned = IntCounter::new(
            "events_pruned_total",
            "Events deleted from the log past VIGIL_EVENT_RETENTION_DAYS (alerts are kept)",
        )?;
        let limit_rejections = IntCounterVec::new(
            Opts::new("limit_rejections_total", "Requests refused by a limit"),
            &["limit"],
        )?;
        let write_failures = IntCounterVec::new(
            Opts::new(
                "write_failures_total",
                "Writes answered 503, by cause (locked by another process, disk full, read-only files, files replaced under the server, database unreachable, other)",
            ),
            &["cause"],
        )?;
        let event_log_behind = IntCounter::new(
            "event_log_behind_total",
            "Reads of the event log that found it ending below events this instance had delivered: the database lost committed events",
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
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 2.5, 10.0,
            ]),
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(events_published.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(queue_overflows.clone()))?;
        registry.register(Box::new(resumes.clone()))?;
        registry.register(Box::new(replayed_events.clone()))?;
        registry.register(Box::new(events_pruned.clone()))?;
        registry.register(Box::new(limit_rejections.clone()))?;
        registry.register(Box::new(write_failures.clone()))?;
        registry.register(Box::new(event_log_behind.clone()))?;
        registry.register(Box::new(ws_deprecated_connections.clone()))?;
        registry.register(Box::new(ws_frames.clone()))?;
        let delivery_seconds = HistogramVec::new(
            HistogramOpts::new(
                "delivery_seconds",
                "Publish to write latency: committed event taken in by the manager to its frame handed to the client's connection",
            )
            // Past the threshold an operator alerts on (a second, docs/deployment.md):
            // `histogram_quantile` cannot report above the highest finite bucket, so a
            // histogram ending at 1 s said "1" for a p99 of a minute.
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["transport"],
        )?;
        registry.register(Box::new(fanout_seconds.clone()))?;
        registry.register(Box::new(delivery_seconds.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(process::ProcessMetrics::new()))?;
        // Every series exists from the start, at zero: a dashboard or alert rule on
        // `vigil_connections{transport="ws",role="nurse"}` has a value before the first
        // nurse connects, not "no data", and `rate()` sees the first increment.
        for transport in [Transport::Sse, Transport::Ws] {
            for role in crate::domain::Role::all() {
                connections.with_label_values(&[transport.as_str(), role.as_str()]);
            }
            delivery_seconds.with_label_values(&[transport.as_str()]);
        }
        for limit in [
            "per_user",
            "instance",
            "shutdown",
            "write_rate",
            "body_timeout",
        ] {
            limit_rejections.with_label_values(&[limit]);
        }
        for frame in [
            "subscribe",
            "ack",
            "ping",
            "oversize",
            "malformed",
            "unknown",
            "binary",
            "fragment",
            "flood",
        ] {
            ws_frames.with_label_values(&[frame]);
        }
        let broker_failures = IntCounterVec::new(
            Opts::new(
                "broker_failures_total",
                "Redis connections that could not be made or were lost, by task (publisher, subscriber)",
            ),
            &["task"],
        )?;
        for task in ["publisher", "subscriber"] {
            broker_failures.with_label_values(&[task]);
        }
        for cause in [
            "locked",
            "full",
            "read_only",
            "replaced",
            "unreachable",
            "failing",
        ] {
            write_failures.with_label_values(&[cause]);
        }
        Ok(Self {
            registry,
            connections,
            events_published,
            deliveries,
            queue_overflows,
            resumes,
            replayed_events,
            events_pruned,
            limit_rejections,
            write_failures,
            event_log_behind,
            ws_deprecated_connections,
            ws_frames,
            fanout_seconds,
            delivery_seconds,
            sqlite_wal: None,
            broker_connected: None,
            broker_failures,
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

    /// Exports `vigil_broker_connected` and `vigil_broker_failures_total` (with Redis): an
    /// outage showed only in the log and `/readyz`'s body, which stays 200 while this
    /// instance serves its own clients.
    pub fn watch_broker(&mut self) -> Result<(), prometheus::Error> {
        let gauge = IntGauge::new(
            "broker_connected",
            "1 while this instance is subscribed to Redis and Redis answers its publisher, else 0",
        )?;
        self.registry.register(Box::new(gauge.clone()))?;
        self.registry
            .register(Box::new(self.broker_failures.clone()))?;
        self.broker_connected = Some(gauge);
        Ok(())
    }

    /// The Prometheus text exposition; `broker` is the broker's state now (`None`: no
    /// Redis).
    pub fn render(&self, broker: Option<bool>) -> String {
        if let (Some(gauge), Some(connected)) = (&self.broker_connected, broker) {
            gauge.set(i64::from(connected));
        }
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

/// Process metrics with CPU time to the clock tick.
#[cfg(target_os = "linux")]
mod process {
    use prometheus::core::{Collector, Desc};
    use prometheus::process_collector::ProcessCollector;
    use prometheus::proto::MetricFamily;

    /// prometheus' process collector, whose `process_cpu_seconds_total` is an integer
    /// counter (0 until a whole second of CPU, then 1 …): Vigil's figure is the real one.
    pub struct ProcessMetrics {
        inner: ProcessCollector,
    }

    impl ProcessMetrics {
        /// The collector of this process.
        pub fn new() -> Self {
            Self {
                inner: ProcessCollector::for_self(),
            }
        }
    }

    impl Collector for ProcessMetrics {
        fn desc(&self) -> Vec<&Desc> {
            self.inner.desc()
        }

        fn collect(&self) -> Vec<MetricFamily> {
            let mut families = self.inner.collect();
            let Some(seconds) = cpu_seconds() else {
                return families;
            };
            for family in &mut families {
                if family.name().ends_with("process_cpu_seconds_total") {
                    for metric in family.mut_metric() {
                        let mut counter = metric.get_counter().clone();
                        counter.set_value(seconds);
                        metric.set_counter(counter);
                    }
                }
            }
            families
        }
    }

    /// User and system CPU time of this process, seconds.
    fn cpu_seconds() -> Option<f64> {
        let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
        let ticks = procfs::ticks_per_second();
        (ticks > 0).then(|| (stat.utime + stat.stime) as f64 / ticks as f64)
    }

    #[cfg(test)]
    mod tests {
        use prometheus::core::Collector;

        use super::{ProcessMetrics, cpu_seconds};

        /// The whole-second counter read 0 for a process that had used 0.13 s.
        #[test]
        fn cpu_seconds_are_not_rounded_down_to_whole_seconds() {
            // Spend a few clock ticks of CPU first: a fresh test process has used none.
            let mut sum = 0u64;
            while cpu_seconds().unwrap_or(1.0) < 0.05 {
                for i in 0..100_000u64 {
                    sum = std::hint::black_box(sum.wrapping_add(i));
                }
            }
            let spent_before = cpu_seconds().unwrap_or_default();
            let reported = ProcessMetrics::new()
                .collect()
                .iter()
                .find(|f| f.name().ends_with("process_cpu_seconds_total"))
                .and_then(|f| f.get_metric().first().map(|m| m.get_counter().get_value()))
                .unwrap_or(-1.0);
            assert!(reported >= spent_before, "{reported} < {spent_before}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    /// Bucket counts of `vigil_delivery_seconds{transport="sse"}` by their `le`.
    fn sse_buckets(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter_map(|line| line.strip_prefix("vigil_delivery_seconds_bucket{"))
            .filter(|line| line.contains("transport=\"sse\""))
            .filter_map(|line| {
                let le = line.split("le=\"").nth(1)?.split('"').next()?.to_owned();
                let count = line.rsplit(' ').next()?.parse().ok()?;
                Some((le, count))
            })
            .collect()
    }

    /// The alert docs/deployment.md recommends (delivery p99 above a second) could never
    /// fire: the last finite bucket was 1 s, where `histogram_quantile` stops.
    #[test]
    fn a_delivery_slower_than_the_alerting_threshold_lands_in_a_finite_bucket_above_it() {
        let metrics = Metrics::new().expect("metrics");
        metrics
            .delivery_seconds
            .with_label_values(&["sse"])
            .observe(20.0);
        let buckets = sse_buckets(&metrics.render(None));
        let above_threshold = buckets
            .iter()
            .find(|(le, count)| *count == 1.0 && le != "+Inf")
            .map(|(le, _)| le.parse::<f64>().unwrap_or_default());
        assert!(
            above_threshold.is_some_and(|le| le > 1.0),
            "a 20 s delivery is counted in a finite bucket over 1 s: {buckets:?}"
        );
    }
}
