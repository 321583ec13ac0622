//! Test harness: starts the real server on port 0 against a fresh database and talks
//! to it over real HTTP, SSE and WebSocket.
//!
//! Rule: every test is `#[actix_web::test]` — the server's manager is an actix actor
//! and needs an actix `System`; a bare `#[tokio::test]` panics when the app starts.
//!
//! Backends: SQLite in a temporary directory by default. When `VIGIL_TEST_DATABASE_URL`
//! is set (a PostgreSQL server URL), each test gets its own freshly created database on
//! that server, so the same suite runs against PostgreSQL.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use eventsource_stream::{Event, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vigil::auth::{Claims, Signer};
use vigil::config::Config;
use vigil::startup::{Application, Stopper};

/// The HS256 secret every test server uses unless a test changes it.
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
/// Default wait for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Bound port.
    pub port: u16,
    /// HTTP client (no cookies stored unless a test builds its own).
    pub client: reqwest::Client,
    /// Stops the server.
    pub stopper: Stopper,
    /// Database URL the server uses.
    pub database_url: String,
    /// Keeps the SQLite directory alive.
    pub dir: tempfile::TempDir,
}

/// A server with default settings (heartbeat 1 s for tests).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with settings adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = test_database_url(&dir);
    let mut config = Config::new(database_url.clone(), SECRET);
    config.heartbeat = Duration::from_secs(1);
    config.tail_poll = Duration::from_millis(500);
    // Load-style tests raise hundreds of alerts as one subject; rate-limit tests lower it.
    config.rate_limit = std::num::NonZeroU32::new(1_000_000).expect("non-zero");
    tweak(&mut config);
    start(config, dir).await
}

/// Starts another server on the same database (multi-instance and restart tests).
pub async fn spawn_app_on(database_url: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(database_url.to_owned(), SECRET);
    config.heartbeat = Duration::from_secs(1);
    config.tail_poll = Duration::from_millis(500);
    // Load-style tests raise hundreds of alerts as one subject; rate-limit tests lower it.
    config.rate_limit = std::num::NonZeroU32::new(1_000_000).expect("non-zero");
    tweak(&mut config);
    start(config, dir).await
}

async fn start(config: Config, dir: tempfile::TempDir) -> TestApp {
    let database_url = config.database.url.clone();
    let app = Application::build(config)
        .await
        .expect("application builds");
    let port = app.port();
    let stopper = app.stopper();
    actix_web::rt::spawn(app.run_without_signals());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        stopper,
        database_url,
        dir,
    }
}

/// An empty database of the suite's backend: a new PostgreSQL database, or a SQLite
/// file named `file` in `dir`.
pub fn fresh_database_url(dir: &tempfile::TempDir, file: &str) -> String {
    match std::env::var("VIGIL_TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => fresh_postgres_database(&server),
        _ => format!("sqlite://{}", dir.path().join(file).display()),
    }
}

fn test_database_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("VIGIL_TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => fresh_postgres_database(&server),
        _ => format!("sqlite://{}", dir.path().join("vigil-test.db").display()),
    }
}

/// Creates an empty database on the PostgreSQL server and returns its URL.
pub fn fresh_postgres_database(server_url: &str) -> String {
    let name = format!("vigil_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin =
        PgConnection::establish(server_url).expect("connect to the PostgreSQL test server");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .expect("create test database");
    // Options (`?sslmode=…`) go with the new database's URL too.
    let (server, options) = match server_url.split_once('?') {
        Some((server, options)) => (server, format!("?{options}")),
        None => (server_url, String::new()),
    };
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
    format!("{base}/{name}{options}")
}

/// Whether the suite runs against PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("VIGIL_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

/// The causes `vigil_write_failures_total` counts, as docs/deployment.md names them.
pub const WRITE_FAILURE_CAUSES: [&str; 6] = [
    "locked",
    "full",
    "read_only",
    "replaced",
    "unreachable",
    "failing",
];

/// Vigil's seven roles, as tokens name them.
pub const ROLES: [&str; 7] = [
    "admin",
    "doctor",
    "nurse",
    "caregiver",
    "dispatcher",
    "patient",
    "service",
];

/// Signs any claims with the test secret.
pub fn sign(claims: &Claims) -> String {
    Signer::hs256(SECRET).sign(claims).expect("sign")
}

/// A valid token for `sub` with `role` (and `patient_id` claim), one hour.
pub fn token(sub: &str, role: &str, patient: Option<&str>) -> String {
    token_expiring(sub, role, patient, chrono::Utc::now().timestamp() + 3600)
}

/// A token with an explicit `exp`.
pub fn token_expiring(sub: &str, role: &str, patient: Option<&str>, exp: i64) -> String {
    sign(&Claims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        patient_id: patient.map(str::to_owned),
        exp,
        iat: Some(chrono::Utc::now().timestamp()),
        iss: None,
        aud: None,
    })
}

