//! Care-team administration over `/api/v1/patients/{patient_id}/care-team[/{user_id}]`.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use serde_json::{Value, json};

use crate::helpers::*;

fn members(team: &Value) -> Vec<String> {
    team["members"]
        .as_array()
        .expect("members is an array")
        .iter()
        .map(|m| m["user_id"].as_str().expect("user_id").to_owned())
        .collect()
}

async fn put(app: &TestApp, path: &str, who: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.put(app.url(path)).bearer_auth(who);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("PUT")
}

async fn delete(app: &TestApp, path: &str, who: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(who)
        .send()
        .await
        .expect("DELETE")
}

#[actix_web::test]
async fn a_patient_without_a_team_has_no_members() {
    let app = spawn_app().await;
    let team = app.get_ok("/api/v1/patients/123/care-team", &admin()).await;
    assert_eq!(team, json!({"patient_id": "123", "members": []}));
}

#[actix_web::test]
async fn putting_a_member_answers_201_the_first_time_and_200_after() {
    let app = spawn_app().await;
    let path = "/api/v1/patients/123/care-team/alice";
    let first = put(&app, path, &admin(), None).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("JSON");
    assert_eq!(first["patient_id"], "123");
    assert_eq!(first["user_id"], "alice");
    chrono::DateTime::parse_from_rfc3339(first["created_at"].as_str().expect("created_at"))
        .expect("RFC 3339");

    let again = put(&app, path, &admin(), None).await;
    assert_eq!(again.status(), 200, "assigning twice is idempotent");
    let again: Value = again.json().await.expect("JSON");
    assert_eq!(
        again["created_at"], first["created_at"],
        "the original assignment time is kept"
    );

    let member = app.get_ok(path, &admin()).await;
    assert_eq!(member, first, "GET answers what PUT did");
    let team = app.get_ok("/api/v1/patients/123/care-team", &admin()).await;
    assert_eq!(members(&team), ["alice"]);
    let other = app.get_ok("/api/v1/patients/456/care-team", &admin()).await;
    assert_eq!(
        members(&other),
        Vec::<String>::new(),
        "teams are per patient"
    );
}

#[actix_web::test]
async fn deleting_a_member_answers_204_then_404() {
    let app = spawn_app().await;
    let path = "/api/v1/patients/123/care-team/alice";
    app.assign("123", "alice").await;
    app.assign("123", "bob").await;
    assert_eq!(delete(&app, path, &admin()).await.status(), 204);
    expect_problem(delete(&app, path, &admin()).await, 404, "second DELETE").await;
    expect_problem(app.get(path, &admin()).await, 404, "GET a removed member").await;
    let team = app.get_ok("/api/v1/patients/123/care-team", &admin()).await;
    assert_eq!(members(&team), ["bob"], "only alice was removed");
    expect_problem(
        app.get("/api/v1/patients/123/care-team/nobody", &admin())
            .await,
        404,
        "GET a non-member",
    )
    .await;
}

#[actix_web::test]
async fn putting_the_collection_replaces_the_whole_team() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    app.assign("123", "bob").await;
    let resp = put(
        &app,
        "/api/v1/patients/123/care-team",
        &admin(),
        Some(json!({"user_ids": ["carol", "bob"]})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let team: Value = resp.json().await.expect("JSON");
    assert_eq!(team["patient_id"], "123");
    assert_eq!(
        members(&team),
        ["bob", "carol"],
        "members sorted by user id, alice gone"
    );
    let fetched = app.get_ok("/api/v1/patients/123/care-team", &admin()).await;
    assert_eq!(fetched, team);

    let alice = token("alice", "nurse", None);
    expect_problem(
        app.get("/api/v1/alerts?patient_id=123", &alice).await,
        403,
        "removed by replacement",
    )
    .await;
    let carol = token("carol", "nurse", None);
    assert_eq!(
        app.get("/api/v1/alerts?patient_id=123", &carol)
            .await
            .status(),
        200,
        "added by replacement"
    );

    let emptied = put(
        &app,
        "/api/v1/patients/123/care-team",
        &admin(),
        Some(json!({"user_ids": []})),
    )
    .await;
    assert_eq!(emptied.status(), 200);
    let emptied: Value = emptied.json().await.expect("JSON");
    assert_eq!(members(&emptied), Vec::<String>::new());
}

#[actix_web::test]
async fn deleting_the_collection_empties_the_team() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    app.assign("123", "bob").await;
    app.assign("456", "alice").await;
    assert_eq!(
        delete(&app, "/api/v1/patients/123/care-team", &admin())
            .await
            .status(),
        204
    );
    let team = app.get_ok("/api/v1/patients/123/care-team", &admin()).await;
    assert_eq!(team["members"], json!([]));
    let other = app.get_ok("/api/v1/patients/456/care-team", &admin()).await;
    assert_eq!(
        members(&other),
        ["alice"],
        "other patients' teams are untouched"
    );
    assert_eq!(
        delete(&app, "/api/v1/patients/123/care-team", &admin())
            .await
            .status(),
        204,
        "clearing an empty team"
    );
}

