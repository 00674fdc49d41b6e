//! Wiring: pools, keyring, revocation list, the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::{Condition, DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::auth::api_keys::ApiKeys;
use crate::auth::audit::{Audit, AuditEvent};
use crate::auth::passwords::{PasswordError, PasswordHasher};
use crate::auth::rate_limit::{LoginLimiter, LoginLimits};
use crate::auth::sessions::{SessionPolicy, Sessions};
use crate::auth::tokens::TokenService;
use crate::auth::users::{Bootstrap, BootstrapError, ensure_bootstrap_admin};
use crate::clock::Clock;
use crate::config::Settings;
use crate::http::{self, AppState, KnownRoutes};
use crate::keys::kek::Kek;
use crate::keys::lifecycle::Timing;
use crate::keys::{KeyError, Keyring, crypto_provider};
use crate::redis_conn::LazyRedis;
use crate::revocation::{RevocationError, Revocations};
use crate::store::{Db, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Signing keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// Redis could not be reached.
    #[error("TOKENMINT_REDIS_URL: {0}")]
    Redis(#[from] RevocationError),
    /// The password hasher could not start.
    #[error("password hasher: {0}")]
    Password(#[from] PasswordError),
    /// The bootstrap admin could not be created.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The listener could not bind.
    #[error("TOKENMINT_BIND: {0}")]
    Bind(#[from] std::io::Error),
    /// The OpenAPI document could not be serialized.
    #[error("OpenAPI document: {0}")]
    OpenApi(#[from] serde_json::Error),
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

/// Opens the database and applies migrations (also `tokenmint migrate`).
pub async fn open_database(settings: &Settings) -> Result<Db, StoreError> {
    let db = Db::new(
        &settings.database_url,
        settings.db_pool_size,
        settings.db_timeout,
    )?;
    let applied = db.migrate().await?;
    if applied > 0 {
        tracing::info!(
            applied,
            backend = db.backend(),
            "applied database migrations"
        );
    }
    Ok(db)
}

impl Application {
    /// Connects to every dependency, prepares keys and the bootstrap admin, and binds.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        crypto_provider::install();
        let settings = Arc::new(settings);
        let db = open_database(&settings).await?;
        let limits = LoginLimits {
            per_user: settings.login_max_failures,
            per_ip: settings.login_max_failures_per_ip,
            window: settings.login_window,
        };
        let (revocations, login_limiter) = match settings.redis_url.as_ref() {
            Some(url) => {
                let redis =
                    Arc::new(LazyRedis::new(url.expose_secret()).map_err(RevocationError::from)?);
                (
                    Revocations::redis(db.clone(), redis.clone(), settings.redis_prefix.clone()),
                    LoginLimiter::redis(redis, settings.redis_prefix.clone(), limits),
                )
            }
            None => (
                Revocations::memory(db.clone()),
                LoginLimiter::memory(limits),
            ),
        };
        let revocations = Arc::new(revocations);
        if let Err(error) = revocations.refill(clock.now()).await {
            tracing::warn!(%error, "revocation list not reachable at start; checks answer 503 until it is");
        }
        let kek = Kek::from_settings(&settings)?;
        let keyring = Arc::new(
            Keyring::load_or_init(
                db.clone(),
                kek,
                settings.signing_alg,
                key_timing(&settings),
                clock.now(),
            )
            .await?,
        );
        let hasher = Arc::new(
            tokio::task::spawn_blocking({
                let n = settings.hash_concurrency;
                move || PasswordHasher::new(n)
            })
            .await
            .map_err(|_| PasswordError::Task)??,
        );
        match ensure_bootstrap_admin(&db, &hasher, settings.bootstrap_admin.as_ref(), clock.now())
            .await?
        {
            Bootstrap::Nothing => {}
            Bootstrap::Created => tracing::info!("created the bootstrap admin"),
            Bootstrap::Generated(password) => {
                // Shown once, on purpose: the operator needs it to log in the first time.
                eprintln!(
                    "\n  Tokenmint created the first admin.\n    username: admin\n    password: {}\n  \
                     It is shown only this once. Set TOKENMINT_BOOTSTRAP_ADMIN to choose it instead.\n",
                    password.expose_secret()
                );
            }
        }

        let doc = crate::openapi::document();
        let openapi_json = web::Bytes::from(doc.to_json()?);
        let tokens = TokenService::new(
            keyring.clone(),
            settings.issuer.clone(),
            settings.audience.clone(),
            settings.access_ttl,
            settings.clock_skew,
            settings.verified_token_cache,
        );
        let sessions = Sessions::new(
            db.clone(),
            revocations.clone(),
            SessionPolicy {
                refresh_ttl: settings.refresh_ttl,
                session_ttl: settings.session_ttl,
                reuse_leeway: settings.refresh_reuse_leeway,
                access_ttl: settings.access_ttl,
                clock_skew: settings.clock_skew,
            },
        );
        let api_keys = ApiKeys::new(db.clone());
        let audit = Audit::new(db.clone());
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            db,
            keyring,
            tokens,
            hasher,
            revocations,
            sessions,
            api_keys,
            audit,
            login_limiter,
            clock,
            routes: KnownRoutes::from_openapi(&doc),
            openapi_json,
        });

        spawn_housekeeping(state.clone());
        spawn_key_maintenance(state.clone());

        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let body_limit = settings.body_limit_bytes;
        let app_state = state.clone();
        let cors_origins = settings.cors_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| http::extractor_configs(cfg, body_limit))
                .configure(|cfg| http::routes(&mut ServiceConfig::new(cfg)))
                .service(
                    SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/api-docs/openapi.json"])),
                )
                .default_service(web::to(http::not_matched))
                .wrap(ErrorHandlers::new().default_handler(http::error_body_for_foreign_errors))
                .wrap(from_fn(http::log_request))
                .wrap(from_fn(http::content_security_policy))
                .wrap(Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "no-referrer"))
                        .add(("X-Frame-Options", "DENY")),
                )
        })
        .workers(settings.workers)
        .shutdown_timeout(30)
        .listen(listener)?
        .run();
        tracing::info!(
            address = %settings.bind,
            port,
            database = state.db.backend(),
            revocation_list = state.revocations.backend(),
            issuer = %settings.issuer,
            "tokenmint is serving"
        );
        Ok(Self {
            port,
            server,
            state,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for tests that look inside.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// CORS for the configured exact origins, with credentials (the refresh cookie). An
/// origin not listed gets no CORS headers, and the browser keeps the answer from it.
fn cors(origins: &[String]) -> Cors {
    use actix_web::http::{Method, header};
    origins.iter().fold(
        Cors::default()
            .supports_credentials()
            .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
            .max_age(600)
            .block_on_origin_mismatch(false),
        |cors, origin| cors.allowed_origin(origin),
    )
}

/// The key lifecycle's timing from the settings.
pub fn key_timing(settings: &Settings) -> Timing {
    Timing {
        publish_lead: settings.jwks_max_age,
        retire_after: settings.access_ttl + settings.clock_skew,
        rotation_interval: settings.key_rotation_interval,
    }
}

/// Every minute: drop expired revocations, ended sessions and sealed successors past the
/// leeway. Every instance may run it; the statements are idempotent.
fn spawn_housekeeping(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let now = state.clock.now();
            if let Err(error) = state.sessions.sweep(now).await {
                tracing::warn!(%error, "housekeeping: sessions");
            }
            if let Err(error) = state.revocations.purge(now).await {
                tracing::warn!(%error, "housekeeping: revocations");
            }
            if let Err(error) = state.api_keys.flush_usage().await {
                tracing::warn!(%error, "housekeeping: API key last use");
            }
        }
    });
}

/// Every few seconds: the key lifecycle (scheduled rotation, retirement) and picking up
/// key changes made by other instances, so every instance signs with the new key and
/// serves the new JWKS within seconds.
fn spawn_key_maintenance(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = state.clock.now();
            match state.keyring.maintain(now).await {
                Ok(true) => {
                    let target = state.keyring.current_kid().map(|k| format!("kid:{k}"));
                    let event = AuditEvent {
                        actor: "system".to_owned(),
                        action: "signing_key.rotate".to_owned(),
                        target,
                        ip: None,
                        outcome: "success".to_owned(),
                    };
                    state.audit.record(event, now).await;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "key maintenance"),
            }
        }
    });
}
