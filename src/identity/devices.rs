//! Device proofs (OWASP "device cookies"): a successful login hands the browser a signed
//! proof that this device has logged in as this user before. A later login for that
//! username that presents it is not slowed down by the failures of others and is admitted
//! to the hashing queue ahead of anonymous attempts; everything else about the login is
//! unchanged (the password is still checked).
//!
//! A proof is stateless: `tmd1.` and the base64url of the user's id, the user's device
//! epoch, its expiry, a random id (the key of its own failure counter) and an HMAC-SHA256
//! over them, with a key derived for this purpose alone. The epoch is a column of the
//! user: a password change or a disable moves it on, which ends every proof issued
//! before; a delete ends them with the row. A proof that fails any check is ignored: the
//! login is then anonymous, never refused for it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use uuid::Uuid;

use crate::error::Error;

const PREFIX: &str = "tmd1.";
const CONTEXT: &[u8] = b"tokenmint device proof v1";
const ID_BYTES: usize = 16;
const TAG_BYTES: usize = 32;
/// user id, epoch, expiry (seconds), proof id.
const BODY_BYTES: usize = 16 + 8 + 8 + ID_BYTES;
const TOTAL_BYTES: usize = BODY_BYTES + TAG_BYTES;

/// The signing key of device proofs. Its `Debug` never shows it.
pub struct DeviceKey(hmac::Key);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey([redacted])")
    }
}

/// What a proof whose signature and expiry are right claims; the login still checks that
/// it names the user of its username, in that user's current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The user it was issued to.
    pub user_id: Uuid,
    /// That user's device epoch when it was issued.
    pub epoch: i64,
    /// Its own id: the key of its failure counter.
    pub id: String,
}

impl Claimed {
    /// Whether this is a live proof of the user of `row`.
    pub fn is_for(&self, row: &crate::store::users::UserRow) -> bool {
        row.enabled && row.device_epoch == self.epoch && row.id == self.user_id.to_string()
    }
}

impl DeviceKey {
    /// The key, from 32 secret bytes derived for this purpose alone (see
    /// [`crate::keys::kek::Kek::derive`]).
    pub fn new(secret: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// What the tag covers: the context, then the body.
    fn message(body: &[u8]) -> Vec<u8> {
        [CONTEXT, body].concat()
    }

    /// A new proof for `user_id` in `epoch`, valid until `expires_at`.
    pub fn issue(
        &self,
        user_id: Uuid,
        epoch: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<String, Error> {
        let mut bytes = [0u8; TOTAL_BYTES];
        let (body, tag) = bytes.split_at_mut(BODY_BYTES);
        let (user, rest) = body.split_at_mut(16);
        user.copy_from_slice(user_id.as_bytes());
        let (epoch_bytes, rest) = rest.split_at_mut(8);
        epoch_bytes.copy_from_slice(&epoch.to_be_bytes());
        let (expiry, id) = rest.split_at_mut(8);
        expiry.copy_from_slice(&expires_at.timestamp().to_be_bytes());
        SystemRandom::new()
            .fill(id)
            .map_err(|_| Error::internal("the system random source failed"))?;
        tag.copy_from_slice(hmac::sign(&self.0, &Self::message(body)).as_ref());
        let mut text = String::with_capacity(PREFIX.len() + TOTAL_BYTES * 2);
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
        Ok(text)
    }

    /// What `presented` claims, if it is a proof of this key that has not expired at
    /// `now` (the tag is compared in constant time); `None` for anything else.
    pub fn open(&self, presented: &str, now: DateTime<Utc>) -> Option<Claimed> {
        let encoded = presented.strip_prefix(PREFIX)?;
        if encoded.len() > TOTAL_BYTES * 2 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if bytes.len() != TOTAL_BYTES {
            return None;
        }
        let (body, tag) = bytes.split_at_checked(BODY_BYTES)?;
        hmac::verify(&self.0, &Self::message(body), tag).ok()?;
        let (user, rest) = body.split_at_checked(16)?;
        let (epoch, rest) = rest.split_at_checked(8)?;
        let (expiry, id) = rest.split_at_checked(8)?;
        let expires = i64::from_be_bytes(expiry.try_into().ok()?);
        if expires <= now.timestamp() {
            return None;
        }
        Some(Claimed {
            user_id: Uuid::from_slice(user).ok()?,
            epoch: i64::from_be_bytes(epoch.try_into().ok()?),
            id: URL_SAFE_NO_PAD.encode(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_proof_opens_with_its_key_until_it_expires() {
        let key = DeviceKey::new(&[7; 32]);
        let user = Uuid::now_v7();
        let proof = key.issue(user, 3, at(100)).unwrap();
        let claimed = key.open(&proof, at(99)).unwrap();
        assert_eq!((claimed.user_id, claimed.epoch), (user, 3));
        assert_eq!(key.open(&proof, at(100)), None, "expired");
        assert_eq!(DeviceKey::new(&[8; 32]).open(&proof, at(0)), None);
        let other = key.issue(user, 3, at(100)).unwrap();
        assert_ne!(key.open(&other, at(0)).unwrap().id, claimed.id);
    }

    proptest! {
        /// Any change to a proof, one character or its length, makes it nothing.
        #[test]
        fn a_changed_proof_opens_to_nothing(position in 0usize..200, replacement in "[A-Za-z0-9_.-]", cut in 0usize..200) {
            let key = DeviceKey::new(&[7; 32]);
            let proof = key.issue(Uuid::now_v7(), 0, at(1_000)).unwrap();
            let position = position % proof.len();
            let mut changed = proof.clone();
            changed.replace_range(position..=position, &replacement);
            if changed != proof {
                prop_assert_eq!(key.open(&changed, at(0)), None);
            }
            let cut = cut % proof.len();
            prop_assert_eq!(key.open(&proof[..cut], at(0)), None);
            prop_assert_eq!(key.open(&format!("{proof}A"), at(0)), None);
        }
    }
}
