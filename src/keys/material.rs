//! Key material: generating, parsing and using ring key pairs, and their public JWKs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use zeroize::Zeroizing;

use super::{KeyError, SigningAlg};

/// A parsed private key, ready to sign.
pub enum KeyPair {
    /// P-256.
    Ecdsa(sig::EcdsaKeyPair),
    /// Ed25519.
    Ed25519(sig::Ed25519KeyPair),
    /// RSA.
    Rsa(sig::RsaKeyPair),
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({}, [redacted])", self.alg())
    }
}

impl KeyPair {
    /// Generates a new private key and returns its PKCS#8 document (to be encrypted and stored).
    pub fn generate_pkcs8(alg: SigningAlg) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let rng = SystemRandom::new();
        let doc = match alg {
            SigningAlg::Es256 => {
                sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?
            }
            SigningAlg::EdDsa => sig::Ed25519KeyPair::generate_pkcs8(&rng)?,
            // ring signs RSA but cannot generate RSA keys; the RustCrypto `rsa` crate
            // generates them (only that: its decryption timing issue does not apply).
            SigningAlg::Rs256 => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                    .map_err(|_| KeyError::Crypto)?;
                let der = key.to_pkcs8_der().map_err(|_| KeyError::Crypto)?;
                return Ok(Zeroizing::new(der.as_bytes().to_vec()));
            }
        };
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// Parses a PKCS#8 document (PKCS#1 DER is also accepted for RSA).
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, KeyError> {
        Ok(match alg {
            SigningAlg::Es256 => Self::Ecdsa(sig::EcdsaKeyPair::from_pkcs8(
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )?),
            SigningAlg::EdDsa => Self::Ed25519(sig::Ed25519KeyPair::from_pkcs8(der)?),
            SigningAlg::Rs256 => Self::Rsa(
                sig::RsaKeyPair::from_pkcs8(der).or_else(|_| sig::RsaKeyPair::from_der(der))?,
            ),
        })
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> SigningAlg {
        match self {
            Self::Ecdsa(_) => SigningAlg::Es256,
            Self::Ed25519(_) => SigningAlg::EdDsa,
            Self::Rsa(_) => SigningAlg::Rs256,
        }
    }

    /// Signs `msg`, returning the JWS signature bytes.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Ecdsa(pair) => {
                let mut signature = pair.sign(&SystemRandom::new(), msg)?.as_ref().to_vec();
                low_s::normalize(&mut signature);
                Ok(signature)
            }
            Self::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            Self::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut out)?;
                Ok(out)
            }
        }
    }

    /// The raw public key: the uncompressed point for P-256, 32 bytes for Ed25519,
    /// DER `RSAPublicKey` for RSA.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ecdsa(pair) => pair.public_key().as_ref().to_vec(),
            Self::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
            Self::Rsa(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// The public JWK (`use: sig`) under `kid`.
    pub fn public_jwk(&self, kid: &str) -> Result<Jwk, KeyError> {
        let (key_algorithm, algorithm) = match self {
            Self::Ecdsa(pair) => {
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(KeyError::Crypto);
                }
                let (x, y) = point[1..].split_at(32);
                (
                    KeyAlgorithm::ES256,
                    AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                        key_type: EllipticCurveKeyType::EC,
                        curve: EllipticCurve::P256,
                        x: URL_SAFE_NO_PAD.encode(x),
                        y: URL_SAFE_NO_PAD.encode(y),
                    }),
                )
            }
            Self::Ed25519(pair) => (
                KeyAlgorithm::EdDSA,
                AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                }),
            ),
            Self::Rsa(pair) => {
                let components: sig::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                (
                    KeyAlgorithm::RS256,
                    AlgorithmParameters::RSA(RSAKeyParameters {
                        key_type: RSAKeyType::RSA,
                        n: URL_SAFE_NO_PAD.encode(components.n),
                        e: URL_SAFE_NO_PAD.encode(components.e),
                    }),
                )
            }
        };
        Ok(Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(key_algorithm),
                key_id: Some(kid.to_owned()),
                ..CommonParameters::default()
            },
            algorithm,
        })
    }
}

/// ECDSA signatures are malleable: if `(r, s)` verifies, so does `(r, n - s)`. Tokenmint
/// issues only the "low-S" form (`s <= n/2`, as Bitcoin and RFC 8725's advice to refuse
/// alternate encodings do) and accepts only it, so a token has exactly one valid encoding.
pub mod low_s {
    /// The order of P-256, big-endian.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    /// floor(N / 2), big-endian.
    const HALF_N: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31,
        0x92, 0xa8,
    ];

    /// Whether a fixed-length P-256 signature `r || s` has `s <= n/2`. Big-endian byte
    /// strings of equal length compare as the numbers they encode.
    pub fn is_low(signature: &[u8]) -> bool {
        signature.len() == 64 && signature[32..] <= HALF_N[..]
    }

    /// Turns `r || s` into `r || n - s` when `s > n/2`; both verify, only this one is issued.
    pub fn normalize(signature: &mut [u8]) {
        if signature.len() != 64 || is_low(signature) {
            return;
        }
        let s = &mut signature[32..];
        let mut borrow = 0u16;
        for i in (0..32).rev() {
            let subtrahend = u16::from(s[i]) + borrow;
            let minuend = u16::from(N[i]);
            let (digit, next) = if minuend >= subtrahend {
                (minuend - subtrahend, 0)
            } else {
                (minuend + 256 - subtrahend, 1)
            };
            s[i] = digit.to_be_bytes()[1];
            borrow = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_what_their_public_jwk_verifies() {
        super::super::crypto_provider::install();
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
            let pkcs8 = KeyPair::generate_pkcs8(alg).unwrap();
            let pair = KeyPair::from_pkcs8(alg, &pkcs8).unwrap();
            let jwk = pair.public_jwk("k1").unwrap();
            let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let signature = pair.sign(b"message").unwrap();
            let b64 = URL_SAFE_NO_PAD.encode(&signature);
            assert!(
                jsonwebtoken::crypto::verify(&b64, b"message", &key, alg.jwt_algorithm()).unwrap()
            );
            assert!(
                !jsonwebtoken::crypto::verify(&b64, b"other", &key, alg.jwt_algorithm()).unwrap()
            );
        }
    }

    #[test]
    fn es256_signatures_are_issued_low_s_and_their_twin_is_high_s() {
        let pkcs8 = KeyPair::generate_pkcs8(SigningAlg::Es256).unwrap();
        let pair = KeyPair::from_pkcs8(SigningAlg::Es256, &pkcs8).unwrap();
        for i in 0..64u8 {
            let signature = pair.sign(&[i]).unwrap();
            assert!(low_s::is_low(&signature));
        }
        let low = pair.sign(b"m").unwrap();
        let mut back = low.clone();
        low_s::normalize(&mut back);
        assert_eq!(back, low, "a low s is left alone");
        assert!(!low_s::is_low(&[0xffu8; 64]));
        assert!(low_s::is_low(&[0u8; 64]));
    }

    #[test]
    fn hmac_is_refused_even_with_a_public_key_as_secret() {
        super::super::crypto_provider::install();
        let pkcs8 = KeyPair::generate_pkcs8(SigningAlg::Es256).unwrap();
        let pair = KeyPair::from_pkcs8(SigningAlg::Es256, &pkcs8).unwrap();
        let key = jsonwebtoken::DecodingKey::from_secret(&pair.public_key_bytes());
        assert!(
            jsonwebtoken::crypto::verify("AAAA", b"m", &key, jsonwebtoken::Algorithm::HS256)
                .is_err()
        );
    }
}
