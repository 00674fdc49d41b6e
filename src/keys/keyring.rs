//! The keyring: an in-memory snapshot of the signing keys, swapped whole when keys
//! change, so signing, verifying and serving JWKS never touch the database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Header};
use serde::Serialize;

use super::crypto_provider::RingSigner;
use super::kek::Kek;
use super::lifecycle::{KeyState, KeyStatus, NotYet, Timing, keys_to_retire, plan_rotation};
use super::material::KeyPair;
use super::{KeyError, SigningAlg};
use crate::revocation::KeyField;
use crate::store::signing_keys::{self, SigningKeyRow};
use crate::store::{Db, DbConnection, StoreError, write_transaction};

/// A key that verifies tokens.
#[derive(Clone)]
pub struct VerifyingKey {
    /// Its algorithm: a token must name exactly this one.
    pub alg: SigningAlg,
    /// The public key.
    pub key: DecodingKey,
}

/// The JWS `typ` of a connect ticket.
pub const TICKET_TYP: &str = "ticket+jwt";

struct CurrentKey {
    kid: String,
    signer: RingSigner,
    // The base64url JWS headers, identical for every token of a type this key signs:
    // access tokens (`typ: at+jwt`), connect tickets (`typ: ticket+jwt`) and security
    // events (`typ: secevent+jwt`).
    encoded_header: String,
    encoded_ticket_header: String,
    encoded_set_header: String,
}

/// JWKS as served: the body is computed once per key change, never per request.
#[derive(Clone)]
pub struct JwksDocument {
    /// The JSON body.
    pub body: bytes::Bytes,
    /// Strong ETag (quoted), a digest of the body: quotes and base64url only.
    pub etag: bytes::Bytes,
}

struct Snapshot {
    // (kid, status) of every live key: a reload that finds the same skips the rebuild.
    fingerprint: Vec<(String, String)>,
    census: KeyCensus,
    current: Option<CurrentKey>,
    verifying: HashMap<String, VerifyingKey>,
    // The list's names of `verifying`'s keys, shared: JWKS reads them on every request.
    published: Arc<[KeyField]>,
    // The list's name of `current`'s key (none or one), shared: every door that signs
    // reads it first.
    signing: Arc<[KeyField]>,
    // Withdrawn keys: their tokens are refused as revoked, not as unknown.
    withdrawn: HashSet<String>,
    jwks: JwksDocument,
    // JWKS without keys another instance withdrew before this one reloaded (rare):
    // built once per set of such keys.
    jwks_without: std::sync::Mutex<Option<(Vec<String>, JwksDocument)>>,
}

/// The published keys this instance holds, by status (for readiness and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyCensus {
    /// The kid that signs, if any.
    pub current: Option<String>,
    /// The kid published to sign next, if any.
    pub next: Option<String>,
    /// How many retired-from-signing keys are still published.
    pub retiring: usize,
}

