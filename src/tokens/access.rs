//! Access tokens: RFC 9068 JWTs, built from a user and verified against the keyring.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::dpop::Jkt;
use crate::error::{Credential, Error, Refusal};
use crate::keys::{KeyError, Keyring};
use crate::model::{DEFAULT_TENANT, REGISTERED_CLAIMS, Scope, User};
use crate::revocation::Revocations;

/// Longest token accepted for verification; anything longer is refused unparsed. The
/// admin API refuses users whose tokens would be longer (see [`TokenService::check_fits`]).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Room for the JWS header and signature in [`MAX_TOKEN_BYTES`]: a header of about 120
/// characters and an RS256 signature of 342, with a margin.
const HEADER_AND_SIGNATURE_BYTES: usize = 1024;

/// Refuses the JWS header parameters that would change how a token must be read:
/// `crit` (RFC 7515 section 4.1.11: a recipient must refuse extensions it does not
/// understand, and Tokenmint understands none) and `b64` (RFC 7797 unencoded payloads).
fn refuse_extensions(token: &str) -> Result<(), TokenError> {
    let encoded = token
        .split('.')
        .next()
        .ok_or(TokenError::Invalid("malformed"))?;
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Invalid("malformed"))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&json).map_err(|_| TokenError::Invalid("malformed"))?;
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(TokenError::Invalid("critical or unencoded-payload header"));
    }
    Ok(())
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Audience (a string, API.md).
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// Session id; none for a client's own token (client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// Roles (a user's; none for a client).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The OAuth client the token was issued to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user's name; none for a client's own token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The tenant (tokens of the release before tenants carry none: `default`).
    #[serde(default = "default_tenant")]
    pub tenant_id: String,
    /// The key the token is bound to (RFC 9449 DPoP), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The user's custom claims, merged at top level.
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

/// A token's confirmation claim (RFC 7800): the thumbprint of the key it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the DPoP key.
    pub jkt: String,
}

impl AccessClaims {
    /// The key this token is bound to, if it is.
    pub fn bound_to(&self) -> Option<Jkt> {
        self.cnf.as_ref().map(|c| Jkt::from_claim(c.jkt.clone()))
    }
}

fn confirmation(jkt: Option<&Jkt>) -> Option<Confirmation> {
    jkt.map(|j| Confirmation {
        jkt: j.as_str().to_owned(),
    })
}

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

/// The longest `client_id` a login may name.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, badly signed, unknown key, wrong type, issuer or audience, or not yet valid.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Signed by a withdrawn key: refused like a revoked token, whatever its claims.
    #[error("signed by a withdrawn key")]
    Withdrawn,
}

impl TokenError {
    /// How a refusal for this reason is told to the caller.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::Invalid(_) => Refusal::Invalid,
            Self::Expired => Refusal::Expired,
            Self::Withdrawn => Refusal::Revoked,
        }
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        let refusal = e.refusal();
        Error::refused(Credential::AccessToken, refusal)
    }
}

/// An issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// Its claims.
    pub claims: AccessClaims,
}

/// Who asked for a token, and for what.
#[derive(Debug)]
pub struct Grant<'a> {
    /// The user.
    pub user: &'a User,
    /// Granted scopes (already narrowed).
    pub scopes: &'a [Scope],
    /// Session id.
    pub sid: Uuid,
    /// OAuth client id.
    pub client_id: Option<&'a str>,
    /// The DPoP key the token is bound to, if any.
    pub jkt: Option<&'a Jkt>,
}

/// A token whose signature and claims were checked, with the key that signed it.
#[derive(Debug, Clone)]
pub struct Verified<T = AccessClaims> {
    /// The kid of the signing key (a revocation check refuses a withdrawn one's).
    pub kid: String,
    /// The claims.
    pub claims: T,
}

/// Issues and verifies access tokens.
///
/// Verified tokens are remembered by the SHA-256 of their bytes (never the token itself:
/// a lookup keyed by attacker-chosen bytes compared against stored tokens could leak them
/// through timing). A remembered token skips only the signature and claims parsing; its key
/// must still be published, and time and revocation are checked on every use.
pub struct TokenService {
    keyring: Arc<Keyring>,
    revocations: Arc<Revocations>,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    clock_skew: Duration,
    verified: Option<quick_cache::sync::Cache<[u8; 32], Arc<Verified>>>,
}

impl TokenService {
    /// A token service signing with `keyring`, remembering up to `cache_entries` verified
    /// tokens (0: verify every time).
    pub fn new(
        keyring: Arc<Keyring>,
        revocations: Arc<Revocations>,
        issuer: String,
        audience: String,
        access_ttl: Duration,
        clock_skew: Duration,
        cache_entries: usize,
    ) -> Self {
        Self {
            keyring,
            revocations,
            issuer,
            audience,
            access_ttl,
            clock_skew,
            verified: (cache_entries > 0).then(|| quick_cache::sync::Cache::new(cache_entries)),
        }
    }

