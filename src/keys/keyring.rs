//! The keyring: an in-memory snapshot of the signing keys, swapped whole when keys
//! change, so signing, verifying and serving JWKS never touch the database.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Header};
use serde::Serialize;

use super::crypto_provider::RingSigner;
use super::kek::Kek;
use super::material::KeyPair;
use super::{KeyError, SigningAlg};
use crate::store::signing_keys::{self, SigningKeyRow};
use crate::store::{Db, StoreError};

/// Lifecycle state of a signing key (DESIGN.md, "Keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published, not signing yet.
    Next,
    /// Signs new tokens.
    Current,
    /// Published, no longer signing, until its tokens have expired.
    Retiring,
    /// Gone from JWKS; private part wiped.
    Retired,
}

impl KeyStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }
}

/// A key that verifies tokens.
#[derive(Clone)]
pub struct VerifyingKey {
    /// Its algorithm: a token must name exactly this one.
    pub alg: SigningAlg,
    /// The public key.
    pub key: DecodingKey,
}

struct CurrentKey {
    kid: String,
    signer: RingSigner,
    // The base64url JWS header, identical for every token this key signs.
    encoded_header: String,
}

/// JWKS as served: the body is computed once per key change, never per request.
#[derive(Clone)]
pub struct JwksDocument {
    /// The JSON body.
    pub body: actix_web::web::Bytes,
    /// Strong ETag (quoted), a digest of the body.
    pub etag: String,
}

struct Snapshot {
    current: Option<CurrentKey>,
    verifying: HashMap<String, VerifyingKey>,
    jwks: JwksDocument,
}

/// Signs tokens with the current key and verifies them with any published key.
pub struct Keyring {
    db: Db,
    kek: Kek,
    snapshot: ArcSwap<Snapshot>,
}

impl Keyring {
    /// Loads the keys; on a first start, creates the first signing key.
    pub async fn load_or_init(
        db: Db,
        kek: Kek,
        alg: SigningAlg,
        now: DateTime<Utc>,
    ) -> Result<Self, KeyError> {
        let keyring = Self {
            db,
            kek,
            snapshot: ArcSwap::from_pointee(empty_snapshot()?),
        };
        keyring.reload().await?;
        if keyring.snapshot.load().current.is_none() {
            match keyring.create_key(alg, KeyStatus::Current, now).await {
                // Another instance created the first key at the same moment: take theirs.
                Ok(()) | Err(KeyError::Store(StoreError::Conflict)) => {}
                Err(e) => return Err(e),
            }
            keyring.reload().await?;
        }
        Ok(keyring)
    }

    /// Generates a key in `status` and stores it encrypted.
    async fn create_key(
        &self,
        alg: SigningAlg,
        status: KeyStatus,
        now: DateTime<Utc>,
    ) -> Result<(), KeyError> {
        let pkcs8 = tokio::task::spawn_blocking(move || KeyPair::generate_pkcs8(alg))
            .await
            .map_err(|_| KeyError::Crypto)??;
        let pair = KeyPair::from_pkcs8(alg, &pkcs8)?;
        let mut jwk = pair.public_jwk("")?;
        // RFC 7638 thumbprint: a stable, collision-free kid that says nothing secret.
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| KeyError::Crypto)?;
        jwk.common.key_id = Some(kid.clone());
        let row = SigningKeyRow {
            private_key: Some(self.kek.encrypt(&pkcs8, &kid)?),
            kid,
            alg: alg.as_str().to_owned(),
            status: status.as_str().to_owned(),
            public_jwk: serde_json::to_string(&jwk)?,
            created_at: now.naive_utc(),
            activated_at: (status == KeyStatus::Current).then(|| now.naive_utc()),
            retired_at: None,
        };
        self.db
            .run(move |conn| signing_keys::insert(conn, &row))
            .await?;
        Ok(())
    }

    /// Re-reads the keys from the database and swaps the snapshot.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let rows = self.db.run(signing_keys::list_live).await?;
        let snapshot = build_snapshot(&self.kek, rows)?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    /// Signs `claims` as a JWS with the current key, header `typ: at+jwt`. Returns the token and the kid.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<(String, String), KeyError> {
        let snapshot = self.snapshot.load();
        let current = snapshot.current.as_ref().ok_or(KeyError::NoCurrentKey)?;
        let payload = serde_json::to_vec(claims)?;
        let mut token =
            String::with_capacity(current.encoded_header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&current.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = current.signer.0.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok((token, current.kid.clone()))
    }

    /// The published key with this kid, if any.
    pub fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        self.snapshot.load().verifying.get(kid).cloned()
    }

    /// The JWKS document.
    pub fn jwks(&self) -> JwksDocument {
        self.snapshot.load().jwks.clone()
    }

    /// The kid that signs now.
    pub fn current_kid(&self) -> Option<String> {
        self.snapshot.load().current.as_ref().map(|c| c.kid.clone())
    }

    /// The algorithms of the published keys.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let snapshot = self.snapshot.load();
        let mut algs: Vec<&'static str> = snapshot
            .verifying
            .values()
            .map(|k| k.alg.as_str())
            .collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }
}

fn empty_snapshot() -> Result<Snapshot, KeyError> {
    Ok(Snapshot {
        current: None,
        verifying: HashMap::new(),
        jwks: jwks_document(&JwkSet { keys: Vec::new() })?,
    })
}

fn build_snapshot(kek: &Kek, rows: Vec<SigningKeyRow>) -> Result<Snapshot, KeyError> {
    let mut current = None;
    let mut verifying = HashMap::new();
    let mut published = Vec::new();
    for row in rows {
        let alg: SigningAlg = row.alg.parse().map_err(KeyError::Unsupported)?;
        let jwk: Jwk = serde_json::from_str(&row.public_jwk)?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| KeyError::Crypto)?;
        if row.status == KeyStatus::Current.as_str() {
            let sealed = row.private_key.as_deref().ok_or(KeyError::Decrypt)?;
            let pkcs8 = kek.decrypt(sealed, &row.kid)?;
            let pair = KeyPair::from_pkcs8(alg, &pkcs8)?;
            let mut header = Header::new(alg.jwt_algorithm());
            header.typ = Some("at+jwt".to_owned());
            header.kid = Some(row.kid.clone());
            current = Some(CurrentKey {
                encoded_header: URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
                kid: row.kid.clone(),
                signer: RingSigner(pair),
            });
        }
        verifying.insert(row.kid, VerifyingKey { alg, key });
        published.push(jwk);
    }
    Ok(Snapshot {
        current,
        verifying,
        jwks: jwks_document(&JwkSet { keys: published })?,
    })
}

fn jwks_document(set: &JwkSet) -> Result<JwksDocument, KeyError> {
    let body = serde_json::to_vec(set)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
    Ok(JwksDocument {
        body: body.into(),
        etag,
    })
}
