//! The seven roles and their permission table (DESIGN.md, "Roles"). Every permission
//! decision in Vigil is one of these methods, so the table lives in exactly one place.

use std::fmt;
use std::str::FromStr;

use super::AckStatus;

/// A caller's role, from the JWT `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, including the `*` wildcard, stats and care teams.
    Admin,
    /// Clinician on a care team.
    Doctor,
    /// Clinician on a care team.
    Nurse,
    /// Family or carer on a care team: may acknowledge and escalate, not resolve.
    Caregiver,
    /// Raises alerts for any patient (creating is not care-team scoped); sees, acknowledges
    /// and escalates only its care team's patients; does not resolve.
    Dispatcher,
    /// Sees only their own `patient_id` claim; read-only.
    Patient,
    /// A machine (analyser, gateway): raises alerts only.
    Service,
}

impl Role {
    /// What the `role` claim must say (exactly: parsing is case-sensitive), and the
    /// `role` label of metrics, stats and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Doctor => "doctor",
            Role::Nurse => "nurse",
            Role::Caregiver => "caregiver",
            Role::Dispatcher => "dispatcher",
            Role::Patient => "patient",
            Role::Service => "service",
        }
    }

    /// In the order of DESIGN.md's table. Parsing, the per-role metric series (created
    /// at zero) and the stats' per-role counts all list roles from here, so none is missed.
    pub fn all() -> [Role; 7] {
        [
            Role::Admin,
            Role::Doctor,
            Role::Nurse,
            Role::Caregiver,
            Role::Dispatcher,
            Role::Patient,
            Role::Service,
        ]
    }

    /// May read alerts and open streams at all (everyone but `service`).
    pub fn may_subscribe(self) -> bool {
        self != Role::Service
    }

    /// Scope comes from the care-team table (doctor, nurse, caregiver, dispatcher).
    pub fn uses_care_team(self) -> bool {
        matches!(
            self,
            Role::Doctor | Role::Nurse | Role::Caregiver | Role::Dispatcher
        )
    }

    /// May use the `*` wildcard (admin only).
    pub fn may_use_wildcard(self) -> bool {
        self == Role::Admin
    }

    /// May acknowledge at all.
    pub fn may_acknowledge(self) -> bool {
        !matches!(self, Role::Patient | Role::Service)
    }

    /// May set the given acknowledgment status.
    pub fn may_set(self, status: AckStatus) -> bool {
        match status {
            AckStatus::Acknowledged | AckStatus::Escalated => self.may_acknowledge(),
            AckStatus::Resolved => self.may_resolve(),
        }
    }

    /// May resolve (admin, doctor, nurse).
    pub fn may_resolve(self) -> bool {
        matches!(self, Role::Admin | Role::Doctor | Role::Nurse)
    }

    /// May raise alerts (service, dispatcher, admin).
    pub fn may_create(self) -> bool {
        matches!(self, Role::Service | Role::Dispatcher | Role::Admin)
    }

    /// May read stats and manage care teams (admin).
    pub fn may_administer(self) -> bool {
        self == Role::Admin
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::all()
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md's table, row by row: subscribe, acknowledge, resolve, create, administer.
    #[test]
    fn the_permission_table_matches_the_design() {
        let table = [
            (Role::Admin, true, true, true, true, true),
            (Role::Doctor, true, true, true, false, false),
            (Role::Nurse, true, true, true, false, false),
            (Role::Caregiver, true, true, false, false, false),
            (Role::Dispatcher, true, true, false, true, false),
            (Role::Patient, true, false, false, false, false),
            (Role::Service, false, false, false, true, false),
        ];
        for (role, sub, ack, resolve, create, admin) in table {
            assert_eq!(role.may_subscribe(), sub, "{role} subscribe");
            assert_eq!(role.may_acknowledge(), ack, "{role} acknowledge");
            assert_eq!(role.may_set(AckStatus::Escalated), ack, "{role} escalate");
            assert_eq!(role.may_resolve(), resolve, "{role} resolve");
            assert_eq!(
                role.may_set(AckStatus::Resolved),
                resolve,
                "{role} resolve via ack"
            );
            assert_eq!(role.may_create(), create, "{role} create");
            assert_eq!(role.may_administer(), admin, "{role} administer");
            assert_eq!(role.may_use_wildcard(), admin, "{role} wildcard");
        }
    }

    #[test]
    fn role_names_round_trip_and_unknown_ones_fail() {
        for role in Role::all() {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("superuser".parse::<Role>().is_err());
        assert!("Admin".parse::<Role>().is_err(), "names are case-sensitive");
    }
}