    /// Whether every access token `user` can get fits [`MAX_TOKEN_BYTES`], so that the
    /// service accepts every token it issues: the user's roles, all their scopes and
    /// custom claims, with the longest `client_id` a login may name.
    pub fn check_fits(&self, user: &User) -> Result<(), Error> {
        let longest = AccessClaims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: self.audience.clone(),
            exp: i64::MAX,
            iat: i64::MAX,
            nbf: i64::MAX,
            jti: Uuid::nil().to_string(),
            sid: Some(Uuid::nil().to_string()),
            scope: Scope::join(&user.scopes),
            roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            client_id: Some("x".repeat(MAX_CLIENT_ID_BYTES)),
            username: Some(user.username.clone()),
            tenant_id: user.tenant.as_str().to_owned(),
            cnf: Some(Confirmation {
                jkt: "x".repeat(43),
            }),
            custom: user.claims.as_map().clone(),
        };
        let payload = serde_json::to_vec(&longest)?.len();
        if payload.div_ceil(3) * 4 + HEADER_AND_SIGNATURE_BYTES > MAX_TOKEN_BYTES {
            return Err(Error::invalid(
                "roles, scopes and custom claims together would make tokens over 16 KiB",
            ));
        }
        Ok(())
    }

    /// Every door that signs calls this first: if the revocation list says the current
    /// key was withdrawn (by another instance, which answered only once every instance's
    /// list knew it), the keys are reloaded before anything is signed, so nothing is
    /// signed by a withdrawn key after its withdrawal answered. One read of the list (the
    /// mirror's, usually), like a token's check. When the list cannot be read, the keys
    /// are read from the database after this request arrived (reads shared between
    /// concurrent requests), which holds every withdrawal: signing neither depends on
    /// Redis nor waits on it (tokens are verified offline by backends).
    pub async fn ready(&self, now: DateTime<Utc>) -> Result<(), Error> {
        let arrived = std::time::Instant::now();
        let signing = self.keyring.signing();
        let Some(current) = signing.first() else {
            return Ok(());
        };
        let listed = match self.revocations.withdrawn_keys(&signing, now).await {
            Ok(withdrawn) if withdrawn.is_empty() => return Ok(()),
            Ok(_) => true,
            Err(_) => false,
        };
        // Boxed: the usual answer above stays a small future.
        Box::pin(self.keyring.reload_since(arrived)).await?;
        if listed && self.keyring.current_kid().as_deref() == Some(current.kid()) {
            // The database does not show the withdrawal the list holds: sign nothing.
            return Err(Error::internal(KeyError::NoCurrentKey));
        }
        Ok(())
    }

    /// Builds and signs an access token for `grant` at `now`.
    pub fn issue(&self, grant: &Grant<'_>, now: DateTime<Utc>) -> Result<IssuedToken, KeyError> {
        let iat = now.timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let custom = grant
            .user
            .claims
            .as_map()
            .iter()
            .filter(|(k, _)| !REGISTERED_CLAIMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.user.id.to_string(),
            aud: self.audience.clone(),
            exp: iat.saturating_add(ttl),
            iat,
            nbf: iat,
            jti: Uuid::new_v4().to_string(),
            sid: Some(grant.sid.to_string()),
            scope: Scope::join(grant.scopes),
            roles: grant
                .user
                .roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            client_id: grant.client_id.map(str::to_owned),
            username: Some(grant.user.username.clone()),
            tenant_id: grant.user.tenant.as_str().to_owned(),
            cnf: confirmation(grant.jkt),
            custom,
        };
        let (token, _kid) = self.keyring.sign(&claims)?;
        Ok(IssuedToken { token, claims })
    }

    /// A client's own access token (client credentials, RFC 6749 section 4.4): `sub` and
    /// `client_id` are the client, with no session, user or roles.
    pub fn issue_for_client(
        &self,
        client_id: &str,
        tenant: &str,
        scopes: &[Scope],
        jkt: Option<&Jkt>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, KeyError> {
        let iat = now.timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: client_id.to_owned(),
            aud: self.audience.clone(),
            exp: iat.saturating_add(ttl),
            iat,
            nbf: iat,
            jti: Uuid::new_v4().to_string(),
            sid: None,
            scope: Scope::join(scopes),
            roles: Vec::new(),
            client_id: Some(client_id.to_owned()),
            username: None,
            tenant_id: tenant.to_owned(),
            cnf: confirmation(jkt),
            custom: Map::new(),
        };
        let (token, _kid) = self.keyring.sign(&claims)?;
        Ok(IssuedToken { token, claims })
    }

    /// A token for another audience in exchange for `subject` (RFC 8693): the same user
    /// and tenant, narrowed to `scopes`, acted for by `client_id` (`act.sub`), living no
    /// longer than an access token nor than the subject token.
    pub fn issue_exchanged(
        &self,
        subject: &AccessClaims,
        audience: &str,
        scopes: &[Scope],
        client_id: &str,
        jkt: Option<&Jkt>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, KeyError> {
        let iat = now.timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let mut custom = subject.custom.clone();
        custom.insert("act".to_owned(), serde_json::json!({ "sub": client_id }));
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.sub.clone(),
            aud: audience.to_owned(),
            exp: iat.saturating_add(ttl).min(subject.exp),
            iat,
            nbf: iat,
            jti: Uuid::new_v4().to_string(),
            sid: subject.sid.clone(),
            scope: Scope::join(scopes),
            roles: subject.roles.clone(),
            client_id: Some(client_id.to_owned()),
            username: subject.username.clone(),
            tenant_id: subject.tenant_id.clone(),
            cnf: confirmation(jkt),
            custom,
        };
        let (token, _kid) = self.keyring.sign(&claims)?;
        Ok(IssuedToken { token, claims })
    }

    /// Verifies signature, type, issuer and audience, then time: `nbf` and `iat` with the
    /// clock-skew tolerance, `exp` without any.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid("too long"));
        }
        let Some(cache) = &self.verified else {
            return self.check_time(self.verify_signed(token)?, now);
        };
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| TokenError::Invalid("digest"))?;
        let verified = match cache.get(&digest) {
            // A key that is no longer published takes its tokens with it.
            Some(hit) if self.keyring.publishes(&hit.kid) => hit,
            _ => {
                let fresh = Arc::new(self.verify_signed(token)?);
                cache.insert(digest, fresh.clone());
                fresh
            }
        };
        self.check_time(Verified::clone(&verified), now)
    }

    /// Like [`TokenService::verify`], for an access token of any audience this service
    /// issued (exchanged tokens name another one): for introspection and revocation,
    /// which must know every token the service signed. Never for acting at this
    /// service's own endpoints.
    pub fn verify_any_audience(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Verified, TokenError> {
        match self.verify(token, now) {
            Err(TokenError::Invalid(_)) => {
                let verified = self.verify_signed_for(token, None)?;
                self.check_time(verified, now)
            }
            answer => answer,
        }
    }

    /// Signature, type, key, issuer and audience; not time.
    fn verify_signed(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_signed_for(token, Some(&self.audience))
    }

    /// Signature, type, key, issuer and (if given) audience; not time.
    fn verify_signed_for(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Verified, TokenError> {
        // RFC 9068 section 4: the type tells access tokens apart from other JWTs we sign.
        let Verified { kid, claims } =
            self.verify_jws::<AccessClaims>(token, "at+jwt", audience, "not an access token")?;
        // Every token issued lives exactly the access lifetime; one that claims longer was
        // not issued here (and could outlast any revocation of it).
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        if claims.exp.saturating_sub(claims.iat) > ttl {
            return Err(TokenError::Invalid("lifetime longer than any issued"));
        }
        Ok(Verified { kid, claims })
    }

    /// A JWS of this issuer: no extensions, `typ` (or `application/<typ>`), a published
    /// key and its algorithm (a withdrawn one: [`TokenError::Withdrawn`]), the signature,
    /// `iss`, and `aud` if given; not time.
    pub(crate) fn verify_jws<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        audience: Option<&str>,
        wrong_type: &'static str,
    ) -> Result<Verified<T>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid("too long"));
        }
        refuse_extensions(token)?;
        let header = decode_header(token).map_err(|_| TokenError::Invalid("malformed"))?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == typ || t.strip_prefix("application/") == Some(typ)
        });
        if !typ_ok {
            return Err(TokenError::Invalid(wrong_type));
        }
        let kid = header.kid.as_deref().ok_or(TokenError::Invalid("no kid"))?;
        if self.keyring.withdrew(kid) {
            return Err(TokenError::Withdrawn);
        }
        let key = self
            .keyring
            .verifying_key(kid)
            .ok_or(TokenError::Invalid("unknown key"))?;
        if header.alg != key.alg.jwt_algorithm() {
            return Err(TokenError::Invalid("algorithm does not match the key"));
        }
        let mut validation = Validation::new(key.alg.jwt_algorithm());
        // Time is checked below against the injected clock, with skew on nbf/iat only.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        match audience {
            Some(audience) => validation.set_audience(&[audience]),
            // The caller compares `aud` itself (a ticket's names the receiving service).
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<T>(token, &key.key, &validation)
            .map_err(|_| TokenError::Invalid("signature or claims rejected"))?
            .claims;
        Ok(Verified {
            kid: kid.to_owned(),
            claims,
        })
    }

    /// The `iss` of every token.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The keys that sign.
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The clock-skew tolerance, in seconds.
    pub(crate) fn skew_secs(&self) -> i64 {
        i64::try_from(self.clock_skew.as_secs()).unwrap_or(i64::MAX)
    }

    /// `nbf` and `iat` with the clock-skew tolerance, `exp` without any.
    fn check_time(&self, verified: Verified, now: DateTime<Utc>) -> Result<Verified, TokenError> {
        let claims = &verified.claims;
        let now = now.timestamp();
        let skew = i64::try_from(self.clock_skew.as_secs()).unwrap_or(i64::MAX);
        if claims.nbf > now.saturating_add(skew) || claims.iat > now.saturating_add(skew) {
            return Err(TokenError::Invalid("not valid yet"));
        }
        // RFC 7519 section 4.1.4: not accepted on or after exp.
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(verified)
    }
}
