//! The alerts still waiting for someone, listed when watching starts and read again
//! when the stream cannot bring them (after a `reset`, or a patient added).

use serde_json::Value;

use super::lines::{Shown, print_alert};
use super::{ANSWER_WITHIN, Failure, Known, answered, no_answer, unanswered};

/// The alerts still waiting for someone when watching starts, and the event-log head
/// they were read at.
pub(super) struct Backlog {
    /// Open, escalated and acknowledged alerts whose latest change is at or before `head`,
    /// oldest first.
    pub(super) alerts: Vec<Value>,
    /// The stream resumes after it: an alert changed since is replayed rather than
    /// listed, so each shows once and none falls between the list and the stream.
    pub(super) head: u64,
}

/// The statuses that still need someone (`resolved` is final).
const UNRESOLVED: [&str; 3] = ["open", "escalated", "acknowledged"];

/// The list endpoint's largest page.
const PAGE: usize = 500;

/// Reads every unresolved alert in scope, page by page (a clinician starting `watch`
/// needs the critical alert raised an hour ago as much as the next one).
pub(super) async fn unresolved_backlog(
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
                .bearer_auth(token)
                .timeout(ANSWER_WITHIN);
            let page: Value = answered(request.send().await)
                .await?
                .json()
                .await
                .map_err(|e| {
                    Failure::Retry(if unanswered(&e) {
                        no_answer()
                    } else {
                        format!("unreadable alert list ({e})")
                    })
                })?;
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

pub(super) fn print_backlog(backlog: &Backlog, shown: &mut Shown, known: &Known, colours: bool) {
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
pub(super) fn print_reloaded(backlog: &Backlog, shown: &mut Shown, known: &Known, colours: bool) {
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
