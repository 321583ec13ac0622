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
use tokio::io::AsyncBufReadExt;

use crate::cli::WatchArgs;

/// `println!` through [`emit`].
macro_rules! out {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

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

/// Streams until interrupted or refused.
pub async fn run(args: WatchArgs) -> Result<(), WatchError> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    // A URL that cannot work never will: say so now instead of retrying forever.
    match reqwest::Url::parse(&base) {
        // Paths are appended to it: a query string or fragment would swallow them.
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.has_host()
                && url.query().is_none()
                && url.fragment().is_none() => {}
        Ok(_) | Err(_) => {
            return Err(WatchError::Refused(format!(
                "--url: expected the server's base URL, e.g. http://127.0.0.1:8080 (got {:?})",
                args.url
            )));
        }
    }
    let known: Known = Arc::default();
    // Colours only for a person at a terminal: not into a file or a pipe, and not when
    // NO_COLOR (no-color.org) is set.
    let colours = !args.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
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
            }
            let mut request = client
                .get(format!("{base}/api/v1/alerts/stream"))
                .query(&patients)
                .bearer_auth(&args.token);
            if let Some(id) = &last_id {
                request = request.header("Last-Event-ID", id);
            }
            let resp = answered(request.send().await).await?;
            delay = Duration::from_secs(1);
            let mut events = resp.bytes_stream().eventsource();
            // Until `connected` says otherwise, the server's default heartbeat.
            let mut silence = silence_limit(DEFAULT_HEARTBEAT_SECS);
            loop {
                let event = match tokio::time::timeout(silence, events.next()).await {
                    Ok(Some(Ok(event))) => event,
                    Ok(Some(Err(e))) => return Err(Failure::Retry(format!("stream broken ({e})"))),
                    Ok(None) => return Err(Failure::Retry("stream ended".to_owned())),
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

/// The SSE heartbeat period the server uses unless configured otherwise.
const DEFAULT_HEARTBEAT_SECS: u64 = 30;

/// How long a stream may stay silent before it counts as dropped: two heartbeats missed,
/// and a few seconds for a loaded server.
fn silence_limit(heartbeat_secs: u64) -> Duration {
    Duration::from_secs(heartbeat_secs.saturating_mul(2).saturating_add(5))
}

/// The latest change of each alert printed (`last_seq` by id): a list read again after a
/// care-team addition prints only what is new, and a streamed change older than what a
/// list already showed is not printed over it. Forgotten after a `reset`.
#[derive(Default)]
struct Shown(HashMap<String, u64>);

impl Shown {
    /// Whether this change of the alert is newer than any printed.
    fn is_new(&self, alert: &Value) -> bool {
        let printed = alert
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| self.0.get(id));
        printed.is_none_or(|&printed| printed < Self::change(alert))
    }

    /// Records the alert's change; false when it (or a later one) was printed already.
    fn first_time(&mut self, alert: &Value) -> bool {
        let new = self.is_new(alert);
        if let (true, Some(id)) = (new, alert.get("id").and_then(Value::as_str)) {
            self.0.insert(id.to_owned(), Self::change(alert));
        }
        new
    }

    fn change(alert: &Value) -> u64 {
        alert.get("last_seq").and_then(Value::as_u64).unwrap_or(0)
    }
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
    let resp = sent.map_err(|e| Failure::Retry(format!("cannot connect ({})", with_cause(&e))))?;
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

/// The alerts still waiting for someone when watching starts, and the event-log head
/// they were read at.
struct Backlog {
    /// Open, escalated and acknowledged alerts whose latest change is at or before `head`,
    /// oldest first.
    alerts: Vec<Value>,
    /// The stream resumes after it: an alert changed since is replayed rather than
    /// listed, so each shows once and none falls between the list and the stream.
    head: u64,
}

/// The statuses that still need someone (`resolved` is final).
const UNRESOLVED: [&str; 3] = ["open", "escalated", "acknowledged"];
/// The list endpoint's largest page.
const PAGE: usize = 500;

/// Reads every unresolved alert in scope, page by page (a clinician starting `watch`
/// needs the critical alert raised an hour ago as much as the next one).
async fn unresolved_backlog(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    patients: &[(&str, &str)],
) -> Result<Backlog, Failure> {
    let latest_change = |a: &Value| a.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
    let mut head = None;
    let mut alerts = Vec::new();
    for status in UNRESOLVED {
        let mut after = 0;
        loop {
            let request = client
                .get(format!("{base}/api/v1/alerts"))
                .query(patients)
                .query(&[("status", status), ("limit", &PAGE.to_string())])
                .query(&[("after", after)])
                .bearer_auth(token);
            let page: Value = answered(request.send().await)
                .await?
                .json()
                .await
                .map_err(|e| Failure::Retry(format!("unreadable alert list ({e})")))?;
            let page_head = page.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
            let head = *head.get_or_insert(page_head);
            let rows = page
                .get("alerts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let furthest = rows.iter().map(latest_change).max().unwrap_or(after);
            let full = rows.len() >= PAGE;
            alerts.extend(rows.into_iter().filter(|a| latest_change(a) <= head));
            // Pages run oldest change first: past the head, the stream has the rest.
            if !full || furthest > head || furthest <= after {
                break;
            }
            after = furthest;
        }
    }
    alerts.sort_by_key(|a| a.get("seq").and_then(Value::as_u64).unwrap_or(0));
    Ok(Backlog {
        alerts,
        head: head.unwrap_or(0),
    })
}

fn print_backlog(backlog: &Backlog, shown: &mut Shown, known: &Known, colours: bool) {
    match backlog.alerts.len() {
        0 => out!("no unresolved alerts"),
        1 => out!("1 unresolved alert:"),
        n => out!("{n} unresolved alerts, oldest first:"),
    }
    for alert in &backlog.alerts {
        print_alert(alert, "", shown, known, colours);
    }
}

/// A list read again while streaming: only the alerts (or changes) not printed yet.
fn print_reloaded(backlog: &Backlog, shown: &mut Shown, known: &Known, colours: bool) {
    let new: Vec<&Value> = backlog.alerts.iter().filter(|a| shown.is_new(a)).collect();
    match (backlog.alerts.len(), new.len()) {
        (0, _) => out!("  none"),
        (_, 0) => out!("  all shown above already"),
        (_, 1) => out!("  1 not shown before:"),
        (_, n) => out!("  {n} not shown before, oldest first:"),
    }
    for alert in new {
        print_alert(alert, "", shown, known, colours);
    }
}

/// Prints an alert's line (numbered by its latest change) and remembers its id for
/// `--ack`, unless that change (or a later one) was printed already.
fn print_alert(alert: &Value, prefix: &str, shown: &mut Shown, known: &Known, colours: bool) {
    if !shown.first_time(alert) {
        return;
    }
    remember(alert, known);
    let seq = alert
        .get("last_seq")
        .map(ToString::to_string)
        .unwrap_or_default();
    out!("{prefix}{}", format_alert(alert, &seq, colours));
}

/// Writes one line to stdout: a closed stdout (`vigil watch | head -1`) ends watching
/// quietly, any other write failure (a full disk) with the cause.
fn emit(line: std::fmt::Arguments<'_>) {
    crate::stdout::line_or_exit(&line.to_string());
}

/// reqwest's error with its innermost cause: "error sending request for url (…)" alone
/// does not say whether the connection was refused, timed out or the name did not resolve.
fn with_cause(error: &reqwest::Error) -> String {
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

/// Lets `--ack` find an alert by the short id printed for it.
fn remember(alert: &Value, known: &Known) {
    if let (Some(id), Ok(mut map)) = (alert.get("id").and_then(Value::as_str), known.lock()) {
        map.insert(id.to_owned(), id.to_owned());
    }
}

#[allow(clippy::print_stderr)]
fn status_line(text: &str) {
    eprintln!("vigil watch: {text}");
}

fn colour(severity: &str) -> &'static str {
    match severity {
        "critical" => "\x1b[1;41;97m",
        "high" => "\x1b[1;31m",
        "medium" => "\x1b[33m",
        "low" => "\x1b[36m",
        _ => "\x1b[2m",
    }
}

/// One line typed under `--ack`: `<id> [status] [note …]`.
#[derive(Debug, PartialEq, Eq)]
pub struct AckLine<'a> {
    /// A short id (6+ characters of the tail) or a full UUID.
    pub short: &'a str,
    /// `acknowledged` unless the second word is a status.
    pub status: &'a str,
    /// The rest of the line, as typed. A note typed without a status ("on my way") is
    /// still a note: it used to be taken for a status and refused, and after a status it
    /// was dropped while `ack ok` was printed.
    pub note: Option<&'a str>,
}

/// Reads a typed line; `None` for a blank one.
pub fn parse_ack_line(line: &str) -> Option<AckLine<'_>> {
    let line = line.trim();
    let (short, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    if short.is_empty() {
        return None;
    }
    let rest = rest.trim_start();
    let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (status, note) = match first {
        "acknowledged" | "escalated" | "resolved" => (first, after.trim()),
        _ => ("acknowledged", rest),
    };
    Some(AckLine {
        short,
        status,
        note: (!note.is_empty()).then_some(note),
    })
}

/// The last 8 characters of an alert id (the random part of a UUID v7).
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars
        .get(chars.len().saturating_sub(8)..)
        .unwrap_or_default()
        .iter()
        .collect()
}

/// Finds the one known alert a typed id names (a full id, or a unique tail of at least
/// 6 characters); an ambiguous or unknown short id names nothing.
pub fn resolve_typed_id(typed: &str, known: &HashMap<String, String>) -> Result<String, String> {
    // Alert ids are lower-case UUIDs; one typed in capitals names the same alert.
    let typed = typed.to_ascii_lowercase();
    let typed = typed.as_str();
    if typed.len() == 36 {
        return Ok(typed.to_owned());
    }
    if typed.len() < 6 {
        return Err(format!(
            "`{typed}` is too short; type at least 6 characters of the id shown (8 are shown), or the full id"
        ));
    }
    let matches: Vec<&String> = known
        .values()
        .filter(|full| full.ends_with(typed))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no alert shown with id `{typed}`")),
        _ => Err(format!(
            "`{typed}` matches several alerts; type more characters"
        )),
    }
}

