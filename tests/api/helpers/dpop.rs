//! A DPoP client for tests (RFC 9449): a key of its own (P-256 or Ed25519, on ring) that
//! signs proofs, with its thumbprint computed here independently of the server.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use serde_json::{Value, json};

use super::TestApp;

/// The issuer the test servers are configured with: the public URL proofs name.
pub const PUBLIC_URL: &str = "http://tokenmint.test";

/// A client's DPoP key.
pub enum DpopKey {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl DpopKey {
    pub fn p256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::P256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    pub fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::P256(_) => "ES256",
            Self::Ed25519(_) => "EdDSA",
        }
    }

    pub fn jwk(&self) -> Value {
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

    /// RFC 7638: the required members in lexicographic order, no whitespace, hashed.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let member = |name: &str| jwk[name].as_str().unwrap().to_owned();
        let canonical = match self {
            Self::P256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                member("x"),
                member("y")
            ),
            Self::Ed25519(_) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, member("x"))
            }
        };
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    /// A JWS of `header` and `claims` signed by this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
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

    /// A proof with these claims and the right header.
    pub fn proof_of(&self, claims: &Value) -> String {
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()}),
            claims,
        )
    }
}

/// `ath`: the access token's SHA-256, base64url.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

impl TestApp {
    /// Good claims of a proof for `method` and `path` now (the server's clock), with a
    /// fresh `jti`, `ath` for `token` if given.
    pub fn proof_claims(&self, method: &str, path: &str, token: Option<&str>) -> Value {
        let mut claims = json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": method,
            "htu": format!("{PUBLIC_URL}{path}"),
            "iat": self.clock_now().timestamp(),
        });
        if let Some(token) = token {
            claims["ath"] = json!(ath(token));
        }
        claims
    }

    /// A good proof by `key` for `method` and `path` (and `token` at a resource).
    pub fn proof(&self, key: &DpopKey, method: &str, path: &str, token: Option<&str>) -> String {
        key.proof_of(&self.proof_claims(method, path, token))
    }

    /// `POST /api/login` with a proof by `key`.
    pub async fn dpop_login(
        &self,
        key: &DpopKey,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/login"))
            .header("dpop", self.proof(key, "POST", "/api/login", None))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("request")
    }

    /// `POST /api/refresh-token` with a proof by `key`.
    pub async fn dpop_refresh(&self, key: &DpopKey, refresh_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/refresh-token"))
            .header("dpop", self.proof(key, "POST", "/api/refresh-token", None))
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .expect("request")
    }

    /// A request with `Authorization: DPoP <token>` and a proof by `key` for it.
    pub async fn dpop_call(
        &self,
        key: &DpopKey,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let proof = self.proof(
            key,
            method.as_str(),
            path.split('?').next().unwrap(),
            Some(token),
        );
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }
}