/// Signs tokens with the current key and verifies them with any published key.
pub struct Keyring {
    db: Db,
    kek: Kek,
    snapshot: ArcSwap<Snapshot>,
    default_alg: SigningAlg,
    timing: Timing,
    // When the last reload through `reload_since` began; held while one runs.
    fresh_reload: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// A key as listed to admins.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// Lifecycle state.
    pub status: KeyStatus,
    /// Creation (publication) time.
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it left JWKS.
    pub retired_at: Option<DateTime<Utc>>,
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Pre-publication is never skipped: the `next` key may sign from this time on.
    #[error("the next key has not been published long enough; it can sign from {0}")]
    NotReady(DateTime<Utc>),
    /// Key handling or storage failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

pub(crate) fn key_state(row: &SigningKeyRow) -> Option<KeyState> {
    Some(KeyState {
        kid: row.kid.clone(),
        status: KeyStatus::parse(&row.status)?,
        created_at: row.created_at.and_utc(),
        activated_at: row.activated_at.map(|t| t.and_utc()),
        deactivated_at: row.deactivated_at.map(|t| t.and_utc()),
    })
}

enum TxOutcome {
    Rotated,
    NotYet(NotYet),
}

/// Why a transaction over the keys did not commit.
pub(crate) enum TxFail {
    /// Storage failed.
    Store(StoreError),
    /// Another instance changed the keys first (a conditional update found nothing).
    Lost,
}

impl From<diesel::result::Error> for TxFail {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<StoreError> for TxFail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Keyring {
    /// Loads the keys; on a first start, creates the first signing key and a `next` one.
    pub async fn load_or_init(
        db: Db,
        kek: Kek,
        alg: SigningAlg,
        timing: Timing,
        now: DateTime<Utc>,
    ) -> Result<Self, KeyError> {
        let keyring = Self {
            db,
            kek,
            snapshot: ArcSwap::from_pointee(empty_snapshot()?),
            default_alg: alg,
            timing,
            fresh_reload: tokio::sync::Mutex::new(None),
        };
        keyring.reload().await?;
        if keyring.snapshot.load().current.is_none() {
            // First start: nobody has cached a JWKS yet, so the first key signs at once.
            let row = keyring.new_key_row(alg, KeyStatus::Current, now).await?;
            match keyring
                .db
                .run(move |conn| signing_keys::insert(conn, &row))
                .await
            {
                // Another instance created the first key at the same moment: take theirs.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        keyring.ensure_next(now).await?;
        keyring.reload().await?;
        Ok(keyring)
    }

    /// Publishes a `next` key if there is none.
    async fn ensure_next(&self, now: DateTime<Utc>) -> Result<(), KeyError> {
        let rows = self.db.run(signing_keys::list_live).await?;
        if rows.iter().any(|r| r.status == KeyStatus::Next.as_str()) {
            return Ok(());
        }
        let row = self
            .new_key_row(self.default_alg, KeyStatus::Next, now)
            .await?;
        self.db
            .run(move |conn| signing_keys::insert(conn, &row))
            .await?;
        Ok(())
    }

    /// Rotates: the `next` key becomes `current`, the old `current` becomes `retiring`,
    /// and a new `next` key (of `alg`, else the configured algorithm) is published.
    /// `scheduled` rotations happen only when the interval is due; none ever skips the
    /// pre-publication of the `next` key. Of several instances, exactly one rotates.
    /// Returns whether this call rotated.
    pub async fn rotate(
        &self,
        alg: Option<SigningAlg>,
        now: DateTime<Utc>,
        scheduled: bool,
    ) -> Result<bool, RotateError> {
        let new_next = self
            .new_key_row(alg.unwrap_or(self.default_alg), KeyStatus::Next, now)
            .await?;
        let timing = self.timing;
        let outcome = self
            .db
            .run(move |conn| {
                match write_transaction(conn, |conn| {
                    rotate_tx(conn, new_next, now, &timing, scheduled)
                }) {
                    Ok(outcome) => Ok(Some(outcome)),
                    Err(TxFail::Lost) => Ok(None),
                    Err(TxFail::Store(e)) => Err(e),
                }
            })
            .await
            .map_err(KeyError::from)?;
        self.reload().await?;
        match outcome {
            Some(TxOutcome::Rotated) => {
                tracing::info!(scheduled, kid = ?self.current_kid(), "signing key rotated");
                metrics::counter!(crate::metrics::KEY_ROTATIONS).increment(1);
                Ok(true)
            }
            // Another instance rotated first: that rotation stands.
            None | Some(TxOutcome::NotYet(NotYet::NotDue(_))) => Ok(false),
            Some(TxOutcome::NotYet(NotYet::NextKeyTooYoung(at))) => Err(RotateError::NotReady(at)),
            Some(TxOutcome::NotYet(NotYet::NoNextKey)) => Err(RotateError::NotReady(
                now + TimeDelta::from_std(timing.publish_lead).unwrap_or(TimeDelta::MAX),
            )),
        }
    }

    /// Periodic work of every instance: retire keys whose tokens have all expired, keep a
    /// `next` key published, rotate when the interval is due, and pick up changes made
    /// by other instances.
    /// Returns whether this instance performed a scheduled rotation.
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<bool, KeyError> {
        // One read when there is nothing to do, which is almost always.
        let rows = self.db.run(signing_keys::list_live).await?;
        let states: Vec<KeyState> = rows.iter().filter_map(key_state).collect();
        let to_retire = keys_to_retire(&states, now, &self.timing);
        let no_next = !states.iter().any(|k| k.status == KeyStatus::Next);
        let rotation_due = plan_rotation(&states, now, &self.timing, true).is_ok();
        if to_retire.is_empty() && !no_next && !rotation_due {
            return self.apply(rows).map(|()| false);
        }
        for kid in to_retire {
            self.db
                .run(move |conn| {
                    signing_keys::transition(conn, &kid, "retiring", "retired", now.naive_utc())
                })
                .await?;
        }
        if no_next {
            self.ensure_next(now).await?;
        }
        let rotated = if rotation_due {
            match self.rotate(None, now, true).await {
                Ok(rotated) => rotated,
                Err(RotateError::NotReady(_)) => false,
                Err(RotateError::Key(e)) => return Err(e),
            }
        } else {
            false
        };
        self.reload().await?;
        Ok(rotated)
    }

    /// Every key, newest first, for admins.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows = self.db.run(signing_keys::list_all).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(KeyInfo {
                    status: KeyStatus::parse(&row.status)?,
                    alg: row.alg.parse().ok()?,
                    kid: row.kid,
                    created_at: row.created_at.and_utc(),
                    activated_at: row.activated_at.map(|t| t.and_utc()),
                    retired_at: row.retired_at.map(|t| t.and_utc()),
                })
            })
            .collect())
    }

    /// Generates a key in `status`, encrypted, as a row to insert.
    pub(crate) async fn new_key_row(
        &self,
        alg: SigningAlg,
        status: KeyStatus,
        now: DateTime<Utc>,
    ) -> Result<SigningKeyRow, KeyError> {
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
        Ok(SigningKeyRow {
            private_key: Some(self.kek.encrypt(&pkcs8, &kid)?),
            kid,
            alg: alg.as_str().to_owned(),
            status: status.as_str().to_owned(),
            public_jwk: serde_json::to_string(&jwk)?,
            created_at: now.naive_utc(),
            activated_at: (status == KeyStatus::Current).then(|| now.naive_utc()),
            retired_at: None,
            deactivated_at: None,
        })
    }

    /// Re-reads the keys from the database and swaps the snapshot.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let rows = self.db.run(signing_keys::list_live).await?;
        self.apply(rows)
    }

    /// Makes sure the keys were read from the database after `since` (a request's
    /// arrival): reloads, unless a reload that began after `since` has completed.
    /// Concurrent callers share reloads, so the database sees at most one at a time.
    pub async fn reload_since(&self, since: std::time::Instant) -> Result<(), KeyError> {
        let mut last = self.fresh_reload.lock().await;
        if last.is_some_and(|began| began > since) {
            return Ok(());
        }
        let began = std::time::Instant::now();
        self.reload().await?;
        *last = Some(began);
        Ok(())
    }

    /// Swaps in a snapshot of `rows`, unless it would be the same as the current one.
    fn apply(&self, rows: Vec<SigningKeyRow>) -> Result<(), KeyError> {
        if fingerprint(&rows) == self.snapshot.load().fingerprint {
            return Ok(());
        }
        let snapshot = build_snapshot(&self.kek, rows)?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    /// Signs `claims` as a JWS with the current key, header `typ: at+jwt`. Returns the token and the kid.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<(String, String), KeyError> {
        self.sign_with(claims, |key| &key.encoded_header)
    }

    /// Signs `claims` as a connect ticket: header `typ: ticket+jwt`, which no access-token
    /// check accepts (and the reverse).
    pub fn sign_ticket<T: Serialize>(&self, claims: &T) -> Result<(String, String), KeyError> {
        self.sign_with(claims, |key| &key.encoded_ticket_header)
    }

    /// Signs `claims` as a Security Event Token: header `typ: secevent+jwt` (RFC 8417).
    pub fn sign_set<T: Serialize>(&self, claims: &T) -> Result<(String, String), KeyError> {
        self.sign_with(claims, |key| &key.encoded_set_header)
    }

    fn sign_with<T: Serialize>(
        &self,
        claims: &T,
        header: impl Fn(&CurrentKey) -> &str,
    ) -> Result<(String, String), KeyError> {
        let snapshot = self.snapshot.load();
        let current = snapshot.current.as_ref().ok_or(KeyError::NoCurrentKey)?;
        let payload = serde_json::to_vec(claims)?;
        let header = header(current);
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(header);
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

    /// Whether the key with this kid is published (its tokens may be accepted).
    pub fn publishes(&self, kid: &str) -> bool {
        self.snapshot.load().verifying.contains_key(kid)
    }

    /// Whether the key with this kid was withdrawn (as of this instance's last reload).
    pub fn withdrew(&self, kid: &str) -> bool {
        self.snapshot.load().withdrawn.contains(kid)
    }

    /// The published keys, as the revocation list names them.
    pub fn published(&self) -> Arc<[KeyField]> {
        self.snapshot.load().published.clone()
    }

    /// The key that signs now as the revocation list names it (empty when none does).
    pub fn signing(&self) -> Arc<[KeyField]> {
        self.snapshot.load().signing.clone()
    }

    /// The JWKS document.
    pub fn jwks(&self) -> JwksDocument {
        self.snapshot.load().jwks.clone()
    }

    /// The JWKS document without these published keys (withdrawn by another instance,
    /// before this one reloaded its keys), with its own ETag.
    pub fn jwks_without(&self, withdrawn: &[&str]) -> Result<JwksDocument, KeyError> {
        let snapshot = self.snapshot.load();
        let mut left_out: Vec<String> = withdrawn.iter().map(|k| (*k).to_owned()).collect();
        left_out.sort_unstable();
        let mut cached = snapshot
            .jwks_without
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((kids, doc)) = cached.as_ref()
            && *kids == left_out
        {
            return Ok(doc.clone());
        }
        let mut set: JwkSet = serde_json::from_slice(&snapshot.jwks.body)?;
        set.keys.retain(|jwk| {
            jwk.common
                .key_id
                .as_ref()
                .is_none_or(|kid| left_out.binary_search(kid).is_err())
        });
        let doc = jwks_document(&set)?;
        *cached = Some((left_out, doc.clone()));
        Ok(doc)
    }

    /// The published keys by status.
    pub fn census(&self) -> KeyCensus {
        self.snapshot.load().census.clone()
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

fn fingerprint(rows: &[SigningKeyRow]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r.kid.clone(), r.status.clone()))
        .collect()
}

