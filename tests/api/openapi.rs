//! The OpenAPI 3.1 document (`/api/v1/openapi.json`) against the server it describes:
//! every registered route is documented with exactly its methods, every example is valid
//! against its schema, the request examples are accepted by a real server, real answers
//! match the documented schemas, and the Swagger UI works offline.
//!
//! How "every route is documented" cannot rot: the route table is *read from the source*
//! of `routes::configure` (the one place routes are registered; `startup.rs` is checked to
//! register nothing else), so a route added there without a `#[utoipa::path]` fails the
//! set comparison below. The reading is in turn checked against the running server: for
//! every path, a method it does not serve must answer 405 whose `Allow` lists exactly the
//! documented methods (actix derives `Allow` from the registered routes, so a method
//! served but not documented, or documented but not served, shows up), and paths nearby
//! that nobody registered must answer 404. A registration this reader does not understand
//! (a macro-routed handler, `.route("/path", …)`, a default service) fails loudly rather
//! than being skipped.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

type Routes = BTreeMap<String, BTreeSet<String>>;
/// A request and the status it must get: method, path, documented template, bearer
/// token (empty for none), JSON body.
type Case<'a> = (Method, String, &'a str, String, Option<Value>, u16);

const ROUTES_SOURCE: &str = include_str!("../../src/routes/mod.rs");
const STARTUP_SOURCE: &str = include_str!("../../src/startup.rs");
const METHODS: [&str; 6] = ["get", "post", "put", "delete", "patch", "head"];

