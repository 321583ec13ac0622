//! Redis pub/sub broker for several instances (issue: scale out). Each committed event
//! is delivered locally at once and published to Redis for the other instances; a
//! bridge task forwards what Redis delivers to the local manager as hints (an event's
//! number, a care-team change to confirm), reconnecting with backoff. Nothing read from
//! Redis reaches a screen unchecked: the manager reads events and care teams from the
//! database. Pub/sub is at-most-once: the manager's event-log poll fills any loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use prometheus::{IntCounter, IntCounterVec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::event::{CareTeamChange, StoredEvent};
use super::manager::AlertConnectionManager;
use super::messages::{Announced, CareTeamAnnounced};
use super::{Broker, InProcessBroker};
use crate::log_throttle::Throttle;

/// The Redis channel of one deployment: instances of the same database share it; other
/// deployments on the same Redis server use their own.
pub fn channel(deployment_id: &str) -> String {
    format!("vigil:events:{deployment_id}")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireMessage {
    Event(StoredEvent),
    CareTeam {
        #[serde(flatten)]
        change: CareTeamChange,
        /// The instance that made the change. Redis hands every message back to its
        /// publisher too, and a care-team change, unlike an event, has no sequence number
        /// to recognise a second copy by: an echo of "add P" arriving after the local
        /// "remove P" would put P back on the stream. Absent from older instances.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
    },
}

/// Messages waiting for the publisher at most. While Redis is down the publisher takes
/// one per reconnection round (seconds apart), so an unbounded queue grew by every event
/// of the outage, each with its alert, until the process ran out of memory; past this
/// bound messages are dropped, and the other instances read those events from the log.
const OUTBOX_CAPACITY: usize = 4096;

/// The publisher's bounded queue: never blocks a commit, drops when full.
struct Outbox {
    tx: mpsc::Sender<String>,
    /// Set while messages are being dropped, so that an outage is logged once, not per
    /// event; cleared once the queue is half empty again (a slow Redis that frees one
    /// slot per PUBLISH would otherwise flip it, and log, at every event).
    dropping: AtomicBool,
}

/// What became of a message handed to the [`Outbox`].
#[derive(Debug, PartialEq, Eq)]
enum Queued {
    Yes,
    /// The queue was full: dropped (the event log carries it).
    Dropped,
    /// The publisher task is gone.
    Closed,
}

impl Outbox {
    fn push(&self, text: String) -> Queued {
        match self.tx.try_send(text) {
            Ok(()) => {
                if self.tx.capacity() >= self.tx.max_capacity() / 2
                    && self.dropping.swap(false, Ordering::Relaxed)
                {
                    log::info!("redis publisher queue has room again");
                }
                Queued::Yes
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "redis publisher queue full ({OUTBOX_CAPACITY}): dropping broker messages \
                         until Redis takes them; other instances read these events from the log"
                    );
                }
                Queued::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Closed,
        }
    }
}

/// Publishes to Redis (through a queue drained by one task) and delivers locally.
pub struct RedisBroker {
    local: InProcessBroker,
    outbox: Outbox,
    link: RedisLink,
    /// This instance, in its care-team messages (so that it ignores their echoes).
    instance: String,
}

/// Whether this instance's link to Redis is up, for whoever must act on it: readiness
/// and `/metrics` say it, and the manager reads the event log often while it is down.
#[derive(Debug, Clone)]
pub struct RedisLink {
    subscribed: Arc<AtomicBool>,
    /// Redis answered the publisher's last command (a PUBLISH, or a PING when idle)
    /// within [`REDIS_ANSWER`].
    reachable: Arc<AtomicBool>,
}

impl RedisLink {
    /// Subscribed, and Redis answers the publisher.
    pub fn up(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed) && self.reachable.load(Ordering::Relaxed)
    }
}

/// The client for `url`, trusting `ca_pem` (a `rediss://` server's certificate
/// authority) besides the system's trust store. Builds without the `tls` feature have no
/// `rediss://`; configuration refuses it and a CA file before this is reached.
pub fn client(url: &str, ca_pem: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    #[cfg(feature = "tls")]
    if let Some(pem) = ca_pem {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        };
        return redis::Client::build_with_tls(url, certificates);
    }
    #[cfg(not(feature = "tls"))]
    let _ = ca_pem;
    redis::Client::open(url)
}

