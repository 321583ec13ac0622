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
    /// Certificate and key when it speaks only TLS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl OwnRedis {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
            tls: None,
        };
        redis.resume();
        redis
    }

    /// Starts one that speaks only TLS, with `certificate`; clients' certificates are not
    /// asked for.
    pub fn start_tls(certificate: &TestCertificate) -> Self {
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
            tls: Some((certificate.cert.clone(), certificate.key.clone())),
        };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://…` when it speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
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
        let port = self.port.to_string();
        let mut listen = vec!["--port", &port];
        if let Some((cert, key)) = &self.tls {
            let (cert, key) = (
                cert.to_str().unwrap_or_default(),
                key.to_str().unwrap_or_default(),
            );
            listen = vec![
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                cert,
                "--tls-auth-clients",
                "no",
            ];
        }
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(listen)
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
    /// Server options beyond the usual ones (TLS).
    options: String,
}

impl OwnPostgres {
    /// initdb + start on a free port.
    pub fn start() -> Self {
        let pg = Self::create();
        pg.resume();
        pg
    }

    /// initdb + start on a free port, taking connections over TLS only, with
    /// `certificate`: a client that does not ask for TLS is refused.
    pub fn start_tls(certificate: &TestCertificate) -> Self {
        let mut pg = Self::create();
        let cert = pg.dir.join("server.crt");
        let key = pg.dir.join("server.key");
        std::fs::copy(&certificate.cert, &cert).expect("copy the certificate");
        std::fs::copy(&certificate.key, &key).expect("copy the key");
        let (cert, key) = (
            cert.to_str().unwrap_or_default(),
            key.to_str().unwrap_or_default(),
        );
        run("chown", &["postgres:postgres", cert, key]);
        // PostgreSQL refuses a key others may read.
        run("chmod", &["600", key]);
        std::fs::write(
            pg.dir.join("data").join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        pg.options = format!(" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}");
        pg.resume();
        pg
    }

    /// A new cluster on a free port, not started.
    fn create() -> Self {
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
        OwnPostgres {
            port: free_port(),
            dir,
            bin,
            options: String::new(),
        }
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
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off{}",
            self.port,
            self.dir.display(),
            self.options
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

/// A self-signed certificate for `127.0.0.1` and `localhost`, and its key, made with the
/// `openssl` command (which `scripts/packages.sh` installs), for the TLS servers a test
/// owns; the certificate is also the authority clients are told to trust.
pub struct TestCertificate {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCertificate {
    /// Makes a new one: two never share a key, so one is not the other's authority.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost", "-addext"])
            .args(["subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is not installed: run the suite with `bash scripts/test.sh`");
        assert!(status.success(), "openssl req failed");
        TestCertificate {
            cert,
            key,
            _dir: dir,
        }
    }

    /// The certificate's PEM text.
    pub fn pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).expect("read the certificate")
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

#[cfg(feature = "tls")]
/// Python's TLS terminating proxy: what nginx in front of Vigil does, in a few lines of a
/// language every test machine has.
const TLS_PROXY: &str = r#"
import asyncio, ssl, sys
cert, key, target, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

#[cfg(feature = "tls")]
/// HTTPS in front of a local HTTP server, with `certificate`: Vigil behind a TLS
/// terminating proxy, as deployment.md puts it. Killed when dropped.
pub struct TlsProxy {
    /// Port (HTTPS).
    pub port: u16,
    child: Child,
}

#[cfg(feature = "tls")]
impl TlsProxy {
    /// Listens on a free port and forwards every connection to `127.0.0.1:target`.
    pub fn start(certificate: &TestCertificate, target: u16) -> Self {
        use std::io::BufRead;

        let port = free_port();
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(TLS_PROXY)
            .arg(&certificate.cert)
            .arg(&certificate.key)
            .args([target.to_string(), port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let mut ready = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut ready)
            .expect("the proxy's first line");
        assert_eq!(ready.trim(), "ready", "the TLS proxy did not start");
        TlsProxy { port, child }
    }
}

#[cfg(feature = "tls")]
impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
