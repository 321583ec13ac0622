//! Property tests: the wire and input boundaries, fed generated input.
//!
//! - the SSE frame writer: any data, id and event name is read back by a WHATWG parser
//!   exactly (line breaks in data come back as `\n`, the only line break SSE can carry);
//! - the legacy WebSocket frame parser: any text is a known frame or an `error` frame,
//!   and a real session answers every frame, whatever it is, and stays up;
//! - alert validation: any JSON is accepted exactly when it is a valid alert, else a
//!   precise 4xx problem naming the fields; the real server agrees;
//! - the token extractor: any `Authorization` or cookie value is a 401 problem unless it
//!   carries a token that really verifies.
//!
//! Budget: a fixed number of cases per property and a fixed seed, so a CI run is
//! repeatable and takes seconds in a debug build. `PROPTEST_CASES` / `PROPTEST_RNG_SEED`
//! override them for a longer or different local run. Black-box properties share one
//! real server (started on its own actix system thread) and use fewer cases.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "api/helpers.rs"]
mod helpers;

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use vigil::domain::NewAlert;
use vigil::transport::frames::sse_frame;
use vigil::transport::ws::{ClientFrame, MAX_FRAME_BYTES, parse_client_frame};

/// The seed every run uses unless `PROPTEST_RNG_SEED` is set.
const SEED: u64 = 0x5EED_0008;

fn budget(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            base.rng_seed
        } else {
            RngSeed::Fixed(SEED)
        },
        failure_persistence: None,
        max_shrink_iters: 512,
        ..base
    }
}

// ---------------------------------------------------------------------------------------
// Shared real server and client runtime for the black-box properties.

struct Server {
    address: String,
    port: u16,
}

/// One real Vigil (test configuration, fresh database) for the whole binary.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = helpers::spawn_app().await;
                tx.send((app.address.clone(), app.port))
                    .expect("report the address");
                // Keep the server (and its database directory) for the life of the binary.
                std::future::pending::<()>().await;
                drop(app);
            });
        });
        let (address, port) = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the test server starts");
        Server { address, port }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    })
}

/// Status, headers and body of an answer.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

fn call(request: reqwest::RequestBuilder) -> Answer {
    runtime().block_on(async move {
        let resp = request.send().await.expect("the server answers");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("body"),
        }
    })
}

/// `Some(problem)` when the answer is an RFC 9457 problem with the members every Vigil
/// error has and its `status` equal to the HTTP status.
fn problem(answer: &Answer) -> Option<Value> {
    let content_type = answer.headers.get("content-type")?.to_str().ok()?;
    if !content_type.starts_with("application/problem+json") {
        return None;
    }
    let body: Value = serde_json::from_str(&answer.body).ok()?;
    let complete = body["status"] == answer.status
        && body["type"].is_string()
        && body["title"].is_string()
        && body["detail"].as_str().is_some_and(|d| !d.is_empty());
    complete.then_some(body)
}

// ---------------------------------------------------------------------------------------
// Generators.

/// Any JSON value, a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text rich in what breaks line-oriented formats: CR, LF, CRLF, NUL, colons, spaces,
/// BOMs, Unicode line separators, and arbitrary Unicode.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<String>(),
        1 => prop::sample::select(vec![
            "\n", "\r", "\r\n", "\n\r", "\r\r\n", "\0", ":", ": ", " ", "\u{feff}", "\u{2028}",
            "\u{85}", "data: x", "id: 9", "event: evil", "retry: 1", "\n\n", "é", "🩺", "",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// A field of an alert body: usually valid, sometimes absent, null or wrong.
fn field(
    valid: BoxedStrategy<Value>,
    invalid: BoxedStrategy<Value>,
) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        17 => valid.prop_map(Some),
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        2 => invalid.prop_map(Some),
        1 => arb_json().prop_map(Some),
    ]
    .boxed()
}

fn text_of(regex: &str) -> BoxedStrategy<Value> {
    proptest::string::string_regex(regex)
        .expect("a valid regex")
        .prop_map(Value::from)
        .boxed()
}

/// Bodies shaped like alerts, with every way of being subtly wrong.
/// A character of valid alert text: anything but a control character, tab and line
/// breaks aside.
const TEXT: &str = "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]";

