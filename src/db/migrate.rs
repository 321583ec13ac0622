//! Embedded migrations: run at `serve` start and by `vigil migrate`.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::pool::AnyConnection;

/// All migrations, compiled into the binary; the SQL is shared by both backends.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Applies pending migrations; returns the versions applied.
pub fn run_pending(
    conn: &mut AnyConnection,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let applied = conn.run_pending_migrations(MIGRATIONS)?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Reverts every applied migration (used by the migration round-trip test).
pub fn revert_all(
    conn: &mut AnyConnection,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let reverted = conn.revert_all_migrations(MIGRATIONS)?;
    Ok(reverted.iter().map(ToString::to_string).collect())
}
