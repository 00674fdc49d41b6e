//! Wiring: the use-case services over the pools, keyring and revocation list (also what
//! the command line uses), the background work, and the HTTP server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::{Condition, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::api_keys::ApiKeys;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::Settings;
use crate::console::Console;
use crate::dpop::{Dpop, Nonces};
use crate::ephemeral::dpop_replay::DpopReplay;
use crate::ephemeral::ticket_marks::TicketMarks;
use crate::ephemeral::{Keys, LazyRedis};
use crate::error::Error;
use crate::events::Events;
use crate::health::Health;
use crate::http::{self, AppState, KnownRoutes};
use crate::identity::bootstrap::Bootstrap;
use crate::identity::devices::DeviceKey;
use crate::identity::passwords::{PasswordError, PasswordHasher};
use crate::identity::rate_limit::LoginLimiter;
use crate::identity::{Identity, IdentityParts};
use crate::keys::kek::{Kek, kek_path};
use crate::keys::lifecycle::Timing;
use crate::keys::{KeyError, Keyring, SigningKeys, crypto_provider};
use crate::oauth::OAuth;
use crate::oauth::clients::Clients;
use crate::principal::Authenticator;
use crate::revocation::{RevocationError, Revocations};
use crate::sessions::{RefreshKey, Sessions, SessionsParts};
use crate::store::startup_lock::StartupLock;
use crate::store::{DatabaseUrl, Db, StoreError};
use crate::tenancy::Tenants;
use crate::tickets::{TicketParts, Tickets};
use crate::tokens::TokenService;

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
    /// Redis answers but refuses the connection (TLS verification, authentication).
    #[error("TOKENMINT_REDIS_URL: Redis answers but the connection is refused: {0}")]
    RedisRefused(String),
    /// The Redis CA file could not be read.
    #[error("TOKENMINT_REDIS_CA: {0}")]
    RedisCa(std::io::Error),
    /// The password hasher could not start.
    #[error("password hasher: {0}")]
    Password(#[from] PasswordError),
    /// The first admin could not be created.
    #[error("bootstrap admin: {0}")]
    Bootstrap(#[from] Error),
    /// The listener could not bind.
    #[error("TOKENMINT_BIND: {0}")]
    Bind(#[from] std::io::Error),
    /// The OpenAPI document could not be serialized.
    #[error("OpenAPI document: {0}")]
    OpenApi(#[from] serde_json::Error),
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

/// The key-encryption key: the configured one; for the embedded backend without one, the
/// one kept beside the database (generated on first start).
fn key_encryption_key(settings: &Settings) -> Result<Kek, KeyError> {
    match (&settings.key_encryption_key, &settings.database_url) {
        (Some(secret), _) => Kek::new(secret),
        (None, DatabaseUrl::Sqlite(db)) => Kek::from_file(&kek_path(db)),
        // Settings refuse PostgreSQL without a KEK; this is a second line.
        (None, DatabaseUrl::Postgres(_)) => Err(KeyError::Unsupported(
            "PostgreSQL without TOKENMINT_KEY_ENCRYPTION_KEY".into(),
        )),
    }
}

/// The key lifecycle's timing: a retiring key stays published as long as a token it
/// signed can be alive.
fn key_timing(settings: &Settings) -> Timing {
    Timing {
        publish_lead: settings.jwks_max_age,
        retire_after: settings
            .lifetimes()
            .access_horizon()
            .to_std()
            .unwrap_or_default(),
        rotation_interval: settings.key_rotation_interval,
    }
}

/// Every use case, wired. The HTTP server and the command line are built on this.
#[derive(Clone)]
pub struct Services {
    /// Settings.
    pub settings: Arc<Settings>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The database (for background work and tests; use cases hold their own handle).
    pub db: Db,
    /// Signing keys in memory.
    pub keyring: Arc<Keyring>,
    /// Access tokens.
    pub tokens: Arc<TokenService>,
    /// The revocation list.
    pub revocations: Arc<Revocations>,
    /// The audit log.
    pub audit: Arc<Audit>,
    /// API keys.
    pub api_keys: Arc<ApiKeys>,
    /// Refresh, logout, revocation.
    pub sessions: Arc<Sessions>,
    /// Logins and users.
    pub identity: Arc<Identity>,
    /// Callers, `/api/me`, introspection.
    pub authenticator: Arc<Authenticator>,
    /// Signing keys, for admins and the scheduler.
    pub signing_keys: Arc<SigningKeys>,
    /// Tenants.
    pub tenants: Arc<Tenants>,
    /// OAuth clients.
    pub clients: Arc<Clients>,
    /// The token endpoint's grants.
    pub oauth: Arc<OAuth>,
    /// Connect tickets.
    pub tickets: Arc<Tickets>,
    /// Security events for resource servers.
    pub events: Arc<Events>,
    /// The admin console's sessions.
    pub console: Arc<Console>,
}

impl Services {
    /// Connects to the database (migrating it), loads or creates the signing keys, and
    /// wires the use cases. Redis is connected lazily: an unreachable Redis does not stop
    /// the start, it makes revocation checks answer 503 until it is back.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        Self::start(settings, clock, false).await
    }

    /// [`Services::build`], then the first admin if the database never had one
    /// ([`Identity::bootstrap`]): what a starting server does.
    pub async fn build_and_bootstrap(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        Self::start(settings, clock, true).await
    }

    async fn start(
        settings: Settings,
        clock: Arc<dyn Clock>,
        bootstrap: bool,
    ) -> Result<Self, StartupError> {
        // Replicas started together take turns through migrations, the first keys and the
        // bootstrap admin (a minute is far more than that takes).
        let lock = StartupLock::acquire(&settings.database_url, Duration::from_secs(60)).await?;
        let services = Self::wire(settings, clock).await?;
        if bootstrap {
            services.bootstrap_admin().await?;
        }
        drop(lock);
        Ok(services)
    }

    /// Opens the stores, loads the keys and starts the hashing threads, then assembles
    /// the use cases on them.
    async fn wire(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        crypto_provider::install();
        // rediss:// goes through rustls, on ring like everything else here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = Arc::new(settings);
        let db = open_database(&settings).await?;
        let redis = connect_redis(&settings).await?;
        let SharedState {
            revocations,
            limiter,
            redemptions,
            dpop_replay,
        } = shared_state(&db, redis.as_ref(), &settings);
        let revocations = Arc::new(revocations);
        if let Err(error) = revocations.refill(clock.now()).await {
            tracing::warn!(%error, "revocation list not reachable at start; checks answer 503 until it is");
        }
        let kek = key_encryption_key(&settings)?;
        let refresh_key = RefreshKey::new(&*kek.derive(b"refresh-token")?);
        let devices = DeviceKey::new(&*kek.derive(b"device-proof")?);
        let console_csrf = kek.derive(b"console-csrf")?;
        let nonces = match settings.dpop_nonce {
            true => Some(Nonces::new(&*kek.derive(b"dpop-nonce")?)),
            false => None,
        };
        let dpop = Arc::new(Dpop::new(settings.issuer.clone(), nonces, dpop_replay));
        let keyring = Keyring::load_or_init(
            db.clone(),
            kek,
            settings.signing_alg,
            key_timing(&settings),
            clock.now(),
        )
        .await?;
        let hasher = tokio::task::spawn_blocking({
            let (n, timeout) = (settings.hash_concurrency, settings.login_queue_timeout);
            move || PasswordHasher::with_queue_timeout(n, timeout)
        })
        .await
        .map_err(|_| PasswordError::Task)??;
        Ok(Self::assemble(Parts {
            settings,
            clock,
            db,
            keyring: Arc::new(keyring),
            revocations,
            limiter,
            redemptions,
            hasher: Arc::new(hasher),
            refresh_key,
            devices,
            dpop,
            console_csrf,
        }))
    }

    /// The use cases, each on the services it needs.
    fn assemble(parts: Parts) -> Self {
        let Parts {
            settings,
            clock,
            db,
            keyring,
            revocations,
            limiter,
            redemptions,
            hasher,
            refresh_key,
            devices,
            dpop,
            console_csrf,
        } = parts;
        let lifetimes = settings.lifetimes();
        let tokens = Arc::new(TokenService::new(
            keyring.clone(),
            revocations.clone(),
            settings.issuer.clone(),
            settings.audience.clone(),
            settings.access_ttl,
            settings.clock_skew,
            settings.verified_token_cache,
        ));
        let audit = Arc::new(Audit::new(db.clone()));
        let api_keys = Arc::new(ApiKeys::new(db.clone(), audit.clone()));
        let sessions = Arc::new(Sessions::new(SessionsParts {
            db: db.clone(),
            revocations: revocations.clone(),
            tokens: tokens.clone(),
            dpop: dpop.clone(),
            audit: audit.clone(),
            lifetimes,
            key: refresh_key,
        }));
        let identity = Arc::new(Identity::new(IdentityParts {
            db: db.clone(),
            hasher,
            limiter,
            sessions: sessions.clone(),
            tokens: tokens.clone(),
            revocations: revocations.clone(),
            audit: audit.clone(),
            lifetimes,
            devices,
            device_proof_ttl: settings.device_proof_ttl,
        }));
        let authenticator = Arc::new(Authenticator::new(
            tokens.clone(),
            revocations.clone(),
            api_keys.clone(),
            audit.clone(),
            dpop,
        ));
        let signing_keys = Arc::new(SigningKeys::new(
            keyring.clone(),
            audit.clone(),
            db.clone(),
            revocations.clone(),
            lifetimes,
        ));
        let tenants = Arc::new(Tenants::new(
            db.clone(),
            revocations.clone(),
            audit.clone(),
            lifetimes,
        ));
        let clients = Arc::new(Clients::new(
            db.clone(),
            audit.clone(),
            revocations.clone(),
            lifetimes,
        ));
        let oauth = Arc::new(OAuth::new(
            clients.clone(),
            sessions.clone(),
            authenticator.clone(),
            tokens.clone(),
            audit.clone(),
        ));
        let tickets = Arc::new(Tickets::new(TicketParts {
            audit: audit.clone(),
            tokens: tokens.clone(),
            authenticator: authenticator.clone(),
            revocations: revocations.clone(),
            redemptions,
            db: db.clone(),
            audiences: settings.ticket_audiences.clone(),
            ttl: settings.ticket_ttl,
        }));
        let events = Arc::new(Events::new(
            db.clone(),
            keyring.clone(),
            authenticator.clone(),
            settings.issuer.clone(),
            settings.event_retention,
        ));
        let console = Arc::new(Console::new(
            identity.clone(),
            sessions.clone(),
            authenticator.clone(),
            &console_csrf,
        ));
        Self {
            settings,
            clock,
            db,
            keyring,
            tokens,
            revocations,
            audit,
            api_keys,
            sessions,
            identity,
            authenticator,
            signing_keys,
            tenants,
            clients,
            oauth,
            tickets,
            events,
            console,
        }
    }

    /// Creates the first admin if there is none yet (see [`Identity::bootstrap`]).
    async fn bootstrap_admin(&self) -> Result<(), StartupError> {
        let now = self.clock.now();
        match self
            .identity
            .bootstrap(self.settings.bootstrap_admin.as_ref(), now)
            .await?
        {
            Bootstrap::Nothing => {}
            Bootstrap::Created => tracing::info!("created the bootstrap admin"),
            Bootstrap::Refused(username) => tracing::warn!(
                %username,
                "TOKENMINT_BOOTSTRAP_ADMIN names a user who does not exist, but this database has had an admin: \
                 not creating it (create the user through an admin, or unset the variable)"
            ),
            Bootstrap::Generated(password) => {
                // Shown once, on purpose: the operator needs it to log in the first time.
                eprintln!(
                    "\n  Tokenmint created the first admin.\n    username: admin\n    password: {}\n  \
                     It is shown only this once. Set TOKENMINT_BOOTSTRAP_ADMIN to choose it instead.\n",
                    password.expose_secret()
                );
            }
        }
        Ok(())
    }
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    metrics_server: Option<Server>,
    services: Services,
}

impl Application {
    /// Builds the services, prepares the first admin, starts the background work and binds.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let services = Services::build_and_bootstrap(settings, clock).await?;
        let settings = services.settings.clone();

        let doc = crate::http::openapi::document();
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            clock: services.clock.clone(),
            identity: services.identity.clone(),
            sessions: services.sessions.clone(),
            authenticator: services.authenticator.clone(),
            api_keys: services.api_keys.clone(),
            signing_keys: services.signing_keys.clone(),
            tenants: services.tenants.clone(),
            clients: services.clients.clone(),
            oauth: services.oauth.clone(),
            tickets: services.tickets.clone(),
            events: services.events.clone(),
            console: services.console.clone(),
            keyring: services.keyring.clone(),
            audit: services.audit.clone(),
            health: Health::new(
                services.db.clone(),
                services.revocations.clone(),
                services.keyring.clone(),
            ),
            routes: KnownRoutes::from_openapi(&doc),
            openapi_json: web::Bytes::from(doc.to_json()?),
            // Digits and ASCII: it cannot fail; if it did, not caching is the safe answer.
            jwks_cache_control: actix_web::http::header::HeaderValue::try_from(format!(
                "public, max-age={}",
                settings.jwks_max_age.as_secs()
            ))
            .unwrap_or_else(|_| actix_web::http::header::HeaderValue::from_static("no-cache")),
        });

        crate::metrics::install();
        tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                crate::metrics::upkeep();
            }
        });
        let metrics_server = match settings.metrics_bind {
            Some(address) => Some(metrics_server(address, state.clone())?),
            None => None,
        };
        spawn_housekeeping(services.clone());
        spawn_key_maintenance(services.clone());
        spawn_revocation_sync(services.clone());

        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let body_limit = settings.body_limit_bytes;
        let body_timeout = settings.body_timeout;
        let max_connections = connections_per_worker(settings.max_connections, settings.workers);
        let cors_origins = settings.cors_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(|cfg| http::extractor_configs(cfg, body_limit))
                .configure(http::routes)
                .configure(http::console::routes)
                .service(
                    SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/api-docs/openapi.json"])),
                )
                .default_service(web::to(http::not_matched))
                .wrap(ErrorHandlers::new().default_handler(http::error_body_for_foreign_errors))
                .wrap(Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(from_fn(move |req, next| {
                    http::body_deadline(req, next, body_timeout)
                }))
                .wrap(from_fn(http::frame))
        })
        .workers(settings.workers)
        .max_connections(max_connections)
        .shutdown_timeout(30)
        .listen(listener)?
        .run();
        tracing::info!(
            address = %settings.bind,
            port,
            database = services.db.backend(),
            revocation_list = services.revocations.backend(),
            issuer = %settings.issuer,
            "tokenmint is serving"
        );
        Ok(Self {
            port,
            server,
            metrics_server,
            services,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The services, for tests that look inside.
    pub fn services(&self) -> Services {
        self.services.clone()
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        if let Some(metrics) = self.metrics_server {
            let handle = metrics.handle();
            tokio::spawn(metrics);
            let served = self.server.await;
            handle.stop(true).await;
            return served;
        }
        self.server.await
    }
}

/// `/metrics` alone on its own address (`TOKENMINT_METRICS_BIND`), one worker.
fn metrics_server(address: SocketAddr, state: web::Data<AppState>) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route(
            "/metrics",
            web::get().to(|state: web::Data<AppState>| async move {
                http::ops::metrics_response(&state.health)
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(address)?
    .run();
    tracing::info!(%address, "metrics are served here");
    Ok(server)
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
                header::HeaderName::from_static("dpop"),
            ])
            // `Date` too: a DPoP client whose clock is off learns the server's from it.
            .expose_headers([
                header::WWW_AUTHENTICATE,
                header::RETRY_AFTER,
                header::DATE,
                header::HeaderName::from_static("dpop-nonce"),
            ])
            .max_age(600)
            .block_on_origin_mismatch(false),
        |cors, origin| cors.allowed_origin(origin),
    )
}

