//! The real `vigil` binary as a child process, for tests of what only the process shows:
//! its log, its memory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::helpers::*;

/// The real `vigil serve` as a child process, its stderr (the log) collected line by line.
pub struct Served {
    child: Child,
    /// Where it listens (`http://127.0.0.1:PORT`).
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
    /// The database it was started on.
    pub database_url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts `vigil serve` on a fresh database with `RUST_LOG=rust_log`.
    pub fn start(rust_log: &str) -> Served {
        let postgres = std::env::var("VIGIL_TEST_DATABASE_URL")
            .ok()
            .filter(|server| !server.is_empty());
        Served::start_on(
            rust_log,
            postgres.as_deref().map(fresh_postgres_database),
            &[],
        )
    }

    /// Starts `vigil serve` on a fresh SQLite file with extra settings (`VIGIL_…`).
    pub fn start_with(rust_log: &str, settings: &[(&str, &str)]) -> Served {
        Served::start_on(rust_log, None, settings)
    }

    /// Starts `vigil serve` on `database_url`.
    pub fn start_on_database(rust_log: &str, database_url: &str) -> Served {
        Served::start_on(rust_log, Some(database_url.to_owned()), &[])
    }

    /// Starts `vigil serve` on a fresh SQLite file whatever the suite's backend, for what
    /// only SQLite can be made to do (another process holding its write lock).
    pub fn start_on_sqlite(rust_log: &str) -> Served {
        Served::start_on(rust_log, None, &[])
    }

    /// Starts `vigil serve` on `database_url`, or on a fresh SQLite file (`vigil.db` in
    /// its own directory) when `None`, with `settings` added to its environment.
    fn start_on(rust_log: &str, database_url: Option<String>, settings: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = database_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("vigil.db").display()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", &database_url)
            .env("VIGIL_BIND", "127.0.0.1:0")
            .env("VIGIL_JWT_SECRET", SECRET)
            .env("RUST_LOG", rust_log)
            .env("RUST_LOG_STYLE", "never")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the vigil binary");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("vigil listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
                lines.lock().expect("log").push(line);
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "vigil serve printed no URL; its log:\n{}",
                    log.lock().expect("log").join("\n")
                );
            }
        };
        Served {
            child,
            url,
            log,
            database_url,
            _dir: dir,
        }
    }

    /// Raises an alert for `patient` as a service (201 expected); returns it.
    pub async fn raise(&self, patient: &str, severity: &str) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/alerts", self.url))
            .bearer_auth(service())
            .json(&alert_body(patient, severity))
            .send()
            .await
            .expect("POST /api/v1/alerts");
        assert_eq!(resp.status(), 201, "raising an alert for {patient}");
        resp.json().await.expect("alert JSON")
    }

    /// Every log line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// Sends a signal (`-HUP`, `-TERM` …) and waits for the process to exit.
    pub fn signal_and_wait(&mut self, which: &str) -> std::process::ExitStatus {
        self.signal(which);
        self.child.wait().expect("wait for vigil")
    }

    /// Sends a signal (`-HUP`, `-INT` …) and returns at once.
    pub fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {which}");
    }

    /// Whether the process has not exited yet.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for a log line containing every one of `parts`; returns it.
    pub async fn line_with(&self, parts: &[&str]) -> String {
        eventually(&format!("a log line with {parts:?}"), || async {
            self.lines()
                .into_iter()
                .find(|line| parts.iter().all(|p| line.contains(p)))
        })
        .await
    }
}
