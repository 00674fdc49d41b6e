//! API keys: `tmk_` + 43 base62 characters of randomness (256 bits) + 6 base62
//! characters of CRC32 over what precedes them (API.md), so that a mistyped or made-up
//! key is refused without a lookup and secret scanners recognise real ones.
//! Only a SHA-256 of the key is stored; the secret is shown once, at creation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::audit::{Action, AdminCall, Audit};
use crate::error::Error;
use crate::model::Admin;
use crate::model::{Scope, TenantId, User, has_admin_scope};
use crate::store::Lock;
use crate::store::api_keys::{self as store, ApiKeyRow};
use crate::store::users;
use crate::store::{Db, tenants, write_transaction};

const PREFIX: &str = "tmk_";
const RANDOM_CHARS: usize = 43;
const CHECKSUM_CHARS: usize = 6;
/// Length of a whole key.
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_CHARS + CHECKSUM_CHARS;
/// How many leading characters are kept for display.
pub const DISPLAY_PREFIX_LEN: usize = 12;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC32 (IEEE) as 6 base62 digits, most significant first, left-padded with `0`.
fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut digits = [b'0'; CHECKSUM_CHARS];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// `len` base62 characters from the OS CSPRNG, by rejection sampling (no modulo bias).
pub fn random_base62(len: usize) -> Result<String, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf)?;
        for &b in &buf {
            // 248 = 4 * 62: bytes at or above it would favour the first digits.
            if b < 248 && out.len() < len {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// An API key secret. `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKeySecret(SecretString);

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret([redacted])")
    }
}

impl ApiKeySecret {
    /// What every key starts with.
    pub const PREFIX: &'static str = PREFIX;

    /// A new key from the OS CSPRNG.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut body = String::with_capacity(KEY_LEN);
        body.push_str(PREFIX);
        body.push_str(&random_base62(RANDOM_CHARS)?);
        let sum = checksum(&body);
        body.push_str(&sum);
        Ok(Self(SecretString::from(body)))
    }

    /// Parses a presented key; shape and checksum are checked before any lookup.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != KEY_LEN || !s.starts_with(PREFIX) {
            return None;
        }
        let rest = &s[PREFIX.len()..];
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (body, sum) = s.split_at(PREFIX.len() + RANDOM_CHARS);
        (checksum(body) == sum).then(|| Self(SecretString::from(s.to_owned())))
    }

    /// The key, to show once.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The leading characters kept for display.
    pub fn display_prefix(&self) -> String {
        self.expose()[..DISPLAY_PREFIX_LEN].to_owned()
    }

    /// SHA-256, base64url: what the database keeps (256 bits of entropy need no slow hash).
    pub fn hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.expose().as_bytes(),
        ))
    }
}

/// An API key as the domain sees it (never the secret).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Id.
    pub id: Uuid,
    /// Display prefix.
    pub prefix: String,
    /// Name.
    pub name: String,
    /// The user it acts for: disabling or deleting that user stops the key.
    pub owner_id: Uuid,
    /// Its tenant: its owner's.
    pub tenant: TenantId,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Enabled.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (coalesced).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Address of the last use.
    pub last_used_ip: Option<String>,
}

impl ApiKey {
    fn from_row(row: ApiKeyRow) -> Result<Self, Error> {
        let parse_id = |s: &str| Uuid::parse_str(s).map_err(Error::internal);
        Ok(Self {
            id: parse_id(&row.id)?,
            prefix: row.prefix,
            name: row.name,
            owner_id: parse_id(&row.owner_id)?,
            tenant: TenantId::parse(&row.tenant_id).map_err(Error::internal)?,
            scopes: serde_json::from_str(&row.scopes)?,
            enabled: row.enabled,
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.map(|t| t.and_utc()),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
            last_used_ip: row.last_used_ip,
        })
    }

    /// Whether the key authenticates at `now` (its owner aside).
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// A key that authenticated: the key, and what its owner allows it.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    /// The key.
    pub key: ApiKey,
    /// The owner holds the `admin` role: only then does the key's `admin` scope count.
    pub owner_is_admin: bool,
}

