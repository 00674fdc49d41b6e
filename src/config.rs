//! Settings from `TOKENMINT_*` environment variables, with the embedded defaults of
//! API.md. This is the only module that reads the environment. An invalid value is
//! an error naming the variable: the process never falls back silently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{SecretBox, SecretString};

use crate::identity::rate_limit::LoginLimits;
use crate::keys::SigningAlg;
use crate::keys::kek::{KeyEncryptionKey, parse_kek};
use crate::model::Lifetimes;
pub use crate::store::DatabaseUrl;

/// A setting that could not be used, with the variable that holds it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// Why its value was refused (never the value itself: it may be a secret).
    pub reason: String,
}

/// Every setting of the service, typed and checked.
#[derive(Debug)]
pub struct Settings {
    /// Separate address for `/metrics` (`TOKENMINT_METRICS_BIND`); unset: on the main one.
    pub metrics_bind: Option<SocketAddr>,
    /// CA certificates (PEM) that Redis's TLS certificate must chain to
    /// (`TOKENMINT_REDIS_CA`); unset: the system's roots.
    pub redis_ca: Option<PathBuf>,
    /// Listen address (`TOKENMINT_BIND`).
    pub bind: SocketAddr,
    /// Database (`TOKENMINT_DATABASE_URL`).
    pub database_url: DatabaseUrl,
    /// Redis for the revocation list; `None` is the in-memory list (`TOKENMINT_REDIS_URL`).
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key, so several deployments can share one Redis (`TOKENMINT_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// `iss` claim and discovery issuer (`TOKENMINT_ISSUER`).
    pub issuer: String,
    /// Default `aud` claim (`TOKENMINT_AUDIENCE`).
    pub audience: String,
    /// Key-encryption key (`TOKENMINT_KEY_ENCRYPTION_KEY`); required with PostgreSQL.
    pub key_encryption_key: Option<KeyEncryptionKey>,
    /// Algorithm of newly generated signing keys (`TOKENMINT_SIGNING_ALG`).
    pub signing_alg: SigningAlg,
    /// Access token lifetime (`TOKENMINT_ACCESS_TTL`).
    pub access_ttl: Duration,
    /// Refresh token idle lifetime (`TOKENMINT_REFRESH_TTL`).
    pub refresh_ttl: Duration,
    /// Absolute session lifetime (`TOKENMINT_SESSION_TTL`).
    pub session_ttl: Duration,
    /// How long after a rotation its predecessor still leads to the head, and how young a head is answered as it is (`TOKENMINT_REFRESH_REUSE_LEEWAY`).
    pub refresh_reuse_leeway: Duration,
    /// Tolerance on `nbf` and `iat`, never on `exp` (`TOKENMINT_CLOCK_SKEW`).
    pub clock_skew: Duration,
    /// Automatic signing-key rotation interval (`TOKENMINT_KEY_ROTATION_INTERVAL`).
    pub key_rotation_interval: Duration,
    /// JWKS `max-age`, and so how long a `next` key is published before it signs (`TOKENMINT_JWKS_MAX_AGE`).
    pub jwks_max_age: Duration,
    /// `Secure` attribute on the refresh cookie (`TOKENMINT_COOKIE_SECURE`).
    pub cookie_secure: bool,
    /// Refresh tokens always travel in the HttpOnly cookie, never in bodies (`TOKENMINT_COOKIE_MODE`).
    pub cookie_mode: bool,
    /// Require DPoP proofs to carry the server's current nonce (`TOKENMINT_DPOP_NONCE`).
    pub dpop_nonce: bool,
    /// Exact origins allowed by CORS (`TOKENMINT_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// Logins wait for a hashing thread at most about this long; beyond it they get 503
    /// at once (`TOKENMINT_LOGIN_QUEUE_TIMEOUT`, 1 s).
    pub login_queue_timeout: Duration,
    /// Audiences connect tickets may name (`TOKENMINT_TICKET_AUDIENCES`, exact strings,
    /// comma-separated); empty: tickets are off.
    pub ticket_audiences: Vec<String>,
    /// Lifetime of a connect ticket (`TOKENMINT_TICKET_TTL`, 30 s, at most 5 min).
    pub ticket_ttl: Duration,
    /// How long security events are kept for pollers (`TOKENMINT_EVENT_RETENTION`, 24 h,
    /// 1 min to 30 days): an event not acknowledged by then is lost to its poller.
    pub event_retention: Duration,
    /// Admin to create at start if absent (`TOKENMINT_BOOTSTRAP_ADMIN=username:password`).
    pub bootstrap_admin: Option<(String, SecretString)>,
    /// Log filter (`TOKENMINT_LOG`).
    pub log: String,
    /// Login failures per username before its logins are slowed down (a delay doubling
    /// from 1 s, answered 429), and failures a device proof may have per window
    /// (`TOKENMINT_LOGIN_MAX_FAILURES`, 5).
    pub login_max_failures: u32,
    /// Window of the login failure counters (`TOKENMINT_LOGIN_WINDOW`).
    pub login_window: Duration,
    /// Login attempts per client address (IPv6: per /64) per window before 429
    /// (`TOKENMINT_LOGIN_MAX_FAILURES_PER_IP`); successes give theirs back.
    pub login_max_failures_per_ip: u32,
    /// The longest delay failures impose between two logins for one username
    /// (`TOKENMINT_LOGIN_MAX_DELAY`, 30 s).
    pub login_max_delay: Duration,
    /// Lifetime of a device proof (`TOKENMINT_DEVICE_PROOF_TTL`, 90 days).
    pub device_proof_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (`TOKENMINT_TRUSTED_PROXIES`: IPs or CIDRs).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest accepted request body (`TOKENMINT_BODY_LIMIT`, bytes).
    pub body_limit_bytes: usize,
    /// How long a request body may take to arrive, from the end of its headers
    /// (`TOKENMINT_BODY_TIMEOUT`, 10 s): a stalled body is answered 408 and its
    /// connection closed.
    pub body_timeout: Duration,
    /// Open connections per instance at most (`TOKENMINT_MAX_CONNECTIONS`; default: the
    /// descriptor limit less a reserve for the database, Redis and files). Past it, new
    /// connections wait in the listen backlog until others close.
    pub max_connections: Option<usize>,
    /// Database connections in the pool (`TOKENMINT_DB_POOL_SIZE`).
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before 503 (`TOKENMINT_DB_TIMEOUT`).
    pub db_timeout: Duration,
    /// Verified access tokens remembered by digest (`TOKENMINT_VERIFIED_TOKEN_CACHE`, 0: off).
    pub verified_token_cache: usize,
    /// Argon2 verifications at once; bounds memory (`TOKENMINT_HASH_CONCURRENCY`, default: cores).
    pub hash_concurrency: usize,
    /// HTTP worker threads (`TOKENMINT_WORKERS`, default: cores).
    pub workers: usize,
}

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_DATABASE_URL: &str = "sqlite://tokenmint.db";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, which returns a variable's value if set (an
    /// empty value counts as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let bind: SocketAddr = vars.parsed(
            "TOKENMINT_BIND",
            DEFAULT_BIND,
            "expected IP:PORT, e.g. 127.0.0.1:8080",
        )?;
        let database_url = DatabaseUrl::parse(
            &vars
                .text("TOKENMINT_DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
        )
        .map_err(|reason| invalid("TOKENMINT_DATABASE_URL", reason))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let default_pool_size = u64::from(Self::default_pool_size(&database_url));
        let settings = Self {
            issuer: vars
                .text("TOKENMINT_ISSUER")
                .unwrap_or_else(|| format!("http://{bind}")),
            audience: vars
                .text("TOKENMINT_AUDIENCE")
                .unwrap_or_else(|| "tokenmint".into()),
            bind,
            metrics_bind: vars.optional_parsed(
                "TOKENMINT_METRICS_BIND",
                "expected IP:PORT, e.g. 127.0.0.1:9100",
            )?,
            redis_ca: vars.file("TOKENMINT_REDIS_CA")?,
            redis_url: vars.redis_url()?,
            redis_prefix: vars
                .text("TOKENMINT_REDIS_PREFIX")
                .unwrap_or_else(|| "tokenmint:".into()),
            key_encryption_key: vars.kek(&database_url)?,
            database_url,
            signing_alg: vars.parsed(
                "TOKENMINT_SIGNING_ALG",
                "ES256",
                "expected ES256, EdDSA or RS256",
            )?,
            access_ttl: vars.duration("TOKENMINT_ACCESS_TTL", 15 * MINUTE, SECOND, DAY)?,
            refresh_ttl: vars.duration("TOKENMINT_REFRESH_TTL", 7 * DAY, SECOND, 400 * DAY)?,
            session_ttl: vars.duration("TOKENMINT_SESSION_TTL", 30 * DAY, SECOND, 3650 * DAY)?,
            refresh_reuse_leeway: vars.duration(
                "TOKENMINT_REFRESH_REUSE_LEEWAY",
                5 * SECOND,
                Duration::ZERO,
                5 * MINUTE,
            )?,
            clock_skew: vars.duration("TOKENMINT_CLOCK_SKEW", MINUTE, Duration::ZERO, HOUR)?,
            key_rotation_interval: vars.duration(
                "TOKENMINT_KEY_ROTATION_INTERVAL",
                30 * DAY,
                MINUTE,
                3650 * DAY,
            )?,
            jwks_max_age: vars.duration("TOKENMINT_JWKS_MAX_AGE", 5 * MINUTE, SECOND, DAY)?,
            cookie_secure: vars.flag("TOKENMINT_COOKIE_SECURE", true)?,
            cookie_mode: vars.flag("TOKENMINT_COOKIE_MODE", false)?,
            dpop_nonce: vars.flag("TOKENMINT_DPOP_NONCE", false)?,
            cors_origins: vars.list("TOKENMINT_CORS_ORIGINS", parse_origins)?,
            ticket_audiences: vars.list("TOKENMINT_TICKET_AUDIENCES", parse_audiences)?,
            ticket_ttl: vars.duration("TOKENMINT_TICKET_TTL", 30 * SECOND, SECOND, 5 * MINUTE)?,
            event_retention: vars.duration("TOKENMINT_EVENT_RETENTION", DAY, MINUTE, 30 * DAY)?,
            login_queue_timeout: vars.duration(
                "TOKENMINT_LOGIN_QUEUE_TIMEOUT",
                SECOND,
                10 * MILLI,
                MINUTE,
            )?,
            bootstrap_admin: vars.bootstrap_admin()?,
            log: vars.text("TOKENMINT_LOG").unwrap_or_else(|| "info".into()),
            login_max_failures: vars.number("TOKENMINT_LOGIN_MAX_FAILURES", 5, 1, 1_000_000)?
                as u32,
            login_window: vars.duration("TOKENMINT_LOGIN_WINDOW", 15 * MINUTE, SECOND, DAY)?,
            login_max_failures_per_ip: vars.number(
                "TOKENMINT_LOGIN_MAX_FAILURES_PER_IP",
                20,
                1,
                1_000_000,
            )? as u32,
            login_max_delay: vars.duration(
                "TOKENMINT_LOGIN_MAX_DELAY",
                30 * SECOND,
                SECOND,
                HOUR,
            )?,
            device_proof_ttl: vars.duration(
                "TOKENMINT_DEVICE_PROOF_TTL",
                90 * DAY,
                MINUTE,
                400 * DAY,
            )?,
            trusted_proxies: vars.list("TOKENMINT_TRUSTED_PROXIES", parse_proxies)?,
            body_limit_bytes: vars.number(
                "TOKENMINT_BODY_LIMIT",
                64 * 1024,
                1024,
                16 * 1024 * 1024,
            )? as usize,
            body_timeout: vars.duration(
                "TOKENMINT_BODY_TIMEOUT",
                10 * SECOND,
                100 * MILLI,
                10 * MINUTE,
            )?,
            max_connections: match vars.text("TOKENMINT_MAX_CONNECTIONS") {
                None => None,
                Some(_) => {
                    Some(vars.number("TOKENMINT_MAX_CONNECTIONS", 0, 16, 10_000_000)? as usize)
                }
            },
            db_pool_size: vars.number("TOKENMINT_DB_POOL_SIZE", default_pool_size, 1, 1000)? as u32,
            db_timeout: vars.duration(
                "TOKENMINT_DB_TIMEOUT",
                5 * SECOND,
                10 * MILLI,
                10 * MINUTE,
            )?,
            verified_token_cache: vars.number(
                "TOKENMINT_VERIFIED_TOKEN_CACHE",
                10_000,
                0,
                10_000_000,
            )? as usize,
            hash_concurrency: vars.number("TOKENMINT_HASH_CONCURRENCY", cores, 1, 1024)? as usize,
            workers: vars.number("TOKENMINT_WORKERS", cores, 1, 1024)? as usize,
        };
        settings.check()?;
        Ok(settings)
    }

    /// The rules between settings.
    fn check(&self) -> Result<(), ConfigError> {
        if self.key_rotation_interval <= self.jwks_max_age {
            return Err(invalid(
                "TOKENMINT_KEY_ROTATION_INTERVAL",
                "must be longer than TOKENMINT_JWKS_MAX_AGE (a next key is published that long before it signs)",
            ));
        }
        Ok(())
    }

    /// Whether connect tickets are on (some audience is configured).
    pub fn tickets_enabled(&self) -> bool {
        !self.ticket_audiences.is_empty()
    }

    /// Settings for a test server: port 0, a SQLite file in `dir`, a fixed key-encryption
    /// key and a known bootstrap admin. Tests adjust fields afterwards.
    pub fn for_tests(dir: &Path, admin_password: &str) -> Self {
        let lookup = |name: &str| match name {
            "TOKENMINT_BIND" => Some("127.0.0.1:0".to_owned()),
            "TOKENMINT_ISSUER" => Some("http://tokenmint.test".to_owned()),
            "TOKENMINT_BOOTSTRAP_ADMIN" => Some(format!("admin:{admin_password}")),
            "TOKENMINT_WORKERS" => Some("2".to_owned()),
            // A test suite runs many servers on few cores: hashes take many times their
            // usual time, and the bursts of the concurrency tests would be shed as
            // "busy". Tests of the queue itself set their own timeout.
            "TOKENMINT_LOGIN_QUEUE_TIMEOUT" => Some("1m".to_owned()),
            _ => None,
        };
        let mut settings = match Self::from_lookup(lookup) {
            Ok(s) => s,
            Err(e) => unreachable!("test defaults are valid: {e}"),
        };
        settings.database_url = DatabaseUrl::Sqlite(dir.join("tokenmint.db"));
        settings.key_encryption_key = Some(SecretBox::new(Box::new([7u8; 32])));
        settings
    }

    /// `TOKENMINT_DB_POOL_SIZE`'s default for a database: 1 for SQLite, which has one
    /// writer (more connections only queue on its lock, its busy handler sleeping, and
    /// each keeps its own page cache), 8 for PostgreSQL.
    pub fn default_pool_size(database_url: &DatabaseUrl) -> u32 {
        match database_url {
            DatabaseUrl::Sqlite(_) => 1,
            DatabaseUrl::Postgres(_) => 8,
        }
    }

    /// The directory that holds the embedded database (and a generated key-encryption key).
    pub fn data_dir(&self) -> Option<PathBuf> {
        match &self.database_url {
            DatabaseUrl::Sqlite(path) => Some(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            ),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// The token and session lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            session_ttl: self.session_ttl,
            reuse_leeway: self.refresh_reuse_leeway,
            clock_skew: self.clock_skew,
        }
    }

    /// The login brute-force limits.
    pub fn login_limits(&self) -> LoginLimits {
        LoginLimits {
            per_user: self.login_max_failures,
            per_ip: self.login_max_failures_per_ip,
            window: self.login_window,
            max_delay: self.login_max_delay,
        }
    }
}

