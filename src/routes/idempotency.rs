//! The `Idempotency-Key` header, read alike by the writes that take one (raising and
//! acknowledging an alert).

use actix_web::HttpRequest;

use crate::error::ApiError;
use crate::service::alerts::MAX_IDEMPOTENCY_KEY;

/// The caller's `Idempotency-Key`: 1–255 printable ASCII characters (spaces inside
/// allowed, as in the IETF draft's string), given once. A second key is refused rather
/// than one picked: a retry that sent only the other one would store its write twice.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all("Idempotency-Key");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "given twice; send one key",
        ));
    }
    let key = value.as_bytes().trim_ascii();
    if key.iter().any(|b| !(b' '..=b'~').contains(b)) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be printable ASCII (letters, digits, punctuation, spaces)",
        ));
    }
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("must be 1-{MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}