impl RedisBroker {
    /// Starts the publisher and subscriber tasks on the current actix runtime; each
    /// counts its failed or lost connections in `failures` under its name.
    pub fn start(
        url: &str,
        ca_pem: Option<&[u8]>,
        deployment_id: &str,
        manager: Addr<AlertConnectionManager>,
        failures: &IntCounterVec,
    ) -> Result<Self, redis::RedisError> {
        let client = client(url, ca_pem)?;
        let link = crate::link_security::redis_link(client.get_connection_info());
        link.report();
        let tls = link.tls;
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        let channel = channel(deployment_id);
        let reachable = Arc::new(AtomicBool::new(true));
        actix_web::rt::spawn(publisher(
            client.clone(),
            channel.clone(),
            inbox,
            Arc::clone(&reachable),
            LinkFailures::new(failures.with_label_values(&["publisher"]), tls),
        ));
        let subscribed = Arc::new(AtomicBool::new(false));
        let instance = uuid::Uuid::now_v7().to_string();
        actix_web::rt::spawn(subscriber(
            client,
            channel,
            manager.clone(),
            Arc::clone(&subscribed),
            instance.clone(),
            LinkFailures::new(failures.with_label_values(&["subscriber"]), tls),
        ));
        Ok(Self {
            local: InProcessBroker::new(manager),
            outbox: Outbox {
                tx: outbox,
                dropping: AtomicBool::new(false),
            },
            link: RedisLink {
                subscribed,
                reachable,
            },
            instance,
        })
    }

    /// The link's state, for the manager.
    pub fn link(&self) -> RedisLink {
        self.link.clone()
    }

    fn send(&self, message: &WireMessage) {
        match serde_json::to_string(message) {
            Ok(text) => {
                if self.outbox.push(text) == Queued::Closed {
                    log::error!(
                        "redis publisher task is gone; other instances rely on the event-log poll"
                    );
                }
            }
            Err(e) => log::error!("cannot encode broker message: {e}"),
        }
    }
}

impl Broker for RedisBroker {
    fn publish_event(&self, event: StoredEvent) {
        self.send(&WireMessage::Event(event.clone()));
        self.local.publish_event(event);
    }

    fn publish_care_team(&self, change: CareTeamChange) {
        self.send(&WireMessage::CareTeam {
            change: change.clone(),
            origin: Some(self.instance.clone()),
        });
        self.local.publish_care_team(change);
    }

    fn connected(&self) -> Option<bool> {
        Some(self.link.up())
    }
}

/// How long Redis may take to answer a command before it counts as gone. A frozen or
/// overloaded Redis keeps its TCP connections open: without a bound the publisher waited
/// for ever, its queue grew with every event, and readiness said "connected".
const REDIS_ANSWER: Duration = Duration::from_secs(2);
/// How often an idle publisher or subscriber asks Redis whether it is there (PING). A
/// subscription that only listens cannot tell a quiet channel from a dead connection (a
/// firewall that forgot an idle connection, a Redis restarted behind a partition): it
/// went deaf without a sign, readiness said "connected", and other instances' events came
/// only through the event-log poll.
const REDIS_LIVENESS: Duration = Duration::from_secs(5);
/// How often a lasting Redis failure is said again. With the backoff capped at 4 s, the
/// publisher and the subscriber each logged a warning every 4 s for as long as Redis was
/// gone (an audit: a refused certificate, 1,800 lines an hour), burying everything else.
const FAILURE_SAID_EVERY: Duration = Duration::from_secs(30);

/// What a URL whose scheme does not match its port fails with, said as such: `redis://`
/// to a port that takes only TLS is reset at once, and `rediss://` to a plain one waits
/// for an answer to its TLS greeting that never comes. Both read as anything but that.
fn scheme_hint(tls: bool, failure: &str) -> &'static str {
    let failure = failure.to_ascii_lowercase();
    if !tls && failure.contains("reset by peer") {
        "; if that port takes only TLS, give the URL as rediss://"
    } else if tls && (failure.contains("timed out") || failure.contains("no answer within")) {
        "; if that port takes plain connections, give the URL as redis://"
    } else {
        ""
    }
}

/// One task's failed and lost connections: each is counted (`vigil_broker_failures_total`),
/// the first of an outage is said at once, and while it lasts at most every
/// [`FAILURE_SAID_EVERY`].
struct LinkFailures {
    count: IntCounter,
    said: Throttle,
    /// The URL is `rediss://`, for [`scheme_hint`].
    tls: bool,
    /// A connection has worked: the scheme is right, whatever fails later (a Redis that
    /// hangs times out like a plain port greeted with TLS).
    linked: std::cell::Cell<bool>,
}

impl LinkFailures {
    fn new(count: IntCounter, tls: bool) -> Self {
        LinkFailures {
            count,
            said: Throttle::new(FAILURE_SAID_EVERY),
            tls,
            linked: std::cell::Cell::new(false),
        }
    }

    /// Counts a failure, and says `what` (built only if it is said) when due.
    fn failed(&self, what: impl FnOnce() -> String) {
        self.count.inc();
        if self.said.due() {
            let what = what();
            let hint = if self.linked.get() {
                ""
            } else {
                scheme_hint(self.tls, &what)
            };
            log::warn!(
                "{what}{hint} (said again in {} s if it lasts)",
                FAILURE_SAID_EVERY.as_secs()
            );
        }
    }

