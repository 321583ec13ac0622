//! Token verification and signing with a pinned algorithm.

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};

use super::Claims;
use crate::config::{JwtConfig, JwtKey};

/// Why a token was refused; the text is safe to show (it never contains the token).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key could not be loaded.
    #[error("invalid key: {0}")]
    Key(String),
    /// The token did not verify.
    #[error("{0}")]
    Invalid(String),
}

/// Verifies tokens: pinned algorithm, `exp` required, `iss`/`aud` when configured,
/// no leeway (expiry is exact, which is what streams enforce too).
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

/// A key that did not load, with what would: jsonwebtoken says only `InvalidKeyFormat`,
/// and OpenSSL's usual EC key (`BEGIN EC PRIVATE KEY`, SEC1) is not the PKCS#8 it reads.
fn key_error(
    algorithm: jsonwebtoken::Algorithm,
    pem: &[u8],
    error: &jsonwebtoken::errors::Error,
    use_: KeyUse,
) -> TokenError {
    let text = String::from_utf8_lossy(pem);
    let es256 = algorithm == jsonwebtoken::Algorithm::ES256;
    // The conversion only helps an EC key meant for ES256: for RS256 it still fails.
    let hint = if es256 && text.contains("BEGIN EC PRIVATE KEY") {
        "this EC key is in SEC1 form; convert it to PKCS#8 with \
         `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pkcs8.pem`"
    } else if !text.contains("-----BEGIN ") {
        "expected a PEM file (-----BEGIN …-----)"
    } else {
        match (es256, use_) {
            (true, KeyUse::Sign) => {
                "ES256 signs with a P-256 private key in PEM, PKCS#8 (BEGIN PRIVATE KEY)"
            }
            (true, KeyUse::Verify) => {
                "ES256 needs a P-256 key in PEM: a PKCS#8 private key (BEGIN PRIVATE KEY) or \
                 its public key (BEGIN PUBLIC KEY)"
            }
            (false, KeyUse::Sign) => {
                "RS256 signs with an RSA private key in PEM, PKCS#1 (BEGIN RSA PRIVATE KEY) \
                 or PKCS#8 (BEGIN PRIVATE KEY)"
            }
            (false, KeyUse::Verify) => {
                "RS256 needs an RSA key in PEM: PKCS#1 or PKCS#8 private key, or its public key"
            }
        }
    };
    TokenError::Key(format!(
        "{error} ({hint}; docs/deployment.md shows how to make a key pair)"
    ))
}

/// What a key file is read for: the forms named in a refusal differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyUse {
    Sign,
    Verify,
}

/// The one private key of a PEM file given to sign with, re-encoded alone. jsonwebtoken
/// reads a file's first block only: a file holding the private key and then its public
/// key (as some tools write them) was refused as "a public key", one with the public key
/// first signed nothing, and a certificate got an ASN.1 error. A file that is not PEM is
/// passed on whole, for jsonwebtoken's error and [`key_error`]'s hint.
fn signing_block(pem: &[u8]) -> Result<Vec<u8>, TokenError> {
    let Ok(blocks) = pem::parse_many(pem) else {
        return Ok(pem.to_vec());
    };
    let private: Vec<&pem::Pem> = blocks
        .iter()
        .filter(|block| block.tag().ends_with("PRIVATE KEY"))
        .collect();
    let refuse = |why: &str| Err(TokenError::Key(why.to_owned()));
    // PKCS#8 says so in its tag; OpenSSL's older forms (`BEGIN RSA PRIVATE KEY`, `BEGIN
    // EC PRIVATE KEY`, as `openssl rsa -aes256` and `ssh-keygen -m PEM` write them) in
    // a `Proc-Type: 4,ENCRYPTED` header.
    let encrypted = |key: &pem::Pem| {
        key.tag() == "ENCRYPTED PRIVATE KEY"
            || key
                .headers()
                .get("Proc-Type")
                .is_some_and(|value| value.contains("ENCRYPTED"))
    };
    match private.as_slice() {
        [key] if encrypted(key) => refuse(
            "this private key is encrypted; Vigil reads an unencrypted one: \
             `openssl pkcs8 -in key.pem -out key.plain.pem` asks for the passphrase and \
             writes it (keep that file as private as a password)",
        ),
        [key] => Ok(pem::encode(key).into_bytes()),
        [_, _, ..] => refuse(&format!(
            "this file holds {} private keys; give it the one the server's public key \
             (VIGIL_JWT_PUBLIC_KEY_FILE) belongs to",
            private.len()
        )),
        [] if blocks.iter().any(|block| block.tag() == "CERTIFICATE") => refuse(
            "this is a certificate, which holds only a public key; signing needs the private \
             key it was issued for (BEGIN PRIVATE KEY)",
        ),
        [] if blocks
            .iter()
            .any(|block| block.tag().ends_with("PUBLIC KEY")) =>
        {
            refuse(
                "this is a public key; signing needs the private key of the pair (BEGIN \
                 PRIVATE KEY), whose public key the server is given in \
                 VIGIL_JWT_PUBLIC_KEY_FILE (docs/deployment.md)",
            )
        }
        [] => Ok(pem.to_vec()),
    }
}

