//! What `vigil bench` reports: the figures the issue asks for, each with its unit in its
//! name, and the failures behind any non-zero exit, by cause.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::BenchTransport;

/// Percentiles in milliseconds.
#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p99_9: f64,
    /// Worst.
    pub max: f64,
}

impl Percentiles {
    /// `None` for no values: a run where nothing connected has no connect time, not 0 ms.
    pub fn of(values: &mut [f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let idx = ((values.len() as f64 * q).ceil() as usize)
                .saturating_sub(1)
                .min(values.len() - 1);
            values.get(idx).copied().unwrap_or_default()
        };
        Some(Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p99_9: at(0.999),
            max: at(1.0),
        })
    }
}

/// Per-transport delivery figures.
#[derive(Debug, Serialize, Default)]
pub struct Delivery {
    /// Deliveries expected: each connected subscriber × the alerts of its patient that
    /// the server accepted (201). A refused alert is expected nowhere.
    pub expected: usize,
    /// Received (first copy of each).
    pub received: usize,
    /// Expected but never received.
    pub lost: usize,
    /// Received more than once.
    pub duplicated: usize,
    /// This run's alerts delivered to a subscriber of another patient: a scope leak.
    pub misrouted: usize,
    /// Publish → receipt latency, ms (`null` when nothing was received).
    pub latency_ms: Option<Percentiles>,
}

impl Delivery {
    /// Adds another transport's counts (latency is computed over all receipts instead).
    pub fn add_counts(&mut self, other: &Delivery) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.misrouted += other.misrouted;
    }
}

/// The scenario as run, so a report says what produced it.
#[derive(Debug, Serialize)]
pub struct Scenario {
    /// Subscribers asked for.
    pub subscribers: usize,
    /// Their transport.
    pub transport: BenchTransport,
    /// Patients they are spread over.
    pub patients: usize,
    /// Alerts asked for.
    pub alerts: usize,
    /// Alerts per second.
    pub rate: f64,
    /// Concurrent producers.
    pub producers: usize,
    /// Subscribers connecting at once.
    pub connect_concurrency: usize,
    /// Per-subscriber connect and per-request timeout, s.
    pub timeout_secs: u64,
    /// Longest wait for stragglers, s.
    pub drain_secs: u64,
    /// Idle hold after connecting, s.
    pub hold_secs: u64,
    /// The bench's own threads.
    pub threads: usize,
}

/// The whole report (`--json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// This run's tag: its patients are `bench-<run>-p<n>` and its alerts' titles
    /// `bench-<run>-<k>`, so runs side by side never count each other's alerts.
    pub run: String,
    /// Scenario.
    pub scenario: Scenario,
    /// Subscribers connected.
    pub connections_established: usize,
    /// Subscribers that failed to connect (they expect nothing: counted here, not as lost).
    pub connections_failed: usize,
    /// Why they failed, with how many failed that way.
    pub connection_failures: BTreeMap<String, usize>,
    /// Connected subscribers whose stream ended before the bench closed it (a full
    /// queue, `VIGIL_CLIENT_QUEUE`, a shutdown, a proxy dropping it), with or without an
    /// alert missed: every stream is to be held. The bench does not resume, so what they
    /// missed is counted as lost.
    pub subscribers_cut_off: usize,
    /// Time from request to `connected`, ms (`null` when nothing connected).
    pub connect_ms: Option<Percentiles>,
    /// Wall time to connect everyone, ms.
    pub connect_all_ms: f64,
    /// Alerts raised (201).
    pub alerts_raised: usize,
    /// Alerts not raised: refused, unanswered, or not sent once the server stopped
    /// answering.
    pub alerts_failed: usize,
    /// Why they were not raised (`HTTP 429`, `timed out`, …), with how many.
    pub alert_failures: BTreeMap<String, usize>,
    /// POST latency, ms.
    pub post_ms: Option<Percentiles>,
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
    /// Server resident memory before connecting (`/metrics`).
    pub server_rss_before_bytes: Option<u64>,
    /// Server resident memory with everyone connected.
    pub server_rss_connected_bytes: Option<u64>,
    /// (connected − before) / connections.
    pub server_rss_per_connection_bytes: Option<f64>,
}