/// Admin token.
pub fn admin() -> String {
    token("root", "admin", None)
}

/// Service (producer) token.
pub fn service() -> String {
    token("analyser-1", "service", None)
}

/// A minimal valid alert body.
pub fn alert_body(patient: &str, severity: &str) -> Value {
    json!({"patient_id": patient, "severity": severity, "kind": "heart_rate_high", "title": format!("HR high for {patient}"), "message": "heart rate 148", "data": {"hr": 148}, "source": "monitor-7"})
}

impl TestApp {
    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// POST JSON with a bearer token.
    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Raise an alert as the service user; panics unless 201. Returns the alert JSON.
    pub async fn raise(&self, patient: &str, severity: &str) -> Value {
        let resp = self
            .post_json("/api/v1/alerts", &service(), &alert_body(patient, severity))
            .await;
        assert_eq!(resp.status(), 201, "raising an alert for {patient}");
        resp.json().await.expect("alert JSON")
    }

    /// Acknowledge over HTTP.
    pub async fn ack(
        &self,
        token: &str,
        alert_id: &str,
        status: &str,
        note: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({"status": status});
        if let Some(note) = note {
            body["note"] = json!(note);
        }
        self.post_json(
            &format!("/api/v1/alerts/{alert_id}/acknowledge"),
            token,
            &body,
        )
        .await
    }

    /// Put a user on a patient's care team (as admin); panics on failure.
    pub async fn assign(&self, patient: &str, user: &str) {
        let resp = self
            .client
            .put(self.url(&format!("/api/v1/patients/{patient}/care-team/{user}")))
            .bearer_auth(admin())
            .send()
            .await
            .expect("PUT care team");
        assert!(
            resp.status().is_success(),
            "assigning {user} to {patient}: {}",
            resp.status()
        );
    }

    /// Remove a user from a patient's care team (as admin).
    pub async fn unassign(&self, patient: &str, user: &str) {
        let resp = self
            .client
            .delete(self.url(&format!("/api/v1/patients/{patient}/care-team/{user}")))
            .bearer_auth(admin())
            .send()
            .await
            .expect("DELETE care team");
        assert_eq!(resp.status(), 204, "removing {user} from {patient}");
    }

    /// The `/metrics` text (open, no token).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Stream stats as admin.
    pub async fn stats(&self) -> Value {
        self.get("/api/v1/alerts/stream/stats", &admin())
            .await
            .json()
            .await
            .expect("stats JSON")
    }