/// The body of `pub fn configure`, without `//` comments.
fn configure_body() -> String {
    let start = ROUTES_SOURCE
        .find("pub fn configure(")
        .expect("routes::configure exists");
    let rest = &ROUTES_SOURCE[start..];
    let end = rest.find("\n}\n").expect("end of configure");
    rest[..end]
        .lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a string literal starting at `at` (which must be `"`): (contents, index after it).
fn string_literal(src: &[u8], at: usize) -> (String, usize) {
    assert_eq!(src[at], b'"');
    let mut i = at + 1;
    let mut out = Vec::new();
    while src[i] != b'"' {
        if src[i] == b'\\' {
            i += 1;
        }
        out.push(src[i]);
        i += 1;
    }
    (String::from_utf8(out).expect("UTF-8 literal"), i + 1)
}

/// Every (path, methods) that `routes::configure` registers, read from its source with
/// a small scanner that follows `web::scope` prefixes and `web::resource` bodies by
/// parenthesis depth.
fn registered_routes() -> (Routes, usize) {
    let body = configure_body();
    let src = body.as_bytes();
    let mut routes = Routes::new();
    let mut scopes: Vec<(String, i32)> = Vec::new();
    let mut resource: Option<(String, i32)> = None;
    let mut swagger_uis = 0;
    let mut depth = 0i32;
    let mut i = 0;
    let at = |i: usize, token: &str| src[i..].starts_with(token.as_bytes());
    while i < src.len() {
        if src[i] == b'"' {
            i = string_literal(src, i).1;
            continue;
        }
        if at(i, "web::scope(\"") {
            let (prefix, next) = string_literal(src, i + "web::scope(".len());
            scopes.push((prefix, depth));
            depth += 1;
            i = next;
            continue;
        }
        if at(i, "web::resource(\"") {
            let (path, next) = string_literal(src, i + "web::resource(".len());
            let full: String = scopes.iter().map(|(p, _)| p.as_str()).collect::<String>() + &path;
            assert!(
                !routes.contains_key(&full),
                "{full} is registered twice; the reader (and actix) would see only one"
            );
            routes.insert(full.clone(), BTreeSet::new());
            resource = Some((full, depth));
            depth += 1;
            i = next;
            continue;
        }
        if let Some(method) = METHODS.iter().find(|m| at(i, &format!("web::{m}()"))) {
            let (path, _) = resource
                .as_ref()
                .unwrap_or_else(|| panic!("web::{method}() outside a web::resource; teach tests/api/openapi.rs this registration"));
            routes
                .get_mut(path)
                .expect("resource")
                .insert((*method).to_owned());
            i += "web::()".len() + method.len();
            continue;
        }
        if at(i, ".service(") {
            let rest = String::from_utf8_lossy(&src[i + ".service(".len()..]);
            let arg = rest.trim_start();
            if arg.starts_with("openapi::swagger_ui()") {
                swagger_uis += 1;
            } else {
                assert!(
                    arg.starts_with("web::resource(") || arg.starts_with("web::scope("),
                    "routes::configure registers a service this test cannot read: {}",
                    arg.chars().take(60).collect::<String>()
                );
            }
        }
        for unsupported in [".route(\"", ".default_service(", "web::route()"] {
            assert!(
                !at(i, unsupported),
                "routes::configure uses `{unsupported}`; teach tests/api/openapi.rs to read it"
            );
        }
        match src[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                // A scope or resource recorded at depth d lives inside the `.service(`
                // that encloses it: it ends when that call's parenthesis closes.
                scopes.retain(|(_, d)| *d <= depth);
                if resource.as_ref().is_some_and(|(_, d)| *d > depth) {
                    resource = None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    assert_eq!(
        depth, 0,
        "unbalanced parentheses while reading routes::configure"
    );
    (routes, swagger_uis)
}

fn documented_routes(doc: &Value) -> Routes {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()) || *k == "options" || *k == "trace")
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete path for a template (`{alert_id}` etc. replaced by harmless values).
fn concrete(template: &str) -> String {
    template
        .replace("{alert_id}", "00000000-0000-7000-8000-000000000000")
        .replace("{patient_id}", "p1")
        .replace("{user_id}", "u1")
}

async fn document(app: &TestApp) -> Value {
    let resp = app.get("/api/v1/openapi.json", "").await;
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("the document is JSON")
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_and_lists_every_route_with_exactly_its_methods() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().expect("`openapi` member");
    assert!(
        version.starts_with("3.1"),
        "OpenAPI {version}, expected 3.1"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Nothing is registered outside routes::configure.
    assert!(
        STARTUP_SOURCE.contains(".configure(routes::configure)"),
        "startup registers the routes through routes::configure"
    );
    for registration in [".service(", ".route(", ".default_service("] {
        assert!(
            !STARTUP_SOURCE.contains(registration),
            "startup.rs calls `{registration}`: register routes in routes::configure, where this test reads them"
        );
    }

    let (registered, swagger_uis) = registered_routes();
    assert!(
        registered.len() >= 15,
        "the reader found too few routes ({}) to be trusted: {registered:?}",
        registered.len()
    );
    assert_eq!(swagger_uis, 1, "the Swagger UI is registered once");
    let documented = documented_routes(&doc);
    let missing: Vec<_> = registered
        .iter()
        .filter(|(path, methods)| documented.get(*path) != Some(methods))
        .collect();
    let extra: Vec<_> = documented
        .iter()
        .filter(|(path, methods)| registered.get(*path) != Some(methods))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the document and routes::configure disagree.\n registered but not documented as such: {missing:?}\n documented but not registered as such: {extra:?}"
    );

    // Operation ids are unique (OpenAPI 3.1 requires it; code generators name their
    // functions after them), HEAD twins included.
    let mut ids = BTreeMap::<String, String>::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(id) = item[method]["operationId"].as_str() else {
                continue;
            };
            let here = format!("{method} {template}");
            if let Some(first) = ids.insert(id.to_owned(), here.clone()) {
                panic!("operationId {id} is used by {first} and {here}");
            }
        }
    }
    assert!(ids.len() >= 30, "too few operations read: {ids:?}");

    // The reading matches the running server: a method not served answers 405 with an
    // `Allow` of exactly the documented methods.
    for (template, methods) in &documented {
        let path = concrete(template);
        let probe = [Method::PATCH, Method::TRACE]
            .into_iter()
            .find(|m| !methods.contains(&m.as_str().to_ascii_lowercase()))
            .expect("a method the path does not serve");
        let resp = app.send(probe.clone(), &path, &admin(), None).await;
        assert_eq!(
            resp.status(),
            405,
            "{probe} {path}: a documented path must exist on the server"
        );
        let mut allowed: Vec<String> = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty())
            .collect();
        allowed.sort_unstable();
        let want: Vec<String> = methods.iter().cloned().collect();
        assert_eq!(
            allowed, want,
            "{path}: methods served (Allow) vs documented"
        );
    }

    // Paths nobody registered are not served (so nothing undocumented hides beside them).
    for path in [
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v2/alerts",
        "/api/v1/patients",
        "/api/v1/patients/p1",
        "/api/v1/care-team",
        "/api/v1/alerts/stream/stats/x",
        "/api/v1/alerts/x/acknowledge/x",
        "/api/v1/session/x",
        "/api/v1/openapi.yaml",
        "/openapi.json",
        "/swagger-ui/",
        "/docs",
        "/admin",
        "/debug",
        "/api/docs/no-such-asset.js",
    ] {
        for method in [Method::GET, Method::POST] {
            let resp = app.send(method.clone(), path, &admin(), None).await;
            expect_problem(resp, 404, &format!("{method} {path} (undocumented)")).await;
        }
    }
}