#[actix_web::test]
async fn a_malformed_patient_id_in_the_path_is_422_naming_it() {
    let app = spawn_app().await;
    let long = "p".repeat(65);
    for patient in ["a%20b", "semi%3Bcolon", "%2A", long.as_str()] {
        let team = format!("/api/v1/patients/{patient}/care-team");
        let member = format!("{team}/alice");
        let answers = [
            ("GET team", app.get(&team, &admin()).await),
            (
                "PUT team",
                put(&app, &team, &admin(), Some(json!({"user_ids": ["alice"]}))).await,
            ),
            ("DELETE team", delete(&app, &team, &admin()).await),
            ("GET member", app.get(&member, &admin()).await),
            ("PUT member", put(&app, &member, &admin(), None).await),
            ("DELETE member", delete(&app, &member, &admin()).await),
        ];
        for (what, resp) in answers {
            let problem = expect_problem(resp, 422, &format!("{what} for patient {patient}")).await;
            assert_eq!(
                error_fields(&problem),
                vec!["patient_id"],
                "{what} for {patient}: {problem}"
            );
        }
    }
}

#[actix_web::test]
async fn a_replacement_body_must_list_user_ids() {
    let app = spawn_app().await;
    let path = "/api/v1/patients/123/care-team";
    for body in [
        json!({}),
        json!({"user_ids": "alice"}),
        json!({"user_ids": [1]}),
        json!({"user_ids": [""]}),
    ] {
        let problem = expect_problem(
            put(&app, path, &admin(), Some(body.clone())).await,
            422,
            &body.to_string(),
        )
        .await;
        let fields = error_fields(&problem);
        assert!(
            fields == ["user_ids"] || fields == ["user_ids[0]"],
            "{body}: {problem}"
        );
    }
    // A misspelt or extra field is refused, as on alerts: `{"user_ids": [], "userids":
    // ["alice"]}` must not empty the team while the caller believes alice is on it.
    for (body, field) in [
        (json!({"user_ids": ["x"], "foo": 1}), "foo"),
        (json!({"user_ids": [], "userids": ["alice"]}), "userids"),
    ] {
        let problem = expect_problem(
            put(&app, path, &admin(), Some(body.clone())).await,
            422,
            &body.to_string(),
        )
        .await;
        assert_eq!(error_fields(&problem), vec![field], "{body}: {problem}");
    }
    let no_body = put(&app, path, &admin(), None).await;
    expect_problem(no_body, 400, "PUT collection without a body").await;
    let team = app.get_ok(path, &admin()).await;
    assert_eq!(team["members"], json!([]), "nothing changed");
}