    /// Waits until the stats satisfy `pred` (bounded; never a fixed sleep).
    pub async fn wait_for_stats(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if pred(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for stats: {what}; last {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens an SSE stream; `query` is appended after `?`.
    pub async fn sse(&self, token: &str, query: &str) -> SseClient {
        SseClient::open(self, token, query, None).await
    }

    /// Opens a legacy WebSocket with `?token=` and extra query.
    pub async fn ws(&self, token: &str, query: &str) -> WsClient {
        let url = format!(
            "ws://127.0.0.1:{}/ws?token={token}{}{query}",
            self.port,
            if query.is_empty() { "" } else { "&" }
        );
        WsClient::connect(&url).await
    }
}

/// Polls `check` until it returns `Some`, or panics after `WAIT`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(WAIT, what, check).await
}

/// [`eventually`] for what the server does only after a timeout of its own longer than
/// a few seconds, and so may take more than [`WAIT`].
pub async fn eventually_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A parsed SSE stream.
pub struct SseClient {
    /// Response status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    events: Option<BoxStream<'static, Result<Event, String>>>,
    /// Last `id:` seen.
    pub last_id: Option<String>,
}

impl SseClient {
    /// Opens a stream; reads nothing yet.
    pub async fn open(
        app: &TestApp,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> SseClient {
        let mut req = app
            .client
            .get(app.url(&format!("/api/v1/alerts/stream?{query}")))
            .timeout(Duration::from_secs(3600));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("open SSE");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let events = (status == 200).then(|| {
            resp.bytes_stream()
                .eventsource()
                .map(|r| r.map_err(|e| e.to_string()))
                .boxed()
        });
        SseClient {
            status,
            headers,
            events,
            last_id: last_event_id.map(str::to_owned),
        }
    }

    /// The next event, or `None` when the stream ended; panics on timeout.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let events = self.events.as_mut().expect("stream is open (status 200)");
        match tokio::time::timeout(timeout, events.next()).await {
            Ok(Some(Ok(event))) => {
                if !event.id.is_empty() {
                    self.last_id = Some(event.id.clone());
                }
                Some(event)
            }
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no SSE event within {timeout:?}"),
        }
    }

    /// Reads events until one satisfies `pred`; panics if the stream ends first.
    pub async fn until(&mut self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .next_event(left)
                .await
                .expect("stream ended before the awaited event");
            if pred(&event) {
                return event;
            }
        }
    }

    /// Waits for the `connected` event (the readiness barrier) and returns its data.
    pub async fn connected(&mut self) -> Value {
        let event = self.until(WAIT, |e| e.event == "connected").await;
        serde_json::from_str(&event.data).expect("connected JSON")
    }

    /// The next `alert`/`alert_updated` event (skipping heartbeats).
    pub async fn next_alert_event(&mut self) -> Event {
        self.until(WAIT, |e| e.event == "alert" || e.event == "alert_updated")
            .await
    }

    /// Stops reading and closes the connection.
    pub fn close(&mut self) {
        self.events = None;
    }
}

/// A legacy WebSocket client.
pub struct WsClient {
    /// Handshake response headers.
    pub headers: tokio_tungstenite::tungstenite::http::HeaderMap,
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    /// Connects (panics if the handshake fails).
    pub async fn connect(url: &str) -> WsClient {
        WsClient::connect_with(url, &[]).await
    }

    /// Connects with extra handshake headers (panics if the handshake fails).
    pub async fn connect_with(url: &str, headers: &[(&'static str, &str)]) -> WsClient {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("a WebSocket URL");
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("a header value"));
        }
        let (stream, resp) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        WsClient {
            headers: resp.headers().clone(),
            stream,
        }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// Sends a JSON frame.
    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends JSON frames back to back, flushed once (as one burst on the wire).
    pub async fn send_burst(&mut self, values: &[Value]) {
        for value in values {
            self.stream
                .feed(Message::text(value.to_string()))
                .await
                .expect("feed");
        }
        self.stream.flush().await.expect("flush");
    }

    /// Sends a raw message.
    pub async fn send(&mut self, message: Message) {
        self.stream.send(message).await.expect("send");
    }

    /// Writes bytes to the socket as they are, past the WebSocket framing (for frames no
    /// client library would send, e.g. a header declaring a huge payload).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let socket = self.stream.get_mut();
        socket.write_all(bytes).await.expect("write");
        socket.flush().await.expect("flush");
    }

    /// Ends the sending side of the connection (TCP FIN), as a client process that exits
    /// or a connection that drops does.
    pub async fn shut_down_sending(&mut self) {
        use tokio::io::AsyncWriteExt;
        let socket = self.stream.get_mut();
        socket.shutdown().await.expect("shutdown");
    }

    /// The next JSON text frame (pings/pongs skipped); `None` on close.
    pub async fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(&text).expect("server frames are JSON"));
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("no WebSocket frame within {timeout:?}"),
            }
        }
    }

    /// Reads frames until one has `"type": kind`.
    pub async fn until_type(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self
                .next_json(left)
                .await
                .unwrap_or_else(|| panic!("socket closed before a {kind} frame"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Waits for the socket to close (answering nothing); panics on timeout.
    pub async fn closed(
        &mut self,
        timeout: Duration,
    ) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("socket still open after {timeout:?}"),
            }
        }
    }
}

