//! JWT claims (RFC 7519) as Vigil reads and writes them.

use serde::{Deserialize, Serialize};

/// The claims Vigil understands. `exp` is required; `iss`/`aud` are checked by the
/// verifier when configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Who the caller is: alerts and acknowledgments record it, and care teams, stream
    /// limits and the write rate are keyed by it.
    pub sub: String,
    /// One of the seven roles.
    pub role: String,
    /// The patient a `patient` token is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    /// Expiry, seconds since the epoch (a fractional NumericDate is taken down to the
    /// second before it, RFC 7519 §2).
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// Issued at: written by `vigil token` for whoever reads the token. Only its form is
    /// checked; `exp` (and `nbf`, when present) decide validity.
    #[serde(
        default,
        deserialize_with = "optional_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    /// Must equal `VIGIL_JWT_ISSUER` when that is set, so a token from another issuer
    /// sharing the key is refused; ignored otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Must include `VIGIL_JWT_AUDIENCE` when that is set, so a token meant for another
    /// service is refused; ignored otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// `aud`: one string or an array of them (RFC 7519 §4.1.3); identity providers issue both.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "vigil"`.
    One(String),
    /// `"aud": ["vigil", "other"]`.
    Many(Vec<String>),
}

impl From<String> for Audience {
    fn from(audience: String) -> Self {
        Audience::One(audience)
    }
}

/// A NumericDate: integer or fractional seconds since the epoch (RFC 7519 §2), floored.
fn numeric_date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let seconds = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = seconds.as_i64() {
        return Ok(whole);
    }
    match seconds.as_f64() {
        // Within ±2^53 an f64 holds whole seconds exactly; beyond it no date is meant.
        Some(value) if value.is_finite() && value.abs() < 9_007_199_254_740_992.0 => {
            #[allow(clippy::cast_possible_truncation)] // range checked above
            Ok(value.floor() as i64)
        }
        _ => Err(serde::de::Error::custom("a NumericDate out of range")),
    }
}

fn optional_numeric_date<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "numeric_date")] i64);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(seconds)| seconds))
}
