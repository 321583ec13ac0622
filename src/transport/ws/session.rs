//! One dashboard's session actor: writes the manager's events, answers the client's
//! frames, pings, and closes a session that is silent, flooding or broken.

mod ack_order;
mod requests;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;
use actix_web_actors::ws;
use prometheus::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::client_frame::{ClientFrame, FrameRejection, parse_client_frame, too_large};
use super::fragments::{Assembled, Fragments};
use super::replay::{PendingReplay, Replayed, read_replay};
use super::server_frame::{error_frame, reset_frame, typed_frame};
use crate::auth::Principal;
use crate::db;
use crate::hub::messages::{CloseReason, Outbound};
use crate::scope::Requested;
use crate::state::AppState;
use crate::transport::frames::scope_changed;
use crate::transport::{ConnectionGuard, OVERTAKEN_BY_PRUNER, Subscription, reset_payload};

/// One legacy dashboard connection.
pub struct WsSession {
    guard: Option<ConnectionGuard>,
    conn_id: u64,
    principal: Principal,
    state: web::Data<AppState>,
    rx: Option<mpsc::Receiver<Outbound>>,
    hello: Vec<String>,
    /// What a resume still has to send before the live queue is read.
    replay: Option<PendingReplay>,
    /// The newest event sent; live events at or below it were replayed already.
    last_sent: i64,
    last_heard: Instant,
    /// When the last ping went out (the shared tick sends the next one when it is due).
    last_ping: Instant,
    /// `X-Request-Id` of the handshake, logged with in-socket acknowledgments.
    request_id: Option<String>,
    /// `vigil_delivery_seconds{transport="ws"}`, looked up once.
    delivered: Histogram,
    /// A `subscribe` is being applied (its care-team read and the manager's answer).
    subscribing: bool,
    /// The `subscribe` that arrived meanwhile, applied next; any earlier one waiting is
    /// answered `superseded` (a subscribe replaces the subscription, so only the last
    /// counts). One at a time per session: a token flooding `subscribe` frames had every
    /// one read the database and queue for the manager, and alerts for everyone waited
    /// seconds behind them.
    next_subscribe: Option<Requested>,
    /// The order in which `ack` frames are carried out and answered: the one they came in.
    acks: ack_order::AckOrder,
    /// The patients the last applied `subscribe` named (`None`: it named none, and the
    /// manager's scope alone decides). After `subscribed` a dashboard takes every frame to
    /// be for these patients, but events for the previous set can still be on their way:
    /// queued before the manager applied the change, or in a resume's replay read before
    /// it. Those are not sent.
    named: Option<BTreeSet<String>>,
    /// The current one-second window of [`MAX_FRAMES_PER_SECOND`]: when it began, and the
    /// frames received in it.
    frame_window: (Instant, u32),
    /// A message arriving in fragments, joined before it is read.
    fragments: Fragments,
}

impl WsSession {
    /// A session for a stream `open_subscription` registered: `hello` is sent first,
    /// then `replay` if resuming, then the live queue; events up to `last_sent` were
    /// covered by the seam.
    pub(super) fn new(
        state: web::Data<AppState>,
        sub: Subscription,
        hello: Vec<String>,
        replay: Option<PendingReplay>,
        last_sent: i64,
        request_id: Option<String>,
    ) -> Self {
        let delivered = state.metrics.delivery_seconds.with_label_values(&["ws"]);
        Self {
            guard: Some(sub.guard),
            conn_id: sub.connected.conn_id,
            principal: sub.principal,
            state,
            rx: Some(sub.rx),
            hello,
            replay,
            last_sent,
            last_heard: Instant::now(),
            last_ping: Instant::now(),
            request_id,
            delivered,
            subscribing: false,
            next_subscribe: None,
            acks: ack_order::AckOrder::default(),
            named: None,
            frame_window: (Instant::now(), 0),
            fragments: Fragments::default(),
        }
    }
}

