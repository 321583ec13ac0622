//! SQLite's own consistency check, for the offline restore step (`vigil migrate
//! --skip-ids`). A backup copied over `vigil.db` while a crashed server's `vigil.db-wal`
//! was still beside it has that log replayed onto the backup's pages when the file is
//! next opened: the database is corrupt, yet it opens, answers readiness and takes
//! writes, and fails only when a read reaches a damaged page (an outside audit: a 500 on
//! the alert list, a replay cut off). Said at the restore step, it costs one read of the
//! file while nothing else runs, and the backup can still be copied again.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};

/// How many of SQLite's findings are quoted (there can be thousands); the first already
/// tells what is wrong.
const QUOTED: usize = 3;

#[derive(QueryableByName)]
struct Finding {
    #[diesel(sql_type = Text)]
    quick_check: String,
}

/// [`quick_check`] of the SQLite database at `url`, before anything (migrations
/// included) writes to it; `Ok` for PostgreSQL, for a path that is no file (yet), and for
/// a file SQLite cannot open or read as a database at all: the open that follows names
/// those precisely (a directory, another application's file), not as damage.
pub fn check_before_use(url: &str) -> Result<(), String> {
    use diesel::Connection;
    if super::pool::is_postgres(url) {
        return Ok(());
    }
    let path = super::pool::sqlite_path(url);
    if !std::path::Path::new(path).is_file() {
        return Ok(());
    }
    let Ok(mut conn) = SqliteConnection::establish(path) else {
        return Ok(());
    };
    match quick_check(&mut conn) {
        // SQLite reports some damage as an error of the check itself ("malformed").
        Err(failed) if failed.starts_with(CHECK_FAILED) && !failed.contains("malformed") => Ok(()),
        checked => checked,
    }
}

/// How [`quick_check`] says the check itself failed.
const CHECK_FAILED: &str = "PRAGMA quick_check failed";

/// `Err` with SQLite's first findings when `PRAGMA quick_check` finds the file damaged.
pub fn quick_check(conn: &mut SqliteConnection) -> Result<(), String> {
    let findings: Vec<Finding> = diesel::sql_query("PRAGMA quick_check")
        .load(conn)
        .map_err(|e| format!("{CHECK_FAILED}: {e}"))?;
    match findings.as_slice() {
        [only] if only.quick_check == "ok" => Ok(()),
        // A row may hold many findings, one per line.
        _ => Err(findings
            .iter()
            .flat_map(|f| f.quick_check.lines())
            .filter(|line| !line.starts_with("***"))
            .take(QUOTED)
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use diesel::Connection;

    use super::*;

    #[test]
    fn a_sound_database_passes() {
        let mut conn = SqliteConnection::establish(":memory:").expect("sqlite");
        diesel::sql_query("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)")
            .execute(&mut conn)
            .expect("create");
        assert_eq!(quick_check(&mut conn), Ok(()));
    }

    #[test]
    fn a_damaged_page_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("damaged.db");
        let url = path.to_str().expect("utf-8 path");
        {
            let mut conn = SqliteConnection::establish(url).expect("sqlite");
            diesel::sql_query("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)")
                .execute(&mut conn)
                .expect("create");
            diesel::sql_query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
                 INSERT INTO t SELECT i, printf('%0100d', i) FROM n",
            )
            .execute(&mut conn)
            .expect("fill");
        }
        // The header of the table's third page, as a foreign log's frame would leave it.
        let mut bytes = std::fs::read(&path).expect("read");
        let page = 4096 * 2;
        bytes[page..page + 16].copy_from_slice(&[0xff; 16]);
        std::fs::write(&path, bytes).expect("write");

        let mut conn = SqliteConnection::establish(url).expect("sqlite");
        // SQLite reports this damage as an error of the check itself.
        let findings = quick_check(&mut conn).expect_err("damaged");
        assert!(findings.contains("malformed"), "{findings}");
    }
}
