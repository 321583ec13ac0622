//! The deployment id: one per database, shared by every instance that uses it.

use diesel::prelude::*;

use super::pool::AnyConnection;
use super::schema::{deployment, event_head};

/// Returns the deployment id, creating it on first use. The no-op update of
/// `event_head` takes the write lock first, so concurrent first starts agree on one id.
pub fn get_or_create(conn: &mut AnyConnection) -> QueryResult<String> {
    conn.transaction(|c| {
        diesel::update(event_head::table.filter(event_head::id.eq(1)))
            .set(event_head::seq.eq(event_head::seq))
            .execute(c)?;
        let existing: Option<String> = deployment::table
            .select(deployment::deployment_id)
            .first(c)
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        diesel::insert_into(deployment::table)
            .values((deployment::id.eq(1), deployment::deployment_id.eq(&id)))
            .execute(c)?;
        Ok(id)
    })
}
