//! `--ack`: lines typed on stdin, each naming an alert by its short id, sent as
//! acknowledgments (with an `Idempotency-Key` kept for a retry).

use std::collections::HashMap;

use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use super::lines::printable;
use super::{ANSWER_WITHIN, Known, no_answer, with_cause};

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

/// Acknowledges what is typed, once `first_list` says the alerts shown are known: a line
/// piped in at start (or typed while the list loads) was answered "no alert shown".
pub(super) async fn ack_loop(
    client: reqwest::Client,
    base: String,
    token: String,
    known: Known,
    first_list: tokio::sync::oneshot::Receiver<()>,
) {
    if first_list.await.is_err() {
        return;
    }
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
            .timeout(ANSWER_WITHIN)
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
            Err(e) => {
                let why = if super::unanswered(&e) {
                    no_answer()
                } else {
                    with_cause(&e)
                };
                out!(
                    "ack failed {short}: {why} (it may have been recorded; typing the same line again is safe: it is recorded once)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
