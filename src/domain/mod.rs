//! Validated domain types. Request data is parsed into these at the edge; after that,
//! services and queries only see values that already obey DESIGN.md's rules.

pub mod alert;
mod patient_id;
mod role;
mod severity;
mod status;

pub use alert::{Acknowledgment, Alert, NewAlert};
pub use patient_id::PatientId;
pub use role::Role;
pub use severity::Severity;
pub use status::{AckStatus, AlertStatus};

/// Why "." and ".." are refused as patient and user ids (DESIGN.md's character set allows
/// them): the care-team API names both in URL paths, where every WHATWG URL parser (the
/// browsers' `fetch`, Node's) rewrites such a segment, `%2E%2E` included, before sending.
/// A patient named ".." could never be given a care team, and a member named ".." never
/// taken off one.
pub const DOT_SEGMENT: &str =
    "may not be \".\" or \"..\": a URL path cannot name it (clients rewrite such segments)";

/// Whether `raw` is a URL path's dot-segment (see [`DOT_SEGMENT`]).
pub fn is_dot_segment(raw: &str) -> bool {
    raw == "." || raw == ".."
}

/// A user id (a token's `sub`, a care-team member): 1-128 characters, none of them a
/// control character. The same rule at both doors: an id that could never be put on a
/// care team must not act either, and a newline or ESC in one would split log lines and
/// reach terminals through the audit trail. Nor U+FFFD, what invalid UTF-8 in a URL is
/// decoded to: `…/care-team/jos%e9` and `…/jos%e8` (two people) became one member.
/// Nor a character that prints as nothing or reorders the text, nor white space at
/// either end: `nurse1` with a zero-width space, or ` nurse1`, was put on a care team,
/// listed beside the real `nurse1` looking the same, and matched no one's token.
pub fn is_user_id(raw: &str) -> bool {
    !raw.is_empty()
        && !is_dot_segment(raw)
        && raw.chars().count() <= 128
        && raw.trim() == raw
        && !raw.chars().any(|c| {
            c.is_control() || c == char::REPLACEMENT_CHARACTER || is_invisible_or_reordering(c)
        })
}

/// Characters that print as nothing (zero-width spaces and joiners, the soft hyphen, the
/// byte-order mark) or reorder the text around them (bidirectional controls): text
/// holding one looks like other text.
pub fn is_invisible_or_reordering(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Milliseconds since the Unix epoch, as stored; rendered as RFC 3339 UTC.
pub fn format_millis(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The current time in epoch milliseconds.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
