#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use tokio::sync::mpsc;

use super::{AlertConnectionManager, ManagerSettings};
use crate::db::models::CareTeamRow;
use crate::db::{care_team, events};
use crate::domain::Role;
use crate::hub::messages::{Connect, Outbound, Transport};
use crate::metrics::Metrics;
use crate::scope::{Allowed, Requested};

/// A registration's care team can be read before a change another instance made, and
/// reach the manager after a read of the care teams covered that change (for an event
/// stamped with it) — a change the manager then never applies one by one, nor remembers
/// for registrations. Such a stream must have the care teams read back at once, not at
/// the periodic read-back (an hour away here).
#[actix_web::test]
async fn a_stream_registered_with_an_older_care_team_version_is_read_back_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = crate::transport::test_support::migrated_pool(&dir);
    {
        let mut conn = pool.get().expect("connection");
        for patient in ["p1", "p2"] {
            let row = CareTeamRow {
                patient_id: patient.to_owned(),
                user_id: "nina".to_owned(),
                created_at: 0,
            };
            care_team::assign(&mut conn, &row).expect("assigned");
            events::bump_care_team_version(&mut conn, &Default::default()).expect("version");
        }
    }
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let manager = AlertConnectionManager::new(
        pool,
        metrics,
        ManagerSettings::quiet(),
        crate::db::events::IssuedIds::default(),
        crate::db::events::CareTeamVersionsSeen::starting_at(2),
    )
    .start();
    let (tx, mut rx) = mpsc::channel(8);
    manager
        .send(Connect {
            conn_id: 1,
            user_id: "nina".to_owned(),
            role: Role::Nurse,
            requested: Requested::Everything,
            allowed: Allowed::Patients(BTreeSet::from(["p1".to_owned()])),
            allowed_at: Instant::now(),
            allowed_version: Some(1),
            transport: Transport::Sse,
            expires_at: i64::MAX,
            tx,
        })
        .await
        .expect("manager")
        .expect("registered");
    let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("told within 10 s")
        .expect("queue open");
    let Outbound::Scope(change) = item else {
        panic!("expected scope_changed, got {item:?}");
    };
    assert_eq!(change.added, vec!["p2".to_owned()]);
    assert_eq!(change.patients, vec!["p1".to_owned(), "p2".to_owned()]);
}