/// Every example in the document with the schema it must satisfy: schema-level
/// `example`/`examples`, and `example`/`examples` of media types, parameters and headers.
fn collect_examples(
    value: &Value,
    pointer: &str,
    in_schema: bool,
    out: &mut Vec<(String, Value, Value)>,
) {
    let Some(obj) = value.as_object() else {
        if let Some(items) = value.as_array() {
            for (i, item) in items.iter().enumerate() {
                collect_examples(item, &format!("{pointer}/{i}"), in_schema, out);
            }
        }
        return;
    };
    if in_schema {
        if let Some(example) = obj.get("example") {
            out.push((format!("{pointer}/example"), example.clone(), value.clone()));
        }
        if let Some(examples) = obj.get("examples").and_then(Value::as_array) {
            for (i, example) in examples.iter().enumerate() {
                out.push((
                    format!("{pointer}/examples/{i}"),
                    example.clone(),
                    value.clone(),
                ));
            }
        }
        for (key, child) in obj {
            match key.as_str() {
                "properties" | "$defs" | "patternProperties" => {
                    for (name, schema) in child.as_object().into_iter().flatten() {
                        collect_examples(schema, &format!("{pointer}/{key}/{name}"), true, out);
                    }
                }
                "items" | "additionalProperties" | "not" | "contains" | "propertyNames" => {
                    collect_examples(child, &format!("{pointer}/{key}"), true, out);
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    collect_examples(child, &format!("{pointer}/{key}"), true, out);
                }
                _ => {}
            }
        }
        return;
    }
    if let Some(schema) = obj.get("schema") {
        if let Some(example) = obj.get("example") {
            out.push((
                format!("{pointer}/example"),
                example.clone(),
                schema.clone(),
            ));
        }
        for (name, example) in obj
            .get("examples")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(value) = example.get("value") {
                out.push((
                    format!("{pointer}/examples/{name}"),
                    value.clone(),
                    schema.clone(),
                ));
            }
        }
    }
    for (key, child) in obj {
        let child_pointer = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
        match key.as_str() {
            "schema" => collect_examples(child, &child_pointer, true, out),
            "schemas" if pointer == "/components" => {
                for (name, schema) in child.as_object().into_iter().flatten() {
                    collect_examples(schema, &format!("{child_pointer}/{name}"), true, out);
                }
            }
            "example" | "examples" => {}
            _ => collect_examples(child, &child_pointer, false, out),
        }
    }
}

/// A JSON Schema 2020-12 validator for one schema of the document (its `$ref`s into
/// `#/components/schemas` resolve against the document's components).
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("not a valid JSON Schema ({e}): {schema}"))
}

fn errors_of(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    validator(doc, schema)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[actix_web::test]
async fn every_example_in_the_document_is_valid_against_its_schema() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut examples = Vec::new();
    collect_examples(&doc, "", false, &mut examples);
    let pointers: Vec<&str> = examples.iter().map(|(p, _, _)| p.as_str()).collect();
    for wanted in [
        "/components/schemas/NewAlert/example",
        "/components/schemas/Alert/example",
        "/components/schemas/AckRequest/example",
        "/components/schemas/Problem/example",
        "/components/schemas/ReplaceCareTeam/example",
        "/paths/~1api~1v1~1alerts/post/requestBody/content/application~1json/example",
        "/paths/~1api~1v1~1alerts~1{alert_id}~1acknowledge/post/requestBody/content/application~1json/example",
        "/paths/~1api~1v1~1alerts~1{alert_id}/get/parameters/0/example",
    ] {
        assert!(
            pointers.contains(&wanted),
            "expected an example at {wanted}; found {pointers:#?}"
        );
    }
    for (pointer, example, schema) in &examples {
        let errors = errors_of(&doc, schema, example);
        assert!(
            errors.is_empty(),
            "the example at {pointer} does not match its schema: {errors:?}\nexample: {example}\nschema: {schema}"
        );
    }

    // The checker can fail: broken copies of the examples are refused.
    let new_alert = json!({"$ref": "#/components/schemas/NewAlert"});
    let good = doc["components"]["schemas"]["NewAlert"]["example"].clone();
    for (field, bad) in [
        ("severity", json!("urgent")),
        ("patient_id", json!("12 3")),
        ("title", json!("")),
        ("unknown", json!(1)),
        ("data", json!([1])),
    ] {
        let mut broken = good.clone();
        broken[field] = bad;
        assert!(
            !errors_of(&doc, &new_alert, &broken).is_empty(),
            "a NewAlert with a bad {field} passed the schema: {broken}"
        );
    }
    let alert = json!({"$ref": "#/components/schemas/Alert"});
    let mut broken = doc["components"]["schemas"]["Alert"]["example"].clone();
    broken["created_at"] = json!("yesterday");
    assert!(
        !errors_of(&doc, &alert, &broken).is_empty(),
        "formats are checked (date-time)"
    );
}

