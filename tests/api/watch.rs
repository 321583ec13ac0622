//! `vigil watch` as a nurse runs it: the real binary, its stdout and stderr read line by
//! line, against a real server — restarted on another database, behind a connection that
//! goes silent, with every stream slot taken, with its output closed, and with a patient
//! added to the care team while it runs.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::binary::Served;
use crate::helpers::*;
use crate::servers::free_port;

/// Long enough for a reconnect after two missed heartbeats and a backoff step.
const WATCH_WAIT: Duration = Duration::from_secs(40);

/// A running `vigil watch`; killed when dropped.
pub struct Watcher {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

impl Watcher {
    /// `vigil watch --url url --token token`, output collected.
    pub fn start(url: &str, token: &str) -> Watcher {
        Watcher::start_with(url, token, &[])
    }

    /// [`Watcher::start`] with `settings` in its environment.
    pub fn start_with(url: &str, token: &str, settings: &[(&str, &str)]) -> Watcher {
        let mut child = Watcher::command(url, token)
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start vigil watch");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Watcher {
            child,
            stdout,
            stderr,
        }
    }

    fn command(url: &str, token: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
        command
            .args(["watch", "--url", url, "--token", token])
            .env_clear()
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Waits for a stdout line containing `part`.
    pub async fn says(&self, part: &str) -> String {
        self.line_in(&self.stdout, part, "stdout").await
    }

    /// Waits for a stderr line containing `part`.
    pub async fn complains(&self, part: &str) -> String {
        self.line_in(&self.stderr, part, "stderr").await
    }

    async fn line_in(&self, lines: &Mutex<Vec<String>>, part: &str, which: &str) -> String {
        let deadline = tokio::time::Instant::now() + WATCH_WAIT;
        loop {
            if let Some(line) = lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.contains(part))
            {
                return line.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {which} line with {part:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout.lock().expect("lines").join("\n"),
                self.stderr.lock().expect("lines").join("\n"),
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The short id `watch` prints for an alert (the last 8 characters of its id).
pub fn short(alert: &serde_json::Value) -> String {
    let id = alert["id"].as_str().expect("id");
    id[id.len() - 8..].to_owned()
}

/// `--ack` read its first line before the first list had loaded, and answered "no alert
/// shown with id" for an alert that was about to be shown: a line piped in at start
/// (`echo "7c7a031d resolved" | vigil watch --ack`) never reached the server. It now waits
/// for the list.
#[actix_web::test]
async fn an_ack_line_given_before_the_list_has_loaded_reaches_the_alert() {
    use std::io::Write;

    let app = spawn_app().await;
    let alert = app.raise("p-early", "high").await;
    let id = alert["id"].as_str().expect("id").to_owned();
    let mut child = Watcher::command(&app.address, &admin())
        .arg("--ack")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start vigil watch --ack");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{} resolved seen at once", short(&alert)).expect("type the line");
    let watcher = Watcher {
        stderr: collect(child.stderr.take().expect("stderr")),
        stdout: Arc::default(),
        child,
    };
    eventually("the piped acknowledgment recorded", || async {
        let now: serde_json::Value = app
            .get(&format!("/api/v1/alerts/{id}"), &admin())
            .await
            .json()
            .await
            .ok()?;
        (now["status"] == "resolved").then_some(())
    })
    .await;
    drop((stdin, watcher));
}

/// A database replaced under a running `watch` (restored from an old backup, lost, or
/// a power cut that dropped commits): its last id is ahead of the new head, and the
/// server says `reset` so that the client reloads. `watch` printed a line and went on
/// live, so a critical alert raised before it reconnected was never shown.
#[actix_web::test]
async fn after_a_reset_watch_lists_the_unresolved_alerts_the_stream_could_not_replay() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let first = spawn_app_with(|c| c.bind = bind.clone()).await;
    let watch = Watcher::start(&first.address, &admin());
    watch.says("connected as root").await;
    for n in 0..3 {
        let alert = first.raise(&format!("before{n}"), "low").await;
        watch.says(&short(&alert)).await;
    }
    first.stopper.stop(true).await;

    // Another database, holding one critical alert and a head behind what watch saw.
    let dir = tempfile::tempdir().expect("tempdir");
    let replaced = fresh_database_url(&dir, "replaced.db");
    let filler = spawn_app_on(&replaced, |_| {}).await;
    let missed = filler.raise("p-missed", "critical").await;
    filler.stopper.stop(true).await;
    let second = spawn_app_on(&replaced, |c| c.bind = bind.clone()).await;

    watch.says("could not replay what was missed").await;
    let line = watch.says(&short(&missed)).await;
    assert!(
        line.contains("CRITICAL") && line.contains("p-missed"),
        "{line}"
    );
    let live = second.raise("p-live", "high").await;
    watch.says(&short(&live)).await;
}

/// Forwards TCP to a server until frozen: then existing connections stay open and carry
/// nothing (a network dropping packets, a stuck proxy); new connections pass. Or until
/// cut: existing connections are closed at their next bytes (a crashed server).
struct FreezingProxy {
    address: String,
    frozen: Arc<Mutex<Vec<Arc<AtomicU8>>>>,
}

/// A relayed connection's state: carrying bytes, frozen, or cut.
const PASSING: u8 = 0;
const FROZEN: u8 = 1;
const CUT: u8 = 2;

impl FreezingProxy {
    async fn to(upstream: u16) -> FreezingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let local: SocketAddr = listener.local_addr().expect("addr");
        let frozen: Arc<Mutex<Vec<Arc<AtomicU8>>>> = Arc::default();
        let flags = Arc::clone(&frozen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let flag = Arc::new(AtomicU8::new(PASSING));
                flags.lock().expect("flags").push(Arc::clone(&flag));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(relay(client_read, server_write, Arc::clone(&flag)));
                tokio::spawn(relay(server_read, client_write, flag));
            }
        });
        FreezingProxy {
            address: format!("http://{local}"),
            frozen,
        }
    }