fn rotate_tx(
    conn: &mut DbConnection,
    new_next: SigningKeyRow,
    now: DateTime<Utc>,
    timing: &Timing,
    scheduled: bool,
) -> Result<TxOutcome, TxFail> {
    let rows = signing_keys::list_live(conn)?;
    let states: Vec<KeyState> = rows.iter().filter_map(key_state).collect();
    let plan = match plan_rotation(&states, now, timing, scheduled) {
        Ok(plan) => plan,
        Err(NotYet::NoNextKey) => {
            signing_keys::insert(conn, &new_next)?;
            return Ok(TxOutcome::NotYet(NotYet::NoNextKey));
        }
        Err(not_yet) => return Ok(TxOutcome::NotYet(not_yet)),
    };
    let naive = now.naive_utc();
    if let Some(old) = &plan.old_current
        && !signing_keys::transition(conn, old, "current", "retiring", naive)?
    {
        return Err(TxFail::Lost);
    }
    if !signing_keys::transition(conn, &plan.new_current, "next", "current", naive)? {
        return Err(TxFail::Lost);
    }
    signing_keys::insert(conn, &new_next)?;
    Ok(TxOutcome::Rotated)
}

fn empty_snapshot() -> Result<Snapshot, KeyError> {
    Ok(Snapshot {
        fingerprint: Vec::new(),
        census: KeyCensus::default(),
        current: None,
        verifying: HashMap::new(),
        published: Arc::from([]),
        signing: Arc::from([]),
        withdrawn: HashSet::new(),
        jwks: jwks_document(&JwkSet { keys: Vec::new() })?,
        jwks_without: std::sync::Mutex::new(None),
    })
}

