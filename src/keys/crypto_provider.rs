//! A jsonwebtoken `CryptoProvider` backed by ring, for the algorithms Tokenmint uses
//! (ES256, EdDSA, RS256). Anything else, HMAC included, is refused: a token whose
//! header claims HS256 with our public key as the secret can never verify.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as sig;

use super::SigningAlg;
use super::material::{KeyPair, low_s};

/// The provider; [`install`] makes it jsonwebtoken's process default.
pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

/// Installs [`RING_PROVIDER`] as jsonwebtoken's provider. Idempotent.
pub fn install() {
    // Err means a provider is installed already: ours, from an earlier call.
    let _ = RING_PROVIDER.install_default();
}

fn supported(alg: &Algorithm) -> Result<SigningAlg, Error> {
    match alg {
        Algorithm::ES256 => Ok(SigningAlg::Es256),
        Algorithm::EdDSA => Ok(SigningAlg::EdDsa),
        Algorithm::RS256 => Ok(SigningAlg::Rs256),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// Signs with a parsed ring key pair. The keyring keeps one per key, so signing a token
/// never re-parses PKCS#8 (jsonwebtoken's own `encode` would, through `signer_factory`).
pub struct RingSigner(pub(crate) KeyPair);

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        self.0.sign(msg).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.0.alg().jwt_algorithm()
    }
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    let alg = supported(alg)?;
    let pair = KeyPair::from_pkcs8(alg, key.as_bytes())
        .map_err(|_| Error::from(ErrorKind::InvalidKeyFormat))?;
    Ok(Box::new(RingSigner(pair)))
}

struct RingVerifier {
    alg: SigningAlg,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let result = match (self.alg, self.key.kind()) {
            // Only the low-S form: its high-S twin would be a second valid encoding.
            (SigningAlg::Es256, _) if !low_s::is_low(signature) => Err(ring::error::Unspecified),
            (SigningAlg::Es256, DecodingKeyKind::SecretOrDer(point)) => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, signature)
            }
            (SigningAlg::EdDsa, DecodingKeyKind::SecretOrDer(raw)) => {
                sig::UnparsedPublicKey::new(&sig::ED25519, raw).verify(msg, signature)
            }
            (SigningAlg::Rs256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                sig::RsaPublicKeyComponents { n, e }.verify(
                    &sig::RSA_PKCS1_2048_8192_SHA256,
                    msg,
                    signature,
                )
            }
            (SigningAlg::Rs256, DecodingKeyKind::SecretOrDer(der)) => {
                sig::UnparsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, der)
                    .verify(msg, signature)
            }
            _ => Err(ring::error::Unspecified),
        };
        result.map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg.jwt_algorithm()
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let alg = supported(alg)?;
    let family_ok = matches!(
        (alg, key.family()),
        (SigningAlg::Es256, jsonwebtoken::AlgorithmFamily::Ec)
            | (SigningAlg::EdDsa, jsonwebtoken::AlgorithmFamily::Ed)
            | (SigningAlg::Rs256, jsonwebtoken::AlgorithmFamily::Rsa)
    );
    if !family_ok {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        alg,
        key: key.clone(),
    }))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let pair =
        sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let public = pair.public();
    let components: sig::RsaPublicKeyComponents<Vec<u8>> = public.into();
    Ok((components.n, components.e))
}

fn rsa_components_from_public_key(_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    // ring parses RSA public keys only for verification; Tokenmint builds RSA JWKs from
    // its own private keys, so this path is never needed.
    Err(ErrorKind::InvalidRsaKey("parsing RSA public keys is not supported".into()).into())
}

fn ec_components_from_private_key(
    pkcs8: &[u8],
    alg: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    if alg != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = KeyPair::from_pkcs8(SigningAlg::Es256, pkcs8)
        .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
    let point = pair.public_key_bytes();
    if point.len() != 65 || point[0] != 4 {
        return Err(ErrorKind::InvalidEcdsaKey.into());
    }
    let (x, y) = point[1..].split_at(32);
    Ok((EllipticCurve::P256, x.to_vec(), y.to_vec()))
}

fn ed_pub_components_from_private_key(
    pkcs8: &[u8],
    curve: &EllipticCurve,
) -> Result<Vec<u8>, Error> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = KeyPair::from_pkcs8(SigningAlg::EdDsa, pkcs8)
        .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?;
    Ok(pair.public_key_bytes())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(alg, data).as_ref().to_vec())
}