const MILLI: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The environment as settings read it: each kind of value parsed, bounded and named in
/// its error one way.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// A variable's value; empty counts as unset.
    fn text(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    /// A value parsed with `FromStr`, `default` when unset.
    fn parsed<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: &str,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let raw = self.text(var).unwrap_or_else(|| default.to_owned());
        raw.parse().map_err(|_| invalid(var, expected))
    }

    /// An optional value parsed with `FromStr`.
    fn optional_parsed<T: std::str::FromStr>(
        &self,
        var: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.text(var)
            .map(|raw| raw.parse().map_err(|_| invalid(var, expected)))
            .transpose()
    }

    /// `true`/`1` or `false`/`0`.
    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(var).as_deref() {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(_) => Err(invalid(var, "expected true or false")),
        }
    }

    /// A duration within bounds: a huge one once passed validation and then overflowed
    /// date arithmetic at every login.
    fn duration(
        &self,
        var: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let value = match self.text(var) {
            None => default,
            Some(s) => parse_duration(&s).map_err(|r| invalid(var, r))?,
        };
        if value < min || value > max {
            return Err(invalid(
                var,
                format!(
                    "must be from {} to {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            ));
        }
        Ok(value)
    }

    /// A whole number within bounds.
    fn number(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.text(var) {
            None => Ok(default),
            Some(s) => match s.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(invalid(
                    var,
                    format!("expected a whole number from {min} to {max}"),
                )),
            },
        }
    }

    /// A comma-separated list, parsed by `parse`.
    fn list<T>(
        &self,
        var: &'static str,
        parse: fn(Option<&str>) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(self.text(var).as_deref()).map_err(|r| invalid(var, r))
    }

    /// A path to a file that exists.
    fn file(&self, var: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        let path = self.text(var).map(PathBuf::from);
        match path {
            Some(path) if !path.is_file() => Err(invalid(var, "no such file")),
            path => Ok(path),
        }
    }

    fn redis_url(&self) -> Result<Option<SecretString>, ConfigError> {
        match self.text("TOKENMINT_REDIS_URL") {
            None => Ok(None),
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Ok(Some(SecretString::from(url)))
            }
            Some(_) => Err(invalid("TOKENMINT_REDIS_URL", "expected redis://...")),
        }
    }

    /// The key-encryption key; required with PostgreSQL.
    fn kek(&self, database: &DatabaseUrl) -> Result<Option<KeyEncryptionKey>, ConfigError> {
        const VAR: &str = "TOKENMINT_KEY_ENCRYPTION_KEY";
        match self.text(VAR) {
            Some(b64) => Ok(Some(parse_kek(&b64).map_err(|r| invalid(VAR, r))?)),
            None if matches!(database, DatabaseUrl::Postgres(_)) => Err(invalid(
                VAR,
                "required with PostgreSQL (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)",
            )),
            None => Ok(None),
        }
    }

    fn bootstrap_admin(&self) -> Result<Option<(String, SecretString)>, ConfigError> {
        let Some(s) = self.text("TOKENMINT_BOOTSTRAP_ADMIN") else {
            return Ok(None);
        };
        match s.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
                Ok(Some((user.to_owned(), SecretString::from(pass.to_owned()))))
            }
            _ => Err(invalid(
                "TOKENMINT_BOOTSTRAP_ADMIN",
                "expected username:password",
            )),
        }
    }
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

