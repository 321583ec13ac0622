//! Real-time fan-out: the broker seam (where committed events enter), the manager actor
//! and its pure subscription table.

pub mod care_team_memory;
pub mod event;
pub mod manager;
pub mod messages;
pub mod redis;
pub mod subscriptions;

use actix::Addr;

use event::{CareTeamChange, StoredEvent};
use manager::AlertConnectionManager;
use messages::{CareTeamChanged, Publish};

/// Where services hand committed events and care-team changes. The in-process broker
/// delivers to this instance's manager; the Redis broker also reaches other instances.
pub trait Broker: Send + Sync + 'static {
    /// Called after the event's transaction committed.
    fn publish_event(&self, event: StoredEvent);
    /// Called after a care-team change committed.
    fn publish_care_team(&self, change: CareTeamChange);
    /// Whether the link to other instances is up (`None`: single instance, no link).
    fn connected(&self) -> Option<bool> {
        None
    }
}

/// Single-instance broker: straight to the local manager.
pub struct InProcessBroker {
    manager: Addr<AlertConnectionManager>,
}

impl InProcessBroker {
    /// A broker for one manager.
    pub fn new(manager: Addr<AlertConnectionManager>) -> Self {
        Self { manager }
    }
}

impl Broker for InProcessBroker {
    fn publish_event(&self, event: StoredEvent) {
        // The manager's mailbox is capped (`set_mailbox_capacity` in `manager`), but the
        // cap only makes `send` wait: `do_send` queues past it, so a committed event is
        // never refused. (Sessions are never sent to this way; see clippy.toml.)
        #[expect(
            clippy::disallowed_methods,
            reason = "a committed event must reach the manager even past its mailbox cap"
        )]
        self.manager.do_send(Publish(event));
    }

    fn publish_care_team(&self, change: CareTeamChange) {
        #[expect(
            clippy::disallowed_methods,
            reason = "a committed care-team change must reach the manager even past its mailbox cap"
        )]
        self.manager.do_send(CareTeamChanged(change));
    }
}