/// The DER of the P-256 curve's OID (1.2.840.10045.3.1.7), present in every P-256 key.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// ES256 is ECDSA on P-256 only. jsonwebtoken loads a P-384 or P-521 key for it without
/// a word, and then refuses every token ("token malformed") or fails to sign: the key
/// is refused when it is loaded instead, naming the curve rule.
fn check_es256_curve(algorithm: jsonwebtoken::Algorithm, pem: &[u8]) -> Result<(), TokenError> {
    if algorithm != jsonwebtoken::Algorithm::ES256 {
        return Ok(());
    }
    let Ok(block) = pem::parse(pem) else {
        return Ok(()); // not PEM: jsonwebtoken's own error, with key_error's hint, follows
    };
    if block
        .contents()
        .windows(P256_OID.len())
        .any(|w| w == P256_OID)
    {
        Ok(())
    } else {
        Err(TokenError::Key(
            "ES256 needs a key on the P-256 curve (prime256v1); this one is on another \
             curve (P-384 belongs to ES384, P-521 to ES512, which Vigil does not accept)"
                .to_owned(),
        ))
    }
}

impl Verifier {
    /// Builds a verifier; fails if the key does not parse.
    pub fn new(config: &JwtConfig) -> Result<Self, TokenError> {
        let key = match &config.key {
            JwtKey::Secret(secret) => DecodingKey::from_secret(secret.expose().as_bytes()),
            JwtKey::PublicPem(pem) => match config.algorithm {
                jsonwebtoken::Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
                _ => DecodingKey::from_rsa_pem(pem),
            }
            .map_err(|e| key_error(config.algorithm, pem, &e, KeyUse::Verify))?,
        };
        // Once the key has loaded (a key that does not gets key_error's hints first).
        if let JwtKey::PublicPem(pem) = &config.key {
            check_es256_curve(config.algorithm, pem)?;
        }
        let mut validation = Validation::new(config.algorithm);
        validation.leeway = 0;
        // A token that says it is not valid yet is not valid (RFC 7519 §4.1.5).
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    /// Every refusal's text is safe to send in the 401. The claims come back unchecked
    /// beyond the token rules: `role`, `sub` and `patient_id` are for the caller to vet.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // The header first, so a bad one (`"alg": "none"`, not base64, not JSON) is not
        // reported as bad claims: both would be the same JSON error below.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            TokenError::Invalid(
                "token malformed: not a JWT with a header this server reads (alg HS256, RS256 or ES256)"
                    .to_owned(),
            )
        })?;
        // RFC 7515 §4.1.11: extensions named critical must be understood, and Vigil
        // understands none (jsonwebtoken reads `crit` but does not enforce it).
        if header.crit.is_some() {
            return Err(TokenError::Invalid(
                "token header names critical extensions (`crit`) this server does not implement"
                    .to_owned(),
            ));
        }
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired".to_owned(),
                    ErrorKind::InvalidAlgorithm => "token algorithm not accepted".to_owned(),
                    ErrorKind::InvalidSignature => "token signature invalid".to_owned(),
                    ErrorKind::InvalidIssuer => "token issuer not accepted".to_owned(),
                    ErrorKind::InvalidAudience => "token audience not accepted".to_owned(),
                    // Also what jsonwebtoken says of a negative `exp`: it is there, but
                    // not a time it can read.
                    ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
                        "token lacks a valid `exp` claim (a NumericDate: seconds since 1970)"
                            .to_owned()
                    }
                    ErrorKind::MissingRequiredClaim(claim) => {
                        format!("token lacks the `{claim}` claim this server requires")
                    }
                    ErrorKind::InvalidClaimFormat(claim) => {
                        format!("token claim `{claim}` is not a valid NumericDate")
                    }
                    ErrorKind::ImmatureSignature => {
                        "token not valid yet (its `nbf` is in the future)".to_owned()
                    }
                    ErrorKind::Json(_) => {
                        "token claims malformed: `sub` and `role` are required strings, `exp` \
                         a required NumericDate (seconds since 1970), `iat` and `nbf` \
                         NumericDates when present, `iss` and `patient_id` strings when \
                         present, `aud` a string or an array of strings when present"
                            .to_owned()
                    }
                    _ => "token malformed".to_owned(),
                };
                TokenError::Invalid(why)
            })?;
        // jsonwebtoken compares `exp` with the current whole second and lets `exp == now`
        // through, so a token was accepted for up to a second past its expiry; RFC 7519
        // §4.1.4: the current time must be before it. Streams end at the same instant.
        if !before_expiry(claims.exp, std::time::SystemTime::now()) {
            return Err(TokenError::Invalid("token expired".to_owned()));
        }
        if claims.exp > MAX_EXP {
            return Err(TokenError::Invalid(
                "token expiry beyond the year 9999".to_owned(),
            ));
        }
        Ok(claims)
    }
}