fn arb_alert() -> impl Strategy<Value = Value> {
    let severities = prop::sample::select(vec!["info", "low", "medium", "high", "critical"])
        .prop_map(Value::from)
        .boxed();
    let near_16k = (16 * 1024 - 40..16 * 1024 + 10usize)
        .prop_map(|n| json!({"blob": "x".repeat(n.saturating_sub(12))}))
        .boxed();
    let data_valid = prop_oneof![
        3 => prop::collection::btree_map("[a-z]{1,8}", arb_json(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => near_16k,
    ]
    .boxed();
    let data_invalid = prop_oneof![
        prop::collection::vec(arb_json(), 0..3).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
    ]
    .boxed();
    (
        field(
            text_of("[A-Za-z0-9_.-]{1,64}"),
            text_of("[A-Za-z0-9_.-]{65,70}|.{0,8}|\\*"),
        ),
        field(severities, text_of("[a-zA-Z]{0,9}|CRITICAL")),
        field(
            text_of("[A-Za-z0-9_.:-]{1,64}"),
            text_of("[a-z]{65,66}|.{0,8}"),
        ),
        field(text_of(&format!("{TEXT}{{1,200}}")), text_of(".{201,204}|")),
        field(
            text_of(&format!("{TEXT}{{0,60}}|{TEXT}{{1995,2000}}")),
            text_of(".{2001,2003}|a\u{0}b"),
        ),
        field(data_valid, data_invalid),
        field(text_of(&format!("{TEXT}{{1,128}}")), text_of(".{129,131}|")),
        prop_oneof![9 => Just(None), 1 => ("[a-z_]{1,10}", arb_json()).prop_map(Some)],
    )
        .prop_map(
            |(patient_id, severity, kind, title, message, data, source, extra)| {
                let mut body = Map::new();
                for (name, value) in [
                    ("patient_id", patient_id),
                    ("severity", severity),
                    ("kind", kind),
                    ("title", title),
                    ("message", message),
                    ("data", data),
                    ("source", source),
                ] {
                    if let Some(value) = value {
                        body.insert(name.to_owned(), value);
                    }
                }
                if let Some((name, value)) = extra {
                    body.insert(name, value);
                }
                Value::Object(body)
            },
        )
}

// ---------------------------------------------------------------------------------------
// (a) SSE: the frame writer against a WHATWG event-stream parser.

/// One dispatched event as the WHATWG algorithm defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dispatched {
    event_type: String,
    data: String,
    last_event_id: String,
}

/// The "event stream interpretation" of the HTML standard
/// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
/// step by step, for a complete stream.
fn whatwg_parse(stream: &str) -> Vec<Dispatched> {
    let mut stream = stream.strip_prefix('\u{feff}').unwrap_or(stream);
    let (mut data, mut event_type, mut last_event_id) =
        (String::new(), String::new(), String::new());
    let mut events = Vec::new();
    // Lines end with CRLF, LF or CR; an unterminated last line is discarded.
    while let Some(end) = stream.find(['\r', '\n']) {
        let line = &stream[..end];
        let next = if stream[end..].starts_with("\r\n") {
            end + 2
        } else {
            end + 1
        };
        stream = &stream[next..];
        if line.is_empty() {
            // Dispatch.
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            events.push(Dispatched {
                event_type: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    event_type.clone()
                },
                data: std::mem::take(&mut data),
                last_event_id: last_event_id.clone(),
            });
            event_type.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => last_event_id = value.to_owned(),
            _ => {}
        }
    }
    events
}

/// The same stream through `eventsource-stream` (what Vigil's own clients use), cut
/// into chunks at the given byte offsets (which may split a UTF-8 sequence).
fn eventsource_parse(stream: &str, cuts: &[usize]) -> Vec<Dispatched> {
    let bytes = stream.as_bytes();
    let mut offsets: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    offsets.push(0);
    offsets.push(bytes.len());
    offsets.sort_unstable();
    offsets.dedup();
    let chunks: Vec<Result<Vec<u8>, Infallible>> = offsets
        .windows(2)
        .map(|w| Ok(bytes[w[0]..w[1]].to_vec()))
        .collect();
    runtime().block_on(async move {
        use eventsource_stream::Eventsource;
        futures_util::stream::iter(chunks)
            .eventsource()
            .map(|event| {
                let event = event.expect("eventsource-stream parses the frames");
                Dispatched {
                    event_type: event.event,
                    data: event.data,
                    last_event_id: event.id,
                }
            })
            .collect()
            .await
    })
}

