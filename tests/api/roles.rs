//! DESIGN.md's role table, endpoint by endpoint, and the two scopes it rests on:
//! a patient's own `patient_id` claim and the care team.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The patient every role below is entitled to (care team or own claim).
const PATIENT: &str = "p-1";

/// A token for each role; clinical roles are put on `PATIENT`'s care team by `setup`.
fn role_token(role: &str) -> String {
    match role {
        "patient" => token("pat", "patient", Some(PATIENT)),
        "service" => service(),
        other => token(&format!("{other}-user"), other, None),
    }
}

async fn setup() -> TestApp {
    let app = spawn_app().await;
    for role in ["doctor", "nurse", "caregiver", "dispatcher"] {
        app.assign(PATIENT, &format!("{role}-user")).await;
    }
    app
}

/// Expected statuses per role (DESIGN.md "Roles" and "HTTP API"):
/// create, read (list/get/stream), acknowledge/escalate, resolve, administer.
const TABLE: [(&str, u16, u16, u16, u16, bool); 7] = [
    ("admin", 201, 200, 200, 200, true),
    ("doctor", 403, 200, 200, 200, false),
    ("nurse", 403, 200, 200, 200, false),
    ("caregiver", 403, 200, 200, 403, false),
    ("dispatcher", 201, 200, 200, 403, false),
    ("patient", 403, 200, 403, 403, false),
    ("service", 201, 403, 403, 403, false),
];

#[actix_web::test]
async fn every_role_gets_exactly_the_access_the_design_table_grants() {
    let app = setup().await;
    for (role, create, read, ack, resolve, administer) in TABLE {
        let who = role_token(role);
        let alert = app.raise(PATIENT, "critical").await;
        let id = alert["id"].as_str().expect("id").to_owned();
        let to_resolve = app.raise(PATIENT, "critical").await;
        let resolve_id = to_resolve["id"].as_str().expect("id").to_owned();
        let (ok, created, gone) = if administer {
            (200, 201, 204)
        } else {
            (403, 403, 403)
        };
        let team = "/api/v1/patients/p-admin/care-team".to_owned();
        let member = format!("{team}/{role}-member");
        let steps: Vec<(&str, Method, String, Option<Value>, u16)> = vec![
            (
                "create alert",
                Method::POST,
                "/api/v1/alerts".into(),
                Some(alert_body(PATIENT, "high")),
                create,
            ),
            (
                "list",
                Method::GET,
                format!("/api/v1/alerts?patient_id={PATIENT}"),
                None,
                read,
            ),
            (
                "list, no filter",
                Method::GET,
                "/api/v1/alerts".into(),
                None,
                read,
            ),
            (
                "get one",
                Method::GET,
                format!("/api/v1/alerts/{id}"),
                None,
                read,
            ),
            (
                "acknowledge",
                Method::POST,
                format!("/api/v1/alerts/{id}/acknowledge"),
                Some(json!({"status": "acknowledged"})),
                ack,
            ),
            (
                "escalate",
                Method::POST,
                format!("/api/v1/alerts/{id}/acknowledge"),
                Some(json!({"status": "escalated"})),
                ack,
            ),
            (
                "seed-era acknowledge",
                Method::POST,
                format!("/api/v1/alerts/alerts/{id}/acknowledge"),
                None,
                ack,
            ),
            (
                "resolve",
                Method::POST,
                format!("/api/v1/alerts/{resolve_id}/acknowledge"),
                Some(json!({"status": "resolved"})),
                resolve,
            ),
            (
                "stream open",
                Method::GET,
                "/api/v1/alerts/stream".into(),
                None,
                read,
            ),
            (
                "stats",
                Method::GET,
                "/api/v1/alerts/stream/stats".into(),
                None,
                ok,
            ),
            ("care-team GET", Method::GET, team.clone(), None, ok),
            (
                "care-team member PUT",
                Method::PUT,
                member.clone(),
                None,
                created,
            ),
            (
                "care-team member GET",
                Method::GET,
                member.clone(),
                None,
                ok,
            ),
            (
                "care-team member DELETE",
                Method::DELETE,
                member,
                None,
                gone,
            ),
            (
                "care-team PUT",
                Method::PUT,
                team.clone(),
                Some(json!({"user_ids": []})),
                ok,
            ),
            ("care-team DELETE", Method::DELETE, team, None, gone),
            (
                "session POST",
                Method::POST,
                "/api/v1/session".into(),
                None,
                200,
            ),
        ];
        for (endpoint, method, path, body, want) in steps {
            let resp = app.send(method.clone(), &path, &who, body.as_ref()).await;
            let got = resp.status().as_u16();
            assert_eq!(
                got, want,
                "role {role}, endpoint {endpoint} ({method} {path})"
            );
        }
    }
}

