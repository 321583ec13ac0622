//! Vigil: a real-time clinical alert hub.
//!
//! Map: [`routes`] (URL table, thin handlers) → [`service`] (use cases, one transaction
//! each) → [`db`] (diesel over SQLite or PostgreSQL). After commit, services hand events
//! to a [`hub::Broker`]; the [`hub::manager::AlertConnectionManager`] actor fans them out
//! to [`transport::sse`] streams and [`transport::ws`] sessions. [`auth`] verifies JWTs,
//! [`domain`] holds validated types and the role table, [`scope`] the patient scoping.
//! [`openapi`] is the generated OpenAPI 3.1 document of the HTTP API.

pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod hub;
pub mod link_security;
pub mod log_spec;
pub mod log_throttle;
pub mod log_value;
pub mod memory;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod scope;
pub mod service;
pub mod startup;
pub mod state;
pub mod stdout;
pub mod strict_json;
pub mod transport;
