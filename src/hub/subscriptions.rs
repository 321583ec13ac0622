//! The subscription table: pure data, no actix, so it can be tested exhaustively.
//! Each entry keeps what the client asked for apart from what it is allowed; the
//! index from patient to connections is rebuilt for an entry whenever either changes.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::domain::Role;
use crate::scope::{Allowed, Requested};

/// Connection id: from a per-instance monotonic counter, never random.
pub type ConnId = u64;

/// One subscriber's scope.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The token's `sub`, matched against a care-team change's user to find the entries
    /// it rescopes.
    pub user_id: String,
    /// Only care-team roles follow care-team changes and read-backs; an admin's or a
    /// patient's scope comes from the token and never moves.
    pub role: Role,
    /// What the client asked for.
    pub requested: Requested,
    /// What it may see (live for care-team roles).
    pub allowed: Allowed,
}

impl Entry {
    /// Effective patients; `None` = every patient.
    pub fn effective(&self) -> Option<BTreeSet<String>> {
        self.requested.effective(&self.allowed)
    }
}

/// How a care-team change altered one stream's patients. Sent to the client
/// (`scope_changed`) because the change does not show in the events that follow: a
/// newly assigned patient's alerts that are already open, say, were raised before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeChange {
    /// The stream's patients now.
    pub patients: Vec<String>,
    /// Patients it gained.
    pub added: Vec<String>,
    /// Patients it lost.
    pub removed: Vec<String>,
}

impl ScopeChange {
    fn between(before: &BTreeSet<String>, after: BTreeSet<String>) -> Self {
        ScopeChange {
            added: after.difference(before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            patients: after.into_iter().collect(),
        }
    }
}

/// All subscriptions of one instance.
#[derive(Debug, Default)]
pub struct Subscriptions {
    entries: HashMap<ConnId, Entry>,
    by_patient: HashMap<String, HashSet<ConnId>>,
    everything: HashSet<ConnId>,
}

impl Subscriptions {
    /// Adds (or replaces) a subscriber.
    pub fn insert(&mut self, id: ConnId, entry: Entry) {
        self.unindex(id);
        self.entries.insert(id, entry);
        self.index(id);
    }

    /// Removes a subscriber; returns its entry.
    pub fn remove(&mut self, id: ConnId) -> Option<Entry> {
        self.unindex(id);
        self.entries.remove(&id)
    }

    /// Gives back the room of removed subscribers (after a wave of closed streams).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.by_patient.shrink_to_fit();
        self.everything.shrink_to_fit();
    }

    /// A subscriber's entry.
    pub fn get(&self, id: ConnId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Replaces what a subscriber asked for (WebSocket `subscribe`), with a fresh allowed set.
    pub fn resubscribe(&mut self, id: ConnId, requested: Requested, allowed: Allowed) {
        self.unindex(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.requested = requested;
            entry.allowed = allowed;
        }
        self.index(id);
    }

    /// Applies a care-team change to every care-team-scoped subscriber of that user, and
    /// answers the subscribers whose patients it changed, with how.
    pub fn care_team_changed(
        &mut self,
        user_id: &str,
        patient_id: &str,
        assigned: bool,
    ) -> Vec<(ConnId, ScopeChange)> {
        self.change_care_team(user_id, |set| {
            if assigned {
                set.insert(patient_id.to_owned());
            } else {
                set.remove(patient_id);
            }
        })
    }

    /// Replaces the allowed patients of every care-team-scoped subscriber of `user_id`
    /// (the care team as read from the database), and answers the subscribers whose
    /// patients that changed, with how.
    pub fn care_team_is(
        &mut self,
        user_id: &str,
        patients: &BTreeSet<String>,
    ) -> Vec<(ConnId, ScopeChange)> {
        self.change_care_team(user_id, |set| set.clone_from(patients))
    }

    /// Applies `change` to the allowed patients of each care-team-scoped subscriber of
    /// `user_id`, re-indexing it; answers those whose effective patients moved.
    fn change_care_team(
        &mut self,
        user_id: &str,
        change: impl Fn(&mut BTreeSet<String>),
    ) -> Vec<(ConnId, ScopeChange)> {
        let ids: Vec<ConnId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.user_id == user_id && e.role.uses_care_team())
            .map(|(id, _)| *id)
            .collect();
        let mut changed = Vec::new();
        for id in ids {
            let before = self.entries.get(&id).and_then(Entry::effective);
            self.unindex(id);
            if let Some(Entry {
                allowed: Allowed::Patients(set),
                ..
            }) = self.entries.get_mut(&id)
            {
                change(set);
            }
            self.index(id);
            let after = self.entries.get(&id).and_then(Entry::effective);
            if let (Some(before), Some(after)) = (before, after)
                && before != after
            {
                changed.push((id, ScopeChange::between(&before, after)));
            }
        }
        changed
    }

