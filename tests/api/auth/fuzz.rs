//! Hostile token input against the real verifier, as property tests. CI runs these with
//! a larger `PROPTEST_CASES` for a bounded fuzzing pass (stable Rust: no libFuzzer).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, spawn_app};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn the_verifier_refuses_arbitrary_and_forged_tokens_without_panicking() {
    let app = spawn_app().await;
    let kid = app.current_kid();
    let real = app.admin_token().await;
    let now = app.clock_now();
    let tokens = &app.services.tokens;
    let mut runner = TestRunner::default();

    runner
        .run(&"\\PC*", |s| {
            prop_assert!(tokens.verify(&s, now).is_err());
            Ok(())
        })
        .unwrap();

    let named =
        |names: &'static [&'static str]| proptest::sample::select(names).prop_map(str::to_owned);
    let alg = prop_oneof![
        named(&["none", "HS256", "ES256", "EdDSA", "RS256", "ES384"]),
        "\\PC{0,8}"
    ];
    let typ = prop_oneof![named(&["at+jwt", "JWT", "application/at+jwt"]), "\\PC{0,8}"];
    let kid_choice = prop_oneof![Just(kid.clone()), "\\PC{0,50}"];
    let claims = proptest::collection::btree_map("\\PC{0,10}", any::<i64>(), 0..8);
    let signature = proptest::collection::vec(any::<u8>(), 0..300);
    runner
        .run(
            &(alg, typ, kid_choice, claims, signature),
            |(alg, typ, kid, claims, signature)| {
                let header = json!({"alg": alg, "typ": typ, "kid": kid});
                let token = format!(
                    "{}.{}.{}",
                    b64(&serde_json::to_vec(&header).unwrap()),
                    b64(&serde_json::to_vec(&claims).unwrap()),
                    b64(&signature)
                );
                prop_assert!(tokens.verify(&token, now).is_err());
                Ok(())
            },
        )
        .unwrap();

    let real_bytes = real.as_bytes().to_vec();
    runner
        .run(&(0..real_bytes.len(), any::<u8>()), |(pos, byte)| {
            let mut tampered = real_bytes.clone();
            prop_assume!(tampered[pos] != byte);
            tampered[pos] = byte;
            if let Ok(s) = std::str::from_utf8(&tampered) {
                prop_assert!(
                    tokens.verify(s, now).is_err(),
                    "a changed byte at {} still verified",
                    pos
                );
            }
            Ok(())
        })
        .unwrap();

    assert!(tokens.verify(&real, now).is_ok(), "the real token verifies");
    let _ = ADMIN_PASSWORD;
}
