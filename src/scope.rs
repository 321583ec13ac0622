//! Which patients a caller may see (allowed) and which they asked for (requested).
//! Kept apart, as Mercure does: a stream's effective scope is the intersection, so a
//! care-team change can narrow or widen it live without the client asking again.

use std::collections::BTreeSet;

use crate::domain::{PatientId, Role};
use crate::error::ApiError;

/// The seed-era `role` query parameter (DESIGN.md, "Roles"): it may only narrow to a role
/// the token holds, so anything but the token's own role is 403; an unknown role is 422.
pub fn check_role_param(holds: Role, asked: Option<&str>) -> Result<(), ApiError> {
    let Some(asked) = asked.filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let asked: Role = asked
        .parse()
        .map_err(|m: String| ApiError::invalid("role", m))?;
    if asked != holds {
        return Err(ApiError::Forbidden(format!(
            "your token holds role {holds}, not {asked}"
        )));
    }
    Ok(())
}

/// What a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Every patient (admin).
    All,
    /// These patients (own id for `patient`, the care team for clinical roles).
    Patients(BTreeSet<String>),
}

impl Allowed {
    /// Whether a patient is visible.
    pub fn contains(&self, patient_id: &str) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Patients(set) => set.contains(patient_id),
        }
    }
}

/// What a caller asked for (`patient_id` query, WebSocket `subscribe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Nothing named: every patient the caller may see, following care-team changes.
    Everything,
    /// `*` (admin only).
    Wildcard,
    /// These patients.
    Patients(BTreeSet<String>),
}

impl Requested {
    /// Parses `patient_id` values (each may be a comma list). Empty → [`Requested::Everything`].
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, ApiError> {
        let mut patients = BTreeSet::new();
        let mut wildcard = false;
        for raw in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            if raw.is_empty() {
                continue;
            }
            if raw == "*" {
                wildcard = true;
                continue;
            }
            let id = PatientId::parse(raw).map_err(|m| ApiError::invalid("patient_id", m))?;
            patients.insert(id.as_str().to_owned());
        }
        Ok(match (wildcard, patients.is_empty()) {
            (true, _) => Requested::Wildcard,
            (false, true) => Requested::Everything,
            (false, false) => Requested::Patients(patients),
        })
    }

    /// Checks the request against the role and allowed set: the wildcard is admin-only
    /// and every named patient must be allowed; otherwise 403 (never an empty stream).
    pub fn authorize(&self, role: Role, allowed: &Allowed) -> Result<(), ApiError> {
        match self {
            Requested::Everything => Ok(()),
            Requested::Wildcard if role.may_use_wildcard() => Ok(()),
            Requested::Wildcard => Err(ApiError::Forbidden(format!(
                "role {role} may not subscribe to every patient (`*` is admin-only)"
            ))),
            Requested::Patients(set) => match set.iter().find(|p| !allowed.contains(p)) {
                None => Ok(()),
                Some(p) => Err(ApiError::Forbidden(format!(
                    "patient {p} is outside your scope"
                ))),
            },
        }
    }

    /// The effective patients: `None` means every patient.
    pub fn effective(&self, allowed: &Allowed) -> Option<BTreeSet<String>> {
        match (self, allowed) {
            (Requested::Wildcard, _) | (Requested::Everything, Allowed::All) => None,
            (Requested::Everything, Allowed::Patients(set)) => Some(set.clone()),
            (Requested::Patients(req), Allowed::All) => Some(req.clone()),
            (Requested::Patients(req), Allowed::Patients(set)) => {
                Some(req.intersection(set).cloned().collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn repeated_and_comma_separated_ids_are_merged() {
        let r = Requested::parse(["1,2", "3", " 2 "]).expect("parses");
        assert_eq!(r, Requested::Patients(set(&["1", "2", "3"])));
        assert_eq!(Requested::parse([]).ok(), Some(Requested::Everything));
        assert_eq!(Requested::parse(["*"]).ok(), Some(Requested::Wildcard));
        assert!(Requested::parse(["a b"]).is_err(), "malformed id");
    }

    #[test]
    fn the_wildcard_is_admin_only() {
        for role in Role::all() {
            let ok = Requested::Wildcard.authorize(role, &Allowed::All).is_ok();
            assert_eq!(ok, role == Role::Admin, "{role} and `*`");
        }
    }

    #[test]
    fn a_patient_outside_the_allowed_set_is_forbidden() {
        let allowed = Allowed::Patients(set(&["1", "2"]));
        assert!(
            Requested::Patients(set(&["1"]))
                .authorize(Role::Nurse, &allowed)
                .is_ok()
        );
        assert!(
            Requested::Patients(set(&["1", "3"]))
                .authorize(Role::Nurse, &allowed)
                .is_err()
        );
    }

    #[test]
    fn effective_scope_follows_the_allowed_set() {
        let allowed = Allowed::Patients(set(&["1", "2"]));
        assert_eq!(
            Requested::Everything.effective(&allowed),
            Some(set(&["1", "2"]))
        );
        assert_eq!(
            Requested::Patients(set(&["2", "9"])).effective(&allowed),
            Some(set(&["2"]))
        );
        assert_eq!(Requested::Wildcard.effective(&allowed), None);
        assert_eq!(Requested::Everything.effective(&Allowed::All), None);
    }
}
