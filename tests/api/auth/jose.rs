//! The edges of JOSE (RFC 7515, RFC 8725): malleable signatures, critical headers,
//! impossible lifetimes, oversized tokens, and keys planted in the database.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Planted, TestApp, assert_error, sign_jws, spawn_app};

/// The order of P-256, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `a - b` for 256-bit big-endian numbers with `a >= b`.
fn sub(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    out
}

fn signature(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().unwrap())
        .unwrap()
}

fn is_low_s(signature: &[u8]) -> bool {
    let half = {
        // floor(n / 2): shift right by one bit.
        let mut h = [0u8; 32];
        let mut carry = 0u8;
        for (i, byte) in N.iter().enumerate() {
            h[i] = (byte >> 1) | (carry << 7);
            carry = byte & 1;
        }
        h
    };
    signature[32..] <= half[..]
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get_me(token).await.status().as_u16()
}

#[tokio::test]
async fn every_signature_the_service_makes_is_low_s() {
    let app = spawn_app().await;
    let claims = app.claims("someone", 60);
    for _ in 0..64 {
        let token = app.sign(&claims);
        assert!(
            is_low_s(&signature(&token)),
            "a high-S signature was issued"
        );
    }
}

#[tokio::test]
async fn the_high_s_twin_of_a_valid_signature_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    assert_eq!(me_status(&app, &token).await, 200);

    let sig = signature(&token);
    let mut twin = sig[..32].to_vec();
    twin.extend_from_slice(&sub(&N, &sig[32..]));
    let (input, _) = token.rsplit_once('.').unwrap();
    let malleated = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&twin));
    assert_ne!(malleated, token);

    assert_error(app.get_me(&malleated).await, 401, "AUTHENTICATION_FAILED").await;
    assert_eq!(me_status(&app, &token).await, 200);
}

#[tokio::test]
async fn critical_headers_and_unencoded_payloads_are_refused() {
    let app = spawn_app().await;
    let (kid, pair) = app.plant_key(Planted::Sealed).await;
    let claims = app.claims("someone", 60);
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
    assert_eq!(
        me_status(&app, &sign_jws(&pair, &header, &claims)).await,
        200,
        "the planted key is a real, sealed key: its tokens verify"
    );

    for extra in [
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": ["urn:example:unknown"], "urn:example:unknown": true}),
        json!({"crit": []}),
        json!({"b64": false, "crit": ["b64"]}),
        json!({"b64": false}),
    ] {
        let mut header = header.clone();
        header
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let token = sign_jws(&pair, &header, &claims);
        assert_error(app.get_me(&token).await, 401, "AUTHENTICATION_FAILED").await;
    }
}

#[tokio::test]
async fn a_token_claiming_a_longer_life_than_any_issued_is_refused() {
    let app = spawn_app().await;
    let ttl = i64::try_from(app.services.settings.access_ttl.as_secs()).unwrap();
    assert_eq!(me_status(&app, &app.sign(&app.claims("a", ttl))).await, 200);

    for lifetime in [ttl + 1, 100 * 365 * 24 * 3600, i64::MAX] {
        let token = app.sign(&app.claims("a", lifetime));
        assert_error(app.get_me(&token).await, 401, "AUTHENTICATION_FAILED").await;
        // Nothing to revoke either: it was never a token of ours.
        let revoke = app
            .client
            .post(app.url("/api/token/revoke"))
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(revoke.status(), 200);
    }
}

#[tokio::test]
async fn a_user_too_big_for_a_token_is_refused_so_every_token_issued_is_accepted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let long = |prefix: &str, i: usize| format!("{prefix}{i:02}{}", "x".repeat(60));
    let roles: Vec<String> = (0..100).map(|i| long("r", i)).collect();
    let scopes: Vec<String> = (0..100).map(|i| long("s", i)).collect();
    let claims = json!({"blob": "y".repeat(8 * 1024 - 20)});

    let refused = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(
                json!({"username": "zed", "password": "zed-password", "roles": roles,
                        "scopes": scopes, "claims": claims}),
            ),
        )
        .await;
    assert_error(refused, 400, "INVALID_REQUEST").await;

    // The largest user that is accepted gets tokens that every endpoint accepts.
    let created = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "zed", "password": "zed-password",
                        "roles": &roles[..40], "scopes": &scopes[..40]})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bigger = app
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{id}"),
            &admin,
            Some(json!({"claims": claims})),
        )
        .await;
    assert_error(bigger, 400, "INVALID_REQUEST").await;

    let scope_names: Vec<&str> = scopes[..40].iter().map(String::as_str).collect();
    app.register_login_client(&"c".repeat(128), &scope_names)
        .await;
    let login = app
        .post_login(
            &json!({"username": "zed", "password": "zed-password", "client_id": "c".repeat(128)}),
        )
        .await;
    assert_eq!(login.status(), 200);
    let token = login.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me_status(&app, &token).await, 200);
    assert!(app.is_active(&token).await);
}

#[tokio::test]
async fn a_key_planted_in_the_database_is_trusted_only_if_its_sealed_private_part_matches() {
    let app = spawn_app().await;
    let jwks = || async {
        app.client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    for how in [
        Planted::Unsealed,
        Planted::SealedOtherKey,
        Planted::SealedOtherKek,
    ] {
        let (kid, pair) = app.plant_key(how).await;
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        let forged = sign_jws(&pair, &header, &app.claims("someone", 60));
        assert_error(app.get_me(&forged).await, 401, "AUTHENTICATION_FAILED").await;
        let published = jwks().await;
        assert!(
            !published["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid.as_str()),
            "{how:?}: not published"
        );
    }
    // The service's own keys still sign and verify.
    let token = app.admin_token().await;
    assert_eq!(me_status(&app, &token).await, 200);
}