/// Descriptors kept for everything but client connections: the database pool, Redis,
/// the metrics listener, files.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Connections each worker may hold: `configured` over every worker, or the process's
/// descriptor limit less a reserve, so that a flood of connections (stalled or not)
/// waits in the listen backlog instead of taking the descriptors the service needs.
fn connections_per_worker(configured: Option<usize>, workers: usize) -> usize {
    let total = configured.unwrap_or_else(|| {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX)
    });
    (total / workers.max(1)).clamp(1, 25_000)
}

/// Every minute: drop expired revocations, ended sessions and security events past their
/// retention, and write API keys' last use. Every instance may run it; it is idempotent.
fn spawn_housekeeping(services: Services) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let now = services.clock.now();
            if let Err(error) = services.sessions.sweep(now).await {
                tracing::warn!(%error, "housekeeping: sessions");
            }
            if let Err(error) = services.revocations.purge(now).await {
                tracing::warn!(%error, "housekeeping: revocations");
            }
            if let Err(error) = services.api_keys.flush_usage().await {
                tracing::warn!(%error, "housekeeping: API key last use");
            }
            if let Err(error) = services.tickets.purge(now).await {
                tracing::warn!(%error, "housekeeping: ticket redemptions");
            }
            if let Err(error) = services.events.purge(now).await {
                tracing::warn!(%error, "housekeeping: security events");
            }
            services.audit.flush(now).await;
        }
    });
}

