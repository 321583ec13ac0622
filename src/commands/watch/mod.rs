//! `vigil watch`: a terminal SSE client. Lists the alerts not yet resolved, then prints
//! one line per alert as it comes (coloured by severity), resumes from the last id after
//! a dropped connection, and with `--ack` acknowledges alerts whose short id is typed on
//! stdin. The short id is the *last* 8 characters of the UUID: a v7 UUID starts with its
//! timestamp, so prefixes collide for alerts raised close together, while the tail is
//! random.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::Value;

use crate::cli::WatchArgs;

/// `println!` through [`emit`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::commands::watch::emit(format_args!($($arg)*)) };
}

mod ack;
mod backlog;
mod lines;

pub use ack::{AckLine, parse_ack_line, resolve_typed_id};
pub use lines::{format_alert, printable, short_id};

use ack::ack_loop;
use backlog::{print_backlog, print_reloaded, unresolved_backlog};
use lines::{Shown, print_alert};

/// Why watching stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Credentials refused, scope forbidden and other final answers.
    #[error("{0}")]
    Refused(String),
    /// Client setup.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

type Known = Arc<Mutex<HashMap<String, String>>>;

/// A URL that cannot work never will: said now, instead of at every retry for ever.
/// `base` is `given` without its trailing slashes.
fn check_base_url(given: &str, base: &str) -> Result<(), WatchError> {
    let refused = |why: String| Err(WatchError::Refused(format!("--url: {why} (got {given:?})")));
    let url = match reqwest::Url::parse(base) {
        // Paths are appended to it: a query string or fragment would swallow them.
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.has_host()
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            url
        }
        Ok(_) | Err(_) => {
            return refused(
                "expected the server's base URL, e.g. http://127.0.0.1:8080".to_owned(),
            );
        }
    };
    // Without TLS the client says only "scheme is not http".
    if url.scheme() == "https" && !cfg!(feature = "tls") {
        return refused(
            "this build of vigil has no TLS; build it with `cargo build --release --features \
             tls` (docs/deployment.md), or give the server's plain http:// address"
                .to_owned(),
        );
    }
    // The README's `$API` (…/api/v1) given for the base: every request then answered 404.
    let path = url.path().trim_end_matches('/');
    if let Some(server) = path
        .strip_suffix("/api/v1")
        .or_else(|| path.strip_suffix("/api"))
    {
        let mut suggested = url.clone();
        suggested.set_path(server);
        return refused(format!(
            "expected the server's base URL, without /api/v1: {}",
            suggested.as_str().trim_end_matches('/')
        ));
    }
    Ok(())
}

