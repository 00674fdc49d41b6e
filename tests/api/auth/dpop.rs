//! DPoP (RFC 9449): tokens bound to a key the client holds. A proof is checked at every
//! door; a bound token is refused as `Bearer` at every door; a bound session refreshes
//! only with its key; nonces when configured.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::dpop::{DpopKey, PUBLIC_URL, ath};
use crate::helpers::{ADMIN_PASSWORD, TestApp, assert_error, jwt_part, spawn_app, spawn_app_with};

const PASSWORD: &str = "dpop-password";

/// A login of `dana` bound to `key`: the answer's body.
async fn bound_login(app: &TestApp, key: &DpopKey) -> Value {
    let response = app.dpop_login(key, "dana", PASSWORD).await;
    assert_eq!(response.status(), 200, "bound login");
    response.json().await.unwrap()
}

/// `POST /api/login` of `dana` with this `DPoP` header.
async fn login_with_proof(app: &TestApp, proof: impl Into<String>) -> reqwest::Response {
    app.client
        .post(app.url("/api/login"))
        .header("dpop", proof.into())
        .json(&json!({"username": "dana", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

fn access(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

/// Asserts a 401 with a `DPoP` challenge naming `error`.
async fn assert_dpop_challenge(response: reqwest::Response, code: &str, error: &str) {
    let headers = assert_error(response, 401, code).await;
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert_eq!(
        challenge,
        format!(r#"DPoP error="{error}", algs="ES256 EdDSA""#)
    );
}

#[tokio::test]
async fn a_login_with_a_proof_binds_its_tokens_and_me_takes_them_only_with_the_key() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    for key in [DpopKey::p256(), DpopKey::ed25519()] {
        let body = bound_login(&app, &key).await;
        assert_eq!(body["token_type"], "DPoP");
        let token = access(&body);
        assert_eq!(jwt_part(token, 1)["cnf"], json!({"jkt": key.thumbprint()}));

        let me = app
            .dpop_call(&key, Method::GET, "/api/me", token, None)
            .await;
        assert_eq!(me.status(), 200, "with its key");

        // As Bearer (a copy without the key): refused, with a DPoP challenge.
        assert_dpop_challenge(
            app.get_me(token).await,
            "AUTHENTICATION_FAILED",
            "invalid_token",
        )
        .await;
        // As DPoP without a proof, or with another key's proof.
        let no_proof = app
            .client
            .get(app.url("/api/me"))
            .header("authorization", format!("DPoP {token}"))
            .send()
            .await
            .unwrap();
        assert_dpop_challenge(no_proof, "AUTHENTICATION_FAILED", "invalid_token").await;
        let thief = DpopKey::p256();
        let other_key = app
            .dpop_call(&thief, Method::GET, "/api/me", token, None)
            .await;
        assert_dpop_challenge(other_key, "AUTHENTICATION_FAILED", "invalid_token").await;
        // A proof without ath, or for another token.
        for claims in [
            app.proof_claims("GET", "/api/me", None),
            app.proof_claims("GET", "/api/me", Some("another.token.here")),
        ] {
            let response = app
                .client
                .get(app.url("/api/me"))
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", key.proof_of(&claims))
                .send()
                .await
                .unwrap();
            assert_dpop_challenge(response, "INVALID_DPOP_PROOF", "invalid_dpop_proof").await;
        }
    }
    // An unbound token as DPoP is refused too; as Bearer it works as before.
    let plain = app.log_in("dana", PASSWORD).await;
    assert_eq!(app.get_me(&plain.access_token).await.status(), 200);
    let key = DpopKey::p256();
    let as_dpop = app
        .dpop_call(&key, Method::GET, "/api/me", &plain.access_token, None)
        .await;
    assert_dpop_challenge(as_dpop, "AUTHENTICATION_FAILED", "invalid_token").await;
}

/// Nine kinds of flawed proof (and more), each refused at the login with 400
/// `INVALID_DPOP_PROOF`, before any password is checked: no session is opened.
#[tokio::test]
async fn flawed_proofs_are_refused_at_the_token_endpoints() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let key = DpopKey::p256();
    let good = app.proof_claims("POST", "/api/login", None);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk()});
    let with_header = |f: &dyn Fn(&mut Value)| {
        let mut h = header.clone();
        f(&mut h);
        key.sign(&h, &good)
    };
    let with_claims = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        key.proof_of(&c)
    };
    let unsigned = |alg: &str| {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk()})),
            b64(&good)
        )
    };
    let other = DpopKey::p256();
    let good_proof = key.proof_of(&good);
    let (signed, _) = good_proof.rsplit_once('.').unwrap();
    let foreign_signature = other.proof_of(&good).rsplit_once('.').unwrap().1.to_owned();
    let flawed: Vec<(&str, String)> = vec![
        ("typ jwt", with_header(&|h| h["typ"] = json!("jwt"))),
        ("alg none", unsigned("none")),
        ("alg HS256", unsigned("HS256")),
        (
            "a private key (d)",
            with_header(&|h| h["jwk"]["d"] = json!("AAAA")),
        ),
        (
            "a symmetric key",
            with_header(&|h| h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"})),
        ),
        (
            "another key's signature",
            format!("{signed}.{foreign_signature}"),
        ),
        ("htm GET", with_claims(&|c| c["htm"] = json!("GET"))),
        (
            "htu of another service",
            with_claims(&|c| c["htu"] = json!("https://evil.example/api/login")),
        ),
        (
            "htu of the internal address",
            with_claims(&|c| c["htu"] = json!(format!("{}/api/login", "http://127.0.0.1:8080"))),
        ),
        (
            "htu with a slash added",
            with_claims(&|c| c["htu"] = json!(format!("{PUBLIC_URL}/api/login/"))),
        ),
        (
            "no jti",
            with_claims(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("not a JWS", "not-a-proof".to_owned()),
    ];
    for (what, proof) in flawed {
        let response = login_with_proof(&app, proof).await;
        assert_error(response, 400, "INVALID_DPOP_PROOF").await;
        let _ = what;
    }
    // Two DPoP headers are one too many.
    let two = app
        .client
        .post(app.url("/api/login"))
        .header("dpop", app.proof(&key, "POST", "/api/login", None))
        .header("dpop", app.proof(&key, "POST", "/api/login", None))
        .json(&json!({"username": "dana", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_error(two, 400, "INVALID_DPOP_PROOF").await;
    // The public URL counts, scheme and host in any case, the default port or not.
    for htu in [
        "HTTP://TOKENMINT.TEST/api/login",
        "http://tokenmint.test:80/api/login",
    ] {
        let mut claims = app.proof_claims("POST", "/api/login", None);
        claims["htu"] = json!(htu);
        let response = login_with_proof(&app, key.proof_of(&claims)).await;
        assert_eq!(response.status(), 200, "{htu}");
    }
    // The refused logins opened nothing: the two good ones are dana's only sessions.
    let pair: Value = app.login("dana", PASSWORD).await;
    let sessions = app.get_json("/api/sessions", access(&pair)).await;
    assert_eq!(sessions["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_proof_200_s_old_is_accepted_400_s_old_or_120_s_ahead_refused() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let key = DpopKey::ed25519();
    let login_at = |offset: i64| {
        let mut claims = app.proof_claims("POST", "/api/login", None);
        claims["iat"] = json!(app.clock_now().timestamp() + offset);
        app.client
            .post(app.url("/api/login"))
            .header("dpop", key.proof_of(&claims))
            .json(&json!({"username": "dana", "password": PASSWORD}))
            .send()
    };
    assert_eq!(login_at(-200).await.unwrap().status(), 200);
    assert_eq!(login_at(50).await.unwrap().status(), 200);
    for offset in [-400, 120] {
        assert_error(login_at(offset).await.unwrap(), 400, "INVALID_DPOP_PROOF").await;
    }
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let key = DpopKey::p256();
    let body = bound_login(&app, &key).await;
    let token = access(&body);
    let proof = app.proof(&key, "GET", "/api/me", Some(token));
    let send = || {
        app.client
            .get(app.url("/api/me"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof.clone())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    assert_dpop_challenge(
        send().await.unwrap(),
        "INVALID_DPOP_PROOF",
        "invalid_dpop_proof",
    )
    .await;
}

#[tokio::test]
async fn a_bound_session_refreshes_only_with_its_key_and_a_thief_revokes_nothing() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let key = DpopKey::p256();
    let body = bound_login(&app, &key).await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(30));

    // The copied refresh token without the key, as Bearer-style JSON or with another key.
    assert_error(
        app.post_refresh(&refresh).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    let thief = DpopKey::p256();
    assert_error(
        app.dpop_refresh(&thief, &refresh).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;

    // The owner: rotated, still bound.
    let rotated = app.dpop_refresh(&key, &refresh).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert_eq!(rotated["token_type"], "DPoP");
    assert_eq!(
        jwt_part(access(&rotated), 1)["cnf"]["jkt"],
        key.thumbprint()
    );
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();

    // The thief presents the spent token long after: no key, so no reuse detection that
    // would end the owner's session; the owner goes on.
    app.clock.advance(Duration::from_secs(600));
    assert_error(
        app.dpop_refresh(&thief, &refresh).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    assert_error(
        app.post_refresh(&refresh).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    let again = app.dpop_refresh(&key, &next).await;
    assert_eq!(again.status(), 200);

    // A public client's session is bound the same way, and the token endpoint refuses
    // its refresh without the key as invalid_grant.
    app.register_login_client("spa", &[]).await;
    let spa = app
        .client
        .post(app.url("/api/login"))
        .header("dpop", app.proof(&key, "POST", "/api/login", None))
        .json(&json!({"username": "dana", "password": PASSWORD, "client_id": "spa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(spa.status(), 200);
    let spa: Value = spa.json().await.unwrap();
    let spa_refresh = spa["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(30));
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", spa_refresh.as_str()),
        ("client_id", "spa"),
    ];
    let without = app.token_request(&form, None).await;
    assert_eq!(without.status(), 400);
    assert_eq!(
        without.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let with_key = app
        .client
        .post(app.url("/oauth/token"))
        .header("dpop", app.proof(&key, "POST", "/oauth/token", None))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 200);
    let with_key: Value = with_key.json().await.unwrap();
    assert_eq!(with_key["token_type"], "DPoP");
}

#[tokio::test]
async fn a_bound_token_as_bearer_is_refused_at_every_door_and_kept_bound_through_each() {
    let app =
        spawn_app_with(|s| s.ticket_audiences = vec!["wss://agents.example".to_owned()]).await;
    let key = DpopKey::p256();
    // An admin bound to a key.
    let response = app.dpop_login(&key, "admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let admin = access(&body).to_owned();
    let (_, introspector) = {
        let plain = app.admin_token().await;
        app.api_key(&plain, &["introspect", "tickets"]).await
    };

    let doors: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/me", None),
        (Method::GET, "/api/sessions", None),
        (Method::GET, "/api/admin/users", None),
        (
            Method::POST,
            "/api/tickets",
            Some(json!({"audience": "wss://agents.example"})),
        ),
        (
            Method::POST,
            "/api/token/introspect",
            Some(json!({"token": "x"})),
        ),
    ];
    for (method, path, body) in &doors {
        let as_bearer = app.call(method.clone(), path, &admin, body.clone()).await;
        assert_dpop_challenge(as_bearer, "AUTHENTICATION_FAILED", "invalid_token").await;
        let with_key = app
            .dpop_call(&key, method.clone(), path, &admin, body.clone())
            .await;
        assert!(
            with_key.status().is_success(),
            "{method} {path}: {}",
            with_key.status()
        );
    }

    // A ticket asked with a bound token stays bound.
    let ticket: Value = app
        .dpop_call(
            &key,
            Method::POST,
            "/api/tickets",
            &admin,
            Some(json!({"audience": "wss://agents.example"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let redeemed: Value = app
        .call(
            Method::POST,
            "/api/tickets/redeem",
            &introspector,
            Some(json!({"ticket": ticket["ticket"], "audience": "wss://agents.example"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(redeemed["cnf"], json!({"jkt": key.thumbprint()}));

    // Introspection tells the binding.
    let introspected: Value = app
        .introspect(&introspector, &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"], json!({"jkt": key.thumbprint()}));
    let _ = ath;
}

#[tokio::test]
async fn token_exchange_and_client_credentials_keep_or_make_the_binding() {
    let app = spawn_app().await;
    let plain_admin = app.admin_token().await;
    let created = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &plain_admin,
            Some(json!({"name": "gateway", "type": "confidential",
                        "grant_types": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
                        "scopes": ["read"], "audiences": ["https://api.example"]})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let client: Value = created.json().await.unwrap();
    let (id, secret) = (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    );
    app.create_user("dana", PASSWORD, &["read"], json!({}))
        .await;
    let key = DpopKey::p256();
    let subject = access(&bound_login(&app, &key).await).to_owned();
    let exchange = |proof: Option<String>| {
        let mut request = app
            .client
            .post(app.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject.as_str()),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("audience", "https://api.example"),
            ]);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    // Without a proof by the subject's key: refused (never laundered into a bearer token).
    let refused = exchange(None).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let other = DpopKey::p256();
    let refused = exchange(Some(app.proof(&other, "POST", "/oauth/token", None)))
        .await
        .unwrap();
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // With it: the new token is bound to the same key.
    let exchanged = exchange(Some(app.proof(&key, "POST", "/oauth/token", None)))
        .await
        .unwrap();
    assert_eq!(exchanged.status(), 200);
    let exchanged: Value = exchanged.json().await.unwrap();
    assert_eq!(exchanged["token_type"], "DPoP");
    assert_eq!(
        jwt_part(access(&exchanged), 1)["cnf"]["jkt"],
        key.thumbprint()
    );

    // client_credentials with a proof: the client's own token bound to its key; a flawed
    // proof is invalid_dpop_proof.
    let own = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .header("dpop", app.proof(&other, "POST", "/oauth/token", None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.unwrap();
    assert_eq!(own["token_type"], "DPoP");
    assert_eq!(jwt_part(access(&own), 1)["cnf"]["jkt"], other.thumbprint());
    let flawed = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .header("dpop", app.proof(&other, "GET", "/oauth/token", None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(flawed.status(), 400);
    assert_eq!(
        flawed.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );
}

#[tokio::test]
async fn with_nonces_on_a_proof_needs_the_current_nonce_at_every_kind_of_door() {
    let app = spawn_app_with(|s| s.dpop_nonce = true).await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let key = DpopKey::p256();
    // A login without a nonce: 400 USE_DPOP_NONCE and the nonce to use.
    let first = app.dpop_login(&key, "dana", PASSWORD).await;
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_error(first, 400, "USE_DPOP_NONCE").await;
    let mut claims = app.proof_claims("POST", "/api/login", None);
    claims["nonce"] = json!(nonce);
    let login = login_with_proof(&app, key.proof_of(&claims)).await;
    assert_eq!(login.status(), 200);
    assert!(
        login.headers().contains_key("dpop-nonce"),
        "every answer carries one"
    );
    let body: Value = login.json().await.unwrap();
    let token = access(&body);

    // A resource: 401 with the challenge and the nonce.
    let me = app
        .dpop_call(&key, Method::GET, "/api/me", token, None)
        .await;
    let nonce = me.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_dpop_challenge(me, "USE_DPOP_NONCE", "use_dpop_nonce").await;
    let mut claims = app.proof_claims("GET", "/api/me", Some(token));
    claims["nonce"] = json!(nonce);
    let me = app
        .client
        .get(app.url("/api/me"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof_of(&claims))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // A nonce from long ago, or made up, is not current.
    for stale in ["latest", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let mut claims = app.proof_claims("POST", "/api/login", None);
        claims["nonce"] = json!(stale);
        let response = login_with_proof(&app, key.proof_of(&claims)).await;
        assert_error(response, 400, "USE_DPOP_NONCE").await;
    }
    // The token endpoint answers RFC 9449's use_dpop_nonce.
    let oauth = app
        .client
        .post(app.url("/oauth/token"))
        .header("dpop", app.proof(&key, "POST", "/oauth/token", None))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", "nobody"),
        ])
        .send()
        .await
        .unwrap();
    assert!(oauth.headers().contains_key("dpop-nonce"));
}

#[tokio::test]
async fn discovery_and_cors_speak_dpop() {
    let app = spawn_app_with(|s| s.cors_origins = vec!["https://app.example".to_owned()]).await;
    let discovery = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        discovery["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/api/me"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization, dpop")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("dpop"), "{allowed}");
    let answer = app
        .client
        .get(app.url("/api/me"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        ["dpop-nonce", "www-authenticate", "date"]
            .iter()
            .all(|h| exposed.contains(h)),
        "{exposed}"
    );
}

/// Redis unreachable: a proof cannot be checked for replay, so it is refused (503), never
/// accepted on a guess.
#[tokio::test]
async fn with_redis_unreachable_a_proof_is_503_never_a_guess() {
    use tokenmint::model::{ClientKind, GrantType};
    use tokenmint::oauth::clients::NewClient;
    let closed = crate::helpers::free_port();
    let app = spawn_app_with(|s| {
        s.redis_url = Some(format!("redis://127.0.0.1:{closed}").into());
        s.redis_prefix = "dpop-down:".to_owned();
    })
    .await;
    // Registered through the domain: the admin API checks its callers against the list
    // in the same Redis.
    let new = NewClient {
        client_id: None,
        name: "worker".to_owned(),
        tenant: None,
        kind: ClientKind::Confidential,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec![],
        audiences: vec![],
    };
    let (client, secret) = app
        .services
        .clients
        .create(&tokenmint::model::Admin::operator(), new, app.clock_now())
        .await
        .unwrap();
    let secret = secret.unwrap().expose().to_owned();
    let key = DpopKey::p256();
    let answer = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(client.client_id.as_str(), Some(&secret))
        .header("dpop", app.proof(&key, "POST", "/oauth/token", None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    // Without a proof, the same client gets its (unbound) token: only DPoP needed Redis.
    let plain = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(client.client_id.as_str(), Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
}

/// A DPoP token refused for what it is (expired, revoked) is challenged with `DPoP`, not
/// `Bearer` (RFC 9449 section 7.1), and keeps its precise code.
#[tokio::test]
async fn a_dpop_token_refused_for_its_own_sake_is_challenged_with_dpop() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let key = DpopKey::p256();
    let body = bound_login(&app, &key).await;
    let token = access(&body).to_owned();
    app.clock.advance(Duration::from_secs(16 * 60));
    let expired = app
        .dpop_call(&key, Method::GET, "/api/me", &token, None)
        .await;
    assert_dpop_challenge(expired, "TOKEN_EXPIRED", "invalid_token").await;

    let fresh = access(&bound_login(&app, &key).await).to_owned();
    let revoked = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": fresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let me = app
        .dpop_call(&key, Method::GET, "/api/me", &fresh, None)
        .await;
    assert_dpop_challenge(me, "TOKEN_REVOKED", "invalid_token").await;
    // The same refusal of a Bearer token keeps the Bearer challenge.
    let plain = app.log_in("dana", PASSWORD).await;
    app.clock.advance(Duration::from_secs(16 * 60));
    let headers = assert_error(app.get_me(&plain.access_token).await, 401, "TOKEN_EXPIRED").await;
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}
