//! Events in sequence order: each accepted once, held until its predecessors have
//! arrived (or been read from the log), then delivered to the matching queues.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::{AlertConnectionManager, CARE_TEAM_WAIT, GAP_WAIT, LOG_BATCH, enqueue};
use crate::db::{self, events};
use crate::hub::event::StoredEvent;
use crate::hub::messages::Outbound;
use crate::transport::frames::EncodedEvent;

impl AlertConnectionManager {
    /// Accepts an event from any source; delivers whatever is now contiguous. Whether it
    /// was new to this manager (not delivered or waiting already).
    pub(super) fn accept(&mut self, event: StoredEvent, ctx: &mut Context<Self>) -> bool {
        if event.seq <= self.head || self.pending.contains_key(&event.seq) {
            return false;
        }
        self.pending.insert(event.seq, (event, Instant::now()));
        self.drain();
        self.read_wanted_care_teams(ctx);
        if !self.pending.is_empty() {
            ctx.run_later(GAP_WAIT, |act, ctx| act.fill_gap(ctx));
        }
        true
    }

    /// Delivers the pending events that are next in sequence, each after the confirmed
    /// care-team changes placed before it, but none placed after a change another
    /// instance announced that no database read has settled yet (see [`Unsettled`]): an
    /// alert raised on another instance right after a nurse's removal had its 204
    /// reached her when the log read finished before the change's confirmation, and an
    /// added nurse missed one. Nor one stamped with a care-team version the streams do
    /// not follow yet (see [`CareTeamVersions`]), for up to [`CARE_TEAM_WAIT`].
    ///
    /// [`Unsettled`]: super::care_teams::Unsettled
    /// [`CareTeamVersions`]: super::care_teams::CareTeamVersions
    pub(super) fn drain(&mut self) {
        let unsettled = self.unsettled_claims();
        while let Some(entry) = self.pending.first_entry() {
            let seq = *entry.key();
            if seq <= self.head {
                // Already delivered or skipped: never let it block the ones after it.
                entry.remove();
                continue;
            }
            let (event, accepted) = entry.get();
            if seq != self.head + 1 || unsettled.holds_back(seq, *accepted) {
                break;
            }
            if self.care_team_versions.holds_back(event.care_team_version) {
                let waited = accepted.elapsed();
                if waited < CARE_TEAM_WAIT {
                    break;
                }
                log::warn!(
                    "event {seq} waited {} ms for the care teams to be read at version {}; \
                     delivered under the care teams the streams have",
                    waited.as_millis(),
                    event.care_team_version
                );
            }
            let (event, received) = entry.remove();
            self.apply_claims_before(seq);
            self.head = seq;
            self.issued.saw(seq);
            self.deliver(event, received);
        }
        self.apply_claims_before(self.head + 1);
    }

    fn deliver(&mut self, event: StoredEvent, received: Instant) {
        let encoded = Arc::new(EncodedEvent::published_at(event, received));
        let mut cut_off = Vec::new();
        let mut delivered = 0u64;
        for conn_id in self.subscriptions.matching(&encoded.event.patient_id) {
            let Some(client) = self.clients.get(&conn_id) else {
                continue;
            };
            let item = Outbound::Event(Arc::clone(&encoded));
            let at = format_args!("seq={}", encoded.seq());
            if enqueue(&self.metrics, conn_id, &client.tx, item, &at) {
                delivered += 1;
            } else {
                cut_off.push(conn_id);
            }
        }
        for conn_id in cut_off {
            self.remove(conn_id);
        }
        self.metrics.events_published.inc();
        self.metrics.deliveries.inc_by(delivered);
        self.metrics
            .fanout_seconds
            .observe(received.elapsed().as_secs_f64());
        log::debug!(
            "event delivered seq={} alert_id={} recipients={delivered}",
            encoded.seq(),
            encoded.event.alert_id
        );
    }

