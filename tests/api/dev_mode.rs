//! The binary as a new user runs it: `vigil serve --dev`'s token signs in to the server it
//! started, whatever the JWT settings (with a public key it says why it has none), and
//! `vigil watch` given a URL that cannot work says so instead of retrying forever.

// Test code: a failed expectation is a test failure. clippy.toml's allow-expect-in-tests
// covers `#[test]` bodies but not the helpers beside them in an integration-test crate.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::helpers::vigil_exit;

/// `vigil serve --dev` with `env`; its banner (stdout) once the listening line is logged.
struct DevServer {
    child: Child,
    url: String,
    banner: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevServer {
    fn start(args: &[&str], env: &[(&str, &str)]) -> DevServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
        command
            .args(args)
            .args(["--dev", "--bind", "127.0.0.1:0"])
            .env_clear()
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("dev.db").display()),
            )
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start vigil serve --dev");
        let (url_tx, url_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("vigil listening on ").nth(1) {
                    let _ = url_tx.send(url.trim().to_owned());
                }
            }
        });
        let (banner_tx, banner) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = banner_tx.send(line);
            }
        });
        let url = url_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("vigil serve --dev logs its URL");
        DevServer {
            child,
            url,
            banner,
            _dir: dir,
        }
    }

    /// The banner line that contains `label`.
    fn banner_line(&self, label: &str) -> String {
        loop {
            let line = self
                .banner
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("a banner line with {label:?}"));
            if line.contains(label) {
                return line;
            }
        }
    }
}

#[actix_web::test]
async fn the_printed_admin_token_signs_in_even_with_an_issuer_and_audience_required() {
    let server = DevServer::start(
        &["serve"],
        &[("VIGIL_JWT_ISSUER", "me"), ("VIGIL_JWT_AUDIENCE", "vig")],
    );
    let line = server.banner_line("admin token");
    let token = line.split_whitespace().last().expect("the token");
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "the banner's token is accepted");
}

/// The banner's "mint more tokens with" command, pasted into a shell, mints tokens the
/// server accepts: the issuer and audience it requires were left out when they came from
/// flags. And a secret of only spaces is "not set" (README), so `--dev` makes one up
/// instead of refusing to start.
#[actix_web::test]
async fn the_printed_mint_command_mints_tokens_the_server_accepts() {
    let server = DevServer::start(
        &["serve", "--jwt-issuer", "me", "--jwt-audience", "vig ward"],
        &[("VIGIL_JWT_SECRET", "    ")],
    );
    let line = server.banner_line("mint more tokens with");
    let command = line
        .split("with:")
        .nth(1)
        .expect("the command")
        .trim()
        .to_owned();
    assert!(command.contains("--jwt-audience 'vig ward'"), "{command}");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("vigil() {{ \"$VIGIL_BIN\" \"$@\"; }}; {command}"))
        .env("VIGIL_BIN", env!("CARGO_BIN_EXE_vigil"))
        .output()
        .expect("run the printed command");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("UTF-8");
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts", server.url))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "the minted token is accepted");
}

#[actix_web::test]
async fn without_a_subcommand_and_with_a_public_key_the_banner_says_why_it_prints_no_token() {
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/api/keys/rs256_public.pem"
    );
    // Also: `serve` is the default with flags too, and `--log` replaces RUST_LOG (the
    // listening line is only logged at info).
    let server = DevServer::start(
        &["--log", "info"],
        &[
            ("VIGIL_JWT_PUBLIC_KEY_FILE", key),
            ("VIGIL_JWT_ALG", "RS256"),
            ("RUST_LOG", "off"),
        ],
    );
    let line = server.banner_line("no admin token");
    assert!(line.contains("VIGIL_JWT_PUBLIC_KEY_FILE"), "{line}");
    let resp = reqwest::get(format!("{}/healthz", server.url))
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
}

/// `--dev` invents an HS256 secret when no key is set; with `VIGIL_JWT_ALG` pinning
/// RS256 or ES256 it had quietly run HS256 anyway, trusting tokens the operator had
/// pinned out. It stops instead, naming the variable, as a secret with RS256 does.
#[test]
fn dev_mode_with_an_asymmetric_algorithm_and_no_key_stops_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("dev.db").display());
    for algorithm in ["RS256", "ES256"] {
        let (status, stderr) = vigil_exit(
            &["serve", "--dev", "--bind", "127.0.0.1:0"],
            &[
                ("DATABASE_URL", database.as_str()),
                ("VIGIL_JWT_ALG", algorithm),
                ("VIGIL_JWT_SECRET", ""),
                ("VIGIL_JWT_PUBLIC_KEY_FILE", ""),
            ],
            Duration::from_secs(30),
            "vigil serve --dev with an asymmetric algorithm and no key",
        );
        assert!(!status.success(), "{algorithm}: {stderr}");
        assert!(
            stderr.contains("VIGIL_JWT_ALG") && stderr.contains("VIGIL_JWT_PUBLIC_KEY_FILE"),
            "{algorithm}: {stderr}"
        );
    }
}

#[test]
fn watch_with_a_url_that_cannot_work_exits_at_once_naming_the_flag() {
    // A query string would swallow the paths appended to the base: it looped for ever.
    for url in [
        "notaurl",
        "ftp://127.0.0.1:1",
        "http://127.0.0.1:1?x=1",
        "http://127.0.0.1:1/#a",
    ] {
        let (status, stderr) = vigil_exit(
            &["watch", "--url", url, "--token", "t"],
            &[],
            Duration::from_secs(30),
            "vigil watch with a bad --url",
        );
        assert!(!status.success(), "{url}: {stderr}");
        assert!(stderr.contains("--url"), "{url}: {stderr}");
    }
}