impl Report {
    /// What makes the run a failure (the exit status is non-zero when any is listed).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut note = |n: usize, what: &str| {
            if n > 0 {
                problems.push(format!("{n} {what}"));
            }
        };
        note(self.total.lost, "lost");
        note(self.total.duplicated, "duplicated");
        note(
            self.total.misrouted,
            "misrouted to another patient's subscribers",
        );
        note(self.connections_failed, "connections failed");
        note(
            self.subscribers_cut_off,
            "streams ended before the bench closed them",
        );
        if self.alert_failures.contains_key("HTTP 429") {
            // Each producer is one user, and a user's writes are limited by default: a
            // run at the B6 rate against a default server is refused, not slow.
            note(
                self.alerts_failed,
                "alerts failed (429 is the server's write limit per user, VIGIL_RATE_LIMIT, \
                 and each producer is one user: start the server with --rate-limit <n>, as \
                 scripts/bench.sh does, or spread the rate over more --producers)",
            );
        } else {
            note(self.alerts_failed, "alerts failed");
        }
        problems
    }

    /// The human summary.
    pub fn lines(&self) -> Vec<String> {
        let p = |x: &Option<Percentiles>| match x {
            Some(x) => format!(
                "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
                x.p50, x.p90, x.p99, x.p99_9, x.max
            ),
            None => "n/a".to_owned(),
        };
        let s = &self.scenario;
        let mut out = vec![
            format!(
                "scenario            run {}: {} {} subscribers on {} patient{}, {} alerts at {}/s from {} producers",
                self.run,
                s.subscribers,
                format!("{:?}", s.transport).to_lowercase(),
                s.patients,
                if s.patients == 1 { "" } else { "s" },
                s.alerts,
                s.rate,
                s.producers
            ),
            format!(
                "connections         {} established, {} failed, all in {:.0} ms",
                self.connections_established, self.connections_failed, self.connect_all_ms
            ),
        ];
        for (why, n) in &self.connection_failures {
            out.push(format!("  failed: {n} × {why}"));
        }
        out.push(format!("connect time        {}", p(&self.connect_ms)));
        out.push(format!(
            "alerts              {} raised, {} failed, {:.0}/s; POST {}",
            self.alerts_raised,
            self.alerts_failed,
            self.alerts_per_second,
            p(&self.post_ms)
        ));
        for (why, n) in &self.alert_failures {
            out.push(format!("  failed: {n} × {why}"));
        }
        // Each producer waits for its POST's answer before the next: a rate past what
        // one round trip allows is not reached, and the figures are for a lower one.
        if self.alerts_failed == 0
            && self.alerts_raised > 1
            && self.alerts_per_second < 0.9 * s.rate
        {
            out.push(format!(
                "  below the {}/s asked for: each producer waits for an answer before its next POST; add --producers",
                s.rate
            ));
        }
        for (name, d) in [("total", &self.total), ("sse", &self.sse), ("ws", &self.ws)] {
            if d.expected > 0 || d.received > 0 || d.misrouted > 0 {
                out.push(format!(
                    "deliveries {name:<8} expected {} received {} lost {} duplicated {} misrouted {}",
                    d.expected, d.received, d.lost, d.duplicated, d.misrouted
                ));
                out.push(format!("latency {name:<11} {}", p(&d.latency_ms)));
            }
        }
        if self.subscribers_cut_off > 0 {
            out.push(format!(
                "cut off             {} subscribers' streams ended before the bench closed them (a full queue, VIGIL_CLIENT_QUEUE, a shutdown, a proxy); the bench does not resume, so what they missed counts as lost",
                self.subscribers_cut_off
            ));
        }
        out.push(format!(
            "deliveries/s        {:.0}",
            self.deliveries_per_second
        ));
        if let (Some(b), Some(a)) = (
            self.server_rss_before_bytes,
            self.server_rss_connected_bytes,
        ) {
            let per_connection = match self.server_rss_per_connection_bytes {
                Some(bytes) => format!(", {:.1} KiB per connection", bytes / 1024.0),
                None => String::new(),
            };
            out.push(format!(
                "server RSS          {:.1} MiB before, {:.1} MiB connected{per_connection}",
                b as f64 / 1048576.0,
                a as f64 / 1048576.0,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_take_the_value_at_or_above_each_rank_and_none_of_nothing() {
        assert!(Percentiles::of(&mut []).is_none());
        let mut values: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
        let p = Percentiles::of(&mut values).unwrap_or_default();
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p99_9, p.max),
            (500.0, 900.0, 990.0, 999.0, 1000.0)
        );
    }
}
