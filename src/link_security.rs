//! Says at start how PostgreSQL and Redis are reached, and warns when alerts would cross a
//! network unencrypted: an operator who pointed Vigil at a database on another host
//! without TLS learns it from the first lines of the log, not from an audit.

use std::net::IpAddr;

/// How a link to PostgreSQL or Redis is carried, as far as this instance can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `PostgreSQL` or `Redis`.
    pub service: &'static str,
    /// The server's address (host, IP or socket path) as the log names it.
    pub address: String,
    /// Whether the link is encrypted.
    pub tls: bool,
    /// Whether every address the link may take is on this host (loopback or a Unix
    /// socket), where no network carries what goes over it.
    pub on_this_host: bool,
    /// How the server's certificate is checked when the link is TLS: "over TLS" alone
    /// read the same for a check of nothing (`sslmode=require`) and of everything.
    pub check: CertificateCheck,
}

/// How much of a TLS server's identity is checked, and the setting that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateCheck {
    /// Its certificate against a trusted authority, and its name.
    CertificateAndName(&'static str),
    /// Its certificate, not its name (`sslmode=verify-ca`).
    CertificateOnly(&'static str),
    /// Not its name, and its certificate only when libpq finds a root certificate
    /// (`sslmode=require`, or `prefer` when the server offers TLS).
    NotTheName(String),
}

impl Link {
    /// The start-up log line, warning when the link is plain and leaves this host.
    pub fn report(&self) {
        let Link {
            service,
            address,
            check,
            ..
        } = self;
        if self.tls {
            match check {
                CertificateCheck::CertificateAndName(how) => log::info!(
                    "{service} at {address}, over TLS, its certificate and name checked ({how})"
                ),
                CertificateCheck::CertificateOnly(how) => log::info!(
                    "{service} at {address}, over TLS, its certificate checked but not its name \
                     ({how})"
                ),
                CertificateCheck::NotTheName(how) if self.on_this_host => log::info!(
                    "{service} at {address}, over TLS (on this host), its name not checked ({how})"
                ),
                CertificateCheck::NotTheName(how) => log::warn!(
                    "{service} at {address}, over TLS, but who answers is not checked ({how}: \
                     its name never, its certificate only against a root certificate libpq \
                     finds); use sslmode=verify-full (see docs/deployment.md, \"TLS to \
                     PostgreSQL and Redis\")"
                ),
            }
        } else if self.on_this_host {
            log::info!("{service} at {address}, without TLS (on this host)");
        } else {
            log::warn!(
                "{service} at {address} is reached without TLS: alerts, notes and patient \
                 ids cross the network unencrypted (see docs/deployment.md, \"TLS to \
                 PostgreSQL and Redis\")"
            );
        }
    }
}

/// Loopback addresses, `localhost` and Unix socket paths.
fn on_this_host(address: &str) -> bool {
    let host = address.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The link a Redis client will use, as its URL says: a `rediss://` client takes nothing
/// but TLS.
pub fn redis_link(info: &redis::ConnectionInfo) -> Link {
    let (address, tls) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, _) => (host.clone(), false),
        redis::ConnectionAddr::TcpTls { host, .. } => (host.clone(), true),
        redis::ConnectionAddr::Unix(path) => (path.display().to_string(), false),
        // A kind of address added to the client later: not known to be encrypted.
        other => (other.to_string(), false),
    };
    Link {
        service: "Redis",
        on_this_host: on_this_host(&address),
        address,
        tls,
        // `#insecure` is refused (config::redis): a rediss:// client checks both.
        check: CertificateCheck::CertificateAndName("rediss://"),
    }
}

/// The link to PostgreSQL: its addresses as the URL names them (the ones Vigil dials: a
/// proxy or port-forward on the database's host would make the server's own address look
/// local), and `tls` as the server saw the connection.
pub fn postgres_link(url: &str, tls: bool) -> Link {
    let hosts = postgres_hosts(url);
    let on_this_host = hosts.iter().all(|host| on_this_host(host));
    let address = if hosts.is_empty() {
        "the default Unix socket".to_owned()
    } else {
        hosts.join(",")
    };
    Link {
        service: "PostgreSQL",
        address,
        tls,
        on_this_host,
        check: postgres_check(url),
    }
}

/// What the URL's `sslmode` (else `PGSSLMODE`, else libpq's default `prefer`) has libpq
/// check of the server.
fn postgres_check(url: &str) -> CertificateCheck {
    let setting =
        |key, variable| crate::db::pool::libpq_setting(url, key, variable).map(|(_, value)| value);
    // libpq (16 and later) makes `sslrootcert=system` verify-full unless told otherwise,
    // and refuses a weaker sslmode with it.
    let system_roots = setting("sslrootcert", "PGSSLROOTCERT").as_deref() == Some("system");
    let mode = setting("sslmode", "PGSSLMODE").unwrap_or_else(|| {
        if system_roots {
            "verify-full"
        } else {
            "prefer"
        }
        .to_owned()
    });
    match mode.as_str() {
        "verify-full" => CertificateCheck::CertificateAndName("sslmode=verify-full"),
        "verify-ca" => CertificateCheck::CertificateOnly("sslmode=verify-ca"),
        _ => CertificateCheck::NotTheName(format!("sslmode={mode}")),
    }
}