impl AuthenticatedKey {
    /// The scopes the key acts with now: its own, less `admin` unless its owner holds the
    /// admin role now (a demotion since the key was made counts at once), as at every
    /// admin endpoint.
    pub fn scopes(&self) -> Vec<Scope> {
        self.key
            .scopes
            .iter()
            .filter(|s| self.owner_is_admin || !has_admin_scope(std::slice::from_ref(*s)))
            .cloned()
            .collect()
    }
}

/// What a presented key turned out to be.
#[derive(Debug)]
pub enum KeyCheck {
    /// A key that authenticates now.
    Usable(AuthenticatedKey),
    /// A real key that does not authenticate now: disabled, expired, or its owner
    /// disabled (or gone).
    Refused(Uuid),
    /// No such key.
    Unknown,
}

/// A key's name: 1 to 100 printable characters, trimmed.
#[derive(Debug, Clone)]
pub struct ApiKeyName(String);

impl ApiKeyName {
    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self, Error> {
        crate::model::text::printable(s, 100)
            .map(|name| Self(name.to_owned()))
            .ok_or_else(|| Error::invalid("name must be 1 to 100 printable characters"))
    }
}

/// What a new key is made of, parsed.
#[derive(Debug)]
pub struct NewApiKey {
    /// Name.
    pub name: ApiKeyName,
    /// Owner; `None`: the admin who creates it (the owner of a creating key).
    pub owner_id: Option<Uuid>,
    /// The tenant, which must be the owner's; `None`: the owner's.
    pub tenant: Option<TenantId>,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Expiry, in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Filters of the key list.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Only this owner's keys.
    pub owner_id: Option<Uuid>,
    /// Only enabled or only disabled keys.
    pub enabled: Option<bool>,
    /// Only this tenant's keys (admins of `default`; others see only their own).
    pub tenant: Option<TenantId>,
}

/// The last use of a key: when, and from which address.
type LastUse = (DateTime<Utc>, Option<String>);

/// API keys, with last-use times kept in memory and written in batches.
pub struct ApiKeys {
    db: Db,
    audit: Arc<Audit>,
    // key id -> (last use, address): written by `flush_usage`, so that a busy key
    // costs no database write per request.
    pending_usage: Mutex<HashMap<Uuid, LastUse>>,
}

impl ApiKeys {
    /// The service.
    pub fn new(db: Db, audit: Arc<Audit>) -> Self {
        Self {
            db,
            audit,
            pending_usage: Mutex::new(HashMap::new()),
        }
    }

    /// Creates a key; returns it with its secret (to be shown once). A key with scope
    /// `admin` needs an owner with role `admin`.
    pub async fn create(
        &self,
        admin: &Admin,
        new: NewApiKey,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, ApiKeySecret), Error> {
        let result = self.insert(admin, new, now).await;
        let target = result
            .as_ref()
            .ok()
            .map(|(k, _)| format!("api_key:{}", k.id));
        let call = AdminCall::new(admin, Action::ApiKeyCreate).on(target);
        self.audit.record_admin(call, result.is_ok(), now).await;
        result
    }

