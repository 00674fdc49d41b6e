//! A DPoP proof (RFC 9449 section 4) checked against the request it came with: one pure
//! function, [`check`], on `ring`. Nothing of a proof is trusted before its signature is.
//!
//! | What | Rule |
//! |---|---|
//! | form | a compact JWS of three base64url parts, at most [`MAX_PROOF_LEN`] bytes |
//! | header | `typ` is `dpop+jwt`; `alg` is `ES256` or `EdDSA`; no `crit` |
//! | key | `jwk` is a public key of that algorithm: `EC` `P-256` (`x`, `y`) or `OKP` `Ed25519` (`x`); no private or symmetric member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) |
//! | signature | valid for that key over the first two parts |
//! | `jti` | a string of 1 to [`MAX_JTI_LEN`] characters (its single use is the caller's) |
//! | `htm` | the request's method, exactly |
//! | `htu` | the public URL of the request: scheme and host compared case-insensitively, default port dropped, query and fragment ignored; the path exactly (no slash added or stripped) |
//! | `iat` | in [now - [`PAST`], now + [`FUTURE`]] |
//! | `ath` | at a resource: base64url(SHA-256(access token)); at a token endpoint: not checked |
//! | `nonce` | returned for the caller to check ([`super::Nonces`]) |

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use serde_json::{Map, Value};

/// The longest proof read.
pub const MAX_PROOF_LEN: usize = 4096;
/// The longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;
/// How old a proof may be (seconds).
pub const PAST: i64 = 300;
/// How far in the future a proof's `iat` may be (seconds): clocks of browsers drift.
pub const FUTURE: i64 = 60;
/// The algorithms a proof may use, as discovery lists them.
pub const ALGS: [&str; 2] = ["ES256", "EdDSA"];

/// The JWK thumbprint (RFC 7638) of a proof's key: what `cnf.jkt` binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jkt(String);

impl Jkt {
    /// A thumbprint as stored or carried in `cnf.jkt`.
    pub fn from_claim(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The base64url form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Jkt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the request says a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's public URL (`htu`), already normalized by [`public_url`].
    pub url: &'a url::Url,
    /// Now.
    pub now: DateTime<Utc>,
    /// At a resource, the access token presented with the proof (`ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every rule of the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The key's thumbprint.
    pub jkt: Jkt,
    /// The proof's id.
    pub jti: String,
    /// Its issue time, seconds.
    pub iat: i64,
    /// The nonce it carries, if any.
    pub nonce: Option<String>,
}

/// Why a proof was refused: a text for a person (never the proof itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub &'static str);

/// The public URL of a request: `issuer` (the service's public base URL, which may carry
/// a path prefix) followed by the request's `path`, normalized as the module doc says.
/// `None` if the issuer is not an `http(s)` URL.
pub fn public_url(issuer: &str, path: &str) -> Option<url::Url> {
    let joined = format!("{}{path}", issuer.trim_end_matches('/'));
    normalized(&joined)
}

/// A URL as `htu` is compared: parsed (scheme and host lowercased, default port
/// dropped), without query and fragment; `http` and `https` only, no user info.
fn normalized(s: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.host().is_none()
    {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

/// Checks `proof` against what the request says (see the module doc).
pub fn check(proof: &str, expected: &Expected<'_>) -> Result<Checked, Refused> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(Refused("the DPoP proof is too long"));
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused("the DPoP proof is not a compact JWS"));
    };
    let header = json_part(header_b64)?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Refused("the DPoP proof's typ is not dpop+jwt"));
    }
    if header.contains_key("crit") {
        return Err(Refused("the DPoP proof has critical header parameters"));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => Alg::Es256,
        Some("EdDSA") => Alg::EdDsa,
        _ => return Err(Refused("the DPoP proof's alg is not ES256 or EdDSA")),
    };
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(Refused("the DPoP proof carries no jwk"));
    };
    let key = PublicKey::from_jwk(jwk, alg)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| Refused("the DPoP proof's signature is not base64url"))?;
    let signed = &proof[..header_b64.len() + 1 + claims_b64.len()];
    key.verify(signed.as_bytes(), &signature)?;

    let claims = json_part(claims_b64)?;
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() && jti.chars().count() <= MAX_JTI_LEN => jti.to_owned(),
        _ => return Err(Refused("the DPoP proof's jti is missing or too long")),
    };
    if claims.get("htm").and_then(Value::as_str) != Some(expected.method) {
        return Err(Refused("the DPoP proof's htm is not the request's method"));
    }
    let htu = claims
        .get("htu")
        .and_then(Value::as_str)
        .and_then(normalized);
    if htu.as_ref() != Some(expected.url) {
        return Err(Refused("the DPoP proof's htu is not the request's URL"));
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }),
        _ => None,
    }
    .ok_or(Refused("the DPoP proof's iat is missing"))?;
    let now = expected.now.timestamp();
    if iat < now.saturating_sub(PAST) {
        return Err(Refused("the DPoP proof is too old"));
    }
    if iat > now.saturating_add(FUTURE) {
        return Err(Refused("the DPoP proof is issued in the future"));
    }
    if let Some(token) = expected.access_token {
        let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            token.as_bytes(),
        ));
        if claims.get("ath").and_then(Value::as_str) != Some(ath.as_str()) {
            return Err(Refused(
                "the DPoP proof's ath is not the access token's hash",
            ));
        }
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(Refused("the DPoP proof's nonce is not a string")),
    };
    Ok(Checked {
        jkt: key.thumbprint(),
        jti,
        iat,
        nonce,
    })
}