#[actix_web::test]
async fn only_admins_may_read_or_change_care_teams() {
    let app = spawn_app().await;
    app.assign("123", "alice").await;
    for (role, who) in [
        ("nurse", token("alice", "nurse", None)),
        ("doctor", token("dr", "doctor", None)),
        ("dispatcher", token("disp", "dispatcher", None)),
        ("patient", token("pat", "patient", Some("123"))),
        ("service", service()),
    ] {
        let team = "/api/v1/patients/123/care-team";
        let member = "/api/v1/patients/123/care-team/mallory";
        expect_problem(app.get(team, &who).await, 403, &format!("{role} GET team")).await;
        expect_problem(
            app.get("/api/v1/patients/123/care-team/alice", &who).await,
            403,
            &format!("{role} GET member"),
        )
        .await;
        expect_problem(
            put(&app, member, &who, None).await,
            403,
            &format!("{role} PUT member"),
        )
        .await;
        let replace = put(&app, team, &who, Some(json!({"user_ids": ["mallory"]}))).await;
        expect_problem(replace, 403, &format!("{role} PUT team")).await;
        expect_problem(
            delete(&app, "/api/v1/patients/123/care-team/alice", &who).await,
            403,
            &format!("{role} DELETE member"),
        )
        .await;
        expect_problem(
            delete(&app, team, &who).await,
            403,
            &format!("{role} DELETE team"),
        )
        .await;
    }
    let team = app.get_ok("/api/v1/patients/123/care-team", &admin()).await;
    assert_eq!(
        members(&team),
        ["alice"],
        "no refused request changed the team"
    );
}

#[actix_web::test]
async fn an_add_and_a_remove_made_at_once_leave_the_stream_on_the_team_the_database_holds() {
    // The two changes commit in some order; the streams must end up with the one the
    // database ends up with (they followed the first commit for seconds, until the
    // periodic read-back, when the changes reached the manager reversed).
    let app = spawn_app().await;
    app.assign("keep", "tu").await;
    let mut sse = app.sse(&token("tu", "nurse", None), "").await;
    sse.connected().await;
    let path = "/api/v1/patients/r0/care-team/tu";
    let admin = admin();
    for round in 0..40 {
        let (added, removed) =
            tokio::join!(put(&app, path, &admin, None), delete(&app, path, &admin));
        assert!(added.status().is_success(), "{}", added.status());
        assert!(matches!(removed.status().as_u16(), 204 | 404));
        let team = app.get_ok("/api/v1/patients/r0/care-team", &admin).await;
        let member = members(&team).contains(&"tu".to_owned());
        let probe = app.raise("r0", "critical").await;
        let sentinel = app.raise("keep", "low").await;
        let mut probe_seen = false;
        loop {
            let event = sse.next_alert_event().await;
            let data: Value = serde_json::from_str(&event.data).expect("json");
            if data["id"] == probe["id"] {
                probe_seen = true;
            }
            if data["id"] == sentinel["id"] {
                break;
            }
        }
        assert_eq!(
            probe_seen, member,
            "round {round}: the stream shows r0's alert exactly when the database has tu on r0's team"
        );
        if member {
            app.unassign("r0", "tu").await;
        }
    }
}

/// Invalid UTF-8 in a URL's user id was decoded to U+FFFD and stored: `jos%e9` and
/// `jos%e8`, two people, became one member ("already a member", and a DELETE of either
/// removed it). It is a 422 naming `user_id`, in a path or a body, and nothing is stored.
#[actix_web::test]
async fn a_user_id_that_is_not_utf8_in_the_url_is_refused_not_merged() {
    let app = spawn_app().await;
    let root = admin();
    for (method, path) in [
        (reqwest::Method::PUT, "/api/v1/patients/p1/care-team/jos%e9"),
        (reqwest::Method::PUT, "/api/v1/patients/p1/care-team/%c0%af"),
        (
            reqwest::Method::DELETE,
            "/api/v1/patients/p1/care-team/jos%ff",
        ),
        (reqwest::Method::GET, "/api/v1/patients/p1/care-team/jos%e8"),
    ] {
        let resp = app.send(method.clone(), path, &root, None).await;
        let problem = expect_problem(resp, 422, &format!("{method} {path}")).await;
        assert_eq!(error_fields(&problem), ["user_id"], "{problem}");
    }
    let body = serde_json::json!({"user_ids": ["jos\u{fffd}"]});
    let resp = put(&app, "/api/v1/patients/p1/care-team", &root, Some(body)).await;
    let problem = expect_problem(resp, 422, "a body user id").await;
    assert_eq!(error_fields(&problem), ["user_ids[0]"], "{problem}");
    let team = app.get_ok("/api/v1/patients/p1/care-team", &root).await;
    assert_eq!(team["members"], serde_json::json!([]), "nothing stored");
}

