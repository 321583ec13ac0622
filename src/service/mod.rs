//! Use cases. Handlers (HTTP and WebSocket alike) call these; they hold the business
//! rules, run the database work in one transaction, and publish after commit.

pub mod acks;
pub mod alerts;
pub mod care_team;
pub mod scope;

use crate::error::ApiError;

/// Why a write under an `Idempotency-Key` ended its transaction without storing: an
/// error, or a retry to answer from what the key recorded before (`R`, rolled back like
/// an error, so the sequence number it took is given back).
enum KeyedWriteStop<R> {
    Api(ApiError),
    Replay(R),
}

impl<R> From<diesel::result::Error> for KeyedWriteStop<R> {
    fn from(err: diesel::result::Error) -> Self {
        KeyedWriteStop::Api(err.into())
    }
}

impl<R> From<ApiError> for KeyedWriteStop<R> {
    fn from(err: ApiError) -> Self {
        KeyedWriteStop::Api(err)
    }
}