/// Streams until interrupted or refused.
pub async fn run(args: WatchArgs) -> Result<(), WatchError> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    check_base_url(&args.url, &base)?;
    let known: Known = Arc::default();
    // Colours only for a person at a terminal: not into a file or a pipe, and not when
    // NO_COLOR (no-color.org) is set.
    let colours = !args.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    // Sent once the first list is shown: only then can a typed short id name an alert.
    let (listed, first_list) = tokio::sync::oneshot::channel::<()>();
    let mut listed = Some(listed);
    if args.ack {
        status_line(
            "--ack: type an alert's short id (shown after its #seq), optionally a status \
             (acknowledged, escalated, resolved) and a note, e.g. `4f3a9c1d escalated need a doctor`",
        );
        tokio::spawn(ack_loop(
            client.clone(),
            base.clone(),
            args.token.clone(),
            Arc::clone(&known),
            first_list,
        ));
    }
    let patients: Vec<(&str, &str)> = args
        .patients
        .iter()
        .map(|p| ("patient_id", p.as_str()))
        .collect();
    let mut last_id: Option<String> = None;
    let mut shown = Shown::default();
    let mut delay = Duration::from_secs(1);
    loop {
        let attempt = async {
            if last_id.is_none() {
                let backlog = unresolved_backlog(&client, &base, &args.token, &patients).await?;
                print_backlog(&backlog, &mut shown, &known, colours);
                last_id = Some(backlog.head.to_string());
                if let Some(listed) = listed.take() {
                    let _ = listed.send(());
                }
            }
            let mut request = client
                .get(format!("{base}/api/v1/alerts/stream"))
                .query(&patients)
                .bearer_auth(&args.token);
            if let Some(id) = &last_id {
                request = request.header("Last-Event-ID", id);
            }
            // Not the client's timeout: that would also end the stream's body.
            let sent = tokio::time::timeout(ANSWER_WITHIN, request.send())
                .await
                .map_err(|_| Failure::Retry(no_answer()))?;
            let resp = answered(sent).await?;
            delay = Duration::from_secs(1);
            let mut events = resp.bytes_stream().eventsource();
            // Until `connected` says otherwise, the server's default heartbeat.
            let mut silence = silence_limit(DEFAULT_HEARTBEAT_SECS);
            loop {
                let event = match tokio::time::timeout(silence, events.next()).await {
                    Ok(Some(Ok(event))) => event,
                    Ok(Some(Err(e))) => return Err(Failure::Retry(broken(&e))),
                    Ok(None) => {
                        return Err(Failure::Retry(
                            "the server closed the stream (a restart?)".to_owned(),
                        ));
                    }
                    // A connection that died without a word (a network dropping packets,
                    // a frozen proxy) shows nothing for ever: no heartbeat is a drop.
                    Err(_) => {
                        return Err(Failure::Retry(format!(
                            "nothing heard for {}s, not even a heartbeat; reconnecting",
                            silence.as_secs()
                        )));
                    }
                };
                if !event.id.is_empty() {
                    last_id = Some(event.id.clone());
                }
                match event.event.as_str() {
                    "auth_expired" => {
                        return Err(Failure::Final("token expired; mint a new one".to_owned()));
                    }
                    "connected" => {
                        if let Some(secs) = serde_json::from_str::<Value>(&event.data)
                            .ok()
                            .and_then(|v| v.get("heartbeat_seconds").and_then(Value::as_u64))
                        {
                            silence = silence_limit(secs);
                        }
                    }
                    _ => {}
                }
                let reload = print_event(&event.event, &event.data, &mut shown, &known, colours);
                // What the stream will not bring (alerts before a `reset`, an added
                // patient's earlier ones) is read from the list, as at start.
                if let Some(again) = reload {
                    let scope: Vec<(&str, &str)> = match &again {
                        ListAgain::Added(added) => {
                            added.iter().map(|p| ("patient_id", p.as_str())).collect()
                        }
                        ListAgain::Watched => patients.clone(),
                    };
                    let backlog = unresolved_backlog(&client, &base, &args.token, &scope).await?;
                    match again {
                        // The log the ids and changes came from may be gone (a restored
                        // or replaced database numbers its changes anew): what was
                        // printed says nothing about what is current, so all is listed.
                        ListAgain::Watched => {
                            shown = Shown::default();
                            print_backlog(&backlog, &mut shown, &known, colours);
                        }
                        ListAgain::Added(_) => {
                            print_reloaded(&backlog, &mut shown, &known, colours)
                        }
                    }
                }
            }
        };
        match attempt.await {
            Ok(()) => {}
            Err(Failure::Final(why)) => return Err(WatchError::Refused(why)),
            Err(Failure::Retry(why)) => {
                status_line(&format!("{why}; retrying in {}s", delay.as_secs()));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// How long a list page, an acknowledgment or a stream's response head may take. The
/// server gives up on its database after 10 s, so one silent for longer is frozen or
/// unreachable (a stopped process, a stuck proxy): `watch` said nothing and waited for
/// ever, at start, at a reconnect and for a typed acknowledgment.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// Whether a request failed for want of an answer in time, not of a connection.
fn unanswered(error: &reqwest::Error) -> bool {
    error.is_timeout() && !error.is_connect()
}

/// What a request that got no answer in time is told, with what to do about it.
fn no_answer() -> String {
    format!(
        "the server did not answer within {}s (stopped, overloaded, or a proxy in between stuck)",
        ANSWER_WITHIN.as_secs()
    )
}

/// The SSE heartbeat period the server uses unless configured otherwise.
const DEFAULT_HEARTBEAT_SECS: u64 = 30;

/// How long a stream may stay silent before it counts as dropped: two heartbeats missed,
/// and a few seconds for a loaded server.
fn silence_limit(heartbeat_secs: u64) -> Duration {
    Duration::from_secs(heartbeat_secs.saturating_mul(2).saturating_add(5))
}

/// Why one attempt at the server did not go on.
enum Failure {
    /// An answer retrying cannot change (401, 403, 404 …, an expired token): watching stops.
    Final(String),
    /// The server unreachable, failing or gone: tried again with backoff.
    Retry(String),
}

/// A successful response, or what its failure means for watching.
async fn answered(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, Failure> {
    let resp = sent.map_err(|e| {
        Failure::Retry(if unanswered(&e) {
            no_answer()
        } else {
            format!("cannot connect ({})", with_cause(&e))
        })
    })?;
    let status = resp.status();
    if status.is_success() {
        Ok(resp)
    } else if status.is_client_error() {
        let body: Value = resp.json().await.unwrap_or_default();
        let detail = body
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("refused");
        let why = format!("{status}: {}", printable(detail));
        // This user's other screens hold every stream slot: one closing (a console tab
        // reconnecting after a restart, a stream not yet seen as closed) frees it.
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(Failure::Retry(why))
        } else {
            Err(Failure::Final(why))
        }
    } else {
        Err(Failure::Retry(format!("server answered {status}")))
    }
}

/// Writes one line to stdout: a closed stdout (`vigil watch | head -1`) ends watching
/// quietly, any other write failure (a full disk) with the cause.
fn emit(line: std::fmt::Arguments<'_>) {
    crate::stdout::line_or_exit(&line.to_string());
}

/// reqwest's error with its innermost cause: "error sending request for url (…)" alone
/// does not say whether the connection was refused, timed out or the name did not resolve.
/// Why a stream stopped mid-body, in a user's words: the SSE parser's own names
/// ("Transport error: error decoding response body") said nothing of what happened.
fn broken(error: &eventsource_stream::EventStreamError<reqwest::Error>) -> String {
    match error {
        eventsource_stream::EventStreamError::Transport(e) => {
            format!("the connection to the server was lost ({})", with_cause(e))
        }
        other => format!("the stream could not be read ({other})"),
    }
}

pub(super) fn with_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let cause = cause.to_string();
    let error = error.to_string();
    if cause == error {
        error
    } else {
        format!("{error}: {cause}")
    }
}

fn status_line(text: &str) {
    eprintln!("vigil watch: {text}");
}

/// A list to read again while streaming, for what the stream will not bring.
enum ListAgain {
    /// After a `reset`: every patient watched.
    Watched,
    /// Patients just added to the care team: their alerts from before.
    Added(Vec<String>),
}

/// Prints one streamed event; says which list to read again, if any.
fn print_event(
    kind: &str,
    data: &str,
    shown: &mut Shown,
    known: &Known,
    colours: bool,
) -> Option<ListAgain> {
    let value = serde_json::from_str::<Value>(data).ok()?;
    let list = |k: &str| -> Vec<String> {
        value
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(printable).collect())
            .unwrap_or_default()
    };
    let (alert, prefix) = match kind {
        "alert" => (value.clone(), ""),
        "alert_updated" => (value.get("alert").cloned().unwrap_or_default(), "updated "),
        "connected" => {
            let text =
                |k: &str| printable(value.get(k).and_then(Value::as_str).unwrap_or_default());
            let patients = list("patients");
            let patients = if patients.is_empty() {
                "none yet: nothing will be shown until you are put on a care team".to_owned()
            } else {
                patients.join(",")
            };
            out!(
                "connected as {} ({}), patients {patients}",
                text("user_id"),
                text("role"),
            );
            return None;
        }
        "scope_changed" => {
            let mut parts = Vec::new();
            for (label, key) in [("added", "added"), ("removed", "removed")] {
                let ids = list(key);
                if !ids.is_empty() {
                    parts.push(format!("{label} {}", ids.join(",")));
                }
            }
            let now = list("patients");
            let now = if now.is_empty() {
                "no patients now: nothing will be shown until you are put on a care team".to_owned()
            } else {
                format!("patients now {}", now.join(","))
            };
            out!("care team changed: {} ({now})", parts.join("; "));
            let added = list("added");
            if added.is_empty() {
                return None;
            }
            out!("  unresolved alerts of {}:", added.join(","));
            return Some(ListAgain::Added(added));
        }
        "reset" => {
            let reason = value
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out!(
                "the server could not replay what was missed ({}); listing the unresolved alerts again:",
                printable(reason)
            );
            return Some(ListAgain::Watched);
        }
        _ => return None,
    };
    print_alert(&alert, prefix, shown, known, colours);
    None
}
