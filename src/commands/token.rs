//! `vigil token`: mint a JWT with the configured key (development, tests, the README).

use crate::auth::{Claims, Signer};
use crate::cli::TokenArgs;
use crate::config::parse_ttl;
use crate::domain::{PatientId, Role};

/// The longest lifetime `vigil token` mints: a year and a day covers any development
/// or test need; a bearer token should live hours.
const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// Mints a token; the error says which flag is wrong.
pub fn mint(args: &TokenArgs) -> Result<String, String> {
    let role: Role = args.role.parse().map_err(|e| format!("--role: {e}"))?;
    if !crate::domain::is_user_id(&args.sub) {
        return Err("--sub: must be 1-128 printable characters, none invisible and no white space at either end, not \".\" or \"..\"".to_owned());
    }
    let patient_id = match &args.patient {
        Some(raw) => Some(
            PatientId::parse(raw)
                .map_err(|e| format!("--patient: {e}"))?
                .as_str()
                .to_owned(),
        ),
        None if role == Role::Patient => {
            return Err("--patient: required for role patient".to_owned());
        }
        None => None,
    };
    if patient_id.is_some() && role != Role::Patient {
        // Kept (DESIGN's own example gives a nurse one), but the server scopes only a
        // patient token by it: a nurse's token is not limited to that patient.
        let sees = match role {
            Role::Admin => "every patient",
            Role::Service => "no patient (it raises alerts)",
            _ => "the patients of its care team",
        };
        log::warn!(
            "--patient is read for role patient only: with role {} the token sees {sees}, not this \
             one alone",
            role.as_str()
        );
    }
    let ttl = parse_ttl(&args.ttl).ok_or("--ttl: expected e.g. 90, 30m, 8h or 2d")?;
    if ttl > MAX_TTL {
        return Err("--ttl: at most 366d; issue short-lived tokens".to_owned());
    }
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: args.sub.clone(),
        role: role.as_str().to_owned(),
        patient_id,
        exp: now + i64::try_from(ttl.as_secs()).map_err(|_| "--ttl: too long")?,
        iat: Some(now),
        iss: crate::config::set_value(args.jwt.jwt_issuer.as_deref()),
        aud: crate::config::set_value(args.jwt.jwt_audience.as_deref()).map(Into::into),
    };
    let signer = match (
        &args.private_key_file,
        // Blank is "not set", as for `serve` (README).
        args.jwt
            .jwt_secret
            .as_deref()
            .filter(|s| !s.trim().is_empty()),
    ) {
        (Some(path), _) => {
            let alg = match args
                .jwt
                .jwt_alg
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                Some("ES256") => jsonwebtoken::Algorithm::ES256,
                Some("RS256") => jsonwebtoken::Algorithm::RS256,
                _ => {
                    return Err(
                        "VIGIL_JWT_ALG: a private key needs --jwt-alg (or VIGIL_JWT_ALG) RS256 \
                         or ES256, as the server's"
                            .to_owned(),
                    );
                }
            };

            let pem = std::fs::read(path)
                .map_err(|e| format!("--private-key-file: cannot read {path}: {e}"))?;
            Signer::from_private_pem(alg, &pem).map_err(|e| format!("--private-key-file: {e}"))?
        }
        // The same checks `vigil serve` makes, so no token is minted that it would refuse.
        (None, Some(secret)) => {
            crate::config::jwt_config(&args.jwt, None).map_err(|e| e.to_string())?;
            Signer::hs256(secret)
        }
        (None, None) => {
            return Err(
                "VIGIL_JWT_SECRET: set it (or --private-key-file) to sign tokens".to_owned(),
            );
        }
    };
    let token = signer.sign(&claims).map_err(|e| e.to_string())?;
    // Given the server's public key too (VIGIL_JWT_PUBLIC_KEY_FILE set for `serve` in the
    // same shell), the token is checked as the server would: a private key that is not
    // its pair was silently used, and every token it made refused.
    if args.private_key_file.is_some()
        && crate::config::set_value(args.jwt.jwt_public_key_file.as_deref()).is_some()
    {
        let jwt = crate::config::jwt_config(&args.jwt, None).map_err(|e| e.to_string())?;
        let verifier = crate::auth::Verifier::new(&jwt).map_err(|e| e.to_string())?;
        verifier.verify(&token).map_err(|e| {
            format!(
                "--private-key-file: the server with VIGIL_JWT_PUBLIC_KEY_FILE would refuse this \
                 token ({e}); is the private key the public key's pair?"
            )
        })?;
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::mint;
    use crate::cli::{Cli, Command, TokenArgs};

    fn args(extra: &[&str]) -> TokenArgs {
        let mut argv = vec!["vigil", "token", "--sub", "alice", "--role", "nurse"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            Some(Command::Token(args)) => args,
            other => panic!("not a token command: {other:?}"),
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn it_refuses_what_serve_would_refuse_naming_the_setting() {
        for (extra, why) in [
            (
                vec!["--jwt-secret", "short"],
                "VIGIL_JWT_SECRET: expected at least 32",
            ),
            (
                vec!["--jwt-secret", SECRET, "--jwt-alg", "RS256"],
                "VIGIL_JWT_ALG: a shared secret only works with HS256",
            ),
            (
                vec!["--jwt-secret", SECRET, "--jwt-alg", "HS512"],
                "VIGIL_JWT_ALG: expected HS256",
            ),
            // Blank is "not set": the advice is how to sign, not how to run a server.
            (
                vec!["--jwt-secret", "   "],
                "VIGIL_JWT_SECRET: set it (or --private-key-file) to sign tokens",
            ),
            (
                vec!["--jwt-secret", SECRET, "--ttl", "367d"],
                "--ttl: at most 366d",
            ),
            (
                vec!["--jwt-secret", SECRET, "--ttl", "99999999999999d"],
                "--ttl",
            ),
        ] {
            let error = mint(&args(&extra)).err();
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(why)),
                "{extra:?}: {error:?}"
            );
        }
        assert!(mint(&args(&["--jwt-secret", SECRET, "--ttl", "366d"])).is_ok());
    }

    /// With the server's public key in the same shell, a private key that is not its
    /// pair was used without a word, and the server refused every token it made.
    #[test]
    fn a_private_key_that_is_not_the_public_keys_pair_is_refused() {
        let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/keys");
        let private = format!("{keys}/rs256_private.pem");
        let pair = format!("{keys}/rs256_public.pem");
        let dir = tempfile::tempdir().expect("tempdir");
        let other = dir.path().join("other.pem");
        std::fs::write(&other, OTHER_RSA_PUBLIC_KEY).expect("write");
        let other = other.display().to_string();
        let with = |public: &str| {
            mint(&args(&[
                "--private-key-file",
                &private,
                "--jwt-alg",
                "RS256",
                "--jwt-public-key-file",
                public,
            ]))
        };
        assert!(with(&pair).is_ok(), "{:?}", with(&pair));
        let refused = with(&other).err().unwrap_or_default();
        assert!(refused.contains("the public key's pair"), "{refused}");
    }

    /// A public key that is no pair of the test private key (`openssl genrsa 2048 |
    /// openssl rsa -pubout`).
    const OTHER_RSA_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0txt49d5JDM/BbdGtAw8
QROq8lGrjdDbtOXDHuaH+TNj2w/tOeTzrikF4uJJCZ3iOMsoKzAblLsN3MvuYyak
gtMasR7UHjBvl+nMh2fDPhjoahOJdUPIWPcmJSMpaZePCTaaOSlhfM3J2t8j46R5
TEQfBn4ZPS9qsQlkt2c+tZpAGOb5d84xk59GGFj3dX8iPkRFpsQxkFyJO4FllEa9
EYvfIkbcBXB+/sbCDCKTwsR5ZphUWHF8Jp813wWwMS5dIIwikq+z6kt8BwBemE9w
ic66qd70GkWKjFxIRswrfnTgsvKjr4f21URm+edhQC0fSIS822duYU5N2nMyXdPF
owIDAQAB
-----END PUBLIC KEY-----
";
}
