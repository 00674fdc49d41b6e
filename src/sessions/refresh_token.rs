//! Refresh tokens: 256 bits from the OS CSPRNG, base64url; stored only as a hash.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

const TOKEN_BYTES: usize = 32;
/// Length of the base64url form of 32 bytes, unpadded.
const TOKEN_CHARS: usize = 43;

/// A refresh token as the client holds it. `Debug` never shows it.
#[derive(Clone)]
pub struct RefreshToken(SecretString);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

impl RefreshToken {
    /// A new random token.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut bytes = zeroize::Zeroizing::new([0u8; TOKEN_BYTES]);
        SystemRandom::new().fill(bytes.as_mut())?;
        Ok(Self(SecretString::from(
            URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        )))
    }

    /// Parses a presented token: exactly 43 base64url characters. Anything else is
    /// refused without a lookup.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == TOKEN_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD
                .decode(s)
                .is_ok_and(|b| b.len() == TOKEN_BYTES);
        ok.then(|| Self(SecretString::from(s.to_owned())))
    }

    /// The token, to hand to its owner.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// SHA-256, base64url: what the database keeps. The token has 256 bits of entropy,
    /// so a fast hash is enough.
    pub fn hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.expose().as_bytes(),
        ))
    }

    fn sealing_key(&self) -> Result<LessSafeKey, ring::error::Unspecified> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"tokenmint/successor-seal/v1\0");
        ctx.update(self.expose().as_bytes());
        let key = UnboundKey::new(&AES_256_GCM, ctx.finish().as_ref())?;
        Ok(LessSafeKey::new(key))
    }

    /// Encrypts `successor` under a key only the holder of `self` can derive.
    pub fn seal_successor(
        &self,
        successor: &RefreshToken,
    ) -> Result<Vec<u8>, ring::error::Unspecified> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce)?;
        let mut buf = successor.expose().as_bytes().to_vec();
        self.sealing_key()?.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.hash().as_bytes()),
            &mut buf,
        )?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Reverses [`RefreshToken::seal_successor`].
    pub fn open_successor(&self, sealed: &[u8]) -> Option<RefreshToken> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = zeroize::Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .sealing_key()
            .ok()?
            .open_in_place(nonce, Aad::from(self.hash().as_bytes()), &mut buf)
            .ok()?;
        let text = std::str::from_utf8(plain).ok()?;
        RefreshToken::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_any_string_never_panics_and_accepts_only_43_base64url(s in "\\PC*", t in "[A-Za-z0-9_-]{43}") {
            if let Some(token) = RefreshToken::parse(&s) {
                prop_assert_eq!(token.expose().len(), 43);
            }
            // 43 base64url characters are 258 bits: only those whose last character carries
            // no stray bits decode to exactly 32 bytes.
            let _ = RefreshToken::parse(&t);
        }
    }

    #[test]
    fn generated_tokens_parse_and_hash_stably() {
        let token = RefreshToken::generate().unwrap();
        assert_eq!(token.expose().len(), 43);
        let parsed = RefreshToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(token.hash(), RefreshToken::generate().unwrap().hash());
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn malformed_tokens_are_refused_without_lookup() {
        for bad in [
            "",
            "short",
            &"a".repeat(42),
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &"+".repeat(43),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_predecessor_opens_its_sealed_successor() {
        let predecessor = RefreshToken::generate().unwrap();
        let successor = RefreshToken::generate().unwrap();
        let sealed = predecessor.seal_successor(&successor).unwrap();
        assert_eq!(
            predecessor.open_successor(&sealed).unwrap().expose(),
            successor.expose()
        );
        assert!(
            RefreshToken::generate()
                .unwrap()
                .open_successor(&sealed)
                .is_none()
        );
        assert!(predecessor.open_successor(&sealed[..10]).is_none());
    }
}