/// What `sse_frame` promises: ids and event names lose CR, LF and NUL (they would end
/// or void the field); data keeps everything, its line breaks read back as LF.
fn without_breaks(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect()
}

fn expected_events(frames: &[(Option<String>, Option<String>, String)]) -> Vec<Dispatched> {
    let mut last_event_id = String::new();
    frames
        .iter()
        .map(|(id, event, data)| {
            if let Some(id) = id {
                last_event_id = without_breaks(id);
            }
            let event_type = event.as_deref().map(without_breaks).unwrap_or_default();
            Dispatched {
                event_type: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    event_type
                },
                data: data.replace("\r\n", "\n").replace('\r', "\n"),
                last_event_id: last_event_id.clone(),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(budget(384))]

    #[test]
    fn sse_frames_read_back_exactly_by_a_whatwg_parser(
        frames in prop::collection::vec(
            (prop::option::of(tricky_text()), prop::option::of(tricky_text()), tricky_text()),
            1..5,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let stream: String = frames
            .iter()
            .map(|(id, event, data)| sse_frame(id.as_deref(), event.as_deref(), data))
            .collect();
        let expected = expected_events(&frames);
        prop_assert_eq!(&whatwg_parse(&stream), &expected, "stream {:?}", stream);
        prop_assert_eq!(&eventsource_parse(&stream, &cuts), &expected, "stream {:?}", stream);
        // Data without CR comes back byte for byte.
        for ((_, _, data), event) in frames.iter().zip(&expected) {
            if !data.contains('\r') {
                prop_assert_eq!(data, &event.data);
            }
        }
    }

    #[test]
    fn json_payloads_cross_sse_unchanged(value in arb_json(), id in any::<u64>()) {
        let payload = value.to_string();
        let frame = sse_frame(Some(&id.to_string()), Some("alert"), &payload);
        let events = whatwg_parse(&frame);
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(&events[0].data, &payload, "the JSON text is untouched");
        prop_assert_eq!(&events[0].event_type, "alert");
        prop_assert_eq!(&events[0].last_event_id, &id.to_string());
        let back: Value = serde_json::from_str(&events[0].data).expect("JSON");
        prop_assert_eq!(back, value);
    }
}

// ---------------------------------------------------------------------------------------
// (b) WebSocket: the client-frame parser, then a real session.

/// What the parser must do, decided independently of it.
fn frame_oracle(text: &str) -> Option<&'static str> {
    if text.len() > MAX_FRAME_BYTES {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    match value.get("type").and_then(Value::as_str) {
        Some("subscribe") => Some("subscribe"),
        Some("ack") => Some("ack"),
        Some("ping") => Some("ping"),
        _ => None,
    }
}

/// Frames a legacy dashboard (or an attacker) might send.
fn arb_client_text() -> impl Strategy<Value = String> {
    let typed = (
        prop::sample::select(vec![
            "subscribe",
            "ack",
            "ping",
            "",
            "pong",
            "SUBSCRIBE",
            "error",
        ]),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "patient_ids",
                "alert_id",
                "status",
                "note",
                "type",
                "x",
            ]),
            arb_json(),
            0..4,
        ),
    )
        .prop_map(|(kind, fields)| {
            let mut frame: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            frame.insert("type".to_owned(), json!(kind));
            Value::Object(frame).to_string()
        });
    prop_oneof![
        2 => any::<String>(),
        2 => arb_json().prop_map(|v| v.to_string()),
        4 => typed,
        1 => tricky_text(),
    ]
}

