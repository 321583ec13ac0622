//! Use cases. Handlers (HTTP and WebSocket alike) call these; they hold the business
//! rules, run the database work in one transaction, and publish after commit.

pub mod acks;
pub mod alerts;
pub mod care_team;
pub mod scope;
