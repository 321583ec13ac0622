//! The two requests a dashboard makes in the socket: `subscribe` and `ack`.

use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::{Value, json};

use super::WsSession;
use crate::db;
use crate::domain::AckStatus;
use crate::domain::alert::parse_ack_body;
use crate::error::ApiError;
use crate::hub::messages::Resubscribe;
use crate::scope::Requested;
use crate::service::acks::{AckRequest, Acked, acknowledge};
use crate::service::scope::allowed_with_version;
use crate::transport::ws::server_frame::{ack_failure, error_frame};

impl WsSession {
    /// `subscribe`: replaces the session's patients with the frame's (checked against a
    /// fresh read of the scope), one at a time; answered `subscribed` or an `error` frame.
    pub(super) fn on_subscribe(&mut self, value: &Value, ctx: &mut ws::WebsocketContext<Self>) {
        let ids: Option<Vec<&str>> = value
            .get("patient_ids")
            .and_then(Value::as_array)
            .and_then(|items| items.iter().map(Value::as_str).collect());
        let Some(ids) = ids else {
            ctx.text(error_frame(
                "invalid",
                "`patient_ids` must be an array of strings",
            ));
            return;
        };
        // As strict as `ack` (and the HTTP bodies): a misspelt field is not dropped, and
        // each element is one patient id — the query's comma lists are not a frame's.
        if let Some(extra) = value.as_object().and_then(|o| {
            o.keys()
                .find(|k| !matches!(k.as_str(), "type" | "patient_ids"))
        }) {
            ctx.text(error_frame(
                "invalid",
                &format!("unknown field `{extra}`: a subscribe frame has `type` and `patient_ids`"),
            ));
            return;
        }
        // A blank element would be dropped as an empty query value is, and `[""]` would
        // then widen the subscription to every patient in scope.
        if ids
            .iter()
            .any(|id| id.contains(',') || id.trim().is_empty())
        {
            ctx.text(error_frame(
                "invalid",
                "each `patient_ids` element is one patient id (not blank, no commas); `[]` means every patient in scope",
            ));
            return;
        }
        let requested = match Requested::parse(ids) {
            Ok(r) => r,
            Err(e) => {
                ctx.text(error_frame(e.code(), &e.client_detail()));
                return;
            }
        };
        if self.subscribing {
            if self.next_subscribe.replace(requested).is_some() {
                ctx.text(error_frame(
                    "superseded",
                    "a later subscribe replaced this one before it was applied",
                ));
            }
            return;
        }
        self.apply_subscribe(requested, ctx);
    }