    async fn insert(
        &self,
        admin: &Admin,
        new: NewApiKey,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, ApiKeySecret), Error> {
        if new.expires_at.is_some_and(|exp| exp <= now) {
            return Err(Error::invalid("expires_at must be in the future"));
        }
        let owner = new.owner_id.or(admin.user_id()).ok_or_else(|| {
            Error::invalid("owner_id is required: an API key always acts for a user")
        })?;
        let secret =
            ApiKeySecret::generate().map_err(|_| Error::internal("random generator failed"))?;
        let wants_admin = has_admin_scope(&new.scopes);
        let row = ApiKeyRow {
            id: Uuid::now_v7().to_string(),
            key_hash: secret.hash(),
            prefix: secret.display_prefix(),
            name: new.name.0,
            owner_id: owner.to_string(),
            scopes: serde_json::to_string(&new.scopes)?,
            enabled: true,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
            expires_at: new.expires_at.map(|t| t.naive_utc()),
            last_used_at: None,
            last_used_ip: None,
            tenant_id: String::new(),
        };
        let (admin, wanted) = (admin.clone(), new.tenant);
        let stored = self
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let no_owner = || Error::invalid("owner_id names no user");
                    let owner =
                        users::lock(conn, &row.owner_id, Lock::Share)?.ok_or_else(no_owner)?;
                    let owner = User::from_row(&owner)?;
                    if !admin.may_see(&owner.tenant) {
                        return Err(no_owner());
                    }
                    if wanted.as_ref().is_some_and(|t| t != &owner.tenant) {
                        return Err(Error::invalid("the owner belongs to another tenant"));
                    }
                    if wants_admin && !owner.is_admin() {
                        return Err(Error::invalid(
                            "a key with scope admin needs an owner with role admin",
                        ));
                    }
                    let row = ApiKeyRow {
                        tenant_id: owner.tenant.as_str().to_owned(),
                        ..row
                    };
                    store::insert(conn, &row)?;
                    Ok(row)
                })
            })
            .await?;
        Ok((ApiKey::from_row(stored)?, secret))
    }

    /// What a presented secret is, and, when it authenticates, its use recorded. Every
    /// call reads the database, so a disable or delete holds on every instance the moment
    /// it commits. A key acts only for an enabled owner.
    pub async fn authenticate(
        &self,
        secret: &ApiKeySecret,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<KeyCheck, Error> {
        let check = self.inspect(secret, now).await?;
        if let KeyCheck::Usable(found) = &check {
            self.pending_usage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(found.key.id, (now, ip));
        }
        Ok(check)
    }

    /// Like [`ApiKeys::authenticate`], but being looked at is no use: nothing is recorded.
    pub async fn inspect(
        &self,
        secret: &ApiKeySecret,
        now: DateTime<Utc>,
    ) -> Result<KeyCheck, Error> {
        let hash = secret.hash();
        let found = self
            .db
            .run(move |conn| {
                let Some(row) = store::find_by_hash(conn, &hash)? else {
                    return Ok(None);
                };
                let owner = users::find_by_id(conn, &row.owner_id)?;
                let tenant_enabled =
                    tenants::find(conn, &row.tenant_id)?.is_some_and(|t| t.enabled);
                Ok::<_, Error>(Some((row, owner, tenant_enabled)))
            })
            .await?;
        let Some((row, owner, tenant_enabled)) = found else {
            return Ok(KeyCheck::Unknown);
        };
        let key = ApiKey::from_row(row)?;
        let owner = owner.as_ref().map(User::from_row).transpose()?;
        match owner {
            Some(owner) if owner.enabled && tenant_enabled && key.is_usable(now) => {
                Ok(KeyCheck::Usable(AuthenticatedKey {
                    key,
                    owner_is_admin: owner.is_admin(),
                }))
            }
            _ => Ok(KeyCheck::Refused(key.id)),
        }
    }

    /// Writes the coalesced last-use times.
    pub async fn flush_usage(&self) -> Result<(), Error> {
        let pending: Vec<(Uuid, LastUse)> =
            std::mem::take(&mut *self.pending_usage.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        if pending.is_empty() {
            return Ok(());
        }
        self.db
            .run(move |conn| {
                for (id, (at, ip)) in &pending {
                    store::touch(conn, &id.to_string(), at.naive_utc(), ip.as_deref())?;
                }
                Ok(())
            })
            .await
    }

    /// One key (never its secret).
    pub async fn get(&self, admin: &Admin, id: Uuid, now: DateTime<Utc>) -> Result<ApiKey, Error> {
        let call = AdminCall::new(admin, Action::ApiKeyGet).on(format!("api_key:{id}"));
        self.audit
            .admin(call, now, async {
                let found = self.find(id).await?;
                found
                    .filter(|k| admin.may_see(&k.tenant))
                    .ok_or(Error::NotFound("API key"))
            })
            .await
    }

    async fn find(&self, id: Uuid) -> Result<Option<ApiKey>, Error> {
        self.flush_usage().await?;
        let row = self
            .db
            .run(move |conn| store::find(conn, &id.to_string()))
            .await?;
        row.map(ApiKey::from_row).transpose()
    }

    /// A page of keys after `after`, oldest first, filtered.
    pub async fn list(
        &self,
        admin: &Admin,
        after: Option<Uuid>,
        limit: i64,
        filter: KeyFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<ApiKey>, Error> {
        let call = AdminCall::new(admin, Action::ApiKeyList);
        let rows = self.audit.admin(call, now, async {
            let scope = admin.scope(filter.tenant.clone())?;
            self.flush_usage().await?;
            self.db
                .run(move |conn| {
                    store::page(
                        conn,
                        after.map(|a| a.to_string()).as_deref(),
                        limit,
                        filter.owner_id.map(|o| o.to_string()).as_deref(),
                        filter.enabled,
                        scope.filter(),
                    )
                })
                .await
                .map_err(Error::from)
        });
        rows.await?.into_iter().map(ApiKey::from_row).collect()
    }

    /// Enables or disables a key (idempotent). A disable holds everywhere once this answers.
    pub async fn set_enabled(
        &self,
        admin: &Admin,
        id: Uuid,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<ApiKey, Error> {
        let action = if enabled {
            Action::ApiKeyEnable
        } else {
            Action::ApiKeyDisable
        };
        let call = AdminCall::new(admin, action).on(format!("api_key:{id}"));
        self.audit
            .admin(call, now, async {
                let scope = admin.scope(None)?;
                let found = self
                    .db
                    .run(move |conn| {
                        store::set_enabled(
                            conn,
                            &id.to_string(),
                            enabled,
                            now.naive_utc(),
                            scope.filter(),
                        )
                    })
                    .await?;
                if !found {
                    return Err(Error::NotFound("API key"));
                }
                self.find(id).await?.ok_or(Error::NotFound("API key"))
            })
            .await
    }

    /// Deletes a key; it is refused everywhere once this answers.
    pub async fn delete(&self, admin: &Admin, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        let call = AdminCall::new(admin, Action::ApiKeyDelete).on(format!("api_key:{id}"));
        self.audit
            .admin(call, now, async {
                let scope = admin.scope(None)?;
                let deleted = self
                    .db
                    .run(move |conn| store::delete(conn, &id.to_string(), scope.filter()))
                    .await?;
                if deleted {
                    Ok(())
                } else {
                    Err(Error::NotFound("API key"))
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_any_string_never_panics(s in "\\PC*", t in "tmk_[0-9A-Za-z]{49}") {
            let _ = ApiKeySecret::parse(&s);
            let _ = ApiKeySecret::parse(&t);
        }

        #[test]
        fn any_single_character_change_is_refused(pos in 4usize..53, c in "[0-9A-Za-z]") {
            let key = ApiKeySecret::generate().unwrap();
            let mut bytes = key.expose().as_bytes().to_vec();
            let c = c.as_bytes()[0];
            prop_assume!(bytes[pos] != c);
            bytes[pos] = c;
            // CRC32 catches every burst error up to 32 bits, so every single substitution.
            prop_assert!(ApiKeySecret::parse(std::str::from_utf8(&bytes).unwrap()).is_none());
        }
    }

    #[test]
    fn generated_keys_have_the_documented_shape_and_parse() {
        let key = ApiKeySecret::generate().unwrap();
        let s = key.expose();
        assert_eq!(s.len(), 53);
        assert!(s.starts_with("tmk_"));
        assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(key.display_prefix(), &s[..12]);
        assert!(ApiKeySecret::parse(s).is_some());
        assert!(!format!("{key:?}").contains(s));
    }

    #[test]
    fn the_checksum_is_crc32_in_six_base62_digits() {
        // CRC32("tmk_" + 43 zeros) written by hand in base62, most significant first.
        let body = format!("tmk_{}", "0".repeat(43));
        let crc = crc32fast::hash(body.as_bytes());
        let mut n = u64::from(crc);
        let mut expected = Vec::new();
        for _ in 0..6 {
            expected.push(BASE62[(n % 62) as usize]);
            n /= 62;
        }
        expected.reverse();
        assert_eq!(checksum(&body).as_bytes(), expected.as_slice());
        assert!(ApiKeySecret::parse(&format!("{body}{}", checksum(&body))).is_some());
    }

    #[test]
    fn a_mistyped_or_made_up_key_is_refused_without_lookup() {
        let key = ApiKeySecret::generate().unwrap();
        let s = key.expose().to_owned();
        let mut typo = s.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        for bad in [
            typo.as_str(),
            &s[..52],
            &format!("{s}x"),
            &s.replacen("tmk_", "tmq_", 1),
            "",
            &format!("tmk_{}", "!".repeat(49)),
        ] {
            assert!(ApiKeySecret::parse(bad).is_none(), "{bad:?}");
        }
    }
}
