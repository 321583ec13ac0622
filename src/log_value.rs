//! Values from outside (a token's `sub`) in `key=value` log lines. A user id may hold a
//! space, an `=` or a bidirectional control (`sub` = `svc user_id=root` logged as
//! `user_id=svc user_id=root` reads as two fields) or an invisible character (a zero-width
//! space makes another user look like `alice`): such a value is written quoted and
//! escaped, like logfmt does; plain ones are written as they are, so `grep user_id=alice`
//! keeps working.

use std::borrow::Cow;

/// The value as it may stand after `key=` in a log line.
pub fn quoted_if_needed(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && value.chars().all(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(c, '=' | '"' | '\\')
                && !crate::domain::is_invisible_or_reordering(c)
        });
    if plain {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("{value:?}"))
    }
}

/// The request path as the access log may show it: a JWT put in the path instead of the
/// query (`/ws;token=eyJ…`, a client's mistake) is answered 404, and its line must not
/// carry the token. Any run that looks like a JWT (three base64url parts, the first
/// starting `eyJ`) is replaced, and so is whatever follows a `token=`.
pub fn path_without_credentials(path: &str) -> Cow<'_, str> {
    const HIDDEN: &str = "<redacted>";
    let is_part = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
    let mut out = String::new();
    let mut copied = 0;
    let mut at = 0;
    while at < path.len() {
        let rest = &path[at..];
        let value_at = if rest.starts_with("token=") {
            Some(at + "token=".len())
        } else if rest.starts_with("eyJ") {
            let run = rest.find(|c: char| !is_part(c)).unwrap_or(rest.len());
            (rest[..run].matches('.').count() >= 2).then_some(at)
        } else {
            None
        };
        let Some(start) = value_at else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let end = path[start..]
            .find(['/', ';', '&', '?'])
            .map_or(path.len(), |n| start + n);
        out.push_str(&path[copied..start]);
        out.push_str(HIDDEN);
        copied = end;
        at = end.max(at + 1);
    }
    if copied == 0 {
        Cow::Borrowed(path)
    } else {
        out.push_str(&path[copied..]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{path_without_credentials, quoted_if_needed};

    #[test]
    fn a_token_in_the_path_is_not_logged() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        assert_eq!(path_without_credentials("/ws"), "/ws");
        assert_eq!(
            path_without_credentials("/api/v1/alerts/0193-x/acknowledge"),
            "/api/v1/alerts/0193-x/acknowledge"
        );
        assert_eq!(
            path_without_credentials(&format!("/ws;token={jwt}")),
            "/ws;token=<redacted>"
        );
        assert_eq!(
            path_without_credentials(&format!("/ws/{jwt}/x")),
            "/ws/<redacted>/x"
        );
        assert_eq!(
            path_without_credentials("/a;token=abc;b=1"),
            "/a;token=<redacted>;b=1"
        );
        assert_eq!(path_without_credentials("/token="), "/token=<redacted>");
        // Not a JWT: one dot only, or no `eyJ` start.
        assert_eq!(path_without_credentials("/eyJa.b"), "/eyJa.b");
        assert_eq!(path_without_credentials("/é/eyJ"), "/é/eyJ");
    }

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