/// Every second: learn the database's revocation generation, so that a revocation another
/// instance committed but could not publish is refilled into this instance's list (and
/// trusted lists are never behind the database by more than a second).
fn spawn_revocation_sync(services: Services) {
    let revocations = services.revocations.clone();
    tokio::spawn(async move { revocations.keep_mirror().await });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = services.revocations.sync().await {
                tracing::warn!(%error, "revocation generation not read");
            }
            if services.revocations.redis_failing() {
                // Beside the sync, which must not wait on a failing Redis.
                let revocations = services.revocations.clone();
                tokio::spawn(async move { revocations.probe_redis().await });
            }
        }
    });
}

/// Every few seconds: the key lifecycle (scheduled rotation, retirement) and picking up
/// key changes made by other instances, so every instance signs with the new key and
/// serves the new JWKS within seconds.
fn spawn_key_maintenance(services: Services) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = services.signing_keys.maintain(services.clock.now()).await {
                tracing::warn!(%error, "key maintenance");
            }
        }
    });
}

/// What [`Services::assemble`] builds the use cases from.
struct Parts {
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    db: Db,
    keyring: Arc<Keyring>,
    revocations: Arc<Revocations>,
    limiter: LoginLimiter,
    redemptions: TicketMarks,
    hasher: Arc<PasswordHasher>,
    refresh_key: RefreshKey,
    devices: DeviceKey,
    dpop: Arc<Dpop>,
    console_csrf: zeroize::Zeroizing<[u8; 32]>,
}