/// A member whose id holds a character that prints as nothing, or white space at an
/// end, was stored and listed beside the real one looking the same, while matching no
/// one's token: the admin saw the right nurse on the team and the nurse saw nothing.
/// Such ids are a 422, in a path or a body, and a token carrying one as `sub` is a 401.
#[actix_web::test]
async fn look_alike_user_ids_are_refused_on_the_care_team_and_in_tokens() {
    let app = spawn_app().await;
    let root = admin();
    for encoded in [
        "nurse1%E2%80%8B",
        "%20nurse1",
        "nurse1%20",
        "%E2%80%AEnurse1",
    ] {
        let path = format!("/api/v1/patients/p1/care-team/{encoded}");
        let resp = app.send(reqwest::Method::PUT, &path, &root, None).await;
        let problem = expect_problem(resp, 422, &format!("PUT {path}")).await;
        assert_eq!(error_fields(&problem), ["user_id"], "{problem}");
    }
    for look_alike in [
        " nurse2",
        "nurse2 ",
        "a\u{200b}b",
        "\u{202e}evil",
        "\u{feff}x",
    ] {
        let body = serde_json::json!({"user_ids": ["nurse2", look_alike]});
        let resp = put(&app, "/api/v1/patients/p1/care-team", &root, Some(body)).await;
        let problem = expect_problem(resp, 422, &format!("{look_alike:?} in a body")).await;
        assert_eq!(error_fields(&problem), ["user_ids[1]"], "{problem}");
    }
    let team = app.get_ok("/api/v1/patients/p1/care-team", &root).await;
    assert_eq!(team["members"], serde_json::json!([]), "nothing stored");
    // An inner space is an ordinary id.
    let body = serde_json::json!({"user_ids": ["Dr Who"]});
    let resp = put(&app, "/api/v1/patients/p1/care-team", &root, Some(body)).await;
    assert_eq!(resp.status(), 200);
    for sub in ["nurse1\u{200b}", " nurse1", "\u{2066}nurse1"] {
        let resp = app.get("/api/v1/alerts", &token(sub, "nurse", None)).await;
        expect_problem(resp, 401, &format!("a token for {sub:?}")).await;
    }
}

/// "." and ".." fit the id character sets, but the care-team API names ids in URL paths,
/// and every WHATWG URL parser (a browser's `fetch`, Node's) rewrites such a segment
/// before sending: a patient named ".." could be raised for and never given a care team,
/// and a member named ".." was added through a body and could never be taken off. Both are
/// refused wherever an id comes in: an alert's or a filter's patient, a body's user id, a
/// token's `sub`.
#[actix_web::test]
async fn dot_segment_ids_are_refused_wherever_an_id_comes_in() {
    let app = spawn_app().await;
    let root = admin();
    for id in [".", ".."] {
        let resp = app
            .post_json("/api/v1/alerts", &service(), &alert_body(id, "high"))
            .await;
        let problem = expect_problem(resp, 422, &format!("an alert for patient {id}")).await;
        assert_eq!(error_fields(&problem), ["patient_id"], "{problem}");

        let resp = app
            .get(&format!("/api/v1/alerts?patient_id=p1,{id}"), &root)
            .await;
        let problem = expect_problem(resp, 422, &format!("a filter naming {id}")).await;
        assert_eq!(error_fields(&problem), ["patient_id"], "{problem}");

        let body = serde_json::json!({"user_ids": ["ann", id]});
        let resp = put(&app, "/api/v1/patients/p1/care-team", &root, Some(body)).await;
        let problem = expect_problem(resp, 422, &format!("a member named {id}")).await;
        assert_eq!(error_fields(&problem), ["user_ids[1]"], "{problem}");

        let resp = app.get("/api/v1/alerts", &token(id, "admin", None)).await;
        let problem = expect_problem(resp, 401, &format!("a token for {id}")).await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("sub")),
            "{problem}"
        );
    }
    let team = app.get_ok("/api/v1/patients/p1/care-team", &root).await;
    assert_eq!(team["members"], serde_json::json!([]), "nothing stored");
    // Three dots are no path segment of that kind: an ordinary id.
    assert_eq!(app.raise("...", "low").await["patient_id"], "...");
}