fn build_snapshot(kek: &Kek, rows: Vec<SigningKeyRow>) -> Result<Snapshot, KeyError> {
    let fingerprint = fingerprint(&rows);
    let mut census = KeyCensus::default();
    let mut current = None;
    let mut verifying = HashMap::new();
    let mut withdrawn = HashSet::new();
    let mut published = Vec::new();
    for row in rows {
        if row.status == KeyStatus::Withdrawn.as_str() {
            withdrawn.insert(row.kid);
            continue;
        }
        let (alg, pair, jwk) = match trusted(kek, &row) {
            Ok(key) => key,
            Err(reason) => {
                // Someone with write access to the database but not the KEK could plant a
                // public key here and have tokens signed with it accepted.
                tracing::error!(kid = %row.kid, %reason, "a signing key fails its integrity check: it is neither published nor trusted");
                continue;
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| KeyError::Crypto)?;
        if row.status == KeyStatus::Current.as_str() {
            let encoded = |typ: &str| -> Result<String, KeyError> {
                let mut header = Header::new(alg.jwt_algorithm());
                header.typ = Some(typ.to_owned());
                header.kid = Some(row.kid.clone());
                Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?))
            };
            current = Some(CurrentKey {
                encoded_header: encoded("at+jwt")?,
                encoded_ticket_header: encoded(TICKET_TYP)?,
                encoded_set_header: encoded(crate::events::SET_TYP)?,
                kid: row.kid.clone(),
                signer: RingSigner(pair),
            });
        }
        match row.status.as_str() {
            "current" => census.current = Some(row.kid.clone()),
            "next" => census.next = Some(row.kid.clone()),
            "retiring" => census.retiring += 1,
            _ => {}
        }
        verifying.insert(row.kid, VerifyingKey { alg, key });
        published.push(jwk);
    }
    Ok(Snapshot {
        census,
        fingerprint,
        signing: current.iter().map(|c| KeyField::new(&c.kid)).collect(),
        current,
        published: verifying.keys().map(|kid| KeyField::new(kid)).collect(),
        verifying,
        withdrawn,
        jwks: jwks_document(&JwkSet { keys: published })?,
        jwks_without: std::sync::Mutex::new(None),
    })
}

