//! Real Redis and PostgreSQL servers owned by one test, for fault tests that stop and
//! restart them without disturbing the rest of the suite. The binaries come from
//! `scripts/services.sh` (which installs them); a missing binary fails the test loudly.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() != up {
        assert!(
            Instant::now() < deadline,
            "port {port} did not become {}",
            if up { "reachable" } else { "closed" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shared Redis URL from `scripts/services.sh`; panics (never skips) when unset.
pub fn shared_redis_url() -> String {
    std::env::var("VIGIL_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .expect("VIGIL_TEST_REDIS_URL is not set: run the suite with `bash scripts/test.sh`, which starts Redis")
}

/// A private redis-server that a test may stop and start.
pub struct OwnRedis {
    /// Port.
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
        };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(self.port, false);
    }

    /// Suspends the server (SIGSTOP): connections stay open, nothing is answered or
    /// delivered until [`OwnRedis::thaw`] — a Redis that lags.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("redis is running").id();
        let status = Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {which} {pid}");
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run the suite with `bash scripts/test.sh`");
        self.child = Some(child);
        wait_for_port(self.port, true);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private PostgreSQL cluster that a test may stop and start (runs as the `postgres`
/// user, since initdb refuses root).
pub struct OwnPostgres {
    /// Port.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl OwnPostgres {
    /// initdb + start on a free port.
    pub fn start() -> Self {
        let bin = PathBuf::from(
            std::env::var("VIGIL_PG_BIN")
                .ok()
                .filter(|v| !v.is_empty())
                .expect("VIGIL_PG_BIN is not set: run the suite with `bash scripts/test.sh`, which installs PostgreSQL"),
        );
        let dir = std::env::temp_dir().join(format!("vigil-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        run(
            "chown",
            &["postgres:postgres", dir.to_str().unwrap_or_default()],
        );
        let data = dir.join("data");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let pg = OwnPostgres {
            port: free_port(),
            dir,
            bin,
        };
        pg.resume();
        pg
    }

    /// URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast mode).
    pub fn stop(&self) {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "fast", "-w", "stop"],
        );
        wait_for_port(self.port, false);
    }

    /// Starts it (again) on the same port.
    pub fn resume(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("pg.log");
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data(),
                "-l",
                log.to_str().unwrap_or_default(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        );
        wait_for_port(self.port, true);
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// Suspends the server and its backends (SIGSTOP): connections stay open and
    /// queries are taken but never answered until [`OwnPostgres::thaw`] — a frozen
    /// database host, or a network that drops packets.
    pub fn freeze(&self) {
        let pid = self.postmaster_pid();
        run("kill", &["-STOP", &pid]);
        run("pkill", &["-STOP", "-P", &pid]);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        let pid = self.postmaster_pid();
        run("pkill", &["-CONT", "-P", &pid]);
        run("kill", &["-CONT", &pid]);
    }

    fn postmaster_pid(&self) -> String {
        let file = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .expect("postmaster.pid");
        file.lines().next().expect("a pid").trim().to_owned()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // A test that failed while the server was frozen left it stopped for good: a
        // stopped process never acts on the stop signal below. Let it go on first.
        let pid = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .ok()
            .and_then(|file| file.lines().next().map(|pid| pid.trim().to_owned()));
        if let Some(pid) = pid {
            let _ = Command::new("pkill").args(["-CONT", "-P", &pid]).status();
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
        }
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?} failed");
}

fn as_postgres(program: &std::path::Path, args: &[&str]) {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("runuser");
    assert!(status.success(), "{} {args:?} failed", program.display());
}

/// A TCP proxy to a local port whose connections can be cut off without a sign: the
/// server's side is closed, the client's side stays open and hears nothing more — what a
/// firewall that forgot an idle connection, or a server restarted behind a network
/// partition, leaves a client with. Connections made after a cut are proxied as before.
pub struct SilentCutProxy {
    /// Port.
    pub port: u16,
    cut: tokio::sync::watch::Sender<u64>,
}

impl SilentCutProxy {
    /// Listens on a free port and forwards every connection to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        // Client sides of cut connections, held open.
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    continue;
                };
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                let kept = std::sync::Arc::clone(&kept);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {
                            drop(server);
                            kept.lock().expect("held connections").push(client);
                        }
                    }
                });
            }
        });
        SilentCutProxy { port, cut }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Cuts every connection open now.
    pub fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }
}
