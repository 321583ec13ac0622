//! A first end-to-end pass: raise, stream, acknowledge.

use crate::helpers::*;

#[actix_web::test]
async fn a_raised_alert_reaches_a_nurse_stream() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    let nurse = token("alice", "nurse", None);
    let mut sse = app.sse(&nurse, "patient_id=123").await;
    assert_eq!(sse.status, 200);
    sse.connected().await;
    let alert = app.raise("123", "critical").await;
    let event = sse.next_alert_event().await;
    assert_eq!(event.event, "alert");
    assert_eq!(event.id, alert["seq"].to_string());
}
