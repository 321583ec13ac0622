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

/// Whether a user is on a patient's care team.
pub fn is_member(conn: &mut AnyConnection, patient_id: &str, user_id: &str) -> QueryResult<bool> {
    care_team::table
        .find((patient_id, user_id))
        .select(care_team::user_id)
        .first::<String>(conn)
        .optional()
        .map(|row| row.is_some())
}

/// Adds a member; `false` when already there.
pub fn assign(conn: &mut AnyConnection, row: &CareTeamRow) -> QueryResult<bool> {
    if is_member(conn, &row.patient_id, &row.user_id)? {
        return Ok(false);
    }
    diesel::insert_into(care_team::table)
        .values(row)
        .execute(conn)?;
    Ok(true)
}

/// Removes a member; `false` when not there.
pub fn unassign(conn: &mut AnyConnection, patient_id: &str, user_id: &str) -> QueryResult<bool> {
    diesel::delete(care_team::table.find((patient_id, user_id)))
        .execute(conn)
        .map(|n| n > 0)
}
