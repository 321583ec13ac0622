//! `vigil serve`: validate configuration, print the dev banner, run until a signal.

use rand::Rng;

use crate::auth::{Claims, Signer};
use crate::cli::ServeArgs;
use crate::config::{Config, JwtConfig, JwtKey};
use crate::startup::Application;

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Startup failed.
    #[error(transparent)]
    Startup(#[from] crate::startup::StartupError),
    /// The server failed while running.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Validates the configuration; in `--dev` mode invents a secret when none is set.
pub fn config_from(args: &ServeArgs) -> Result<(Config, Option<String>), ServeError> {
    // Blank counts as not set, as for every setting without a default (README).
    let needs_dev_secret = args.dev
        && crate::config::set_value(args.jwt.jwt_secret.as_deref()).is_none()
        && crate::config::set_value(args.jwt.jwt_public_key_file.as_deref()).is_none();
    let dev_secret = needs_dev_secret.then(random_secret);
    let config = Config::from_args(args, dev_secret.as_deref())?;
    Ok((config, dev_secret))
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let (config, dev_secret) = config_from(&args)?;
    raise_open_file_limit();
    // The banner's token is signed with the server's own key settings, so it passes the
    // server's checks, `iss` and `aud` included.
    let banner_jwt = args.dev.then(|| config.jwt.clone());
    let host = config
        .bind
        .rsplit_once(':')
        .map(|(h, _)| h.to_owned())
        .unwrap_or_default();
    let app = Application::build(config).await?;
    let every_interface = matches!(host.as_str(), "0.0.0.0" | "[::]" | "");
    let url_host = if every_interface {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    let url = format!("http://{url_host}:{}", app.port());
    if every_interface {
        // Said plainly: reachable from the network, not only from this machine.
        log::info!(
            "vigil listening on every interface, port {} (here: {url})",
            app.port()
        );
    } else {
        log::info!("vigil listening on {url}");
    }
    if let Some(jwt) = banner_jwt {
        print_dev_banner(&url, &jwt, dev_secret.is_some());
    }
    app.run_until_stopped().await?;
    log::info!("vigil stopped");
    Ok(())
}

/// Every stream is a socket: lift the soft open-file limit to the hard one.
pub fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => log::debug!("open-file limit {limit}"),
        Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
    }
}

fn random_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints the development banner. A stdout that cannot take it (closed by a reader that
/// had what it wanted, a full disk) loses the banner, not the server: it goes on serving.
fn print_dev_banner(url: &str, jwt: &JwtConfig, generated: bool) {
    if let Err(e) = crate::stdout::write_line(&dev_banner(url, jwt, generated)) {
        log::warn!("the development banner could not be written to stdout: {e}");
    }
}

fn dev_banner(url: &str, jwt: &JwtConfig, generated: bool) -> String {
    let JwtKey::Secret(secret) = &jwt.key else {
        return public_key_banner(url);
    };
    let secret = secret.expose();
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: "dev-admin".to_owned(),
        role: "admin".to_owned(),
        patient_id: None,
        exp: now + 12 * 3600,
        iat: Some(now),
        iss: jwt.issuer.clone(),
        aud: jwt.audience.clone().map(Into::into),
    };
    let token = match Signer::hs256(secret).sign(&claims) {
        Ok(t) => t,
        Err(e) => {
            log::error!("cannot mint the development token: {e}");
            return String::from(
                "Vigil is running in development mode (no admin token: see the log).",
            );
        }
    };
    let mut banner = format!(
        "Vigil is running in development mode.\n  console (signs in as admin): {url}/#token={token}\n  admin token (12 h):          {token}"
    );
    if generated {
        banner.push_str(&format!("\n  JWT secret (this run only):  {secret}"));
        // The claims the server requires, whether they came from a flag or the
        // environment: a command that mints tokens the server refuses is no help.
        let mut required = String::new();
        for (flag, value) in [
            ("--jwt-issuer", &jwt.issuer),
            ("--jwt-audience", &jwt.audience),
        ] {
            if let Some(value) = value {
                required.push_str(&format!(" {flag} {}", shell_word(value)));
            }
        }
        banner.push_str(&format!(
            "\n  mint more tokens with:       VIGIL_JWT_SECRET={secret} vigil token{required} --sub alice --role nurse"
        ));
    }
    banner
}

/// `value` as one word for a POSIX shell, quoted only when it needs to be.
fn shell_word(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@%+=,".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// `--dev` with a public key: Vigil holds no key to sign with, so it says so instead of
/// printing nothing.
fn public_key_banner(url: &str) -> String {
    format!(
        "Vigil is running in development mode.\n  console: {url}/\n  no admin token printed: tokens are verified with VIGIL_JWT_PUBLIC_KEY_FILE, so only \
         the holder of its private key can mint them (unset it to get a development secret)"
    )
}
