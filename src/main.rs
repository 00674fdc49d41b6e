//! The `tokenmint` command line.

use std::io::BufRead as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use tokenmint::auth::passwords::{Password, PasswordHasher};
use tokenmint::auth::users::{NewUser, Username, create_user, parse_names};
use tokenmint::clock::{Clock as _, SystemClock};
use tokenmint::config::Settings;
use tokenmint::startup::{Application, open_database};

// jemalloc returns freed argon2 blocks (19 MiB each) to the system at once; glibc kept
// them in per-thread arenas and the process grew to hundreds of MiB under a login flood.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Tokenmint: a small identity provider. Configured by TOKENMINT_* environment variables.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate now (same as POST /api/admin/signing-keys/rotate).
    Rotate {
        /// Algorithm of the new `next` key: ES256, EdDSA or RS256.
        #[arg(long)]
        alg: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        /// Username.
        #[arg(long)]
        username: String,
        /// A role (repeatable), e.g. admin.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the chain of causes on one line, without a backtrace.
            eprintln!("tokenmint: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Openapi) = cli.command {
        print!("{}", tokenmint::openapi::document_json()?);
        return Ok(());
    }
    let settings = Settings::from_env().context("invalid configuration")?;
    tokenmint::telemetry::init(&settings.log).map_err(anyhow::Error::msg)?;
    match cli.command {
        None | Some(Command::Serve) => {
            let app = Application::build(settings, Arc::new(SystemClock)).await?;
            app.run_until_stopped().await?;
        }
        Some(Command::Migrate) => {
            open_database(&settings).await?;
            eprintln!("migrations applied");
        }
        Some(Command::User {
            command:
                UserCommand::Create {
                    username,
                    roles,
                    scopes,
                    password_stdin: _,
                },
        }) => {
            let username = Username::parse(&username).map_err(anyhow::Error::msg)?;
            let roles = parse_names("role", &roles).map_err(anyhow::Error::msg)?;
            let scopes = parse_names("scope", &scopes).map_err(anyhow::Error::msg)?;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.is_empty() {
                bail!("no password on standard input");
            }
            let password =
                Password::parse_new(SecretString::from(line)).map_err(anyhow::Error::msg)?;
            let db = open_database(&settings).await?;
            let hasher = PasswordHasher::new(1)?;
            let user = create_user(
                &db,
                &hasher,
                NewUser {
                    username,
                    password,
                    roles,
                    scopes,
                    claims: serde_json::Map::new(),
                },
                SystemClock.now(),
            )
            .await?;
            println!("{}", user.id);
        }
        Some(Command::Keys {
            command: KeysCommand::Rotate { alg },
        }) => {
            let alg = alg
                .map(|a| a.parse::<tokenmint::keys::SigningAlg>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            tokenmint::keys::crypto_provider::install();
            let db = open_database(&settings).await?;
            let kek = tokenmint::keys::kek::Kek::from_settings(&settings)?;
            let now = SystemClock.now();
            let keyring = tokenmint::keys::Keyring::load_or_init(
                db,
                kek,
                settings.signing_alg,
                tokenmint::startup::key_timing(&settings),
                now,
            )
            .await?;
            keyring.rotate(alg, now, false).await?;
            for key in keyring.list().await? {
                println!("{}\t{}\t{}", key.kid, key.alg, key.status.as_str());
            }
        }
        Some(Command::Openapi) => {}
    }
    Ok(())
}
