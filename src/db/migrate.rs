//! Embedded migrations: run at `serve` start and by `vigil migrate`.

use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::pool::AnyConnection;

/// All migrations, compiled into the binary; the SQL is shared by both backends.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

type MigrationError = Box<dyn std::error::Error + Send + Sync>;

/// The PostgreSQL advisory lock instances hold while they migrate; any fixed number,
/// the same in every Vigil ("Vigil" in ASCII).
const MIGRATION_LOCK: i64 = 0x56_69_67_69_6c;

/// Applies pending migrations; returns the versions applied.
///
/// Instances of one deployment start together and each migrates at start: one applies
/// the migrations while the others wait for it and then find nothing to do. Unguarded,
/// the others failed on objects the first had just created.
pub fn run_pending(conn: &mut AnyConnection) -> Result<Vec<String>, MigrationError> {
    let applied = match conn {
        // A session lock: released by the unlock below, or by the server if this
        // process dies holding it.
        AnyConnection::Postgresql(pg) => {
            diesel::sql_query("SELECT pg_advisory_lock($1)")
                .bind::<BigInt, _>(MIGRATION_LOCK)
                .execute(pg)?;
            let applied = pg
                .run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect());
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<BigInt, _>(MIGRATION_LOCK)
                .execute(pg)?;
            applied?
        }
        // Taking the write lock first makes the check for pending migrations and their
        // application one step; the other instances wait in the busy handler.
        AnyConnection::Sqlite(lite) => lite.immediate_transaction(|lite| {
            lite.run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect())
        })?,
    };
    refuse_unknown(conn)?;
    Ok(applied)
}

/// A database a newer Vigil has migrated (this binary rolled back onto it) holds a
/// schema this one was not written for: it is refused, naming the migrations, rather
/// than served as if nothing were different.
fn refuse_unknown(conn: &mut AnyConnection) -> Result<(), MigrationError> {
    use diesel::migration::MigrationSource;
    let known: Vec<String> = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&MIGRATIONS)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let unknown: Vec<String> = conn
        .applied_migrations()?
        .iter()
        .map(ToString::to_string)
        .filter(|v| !known.contains(v))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the database has migrations this Vigil does not know ({}): a newer version \
             migrated it; run that version, or restore a backup taken before it",
            unknown.join(", ")
        )
        .into())
    }
}

/// Reverts every applied migration (used by the migration round-trip test).
pub fn revert_all(conn: &mut AnyConnection) -> Result<Vec<String>, MigrationError> {
    let reverted = conn.revert_all_migrations(MIGRATIONS)?;
    Ok(reverted.iter().map(ToString::to_string).collect())
}
