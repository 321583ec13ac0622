//! The request body, bounded in time as the head is.
//!
//! actix-http times out only the request head. A client that sends a complete head and
//! then trickles its body, or stops half-way, would keep its connection and the handler
//! waiting for good: a few hundred such requests use up the open files, and then a
//! producer's alert cannot get in.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::error::ApiError;
use crate::state::AppState;

/// A request body that arrived whole within `VIGIL_REQUEST_TIMEOUT_SECS` of its head;
/// otherwise the request is answered 408 and its connection closed.
pub struct TimedBody(pub web::Bytes);

impl std::ops::Deref for TimedBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for TimedBody {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let read = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let Some(state) = state else {
                return read.await.map(TimedBody);
            };
            let deadline = state.config.request_timeout;
            match actix_web::rt::time::timeout(deadline, read).await {
                Ok(body) => body.map(TimedBody),
                Err(_) => {
                    state
                        .metrics
                        .limit_rejections
                        .with_label_values(&["body_timeout"])
                        .inc();
                    Err(ApiError::BodyTimeout(deadline).into())
                }
            }
        })
    }
}