/// Two instances on one database adding the same member at the same moment (two admins,
/// or a provisioning script retried against the other instance): one of them adds it
/// (201), the other finds it there (200). On PostgreSQL each had checked and then
/// inserted, so the second insert hit the primary key and answered 500. (The race is
/// PostgreSQL's: on SQLite each instance's writer takes the file's write lock first, so
/// this checks the race in the suite's PostgreSQL pass.)
#[actix_web::test]
async fn the_same_member_added_on_two_instances_at_once_is_added_once_without_an_error() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    let root = admin();
    for round in 0..40 {
        let path = format!("/api/v1/patients/race/care-team/u{round}");
        let (on_a, on_b) = tokio::join!(put(&a, &path, &root, None), put(&b, &path, &root, None));
        let mut statuses = [on_a.status().as_u16(), on_b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "round {round}");
    }
    let team = a.get_ok("/api/v1/patients/race/care-team", &admin()).await;
    assert_eq!(members(&team).len(), 40, "{team}");
}

/// Two instances replacing one care team at the same moment: the team ends as one of
/// the two lists, never a mix of both. On PostgreSQL each replacement had read the team,
/// then removed and added, so both read the same team and each added its own members.
/// (A PostgreSQL race, checked in the suite's PostgreSQL pass; see above.)
#[actix_web::test]
async fn two_replacements_of_one_team_at_once_end_as_one_of_them() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, |_| {}).await;
    let root = admin();
    for round in 0..30 {
        let path = format!("/api/v1/patients/swap-{round}/care-team");
        let (on_a, on_b) = tokio::join!(
            put(&a, &path, &root, Some(json!({"user_ids": ["from-a"]}))),
            put(&b, &path, &root, Some(json!({"user_ids": ["from-b"]})))
        );
        assert_eq!(
            (on_a.status().as_u16(), on_b.status().as_u16()),
            (200, 200),
            "round {round}"
        );
        let team = a.get_ok(&path, &root).await;
        let members = members(&team);
        assert!(
            members == ["from-a"] || members == ["from-b"],
            "round {round}: {members:?}"
        );
    }
}

/// Threat: the database loses committed care-team changes while the server runs (a
/// failover to an asynchronous standby). The next change was handed a version the
/// server had already counted, was taken for one its streams already followed, and was
/// never applied: a nurse put on a patient did not get its alerts. The version now moves
/// past every one counted, as event ids do.
#[actix_web::test]
async fn after_the_database_lost_care_team_changes_the_next_one_still_reaches_the_streams() {
    let app = spawn_app_with(|c| c.tail_poll = std::time::Duration::from_secs(3600)).await;
    app.assign("anchor", "ida").await;
    let mut sse = app.sse(&token("ida", "nurse", None), "").await;
    sse.connected().await;
    app.assign("p-before", "ida").await;
    let told = sse.until(WAIT, |e| e.event == "scope_changed").await;
    assert!(told.data.contains("p-before"), "{told:?}");

    run_sql(
        &app.database_url,
        &["UPDATE event_head SET care_team_version = 0 WHERE id = 1"],
    );
    app.assign("p-after", "ida").await;
    let told = sse.until(WAIT, |e| e.event == "scope_changed").await;
    let data: Value = serde_json::from_str(&told.data).expect("json");
    assert_eq!(data["added"], json!(["p-after"]), "{data}");
    let alert = app.raise("p-after", "critical").await;
    let event = sse.until(WAIT, |e| e.event == "alert").await;
    assert_eq!(event.id, alert["seq"].to_string(), "and its alerts follow");
}
