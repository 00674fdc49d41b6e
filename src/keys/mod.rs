//! Signing keys: generation (ring), encryption at rest, the in-memory keyring that
//! signs and verifies, and the ring-backed `CryptoProvider` for jsonwebtoken.

pub mod admin;
pub mod crypto_provider;
pub mod kek;
pub mod keyring;
pub mod lifecycle;
pub mod material;

pub use admin::SigningKeys;
pub use keyring::Keyring;

/// The JWS algorithms Tokenmint signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256 (default).
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl SigningAlg {
    /// Every algorithm, as the API lists them.
    pub const ALL: [SigningAlg; 3] = [Self::Es256, Self::EdDsa, Self::Rs256];

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    /// The jsonwebtoken algorithm.
    pub fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "RS256" => Ok(Self::Rs256),
            other => Err(format!("unsupported signing algorithm {other:?}")),
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The algorithm is not supported for this operation.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Key material could not be parsed, generated or used.
    #[error("key material rejected by the crypto library")]
    Crypto,
    /// A stored key could not be decrypted with the configured key-encryption key.
    #[error(
        "a signing key cannot be decrypted: is TOKENMINT_KEY_ENCRYPTION_KEY the one it was stored with?"
    )]
    Decrypt,
    /// There is no key to sign with.
    #[error("no current signing key")]
    NoCurrentKey,
    /// The key-encryption key file could not be read or written.
    #[error("key-encryption key file {path}: {source}")]
    KekFile {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A stored JWK is not valid JSON.
    #[error("stored public key is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl From<KeyError> for crate::error::Error {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Store(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

impl From<ring::error::Unspecified> for KeyError {
    fn from(_: ring::error::Unspecified) -> Self {
        Self::Crypto
    }
}

impl From<ring::error::KeyRejected> for KeyError {
    fn from(_: ring::error::KeyRejected) -> Self {
        Self::Crypto
    }
}

#[cfg(test)]
mod tests {
    use super::SigningAlg;

    #[test]
    fn every_algorithm_is_listed_once_and_parses_back_from_its_name() {
        // A new variant stops this match from compiling until it is numbered, and then
        // the list below fails until it holds it.
        let index = |alg: SigningAlg| match alg {
            SigningAlg::Es256 => 0,
            SigningAlg::EdDsa => 1,
            SigningAlg::Rs256 => 2,
        };
        assert_eq!(SigningAlg::ALL.map(index), [0, 1, 2]);
        for alg in SigningAlg::ALL {
            assert_eq!(alg.as_str().parse::<SigningAlg>(), Ok(alg));
        }
    }
}