#[actix_web::test]
async fn a_patient_sees_only_their_own_alerts() {
    let app = spawn_app().await;
    let own = app.raise("p-1", "high").await;
    let other = app.raise("p-2", "critical").await;
    let patient = token("pat", "patient", Some("p-1"));

    for query in ["", "?patient_id=p-1", "?after=0"] {
        let list = app
            .get_ok(&format!("/api/v1/alerts{query}"), &patient)
            .await;
        let ids: Vec<&Value> = list["alerts"]
            .as_array()
            .expect("array")
            .iter()
            .map(|a| &a["id"])
            .collect();
        assert_eq!(
            ids,
            [&own["id"]],
            "patient, GET /api/v1/alerts{query} holds only their alert"
        );
    }
    for query in ["patient_id=p-2", "patient_id=p-1,p-2", "patient_id=*"] {
        let resp = app.get(&format!("/api/v1/alerts?{query}"), &patient).await;
        expect_problem(resp, 403, &format!("patient, GET /api/v1/alerts?{query}")).await;
        let stream = app.stream_status(&patient, query).await;
        assert_eq!(stream, 403, "patient, GET /api/v1/alerts/stream?{query}");
    }
    let stream = app.stream_status(&patient, "patient_id=p-1").await;
    assert_eq!(stream, 200, "patient, stream of own patient");

    let theirs = format!("/api/v1/alerts/{}", other["id"].as_str().expect("id"));
    expect_problem(
        app.get(&theirs, &patient).await,
        404,
        "patient, GET another's alert",
    )
    .await;
    app.get_ok(
        &format!("/api/v1/alerts/{}", own["id"].as_str().expect("id")),
        &patient,
    )
    .await;
}

#[actix_web::test]
async fn care_team_membership_grants_and_withdraws_visibility_at_once() {
    let app = spawn_app().await;
    let nurse = token("alice", "nurse", None);
    let alert = app.raise("p-1", "critical").await;
    let id = alert["id"].as_str().expect("id");
    let one = format!("/api/v1/alerts/{id}");
    let named = "/api/v1/alerts?patient_id=p-1";

    let hidden = |when: &'static str| {
        let (app, nurse, one) = (&app, &nurse, &one);
        async move {
            let list = app.get(named, nurse).await;
            expect_problem(list, 403, &format!("nurse, list {when}")).await;
            expect_problem(
                app.get(one, nurse).await,
                404,
                &format!("nurse, GET one {when}"),
            )
            .await;
            let all = app.get_ok("/api/v1/alerts", nurse).await;
            assert_eq!(all["alerts"], json!([]), "nurse, unfiltered list {when}");
        }
    };
    hidden("before assignment").await;

    app.assign("p-1", "alice").await;
    let assigned = app.get_ok(named, &nurse).await;
    assert_eq!(
        assigned["alerts"][0]["id"], alert["id"],
        "nurse, list once assigned"
    );
    app.get_ok(&one, &nurse).await;

    app.unassign("p-1", "alice").await;
    hidden("after unassignment").await;
    let ack = app.ack(&nurse, id, "acknowledged", None).await;
    expect_problem(ack, 404, "nurse, acknowledge after unassignment").await;

    app.assign("p-1", "alice").await;
    let again = app.get_ok(named, &nurse).await;
    assert_eq!(
        again["alerts"][0]["id"], alert["id"],
        "nurse, list once reassigned"
    );
    let acked = app.ack(&nurse, id, "acknowledged", None).await;
    assert_eq!(acked.status(), 200, "nurse, acknowledge once reassigned");
}

#[actix_web::test]
async fn a_clinician_sees_the_union_of_their_care_teams_and_nothing_else() {
    let app = spawn_app().await;
    app.assign("p-1", "doc").await;
    app.assign("p-2", "doc").await;
    for patient in ["p-1", "p-2", "p-3"] {
        app.raise(patient, "high").await;
    }
    let doctor = token("doc", "doctor", None);
    let list: Value = app.get_ok("/api/v1/alerts", &doctor).await;
    let mut patients: Vec<&str> = list["alerts"]
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["patient_id"].as_str().expect("p"))
        .collect();
    patients.sort_unstable();
    assert_eq!(patients, ["p-1", "p-2"], "doctor, unfiltered list");
    let mixed = app.get("/api/v1/alerts?patient_id=p-2,p-3", &doctor).await;
    expect_problem(mixed, 403, "doctor, list with one foreign patient").await;
}

#[actix_web::test]
async fn only_an_admin_may_use_the_patient_wildcard() {
    let app = setup().await;
    app.raise(PATIENT, "high").await;
    app.raise("elsewhere", "high").await;
    for role in ROLES {
        let who = role_token(role);
        let want = if role == "admin" { 200 } else { 403 };
        let list = app.get("/api/v1/alerts?patient_id=*", &who).await;
        assert_eq!(
            list.status(),
            want,
            "role {role}, GET /api/v1/alerts?patient_id=*"
        );
        if want == 200 {
            let body: Value = list.json().await.expect("JSON");
            let count = body["alerts"].as_array().map(Vec::len);
            assert_eq!(count, Some(2), "admin wildcard lists every patient");
        }
        let stream = app.stream_status(&who, "patient_id=*").await;
        assert_eq!(
            stream, want,
            "role {role}, GET /api/v1/alerts/stream?patient_id=*"
        );
    }
}

#[actix_web::test]
async fn the_stream_role_query_may_only_name_the_tokens_own_role() {
    let app = setup().await;
    for role in ROLES.into_iter().filter(|r| *r != "service") {
        let who = role_token(role);
        for asked in ROLES {
            let want = if asked == role { 200 } else { 403 };
            let got = app.stream_status(&who, &format!("role={asked}")).await;
            assert_eq!(
                got, want,
                "role {role}, GET /api/v1/alerts/stream?role={asked}"
            );
        }
    }
    let nurse = role_token("nurse");
    let bogus = app
        .send(
            Method::GET,
            "/api/v1/alerts/stream?role=superuser",
            &nurse,
            None,
        )
        .await;
    let problem = expect_problem(bogus, 422, "nurse, stream with an unknown role").await;
    assert_eq!(error_fields(&problem), vec!["role"]);
}
