//! What the terminal shows: one line per alert change, printed once, with nothing a
//! producer wrote able to drive the terminal.

use std::collections::HashMap;

use serde_json::Value;

use super::Known;

/// The latest change of each alert printed (`last_seq` by id): a list read again after a
/// care-team addition prints only what is new, and a streamed change older than what a
/// list already showed is not printed over it. Forgotten after a `reset`.
#[derive(Default)]
pub(super) struct Shown(HashMap<String, u64>);

impl Shown {
    /// Whether this change of the alert is newer than any printed.
    pub(super) fn is_new(&self, alert: &Value) -> bool {
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

/// Prints an alert's line (numbered by its latest change) and remembers its id for
/// `--ack`, unless that change (or a later one) was printed already.
pub(super) fn print_alert(
    alert: &Value,
    prefix: &str,
    shown: &mut Shown,
    known: &Known,
    colours: bool,
) {
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

/// Lets `--ack` find an alert by the short id printed for it.
fn remember(alert: &Value, known: &Known) {
    if let (Some(id), Ok(mut map)) = (alert.get("id").and_then(Value::as_str), known.lock()) {
        map.insert(id.to_owned(), id.to_owned());
    }
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

/// The last 8 characters of an alert id (the random part of a UUID v7).
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars
        .get(chars.len().saturating_sub(8)..)
        .unwrap_or_default()
        .iter()
        .collect()
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

    #[test]
    fn short_ids_come_from_the_random_tail() {
        assert_eq!(short_id("01a207f5-0000-7000-8000-00000000abcd"), "0000abcd");
    }
}