    /// Users with a care-team-scoped subscriber (whose scope the care team decides).
    pub fn care_team_users(&self) -> Vec<(String, Role)> {
        let mut users: Vec<(String, Role)> = self
            .entries
            .values()
            .filter(|e| e.role.uses_care_team())
            .map(|e| (e.user_id.clone(), e.role))
            .collect();
        users.sort();
        users.dedup_by(|a, b| a.0 == b.0);
        users
    }

    /// Subscribers that should receive an event about `patient_id`.
    pub fn matching<'a>(&'a self, patient_id: &str) -> impl Iterator<Item = ConnId> + 'a {
        let specific = self.by_patient.get(patient_id).into_iter().flatten();
        self.everything.iter().chain(specific).copied()
    }

    /// Number of subscribers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn index(&mut self, id: ConnId) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        match entry.effective() {
            None => {
                self.everything.insert(id);
            }
            Some(patients) => {
                for p in patients {
                    self.by_patient.entry(p).or_default().insert(id);
                }
            }
        }
    }

    fn unindex(&mut self, id: ConnId) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        match entry.effective() {
            None => {
                self.everything.remove(&id);
            }
            Some(patients) => {
                for p in patients {
                    if let Some(set) = self.by_patient.get_mut(&p) {
                        set.remove(&id);
                        if set.is_empty() {
                            self.by_patient.remove(&p);
                        }
                    }
                }
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

    fn entry(user: &str, role: Role, requested: Requested, allowed: Allowed) -> Entry {
        Entry {
            user_id: user.to_owned(),
            role,
            requested,
            allowed,
        }
    }

    fn matched(subs: &Subscriptions, patient: &str) -> BTreeSet<ConnId> {
        subs.matching(patient).collect()
    }

    #[test]
    fn events_reach_exactly_the_matching_subscribers() {
        let mut subs = Subscriptions::default();
        subs.insert(
            1,
            entry("admin", Role::Admin, Requested::Wildcard, Allowed::All),
        );
        subs.insert(
            2,
            entry(
                "n1",
                Role::Nurse,
                Requested::Everything,
                Allowed::Patients(set(&["a", "b"])),
            ),
        );
        subs.insert(
            3,
            entry(
                "n2",
                Role::Nurse,
                Requested::Patients(set(&["b"])),
                Allowed::Patients(set(&["a", "b"])),
            ),
        );
        subs.insert(
            4,
            entry(
                "p",
                Role::Patient,
                Requested::Everything,
                Allowed::Patients(set(&["c"])),
            ),
        );
        assert_eq!(matched(&subs, "a"), [1, 2].into());
        assert_eq!(matched(&subs, "b"), [1, 2, 3].into());
        assert_eq!(matched(&subs, "c"), [1, 4].into());
        assert_eq!(matched(&subs, "z"), [1].into());
    }

    #[test]
    fn a_removed_subscriber_receives_nothing() {
        let mut subs = Subscriptions::default();
        subs.insert(
            7,
            entry(
                "n",
                Role::Nurse,
                Requested::Everything,
                Allowed::Patients(set(&["a"])),
            ),
        );
        assert!(subs.remove(7).is_some());
        assert!(matched(&subs, "a").is_empty());
        assert!(subs.is_empty());
    }

    #[test]
    fn care_team_changes_rescope_live_streams() {
        let mut subs = Subscriptions::default();
        subs.insert(
            1,
            entry(
                "n",
                Role::Nurse,
                Requested::Everything,
                Allowed::Patients(set(&["a"])),
            ),
        );
        subs.insert(
            2,
            entry(
                "n",
                Role::Nurse,
                Requested::Patients(set(&["a"])),
                Allowed::Patients(set(&["a"])),
            ),
        );
        subs.insert(
            3,
            entry(
                "other",
                Role::Nurse,
                Requested::Everything,
                Allowed::Patients(set(&["a"])),
            ),
        );
        let change = |patients: &[&str], added: &[&str], removed: &[&str]| ScopeChange {
            patients: patients.iter().map(|p| p.to_string()).collect(),
            added: added.iter().map(|p| p.to_string()).collect(),
            removed: removed.iter().map(|p| p.to_string()).collect(),
        };
        let sorted = |mut changes: Vec<(ConnId, ScopeChange)>| {
            changes.sort_by_key(|(id, _)| *id);
            changes
        };
        let changed = subs.care_team_changed("n", "b", true);
        assert_eq!(
            matched(&subs, "b"),
            [1].into(),
            "only the stream that asked for everything widens"
        );
        assert_eq!(
            changed,
            vec![(1, change(&["a", "b"], &["b"], &[]))],
            "and only it is told"
        );
        let changed = subs.care_team_changed("n", "a", false);
        assert_eq!(
            matched(&subs, "a"),
            [3].into(),
            "removal narrows both of n's streams"
        );
        assert_eq!(
            sorted(changed),
            vec![
                (1, change(&["b"], &[], &["a"])),
                (2, change(&[], &[], &["a"]))
            ]
        );
        let changed = subs.care_team_changed("n", "a", true);
        assert_eq!(
            matched(&subs, "a"),
            [1, 2, 3].into(),
            "re-adding restores the explicit request"
        );
        assert_eq!(
            sorted(changed),
            vec![
                (1, change(&["a", "b"], &["a"], &[])),
                (2, change(&["a"], &["a"], &[]))
            ]
        );
        assert!(
            subs.care_team_changed("n", "a", true).is_empty(),
            "assigning again changes nothing"
        );
    }

    #[test]
    fn a_care_team_read_back_corrects_only_the_streams_that_differ() {
        let mut subs = Subscriptions::default();
        subs.insert(
            1,
            entry(
                "n",
                Role::Nurse,
                Requested::Everything,
                Allowed::Patients(set(&["a", "b"])),
            ),
        );
        subs.insert(
            2,
            entry(
                "n",
                Role::Nurse,
                Requested::Patients(set(&["a"])),
                Allowed::Patients(set(&["a", "b"])),
            ),
        );
        subs.insert(
            3,
            entry(
                "u",
                Role::Patient,
                Requested::Everything,
                Allowed::Patients(set(&["u"])),
            ),
        );
        let mut changed = subs.care_team_is("n", &set(&["b", "c"]));
        changed.sort_by_key(|(id, _)| *id);
        let ids: Vec<ConnId> = changed.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(changed[0].1.added, vec!["c".to_owned()]);
        assert_eq!(changed[0].1.removed, vec!["a".to_owned()]);
        assert_eq!(
            changed[1].1.patients,
            Vec::<String>::new(),
            "a is gone from stream 2"
        );
        assert_eq!(matched(&subs, "c"), [1].into());
        assert!(
            subs.care_team_is("n", &set(&["b", "c"])).is_empty(),
            "nothing differs now"
        );
        assert!(
            subs.care_team_is("u", &set(&[])).is_empty(),
            "patients' scope is their own id"
        );
        assert_eq!(
            subs.care_team_users(),
            vec![("n".to_owned(), Role::Nurse)],
            "one entry per user, care-team roles only"
        );
    }

    #[test]
    fn care_team_changes_do_not_touch_admins_or_patients() {
        let mut subs = Subscriptions::default();
        subs.insert(
            1,
            entry(
                "u",
                Role::Patient,
                Requested::Everything,
                Allowed::Patients(set(&["u"])),
            ),
        );
        assert!(subs.care_team_changed("u", "x", true).is_empty());
        assert!(matched(&subs, "x").is_empty());
    }

    #[test]
    fn resubscribe_replaces_the_request() {
        let mut subs = Subscriptions::default();
        let allowed = Allowed::Patients(set(&["a", "b"]));
        subs.insert(
            1,
            entry("n", Role::Nurse, Requested::Everything, allowed.clone()),
        );
        subs.resubscribe(1, Requested::Patients(set(&["b"])), allowed);
        assert!(matched(&subs, "a").is_empty());
        assert_eq!(matched(&subs, "b"), [1].into());
    }
}
