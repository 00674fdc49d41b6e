//! The key-encryption key: AES-256-GCM over signing keys at rest.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::KeyError;
use secrecy::SecretBox;

/// 32 bytes that encrypt signing keys at rest (AES-256-GCM).
pub type KeyEncryptionKey = SecretBox<[u8; 32]>;

/// Parses base64 of exactly 32 bytes.
pub fn parse_kek(b64: &str) -> Result<KeyEncryptionKey, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "expected base64".to_owned())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "expected base64 of exactly 32 bytes".to_owned())?;
    Ok(SecretBox::new(Box::new(key)))
}

/// Encrypts and decrypts private keys. The ciphertext is bound to the key id (AAD), so
/// a stored key cannot be swapped onto another row.
pub struct Kek {
    key: LessSafeKey,
    /// For keys of other purposes derived from the same secret ([`Kek::derive`]).
    prk: ring::hkdf::Prk,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    /// A KEK from 32 secret bytes.
    pub fn new(secret: &KeyEncryptionKey) -> Result<Self, KeyError> {
        let unbound = UnboundKey::new(&AES_256_GCM, secret.expose_secret())?;
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"tokenmint/kek-derived/v1")
            .extract(secret.expose_secret());
        Ok(Self {
            key: LessSafeKey::new(unbound),
            prk,
        })
    }

    /// The KEK kept in `path`, generated there on first use (with a warning: a file
    /// beside the database it protects is for the embedded default only).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        Self::new(&load_or_generate(path)?)
    }

    /// 32 bytes for one purpose, named by `label`, derived from the same secret (HKDF-SHA256):
    /// whoever holds the KEK holds them, the database never does, and one purpose's key
    /// tells nothing of another's or of the KEK.
    pub fn derive(&self, label: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        struct Len;
        impl ring::hkdf::KeyType for Len {
            fn len(&self) -> usize {
                32
            }
        }
        let mut out = Zeroizing::new([0u8; 32]);
        let labels = [label];
        self.prk.expand(&labels, Len)?.fill(out.as_mut())?;
        Ok(out)
    }

    /// `nonce || ciphertext || tag`.
    pub fn encrypt(&self, plaintext: &[u8], kid: &str) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce)?;
        let mut buf = plaintext.to_vec();
        self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut buf,
        )?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Reverses [`Kek::encrypt`].
    pub fn decrypt(&self, sealed: &[u8], kid: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if sealed.len() < NONCE_LEN {
            return Err(KeyError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Decrypt)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| KeyError::Decrypt)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

/// Where the embedded backend keeps its generated KEK: beside the database file.
pub fn kek_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".kek");
    PathBuf::from(name)
}

fn load_or_generate(path: &Path) -> Result<KeyEncryptionKey, KeyError> {
    let file_err = |source| KeyError::KekFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(b64) => parse_kek(&b64).map_err(|reason| {
            file_err(std::io::Error::new(std::io::ErrorKind::InvalidData, reason))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = Zeroizing::new([0u8; 32]);
            SystemRandom::new().fill(bytes.as_mut())?;
            let b64 =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()));
            write_private(path, b64.as_bytes()).map_err(file_err)?;
            tracing::warn!(
                path = %path.display(),
                "generated a key-encryption key next to the database: anyone who can read both can \
                 read the signing keys; set TOKENMINT_KEY_ENCRYPTION_KEY for production"
            );
            Ok(KeyEncryptionKey::new(Box::new(*bytes)))
        }
        Err(e) => Err(file_err(e)),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::new(&KeyEncryptionKey::new(Box::new([9u8; 32]))).unwrap()
    }

    #[test]
    fn encrypted_keys_decrypt_only_under_their_own_kid() {
        let sealed = kek().encrypt(b"private", "kid-1").unwrap();
        assert_eq!(
            kek().decrypt(&sealed, "kid-1").unwrap().as_slice(),
            b"private"
        );
        assert!(matches!(
            kek().decrypt(&sealed, "kid-2"),
            Err(KeyError::Decrypt)
        ));
        let other = Kek::new(&KeyEncryptionKey::new(Box::new([1u8; 32]))).unwrap();
        assert!(matches!(
            other.decrypt(&sealed, "kid-1"),
            Err(KeyError::Decrypt)
        ));
        assert!(matches!(
            kek().decrypt(&sealed[..5], "kid-1"),
            Err(KeyError::Decrypt)
        ));
    }

    #[test]
    fn a_generated_kek_is_reused_on_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db.kek");
        let first = load_or_generate(&path).unwrap();
        let second = load_or_generate(&path).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
