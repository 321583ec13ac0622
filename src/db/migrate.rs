//! Embedded migrations: run at `serve` start and by `vigil migrate`.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
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
            let applied = diesel::sql_query(PG_TABLES)
                .load::<Table>(pg)
                .map_err(MigrationError::from)
                .and_then(refuse_foreign)
                .and_then(|()| {
                    pg.run_pending_migrations(MIGRATIONS)
                        .map(|versions| versions.iter().map(ToString::to_string).collect())
                });
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<BigInt, _>(MIGRATION_LOCK)
                .execute(pg)?;
            applied?
        }
        // Taking the write lock first makes the check for pending migrations and their
        // application one step; the other instances wait in the busy handler.
        AnyConnection::Sqlite(lite) => lite.immediate_transaction(|lite| {
            refuse_foreign(diesel::sql_query(SQLITE_TABLES).load::<Table>(lite)?)?;
            lite.run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect())
        })?,
    };
    refuse_unknown(conn)?;
    Ok(applied)
}

/// Refuses an existing SQLite file that holds another application's tables before any
/// connection of Vigil's sets it up: the pool's connections switch the file to WAL mode
/// as they open, which an application reading it with an older SQLite, or from a
/// read-only directory, could then no longer open. Only the tables are read here; a file
/// that cannot be read is left to the pool's connection, which reports why.
pub fn refuse_foreign_sqlite_file(path: &str) -> Result<(), MigrationError> {
    use diesel::{Connection, SqliteConnection};
    if !std::path::Path::new(path).is_file() {
        return Ok(()); // created by the pool: nothing of anyone else's in it
    }
    let Ok(mut lite) = SqliteConnection::establish(path) else {
        return Ok(());
    };
    diesel::sql_query(SQLITE_TABLES)
        .load::<Table>(&mut lite)
        .map_or(Ok(()), refuse_foreign)
}

/// The tables of the database Vigil would migrate (SQLite's own left out).
const SQLITE_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";
/// The same on PostgreSQL: the schema Vigil's tables go into.
const PG_TABLES: &str = "SELECT table_name::text AS name FROM information_schema.tables \
     WHERE table_schema = current_schema() ORDER BY table_name";

/// A row of [`SQLITE_TABLES`] or [`PG_TABLES`].
#[derive(QueryableByName)]
struct Table {
    #[diesel(sql_type = Text)]
    name: String,
}

/// A database holding tables but no migration history is another application's (a
/// mistyped `DATABASE_URL`): it is refused before anything is written to it. Vigil
/// added its nine tables beside the other application's, or failed half-way on a
/// table name both use.
fn refuse_foreign(tables: Vec<Table>) -> Result<(), MigrationError> {
    let names: Vec<String> = tables.into_iter().map(|t| t.name).collect();
    if names.is_empty() || names.iter().any(|n| n == "__diesel_schema_migrations") {
        return Ok(());
    }
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    Err(format!(
        "the database holds tables of another application ({}{}) and no Vigil migration \
         history: give Vigil a database of its own (an empty one is set up at start)",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
    .into())
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
