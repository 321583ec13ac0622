//! Values from outside (a token's `sub`) in `key=value` log lines. A user id may hold a
//! space, an `=` or a bidirectional control (`sub` = `svc user_id=root` logged as
//! `user_id=svc user_id=root` reads as two fields) or an invisible character (a zero-width
//! space makes another user look like `alice`): such a value is written quoted and
//! escaped, like logfmt does; plain ones are written as they are, so `grep user_id=alice`
//! keeps working.

use std::borrow::Cow;

/// The value as it may stand after `key=` in a log line.
pub fn quoted_if_needed(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty() && value.chars().all(|c| {
        !c.is_whitespace()
            && !c.is_control()
            && !matches!(c, '=' | '"' | '\\' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
            && !is_invisible(c)
    });
    if plain {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("{value:?}"))
    }
}

/// Characters that print as nothing: `alice` with a zero-width space read as `alice` in
/// the log while being another user.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::quoted_if_needed;

    #[test]
    fn only_values_that_could_forge_a_field_are_quoted() {
        assert_eq!(quoted_if_needed("alice"), "alice");
        assert_eq!(quoted_if_needed("dr.who@ward-7"), "dr.who@ward-7");
        assert_eq!(quoted_if_needed("svc user_id=root"), "\"svc user_id=root\"");
        assert_eq!(quoted_if_needed("a\u{202e}b"), "\"a\\u{202e}b\"");
        assert_eq!(quoted_if_needed(""), "\"\"");
        // Another user than `alice`, and it must look like one.
        assert_eq!(quoted_if_needed("ali\u{200b}ce"), "\"ali\\u{200b}ce\"");
        assert_eq!(quoted_if_needed("\u{feff}alice"), "\"\\u{feff}alice\"");
        assert_eq!(quoted_if_needed("josé"), "josé");
    }
}