proptest! {
    #![proptest_config(budget(1024))]

    #[test]
    fn any_text_is_a_known_frame_or_an_error_frame(text in arb_client_text()) {
        match parse_client_frame(&text) {
            Ok(frame) => {
                prop_assert_eq!(Some(frame.label()), frame_oracle(&text));
                if let ClientFrame::Subscribe(value) | ClientFrame::Ack(value) = &frame {
                    prop_assert_eq!(value, &serde_json::from_str::<Value>(&text).expect("JSON"));
                }
            }
            Err(rejection) => {
                prop_assert_eq!(frame_oracle(&text), None);
                prop_assert!(["oversize", "malformed", "unknown"].contains(&rejection.label));
                let error: Value = serde_json::from_str(&rejection.error_frame).expect("JSON frame");
                let members = error.as_object().expect("object");
                prop_assert_eq!(members.len(), 3, "{}", error);
                prop_assert_eq!(&error["type"], "error");
                prop_assert!(error["code"].as_str().is_some_and(|c| !c.is_empty()));
                prop_assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // The codec only hands valid UTF-8 text frames to the parser; whatever survives
        // decoding (lossily, here) must still get an answer.
        let text = String::from_utf8_lossy(&bytes);
        let answered = parse_client_frame(&text).is_ok() || frame_oracle(&text).is_none();
        prop_assert!(answered);
    }
}

#[test]
fn an_oversize_frame_is_an_error_frame_even_when_it_is_valid_json() {
    let big = json!({"type": "ping", "pad": "x".repeat(MAX_FRAME_BYTES)}).to_string();
    let rejection = parse_client_frame(&big).expect_err("over the limit");
    assert_eq!(rejection.label, "oversize");
    let error: Value = serde_json::from_str(&rejection.error_frame).expect("JSON");
    assert_eq!(error["code"], "too_large");
}

/// One frame a client sends over a real socket.
#[derive(Debug, Clone)]
enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

fn arb_outgoing() -> impl Strategy<Value = Outgoing> {
    prop_oneof![
        6 => arb_client_text().prop_map(Outgoing::Text),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Outgoing::Binary),
    ]
}

/// Sends `frames` on one session and returns the answers (every frame but the opening
/// ones), after a final `ping` proved the session alive. The user is on no care team,
/// so no alert raised by the other properties on this server reaches the session.
fn ws_session(frames: Vec<Outgoing>) -> Result<Vec<Value>, String> {
    let url = format!(
        "ws://127.0.0.1:{}/ws?token={}",
        server().port,
        helpers::token("ws-fuzzer", "nurse", None)
    );
    runtime().block_on(async move {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let sent = frames.len();
        for frame in frames {
            let message = match frame {
                Outgoing::Text(text) => Message::text(text),
                Outgoing::Binary(bytes) => Message::binary(bytes),
            };
            socket
                .send(message)
                .await
                .map_err(|e| format!("send: {e}"))?;
        }
        socket
            .send(Message::text(json!({"type": "ping"}).to_string()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut answers = Vec::new();
        while answers.len() < sent + 1 {
            let next = tokio::time::timeout(Duration::from_secs(20), socket.next())
                .await
                .map_err(|_| format!("{} of {} answers, then silence", answers.len(), sent + 1))?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text)
                        .map_err(|e| format!("a server frame is not JSON ({e}): {text}"))?;
                    match frame["type"].as_str() {
                        Some("connected" | "deprecation" | "alert" | "alert_updated") => {}
                        _ => answers.push(frame),
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    return Err(format!("the server closed the session: {close:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("socket error: {e}")),
                None => return Err("the session ended".to_owned()),
            }
        }
        let _ = socket.close(None).await;
        Ok(answers)
    })
}

proptest! {
    #![proptest_config(budget(8))]

    #[test]
    fn a_real_session_answers_every_frame_once_and_stays_up(
        frames in prop::collection::vec(arb_outgoing(), 1..40),
    ) {
        let answers = ws_session(frames).map_err(TestCaseError::fail)?;
        prop_assert!(answers.iter().any(|a| a["type"] == "pong"), "the final ping is answered");
        for answer in &answers {
            match answer["type"].as_str() {
                Some("error") => prop_assert!(
                    answer["code"].is_string() && answer["message"].is_string(),
                    "{}", answer
                ),
                Some("ack_result") => prop_assert!(answer["ok"].is_boolean(), "{}", answer),
                Some("subscribed") => prop_assert!(answer["patient_ids"].is_array(), "{}", answer),
                Some("pong") => {}
                _ => prop_assert!(false, "unexpected answer {}", answer),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// (c) Alert validation.

const ALERT_FIELDS: [&str; 7] = [
    "patient_id",
    "severity",
    "kind",
    "title",
    "message",
    "data",
    "source",
];

/// DESIGN.md's rules for a new alert, written out independently of the server's code.
fn alert_oracle(body: &Value) -> bool {
    let Some(obj) = body.as_object() else {
        return false;
    };
    if obj.keys().any(|k| !ALERT_FIELDS.contains(&k.as_str())) {
        return false;
    }
    let text = |name: &str, required: bool, ok: &dyn Fn(&str) -> bool| match obj.get(name) {
        None | Some(Value::Null) => !required,
        Some(Value::String(s)) => ok(s),
        Some(_) => false,
    };
    let chars = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.chars().count())
            && !s
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    };
    let ascii_id = |s: &str, extra: &[u8]| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    // "." and ".." fit the characters but are URL dot-segments (docs/API.md).
    text("patient_id", true, &|s| {
        ascii_id(s, b"_.-") && s != "." && s != ".."
    }) && text("severity", true, &|s| {
        ["info", "low", "medium", "high", "critical"].contains(&s)
    }) && text("kind", true, &|s| ascii_id(s, b"_.-:"))
        && text("title", true, &|s| chars(s, 1, 200))
        && text("message", false, &|s| chars(s, 0, 2000))
        && text("source", false, &|s| chars(s, 1, 128))
        && match obj.get("data") {
            None | Some(Value::Null) => true,
            Some(v @ Value::Object(_)) => v.to_string().len() <= 16 * 1024,
            Some(_) => false,
        }
}

/// The fields a 422 may name for this body: the alert's fields, its unknown keys, or
/// the body itself.
fn nameable(body: &Value, field: &str) -> bool {
    ALERT_FIELDS.contains(&field)
        || field == "body"
        || body.as_object().is_some_and(|o| o.contains_key(field))
}

proptest! {
    #![proptest_config(budget(768))]

    #[test]
    fn validation_accepts_exactly_the_valid_alerts_and_names_every_bad_field(
        body in prop_oneof![3 => arb_alert(), 1 => arb_json()],
    ) {
        match NewAlert::from_json(&body, "analyser-1") {
            Ok(alert) => {
                prop_assert!(alert_oracle(&body), "accepted an invalid alert: {}", body);
                prop_assert_eq!(alert.patient_id.as_str(), body["patient_id"].as_str().expect("id"));
                prop_assert_eq!(alert.title.as_str(), body["title"].as_str().expect("title"));
                prop_assert_eq!(
                    alert.source.as_str(),
                    body["source"].as_str().unwrap_or("analyser-1")
                );
            }
            Err(vigil::error::ApiError::Validation { errors, .. }) => {
                prop_assert!(!alert_oracle(&body), "refused a valid alert: {}", body);
                prop_assert!(!errors.is_empty());
                for error in &errors {
                    prop_assert!(nameable(&body, &error.field), "names {:?} for {}", error.field, body);
                    prop_assert!(!error.message.is_empty());
                }
            }
            Err(other) => prop_assert!(false, "not a 422: {:?}", other),
        }
    }
}

fn post_alert(body: Vec<u8>) -> Answer {
    let request = client()
        .post(format!("{}/api/v1/alerts", server().address))
        .bearer_auth(helpers::service())
        .header("Content-Type", "application/json")
        .body(body);
    call(request)
}

proptest! {
    #![proptest_config(budget(96))]

    #[test]
    fn the_server_answers_any_json_body_with_201_or_a_precise_4xx(
        body in prop_oneof![3 => arb_alert(), 1 => arb_json()],
    ) {
        let raw = body.to_string().into_bytes();
        let answer = post_alert(raw.clone());
        match answer.status {
            201 => {
                prop_assert!(alert_oracle(&body), "stored an invalid alert: {}", body);
                let alert: Value = serde_json::from_str(&answer.body).expect("alert JSON");
                prop_assert_eq!(&alert["patient_id"], &body["patient_id"]);
                prop_assert_eq!(&alert["severity"], &body["severity"]);
                prop_assert_eq!(&alert["status"], "open");
            }
            422 => {
                prop_assert!(!alert_oracle(&body), "refused a valid alert: {}", body);
                let problem = problem(&answer).expect("a 422 problem");
                let errors = problem["errors"].as_array().expect("errors");
                prop_assert!(!errors.is_empty(), "{}", problem);
                for error in errors {
                    let field = error["field"].as_str().expect("field");
                    prop_assert!(nameable(&body, field), "names {:?} for {}", field, body);
                }
            }
            413 => {
                prop_assert!(raw.len() > 64 * 1024);
                prop_assert!(problem(&answer).is_some());
            }
            other => prop_assert!(false, "{} for {}: {}", other, body, answer.body),
        }
    }

    #[test]
    fn the_server_answers_any_byte_body_with_201_or_a_precise_4xx(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            any::<String>().prop_map(String::into_bytes),
            arb_json().prop_map(|v| format!(" {v}\n").into_bytes()),
        ],
    ) {
        let answer = post_alert(bytes.clone());
        let parsed = serde_json::from_slice::<Value>(&bytes);
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        let want = match &parsed {
            _ if blank => 400,
            Err(_) => 400,
            Ok(v) if alert_oracle(v) => 201,
            Ok(_) => 422,
        };
        prop_assert_eq!(answer.status, want, "body {:?}: {}", String::from_utf8_lossy(&bytes), answer.body);
        if want != 201 {
            prop_assert!(problem(&answer).is_some(), "not a problem: {}", answer.body);
        }
    }
}

// ---------------------------------------------------------------------------------------
// (d) The token extractor.

/// Whether `raw` (an `Authorization` value as the server receives it) carries a token
/// that verifies and whose claims Vigil accepts; decided with jsonwebtoken directly.
fn token_oracle(raw: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(raw) else {
        return false;
    };
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return false;
    }
    let value = value.trim_matches([' ', '\t']);
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    let token = token.trim();
    scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && claims_ok(token)
}

fn claims_ok(token: &str) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let key = jsonwebtoken::DecodingKey::from_secret(helpers::SECRET.as_bytes());
    let Ok(data) = jsonwebtoken::decode::<vigil::auth::Claims>(token, &key, &validation) else {
        return false;
    };
    let claims = data.claims;
    let roles = [
        "admin",
        "doctor",
        "nurse",
        "caregiver",
        "dispatcher",
        "patient",
        "service",
    ];
    let patient_ok = claims
        .patient_id
        .as_deref()
        .is_none_or(|p| vigil::domain::PatientId::parse(p).is_ok());
    roles.contains(&claims.role.as_str())
        && sub_ok(&claims.sub)
        && patient_ok
        && (claims.role != "patient" || claims.patient_id.is_some())
}

/// docs/API.md's user id: 1-128 characters, not `.` or `..`, no control character, no
/// U+FFFD, no white space at either end, nothing that prints as nothing or reorders text.
fn sub_ok(sub: &str) -> bool {
    let hidden = |c: char| {
        matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
    };
    (1..=128).contains(&sub.chars().count())
        && sub != "."
        && sub != ".."
        && sub.trim() == sub
        && !sub
            .chars()
            .any(|c| c.is_control() || c == '\u{FFFD}' || hidden(c))
}

/// Tokens near the valid ones: real tokens with one edit, and well-signed tokens with
/// claims Vigil must refuse.
fn arb_token() -> impl Strategy<Value = String> {
    let now = chrono::Utc::now().timestamp();
    let b64url = prop::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
            .chars()
            .collect::<Vec<_>>(),
    );
    let mutated = (any::<prop::sample::Index>(), b64url, 0u8..4).prop_map(|(at, c, how)| {
        let mut token: Vec<char> = helpers::admin().chars().collect();
        let i = at.index(token.len());
        match how {
            0 => token[i] = c,
            1 => token.truncate(i),
            2 => token.insert(i, c),
            _ => token.retain(|t| *t != '.'),
        }
        token.into_iter().collect::<String>()
    });
    let crafted = (
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,12}",
            ".{0,20}",
            "a{120,140}",
            " ?[a-z]{1,4}\u{200B}? ?"
        ],
        prop_oneof![
            prop::sample::select(vec![
                "admin",
                "doctor",
                "nurse",
                "caregiver",
                "dispatcher",
                "patient",
                "service"
            ])
            .prop_map(str::to_owned),
            "[A-Za-z]{0,10}",
        ],
        prop::option::of(prop_oneof!["[0-9]{1,4}", ".{0,8}"]),
        prop_oneof![now - 100_000..now - 5, now + 60..now + 100_000],
        any::<bool>(),
    )
        .prop_map(|(sub, role, patient_id, exp, right_key)| {
            let claims = vigil::auth::Claims {
                sub,
                role,
                patient_id,
                exp,
                iat: None,
                iss: None,
                aud: None,
            };
            if right_key {
                helpers::sign(&claims)
            } else {
                vigil::auth::Signer::hs256("another-secret-0123456789abcdef-0123")
                    .sign(&claims)
                    .expect("sign")
            }
        });
    let unsigned = Just({
        use base64_like::encode;
        format!(
            "{}.{}.",
            encode(br#"{"alg":"none","typ":"JWT"}"#),
            encode(format!(r#"{{"sub":"root","role":"admin","exp":{}}}"#, now + 3600).as_bytes())
        )
    });
    prop_oneof![
        3 => mutated,
        3 => crafted,
        1 => unsigned,
        1 => Just(helpers::admin()),
        1 => "[A-Za-z0-9._-]{0,200}",
    ]
}

/// Unpadded base64url, enough to build an `alg: none` token by hand.
mod base64_like {
    pub fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }
}

/// `Authorization` values: schemes in any case and spacing, then a token or junk; and
/// arbitrary header bytes.
fn arb_authorization() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop::sample::select(vec![
        "Bearer ", "bearer ", "BEARER ", "Bearer  ", " Bearer ", "Bearer", "Basic ", "Token ", "",
        "Bearer\t",
    ]);
    let header_byte = prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff];
    prop_oneof![
        4 => (scheme, arb_token(), prop_oneof![Just(""), Just(" "), Just("x")])
            .prop_map(|(s, t, tail)| format!("{s}{t}{tail}").into_bytes()),
        1 => prop::collection::vec(header_byte, 0..300),
    ]
}