/// Parses a `humantime` duration (`15m`, `7d`) or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|_| "expected a duration such as 15m, 7d or 900 (seconds)".to_owned())
}

fn parse_proxies(raw: Option<&str>) -> Result<Vec<ipnet::IpNet>, String> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{p:?} is neither an IP address nor a CIDR"))
        })
        .collect()
}

fn parse_origins(raw: Option<&str>) -> Result<Vec<String>, String> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if origin == "*" {
            return Err("`*` is refused: list exact origins".into());
        }
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or_else(|| format!("origin {origin:?} must start with https:// or http://"))?;
        if rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "origin {origin:?} must be scheme://host[:port] with no path"
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(origins)
}

/// Ticket audiences: exact strings (an audience is compared as it is, RFC 7519), 1 to 255
/// printable ASCII characters without spaces, at most 100.
fn parse_audiences(raw: Option<&str>) -> Result<Vec<String>, String> {
    let mut audiences: Vec<String> = Vec::new();
    for audience in raw.unwrap_or_default().split(',').map(str::trim) {
        if audience.is_empty() {
            continue;
        }
        if audience.len() > 255 || !audience.chars().all(|c| c.is_ascii_graphic()) {
            return Err("an audience is 1 to 255 printable ASCII characters without spaces".into());
        }
        if !audiences.iter().any(|a| a == audience) {
            audiences.push(audience.to_owned());
        }
    }
    if audiences.len() > 100 {
        return Err("at most 100 audiences".into());
    }
    Ok(audiences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn durations_parse_seconds_and_never_panic(secs in 0u64..10_000_000, junk in "\\PC*") {
            prop_assert_eq!(parse_duration(&secs.to_string()), Ok(Duration::from_secs(secs)));
            prop_assert_eq!(parse_duration(&format!("{secs}s")), Ok(Duration::from_secs(secs)));
            let _ = parse_duration(&junk);
            let _ = DatabaseUrl::parse(&junk);
            let _ = parse_origins(Some(&junk));
            let _ = parse_proxies(Some(&junk));
        }
    }
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_configuration_gives_the_embedded_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert!(
            matches!(s.database_url, DatabaseUrl::Sqlite(ref p) if p == Path::new("tokenmint.db"))
        );
        assert!(s.redis_url.is_none());
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.access_ttl, Duration::from_secs(900));
        assert_eq!(s.refresh_reuse_leeway, Duration::from_secs(5));
        assert_eq!(s.signing_alg, SigningAlg::Es256);
        assert_eq!(s.data_dir(), Some(PathBuf::from(".")));
    }

    #[test]
    fn durations_take_humantime_or_seconds() {
        let s = settings(&[
            ("TOKENMINT_ACCESS_TTL", "2m"),
            ("TOKENMINT_REFRESH_TTL", "90"),
        ])
        .unwrap();
        assert_eq!(s.access_ttl, Duration::from_secs(120));
        assert_eq!(s.refresh_ttl, Duration::from_secs(90));
    }

    #[test]
    fn an_invalid_value_names_its_variable() {
        for (var, value) in [
            ("TOKENMINT_BIND", "nowhere"),
            ("TOKENMINT_DATABASE_URL", "mysql://x"),
            ("TOKENMINT_DATABASE_URL", "sqlite://:memory:"),
            ("TOKENMINT_ACCESS_TTL", "soon"),
            ("TOKENMINT_ACCESS_TTL", "0s"),
            ("TOKENMINT_KEY_ROTATION_INTERVAL", "1m"),
            ("TOKENMINT_SIGNING_ALG", "HS256"),
            ("TOKENMINT_CORS_ORIGINS", "*"),
            ("TOKENMINT_COOKIE_SECURE", "maybe"),
            ("TOKENMINT_COOKIE_MODE", "sometimes"),
            ("TOKENMINT_KEY_ENCRYPTION_KEY", "c2hvcnQ="),
            ("TOKENMINT_BOOTSTRAP_ADMIN", "nocolon"),
            ("TOKENMINT_REDIS_URL", "http://x"),
            ("TOKENMINT_LOGIN_MAX_FAILURES", "-1"),
            ("TOKENMINT_TRUSTED_PROXIES", "10.0.0.0/33"),
            // Bounded: a huge lifetime overflowed date arithmetic at every login.
            ("TOKENMINT_SESSION_TTL", "300000y"),
            ("TOKENMINT_ACCESS_TTL", "2d"),
            ("TOKENMINT_REFRESH_TTL", "100y"),
            ("TOKENMINT_REFRESH_REUSE_LEEWAY", "1h"),
            ("TOKENMINT_CLOCK_SKEW", "2h"),
            ("TOKENMINT_JWKS_MAX_AGE", "30d"),
            ("TOKENMINT_KEY_ROTATION_INTERVAL", "300000y"),
            ("TOKENMINT_LOGIN_WINDOW", "0s"),
            ("TOKENMINT_DB_TIMEOUT", "1d"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
        }
    }

    #[test]
    fn postgres_requires_a_key_encryption_key() {
        let err =
            settings(&[("TOKENMINT_DATABASE_URL", "postgres://u:secretpw@h/db")]).unwrap_err();
        assert_eq!(err.var, "TOKENMINT_KEY_ENCRYPTION_KEY");
        use base64::Engine as _;
        let kek = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let s = settings(&[
            ("TOKENMINT_DATABASE_URL", "postgres://u:secretpw@h/db"),
            ("TOKENMINT_KEY_ENCRYPTION_KEY", &kek),
        ])
        .unwrap();
        assert!(
            !format!("{s:?}").contains("secretpw"),
            "the database password must not be printable"
        );
    }
}