/// The hosts a `postgres://` URL has libpq dial: its `hostaddr` option (which libpq
/// connects to instead of resolving the host's name), else its `host` option, else the
/// authority's comma-separated list, else `PGHOSTADDR` or `PGHOST`; ports and brackets
/// taken off, `%2F` socket paths decoded. Empty: libpq's default Unix socket.
fn postgres_hosts(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let location = rest.split('?').next().unwrap_or_default();
    let authority = location.split('/').next().unwrap_or_default();
    let listed = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    let option = |key| crate::db::pool::url_option(url, key).map(percent_decoded);
    let list = option("hostaddr")
        .or_else(|| option("host"))
        .or_else(|| (!listed.is_empty()).then(|| percent_decoded(listed)))
        .or_else(|| std::env::var("PGHOSTADDR").ok())
        .or_else(|| std::env::var("PGHOST").ok())
        .unwrap_or_default();
    list.split(',')
        .map(|host| without_port(host.trim()).to_owned())
        .filter(|host| !host.is_empty())
        .collect()
}

/// `host` without a `:port` (an IPv6 address keeps its brackets' contents).
fn without_port(host: &str) -> &str {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.split(']').next().unwrap_or_default();
    }
    if host.starts_with('/') {
        return host;
    }
    host.split(':').next().unwrap_or_default()
}

/// `%XX` escapes decoded (a socket path is written `%2Fvar%2Frun%2Fpostgresql`); an
/// escape that does not decode to UTF-8 leaves the text as it was.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_sockets_count_as_this_host() {
        for address in [
            "127.0.0.1",
            "127.3.0.1",
            "::1",
            "[::1]",
            "localhost",
            "/run/pg",
        ] {
            assert!(on_this_host(address), "{address}");
        }
        for address in ["10.0.0.5", "db.example", "192.0.2.1", "::ffff:10.0.0.5", ""] {
            assert!(!on_this_host(address), "{address}");
        }
    }

    #[test]
    fn a_redis_link_is_tls_exactly_when_its_url_says_rediss() {
        let link = |url: &str| {
            redis::Client::open(url)
                .map(|c| redis_link(c.get_connection_info()))
                .ok()
        };
        assert_eq!(
            link("redis://cache.example:6379/"),
            Some(Link {
                service: "Redis",
                address: "cache.example".to_owned(),
                tls: false,
                on_this_host: false,
                check: CertificateCheck::CertificateAndName("rediss://"),
            })
        );
        assert!(link("redis://127.0.0.1/").is_some_and(|l| l.on_this_host && !l.tls));
    }

    /// "over TLS" read the same whether libpq checked the server's certificate and name
    /// or nothing at all (left from the TLS audit).
    #[test]
    fn a_postgres_link_says_what_its_sslmode_checks() {
        let check = |url: &str| postgres_link(url, true).check;
        assert_eq!(
            check("postgres://v@db.example/v?sslmode=verify-full&sslrootcert=/ca.pem"),
            CertificateCheck::CertificateAndName("sslmode=verify-full")
        );
        assert_eq!(
            check("postgres://v@db.example/v?sslmode=verify-ca"),
            CertificateCheck::CertificateOnly("sslmode=verify-ca")
        );
        assert_eq!(
            check("postgres://v@db.example/v?sslmode=require"),
            CertificateCheck::NotTheName("sslmode=require".to_owned())
        );
        // An outside audit: libpq checks both under `sslrootcert=system` alone.
        assert_eq!(
            check("postgres://v@db.example/v?sslrootcert=system"),
            CertificateCheck::CertificateAndName("sslmode=verify-full")
        );
    }

    #[test]
    fn a_postgres_link_is_on_this_host_only_when_every_host_its_url_names_is() {
        let local = |url: &str| postgres_link(url, false).on_this_host;
        for url in [
            "postgres://v@127.0.0.1:5432/v",
            "postgres://v:pw@localhost/v?sslmode=disable",
            "postgres://v@[::1]:5433/v",
            "postgres://v@%2Fvar%2Frun%2Fpostgresql/v",
            "postgres://v@db.example/v?host=/run/postgresql",
            "postgresql://v@127.0.0.1:5432,localhost:5433/v",
        ] {
            assert!(local(url), "{url}");
        }
        for url in [
            "postgres://v@db.example:5432/v",
            "postgres://v@127.0.0.1/v?host=10.0.0.7",
            "postgres://v@127.0.0.1:5432,10.0.0.7:5432/v",
            "postgres://v@[2001:db8::1]:5432/v",
            // libpq dials hostaddr, whatever name host gives.
            "postgres://v@localhost/v?hostaddr=10.0.0.7",
        ] {
            assert!(!local(url), "{url}");
        }
        assert_eq!(
            postgres_link("postgres://v:pw@db.example:5432,[::1]:6432/v", true).address,
            "db.example,::1"
        );
        assert_eq!(
            postgres_link("postgres://v@%2Frun%2Fpg/v", false).address,
            "/run/pg"
        );
    }
}
