//! Token verification settings: the key, the one algorithm accepted, and the `iss` and
//! `aud` a token must carry when configured.

use jsonwebtoken::Algorithm;

use super::{ConfigError, Secret};
use crate::cli::JwtArgs;

/// Verification key material; the algorithm is pinned alongside it.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// HS256 shared secret.
    Secret(Secret),
    /// PEM public key (RS256 or ES256).
    PublicPem(Vec<u8>),
}

/// Everything needed to verify a token.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The key.
    pub key: JwtKey,
    /// The only algorithm accepted (prevents algorithm confusion).
    pub algorithm: Algorithm,
    /// Required `iss`, when configured.
    pub issuer: Option<String>,
    /// Required `aud`, when configured.
    pub audience: Option<String>,
}

/// A setting without a default: `None` when absent, empty or only spaces (README: an
/// empty variable means "not set"), else its value without surrounding spaces. A blank
/// `VIGIL_JWT_ISSUER` had become a required `iss` of " " that no token carries.
pub fn set_value(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Validates the JWT flags. Exactly one key source; the algorithm must fit the key.
pub fn jwt_config(args: &JwtArgs, dev_secret: Option<&str>) -> Result<JwtConfig, ConfigError> {
    // Blank is "not set" (README); a real secret is used as given, spaces and all.
    let secret = args.jwt_secret.as_deref().filter(|s| !s.trim().is_empty());
    let key_file = args
        .jwt_public_key_file
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let alg = match args
        .jwt_alg
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => Some(match raw.to_ascii_uppercase().as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => {
                return Err(ConfigError::new(
                    "VIGIL_JWT_ALG",
                    "expected HS256, RS256 or ES256",
                ));
            }
        }),
    };
    let (key, algorithm) = match (secret, key_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "VIGIL_JWT_SECRET",
                "set either VIGIL_JWT_SECRET (--jwt-secret) or VIGIL_JWT_PUBLIC_KEY_FILE \
                 (--jwt-public-key-file), not both; unset the environment variable of the one \
                 you do not use",
            ));
        }
        (Some(secret), None) => {
            if secret.len() < 32 {
                return Err(ConfigError::new(
                    "VIGIL_JWT_SECRET",
                    "expected at least 32 bytes (32 ASCII characters): HS256 needs a key as \
                     long as its 256-bit hash (RFC 7518 §3.2)",
                ));
            }
            match alg {
                None | Some(Algorithm::HS256) => {}
                Some(_) => {
                    return Err(ConfigError::new(
                        "VIGIL_JWT_ALG",
                        "a shared secret only works with HS256",
                    ));
                }
            }
            (JwtKey::Secret(Secret::new(secret)), Algorithm::HS256)
        }
        (None, Some(path)) => {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::new(
                    "VIGIL_JWT_PUBLIC_KEY_FILE",
                    format!("cannot read {path}: {e}"),
                )
            })?;
            let algorithm = match alg {
                Some(a @ (Algorithm::RS256 | Algorithm::ES256)) => a,
                _ => {
                    return Err(ConfigError::new(
                        "VIGIL_JWT_ALG",
                        "a public key needs VIGIL_JWT_ALG=RS256 or ES256",
                    ));
                }
            };
            (JwtKey::PublicPem(pem), algorithm)
        }
        (None, None) => match dev_secret {
            // The invented secret is HS256's; an algorithm pinned to another is the
            // operator's choice, not overridden.
            Some(_) if matches!(alg, Some(Algorithm::RS256 | Algorithm::ES256)) => {
                return Err(ConfigError::new(
                    "VIGIL_JWT_ALG",
                    "--dev invents an HS256 secret; for RS256 or ES256 give the public key \
                     (VIGIL_JWT_PUBLIC_KEY_FILE), or unset VIGIL_JWT_ALG",
                ));
            }
            Some(secret) => (JwtKey::Secret(Secret::new(secret)), Algorithm::HS256),
            None => {
                return Err(ConfigError::new(
                    "VIGIL_JWT_SECRET",
                    "set VIGIL_JWT_SECRET (or VIGIL_JWT_PUBLIC_KEY_FILE), or run `vigil serve --dev`",
                ));
            }
        },
    };
    let config = JwtConfig {
        key,
        algorithm,
        issuer: set_value(args.jwt_issuer.as_deref()),
        audience: set_value(args.jwt_audience.as_deref()),
    };
    crate::auth::keys::Verifier::new(&config)
        .map_err(|e| ConfigError::new("VIGIL_JWT_PUBLIC_KEY_FILE", e.to_string()))?;
    Ok(config)
}