    /// A connection was made: the outage, if one was said, is over, and the next
    /// failure is said at once. `true` when one had been said.
    fn recovered(&self) -> bool {
        self.linked.set(true);
        self.said.clear()
    }
}

async fn publisher(
    client: redis::Client,
    channel: String,
    mut inbox: mpsc::Receiver<String>,
    reachable: Arc<AtomicBool>,
    failures: LinkFailures,
) {
    let mut backoff = Backoff::default();
    'connect: loop {
        let mut conn = match publisher_link(&client).await {
            Ok(conn) => {
                backoff.reset();
                reachable.store(true, Ordering::Relaxed);
                if failures.recovered() {
                    log::info!("redis publisher connected again");
                }
                conn
            }
            Err(failure) => {
                reachable.store(false, Ordering::Relaxed);
                failures.failed(|| format!("redis publisher {failure}"));
                backoff.wait().await;
                continue;
            }
        };
        loop {
            let command = match tokio::time::timeout(REDIS_LIVENESS, inbox.recv()).await {
                Ok(Some(text)) => {
                    let mut publish = redis::cmd("PUBLISH");
                    publish.arg(&channel).arg(text);
                    publish
                }
                Ok(None) => return,
                Err(_) => redis::cmd("PING"),
            };
            let answer =
                tokio::time::timeout(REDIS_ANSWER, command.query_async::<redis::Value>(&mut conn))
                    .await;
            let failure = match answer {
                Ok(Ok(_)) => {
                    reachable.store(true, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {REDIS_ANSWER:?}"),
            };
            // What was being published is lost for Redis; the other instances' event-log
            // poll delivers it.
            reachable.store(false, Ordering::Relaxed);
            failures.failed(|| format!("redis publisher: {failure}; reconnecting"));
            backoff.wait().await;
            continue 'connect;
        }
    }
}

/// A publishing connection that answers: one attempt, within [`REDIS_ANSWER`] each for
/// the connection and a PING. `Err` is what failed, for the log line after "redis
/// publisher". With its own retries the connection manager spent the whole timeout
/// retrying a refused connection, and the log said only "no answer" where the
/// subscriber said "refused". And a connection is not a link: a Redis that wants a
/// password the URL lacks accepts it and refuses every command ("NOAUTH"), and each
/// PUBLISH then said the outage over and begun again; a PING answered is the proof.
async fn publisher_link(client: &redis::Client) -> Result<redis::aio::ConnectionManager, String> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(REDIS_ANSWER));
    let mut conn = match tokio::time::timeout(
        REDIS_ANSWER,
        client.get_connection_manager_with_config(config),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Err(_) => return Err(format!("cannot connect: no answer within {REDIS_ANSWER:?}")),
    };
    let ping = redis::cmd("PING");
    match tokio::time::timeout(REDIS_ANSWER, ping.query_async::<redis::Value>(&mut conn)).await {
        Ok(Ok(_)) => Ok(conn),
        Ok(Err(e)) => Err(format!(": {e}; reconnecting")),
        Err(_) => Err(format!(": no answer within {REDIS_ANSWER:?}; reconnecting")),
    }
}

async fn subscriber(
    client: redis::Client,
    channel: String,
    manager: Addr<AlertConnectionManager>,
    subscribed: Arc<AtomicBool>,
    instance: String,
    failures: LinkFailures,
) {
    let mut backoff = Backoff::default();
    loop {
        let (mut sink, mut messages) = match subscribe(&client, &channel).await {
            Ok(parts) => parts,
            Err(cause) => {
                failures.failed(|| format!("redis subscriber cannot connect: {cause}"));
                backoff.wait().await;
                continue;
            }
        };
        if failures.recovered() {
            log::info!("redis subscriber connected again");
        } else {
            log::info!("redis subscriber connected");
        }
        subscribed.store(true, Ordering::Relaxed);
        backoff.reset();
        let lost = loop {
            match tokio::time::timeout(REDIS_LIVENESS, messages.next()).await {
                Ok(Some(message)) => forward(&message, &manager, &instance),
                Ok(None) => break "the connection closed".to_owned(),
                Err(_) => {
                    match tokio::time::timeout(REDIS_ANSWER, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break format!("no answer to PING within {REDIS_ANSWER:?}"),
                    }
                }
            }
        };
        subscribed.store(false, Ordering::Relaxed);
        failures.failed(|| format!("redis subscription lost ({lost}); reconnecting"));
        backoff.wait().await;
    }
}

