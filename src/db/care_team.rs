//! Care-team assignments: which users may see which patients.

use diesel::prelude::*;

use super::models::CareTeamRow;
use super::pool::AnyConnection;
use super::schema::care_team;

/// Patients a user is assigned to, sorted.
pub fn patients_of(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<String>> {
    care_team::table
        .filter(care_team::user_id.eq(user_id))
        .select(care_team::patient_id)
        .order(care_team::patient_id.asc())
        .load(conn)
}

/// The patients of each of `users` (those without any are absent), read in batches of
/// 500 names so that the query stays within every backend's parameter limit.
pub fn patients_of_users(
    conn: &mut AnyConnection,
    users: &[String],
) -> QueryResult<std::collections::HashMap<String, std::collections::BTreeSet<String>>> {
    let mut teams: std::collections::HashMap<String, std::collections::BTreeSet<String>> =
        std::collections::HashMap::new();
    for batch in users.chunks(500) {
        let rows: Vec<(String, String)> = care_team::table
            .filter(care_team::user_id.eq_any(batch))
            .select((care_team::user_id, care_team::patient_id))
            .load(conn)?;
        for (user, patient) in rows {
            teams.entry(user).or_default().insert(patient);
        }
    }
    Ok(teams)
}

/// Members of a patient's care team, sorted by user.
pub fn members(conn: &mut AnyConnection, patient_id: &str) -> QueryResult<Vec<CareTeamRow>> {
    care_team::table
        .filter(care_team::patient_id.eq(patient_id))
        .select(CareTeamRow::as_select())
        .order(care_team::user_id.asc())
        .load(conn)
}

/// Adds a member; `false` when already there. One statement, not a check and an insert:
/// on PostgreSQL another instance can add the same member between the two, and the
/// second insert then failed on the primary key (a 500 for a request that had nothing
/// left to do). `ON CONFLICT` is backend syntax the MultiConnection does not carry, so
/// each backend is given the same insert.
pub fn assign(conn: &mut AnyConnection, row: &CareTeamRow) -> QueryResult<bool> {
    let insert = diesel::insert_into(care_team::table)
        .values(row)
        .on_conflict_do_nothing();
    let added = match conn {
        AnyConnection::Postgresql(pg) => insert.execute(pg)?,
        AnyConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
    };
    Ok(added > 0)
}

/// Removes a member; `false` when not there.
pub fn unassign(conn: &mut AnyConnection, patient_id: &str, user_id: &str) -> QueryResult<bool> {
    diesel::delete(care_team::table.find((patient_id, user_id)))
        .execute(conn)
        .map(|n| n > 0)
}