proptest! {
    #![proptest_config(budget(256))]

    #[test]
    fn any_authorization_value_is_a_401_problem_unless_its_token_really_verifies(
        raw in arb_authorization(),
        via_cookie in prop::bool::weighted(0.2),
    ) {
        let header = reqwest::header::HeaderValue::from_bytes(&raw);
        prop_assume!(header.is_ok());
        let header = header.expect("valid header");
        let url = format!("{}/api/v1/alerts", server().address);
        let (answer, valid) = if via_cookie {
            // The cookie carries the bare token: test the part after the scheme.
            let token = String::from_utf8_lossy(&raw).trim().to_owned();
            let cookie = format!("vigil_token={token}");
            prop_assume!(reqwest::header::HeaderValue::from_str(&cookie).is_ok());
            let valid = !token.is_empty()
                && !token.contains([';', ' ', '\t', ',', '"', '\\'])
                && claims_ok(&token);
            (call(client().get(url).header("Cookie", cookie)), valid)
        } else {
            (call(client().get(url).header("Authorization", header)), token_oracle(&raw))
        };
        match answer.status {
            200 => prop_assert!(valid, "accepted {:?}", String::from_utf8_lossy(&raw)),
            401 => {
                prop_assert!(!valid, "refused a valid credential {:?}: {}", String::from_utf8_lossy(&raw), answer.body);
                prop_assert!(problem(&answer).is_some(), "not a problem: {}", answer.body);
                prop_assert!(
                    answer.headers.get("www-authenticate").is_some_and(|v| v.as_bytes().starts_with(b"Bearer")),
                    "a 401 carries the Bearer challenge"
                );
                prop_assert!(!answer.body.contains(helpers::SECRET));
            }
            other => prop_assert!(false, "{} for {:?}: {}", other, String::from_utf8_lossy(&raw), answer.body),
        }
    }
}

#[test]
fn the_generators_reach_both_outcomes() {
    // A property that never sees an accepted input proves little: check the generators
    // produce valid alerts and valid credentials often enough to matter.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(budget(1));
    let (mut valid_alerts, mut valid_tokens) = (0, 0);
    for _ in 0..400 {
        let body = arb_alert().new_tree(&mut runner).expect("tree").current();
        valid_alerts += usize::from(alert_oracle(&body));
        let raw = arb_authorization()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        valid_tokens += usize::from(token_oracle(&raw));
    }
    assert!(
        valid_alerts >= 40,
        "only {valid_alerts} of 400 generated alerts are valid"
    );
    assert!(
        valid_tokens >= 10,
        "only {valid_tokens} of 400 generated credentials are valid"
    );
}