fn json_part(b64: &str) -> Result<Map<String, Value>, Refused> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| Refused("a part of the DPoP proof is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refused("a part of the DPoP proof is not a JSON object")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Es256,
    EdDsa,
}

/// A proof's public key, as its JWK gives it.
enum PublicKey {
    /// P-256: the coordinates, each 32 bytes, as base64url (for the thumbprint) and raw.
    P256 {
        x: String,
        y: String,
        point: Vec<u8>,
    },
    /// Ed25519: the key, 32 bytes.
    Ed25519 { x: String, raw: Vec<u8> },
}

/// Members of a JWK that only private or symmetric keys have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl PublicKey {
    fn from_jwk(jwk: &Map<String, Value>, alg: Alg) -> Result<Self, Refused> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(Refused("the DPoP proof's jwk is not a public key"));
        }
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let coordinate = |name: &str| -> Result<(String, Vec<u8>), Refused> {
            let b64 = text(name).ok_or(Refused("the DPoP proof's jwk lacks a coordinate"))?;
            let raw = URL_SAFE_NO_PAD
                .decode(b64)
                .ok()
                .filter(|raw| raw.len() == 32)
                .ok_or(Refused("the DPoP proof's jwk has a malformed coordinate"))?;
            Ok((b64.to_owned(), raw))
        };
        match (alg, text("kty"), text("crv")) {
            (Alg::Es256, Some("EC"), Some("P-256")) => {
                let (x, x_raw) = coordinate("x")?;
                let (y, y_raw) = coordinate("y")?;
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x_raw);
                point.extend_from_slice(&y_raw);
                Ok(Self::P256 { x, y, point })
            }
            (Alg::EdDsa, Some("OKP"), Some("Ed25519")) => {
                let (x, raw) = coordinate("x")?;
                Ok(Self::Ed25519 { x, raw })
            }
            _ => Err(Refused("the DPoP proof's jwk does not fit its alg")),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Refused> {
        let verified = match self {
            Self::P256 { point, .. } => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
            }
            Self::Ed25519 { raw, .. } => {
                UnparsedPublicKey::new(&ED25519, raw).verify(message, signature)
            }
        };
        verified.map_err(|_| Refused("the DPoP proof's signature is not valid"))
    }

    /// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
    /// The members are base64url and fixed names: nothing to escape.
    fn thumbprint(&self) -> Jkt {
        let canonical = match self {
            Self::P256 { x, y, .. } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            Self::Ed25519 { x, .. } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        };
        Jkt(URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        )))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use ring::rand::SystemRandom;
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
    };
    use serde_json::json;

    /// A client's key, for tests: signs proofs.
    pub(crate) enum TestKey {
        P256(EcdsaKeyPair),
        Ed25519(Ed25519KeyPair),
    }

    impl TestKey {
        pub(crate) fn p256() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Self::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap(),
            )
        }

        pub(crate) fn ed25519() -> Self {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        }

        pub(crate) fn alg(&self) -> &'static str {
            match self {
                Self::P256(_) => "ES256",
                Self::Ed25519(_) => "EdDSA",
            }
        }

        pub(crate) fn jwk(&self) -> Value {
            match self {
                Self::P256(k) => {
                    let point = k.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256",
                           "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                           "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
                }
                Self::Ed25519(k) => json!({"kty": "OKP", "crv": "Ed25519",
                                           "x": URL_SAFE_NO_PAD.encode(k.public_key().as_ref())}),
            }
        }

        pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = match self {
                Self::P256(k) => k
                    .sign(&SystemRandom::new(), signed.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
                Self::Ed25519(k) => k.sign(signed.as_bytes()).as_ref().to_vec(),
            };
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
        }

        pub(crate) fn proof(&self, claims: &Value) -> String {
            self.sign(
                &json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()}),
                claims,
            )
        }
    }

    const ISSUER: &str = "https://ID.Example.com:443/auth/";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn claims(iat: i64) -> Value {
        json!({"jti": "j-1", "htm": "POST", "htu": "https://id.example.com/auth/api/login", "iat": iat})
    }

    fn run(proof: &str, access_token: Option<&str>) -> Result<Checked, Refused> {
        let url = public_url(ISSUER, "/api/login").unwrap();
        check(
            proof,
            &Expected {
                method: "POST",
                url: &url,
                now: now(),
                access_token,
            },
        )
    }

    #[test]
    fn a_good_proof_of_either_alg_passes_with_its_thumbprint() {
        for key in [TestKey::p256(), TestKey::ed25519()] {
            let checked = run(&key.proof(&claims(now().timestamp())), None).unwrap();
            assert_eq!(checked.jti, "j-1");
            assert_eq!(checked.nonce, None);
            assert_eq!(checked.jkt.as_str().len(), 43);
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 section 3.1 computes it for an RSA key; RFC 8037 appendix A.3 gives
        // this Ed25519 one.
        let key = PublicKey::Ed25519 {
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
            raw: vec![],
        };
        assert_eq!(
            key.thumbprint().as_str(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn htu_is_compared_after_normalization_and_no_further() {
        let key = TestKey::p256();
        let with = |htu: &str| {
            let mut c = claims(now().timestamp());
            c["htu"] = json!(htu);
            run(&key.proof(&c), None)
        };
        for same in [
            "https://id.example.com/auth/api/login",
            "HTTPS://ID.EXAMPLE.COM/auth/api/login",
            "https://id.example.com:443/auth/api/login",
            "https://id.example.com/auth/api/login?x=1",
            "https://id.example.com/auth/api/login#f",
        ] {
            assert!(with(same).is_ok(), "{same}");
        }
        for other in [
            "https://id.example.com/auth/api/login/",
            "https://id.example.com/api/login",
            "https://id.example.com/auth/api/LOGIN",
            "http://id.example.com/auth/api/login",
            "https://id.example.com:8443/auth/api/login",
            "https://id.example.com.evil/auth/api/login",
            "https://user@id.example.com/auth/api/login",
            "https://id.example.com//auth/api/login",
            "/auth/api/login",
            "",
        ] {
            assert_eq!(
                with(other),
                Err(Refused("the DPoP proof's htu is not the request's URL")),
                "{other}"
            );
        }
    }

    #[test]
    fn iat_is_accepted_from_300_s_ago_to_60_s_ahead() {
        let key = TestKey::ed25519();
        let at = |offset: i64| run(&key.proof(&claims(now().timestamp() + offset)), None);
        for ok in [-300, -200, 0, 60] {
            assert!(at(ok).is_ok(), "{ok}");
        }
        assert_eq!(at(-301), Err(Refused("the DPoP proof is too old")));
        assert_eq!(at(-400), Err(Refused("the DPoP proof is too old")));
        assert_eq!(
            at(61),
            Err(Refused("the DPoP proof is issued in the future"))
        );
        assert_eq!(
            at(120),
            Err(Refused("the DPoP proof is issued in the future"))
        );
    }

    #[test]
    fn ath_must_be_the_hash_of_the_token_at_a_resource() {
        let key = TestKey::p256();
        let token = "eyJ.a.b";
        let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            token.as_bytes(),
        ));
        let mut c = claims(now().timestamp());
        assert!(run(&key.proof(&c), Some(token)).is_err(), "missing");
        c["ath"] = json!("x");
        assert!(run(&key.proof(&c), Some(token)).is_err(), "wrong");
        c["ath"] = json!(ath);
        assert!(run(&key.proof(&c), Some(token)).is_ok());
    }

    /// Flawed proofs, each refused for its reason.
    pub(crate) fn flawed(key: &TestKey, good: &Value) -> Vec<(&'static str, String)> {
        let header = json!({"typ": "dpop+jwt", "alg": key.alg(), "jwk": key.jwk()});
        let with_header = |f: &dyn Fn(&mut Value)| {
            let mut h = header.clone();
            f(&mut h);
            key.sign(&h, good)
        };
        let with_claims = |f: &dyn Fn(&mut Value)| {
            let mut c = good.clone();
            f(&mut c);
            key.proof(&c)
        };
        let other = TestKey::p256();
        let proof = key.proof(good);
        let (signed, _) = proof.rsplit_once('.').unwrap();
        vec![
            ("wrong typ", with_header(&|h| h["typ"] = json!("jwt"))),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(
                        json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()}).to_string()
                    ),
                    URL_SAFE_NO_PAD.encode(good.to_string())
                ),
            ),
            ("alg HS256", with_header(&|h| h["alg"] = json!("HS256"))),
            (
                "private key (d)",
                with_header(&|h| h["jwk"]["d"] = json!("AAAA")),
            ),
            (
                "symmetric key",
                with_header(&|h| h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"})),
            ),
            (
                "no jwk",
                with_header(&|h| {
                    h.as_object_mut().unwrap().remove("jwk");
                }),
            ),
            (
                "another key's signature",
                format!("{signed}.{}", other.proof(good).rsplit_once('.').unwrap().1),
            ),
            ("wrong htm", with_claims(&|c| c["htm"] = json!("GET"))),
            (
                "wrong htu",
                with_claims(&|c| c["htu"] = json!("https://evil.example/api/login")),
            ),
            (
                "no jti",
                with_claims(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
            (
                "no iat",
                with_claims(&|c| {
                    c.as_object_mut().unwrap().remove("iat");
                }),
            ),
            ("crit", with_header(&|h| h["crit"] = json!(["exp"]))),
        ]
    }

    #[test]
    fn flawed_proofs_are_refused() {
        for key in [TestKey::p256(), TestKey::ed25519()] {
            for (what, proof) in flawed(&key, &claims(now().timestamp())) {
                assert!(run(&proof, None).is_err(), "{} {what}", key.alg());
            }
        }
    }

    proptest! {
        /// Hostile proofs: arbitrary text, and a good proof with any byte changed, never
        /// pass and never panic.
        #[test]
        fn hostile_proofs_never_pass(junk in "\\PC{0,600}", flip in 0usize..2000, byte in any::<u8>()) {
            prop_assert!(run(&junk, None).is_err());
            let key = TestKey::p256();
            let proof = key.proof(&claims(now().timestamp()));
            let mut bytes = proof.clone().into_bytes();
            let i = flip % bytes.len();
            if bytes[i] != byte {
                bytes[i] = byte;
                if let Ok(tampered) = String::from_utf8(bytes) {
                    // A change in the signature's last character can leave its bits
                    // unchanged (base64url padding bits): that is the same proof.
                    let same_signature = i + 1 == proof.len()
                        && URL_SAFE_NO_PAD.decode(&tampered[proof.rfind('.').unwrap() + 1..]).ok()
                            == URL_SAFE_NO_PAD.decode(&proof[proof.rfind('.').unwrap() + 1..]).ok();
                    if !same_signature {
                        prop_assert!(run(&tampered, None).is_err(), "{}", tampered);
                    }
                }
            }
        }
    }
}