/// The documented response of `method template` for `status` and the answer's content
/// type; validates the body against its schema and returns it (JSON, or a string).
async fn check_answer(
    doc: &Value,
    method: &str,
    template: &str,
    resp: reqwest::Response,
) -> (u16, Value) {
    let what = format!("{} {template}", method.to_ascii_uppercase());
    let status = resp.status().as_u16();
    assert!(
        resp.headers().contains_key("x-request-id"),
        "{what}: every answer carries X-Request-Id"
    );
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let text = resp.text().await.expect("body");
    let operation = &doc["paths"][template][method];
    assert!(operation.is_object(), "{what} is not documented");
    let documented = &operation["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{what} answered {status}, which is not documented: {text}"
    );
    assert!(
        documented["headers"]["X-Request-Id"].is_object(),
        "{what} {status}: X-Request-Id is documented"
    );
    let content = documented["content"].as_object();
    let Some(content) = content.filter(|c| !c.is_empty()) else {
        assert!(
            text.is_empty(),
            "{what} {status}: an undocumented body: {text}"
        );
        return (status, Value::Null);
    };
    let content_type = content_type.unwrap_or_else(|| panic!("{what} {status}: no Content-Type"));
    let (_, media) = content
        .iter()
        .find(|(ct, _)| ct.split(';').next().unwrap_or_default().trim() == content_type)
        .unwrap_or_else(|| {
            panic!(
                "{what} {status}: Content-Type {content_type} is not among the documented {:?}",
                content.keys().collect::<Vec<_>>()
            )
        });
    let is_json = content_type == "application/json" || content_type.ends_with("+json");
    let body = if is_json {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
    } else {
        Value::String(text)
    };
    if is_json && media["schema"].is_object() {
        let errors = errors_of(doc, &media["schema"], &body);
        assert!(
            errors.is_empty(),
            "{what} {status}: the answer does not match the documented schema: {errors:?}\n{body}"
        );
    }
    (status, body)
}

fn request_example(doc: &Value, method: &str, template: &str) -> Value {
    let example =
        doc["paths"][template][method]["requestBody"]["content"]["application/json"]["example"]
            .clone();
    assert!(
        !example.is_null(),
        "{method} {template} documents a request example"
    );
    example
}

