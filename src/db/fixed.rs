//! Statements of fixed text that diesel keeps prepared.
//!
//! diesel prepares every `UPDATE` and every `sql_query` again at each run (it cannot
//! tell that their text never changes), and SQLite 3.47 and later re-prepare a
//! statement whose `LIMIT` is a bound value each time a value is bound to it. On the
//! SQLite writer that was a fifth of the thread's CPU per alert. A statement named here
//! is a type of its own, so diesel's statement cache keys it by that type and prepares
//! it once per connection.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl, sql_types::BigInt};

/// Declares a unit type whose SQL is `$sql`; with `returns`, it is a query of that SQL
/// type (for `get_result`), else a statement (for `execute`).
macro_rules! fixed_statement {
    ($(#[$doc:meta])* $name:ident = $sql:literal $(, returns $ty:ty)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, QueryId)]
        pub struct $name;

        impl<DB: Backend> QueryFragment<DB> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }

        impl<Conn> RunQueryDsl<Conn> for $name {}

        $(impl Query for $name {
            type SqlType = $ty;
        })?
    };
}

fixed_statement!(
    /// Moves the log's head one id on and returns it: one statement where an `UPDATE`
    /// and a `SELECT … LIMIT ?` were, neither of which diesel kept prepared.
    BumpHead = "UPDATE event_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, care_team_version",
    returns (BigInt, BigInt)
);

fixed_statement!(
    /// Moves the care teams' version one on and returns the log's head and the new
    /// version: one per care-team change, under the head's lock, so that every event
    /// written after the change sees it (see [`super::events::next_seq`]).
    BumpCareTeamVersion = "UPDATE event_head SET care_team_version = care_team_version + 1 \
                           WHERE id = 1 RETURNING seq, care_team_version",
    returns (BigInt, BigInt)
);

fixed_statement!(
    /// The care teams' version (0 before any change).
    CareTeamVersion = "SELECT care_team_version FROM event_head WHERE id = 1",
    returns BigInt
);

fixed_statement!(
    /// The newest id handed out (0 when the log is empty), read where a `SELECT … LIMIT ?`
    /// was re-prepared at each read.
    Head = "SELECT seq FROM event_head WHERE id = 1",
    returns BigInt
);

fixed_statement!(
    /// Takes SQLite's write lock at the start of a writer's batch, changing nothing (see
    /// the writer's batch module for why). SQLite only: PostgreSQL refuses `WHERE 0`.
    TakeWriteLock = "UPDATE event_head SET seq = seq WHERE 0"
);