    /// A gap that outlived [`GAP_WAIT`]: read it from the event log.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        let Some((&first, (_, since))) = self.pending.first_key_value() else {
            return;
        };
        if first == self.head + 1 {
            self.drain();
            return;
        }
        if since.elapsed() < GAP_WAIT {
            return;
        }
        self.read_log(self.head, first - 1, ctx);
    }

    /// Reads `(after, upto]` from the log and feeds it through [`Self::accept`]. Under
    /// the write lock every number up to a committed one is committed too, so what the
    /// read does not find at or below the log's head never will exist: the manager then
    /// skips it. A number past the head (announced, not this database's) is not skipped
    /// to: the real events below it would be lost.
    fn read_log(&mut self, after: i64, upto: i64, ctx: &mut Context<Self>) {
        if self.reading_log {
            return;
        }
        self.reading_log = true;
        // What was delivered when the read began: the head it finds can only be measured
        // against that. Events committed while it runs reach the manager from the writer
        // (or Redis) before its answer does, so the head by then is legitimately past it.
        let delivered_before = self.head;
        let pool = self.pool.clone();
        let read = async move {
            db::run(&pool, move |c| {
                // The head first: every number up to it is committed before the range
                // is read, so the range holds all of them that exist.
                let log_head = events::head(c)?;
                let rows = events::range(c, after, upto.min(log_head), None, LOG_BATCH)?;
                Ok((rows, log_head))
            })
            .await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            act.reading_log = false;
            match result {
                Ok((rows, log_head)) => {
                    act.report_log_behind(log_head, delivered_before);
                    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= LOG_BATCH;
                    let first_found = rows.first().map(|row| row.seq);
                    let mut found_new = false;
                    for row in rows {
                        if let Some(event) = StoredEvent::from_row(row) {
                            found_new |= act.accept(event, ctx);
                        }
                    }
                    if upto == i64::MAX {
                        // A tail read that found events no message brought: they are
                        // reaching this instance only through the log, so it is read again
                        // at the next tick, until a read finds none (see `tail_tick`).
                        act.catching_up = found_new;
                    }
                    if upto != i64::MAX && upto > log_head {
                        log::warn!(
                            "event {upto} was announced but this database's event log ends at \
                             {log_head}: ignored (another deployment publishing on this Redis \
                             channel, e.g. a copy of this database, or a forged message)"
                        );
                    }
                    // Numbers between the head and the first row read (or the end of the
                    // range, when the read found none) were never issued (`vigil migrate
                    // --skip-ids`): skip them, and no further — the rows read are
                    // delivered by the drain.
                    let skip_to = first_found.map_or(upto.min(log_head), |seq| seq - 1);
                    if !full && upto != i64::MAX && act.head < skip_to {
                        log::warn!(
                            "event log has no rows in ({}, {skip_to}]; skipping",
                            act.head
                        );
                        act.head = skip_to;
                        act.drain();
                    }
                    if full || !act.pending.is_empty() {
                        ctx.run_later(GAP_WAIT, |act, ctx| act.poll_log(ctx));
                    }
                }
                Err(e) => log::warn!("reading the event log failed: {e}"),
            }
            act.read_announced(ctx);
        }));
    }

    /// Says once (per head found) that the database's log ends below what this instance
    /// had delivered when the read began: it lost committed events. Nothing is changed
    /// here; the next event written retires the lost ids (`db::events::next_seq`).
    fn report_log_behind(&mut self, log_head: i64, delivered_before: i64) {
        if log_head >= delivered_before {
            self.log_behind_reported = None;
        } else if self.log_behind_reported != Some(log_head) {
            self.log_behind_reported = Some(log_head);
            self.metrics.event_log_behind.inc();
            log::error!(
                "the database's event log ends at {log_head}, but this instance has delivered \
                 events up to {delivered_before}: the database has lost committed events; the \
                 next event written retires their ids"
            );
        }
    }

    /// Has the log read up to `upto` (if past what was delivered): now, or when the read
    /// under way ends.
    pub(super) fn read_log_upto(&mut self, upto: i64, ctx: &mut Context<Self>) {
        if upto > self.head {
            self.announced = Some(self.announced.map_or(upto, |a| a.max(upto)));
            self.read_announced(ctx);
        }
    }

    /// Reads up to the largest number other instances announced, unless a read is under
    /// way (its end calls this again).
    pub(super) fn read_announced(&mut self, ctx: &mut Context<Self>) {
        if self.reading_log {
            return;
        }
        if let Some(upto) = self.announced.take()
            && upto > self.head
        {
            self.read_log(self.head, upto, ctx);
        }
    }

    /// Polls the log every `tail_poll`, or at every tick ([`super::CATCH_UP_POLL`]) while other
    /// instances' events come only this way: the Redis link is down, or the last read
    /// found events no message brought (an instance that cannot publish). A second's
    /// worth handed to every stream at once overflowed the queues of busy wards' screens.
    pub(super) fn tail_tick(&mut self, ctx: &mut Context<Self>) {
        let link_down = self
            .settings
            .broker_link
            .as_ref()
            .is_some_and(|link| !link.up());
        if link_down || self.catching_up || self.last_tail_poll.elapsed() >= self.settings.tail_poll
        {
            self.poll_log(ctx);
        }
        // An event waiting for the care teams: read them again if the last read failed,
        // and let it go once it has waited too long.
        if self.care_team_versions.wanted().is_some() {
            self.drain();
            self.read_wanted_care_teams(ctx);
        }
    }

    /// Catches up with events no broker message announced (e.g. Redis was down).
    pub(super) fn poll_log(&mut self, ctx: &mut Context<Self>) {
        self.last_tail_poll = Instant::now();
        match self.pending.first_key_value() {
            Some((&first, _)) if first > self.head + 1 => self.read_log(self.head, first - 1, ctx),
            _ => self.read_log(self.head, i64::MAX, ctx),
        }
    }
}
