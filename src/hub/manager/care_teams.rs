//! Care-team changes applied to open streams: this instance's at once, other
//! instances' once the database confirms them, and all of them read back periodically.

use std::collections::BTreeSet;
use std::time::Instant;

use actix::prelude::*;

use super::{AlertConnectionManager, MAX_CLAIMS_WAITING, enqueue};
use crate::db::events::CareTeamVersionsSeen;
use crate::db::{self, care_team, events};
use crate::hub::event::CareTeamChange;
use crate::hub::messages::Outbound;
use crate::hub::subscriptions::{ConnId, ScopeChange};
use crate::scope::Allowed;

impl AlertConnectionManager {
    /// Applies a care-team change to the open streams (telling each altered one) and
    /// remembers it, from `received`, for registrations whose scope was read before it.
    /// A change the streams already follow (a read of the database at or past its
    /// version came first, or it was applied) is not applied again: applied after a read
    /// that saw a later change undo it, it would put the undone state back.
    pub(super) fn apply_care_team_change(&mut self, change: CareTeamChange, received: Instant) {
        if !self.care_team_versions.apply(change.version) {
            return;
        }
        let altered = self.subscriptions.care_team_changed(
            &change.user_id,
            &change.patient_id,
            change.assigned,
        );
        self.tell_scope_changes(altered);
        self.recent_care_team.remember(received, change);
    }

    /// What the care-team changes announced by other instances and not yet settled by a
    /// database read hold back (this instance's own are applied at once).
    pub(super) fn unsettled_claims(&self) -> Unsettled {
        Unsettled::of(&self.care_team_claims).and(&self.confirming)
    }

    /// Applies the confirmed changes whose place in the event log comes before `seq`:
    /// called before event `seq` is delivered, so every stream gets the events before a
    /// change under the old patients and the ones after it under the new.
    pub(super) fn apply_claims_before(&mut self, seq: i64) {
        while self
            .confirmed_claims
            .front()
            .is_some_and(|(_, claim)| claim.after_seq < seq)
        {
            if let Some((received, claim)) = self.confirmed_claims.pop_front() {
                self.apply_care_team_change(claim, received);
            }
        }
    }

    /// A change another instance announced, confirmed by the database: applied now if
    /// every event before it was delivered, else once they are (the log is read up to
    /// them). Applied on arrival, a removal overtook the alerts raised before it that
    /// were still being read from the log, and the nurse never got them.
    fn place_confirmed_claim(
        &mut self,
        received: Instant,
        claim: CareTeamChange,
        ctx: &mut Context<Self>,
    ) {
        if claim.after_seq <= self.head {
            self.apply_care_team_change(claim, received);
            return;
        }
        self.read_log_upto(claim.after_seq, ctx);
        let at = self
            .confirmed_claims
            .iter()
            .position(|(_, waiting)| waiting.after_seq > claim.after_seq)
            .unwrap_or(self.confirmed_claims.len());
        self.confirmed_claims.insert(at, (received, claim));
    }

    /// Queues a care-team change for [`Self::confirm_care_team_claims`].
    pub(super) fn claim_care_team(
        &mut self,
        change: CareTeamChange,
        received: Instant,
        applied: bool,
        ctx: &mut Context<Self>,
    ) {
        if self.care_team_claims.len() >= MAX_CLAIMS_WAITING {
            // A flood (real changes do not come by the ten thousand): the read-back puts
            // the streams right from the database whatever was dropped.
            self.care_team_claims.pop_front();
            self.read_back_care_teams(ctx);
        }
        self.care_team_claims.push_back((received, change, applied));
        self.confirm_care_team_claims(ctx);
    }

