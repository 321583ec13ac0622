//! Resolving a caller's allowed patients (needs the care-team table for clinical roles).

use std::collections::BTreeSet;

use diesel::QueryResult;

use crate::auth::Principal;
use crate::db::{AnyConnection, care_team};
use crate::domain::Role;
use crate::scope::Allowed;

/// The patients a caller may see, read inside an existing connection/transaction.
pub fn allowed_in(conn: &mut AnyConnection, principal: &Principal) -> QueryResult<Allowed> {
    Ok(match principal.role {
        Role::Admin => Allowed::All,
        Role::Patient => Allowed::Patients(
            principal
                .patient_id
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        ),
        Role::Service => Allowed::Patients(BTreeSet::new()),
        Role::Doctor | Role::Nurse | Role::Caregiver | Role::Dispatcher => Allowed::Patients(
            care_team::patients_of(conn, &principal.user_id)?
                .into_iter()
                .collect(),
        ),
    })
}
