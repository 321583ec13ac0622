//! Query strings as ordered key/value pairs: `patient_id` may repeat, so a map or a
//! `serde` struct would lose values. One parser, one error, for every endpoint.

use crate::error::ApiError;
use crate::scope::Requested;

/// A parsed query string.
#[derive(Debug, Default)]
pub struct QueryPairs(Vec<(String, String)>);

impl QueryPairs {
    /// Parses `a=1&b=2`; a malformed string is a 400 problem.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(query)
            .map(Self)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))
    }

    /// The value of a parameter that takes one (empty means "not given"); given twice,
    /// it is a 422 naming it rather than one of the two picked silently.
    pub fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(name, "give it at most once"));
        }
        Ok(first)
    }

    /// The value of `name`, even empty: `?last_event_id=` must be treated like an empty
    /// `Last-Event-ID` header (not a decimal integer: `reset`), not like no id. Given
    /// twice it is a 422: a resume point is not picked silently from two.
    pub fn raw_single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(name, "give it at most once"));
        }
        Ok(first)
    }

    /// Every `patient_id` (repeated or comma lists) as a validated scope request.
    pub fn requested(&self) -> Result<Requested, ApiError> {
        Requested::parse(
            self.0
                .iter()
                .filter(|(k, _)| k == "patient_id")
                .map(|(_, v)| v.as_str()),
        )
    }
}