    /// Applies the care-team changes other instances announced that the database
    /// confirms, in arrival order, one read at a time. A claim the database contradicts
    /// is dropped: either a later change, announced too, undid it (reads run in order, so
    /// the last one read wins, as in the database), or it is not this deployment's.
    fn confirm_care_team_claims(&mut self, ctx: &mut Context<Self>) {
        if self.confirming_care_teams || self.care_team_claims.is_empty() {
            return;
        }
        self.confirming_care_teams = true;
        let claims: Vec<(Instant, CareTeamChange, bool)> =
            self.care_team_claims.drain(..).collect();
        self.confirming = Unsettled::of(&claims);
        let mut users: Vec<String> = claims.iter().map(|(_, c, _)| c.user_id.clone()).collect();
        users.sort();
        users.dedup();
        let pool = self.pool.clone();
        let started = Instant::now();
        let read = async move {
            db::run(&pool, move |c| {
                // The head after the teams: every change read was written at or below it.
                let teams = care_team::patients_of_users(c, &users)?;
                Ok((teams, events::head(c)?))
            })
            .await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            act.confirming_care_teams = false;
            act.confirming = Unsettled::default();
            match result {
                Ok((teams, log_head)) => {
                    for (received, mut claim, applied) in claims {
                        let holds = teams
                            .get(&claim.user_id)
                            .is_some_and(|team| team.contains(&claim.patient_id));
                        if applied {
                            // Our own change. If the database holds the opposite, one that
                            // committed after it reached us first: the database's state
                            // holds — unless a change of that membership arrived while
                            // the read ran (the read may predate it; its own check follows).
                            let since_read = act
                                .recent_care_team
                                .of_user_since(&claim.user_id, started)
                                .any(|c| c.patient_id == claim.patient_id);
                            if holds != claim.assigned && !since_read {
                                claim.assigned = holds;
                                // The database's state, not a change of its own.
                                claim.version = 0;
                                act.apply_care_team_change(claim, Instant::now());
                            }
                        } else if holds == claim.assigned {
                            // A place past the log's head is not this database's.
                            claim.after_seq = claim.after_seq.min(log_head);
                            act.place_confirmed_claim(received, claim, ctx);
                        } else {
                            log::debug!(
                                "announced care-team change not in the database, ignored user_id={} patient_id={}",
                                crate::log_value::quoted_if_needed(&claim.user_id),
                                crate::log_value::quoted_if_needed(&claim.patient_id)
                            );
                        }
                    }
                }
                // The periodic read-back puts the streams right once the database answers.
                Err(e) => log::warn!("confirming announced care-team changes failed: {e}"),
            }
            // The events these claims held back (see `drain`), now matched under them.
            act.drain();
            act.read_wanted_care_teams(ctx);
            act.confirm_care_team_claims(ctx);
        }));
    }

    /// A stream registered (or resubscribed) with its care team read at `version`: older
    /// than the versions the streams follow, it may lack a change the manager covered with
    /// a read instead of applying it (such a change is not remembered for registrations),
    /// so the care teams are read back, again if a read is already under way.
    pub(super) fn check_registration_version(
        &mut self,
        version: Option<i64>,
        ctx: &mut Context<Self>,
    ) {
        if version.is_some_and(|v| v < self.care_team_versions.through) {
            self.read_back_again = true;
            self.read_back_care_teams(ctx);
        }
    }

    /// Reads the care teams back now if an event waits for a care-team version this
    /// manager has not applied (see [`CareTeamVersions`]). With no care-team-scoped stream
    /// open there is nothing to read: no stream's matching depends on them.
    pub(super) fn read_wanted_care_teams(&mut self, ctx: &mut Context<Self>) {
        let Some(wanted) = self.care_team_versions.wanted() else {
            return;
        };
        if self.subscriptions.care_team_users().is_empty() {
            self.care_team_versions.read_at(wanted);
            self.drain();
            return;
        }
        self.read_back_care_teams(ctx);
    }

    /// Reads back the care teams of every user with a care-team-scoped stream and puts the
    /// streams right where they differ (changes received since the read began are applied
    /// on top, as for a registration), telling each altered stream (`scope_changed`).
    /// The care teams' version is read first, so the streams then follow at least every
    /// change up to it, and the events waiting for it go out.
    pub(super) fn read_back_care_teams(&mut self, ctx: &mut Context<Self>) {
        if self.reading_care_teams {
            return;
        }
        self.read_back_again = false;
        let users = self.subscriptions.care_team_users();
        if users.is_empty() {
            return;
        }
        self.reading_care_teams = true;
        let started = Instant::now();
        let pool = self.pool.clone();
        let names: Vec<String> = users.iter().map(|(user, _)| user.clone()).collect();
        let read = async move {
            db::run(&pool, move |c| {
                let version = events::care_team_version(c)?;
                Ok((version, care_team::patients_of_users(c, &names)?))
            })
            .await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            act.reading_care_teams = false;
            let (version, mut teams) = match result {
                Ok(read) => read,
                Err(e) => {
                    // The next tick of the event-log poll asks again for a waiting event.
                    log::warn!("reading care teams back failed: {e}");
                    return;
                }
            };
            let mut altered = Vec::new();
            for (user, role) in users {
                let mut allowed = Allowed::Patients(teams.remove(&user).unwrap_or_default());
                act.catch_up(&user, role, &mut allowed, started);
                if let Allowed::Patients(patients) = allowed {
                    let changed = act.subscriptions.care_team_is(&user, &patients);
                    if !changed.is_empty() {
                        log::info!(
                            "care team read back differs from the streams', corrected user_id={} streams={}",
                            crate::log_value::quoted_if_needed(&user),
                            changed.len()
                        );
                    }
                    altered.extend(changed);
                }
            }
            act.tell_scope_changes(altered);
            act.care_team_versions.read_at(version);
            act.drain();
            if act.read_back_again {
                act.read_back_care_teams(ctx);
            }
            act.read_wanted_care_teams(ctx);
        }));
    }

    /// Tells each stream whose patients a care-team change altered (`scope_changed`), in
    /// its queue after every event before the change and before every event after it. A
    /// stream whose queue is full is cut off like one that misses an event: it resumes
    /// and its `connected` names its patients.
    fn tell_scope_changes(&mut self, altered: Vec<(ConnId, ScopeChange)>) {
        let mut cut_off = Vec::new();
        for (conn_id, change) in altered {
            let Some(client) = self.clients.get(&conn_id) else {
                continue;
            };
            let item = Outbound::Scope(Box::new(change));
            if !enqueue(
                &self.metrics,
                conn_id,
                &client.tx,
                item,
                &"at a care-team change",
            ) {
                cut_off.push(conn_id);
            }
        }
        for conn_id in cut_off {
            self.remove(conn_id);
        }
    }
}

