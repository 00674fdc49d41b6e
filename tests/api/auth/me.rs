use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, assert_error, raw_jwt, spawn_app};

#[tokio::test]
async fn me_describes_the_bearer() {
    let app = spawn_app().await;
    app.create_user(
        "gina",
        "gina-password",
        &["read"],
        json!({"tenant": "acme"}),
    )
    .await;
    let login = app.log_in("gina", "gina-password").await;

    let response = app.get_me(login.access_token.as_str()).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "gina");
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["scope"], "read");
    assert_eq!(body["session_id"], login.session_id.as_str());
    assert_eq!(
        body["claims"],
        json!({"tenant": "acme"}),
        "claims holds only the custom claims"
    );
    assert!(body["sub"].as_str().is_some());
}

#[tokio::test]
async fn no_credential_is_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/api/me")).send().await.unwrap();
    let headers = assert_error(response, 401, "AUTHENTICATION_FAILED").await;
    assert_eq!(headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn garbage_authorization_headers_are_refused_as_invalid_tokens() {
    let app = spawn_app().await;
    for value in [
        "Basic YWRtaW46cHc=",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer ....",
        "bearer x.y",
    ] {
        let response = app
            .client
            .get(app.url("/api/me"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        let headers = assert_error(response, 401, "AUTHENTICATION_FAILED").await;
        assert_eq!(
            headers["www-authenticate"], r#"Bearer error="invalid_token""#,
            "{value}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_token_expired_with_no_skew_on_exp() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    assert_eq!(
        app.get_me(&token).await.status(),
        200,
        "verified once, and remembered"
    );

    app.clock.advance(Duration::from_secs(900));
    let response = app.get_me(&token).await;

    let headers = assert_error(response, 401, "TOKEN_EXPIRED").await;
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}

#[tokio::test]
async fn a_token_is_good_until_its_last_second() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.clock.advance(Duration::from_secs(898));
    assert_eq!(app.get_me(&token).await.status(), 200);
}

fn claims_now(app: &crate::helpers::TestApp) -> Value {
    let now = app.services.clock.now().timestamp();
    json!({
        "iss": "http://tokenmint.test", "sub": "00000000-0000-0000-0000-000000000001", "aud": "tokenmint",
        "exp": now + 600, "iat": now, "nbf": now, "jti": "j", "sid": "s", "scope": "",
        "roles": ["admin"], "username": "mallory"
    })
}

#[tokio::test]
async fn tokens_signed_by_us_for_another_issuer_or_audience_are_refused() {
    let app = spawn_app().await;
    let good = claims_now(&app);
    assert_eq!(
        app.get_me(&app.sign(&good)).await.status(),
        200,
        "the baseline verifies"
    );

    for (field, value) in [
        ("iss", json!("http://elsewhere")),
        ("aud", json!("other-api")),
        ("exp", Value::Null),
    ] {
        let mut claims = good.clone();
        claims[field] = value;
        assert_error(
            app.get_me(&app.sign(&claims)).await,
            401,
            "AUTHENTICATION_FAILED",
        )
        .await;
    }
}

#[tokio::test]
async fn nbf_and_iat_tolerate_the_clock_skew_and_no_more() {
    let app = spawn_app().await;
    let now = claims_now(&app)["iat"].as_i64().unwrap();
    for field in ["nbf", "iat"] {
        let mut within = claims_now(&app);
        within[field] = json!(now + 50);
        assert_eq!(
            app.get_me(&app.sign(&within)).await.status(),
            200,
            "{field} within skew"
        );
        let mut beyond = claims_now(&app);
        beyond[field] = json!(now + 120);
        assert_error(
            app.get_me(&app.sign(&beyond)).await,
            401,
            "AUTHENTICATION_FAILED",
        )
        .await;
    }
}

#[tokio::test]
async fn a_token_refused_as_not_yet_valid_is_accepted_once_its_time_comes() {
    let app = spawn_app().await;
    let mut claims = claims_now(&app);
    let now = claims["iat"].as_i64().unwrap();
    claims["nbf"] = json!(now + 120);
    let token = app.sign(&claims);
    assert_error(app.get_me(&token).await, 401, "AUTHENTICATION_FAILED").await;
    assert_error(app.get_me(&token).await, 401, "AUTHENTICATION_FAILED").await;

    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.get_me(&token).await.status(), 200);
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let app = spawn_app().await;
    let real = app.admin_token().await;
    let kid = app.current_kid();
    let claims = crate::helpers::jwt_part(&real, 1);
    let claims = Value::Object(claims);
    let jwk: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_jwk_json = serde_json::to_vec(&jwk["keys"][0]).unwrap();

    let hs256_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public_jwk_json);
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let hs_unsigned = raw_jwt(&hs_header, &claims, b"");
    let hs_input = hs_unsigned.trim_end_matches('.');
    let hs_sig = ring::hmac::sign(&hs256_key, hs_input.as_bytes());

    let mut tampered_claims = claims.clone();
    tampered_claims["roles"] = json!(["admin", "root"]);
    let real_sig = real.split('.').nth(2).unwrap();
    let tampered = format!(
        "{}.{}",
        raw_jwt(
            &crate::helpers::jwt_part(&real, 0).into(),
            &tampered_claims,
            b""
        )
        .trim_end_matches('.'),
        real_sig
    );

    let forgeries = [
        (
            "alg none",
            raw_jwt(
                &json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
                &claims,
                b"",
            ),
        ),
        (
            "HS256 keyed with the public key",
            format!("{hs_input}.{}", base64_url(hs_sig.as_ref())),
        ),
        (
            "unknown kid",
            raw_jwt(
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}),
                &claims,
                &[0u8; 64],
            ),
        ),
        ("tampered payload", tampered),
        (
            "typ JWT",
            raw_jwt(
                &json!({"alg": "ES256", "typ": "JWT", "kid": kid}),
                &claims,
                &[1u8; 64],
            ),
        ),
        ("truncated", real[..real.len() - 10].to_owned()),
    ];
    for (what, token) in forgeries {
        let response = app.get_me(&token).await;
        assert_eq!(response.status(), 401, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "AUTHENTICATION_FAILED", "{what}");
    }
    assert_eq!(
        app.get_me(&real).await.status(),
        200,
        "the real token still works"
    );
    let _ = ADMIN_PASSWORD;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
