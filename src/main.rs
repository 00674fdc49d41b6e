//! The `tokenmint` command line.

use std::io::BufRead as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use tokenmint::clock::{Clock as _, SystemClock};
use tokenmint::config::Settings;
use tokenmint::identity::NewUser;
use tokenmint::identity::passwords::Password;
use tokenmint::model::Admin;
use tokenmint::model::{Claims, Role, Scope, TenantId, Username};
use tokenmint::sessions::SessionPage;
use tokenmint::startup::{Application, Services, open_database};

// jemalloc returns freed argon2 blocks (19 MiB each) to the system at once; glibc kept
// them in per-thread arenas and the process grew to hundreds of MiB under a login flood.
// Its defaults are set where it is built: `.cargo/config.toml`.
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
    /// A user's sessions, as the admin REST API sees them.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

fn print_keys(keys: &[tokenmint::keys::keyring::KeyInfo]) {
    for key in keys {
        println!("{}\t{}\t{}", key.kid, key.alg, key.status.as_str());
    }
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List a user's live sessions, newest first, one a line: id, login time, last
    /// refresh (`-` if none), last address, user agent (tab-separated).
    List {
        /// The user's id.
        #[arg(long)]
        user: uuid::Uuid,
    },
    /// End one session (same as DELETE /api/admin/sessions/{id}): its tokens fail at once.
    End {
        /// The session id.
        session: uuid::Uuid,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate now (same as POST /api/admin/signing-keys/rotate).
    Rotate {
        /// Algorithm of the new `next` key: ES256, EdDSA or RS256.
        #[arg(long)]
        alg: Option<String>,
    },
    /// Withdraw a key at once, e.g. its private part may have leaked (same as POST
    /// /api/admin/signing-keys/{kid}/withdraw): every instance refuses its tokens and
    /// leaves it out of JWKS before this returns; a withdrawn `current` key is replaced
    /// by a fresh one at once.
    Withdraw {
        /// The key id. A key id is base64url and may begin with `-`: it is taken as
        /// the key id here, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
        /// Also end every session (a mass logout).
        #[arg(long)]
        end_sessions: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        /// Username.
        #[arg(long)]
        username: String,
        /// The tenant (default: `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// A role (repeatable), e.g. admin. An admin also gets the admin scope.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Read the password from the first line of standard input (the only way to
        /// give it: a password on the command line would land in shell history).
        #[arg(long)]
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
        print!("{}", tokenmint::http::openapi::document_json()?);
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
                    tenant,
                    roles,
                    scopes,
                    password_stdin,
                },
        }) => {
            if !password_stdin {
                bail!("pass --password-stdin and the password on standard input");
            }
            let username = Username::parse(&username)?;
            let roles = Role::parse_list(&roles)?;
            let mut scopes = Scope::parse_list(&scopes)?;
            // Administration needs the admin role and the admin scope.
            if roles.contains(&Role::admin()) && !scopes.contains(&Scope::admin()) {
                scopes.push(Scope::admin());
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.is_empty() {
                bail!("no password on standard input");
            }
            let password = Password::parse_new(SecretString::from(line))?;
            let services = Services::build(settings, Arc::new(SystemClock)).await?;
            let new = NewUser {
                tenant: tenant.as_deref().map(TenantId::parse).transpose()?,
                username,
                password,
                roles,
                scopes,
                claims: Claims::default(),
            };
            let user = services
                .identity
                .create_user(&Admin::operator(), new, SystemClock.now())
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
            let services = Services::build(settings, Arc::new(SystemClock)).await?;
            let keys = services
                .signing_keys
                .rotate(&Admin::operator(), alg, SystemClock.now())
                .await?;
            print_keys(&keys);
        }
        Some(Command::Keys {
            command:
                KeysCommand::Withdraw {
                    kid,
                    reason,
                    end_sessions,
                },
        }) => {
            let withdrawal = tokenmint::keys::admin::Withdrawal {
                reason: tokenmint::keys::admin::WithdrawReason::parse(&reason)?,
                end_sessions,
            };
            let services = Services::build(settings, Arc::new(SystemClock)).await?;
            let keys = services
                .signing_keys
                .withdraw(&Admin::operator(), kid, withdrawal, SystemClock.now())
                .await?;
            print_keys(&keys);
        }
        Some(Command::Sessions { command }) => {
            let services = Services::build(settings, Arc::new(SystemClock)).await?;
            sessions(&services, command).await?;
        }
        Some(Command::Openapi) => {}
    }
    Ok(())
}

/// `tokenmint sessions ...`: the admin use cases, as the operator.
async fn sessions(services: &Services, command: SessionsCommand) -> anyhow::Result<()> {
    let operator = Admin::operator();
    match command {
        SessionsCommand::List { user } => {
            let mut page = SessionPage {
                after: None,
                limit: 200,
            };
            loop {
                let found = services
                    .sessions
                    .admin_list(&operator, user, page.clone(), SystemClock.now())
                    .await?;
                for s in &found {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        s.id,
                        s.created_at.to_rfc3339(),
                        s.last_refreshed_at
                            .map_or("-".to_owned(), |t| t.to_rfc3339()),
                        s.last_ip.as_deref().unwrap_or("-"),
                        s.user_agent.as_deref().unwrap_or("-"),
                    );
                }
                match found.last() {
                    Some(last) if found.len() == 200 => page.after = Some(last.position()),
                    _ => break,
                }
            }
        }
        SessionsCommand::End { session } => {
            services
                .sessions
                .admin_end(&operator, session, SystemClock.now())
                .await?;
            eprintln!("session {session} ended");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kid is an RFC 7638 thumbprint in base64url: one in 64 begins with `-`, and the
    /// command must take it as the key id (CI once drew such a key).
    #[test]
    fn keys_withdraw_takes_a_key_id_that_begins_with_a_hyphen() {
        for args in [
            [
                "tokenmint",
                "keys",
                "withdraw",
                "-zQ3x",
                "--reason",
                "leaked",
            ],
            [
                "tokenmint",
                "keys",
                "withdraw",
                "--reason",
                "leaked",
                "-zQ3x",
            ],
        ] {
            let cli = Cli::try_parse_from(args).map_err(|e| e.to_string());
            let Ok(Cli {
                command:
                    Some(Command::Keys {
                        command: KeysCommand::Withdraw { kid, reason, .. },
                    }),
            }) = cli
            else {
                panic!("{args:?} did not parse as a withdrawal: {:?}", cli.err());
            };
            assert_eq!((kid.as_str(), reason.as_str()), ("-zQ3x", "leaked"));
        }
    }
}