/// What care-team changes announced by other instances, not yet confirmed, hold back: the
/// events after the earliest place in the log among them (`after_seq`), and, for changes
/// from instances older than that field, every event accepted after the oldest arrived.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Unsettled {
    after_seq: Option<i64>,
    since: Option<Instant>,
}

impl Unsettled {
    /// Of `claims` (this instance's own, applied at once, hold nothing back).
    fn of<'a>(claims: impl IntoIterator<Item = &'a (Instant, CareTeamChange, bool)>) -> Self {
        let mut unsettled = Self::default();
        for (received, change, applied) in claims {
            if *applied {
                continue;
            }
            if change.after_seq > 0 {
                unsettled.after_seq = Some(
                    unsettled
                        .after_seq
                        .map_or(change.after_seq, |a| a.min(change.after_seq)),
                );
            } else {
                unsettled.since = Some(unsettled.since.map_or(*received, |s| s.min(*received)));
            }
        }
        unsettled
    }

    /// Both together.
    fn and(self, other: &Self) -> Self {
        let min = |a: Option<i64>, b: Option<i64>| a.into_iter().chain(b).min();
        Self {
            after_seq: min(self.after_seq, other.after_seq),
            since: self.since.into_iter().chain(other.since).min(),
        }
    }

    /// Whether event `seq`, accepted at `accepted`, must wait for the confirmation.
    pub(super) fn holds_back(&self, seq: i64, accepted: Instant) -> bool {
        self.after_seq.is_some_and(|after| after < seq)
            || self.since.is_some_and(|since| accepted >= since)
    }
}