    /// Every connection open now stops carrying bytes, without closing.
    fn freeze(&self) {
        self.set_all(FROZEN);
    }

    /// Every connection open now is closed when it next carries bytes.
    fn cut(&self) {
        self.set_all(CUT);
    }

    fn set_all(&self, state: u8) {
        for flag in self.frozen.lock().expect("flags").iter() {
            flag.store(state, Ordering::SeqCst);
        }
    }
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<AtomicU8>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        match state.load(Ordering::SeqCst) {
            // Hold both halves open and carry nothing more.
            FROZEN => std::future::pending::<()>().await,
            CUT => break,
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// A connection that dies without a word (no FIN, no RST) used to leave `watch` showing
/// "connected" for ever while alerts went unshown: now two missed heartbeats count as a
/// drop, and it resumes from the last id, the missed alert included.
#[actix_web::test]
async fn a_stream_gone_silent_is_dropped_and_resumed_without_losing_an_alert() {
    let app = spawn_app().await; // heartbeat 1 s
    let proxy = FreezingProxy::to(app.port).await;
    let watch = Watcher::start(&proxy.address, &admin());
    watch.says("connected as root").await;
    let before = app.raise("p-silent", "low").await;
    watch.says(&short(&before)).await;

    proxy.freeze();
    let during = app.raise("p-silent", "critical").await;
    watch.complains("nothing heard").await;
    watch.says(&short(&during)).await;
}

/// A stream cut off mid-body (a crashed server, a proxy restarting) was reported as
/// "stream broken (Transport error: error decoding response body)"; it now says the
/// connection was lost, and `watch` resumes without losing the alert that cut it.
#[actix_web::test]
async fn a_lost_connection_is_named_as_such_and_resumed() {
    let app = spawn_app().await;
    let proxy = FreezingProxy::to(app.port).await;
    let watch = Watcher::start(&proxy.address, &admin());
    watch.says("connected as root").await;
    proxy.cut();
    let during = app.raise("p-cut", "critical").await;
    let complaint = watch
        .complains("the connection to the server was lost")
        .await;
    assert!(!complaint.contains("Transport error"), "{complaint}");
    watch.says(&short(&during)).await;
}

/// A server that takes the connection and never answers (a stopped process, a stuck
/// proxy) held `watch` silent for ever at start: its list request had no time limit.
/// It says so, and keeps trying.
#[actix_web::test]
async fn a_server_that_never_answers_is_named_and_tried_again() {
    // The kernel completes the handshake for the backlog; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("address"));
    let mut watch = Watcher::start(&url, &admin());
    let complaint = watch.complains("did not answer within").await;
    assert!(complaint.contains("retrying"), "{complaint}");
    assert!(watch.running(), "it keeps trying");
    drop(silent);
}

/// With the server frozen (SIGSTOP: connections are accepted, nothing answers), a typed
/// acknowledgment printed nothing and the reconnect after the silent stream hung without
/// a word. Both now fail in time and say so; once the server is back, the same line
/// typed again is recorded once and the stream resumes.
#[actix_web::test]
async fn a_frozen_server_fails_a_typed_ack_and_a_reconnect_in_time_then_both_recover() {
    use std::io::Write;

    let served = Served::start_with(
        "warn,vigil::commands::serve=info",
        &[("VIGIL_HEARTBEAT_SECS", "1")],
    );
    let alert = served.raise("p-frozen", "high").await;
    let id = short(&alert);
    let mut child = Watcher::command(&served.url, &admin())
        .arg("--ack")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start vigil watch --ack");
    let mut stdin = child.stdin.take().expect("stdin");
    let watch = Watcher {
        stdout: collect(child.stdout.take().expect("stdout")),
        stderr: collect(child.stderr.take().expect("stderr")),
        child,
    };
    watch.says(&id).await;

    served.signal("-STOP");
    writeln!(stdin, "{id} escalated").expect("type the line");
    let failed = watch.says(&format!("ack failed {id}")).await;
    assert!(
        failed.contains("did not answer within") && failed.contains("typing the same line again"),
        "{failed}"
    );
    watch.complains("nothing heard").await;
    let reconnect = watch.complains("did not answer within").await;
    assert!(reconnect.contains("retrying"), "{reconnect}");

    served.signal("-CONT");
    writeln!(stdin, "{id} escalated").expect("type the line again");
    watch.says(&format!("ack ok {id} escalated")).await;
    let later = served.raise("p-frozen", "critical").await;
    watch.says(&short(&later)).await;
    let stored: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/alerts/{}",
            served.url,
            alert["id"].as_str().expect("id")
        ))
        .bearer_auth(admin())
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        stored["acknowledgments"].as_array().map(Vec::len),
        Some(1),
        "the line typed twice is recorded once: {stored}"
    );
}

