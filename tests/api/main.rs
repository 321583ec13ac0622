//! Black-box API tests: one binary, one module per feature area.

// A failed expectation is the test's verdict; helpers panic with a message on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod binary;
mod helpers;
mod servers;

mod cluster;
#[cfg(not(feature = "tls"))]
mod no_tls;
#[cfg(feature = "tls")]
mod tls;

mod smoke;

mod bench;
mod dev_mode;

mod acknowledge;
mod alerts;
mod auth;
mod care_team;
mod hardening;
mod health;
mod roles;

mod replay;
mod retention;
mod shutdown;
mod stream_sse;
mod ws_legacy;
mod ws_resume;

mod cors;
mod limits;
mod openapi;
mod tracing;
mod watch;
mod writes;
