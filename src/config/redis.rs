//! The Redis settings: which server, and which certificate authority to trust for
//! `rediss://`. Parsed and loaded at start (no connection), as Redis will take them: a bad
//! one was otherwise found only after the database had been opened and migrated.

use super::{ConfigError, NO_TLS};
use crate::cli::ServeArgs;

/// The URL (unset: one instance) and the CA certificate's PEM, both checked.
pub fn redis_config(args: &ServeArgs) -> Result<(Option<String>, Option<Vec<u8>>), ConfigError> {
    let ca_file = args
        .redis_ca_file
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let url = match args.redis_url.as_deref().map(str::trim) {
        None | Some("") => {
            if ca_file.is_some() {
                return Err(ConfigError::new(
                    "VIGIL_REDIS_CA_FILE",
                    "is set, but VIGIL_REDIS_URL is not",
                ));
            }
            return Ok((None, None));
        }
        Some(url) if url.starts_with("redis://") => url,
        Some(url) if url.starts_with("rediss://") => {
            if !cfg!(feature = "tls") {
                return Err(ConfigError::new("VIGIL_REDIS_URL", NO_TLS));
            }
            url
        }
        Some(_) => {
            return Err(ConfigError::new(
                "VIGIL_REDIS_URL",
                "expected a redis:// or rediss:// URL",
            ));
        }
    };
    let ca_pem = match ca_file {
        None => None,
        Some(_) if !cfg!(feature = "tls") => {
            return Err(ConfigError::new("VIGIL_REDIS_CA_FILE", NO_TLS));
        }
        Some(_) if !url.starts_with("rediss://") => {
            return Err(ConfigError::new(
                "VIGIL_REDIS_CA_FILE",
                "applies to a rediss:// URL, and VIGIL_REDIS_URL is redis://",
            ));
        }
        Some(file) => Some(std::fs::read(file).map_err(|e| {
            ConfigError::new("VIGIL_REDIS_CA_FILE", format!("cannot read {file}: {e}"))
        })?),
    };
    let client = crate::hub::redis::client(url, None)
        .map_err(|e| ConfigError::new("VIGIL_REDIS_URL", e.to_string()))?;
    // The Redis client's switch for taking any certificate from anyone (`#insecure`):
    // encryption to whoever answers. Asked of the parsed address, as the client will read
    // it (the URL parser drops tabs and line breaks inside the word). A private
    // authority goes in VIGIL_REDIS_CA_FILE instead.
    if matches!(
        client.get_connection_info().addr(),
        redis::ConnectionAddr::TcpTls { insecure: true, .. }
    ) {
        return Err(ConfigError::new(
            "VIGIL_REDIS_URL",
            "#insecure would accept any certificate; give the authority that signed \
             Redis's in VIGIL_REDIS_CA_FILE instead",
        ));
    }
    if let Some(pem) = &ca_pem {
        crate::hub::redis::client(url, Some(pem))
            .map_err(|e| ConfigError::new("VIGIL_REDIS_CA_FILE", e.to_string()))?;
    }
    Ok((Some(url.to_owned()), ca_pem))
}