/// Redis, if configured: its TLS roots read, and checked at start (a server that
/// refuses us stops the start; one that is down does not, its users answer 503).
async fn connect_redis(settings: &Settings) -> Result<Option<Arc<LazyRedis>>, StartupError> {
    let Some(url) = settings.redis_url.as_ref() else {
        return Ok(None);
    };
    let ca = match &settings.redis_ca {
        Some(path) => Some(std::fs::read(path).map_err(StartupError::RedisCa)?),
        None => None,
    };
    let redis =
        LazyRedis::new(url.expose_secret(), ca.as_deref()).map_err(RevocationError::from)?;
    redis
        .check_at_start()
        .await
        .map_err(|e| StartupError::RedisRefused(e.to_string()))?;
    Ok(Some(Arc::new(redis)))
}

/// The short-lived state instances share: in Redis when there is one, else in this
/// process (ticket marks then in the database).
/// What instances share: in Redis when it is configured, else in this process (or, for
/// ticket redemptions, the database).
struct SharedState {
    revocations: Revocations,
    limiter: LoginLimiter,
    redemptions: TicketMarks,
    dpop_replay: DpopReplay,
}

fn shared_state(db: &Db, redis: Option<&Arc<LazyRedis>>, settings: &Settings) -> SharedState {
    let limits = settings.login_limits();
    let Some(redis) = redis else {
        return SharedState {
            revocations: Revocations::memory(db.clone()),
            limiter: LoginLimiter::memory(limits),
            redemptions: TicketMarks::Database(db.clone()),
            dpop_replay: DpopReplay::memory(),
        };
    };
    let keys = Keys::new(settings.redis_prefix.clone());
    SharedState {
        revocations: Revocations::redis(db.clone(), redis.clone(), &keys),
        limiter: LoginLimiter::redis(redis.clone(), keys.clone(), limits),
        redemptions: TicketMarks::Redis {
            redis: redis.clone(),
            keys: keys.clone(),
        },
        dpop_replay: DpopReplay::Redis {
            redis: redis.clone(),
            keys,
        },
    }
}
