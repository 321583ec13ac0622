//! The manager's periodic work: SSE heartbeats and WebSocket ticks in groups, token
//! expiry, and giving closed streams' memory back.

use tokio::sync::mpsc::error::TrySendError;

use super::{AlertConnectionManager, HEARTBEAT_GROUPS, WS_TICK_GROUPS};
use crate::hub::messages::{CloseReason, Outbound, Transport};
use crate::hub::subscriptions::ConnId;
use crate::memory;
use crate::transport::frames::sse_control;

impl AlertConnectionManager {
    /// Sends the heartbeat to one group of SSE streams ([`HEARTBEAT_GROUPS`]); each
    /// stream still gets one per heartbeat period.
    pub(super) fn heartbeat(&mut self) {
        let group = self.heartbeat_group;
        self.heartbeat_group = (group + 1) % u64::from(HEARTBEAT_GROUPS);
        let frame = std::sync::Arc::new(sse_control(
            "heartbeat",
            &serde_json::json!({ "timestamp": crate::domain::format_millis(crate::domain::now_millis()) }),
        ));
        self.offer_to_group(Transport::Sse, HEARTBEAT_GROUPS, group, || {
            Outbound::Heartbeat(frame.clone())
        });
    }

    /// Ticks one group of WebSocket sessions ([`WS_TICK_GROUPS`]): each session is ticked
    /// once per `ws_tick` and does its own ping and silence checks then. A session whose
    /// queue is full misses a tick; one whose queue is closed is gone.
    pub(super) fn tick_websockets(&mut self) {
        let group = self.ws_tick_group;
        self.ws_tick_group = (group + 1) % u64::from(WS_TICK_GROUPS);
        self.offer_to_group(Transport::Ws, WS_TICK_GROUPS, group, || Outbound::Tick);
    }

    /// Offers `item()` to the clients of `transport` in `group` of `groups` (by id). A
    /// full queue skips this one (a heartbeat or tick is not worth cutting a client off
    /// for); a closed one means the client is gone.
    fn offer_to_group(
        &mut self,
        transport: Transport,
        groups: u32,
        group: u64,
        item: impl Fn() -> Outbound,
    ) {
        let mut gone = Vec::new();
        for (id, client) in &self.clients {
            if client.transport == transport
                && id % u64::from(groups) == group
                && let Err(TrySendError::Closed(_)) = client.tx.try_send(item())
            {
                gone.push(*id);
            }
        }
        for id in gone {
            self.remove(id);
        }
    }

    /// Ends, with a final `auth_expired`, every stream whose token's `exp` has passed: a
    /// stream outlives the request that checked its token. Run on the manager's
    /// periodic tick ([`super::EXPIRY_TICK`]).
    pub(super) fn expire_tokens(&mut self) {
        let now = chrono::Utc::now().timestamp();
        let expired: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(client) = self.clients.get(&id) {
                log::info!(
                    "token expired, ending stream connection_id={id} user_id={}",
                    crate::log_value::quoted_if_needed(&client.user_id)
                );
                let _ = client
                    .tx
                    .try_send(Outbound::Close(CloseReason::AuthExpired));
            }
            self.remove(id);
        }
    }

    /// Once a wave of streams has closed, shrinks the tables they were in and has the
    /// allocator return their freed memory (see [`memory`]).
    pub(super) fn release_memory(&mut self) {
        if !self
            .closed_streams
            .trim_due(self.clients.len(), std::time::Instant::now())
        {
            return;
        }
        self.clients.shrink_to_fit();
        self.streams_per_user.shrink_to_fit();
        self.subscriptions.shrink_to_fit();
        memory::release_free_memory();
    }
}
