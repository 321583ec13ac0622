//! `PatientId`: 1–64 characters of `[A-Za-z0-9_.-]` (DESIGN.md, "Domain").

use std::fmt;

/// A patient identifier that is known to be well-formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PatientId(String);

impl PatientId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 64;

    /// Validates a raw id; the message says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err("may only contain A-Z, a-z, 0-9, '_', '.' and '-'".to_owned());
        }
        if super::is_dot_segment(raw) {
            return Err(super::DOT_SEGMENT.to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PatientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::PatientId;

    #[test]
    fn well_formed_ids_are_accepted() {
        for ok in ["1", "123", "ward-3.bed_7", &"a".repeat(64)] {
            assert!(PatientId::parse(ok).is_ok(), "{ok:?} should be accepted");
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let cases = [
            ("", "empty"),
            (&"a".repeat(65) as &str, "65 characters"),
            ("12 3", "space"),
            ("12/3", "slash"),
            ("*", "wildcard is not an id"),
            ("é", "non-ASCII"),
            ("a\nb", "newline"),
        ];
        for (raw, why) in cases {
            assert!(PatientId::parse(raw).is_err(), "{why} must be rejected");
        }
    }
}