/// The per-user stream limit was taken for a final refusal: `watch` exited 1 while the
/// slot it needed freed a moment later (console tabs reconnecting first after a restart).
#[actix_web::test]
async fn a_full_stream_limit_is_waited_out_not_taken_for_a_refusal() {
    let app = spawn_app_with(|c| c.max_streams_per_user = 1).await;
    let mut held = app.sse(&admin(), "").await;
    held.connected().await;
    let mut watch = Watcher::start(&app.address, &admin());
    watch.complains("429").await;
    assert!(watch.running(), "still waiting for a slot");
    held.close();
    watch.says("connected as root").await;
    let alert = app.raise("p-slot", "high").await;
    watch.says(&short(&alert)).await;
}

/// `vigil watch | head -1`: once the reader went away the next line panicked ("failed
/// printing to stdout: Broken pipe", exit 101).
#[actix_web::test]
async fn a_closed_output_ends_watch_quietly() {
    let app = spawn_app().await;
    let mut child = Watcher::command(&app.address, &admin())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start vigil watch");
    let stderr = collect(child.stderr.take().expect("stderr"));
    // The reader reads one line and goes away (on a thread: this one runs the server).
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let first = eventually("watch's first line", || async { rx.try_recv().ok() }).await;
    assert!(first.contains("unresolved"), "{first}");
    // Output to write after the reader is gone; until watch exits, more of it.
    let status: ExitStatus = loop {
        app.raise("p-pipe", "low").await;
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = stderr.lock().expect("lines").join("\n");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// A patient added to the nurse's care team while `watch` runs: the stream brings their
/// new alerts, and their open alerts from before are listed at once (it printed only the
/// request that would list them, so an open critical alert stayed unseen until restart).
#[actix_web::test]
async fn a_patient_added_to_the_care_team_has_their_open_alerts_listed() {
    let app = spawn_app().await;
    let waiting = app.raise("p-added", "critical").await;
    let watch = Watcher::start(&app.address, &token("nina", "nurse", None));
    watch.says("patients none yet").await;
    app.assign("p-added", "nina").await;
    watch.says("care team changed: added p-added").await;
    let line = watch.says(&short(&waiting)).await;
    assert!(line.contains("CRITICAL"), "{line}");
    let next = app.raise("p-added", "high").await;
    watch.says(&short(&next)).await;
    let shown = watch.stdout.lock().expect("lines").clone();
    assert_eq!(
        shown
            .iter()
            .filter(|l| l.contains(&short(&waiting)))
            .count(),
        1,
        "listed once: {shown:?}"
    );
}

/// A database restored from a backup numbers its changes anew: an alert `watch` showed
/// acknowledged at change #2 is open again at #1. The reload after `reset` compared with
/// what it had printed and hid the alert; it now lists everything the server holds.
#[actix_web::test]
async fn after_a_restore_watch_shows_each_alert_as_the_restored_database_has_it() {
    // A restore is a file copy here, on SQLite whatever the suite's backend: the
    // behaviour under test is watch's own.
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("restored.db");
    let url = format!("sqlite://{}", file.display());
    let first = spawn_app_on(&url, |c| c.bind = bind.clone()).await;
    let watch = Watcher::start(&first.address, &admin());
    watch.says("connected as root").await;
    let alert = first.raise("p-restored", "critical").await;
    let open_line = format!("#1 {} ", short(&alert));
    watch.says(&open_line).await;
    first.stopper.stop(true).await;
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).expect("backup dir");
    let files = ["restored.db", "restored.db-wal", "restored.db-shm"];
    for name in files {
        if dir.path().join(name).exists() {
            std::fs::copy(dir.path().join(name), backup.join(name)).expect("back up");
        }
    }

    let second = spawn_app_on(&url, |c| c.bind = bind.clone()).await;
    let id = alert["id"].as_str().expect("id");
    let acked = second.ack(&admin(), id, "acknowledged", None).await;
    assert_eq!(acked.status(), 200);
    watch.says(&format!("updated #2 {}", short(&alert))).await;
    second.raise("p-other", "low").await;
    watch.says("#3 ").await;
    second.stopper.stop(true).await;
    for name in files {
        let _ = std::fs::remove_file(dir.path().join(name));
        if backup.join(name).exists() {
            std::fs::copy(backup.join(name), dir.path().join(name)).expect("restore");
        }
    }

    let _third = spawn_app_on(&url, |c| c.bind = bind.clone()).await;
    watch.says("could not replay what was missed").await;
    let deadline = tokio::time::Instant::now() + WATCH_WAIT;
    loop {
        let lines = watch.stdout.lock().expect("lines").clone();
        let shown_open = lines.iter().filter(|l| l.starts_with(&open_line)).count();
        if shown_open == 2 {
            assert!(
                lines.last().is_some_and(|l| l.contains("[open]")),
                "{lines:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restored alert was not listed again as open: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