/// A subscribed connection, within [`REDIS_ANSWER`]: a frozen Redis at connect time held
/// the subscriber until it thawed.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), String> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    };
    match tokio::time::timeout(REDIS_ANSWER, connect).await {
        Ok(Ok(parts)) => Ok(parts),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {REDIS_ANSWER:?}")),
    }
}

/// Hands one message from Redis to the manager as a hint.
fn forward(message: &redis::Msg, manager: &Addr<AlertConnectionManager>, instance: &str) {
    let Ok(text) = message.get_payload::<String>() else {
        return;
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "the manager's mailbox is the sanctioned target; the bridge must not wait on it"
    )]
    match serde_json::from_str::<WireMessage>(&text) {
        // Only the number: the manager reads the event itself.
        Ok(WireMessage::Event(event)) => manager.do_send(Announced(event.seq)),
        Ok(WireMessage::CareTeam { origin, .. }) if origin.as_deref() == Some(instance) => {}
        Ok(WireMessage::CareTeam { change, .. }) => manager.do_send(CareTeamAnnounced(change)),
        Err(e) => log::warn!("ignoring malformed broker message: {e}"),
    }
}

#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    async fn wait(&mut self) {
        let secs = 1u64 << self.attempt.min(4);
        self.attempt += 1;
        tokio::time::sleep(Duration::from_millis(secs * 250)).await;
    }
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two ways a scheme that does not match its port fails, each named; any other
    /// failure gets no hint.
    #[test]
    fn a_scheme_that_does_not_match_its_port_is_hinted_at() {
        let plain_to_tls =
            "redis subscriber cannot connect: Connection reset by peer (os error 104)";
        assert!(scheme_hint(false, plain_to_tls).contains("give the URL as rediss://"));
        assert_eq!(scheme_hint(true, plain_to_tls), "");
        for tls_to_plain in [
            "redis publisher cannot connect: timed out",
            "redis subscriber cannot connect: no answer within 2s",
        ] {
            assert!(scheme_hint(true, tls_to_plain).contains("give the URL as redis://"));
            assert_eq!(scheme_hint(false, tls_to_plain), "");
        }
        assert_eq!(scheme_hint(false, "Connection refused (os error 111)"), "");
    }

    /// While Redis is down the queue must not grow with every event: past its bound a
    /// message is dropped at once (a commit never waits on Redis), and once the
    /// publisher takes one, the next is queued again. The outage counts as over (and is
    /// logged as such) only once the queue is half empty, not at every freed slot.
    #[test]
    fn a_full_outbox_drops_without_blocking_and_takes_messages_again_once_drained() {
        let (tx, mut rx) = mpsc::channel(4);
        let outbox = Outbox {
            tx,
            dropping: AtomicBool::new(false),
        };
        for n in 0..4 {
            assert_eq!(outbox.push(n.to_string()), Queued::Yes);
        }
        assert_eq!(outbox.push("dropped".to_owned()), Queued::Dropped);
        assert!(outbox.dropping.load(Ordering::Relaxed));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("0"));
        assert_eq!(outbox.push("4".to_owned()), Queued::Yes);
        assert!(
            outbox.dropping.load(Ordering::Relaxed),
            "one freed slot does not end the outage"
        );
        for expected in ["1", "2", "3"] {
            assert_eq!(rx.try_recv().ok().as_deref(), Some(expected));
        }
        assert_eq!(outbox.push("5".to_owned()), Queued::Yes);
        assert!(!outbox.dropping.load(Ordering::Relaxed));
        drop(rx);
        assert_eq!(outbox.push("6".to_owned()), Queued::Closed);
    }

    #[test]
    fn care_team_messages_carry_their_origin_and_older_ones_without_it_still_parse() {
        let change = CareTeamChange {
            user_id: "alice".to_owned(),
            patient_id: "p1".to_owned(),
            assigned: true,
            after_seq: 7,
            version: 3,
        };
        let text = serde_json::to_string(&WireMessage::CareTeam {
            change,
            origin: Some("instance-a".to_owned()),
        })
        .unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            value,
            serde_json::json!({"type": "care_team", "user_id": "alice", "patient_id": "p1",
                               "assigned": true, "after_seq": 7, "version": 3,
                               "origin": "instance-a"})
        );
        // What instances before the origin field publish.
        let older = r#"{"type":"care_team","user_id":"alice","patient_id":"p1","assigned":false}"#;
        match serde_json::from_str::<WireMessage>(older) {
            Ok(WireMessage::CareTeam { change, origin }) => {
                assert_eq!((change.patient_id.as_str(), change.assigned), ("p1", false));
                assert_eq!(change.after_seq, 0, "no place in the log known");
                assert_eq!(change.version, 0, "no care-team version known");
                assert_eq!(origin, None);
            }
            other => panic!("an older care-team message: {other:?}"),
        }
    }
}