#[actix_web::test]
async fn request_examples_are_accepted_and_real_answers_match_the_documented_schemas() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let root = admin();
    let nurse = token("alice", "nurse", None);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // The documented request examples, sent as they are.
    let care_team = "/api/v1/patients/{patient_id}/care-team";
    let example = request_example(&doc, "put", care_team);
    let resp = app
        .send(
            Method::PUT,
            "/api/v1/patients/123/care-team",
            &root,
            Some(&example),
        )
        .await;
    let (status, team) = check_answer(&doc, "put", care_team, resp).await;
    assert_eq!(status, 200, "the care-team example is accepted: {team}");

    let example = request_example(&doc, "post", "/api/v1/alerts");
    let resp = app
        .send(Method::POST, "/api/v1/alerts", &service(), Some(&example))
        .await;
    let (status, alert) = check_answer(&doc, "post", "/api/v1/alerts", resp).await;
    assert_eq!(status, 201, "the alert example is accepted: {alert}");
    let id = alert["id"].as_str().expect("id").to_owned();
    let patient = alert["patient_id"].as_str().expect("patient").to_owned();
    app.assign(&patient, "alice").await;

    let ack = "/api/v1/alerts/{alert_id}/acknowledge";
    let example = request_example(&doc, "post", ack);
    let resp = app
        .send(
            Method::POST,
            &format!("/api/v1/alerts/{id}/acknowledge"),
            &nurse,
            Some(&example),
        )
        .await;
    let (status, outcome) = check_answer(&doc, "post", ack, resp).await;
    assert_eq!(
        status, 200,
        "the acknowledgment example is accepted: {outcome}"
    );
    let alias = "/api/v1/alerts/alerts/{alert_id}/acknowledge";
    let example = request_example(&doc, "post", alias);
    let query = doc["paths"][alias]["post"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "patient_id"))
        .map(|p| p["example"].clone())
        .expect("the alias documents its patient_id query");
    assert_eq!(
        query,
        json!(patient),
        "the documented examples agree with each other"
    );
    let resp = app
        .send(
            Method::POST,
            &format!("/api/v1/alerts/alerts/{id}/acknowledge?patient_id={patient}"),
            &nurse,
            Some(&example),
        )
        .await;
    assert_eq!(check_answer(&doc, "post", alias, resp).await.0, 200);

    // `requestBody.required` says what the server does with an empty body.
    let empty_body_cases = [
        (
            "post",
            ack,
            format!("/api/v1/alerts/{id}/acknowledge"),
            &nurse,
            200,
        ),
        (
            "post",
            alias,
            format!("/api/v1/alerts/alerts/{id}/acknowledge"),
            &nurse,
            200,
        ),
        (
            "post",
            "/api/v1/alerts",
            "/api/v1/alerts".to_owned(),
            &root,
            400,
        ),
        (
            "put",
            care_team,
            "/api/v1/patients/123/care-team".to_owned(),
            &root,
            400,
        ),
    ];
    for (verb, template, path, who, want) in empty_body_cases {
        let required = doc["paths"][template][verb]["requestBody"]["required"] == json!(true);
        assert_eq!(
            required,
            want != 200,
            "{verb} {template}: requestBody.required must be {}",
            want != 200
        );
        let method = Method::from_bytes(verb.to_ascii_uppercase().as_bytes()).expect("method");
        let resp = app.send(method, &path, who, None).await;
        let (status, answer) = check_answer(&doc, verb, template, resp).await;
        assert_eq!(status, want, "{verb} {path} without a body: {answer}");
    }

    // Real answers, successes and errors, against the documented schemas.
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/api/v1/alerts".into(),
            "/api/v1/alerts",
            root.clone(),
            None,
            200,
        ),
        (
            Method::GET,
            format!("/api/v1/alerts/{id}"),
            "/api/v1/alerts/{alert_id}",
            nurse.clone(),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/alerts/00000000-0000-7000-8000-000000000000".into(),
            "/api/v1/alerts/{alert_id}",
            root.clone(),
            None,
            404,
        ),
        (
            Method::GET,
            "/api/v1/alerts?limit=0".into(),
            "/api/v1/alerts",
            root.clone(),
            None,
            422,
        ),
        (
            Method::POST,
            "/api/v1/alerts".into(),
            "/api/v1/alerts",
            String::new(),
            Some(json!({})),
            401,
        ),
        (
            Method::POST,
            "/api/v1/alerts".into(),
            "/api/v1/alerts",
            service(),
            Some(json!({"severity": "urgent"})),
            422,
        ),
        (
            Method::POST,
            "/api/v1/alerts".into(),
            "/api/v1/alerts",
            nurse.clone(),
            Some(alert_body("1", "high")),
            403,
        ),
        (
            Method::GET,
            "/api/v1/alerts/stream/stats".into(),
            "/api/v1/alerts/stream/stats",
            root.clone(),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/alerts/stream/stats".into(),
            "/api/v1/alerts/stream/stats",
            nurse.clone(),
            None,
            403,
        ),
        (
            Method::GET,
            "/api/v1/patients/123/care-team".into(),
            care_team,
            root.clone(),
            None,
            200,
        ),
        (
            Method::PUT,
            "/api/v1/patients/123/care-team/carol".into(),
            "/api/v1/patients/{patient_id}/care-team/{user_id}",
            root.clone(),
            None,
            201,
        ),
        (
            Method::PUT,
            "/api/v1/patients/123/care-team/carol".into(),
            "/api/v1/patients/{patient_id}/care-team/{user_id}",
            root.clone(),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/patients/123/care-team/carol".into(),
            "/api/v1/patients/{patient_id}/care-team/{user_id}",
            root.clone(),
            None,
            200,
        ),
        (
            Method::DELETE,
            "/api/v1/patients/123/care-team/carol".into(),
            "/api/v1/patients/{patient_id}/care-team/{user_id}",
            root.clone(),
            None,
            204,
        ),
        (
            Method::DELETE,
            "/api/v1/patients/123/care-team/carol".into(),
            "/api/v1/patients/{patient_id}/care-team/{user_id}",
            root.clone(),
            None,
            404,
        ),
        (
            Method::DELETE,
            "/api/v1/patients/999/care-team".into(),
            care_team,
            root.clone(),
            None,
            204,
        ),
        (
            Method::POST,
            "/api/v1/session".into(),
            "/api/v1/session",
            nurse.clone(),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/session".into(),
            "/api/v1/session",
            nurse.clone(),
            None,
            200,
        ),
        (
            Method::DELETE,
            "/api/v1/session".into(),
            "/api/v1/session",
            nurse.clone(),
            None,
            204,
        ),
        (
            Method::GET,
            "/healthz".into(),
            "/healthz",
            String::new(),
            None,
            200,
        ),
        (
            Method::GET,
            "/readyz".into(),
            "/readyz",
            String::new(),
            None,
            200,
        ),
        (
            Method::GET,
            "/metrics".into(),
            "/metrics",
            String::new(),
            None,
            200,
        ),
        (Method::GET, "/".into(), "/", String::new(), None, 200),
        (
            Method::GET,
            "/legacy".into(),
            "/legacy",
            String::new(),
            None,
            200,
        ),
        (
            Method::GET,
            "/docs/migration".into(),
            "/docs/migration",
            String::new(),
            None,
            200,
        ),
        (
            Method::GET,
            "/api/v1/openapi.json".into(),
            "/api/v1/openapi.json",
            String::new(),
            None,
            200,
        ),
        (Method::GET, "/ws".into(), "/ws", root.clone(), None, 400),
        (
            Method::GET,
            "/api/v1/alerts/stream?patient_id=nobody%20here".into(),
            "/api/v1/alerts/stream",
            root.clone(),
            None,
            422,
        ),
        (
            Method::GET,
            "/api/v1/alerts/stream".into(),
            "/api/v1/alerts/stream",
            service(),
            None,
            403,
        ),
    ];
    for (method, path, template, who, body, want) in cases {
        let resp = app.send(method.clone(), &path, &who, body.as_ref()).await;
        let verb = method.as_str().to_ascii_lowercase();
        let (status, answer) = check_answer(&doc, &verb, template, resp).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
    }

    // The stream's 200 is documented as text/event-stream.
    let resp = app
        .client
        .get(app.url("/api/v1/alerts/stream"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    let media = &doc["paths"]["/api/v1/alerts/stream"]["get"]["responses"]["200"]["content"];
    assert!(media["text/event-stream"].is_object(), "{media}");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/event-stream"))
    );
    drop(resp);

    // The bare Swagger path redirects as documented.
    let resp = no_redirects
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("GET /api/docs");
    assert_eq!(resp.headers()["location"], "/api/docs/");
    assert_eq!(check_answer(&doc, "get", "/api/docs", resp).await.0, 308);
}