/// Text from the server as the terminal may show it: control characters (ESC, CR, LF,
/// BEL, C1 …) and bidirectional controls become `�`. A producer's title is not trusted
/// with the clinician's terminal: `\x1b[2J` would clear it, a newline forge a line, and
/// U+202E show "HR 148" as "HR 841" (the pages do the same).
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Formats one alert line: `seq short-id SEVERITY patient title [status]`.
pub fn format_alert(alert: &Value, seq: &str, colours: bool) -> String {
    let text = |k: &str| printable(alert.get(k).and_then(Value::as_str).unwrap_or_default());
    let short = short_id(&text("id"));
    let severity = text("severity");
    let label = format!("{:<8}", severity.to_uppercase());
    let label = if colours {
        format!("{}{label}\x1b[0m", colour(&severity))
    } else {
        label
    };
    format!(
        "#{seq} {short} {label} patient={} {} [{}]",
        text("patient_id"),
        text("title"),
        text("status")
    )
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

async fn ack_loop(client: reqwest::Client, base: String, token: String, known: Known) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    // Alert id → (status and note, Idempotency-Key) of an acknowledgment that got no
    // answer: the same line typed again reuses the key, so the server records it once.
    let mut unanswered: HashMap<String, (String, String)> = HashMap::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(AckLine {
            short,
            status,
            note,
        }) = parse_ack_line(&line)
        else {
            continue;
        };
        let resolved = match known.lock() {
            Ok(map) => resolve_typed_id(short, &map),
            Err(_) => Err("internal error".to_owned()),
        };
        let full = match resolved {
            Ok(full) => full,
            Err(why) => {
                out!("ack failed {short}: {why}");
                continue;
            }
        };
        let url = format!("{base}/api/v1/alerts/{full}/acknowledge");
        let mut body = serde_json::json!({ "status": status });
        if let Some(note) = note {
            body["note"] = Value::String(note.to_owned());
        }
        let attempt = format!("{status}\n{}", note.unwrap_or_default());
        let key = match unanswered.remove(&full) {
            Some((earlier, key)) if earlier == attempt => key,
            _ => uuid::Uuid::now_v7().to_string(),
        };
        let answer = client
            .post(&url)
            .bearer_auth(&token)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        if answer.is_err() {
            unanswered.insert(full.clone(), (attempt, key));
        }
        match answer {
            Ok(resp) if resp.status().is_success() => out!("ack ok {short} {status}"),
            Ok(resp) => {
                let code = resp.status();
                let v: Value = resp.json().await.unwrap_or_default();
                out!(
                    "ack failed {short}: {code} {}",
                    printable(v.get("detail").and_then(Value::as_str).unwrap_or_default())
                );
            }
            // The request may have reached the server before the connection failed.
            Err(e) => out!(
                "ack failed {short}: {e} (it may have been recorded; typing the same line again is safe: it is recorded once)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer's title reached the clinician's terminal raw: `\x1b[2J` cleared it and
    /// a newline forged a line of its own.
    #[test]
    fn alert_text_cannot_drive_the_terminal_or_forge_lines() {
        let alert = serde_json::json!({
            "id": "01a207f5-0000-7000-8000-00000000abcd", "severity": "critical",
            "patient_id": "P8", "status": "open",
            "title": "ok\u{1b}[2J\u{1b}[31mFAKE\nCRITICAL P9 resolved\r\u{7}\u{9b}HR \u{202e}841",
        });
        let line = format_alert(&alert, "142", false);
        assert_eq!(
            line,
            "#142 0000abcd CRITICAL patient=P8 ok\u{fffd}[2J\u{fffd}[31mFAKE\u{fffd}CRITICAL P9 resolved\u{fffd}\u{fffd}\u{fffd}HR \u{fffd}841 [open]"
        );
    }

    /// A note typed after the id (with or without a status) used to be dropped or taken
    /// for a status.
    #[test]
    fn a_typed_line_is_id_then_status_then_note() {
        let parse = |l| parse_ack_line(l).map(|a| (a.short, a.status, a.note));
        assert_eq!(parse("  "), None);
        assert_eq!(parse("4f3a9c1d"), Some(("4f3a9c1d", "acknowledged", None)));
        assert_eq!(
            parse("4f3a9c1d resolved"),
            Some(("4f3a9c1d", "resolved", None))
        );
        assert_eq!(
            parse("4f3a9c1d  escalated   need a  doctor "),
            Some(("4f3a9c1d", "escalated", Some("need a  doctor")))
        );
        assert_eq!(
            parse("4f3a9c1d on my way"),
            Some(("4f3a9c1d", "acknowledged", Some("on my way")))
        );
    }

    #[test]
    fn short_ids_come_from_the_random_tail() {
        assert_eq!(short_id("01a207f5-0000-7000-8000-00000000abcd"), "0000abcd");
    }

    #[test]
    fn a_typed_id_must_name_exactly_one_alert() {
        let known: HashMap<String, String> = [
            "01a207f5-1111-7000-8000-000000001234",
            "01a207f5-2222-7000-8000-000000005678",
        ]
        .iter()
        .map(|id| ((*id).to_owned(), (*id).to_owned()))
        .collect();
        assert_eq!(
            resolve_typed_id("00001234", &known).ok().as_deref(),
            Some("01a207f5-1111-7000-8000-000000001234")
        );
        assert!(
            resolve_typed_id("01a207f5", &known).is_err(),
            "a shared prefix names nothing"
        );
        assert!(
            resolve_typed_id("000000", &known).is_err(),
            "an ambiguous tail names nothing"
        );
        assert!(resolve_typed_id("12", &known).is_err(), "too short");
        assert_eq!(
            resolve_typed_id("01A207F5-3333-7000-8000-00000000ABCD", &known)
                .ok()
                .as_deref(),
            Some("01a207f5-3333-7000-8000-00000000abcd"),
            "a full id, even one not shown, in any case"
        );
        assert_eq!(
            resolve_typed_id(
                "0000ABCD",
                &[(
                    "x".to_owned(),
                    "01a207f5-3333-7000-8000-00000000abcd".to_owned()
                )]
                .into_iter()
                .collect()
            )
            .ok()
            .as_deref(),
            Some("01a207f5-3333-7000-8000-00000000abcd")
        );
    }
}