/// Asserts an RFC 9457 problem answer (`application/problem+json`, with `type`, `title`,
/// `status` and `detail`) with the given status, and returns its body.
pub async fn expect_problem(resp: reqwest::Response, status: u16, what: &str) -> Value {
    let actual = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
    assert_eq!(actual, status, "{what}: status (body {text})");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: Content-Type {content_type:?} is not application/problem+json"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: problem body is not JSON ({e}): {text}"));
    assert_eq!(
        body["status"], status,
        "{what}: problem `status` member: {body}"
    );
    for member in ["type", "title", "detail"] {
        assert!(
            body[member].is_string(),
            "{what}: problem lacks `{member}`: {body}"
        );
    }
    body
}

/// The `field` names listed in a 422 problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl TestApp {
    /// GET that must answer 200; returns the JSON body.
    pub async fn get_ok(&self, path: &str, token: &str) -> Value {
        let resp = self.get(path, token).await;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: reading the body: {e}"));
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }
}

impl TestApp {
    /// Any method, with a bearer token (none when `token` is empty) and an optional JSON
    /// body; returns the raw response.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: request failed: {e}"))
    }

    /// Status of opening `GET /api/v1/alerts/stream?{query}`; the stream is dropped at once.
    pub async fn stream_status(&self, token: &str, query: &str) -> u16 {
        let path = format!("/api/v1/alerts/stream?{query}");
        self.send(reqwest::Method::GET, &path, token, None)
            .await
            .status()
            .as_u16()
    }
}

impl WsClient {
    /// The next raw message, pings and pongs included (reading lets tungstenite queue
    /// the pong answer); `None` on close or error; panics on timeout.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<Message> {
        match tokio::time::timeout(timeout, self.stream.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => None,
            Ok(Some(Ok(message))) => Some(message),
            Err(_) => panic!("no WebSocket message within {timeout:?}"),
        }
    }
}

/// One sample of a `/metrics` text: `name{…}` carrying every label in `labels`.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            wanted.then(|| value.trim().parse().ok()).flatten()
        })
}

/// Runs the `vigil` binary with `args` and `env` to its exit and returns its exit status
/// and stderr; a process still running after `within` fails the test as `what`.
pub fn vigil_exit(
    args: &[&str],
    env: &[(&str, &str)],
    within: Duration,
    what: &str,
) -> (std::process::ExitStatus, String) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the vigil binary");
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let output = exited
        .recv_timeout(within)
        .unwrap_or_else(|_| panic!("{what}: still running after {within:?}"))
        .expect("its output");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What `vigil --version` prints; panics unless it succeeds.
pub fn vigil_version() -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--version")
        .output()
        .expect("vigil --version");
    assert!(output.status.success(), "vigil --version");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl TestApp {
    /// Sends a WebSocket handshake for `/ws?{query}` through the HTTP client (the four RFC
    /// 6455 headers, version 13; `headers` are added, or replace one of them), for the
    /// refusals whose status and problem body a WebSocket client does not show.
    pub async fn ws_handshake(&self, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        .iter()
        .chain(headers)
        {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        self.client
            .get(self.url(&format!("/ws?{query}")))
            .headers(map)
            .send()
            .await
            .expect("GET /ws")
    }
}

/// A header's value as text (empty when absent or not text), for assertions.
pub fn header_text(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Runs `statements` on the test server's database, as another client would.
pub fn run_sql(database_url: &str, statements: &[&str]) {
    use diesel::RunQueryDsl;
    use diesel::r2d2::ManageConnection;
    let manager = vigil::db::pool::AnyManager::new(&vigil::config::DatabaseConfig {
        url: database_url.to_owned(),
        sqlite_sync: vigil::config::SqliteSync::Normal,
        pool_size: 1,
        wal_limit_bytes: vigil::config::DEFAULT_WAL_LIMIT_BYTES,
    });
    let mut conn = manager.connect().expect("a connection of the test's own");
    for statement in statements {
        diesel::sql_query(*statement)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}