/// A stored key, if it is one the service made: its private part opens under the KEK
/// (bound to the kid), and the public key derived from it is the one stored, whose
/// RFC 7638 thumbprint is the kid. Returns the key pair and the public JWK to publish.
fn trusted(kek: &Kek, row: &SigningKeyRow) -> Result<(SigningAlg, KeyPair, Jwk), &'static str> {
    let alg: SigningAlg = row.alg.parse().map_err(|_| "unsupported algorithm")?;
    let sealed = row.private_key.as_deref().ok_or("no sealed private part")?;
    let pkcs8 = kek
        .decrypt(sealed, &row.kid)
        .map_err(|_| "the private part does not open under the key-encryption key")?;
    let pair = KeyPair::from_pkcs8(alg, &pkcs8).map_err(|_| "the private part is no key")?;
    let derived = pair.public_jwk(&row.kid).map_err(|_| "no public key")?;
    let stored: Jwk = serde_json::from_str(&row.public_jwk).map_err(|_| "corrupt public JWK")?;
    let thumbprint = |jwk: &Jwk| jwk.thumbprint(ThumbprintHash::SHA256).ok();
    if thumbprint(&derived).as_deref() != Some(row.kid.as_str())
        || thumbprint(&stored).as_deref() != Some(row.kid.as_str())
    {
        return Err("the public key does not match the private part");
    }
    Ok((alg, pair, derived))
}

fn jwks_document(set: &JwkSet) -> Result<JwksDocument, KeyError> {
    let body = serde_json::to_vec(set)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
    Ok(JwksDocument {
        body: body.into(),
        etag: etag.into(),
    })
}