/// How far this manager's streams follow the care teams, counted in changes: every
/// care-team change moves the database's version on by one, and every event carries the
/// version its write saw (`db::events::NextEvent`). An event stamped with a version past
/// what the streams follow waits until they do: an alert raised on instance B moments
/// after a nurse's removal was answered on instance A had reached her on B, where the
/// change was still on its way over Redis (and an added nurse had missed one).
#[derive(Debug, Default)]
pub(super) struct CareTeamVersions {
    /// Every change up to this version is applied, or covered by a read of the database.
    through: i64,
    /// `through`, shared with care-team writes, which check the version they are handed
    /// against it (`db::events::bump_care_team_version`).
    seen: CareTeamVersionsSeen,
    /// Changes applied past `through`, with a gap before them.
    ahead: BTreeSet<i64>,
    /// The highest version a waiting event was stamped with.
    wanted: i64,
}

impl CareTeamVersions {
    /// Streams that follow every change up to the version `seen` holds (the database's
    /// at startup), raising it as they follow later ones.
    pub(super) fn following(seen: CareTeamVersionsSeen) -> Self {
        Self {
            through: seen.highest(),
            seen,
            ..Self::default()
        }
    }

    /// Records change `version` as applied; `false` when the streams already follow it.
    /// Version 0 (a correction from a read, or a change from an instance older than the
    /// version) is always applied.
    fn apply(&mut self, version: i64) -> bool {
        if version <= 0 {
            return true;
        }
        if version <= self.through || !self.ahead.insert(version) {
            return false;
        }
        self.advance();
        true
    }

    /// A read of the care teams that read the database's version, `version`, first: the
    /// streams follow every change up to it.
    pub(super) fn read_at(&mut self, version: i64) {
        if version > self.through {
            self.through = version;
            self.ahead = self.ahead.split_off(&(version + 1));
        }
        self.advance();
    }

    fn advance(&mut self) {
        while self.ahead.remove(&(self.through + 1)) {
            self.through += 1;
        }
        self.seen.saw(self.through);
    }

    /// Whether an event stamped `version` must wait for the care teams (remembered as
    /// wanted if so).
    pub(super) fn holds_back(&mut self, version: i64) -> bool {
        if version <= self.through {
            return false;
        }
        self.wanted = self.wanted.max(version);
        true
    }

    /// The version a waiting event wants, if the streams do not follow it yet.
    pub(super) fn wanted(&self) -> Option<i64> {
        (self.wanted > self.through).then_some(self.wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::{CareTeamVersions, CareTeamVersionsSeen};

    #[test]
    fn changes_count_once_and_in_order() {
        let mut versions = CareTeamVersions::following(CareTeamVersionsSeen::starting_at(4));
        assert!(!versions.apply(4), "already followed at startup");
        assert!(versions.apply(6), "past a gap");
        assert!(versions.holds_back(6), "5 is not applied yet");
        assert_eq!(versions.wanted(), Some(6));
        assert!(versions.apply(5));
        assert!(!versions.holds_back(6), "5 and 6 both applied");
        assert_eq!(versions.wanted(), None);
        assert!(!versions.apply(6), "twice");
        assert!(versions.apply(0), "a correction always applies");
    }

    #[test]
    fn a_read_covers_every_change_up_to_its_version() {
        let mut versions = CareTeamVersions::following(CareTeamVersionsSeen::default());
        assert!(versions.apply(3));
        assert!(versions.holds_back(2));
        versions.read_at(2);
        assert!(!versions.holds_back(3), "2 read, 3 applied");
        assert!(
            !versions.apply(1),
            "a change the read saw, arriving late, is stale"
        );
        versions.read_at(1);
        assert!(!versions.holds_back(3), "an older read moves nothing back");
        assert!(versions.holds_back(4));
    }
}