#[actix_web::test]
async fn the_swagger_ui_is_served_offline_and_its_assets_load() {
    let app = spawn_app().await;
    let resp = app.get("/api/docs/", "").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/html"))
    );
    let html = resp.text().await.expect("HTML");
    assert!(html.contains("swagger-ui"), "the Swagger UI page: {html}");

    let attribute =
        regex::Regex::new(r#"(?i)\b(?:src|href)\s*=\s*["']([^"']+)["']"#).expect("regex");
    let assets: Vec<String> = attribute
        .captures_iter(&html)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")),
        "the page loads the bundle: {assets:?}"
    );
    for asset in &assets {
        assert!(
            !asset.contains("//") && !asset.starts_with("data:"),
            "{asset}: the page must load nothing from another host (no CDN)"
        );
        let url = format!("/api/docs/{}", asset.trim_start_matches("./"));
        let resp = app.get(&url, "").await;
        assert_eq!(resp.status(), 200, "{url} loads from this server");
        let content_type = resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let bytes = resp.bytes().await.expect("asset");
        assert!(bytes.len() > 100, "{url} is not empty");
        if asset.ends_with(".js") {
            assert!(content_type.contains("javascript"), "{url}: {content_type}");
        }
    }

    let init = app.get("/api/docs/swagger-initializer.js", "").await;
    assert_eq!(init.status(), 200);
    let init = init.text().await.expect("initializer");
    assert!(
        init.contains("\"/api/v1/openapi.json\""),
        "the UI reads this server's document: {init}"
    );
    let external = regex::Regex::new(r#"https?://"#).expect("regex");
    assert!(
        !external.is_match(&init.replace("\"validatorUrl\": \"none\"", "")),
        "the initializer names no external host: {init}"
    );
    assert!(
        init.contains("\"validatorUrl\": \"none\""),
        "the online validator (validator.swagger.io) is switched off: {init}"
    );
}

