//! DPoP (RFC 9449): access and refresh tokens bound to a key the client cannot export,
//! so that a copied token is useless without it.
//!
//! A proof is checked once, here, for every door ([`Dpop::check`]): its rules
//! ([`proof::check`], pure), its nonce when nonces are on ([`Nonces`]: stateless, every
//! instance accepts every instance's), and its single use per key, method and URL across
//! every instance ([`crate::ephemeral::dpop_replay`]; fails closed when Redis cannot be
//! reached). The doors then bind (`cnf.jkt`) or check a binding with the thumbprint it
//! answers.

pub mod proof;

use chrono::{DateTime, Utc};
use ring::hmac;

pub use self::proof::{ALGS, Checked, Jkt};
use crate::ephemeral::dpop_replay::DpopReplay;
use crate::error::{Door, DpopProblem, Error};

/// A proof as a request presents it, with what the request says it must match.
#[derive(Clone)]
pub struct Presented {
    /// The `DPoP` header's value.
    pub proof: String,
    /// The request's method.
    pub method: String,
    /// The request's path (the public URL is the issuer's plus this).
    pub path: String,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Stateless nonces: an HMAC of the time step (60 s) under a secret every instance
/// derives alike, so every instance accepts every instance's without storage. A nonce is
/// current for its step and the two before (two to three minutes), and for one step
/// ahead (an instance whose clock runs a little ahead).
pub struct Nonces {
    key: hmac::Key,
}

/// A nonce's time step, seconds.
const NONCE_STEP: i64 = 60;

impl Nonces {
    /// Nonces under `secret` (derived from the key-encryption key).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn step(now: DateTime<Utc>) -> i64 {
        now.timestamp().div_euclid(NONCE_STEP)
    }

    fn of_step(&self, step: i64) -> String {
        use base64::Engine as _;
        let tag = hmac::sign(&self.key, &step.to_be_bytes());
        let mut bytes = step.to_be_bytes().to_vec();
        bytes.extend_from_slice(tag.as_ref());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The nonce to hand out now (`DPoP-Nonce`).
    pub fn current(&self, now: DateTime<Utc>) -> String {
        self.of_step(Self::step(now))
    }

    /// Whether `nonce` is one of ours and still current.
    pub fn accepts(&self, nonce: &str, now: DateTime<Utc>) -> bool {
        use base64::Engine as _;
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((step, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let step = i64::from_be_bytes(*step);
        let current = Self::step(now);
        if !(current - 2..=current + 1).contains(&step) {
            return false;
        }
        hmac::verify(&self.key, &step.to_be_bytes(), tag).is_ok()
    }
}

/// The checks of DPoP proofs, for every door.
pub struct Dpop {
    issuer: String,
    nonces: Option<Nonces>,
    replay: DpopReplay,
}

impl Dpop {
    /// Proofs for the service whose public base URL is `issuer`; nonces required when
    /// `nonces` is given.
    pub fn new(issuer: String, nonces: Option<Nonces>, replay: DpopReplay) -> Self {
        Self {
            issuer,
            nonces,
            replay,
        }
    }

    /// The nonce every answer to a request with a proof carries (`DPoP-Nonce`), when
    /// nonces are on.
    pub fn nonce(&self, now: DateTime<Utc>) -> Option<String> {
        self.nonces.as_ref().map(|n| n.current(now))
    }

    /// Checks a proof at `door` (for `access_token` at a resource): its rules, its
    /// nonce, and its first use. Answers the key's thumbprint.
    pub async fn check(
        &self,
        presented: &Presented,
        door: Door,
        access_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Jkt, Error> {
        let refused = |reason: &'static str| Error::Dpop {
            problem: DpopProblem::Invalid(reason),
            door,
        };
        let Some(url) = proof::public_url(&self.issuer, &presented.path) else {
            return Err(refused(
                "DPoP needs TOKENMINT_ISSUER to be the service's public http(s) URL",
            ));
        };
        let checked = proof::check(
            &presented.proof,
            &proof::Expected {
                method: &presented.method,
                url: &url,
                now,
                access_token,
            },
        )
        .map_err(|r| refused(r.0))?;
        if let Some(nonces) = &self.nonces
            && !checked
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now))
        {
            return Err(Error::Dpop {
                problem: DpopProblem::UseNonce,
                door,
            });
        }
        // Once per key, method and URL within the proof's life (it ends PAST seconds
        // after its iat).
        let expires_at = checked.iat.saturating_add(proof::PAST);
        let first = self
            .replay
            .first_use(
                &[
                    checked.jkt.as_str(),
                    &presented.method,
                    url.as_str(),
                    &checked.jti,
                ],
                expires_at,
                now,
            )
            .await?;
        if !first {
            return Err(refused("the DPoP proof was used before"));
        }
        Ok(checked.jkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_accepted_for_about_three_minutes_by_any_instance_with_the_secret() {
        let (a, b) = (Nonces::new(&[1; 32]), Nonces::new(&[1; 32]));
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let nonce = a.current(t0);
        for later in [0, 59, 120, 179] {
            let at = t0 + chrono::TimeDelta::seconds(later);
            assert!(b.accepts(&nonce, at), "{later} s later");
        }
        assert!(!b.accepts(&nonce, t0 + chrono::TimeDelta::seconds(181)));
        assert!(
            b.accepts(&nonce, t0 - chrono::TimeDelta::seconds(60)),
            "a clock behind"
        );
        assert!(!b.accepts(&nonce, t0 - chrono::TimeDelta::seconds(121)));
        let other = Nonces::new(&[2; 32]);
        assert!(!other.accepts(&nonce, t0), "another secret");
        for junk in ["", "latest", "AAAA", &nonce[..nonce.len() - 2]] {
            assert!(!a.accepts(junk, t0), "{junk}");
        }
    }
}
