//! Values from outside (a token's `sub`) in `key=value` log lines. A user id may hold a
//! space, an `=` or a bidirectional control (`sub` = `svc user_id=root` logged as
//! `user_id=svc user_id=root` reads as two fields): such a value is written quoted and
//! escaped, like logfmt does; plain ones are written as they are, so `grep user_id=alice`
//! keeps working.

use std::borrow::Cow;

/// The value as it may stand after `key=` in a log line.
pub fn quoted_if_needed(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty() && value.chars().all(|c| {
        !c.is_whitespace()
            && !c.is_control()
            && !matches!(c, '=' | '"' | '\\' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    });
    if plain {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("{value:?}"))
    }
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
    }
}