/// The schema of parameter `name` of `method path`.
fn parameter_schema(doc: &Value, method: &str, path: &str, name: &str) -> Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| p["schema"].clone())
        .unwrap_or_else(|| panic!("{method} {path} documents {name}"))
}

/// A client or validator generated from the document must refuse what the server
/// refuses and accept what it accepts: the query's `patient_id` items, the care team's
/// `user_ids` and `Idempotency-Key` were bare strings, so `a b`, `""` or `ké` passed the
/// schema and met a 422 (found by schemathesis).
#[actix_web::test]
async fn parameter_and_body_constraints_are_the_servers_own() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let root = admin();
    let client = reqwest::Client::new();

    let items = |path: &str| parameter_schema(&doc, "get", path, "patient_id")["items"].clone();
    let long = "p".repeat(65);
    for value in [
        "123",
        "123,456",
        " 123 , ",
        "*",
        "",
        ",",
        "a b",
        "12;3",
        long.as_str(),
    ] {
        let status = client
            .get(app.url("/api/v1/alerts"))
            .query(&[("patient_id", value)])
            .bearer_auth(&root)
            .send()
            .await
            .expect("list")
            .status()
            .as_u16();
        assert!(status == 200 || status == 422, "{value:?}: {status}");
        for path in ["/api/v1/alerts", "/api/v1/alerts/stream", "/ws"] {
            let errors = errors_of(&doc, &items(path), &json!(value));
            assert_eq!(
                errors.is_empty(),
                status == 200,
                "{path} patient_id {value:?}: the server says {status}, the schema {errors:?}"
            );
        }
    }

    let team = doc["components"]["schemas"]["ReplaceCareTeam"].clone();
    let long = "u".repeat(129);
    for user in [
        "alice",
        "dr. o'brien",
        "",
        "bell\u{7}",
        "jos\u{fffd}",
        long.as_str(),
    ] {
        let body = json!({ "user_ids": [user] });
        let status = app
            .send(
                Method::PUT,
                "/api/v1/patients/p1/care-team",
                &root,
                Some(&body),
            )
            .await
            .status()
            .as_u16();
        assert!(status == 200 || status == 422, "{user:?}: {status}");
        let errors = errors_of(&doc, &team, &body);
        assert_eq!(
            errors.is_empty(),
            status == 200,
            "user_ids [{user:?}]: the server says {status}, the schema {errors:?}"
        );
    }

    let key = parameter_schema(&doc, "post", "/api/v1/alerts", "Idempotency-Key");
    let long = "k".repeat(256);
    for (n, value) in ["key-1", "a b c", "k\u{e9}", long.as_str()]
        .into_iter()
        .enumerate()
    {
        let header = reqwest::header::HeaderValue::from_bytes(value.as_bytes()).expect("bytes");
        let status = client
            .post(app.url("/api/v1/alerts"))
            .bearer_auth(service())
            .header("Idempotency-Key", header)
            .json(&alert_body(&format!("idem{n}"), "low"))
            .send()
            .await
            .expect("POST")
            .status()
            .as_u16();
        assert!(status == 201 || status == 422, "{value:?}: {status}");
        let errors = errors_of(&doc, &key, &json!(value));
        assert_eq!(
            errors.is_empty(),
            status == 201,
            "Idempotency-Key {value:?}: the server says {status}, the schema {errors:?}"
        );
    }
    assert_ne!(
        key["type"],
        json!(["string", "null"]),
        "a header is never null"
    );
}