    /// Checks `requested` against a fresh read of the caller's scope and has the manager
    /// apply it; then applies the subscribe that arrived meanwhile, if any.
    fn apply_subscribe(&mut self, requested: Requested, ctx: &mut ws::WebsocketContext<Self>) {
        self.subscribing = true;
        let state = self.state.clone();
        let principal = self.principal.clone();
        let conn_id = self.conn_id;
        let named = match &requested {
            Requested::Patients(patients) => Some(patients.clone()),
            Requested::Everything | Requested::Wildcard => None,
        };
        // Until the answer, the events of both sets pass: the manager may already be
        // sending the new set's while the old set's are still queued.
        let previous = self.named.clone();
        self.named = match (&previous, &named) {
            (Some(old), Some(new)) => Some(old.union(new).cloned().collect()),
            _ => None,
        };
        let work = async move {
            let who = principal.clone();
            let allowed_at = Instant::now();
            let (allowed, allowed_version) =
                db::run(&state.pool, move |c| Ok(allowed_with_version(c, &who)?)).await?;
            requested.authorize(principal.role, &allowed)?;
            state
                .manager
                .send(Resubscribe {
                    conn_id,
                    requested,
                    allowed,
                    allowed_at,
                    allowed_version,
                })
                .await
                .map_err(|_| ApiError::ManagerUnavailable)
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            match result {
                Ok(patients) => {
                    act.named = named;
                    let patients = patients.unwrap_or_else(|| vec!["*".to_owned()]);
                    ctx.text(json!({"type": "subscribed", "patient_ids": patients}).to_string());
                }
                Err(e) => {
                    act.named = previous;
                    ctx.text(error_frame(e.code(), &e.client_detail()));
                }
            }
            act.subscribing = false;
            if let Some(next) = act.next_subscribe.take() {
                act.apply_subscribe(next, ctx);
            }
        }));
    }

    /// `ack`: the HTTP acknowledgment's rules and service, answered with `ack_result`.
    /// A session's acks are carried out one after another and answered in the order
    /// they came in, refusals decided at once included (see [`super::ack_order`]).
    pub(super) fn on_ack(&mut self, value: &Value, ctx: &mut ws::WebsocketContext<Self>) {
        let ticket = self.acks.ticket();
        // Without an id there is no alert to answer `ack_result` for: an `error` frame.
        let alert_id = match value.get("alert_id") {
            None | Some(Value::Null) => {
                let refusal = error_frame("invalid", "`alert_id` is required");
                self.answer_ack(ticket, refusal, ctx);
                return;
            }
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(other) => {
                let message =
                    format!("`alert_id` must be the alert's id as a non-empty string, not {other}");
                self.answer_ack(ticket, error_frame("invalid", &message), ctx);
                return;
            }
        };
        let mut body = value.clone();
        if let Some(obj) = body.as_object_mut() {
            obj.remove("type");
            obj.remove("alert_id");
        }
        if let Err(e) = self.state.write_limiter.check(&self.principal) {
            self.answer_ack(ticket, ack_failure(&alert_id, &e), ctx);
            return;
        }
        let (status, note): (AckStatus, Option<String>) = match parse_ack_body(&body) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.answer_ack(ticket, ack_failure(&alert_id, &e), ctx);
                return;
            }
        };
        let state = self.state.clone();
        let principal = self.principal.clone();
        let request = AckRequest {
            alert_id: alert_id.clone(),
            status,
            note,
            expected_patient: None,
            request_id: self.request_id.clone(),
            idempotency_key: None,
        };
        // The acknowledgment runs as a task of its own, not on the session: a dashboard
        // that sends `ack` and closes at once (`ws.send(ack); ws.close()`), or whose
        // session ends on a protocol error or a dropped connection right after, stopped
        // the actor and, with it, every future spawned on it — the ack was never stored.
        // The session only waits for the answer; if it is gone, nobody is told, but the
        // ack is stored and broadcast all the same. The task waits for the session's
        // earlier acks first, so they are stored in the order sent.
        let conn_id = self.conn_id;
        let mut turn = self.acks.turn();
        let task = actix_web::rt::spawn(async move {
            turn.wait().await;
            let result = acknowledge(&state, &principal, request).await;
            if let Err(e) = &result {
                log::debug!("in-socket ack refused connection_id={conn_id}: {e}");
            }
            drop(turn);
            result
        });
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(task).map(move |joined, act, ctx| {
                let result = joined.unwrap_or_else(|e| {
                    log::error!("in-socket ack task failed connection_id={conn_id}: {e}");
                    Err(ApiError::Internal(format!("acknowledgment task failed: {e}")))
                });
                let answer = match result {
                    Ok(Acked::Recorded(outcome)) => json!({"type": "ack_result", "alert_id": alert_id, "ok": true, "alert": outcome.alert}).to_string(),
                    // Not sent without a key (the in-socket ack has none); said all the same.
                    Ok(Acked::Replayed(answer)) => {
                        let alert = serde_json::from_str::<Value>(&answer)
                            .ok()
                            .and_then(|mut answer| answer.get_mut("alert").map(Value::take))
                            .unwrap_or(Value::Null);
                        json!({"type": "ack_result", "alert_id": alert_id, "ok": true, "alert": alert}).to_string()
                    }
                    Err(e) => ack_failure(&alert_id, &e),
                };
                act.answer_ack(ticket, answer, ctx);
            }),
        );
    }

    /// Sends `ticket`'s answer once every earlier ack of the session has had its own.
    fn answer_ack(
        &mut self,
        ticket: super::ack_order::Ticket,
        answer: String,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        for frame in self.acks.answer(ticket, answer) {
            ctx.text(frame);
        }
    }
}
