//! `vigil token`: mint a JWT with the configured key (development, tests, the README).

use crate::auth::{Claims, Signer};
use crate::cli::TokenArgs;
use crate::config::parse_ttl;
use crate::domain::{PatientId, Role};

/// Mints a token; the error says which flag is wrong.
pub fn mint(args: &TokenArgs) -> Result<String, String> {
    let role: Role = args.role.parse().map_err(|e| format!("--role: {e}"))?;
    if args.sub.is_empty() || args.sub.len() > 128 {
        return Err("--sub: must be 1-128 characters".to_owned());
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
    let ttl = parse_ttl(&args.ttl).ok_or("--ttl: expected e.g. 90, 30m, 8h or 2d")?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: args.sub.clone(),
        role: role.as_str().to_owned(),
        patient_id,
        exp: now + i64::try_from(ttl.as_secs()).map_err(|_| "--ttl: too long")?,
        iat: Some(now),
        iss: args.jwt.jwt_issuer.clone().filter(|s| !s.is_empty()),
        aud: args.jwt.jwt_audience.clone().filter(|s| !s.is_empty()),
    };
    let signer = match (
        &args.private_key_file,
        args.jwt.jwt_secret.as_deref().filter(|s| !s.is_empty()),
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
                _ => return Err("VIGIL_JWT_ALG: a private key needs RS256 or ES256".to_owned()),
            };
            let pem = std::fs::read(path)
                .map_err(|e| format!("--private-key-file: cannot read {path}: {e}"))?;
            Signer::from_private_pem(alg, &pem).map_err(|e| format!("--private-key-file: {e}"))?
        }
        (None, Some(secret)) => Signer::hs256(secret),
        (None, None) => {
            return Err(
                "VIGIL_JWT_SECRET: set it (or --private-key-file) to sign tokens".to_owned(),
            );
        }
    };
    signer.sign(&claims).map_err(|e| e.to_string())
}
