//! Resolving a caller's allowed patients (needs the care-team table for clinical roles).

use std::collections::BTreeSet;

use diesel::QueryResult;

use crate::auth::Principal;
use crate::db::{AnyConnection, care_team};
use crate::domain::Role;
use crate::scope::Allowed;

/// The caller's scope when the token alone decides it (admin, patient, service), so a
/// stream can open without a database round trip; `None` for care-team roles.
pub fn allowed_by_token(principal: &Principal) -> Option<Allowed> {
    match principal.role {
        Role::Admin => Some(Allowed::All),
        Role::Patient => Some(Allowed::Patients(
            principal
                .patient_id
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        )),
        Role::Service => Some(Allowed::Patients(BTreeSet::new())),
        Role::Doctor | Role::Nurse | Role::Caregiver | Role::Dispatcher => None,
    }
}

/// [`allowed_in`] for a stream's registration, with the care teams' version read just
/// before when the scope comes from the care team (`hub::messages::Connect`).
pub fn allowed_with_version(
    conn: &mut AnyConnection,
    principal: &Principal,
) -> QueryResult<(Allowed, Option<i64>)> {
    let version = if principal.role.uses_care_team() {
        Some(crate::db::events::care_team_version(conn)?)
    } else {
        None
    };
    Ok((allowed_in(conn, principal)?, version))
}

/// The patients a caller may see, read inside an existing connection/transaction.
pub fn allowed_in(conn: &mut AnyConnection, principal: &Principal) -> QueryResult<Allowed> {
    if let Some(allowed) = allowed_by_token(principal) {
        return Ok(allowed);
    }
    Ok(Allowed::Patients(
        care_team::patients_of(conn, &principal.user_id)?
            .into_iter()
            .collect(),
    ))
}
