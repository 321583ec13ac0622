//! Checking a `RUST_LOG` / `--log` filter before env_logger takes it. env_logger ignores
//! what it cannot parse, and takes any bare word for a module name: `infoo`, `warning`
//! or an empty value turned every line off (the access and audit log included), a stray
//! `=` turned on trace output from every crate. Like every other setting, a filter that
//! cannot mean what was meant stops the binary with a message naming it.

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Why a filter is refused; `None` when it may be used.
pub fn problem(spec: &str) -> Option<String> {
    // `,` or `, ,` hold no directive at all: env_logger then logs errors only, as for an
    // empty filter.
    let directives = spec.split_once('/').map_or(spec, |(d, _)| d);
    if directives.split(',').all(|d| d.trim().is_empty()) {
        return Some(
            "empty, or names no level or module; leave it out for the default (info), or name a level \
             such as warn"
                .to_owned(),
        );
    }
    if let Err(e) = env_filter::Builder::new().try_parse(spec) {
        return Some(e.to_string());
    }
    // What follows a `/` is a regular expression on the message; the directives precede it.
    let each_directive = || {
        directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
    };
    if let Some(problem) = each_directive().find_map(directive_problem) {
        return Some(problem);
    }
    // A filter whose directives all name other modules (`verbose`, `actix_web`,
    // `hyper=off`) sets no level for the rest, and Vigil's own lines (start-up, access,
    // warnings, errors) all went unsaid. Unless it says `off`, or names one of Vigil's
    // modules (`vigil::hub=debug` alone), it is taken for a mistake.
    let name = |d: &str| {
        d.split_once('=')
            .map_or(d, |(name, _)| name)
            .trim()
            .to_owned()
    };
    let crate_of = |d: &str| name(d).split("::").next().unwrap_or_default().to_owned();
    let own = env!("CARGO_CRATE_NAME");
    if each_directive().any(|d| crate_of(d) == own || d.eq_ignore_ascii_case("off")) {
        return None;
    }
    let vigil_error = log::Metadata::builder()
        .target(own)
        .level(log::Level::Error)
        .build();
    if env_filter::Builder::new()
        .parse(spec)
        .build()
        .enabled(&vigil_error)
    {
        return None;
    }
    if let Some(d) = each_directive().find(|d| crate_of(d).eq_ignore_ascii_case(own)) {
        return Some(format!(
            "`{}`: module names are case-sensitive, and Vigil's is `{own}`",
            name(d)
        ));
    }
    Some(
        match each_directive().find(|d| !d.contains('=') && !is_level(d)) {
            Some(module) => format!(
                "`{module}` is read as a module name, and with no level for the rest it turns \
                 off every line of Vigil's own; name a level (off, error, warn, info, debug, \
                 trace), or one beside it: `info,{module}=debug`"
            ),
            None => format!(
                "`{spec}` sets no level for the rest, which turns off every line of Vigil's own \
                 (start-up, access, warnings, errors); add one: `info,{spec}`"
            ),
        },
    )
}

fn directive_problem(directive: &str) -> Option<String> {
    let name = match directive.split_once('=') {
        Some((name, _level)) => {
            if name.trim().is_empty() {
                return Some(format!("`{directive}` names no module before `=`"));
            }
            name.trim()
        }
        None if is_level(directive) => return None,
        None => directive,
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Some(format!(
            "`{name}` is not a module path (letters, digits, _ and ::)"
        ));
    }
    if !directive.contains('=')
        && let Some(level) = near_level(directive)
    {
        return Some(format!(
            "`{directive}` would be read as a module name and turn the log off; did you mean `{level}`?"
        ));
    }
    None
}

fn is_level(word: &str) -> bool {
    LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word))
}

/// The level a bare word was probably meant to be (`infoo`, `warning`, `Debgu`).
fn near_level(word: &str) -> Option<&'static str> {
    let word = word.to_ascii_lowercase();
    if word == "warning" {
        return Some("warn");
    }
    // The nearest: `inf` is one edit from `info` but two from `off`.
    LEVELS
        .into_iter()
        .map(|level| (strsim::levenshtein(&word, level), level))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, level)| level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_that_mean_something_pass() {
        for spec in [
            "info",
            "WARN",
            "warn,vigil=debug",
            "vigil",
            "vigil::hub::manager=trace,actix_web=warn",
            "info,",
            "info/alert raised",
            "off",
            "vigil::hub",
            "info,actix_web",
            "actix_web,vigil=info",
            "verbose,vigil::hub=debug",
            "vigil=off",
            "off,actix_web=debug",
            "info,hyper=off",
            "warn,vigil::hub=trace",
            "h2=off,info",
        ] {
            assert_eq!(problem(spec), None, "{spec}");
        }
    }

    #[test]
    fn filters_that_would_silence_or_flood_the_log_are_refused() {
        for (spec, says) in [
            ("", "empty"),
            ("  ", "empty"),
            (",", "names no level or module"),
            (", ,", "names no level or module"),
            ("infoo", "did you mean `info`"),
            ("warning", "did you mean `warn`"),
            ("Debgu", "did you mean `debug`"),
            ("vigil,eror", "did you mean `error`"),
            ("inf", "did you mean `info`"),
            ("verbose", "turns off every line of Vigil's own"),
            ("actix_web", "`info,actix_web=debug`"),
            ("hyper=off", "`info,hyper=off`"),
            (
                "actix_web=debug,h2=off",
                "turns off every line of Vigil's own",
            ),
            ("Vigil=debug", "module names are case-sensitive"),
            ("[[[", "not a module path"),
            ("=", "names no module"),
            ("info,,=", "names no module"),
            ("vigil=[[[", "error parsing logger filter"),
            ("vigil=infoo", "error parsing logger filter"),
        ] {
            let refused = problem(spec);
            assert!(
                refused.as_deref().is_some_and(|p| p.contains(says)),
                "{spec:?}: {refused:?}"
            );
        }
    }
}