/// Frames a dashboard may send in one second before its session is closed (1008). A
/// person acknowledges a few alerts a minute; a client sending more is broken or hostile,
/// and every frame it sends is work on the worker thread its connection shares with
/// other clients' requests and streams: one session flooding `ack` frames delayed alerts
/// for everyone on that thread by seconds.
pub const MAX_FRAMES_PER_SECOND: u32 = 100;

impl WsSession {
    /// Starts reading the manager's queue (events that arrived meanwhile wait in it).
    fn go_live(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(mut rx) = self.rx.take() {
            ctx.add_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        }
    }

    /// Sends the missed events, then goes live. They are read in small batches and
    /// encoded until the byte budget runs out, so a longer gap is known (and answered
    /// with `reset`) before anything is sent, and no more than the budget is ever held.
    fn replay_then_go_live(&mut self, plan: PendingReplay, ctx: &mut ws::WebsocketContext<Self>) {
        let pool = self.state.pool.clone();
        let PendingReplay {
            range,
            oldest,
            max_bytes,
        } = plan;
        let upto = range.upto;
        let load =
            async move { db::run(&pool, move |c| Ok(read_replay(c, range, max_bytes)?)).await };
        ctx.spawn(load.into_actor(self).map(move |result, act, ctx| {
            match result {
                Ok(Replayed::Frames(frames)) => {
                    let mut sent = 0u64;
                    for (seq, patient, frame) in frames {
                        act.last_sent = act.last_sent.max(seq);
                        if act.wants(&patient) {
                            ctx.text(frame);
                            sent += 1;
                        }
                    }
                    act.state.metrics.replayed_events.inc_by(sent);
                }
                Ok(Replayed::TooLong) => {
                    let reason = format!(
                        "the missed events exceed the {} KiB a WebSocket resume replays (VIGIL_WS_REPLAY_MAX_KIB); reload",
                        max_bytes / 1024
                    );
                    ctx.text(reset_frame(reset_payload(&reason, oldest, upto), upto));
                    act.last_sent = act.last_sent.max(upto);
                }
                Ok(Replayed::Pruned { oldest }) => {
                    let data = reset_payload(OVERTAKEN_BY_PRUNER, oldest, upto);
                    ctx.text(reset_frame(data, upto));
                    act.last_sent = act.last_sent.max(upto);
                }
                Err(e) => {
                    // Closing makes the dashboard reconnect and resume: nothing lost.
                    log::warn!("replay failed, closing connection_id={}: {e}", act.conn_id);
                    end_session(
                        ctx,
                        Some(error_frame(
                            "unavailable",
                            "the missed events could not be read; reconnect with the same last_event_id",
                        )),
                        ws::CloseCode::Again,
                        "replay failed",
                    );
                    return;
                }
            }
            act.go_live(ctx);
        }));
    }

    /// One fragment of a message sent in pieces; the message is read once it is whole.
    fn on_fragment(&mut self, item: actix_http::ws::Item, ctx: &mut ws::WebsocketContext<Self>) {
        if matches!(
            item,
            actix_http::ws::Item::FirstText(_) | actix_http::ws::Item::FirstBinary(_)
        ) {
            // Which dashboards fragment their messages, for the migration's record.
            self.count("fragment");
        }
        match self.fragments.push(item) {
            Assembled::Pending => {}
            Assembled::Text(text) => self.on_text(&text, ctx),
            Assembled::Binary => self.on_binary(ctx),
            Assembled::Oversize => self.refuse(too_large("messages"), ctx),
            Assembled::NotUtf8 => self.fragment_error(
                ctx,
                "the message is not valid utf-8 text",
                ws::CloseCode::Invalid,
            ),
            // The codec refuses a fragment out of order before it gets here.
            Assembled::Stray => self.fragment_error(
                ctx,
                "a continuation frame with no message begun",
                ws::CloseCode::Protocol,
            ),
        }
    }

