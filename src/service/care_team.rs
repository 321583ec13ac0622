//! Care-team administration; every change is published so open streams rescope at once.

use diesel::Connection;
use serde::Serialize;

use crate::auth::Principal;
use crate::db::models::CareTeamRow;
use crate::db::{self, care_team};
use crate::domain::{PatientId, format_millis, now_millis};
use crate::error::ApiError;
use crate::hub::event::CareTeamChange;
use crate::state::AppState;

/// One member as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// User (`sub`).
    pub user_id: String,
    /// When assigned (RFC 3339).
    pub created_at: String,
}

/// A patient's care team.
#[derive(Debug, Clone, Serialize)]
pub struct CareTeam {
    /// Patient.
    pub patient_id: String,
    /// Members, sorted by user id.
    pub members: Vec<Member>,
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.role.may_administer() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "role {} may not manage care teams",
            principal.role
        )))
    }
}

/// Validates a user id from the path (a 422 names `user_id`).
pub fn parse_user_id(raw: &str) -> Result<String, ApiError> {
    parse_user_id_in("user_id", raw)
}

/// Validates a user id found at `field` (e.g. `user_ids[2]` of a body), naming it in a 422.
pub fn parse_user_id_in(field: &str, raw: &str) -> Result<String, ApiError> {
    // Characters, not bytes, as the OpenAPI document's maxLength counts them.
    if crate::domain::is_user_id(raw) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1-128 printable characters of valid UTF-8 (percent-encoded in a URL), none invisible and no white space at either end, not \".\" or \"..\"",
        ))
    }
}

/// The care team of a patient.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    patient: PatientId,
) -> Result<CareTeam, ApiError> {
    require_admin(principal)?;
    db::run(&state.pool, move |conn| {
        Ok(to_team(
            patient.as_str(),
            care_team::members(conn, patient.as_str())?,
        ))
    })
    .await
}

/// Adds one member; `true` when newly added.
pub async fn assign(
    state: &AppState,
    principal: &Principal,
    patient: PatientId,
    user_id: String,
) -> Result<(Member, bool), ApiError> {
    require_admin(principal)?;
    let (p, u) = (patient.clone(), user_id.clone());
    let (row, created) = state
        .writer
        .write_care_team(&state.broker, &state.care_teams_seen, move |conn| {
            let row = CareTeamRow {
                patient_id: p.as_str().to_owned(),
                user_id: u,
                created_at: now_millis(),
            };
            let created = care_team::assign(conn, &row)?;
            let changes = created
                .then(|| change(&row.user_id, &row.patient_id, true))
                .into_iter()
                .collect();
            let stored = care_team::members(conn, p.as_str())?
                .into_iter()
                .find(|m| m.user_id == row.user_id)
                .unwrap_or(row);
            Ok(((stored, created), changes))
        })
        .await?;
    Ok((
        Member {
            user_id: row.user_id,
            created_at: format_millis(row.created_at),
        },
        created,
    ))
}

/// Removes one member; 404 when not a member.
pub async fn unassign(
    state: &AppState,
    principal: &Principal,
    patient: PatientId,
    user_id: String,
) -> Result<(), ApiError> {
    require_admin(principal)?;
    let (p, u) = (patient.clone(), user_id.clone());
    let removed = state
        .writer
        .write_care_team(&state.broker, &state.care_teams_seen, move |conn| {
            let removed = care_team::unassign(conn, p.as_str(), &u)?;
            let changes = removed
                .then(|| change(&u, p.as_str(), false))
                .into_iter()
                .collect();
            Ok((removed, changes))
        })
        .await?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "{user_id} is not on the care team of patient {patient}"
        )));
    }
    Ok(())
}

/// Replaces the whole team with `user_ids`.
pub async fn replace(
    state: &AppState,
    principal: &Principal,
    patient: PatientId,
    user_ids: Vec<String>,
) -> Result<CareTeam, ApiError> {
    require_admin(principal)?;
    let p = patient.clone();
    state
        .writer
        .write_care_team(&state.broker, &state.care_teams_seen, move |conn| {
            conn.transaction::<_, ApiError, _>(|c| {
                // Read, then changed: two replacements at once on two instances both read
                // the old team and each added its own list.
                db::events::lock_head(c)?;
                let before = care_team::members(c, p.as_str())?;
                let mut changes = Vec::new();
                for old in &before {
                    if !user_ids.contains(&old.user_id) {
                        care_team::unassign(c, p.as_str(), &old.user_id)?;
                        changes.push(change(&old.user_id, p.as_str(), false));
                    }
                }
                let now = now_millis();
                for user in &user_ids {
                    let row = CareTeamRow {
                        patient_id: p.as_str().to_owned(),
                        user_id: user.clone(),
                        created_at: now,
                    };
                    if care_team::assign(c, &row)? {
                        changes.push(change(user, p.as_str(), true));
                    }
                }
                Ok((
                    to_team(p.as_str(), care_team::members(c, p.as_str())?),
                    changes,
                ))
            })
        })
        .await
}

/// The change the manager is handed once the write commits.
fn change(user_id: &str, patient_id: &str, assigned: bool) -> CareTeamChange {
    CareTeamChange {
        user_id: user_id.to_owned(),
        patient_id: patient_id.to_owned(),
        assigned,
        // Set by the writer once the write has run (`Writer::write_care_team`).
        after_seq: 0,
        version: 0,
    }
}

fn to_team(patient_id: &str, rows: Vec<CareTeamRow>) -> CareTeam {
    CareTeam {
        patient_id: patient_id.to_owned(),
        members: rows
            .into_iter()
            .map(|r| Member {
                user_id: r.user_id,
                created_at: format_millis(r.created_at),
            })
            .collect(),
    }
}