/// `vigil token --role nurse --patient 456` wrote a `patient_id` claim the server
/// ignores for every role but `patient`, without a word: the token is minted (DESIGN's
/// own example gives a nurse one) with a warning that it is not limited to that patient.
#[test]
fn a_patient_given_for_another_role_is_minted_with_a_warning() {
    let secret = [("VIGIL_JWT_SECRET", "0123456789abcdef0123456789abcdef")];
    let nurse = [
        "token",
        "--sub",
        "alice",
        "--role",
        "nurse",
        "--patient",
        "456",
    ];
    let (status, stderr) = vigil_exit(&nurse, &secret, Duration::from_secs(30), "vigil token");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "--patient is read for role patient only: with role nurse the token sees the patients of its care team"
        ),
        "{stderr}"
    );
    let admin = [
        "token",
        "--sub",
        "root",
        "--role",
        "admin",
        "--patient",
        "456",
    ];
    let (status, stderr) = vigil_exit(&admin, &secret, Duration::from_secs(30), "vigil token");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("with role admin the token sees every patient"),
        "{stderr}"
    );
    let patient = [
        "token",
        "--sub",
        "p",
        "--role",
        "patient",
        "--patient",
        "456",
    ];
    let (status, stderr) = vigil_exit(&patient, &secret, Duration::from_secs(30), "vigil token");
    assert!(status.success() && stderr.is_empty(), "{stderr}");
}

/// The README's `$API` (`…/api/v1`) given as the base URL: every request was answered
/// 404, and `watch` said only "no such resource".
#[test]
fn watch_given_the_api_prefix_names_the_base_url_to_give() {
    for (url, base) in [
        ("http://127.0.0.1:1/api/v1", "http://127.0.0.1:1"),
        ("http://127.0.0.1:1/api/v1/", "http://127.0.0.1:1"),
        ("http://127.0.0.1:1/api", "http://127.0.0.1:1"),
        (
            "http://127.0.0.1:1/vigil/api/v1",
            "http://127.0.0.1:1/vigil",
        ),
    ] {
        let (status, stderr) = vigil_exit(
            &["watch", "--url", url, "--token", "t"],
            &[],
            Duration::from_secs(30),
            "vigil watch given the API prefix",
        );
        assert!(!status.success(), "{url}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "--url: expected the server's base URL, without /api/v1: {base} "
            )),
            "{url}: {stderr}"
        );
    }
}

/// `println!` panicked on a closed stdout: `vigil serve --dev | grep -m1 token` stopped
/// the server it had just started (exit 101) once grep had its line, and `vigil token |
/// true` exited 101 with a panic. The banner is now lost alone, with a warning, and the
/// server goes on; a command whose output is its purpose ends quietly with 0.
#[actix_web::test]
async fn a_closed_stdout_loses_the_banner_not_the_server_and_no_command_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--dev", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("dev.db").display()),
        )
        .env("RUST_LOG", "info")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vigil serve --dev");
    // The reader goes before the server has started: its banner meets a closed pipe.
    drop(child.stdout.take());
    let stderr = child.stderr.take().expect("stderr");
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut url, mut warned) = (None, false);
    while url.is_none() || !warned {
        let line = log
            .recv_timeout(Duration::from_secs(60))
            .expect("the listening line and the banner's warning");
        assert!(!line.contains("panicked"), "{line}");
        if let Some(found) = line.split("vigil listening on ").nth(1) {
            url = Some(found.trim().to_owned());
        }
        warned |= line.contains("the development banner could not be written to stdout");
    }
    let url = url.unwrap_or_default();
    let health = reqwest::get(format!("{url}/readyz")).await.expect("GET");
    assert_eq!(health.status(), 200, "the server goes on serving");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    let _ = child.kill();
    let _ = child.wait();

    let mut token = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["token", "--sub", "alice", "--role", "nurse"])
        .env_clear()
        .env("VIGIL_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil token");
    drop(token.stdout.take());
    let output = token.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

/// `vigil watch` retrying an unreachable server said only "error sending request for url
/// (…)": whether the connection was refused, timed out or the name did not resolve was
/// left out. The innermost cause is now on the line.
#[test]
fn watch_says_why_it_cannot_connect() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("its address").port();
    drop(closed);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "watch",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            "t",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil watch");
    let stderr = child.stderr.take().expect("stderr");
    let first = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("cannot connect"));
    let _ = child.kill();
    let _ = child.wait();
    let line = first.unwrap_or_default();
    assert!(line.contains("Connection refused"), "{line:?}");
    assert!(line.contains("retrying in"), "{line:?}");
}

/// `--help` printed each variable's value from the environment: a database or Redis URL
/// with its password in it, on a terminal or in a support ticket's paste.
#[test]
fn help_never_prints_a_password_from_the_environment() {
    for command in ["serve", "migrate"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([command, "--help"])
            .env_clear()
            .env(
                "DATABASE_URL",
                "postgres://vigil:db-pw-7f3a@db.example/vigil",
            )
            .env(
                "VIGIL_REDIS_URL",
                "redis://:redis-pw-9c1e@cache.example:6379/",
            )
            .output()
            .expect("vigil --help");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}");
        assert!(help.contains("DATABASE_URL"), "{command}: {help}");
        assert!(
            !help.contains("db-pw-7f3a") && !help.contains("redis-pw-9c1e"),
            "{command}: {help}"
        );
    }
}