    /// A fragmented message that breaks the protocol ends the session, as a single
    /// frame that does would (see `close_code_for`).
    fn fragment_error(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        what: &str,
        code: ws::CloseCode,
    ) {
        log::info!(
            "websocket protocol error connection_id={}: {what}",
            self.conn_id
        );
        end_session(
            ctx,
            Some(error_frame("protocol", &format!("protocol error: {what}"))),
            code,
            "protocol error",
        );
    }

    /// A refused frame: counted, and answered with its `error` frame.
    fn refuse(&mut self, rejection: FrameRejection, ctx: &mut ws::WebsocketContext<Self>) {
        self.count(rejection.label);
        ctx.text(rejection.error_frame);
    }

    fn on_binary(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.count("binary");
        ctx.text(error_frame(
            "unsupported",
            "binary frames are not supported; send JSON text frames",
        ));
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        match parse_client_frame(text) {
            Ok(frame) => {
                self.count(frame.label());
                match frame {
                    ClientFrame::Subscribe(value) => self.on_subscribe(&value, ctx),
                    ClientFrame::Ack(value) => self.on_ack(&value, ctx),
                    ClientFrame::Ping => ctx.text(json!({"type": "pong"}).to_string()),
                }
            }
            Err(rejection) => self.refuse(rejection, ctx),
        }
    }

    /// Whether an event for `patient` may follow the last `subscribed` (see `named`).
    fn wants(&self, patient: &str) -> bool {
        self.named
            .as_ref()
            .is_none_or(|named| named.contains(patient))
    }

    fn count(&self, kind: &str) {
        self.state
            .metrics
            .ws_frames
            .with_label_values(&[kind])
            .inc();
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for frame in std::mem::take(&mut self.hello) {
            ctx.text(frame);
        }
        match self.replay.take() {
            Some(plan) => self.replay_then_go_live(plan, ctx),
            None => self.go_live(ctx),
        }
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.guard.take();
        Running::Stop
    }
}