/// Whether `now` is strictly before the NumericDate `exp` (seconds since 1970).
fn before_expiry(exp: i64, now: std::time::SystemTime) -> bool {
    let expiry = std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp.max(0).unsigned_abs());
    now < expiry
}

/// The last second of the year 9999: an `exp` past it cannot be written as a date (the
/// session's `expires_at`, the cookie's lifetime), so it is refused rather than wrapped.
pub const MAX_EXP: i64 = 253_402_300_799;

/// Signs tokens for `vigil token`, `--dev` and tests.
pub struct Signer {
    key: EncodingKey,
    header: Header,
}

impl Signer {
    /// HS256 signer from the shared secret.
    pub fn hs256(secret: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            header: Header::new(jsonwebtoken::Algorithm::HS256),
        }
    }

    /// RS256/ES256 signer from a PEM private key.
    pub fn from_private_pem(
        algorithm: jsonwebtoken::Algorithm,
        pem: &[u8],
    ) -> Result<Self, TokenError> {
        // jsonwebtoken loads a public key here without a word, and signing then fails
        // with an ASN.1 error naming neither the file nor the mix-up.
        let pem = signing_block(pem)?;
        let key = match algorithm {
            jsonwebtoken::Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .map_err(|e| key_error(algorithm, &pem, &e, KeyUse::Sign))?;
        check_es256_curve(algorithm, &pem)?;
        Ok(Self {
            key,
            header: Header::new(algorithm),
        })
    }

    /// Checks nothing about the claims (an expired `exp`, an unknown role sign fine), so
    /// tests can mint the very tokens the verifier must refuse.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        encode(&self.header, claims, &self.key).map_err(|e| TokenError::Key(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of an EC key as `openssl ecparam -genkey` writes it (SEC1), which
    /// jsonwebtoken cannot read (checked by hand with a real one): the error must say how
    /// to convert it. No key material is kept in the code.
    const SEC1_KEY: &str =
        "-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n";

    /// A public key given to sign with was loaded, and signing failed with "ASN.1
    /// INTEGER not canonically encoded as DER" (an outside audit).
    #[test]
    fn a_public_key_given_to_sign_with_is_refused_as_such() {
        for (algorithm, label) in [
            (jsonwebtoken::Algorithm::RS256, "PUBLIC KEY"),
            (jsonwebtoken::Algorithm::RS256, "RSA PUBLIC KEY"),
            (jsonwebtoken::Algorithm::ES256, "PUBLIC KEY"),
        ] {
            let pem = format!("-----BEGIN {label}-----\nbm90IGEga2V5\n-----END {label}-----\n");
            let refused = Signer::from_private_pem(algorithm, pem.as_bytes());
            assert!(
                matches!(&refused, Err(TokenError::Key(m)) if m.contains("this is a public key")),
                "{label}: {:?}",
                refused.err()
            );
        }
    }

    const RS256_PRIVATE: &str = include_str!("../../tests/api/keys/rs256_private.pem");
    const RS256_PUBLIC: &str = include_str!("../../tests/api/keys/rs256_public.pem");

    fn sign_error(algorithm: jsonwebtoken::Algorithm, pem: &str) -> String {
        Signer::from_private_pem(algorithm, pem.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn block(label: &str) -> String {
        format!("-----BEGIN {label}-----\nbm90IGEga2V5\n-----END {label}-----\n")
    }

    /// jsonwebtoken reads a file's first block: a file holding the pair (either order)
    /// was refused as "a public key", and signed with the private key first only.
    #[test]
    fn a_file_holding_the_private_key_and_its_public_key_signs_in_either_order() {
        let mut config = config();
        config.algorithm = jsonwebtoken::Algorithm::RS256;
        config.key = JwtKey::PublicPem(RS256_PUBLIC.as_bytes().to_vec());
        let verifier = Verifier::new(&config).expect("the public key loads");
        for pem in [
            format!("{RS256_PRIVATE}{RS256_PUBLIC}"),
            format!("{RS256_PUBLIC}{RS256_PRIVATE}"),
        ] {
            let signer = Signer::from_private_pem(jsonwebtoken::Algorithm::RS256, pem.as_bytes())
                .expect("the private key of the file is used");
            let token = signer.sign(&claims(MAX_EXP)).expect("signs");
            verifier
                .verify(&token)
                .expect("the pair's public key verifies it");
        }
    }

    /// Each got jsonwebtoken's error alone ("ASN.1 …", "InvalidKeyFormat"), naming
    /// neither what the file held nor what signing needs.
    #[test]
    fn a_signing_key_file_that_holds_no_usable_private_key_says_what_it_holds() {
        let rs256 = jsonwebtoken::Algorithm::RS256;
        for (pem, says) in [
            (block("CERTIFICATE"), "this is a certificate"),
            (
                format!("{}{}", block("CERTIFICATE"), block("PUBLIC KEY")),
                "this is a certificate",
            ),
            (
                block("ENCRYPTED PRIVATE KEY"),
                "this private key is encrypted",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: \
                 AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nbm90IGEga2V5\n-----END RSA \
                 PRIVATE KEY-----\n"
                    .to_owned(),
                "this private key is encrypted",
            ),
            (
                format!("{}{}", block("PRIVATE KEY"), block("RSA PRIVATE KEY")),
                "this file holds 2 private keys",
            ),
        ] {
            let message = sign_error(rs256, &pem);
            assert!(message.contains(says), "{pem}: {message}");
        }
        // Signing takes a private key only: the forms named leave the public key out.
        let es256 = sign_error(jsonwebtoken::Algorithm::ES256, &block("PRIVATE KEY"));
        assert!(
            es256.contains("ES256 signs with a P-256 private key") && !es256.contains("PUBLIC"),
            "{es256}"
        );
        let rs256 = sign_error(rs256, &block("PRIVATE KEY"));
        assert!(
            rs256.contains("RS256 signs with an RSA private key") && !rs256.contains("public"),
            "{rs256}"
        );
    }

    #[test]
    fn an_ec_key_in_sec1_form_is_refused_with_the_command_that_converts_it() {
        let refused = Signer::from_private_pem(jsonwebtoken::Algorithm::ES256, SEC1_KEY.as_bytes());
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("SEC1") && message.contains("openssl pkcs8 -topk8 -nocrypt"),
            "{message}"
        );
        // For RS256 an EC key is the wrong kind of key, converted or not.
        let for_rs256 =
            Signer::from_private_pem(jsonwebtoken::Algorithm::RS256, SEC1_KEY.as_bytes());
        let message = for_rs256.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("RS256 signs with an RSA private key")
                && !message.contains("pkcs8 -topk8"),
            "{message}"
        );
        let not_pem = Signer::from_private_pem(jsonwebtoken::Algorithm::RS256, b"hello");
        let message = not_pem.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("expected a PEM file"), "{message}");
    }
    use crate::auth::claims::Audience;
    use crate::config::Secret;

    fn config() -> JwtConfig {
        JwtConfig {
            key: JwtKey::Secret(Secret::new("0123456789abcdef0123456789abcdef")),
            algorithm: jsonwebtoken::Algorithm::HS256,
            issuer: None,
            audience: None,
        }
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "alice".into(),
            role: "nurse".into(),
            patient_id: None,
            exp,
            iat: None,
            iss: None,
            aud: None,
        }
    }

    /// One encode and one decode: proves exactly one jsonwebtoken crypto backend is
    /// enabled (none or both compile but panic at runtime).
    #[test]
    fn a_signed_token_verifies() {
        let verifier = Verifier::new(&config()).expect("verifier");
        let token = Signer::hs256("0123456789abcdef0123456789abcdef")
            .sign(&claims(MAX_EXP))
            .expect("sign");
        assert_eq!(verifier.verify(&token).expect("verifies").sub, "alice");
    }

    /// A token was accepted until a second past its `exp` (jsonwebtoken lets `exp == now`
    /// through, comparing whole seconds): expiry is now the exact instant.
    #[test]
    fn a_token_expires_at_the_instant_of_its_exp() {
        let at = |secs: u64, millis: u64| {
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(secs * 1000 + millis)
        };
        assert!(before_expiry(1_000, at(999, 999)));
        assert!(!before_expiry(1_000, at(1_000, 0)));
        assert!(!before_expiry(1_000, at(1_000, 300)));
        assert!(!before_expiry(-5, at(0, 0)));
        let verifier = Verifier::new(&config()).expect("verifier");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = Signer::hs256("0123456789abcdef0123456789abcdef")
            .sign(&claims(i64::try_from(now).unwrap_or(i64::MAX)))
            .expect("sign");
        let refused = verifier.verify(&token).err().map(|e| e.to_string());
        assert_eq!(refused.as_deref(), Some("token expired"), "exp == now");
    }

    /// The 401 must name what is wrong: a negative `exp` was "lacks the `exp` claim" and a
    /// text `iat` "sub, role and exp are required", though all three were there.
    #[test]
    fn a_bad_claim_is_named_for_what_it_is() {
        let verifier = Verifier::new(&config()).expect("verifier");
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            )
            .expect("sign")
        };
        let why = |claims| {
            verifier
                .verify(&sign(claims))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let hour = chrono::Utc::now().timestamp() + 3600;
        assert!(
            why(serde_json::json!({"sub": "a", "role": "nurse", "exp": -1}))
                .contains("a valid `exp`"),
        );
        let iat = why(serde_json::json!({"sub": "a", "role": "nurse", "exp": hour, "iat": "x"}));
        assert!(
            iat.contains("`iat` and `nbf` NumericDates when present"),
            "{iat}"
        );
        // An identity provider's array-valued `iss` is named too, not only the claims
        // Vigil requires.
        let iss = why(serde_json::json!({"sub": "a", "role": "nurse", "exp": hour, "iss": ["x"]}));
        assert!(iss.contains("`iss` and `patient_id` strings"), "{iss}");
        let aud = why(serde_json::json!({"sub": "a", "role": "nurse", "exp": hour, "aud": 7}));
        assert!(
            aud.contains("`aud` a string or an array of strings"),
            "{aud}"
        );
    }

    /// ES256 is P-256 only: a P-384 public key loaded without a word and then every
    /// token was "malformed". Public keys, made with `openssl ecparam -name … -genkey`.
    #[test]
    fn an_es256_key_on_another_curve_is_refused_when_loaded() {
        const P384: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEsShYHa1VQXPNXHDznYBiq52Ow3ZdViZD
2AjedIOr2GMqkwKrknnLK6ymKGc8Fi41W4aaXrnknFbS4YKnHIjxKCBPiUFn0Mqp
eWibKThvnskNEUmftRyg2aboUKekm+C8
-----END PUBLIC KEY-----
";
        const P256: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQ5yE9QjUzEQkGHdaS2Ag4Yri6cRR
wg8mny8FGaXgnD3tTqDERbJ7rKkCKDneBBxpmy5KOOyr3WcUvhC4yy8Bzg==
-----END PUBLIC KEY-----
";
        let verifier = |pem: &str| {
            Verifier::new(&JwtConfig {
                key: JwtKey::PublicPem(pem.as_bytes().to_vec()),
                algorithm: jsonwebtoken::Algorithm::ES256,
                issuer: None,
                audience: None,
            })
        };
        assert!(verifier(P256).is_ok());
        let refused = verifier(P384)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("P-256"), "{refused}");
    }

    /// RFC 7515 §4.1.11: a token whose header lists critical extensions this server does
    /// not implement must be refused; it verified.
    #[test]
    fn a_token_with_critical_extensions_is_refused() {
        let verifier = Verifier::new(&config()).expect("verifier");
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.crit = Some(vec!["exp".to_owned()]);
        let token = jsonwebtoken::encode(
            &header,
            &claims(chrono::Utc::now().timestamp() + 3600),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .expect("sign");
        let why = verifier
            .verify(&token)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(why.contains("`crit`"), "{why}");
    }

    #[test]
    fn an_expiry_past_the_year_9999_is_refused() {
        let verifier = Verifier::new(&config()).expect("verifier");
        let token = Signer::hs256("0123456789abcdef0123456789abcdef")
            .sign(&claims(MAX_EXP + 1))
            .expect("sign");
        assert!(verifier.verify(&token).is_err());
    }

    /// Signs any JSON as claims, as an identity provider might write them.
    fn signed(claims: &serde_json::Value) -> String {
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .expect("sign")
    }

    #[test]
    fn an_audience_array_and_fractional_times_are_read_as_rfc_7519_writes_them() {
        let exp = chrono::Utc::now().timestamp() + 3600;
        let token = |aud: serde_json::Value| {
            signed(&serde_json::json!({
                "sub": "alice", "role": "nurse", "exp": exp as f64 + 0.75,
                "iat": exp as f64 - 3600.25, "aud": aud,
            }))
        };
        let open = Verifier::new(&config()).expect("verifier");
        let claims = open
            .verify(&token(serde_json::json!(["other", "vigil"])))
            .expect("an aud array with no audience configured");
        assert_eq!(claims.exp, exp, "a fractional exp is floored");
        assert_eq!(claims.iat, Some(exp - 3601));
        assert_eq!(
            claims.aud,
            Some(Audience::Many(vec!["other".into(), "vigil".into()]))
        );

        let mut pinned = config();
        pinned.audience = Some("vigil".to_owned());
        let pinned = Verifier::new(&pinned).expect("verifier");
        assert!(
            pinned
                .verify(&token(serde_json::json!(["other", "vigil"])))
                .is_ok()
        );
        assert!(pinned.verify(&token(serde_json::json!("vigil"))).is_ok());
        let refused = pinned.verify(&token(serde_json::json!(["other"])));
        assert!(
            matches!(&refused, Err(TokenError::Invalid(m)) if m == "token audience not accepted"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_header_this_server_cannot_read_is_named_as_such() {
        let verifier = Verifier::new(&config()).expect("verifier");
        // {"alg":"none","typ":"JWT"} . {"sub":"a","role":"admin","exp":9999999999} . (no signature)
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwicm9sZSI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        for token in [unsigned, "abc.def.ghi"] {
            let refused = verifier.verify(token);
            assert!(
                matches!(&refused, Err(TokenError::Invalid(m)) if m.starts_with("token malformed: not a JWT")),
                "{token}: {refused:?}"
            );
        }
    }

    #[test]
    fn an_expired_token_is_refused() {
        let verifier = Verifier::new(&config()).expect("verifier");
        let token = Signer::hs256("0123456789abcdef0123456789abcdef")
            .sign(&claims(1))
            .expect("sign");
        assert!(
            matches!(verifier.verify(&token), Err(TokenError::Invalid(m)) if m == "token expired")
        );
    }
}
