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
}

impl Link {
    /// Whether the server is on this host (loopback or a Unix socket), where no network
    /// carries what goes over the link.
    pub fn on_this_host(&self) -> bool {
        on_this_host(&self.address)
    }

    /// The start-up log line, warning when the link is plain and leaves this host.
    pub fn report(&self) {
        let Link {
            service, address, ..
        } = self;
        if self.tls {
            log::info!("{service} at {address}, over TLS");
        } else if self.on_this_host() {
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

/// The link a Redis client will use.
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
        address,
        tls,
    }
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
                tls: false
            })
        );
        assert!(link("redis://127.0.0.1/").is_some_and(|l| l.on_this_host() && !l.tls));
    }
}