impl WsSession {
    /// Counts a received frame; `false` once the session has sent more than
    /// [`MAX_FRAMES_PER_SECOND`] in the current second.
    fn within_frame_budget(&mut self, now: Instant) -> bool {
        let (started, count) = &mut self.frame_window;
        if now.duration_since(*started) >= Duration::from_secs(1) {
            *started = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        *count <= MAX_FRAMES_PER_SECOND
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let now = Instant::now();
        self.last_heard = now;
        if !self.within_frame_budget(now) {
            // Closed at the first frame over; the rest that were already read are dropped.
            if self.frame_window.1 == MAX_FRAMES_PER_SECOND + 1 {
                log::info!(
                    "websocket session sent more than {MAX_FRAMES_PER_SECOND} frames in a second, closing connection_id={}",
                    self.conn_id
                );
                self.count("flood");
                end_session(
                    ctx,
                    Some(error_frame(
                        "too_many_frames",
                        &format!(
                            "more than {MAX_FRAMES_PER_SECOND} frames in a second; reconnect and send fewer"
                        ),
                    )),
                    ws::CloseCode::Policy,
                    "too many frames",
                );
            }
            return;
        }
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => self.on_binary(ctx),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(e) => {
                log::info!(
                    "websocket protocol error connection_id={}: {e}",
                    self.conn_id
                );
                // A frame over the codec's 1 MiB is refused at its header, before Vigil
                // sees it as a message: counted with the other oversize frames.
                if matches!(e, ws::ProtocolError::Overflow) {
                    self.count("oversize");
                }
                end_session(
                    ctx,
                    Some(error_frame("protocol", &format!("protocol error: {e}"))),
                    close_code_for(&e),
                    "protocol error",
                );
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Ends a session whose token has expired.
fn end_expired(ctx: &mut ws::WebsocketContext<WsSession>) {
    end_session(
        ctx,
        Some(error_frame(
            "auth_expired",
            "your token expired; reconnect with a new one",
        )),
        ws::CloseCode::Policy,
        "token expired",
    );
}

/// Ends a session: its last `error` frame when there is something to tell the dashboard,
/// then the close frame (`code`, `why`).
fn end_session(
    ctx: &mut ws::WebsocketContext<WsSession>,
    last_frame: Option<String>,
    code: ws::CloseCode,
    why: &str,
) {
    if let Some(frame) = last_frame {
        ctx.text(frame);
    }
    ctx.close(Some(ws::CloseReason {
        code,
        description: Some(why.to_owned()),
    }));
    ctx.stop();
}

/// How often the manager ticks each WebSocket session (its ping and silence checks): a quarter
/// of the silence timeout, between 250 ms and 5 s, so a silent session is closed at most
/// that long after its timeout and a ping goes out at most that long after it is due.
pub fn tick_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

impl WsSession {
    /// The shared tick (one manager timer for every session, none per session): ping if
    /// one is due, close if the dashboard has been silent past the timeout.
    fn on_tick(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.last_heard.elapsed() > self.state.config.ws_timeout {
            log::info!(
                "websocket silent too long, closing connection_id={}",
                self.conn_id
            );
            end_session(ctx, None, ws::CloseCode::Policy, "no traffic for too long");
            return;
        }
        if self.last_ping.elapsed() >= self.state.config.ws_ping {
            self.last_ping = Instant::now();
            ctx.ping(b"vigil");
        }
    }
}

/// The close code RFC 6455 gives a broken frame: 1009 for one too big to read, 1007 for
/// text that is not UTF-8, 1002 for the rest. actix-web-actors reports bad UTF-8 only as
/// an I/O error carrying `str::Utf8Error`'s text ("invalid utf-8 sequence …").
fn close_code_for(error: &ws::ProtocolError) -> ws::CloseCode {
    match error {
        ws::ProtocolError::Overflow => ws::CloseCode::Size,
        ws::ProtocolError::Io(e) if e.to_string().contains("utf-8") => ws::CloseCode::Invalid,
        _ => ws::CloseCode::Protocol,
    }
}

impl StreamHandler<Outbound> for WsSession {
    fn handle(&mut self, item: Outbound, ctx: &mut Self::Context) {
        match item {
            Outbound::Event(event) if event.seq() <= self.last_sent => {}
            Outbound::Event(event) if !self.wants(&event.event.patient_id) => {}
            Outbound::Event(event) => {
                self.last_sent = event.seq();
                ctx.text(event.ws().clone());
                self.delivered
                    .observe(event.published.elapsed().as_secs_f64());
            }
            Outbound::Heartbeat(_) => {}
            Outbound::Tick => self.on_tick(ctx),
            Outbound::Scope(change) => {
                let body = Value::Object(scope_changed(&change));
                ctx.text(typed_frame("scope_changed", None, body));
            }
            Outbound::Close(CloseReason::AuthExpired) => end_expired(ctx),
            Outbound::Close(CloseReason::Shutdown)
                if crate::auth::token_expired(self.principal.expires_at) =>
            {
                end_expired(ctx);
            }
            Outbound::Close(CloseReason::Shutdown) => {
                end_session(ctx, None, ws::CloseCode::Away, "server shutting down");
            }
        }
    }

    /// The manager dropped our queue: it overflowed (we were too slow) or was removed.
    /// One that was full when the token expired had no room for the `Close`: the
    /// dashboard is told of the expiry, not sent to reconnect with the dead token.
    fn finished(&mut self, ctx: &mut Self::Context) {
        if crate::auth::token_expired(self.principal.expires_at) {
            end_expired(ctx);
            return;
        }
        end_session(
            ctx,
            Some(error_frame(
                "overflow",
                "you fell too far behind; reconnect with last_event_id=<last id> to be sent what you missed",
            )),
            ws::CloseCode::Again,
            "queue overflow",
        );
    }
}
