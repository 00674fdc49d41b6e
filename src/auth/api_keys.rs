//! API keys: `tmk_` + 43 base62 characters of randomness (256 bits) + 6 base62
//! characters of CRC32 over what precedes them (API.md), so that a mistyped or made-up
//! key is refused without a lookup and secret scanners recognise real ones.
//! Only a SHA-256 of the key is stored; the secret is shown once, at creation.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::store::api_keys::{self as store, ApiKeyRow};
use crate::store::{Db, StoreError};

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

/// An API key secret. `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKeySecret(SecretString);

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret([redacted])")
    }
}

impl ApiKeySecret {
    /// A new key from the OS CSPRNG (base62 by rejection sampling: no modulo bias).
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let mut body = String::with_capacity(KEY_LEN);
        body.push_str(PREFIX);
        let mut buf = [0u8; 64];
        while body.len() < PREFIX.len() + RANDOM_CHARS {
            rng.fill(&mut buf)?;
            for &b in &buf {
                // 248 = 4 * 62: bytes at or above it would favour the first digits.
                if b < 248 && body.len() < PREFIX.len() + RANDOM_CHARS {
                    body.push(char::from(BASE62[usize::from(b % 62)]));
                }
            }
        }
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
    /// Owner.
    pub owner_id: Option<Uuid>,
    /// Scopes.
    pub scopes: Vec<String>,
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
    fn from_row(row: ApiKeyRow) -> Result<Self, StoreError> {
        let parse_id = |s: &str| Uuid::parse_str(s).map_err(|e| StoreError::Other(Box::new(e)));
        Ok(Self {
            id: parse_id(&row.id)?,
            prefix: row.prefix,
            name: row.name,
            owner_id: row.owner_id.as_deref().map(parse_id).transpose()?,
            scopes: serde_json::from_str(&row.scopes)?,
            enabled: row.enabled,
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.map(|t| t.and_utc()),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
            last_used_ip: row.last_used_ip,
        })
    }

    /// Whether the key authenticates at `now`.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// What a new key is made of, parsed.
#[derive(Debug)]
pub struct NewApiKey {
    /// Name (1 to 100 characters).
    pub name: String,
    /// Owner.
    pub owner_id: Option<Uuid>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Errors of API-key management.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// The owner does not exist.
    #[error("owner not found")]
    UnknownOwner,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator failed.
    #[error("random generator failed")]
    Random,
}

/// The last use of a key: when, and from which address.
type LastUse = (DateTime<Utc>, Option<String>);

/// API keys, with last-use times kept in memory and written in batches.
pub struct ApiKeys {
    db: Db,
    // key id -> (last use, address): written by `flush_usage`, so that a busy key
    // costs no database write per request.
    pending_usage: Mutex<HashMap<Uuid, LastUse>>,
}

impl ApiKeys {
    /// The service.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            pending_usage: Mutex::new(HashMap::new()),
        }
    }

    /// Creates a key; returns it with its secret (to be shown once).
    pub async fn create(
        &self,
        new: NewApiKey,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, ApiKeySecret), ApiKeyError> {
        let secret = ApiKeySecret::generate().map_err(|_| ApiKeyError::Random)?;
        let row = ApiKeyRow {
            id: Uuid::now_v7().to_string(),
            key_hash: secret.hash(),
            prefix: secret.display_prefix(),
            name: new.name,
            owner_id: new.owner_id.map(|id| id.to_string()),
            scopes: serde_json::to_string(&new.scopes).map_err(StoreError::from)?,
            enabled: true,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
            expires_at: new.expires_at.map(|t| t.naive_utc()),
            last_used_at: None,
            last_used_ip: None,
        };
        let stored = row.clone();
        self.db
            .run(move |conn| {
                if let Some(owner) = &row.owner_id
                    && crate::store::users::find_by_id(conn, owner)?.is_none()
                {
                    return Ok(false);
                }
                store::insert(conn, &row)?;
                Ok(true)
            })
            .await?
            .then_some(())
            .ok_or(ApiKeyError::UnknownOwner)?;
        Ok((ApiKey::from_row(stored)?, secret))
    }

    /// The key a presented secret belongs to, if it authenticates now. Every call reads
    /// the database, so a disable or delete holds on every instance the moment it commits.
    pub async fn authenticate(
        &self,
        secret: &ApiKeySecret,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        let hash = secret.hash();
        let row = self
            .db
            .run(move |conn| {
                let Some(row) = store::find_by_hash(conn, &hash)? else {
                    return Ok(None);
                };
                // A key acting for a disabled user acts for nobody.
                if let Some(owner) = &row.owner_id {
                    let owner_enabled =
                        crate::store::users::find_by_id(conn, owner)?.is_some_and(|u| u.enabled);
                    if !owner_enabled {
                        return Ok(None);
                    }
                }
                Ok(Some(row))
            })
            .await?;
        let Some(key) = row.map(ApiKey::from_row).transpose()? else {
            return Ok(None);
        };
        if !key.is_usable(now) {
            return Ok(None);
        }
        self.pending_usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.id, (now, ip));
        Ok(Some(key))
    }

    /// Writes the coalesced last-use times.
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
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

    /// One key.
    pub async fn get(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
        self.flush_usage().await?;
        let row = self
            .db
            .run(move |conn| store::find(conn, &id.to_string()))
            .await?;
        row.map(ApiKey::from_row).transpose()
    }

    /// A page of keys after `after`, with filters.
    pub async fn page(
        &self,
        after: Option<Uuid>,
        limit: i64,
        owner_id: Option<Uuid>,
        enabled: Option<bool>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.flush_usage().await?;
        let rows = self
            .db
            .run(move |conn| {
                store::page(
                    conn,
                    after.map(|a| a.to_string()).as_deref(),
                    limit,
                    owner_id.map(|o| o.to_string()).as_deref(),
                    enabled,
                )
            })
            .await?;
        rows.into_iter().map(ApiKey::from_row).collect()
    }

    /// Enables or disables a key (idempotent); `None` if there is no such key.
    pub async fn set_enabled(
        &self,
        id: Uuid,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        let found = self
            .db
            .run(move |conn| store::set_enabled(conn, &id.to_string(), enabled, now.naive_utc()))
            .await?;
        if !found {
            return Ok(None);
        }
        self.get(id).await
    }

    /// Deletes a key; `false` if there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        self.db
            .run(move |conn| store::delete(conn, &id.to_string()))
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
