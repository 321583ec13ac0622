//! Care-team changes applied to open streams: this instance's at once, other
//! instances' once the database confirms them, and all of them read back periodically.

use std::time::Instant;

use actix::prelude::*;

use super::{AlertConnectionManager, MAX_CLAIMS_WAITING, enqueue};
use crate::db::{self, care_team};
use crate::hub::event::CareTeamChange;
use crate::hub::messages::Outbound;
use crate::hub::subscriptions::{ConnId, ScopeChange};
use crate::scope::Allowed;

impl AlertConnectionManager {
    /// Applies a care-team change to the open streams (telling each altered one) and
    /// remembers it, from `received`, for registrations whose scope was read before it.
    pub(super) fn apply_care_team_change(&mut self, change: CareTeamChange, received: Instant) {
        let altered = self.subscriptions.care_team_changed(
            &change.user_id,
            &change.patient_id,
            change.assigned,
        );
        self.tell_scope_changes(altered);
        self.recent_care_team.remember(received, change);
    }

    /// When the oldest care-team change announced by another instance and not yet
    /// settled by a database read arrived (this instance's own are applied at once).
    pub(super) fn unsettled_claims_since(&self) -> Option<Instant> {
        oldest_announced(&self.care_team_claims)
            .into_iter()
            .chain(self.confirming_since)
            .min()
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
        self.confirming_since = oldest_announced(&claims);
        let mut users: Vec<String> = claims.iter().map(|(_, c, _)| c.user_id.clone()).collect();
        users.sort();
        users.dedup();
        let pool = self.pool.clone();
        let started = Instant::now();
        let read = async move {
            db::run(&pool, move |c| Ok(care_team::patients_of_users(c, &users)?)).await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            act.confirming_care_teams = false;
            act.confirming_since = None;
            match result {
                Ok(teams) => {
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
                                act.apply_care_team_change(claim, Instant::now());
                            }
                        } else if holds == claim.assigned {
                            act.apply_care_team_change(claim, received);
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
            act.confirm_care_team_claims(ctx);
        }));
    }

    /// Reads back the care teams of every user with a care-team-scoped stream and puts the
    /// streams right where they differ (changes received since the read began are applied
    /// on top, as for a registration), telling each altered stream (`scope_changed`).
    pub(super) fn read_back_care_teams(&mut self, ctx: &mut Context<Self>) {
        if self.reading_care_teams {
            return;
        }
        let users = self.subscriptions.care_team_users();
        if users.is_empty() {
            return;
        }
        self.reading_care_teams = true;
        let started = Instant::now();
        let pool = self.pool.clone();
        let names: Vec<String> = users.iter().map(|(user, _)| user.clone()).collect();
        let read = async move {
            db::run(&pool, move |c| Ok(care_team::patients_of_users(c, &names)?)).await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, _| {
            act.reading_care_teams = false;
            let mut teams = match result {
                Ok(teams) => teams,
                Err(e) => {
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

/// When the oldest of `claims` announced by another instance (not applied at once, as this
/// instance's own are) arrived.
fn oldest_announced<'a>(
    claims: impl IntoIterator<Item = &'a (Instant, CareTeamChange, bool)>,
) -> Option<Instant> {
    claims
        .into_iter()
        .filter(|(_, _, applied)| !applied)
        .map(|(received, _, _)| *received)
        .min()
}
