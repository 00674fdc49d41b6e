use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde_json::{Map, Value};

use crate::helpers::{ADMIN_PASSWORD, TestApp, spawn_app};

pub async fn fetch_jwks(app: &TestApp) -> Value {
    get_jwks(app).await.json().await.unwrap()
}

/// `GET /.well-known/jwks.json`, asserting 200.
async fn get_jwks(app: &TestApp) -> reqwest::Response {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// The ETag of the JWKS document served now.
pub async fn jwks_etag(app: &TestApp) -> reqwest::header::HeaderValue {
    get_jwks(app).await.headers()["etag"].clone()
}

/// Revalidates a copy cached with `etag` after the keys changed: 200 (not 304) with a new
/// ETag. Returns the new document.
pub async fn jwks_after_change(app: &TestApp, etag: &reqwest::header::HeaderValue) -> Value {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the cached copy is stale");
    assert_ne!(&response.headers()["etag"], etag);
    response.json().await.unwrap()
}

/// Verifies `token` with jwt-simple (an independent implementation) using only the
/// served JWKS, as a backend would.
pub fn verify_with_jwks(jwks: &Value, token: &str, issuer: &str) -> JWTClaims<Map<String, Value>> {
    verify_jwt_with_jwks(jwks, token, issuer, "at+jwt", "tokenmint")
}

/// Like [`verify_with_jwks`], for a JWT of type `typ` for `audience` (e.g. a SET).
pub fn verify_jwt_with_jwks(
    jwks: &Value,
    token: &str,
    issuer: &str,
    typ: &str,
    audience: &str,
) -> JWTClaims<Map<String, Value>> {
    let metadata = Token::decode_metadata(token).expect("header");
    let kid = metadata.key_id().expect("kid");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("kid in JWKS");
    let b64 = |field: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[field].as_str().unwrap())
            .unwrap()
    };
    let options = VerificationOptions {
        required_signature_type: Some(typ.into()),
        allowed_issuers: Some(HashSet::from([issuer.to_owned()])),
        allowed_audiences: Some(HashSet::from([audience.to_owned()])),
        ..Default::default()
    };
    match (jwk["kty"].as_str().unwrap(), jwk["alg"].as_str().unwrap()) {
        ("EC", "ES256") => {
            let mut point = vec![4u8];
            point.extend(b64("x"));
            point.extend(b64("y"));
            ES256PublicKey::from_bytes(&point)
                .unwrap()
                .verify_token(token, Some(options))
                .expect("verifies")
        }
        ("OKP", "EdDSA") => Ed25519PublicKey::from_bytes(&b64("x"))
            .unwrap()
            .verify_token(token, Some(options))
            .expect("verifies"),
        ("RSA", "RS256") => RS256PublicKey::from_components(&b64("n"), &b64("e"))
            .unwrap()
            .verify_token(token, Some(options))
            .expect("verifies"),
        other => panic!("unexpected key type {other:?}"),
    }
}

#[tokio::test]
async fn an_issued_token_verifies_with_another_library_from_the_served_jwks() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let jwks = fetch_jwks(&app).await;
    let claims = verify_with_jwks(&jwks, &token, "http://tokenmint.test");

    assert_eq!(claims.custom["username"], "admin");
}

#[tokio::test]
async fn jwks_publishes_the_current_and_the_next_key_and_nothing_private() {
    let app = spawn_app().await;
    let jwks = fetch_jwks(&app).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "current and next");
    let key = keys
        .iter()
        .find(|k| k["kid"] == app.current_kid().as_str())
        .expect("the signing key");
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    for key in keys {
        assert!(
            key.get("d").is_none() && key.get("p").is_none(),
            "no private part"
        );
    }
}

#[tokio::test]
async fn jwks_is_cacheable_and_revalidates_with_304() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.len() > 2,
        "strong ETag: {etag}"
    );

    let cached = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.headers()["etag"], etag.as_str());
    assert!(cached.bytes().await.unwrap().is_empty());

    let stale = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn discovery_leads_from_the_issuer_to_the_keys() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], "http://tokenmint.test");
    assert_eq!(
        doc["jwks_uri"],
        "http://tokenmint.test/.well-known/jwks.json"
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let _ = ADMIN_PASSWORD;
}
