//! Model-based test of the refresh rules: random interleavings of two holders of one
//! session's chain (an owner and a thief with a copy of its first token), lost answers,
//! concurrent requests and the clock, run against the real server (SQLite + memory by
//! default, PostgreSQL + Redis when the suite runs on them), and checked against a
//! reference model of the contract's table.
//!
//! The model is written from the contract, not from the code: it keeps every token of
//! the chain with the time it was spent, and asks "was this token spent no more than L
//! ago, and is it the head's immediate predecessor?" where the service asks the session
//! row when its head was issued. Requests sent together may be served in any order: the
//! answers must be those of some order of them, one at a time (linearizability).
//!
//! With the session bound to a DPoP key (RFC 9449) that only the owner holds, the model
//! adds one row: the thief's presentations are refused as unknown and change nothing, so
//! the owner's chain goes on as if the thief were not there.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use crate::helpers::dpop::DpopKey;
use crate::helpers::{ADMIN_PASSWORD, Pair, TestApp, permutations, spawn_app_with};

/// The reuse leeway of the app under test. Model time moves in whole minutes and the
/// wall clock adds only milliseconds between steps, so no age is ever near L: the
/// outcome never depends on how fast the machine is.
const LEEWAY_SECS: u64 = 90;
/// The idle lifetime of a refresh token in the app under test.
const IDLE_SECS: u64 = 3 * 86_400;

#[derive(Debug, Clone)]
enum Step {
    /// One holder presents its token and keeps the answer.
    Present(usize),
    /// One holder presents its token and the answer is lost (it keeps its token).
    Lost(usize),
    /// Several presentations at once, each by a holder (the same one may appear twice:
    /// tabs).
    Together(Vec<usize>),
    /// The clock moves on by this many seconds.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..2).prop_map(Step::Present),
        1 => (0usize..2).prop_map(Step::Lost),
        2 => proptest::collection::vec(0usize..2, 2..=3).prop_map(Step::Together),
        4 => prop_oneof![Just(0u64), Just(60), Just(120), Just(600), Just(86_400)].prop_map(Step::Wait),
    ]
}

/// What a presentation gets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// 200 with the token of this generation.
    Token(i64),
    Reused,
    Revoked,
    Expired,
    /// Refused as unknown (a bound session's token without its key).
    Invalid,
}

/// The contract's table over the whole chain.
#[derive(Debug, Clone)]
struct Model {
    /// For each generation: (issued at, spent at).
    chain: Vec<(u64, Option<u64>)>,
    revoked: bool,
}

impl Model {
    /// A presentation by holder `h` (0: the owner; 1: the thief, who in a bound session
    /// has no key).
    fn present_by(&mut self, h: usize, generation: i64, now: u64, bound: bool) -> Answer {
        if bound && h == 1 {
            return Answer::Invalid;
        }
        self.present(generation, now)
    }

    fn new() -> Self {
        Self {
            chain: vec![(0, None)],
            revoked: false,
        }
    }

    fn head(&self) -> i64 {
        i64::try_from(self.chain.len()).unwrap() - 1
    }

    fn present(&mut self, generation: i64, now: u64) -> Answer {
        if self.revoked {
            return Answer::Revoked;
        }
        let head = self.head();
        let g = usize::try_from(generation).unwrap();
        if generation == head {
            let (issued, _) = self.chain[g];
            if now - issued >= IDLE_SECS {
                return Answer::Expired;
            }
            if now - issued < LEEWAY_SECS {
                return Answer::Token(head);
            }
            self.chain[g].1 = Some(now);
            self.chain.push((now, None));
            return Answer::Token(head + 1);
        }
        let spent = self.chain[g].1.unwrap();
        if generation == head - 1 && now - spent <= LEEWAY_SECS {
            return Answer::Token(head);
        }
        self.revoked = true;
        Answer::Reused
    }
}

async fn present(app: &TestApp, token: &str, key: Option<&DpopKey>) -> (Answer, Option<String>) {
    let response = match key {
        Some(key) => app.dpop_refresh(key, token).await,
        None => app.post_refresh(token).await,
    };
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    match (status, body["error"].as_str()) {
        (200, _) => {
            let token = body["refresh_token"].as_str().unwrap().to_owned();
            // The generation is filled in by the caller from the known tokens.
            (Answer::Token(-1), Some(token))
        }
        (401, Some("REFRESH_TOKEN_REUSED")) => (Answer::Reused, None),
        (401, Some("TOKEN_REVOKED")) => (Answer::Revoked, None),
        (401, Some("TOKEN_EXPIRED")) => (Answer::Expired, None),
        (401, Some("AUTHENTICATION_FAILED")) => (Answer::Invalid, None),
        other => panic!("unexpected answer {other:?}: {body}"),
    }
}

/// The tokens seen so far, by generation, and back.
#[derive(Default)]
struct Tokens {
    by_generation: HashMap<i64, String>,
}

impl Tokens {
    /// The generation of a token the server gave, checked against the model's.
    fn learn(&mut self, expected: i64, token: &str) -> Result<(), TestCaseError> {
        match self.by_generation.get(&expected) {
            Some(known) => prop_assert_eq!(known, token, "generation {}", expected),
            None => {
                prop_assert!(
                    !self.by_generation.values().any(|t| t == token),
                    "a token of another generation came back as generation {expected}"
                );
                self.by_generation.insert(expected, token.to_owned());
            }
        }
        Ok(())
    }
}

async fn run_case(app: &TestApp, steps: Vec<Step>, bound: bool) -> Result<(), TestCaseError> {
    // The owner's key, in a bound session; the thief has none.
    let owner_key = bound.then(DpopKey::p256);
    let key_of = |h: usize| if h == 0 { owner_key.as_ref() } else { None };
    let login: Pair = match &owner_key {
        Some(key) => app
            .dpop_login(key, "admin", ADMIN_PASSWORD)
            .await
            .json()
            .await
            .unwrap(),
        None => app.log_in("admin", ADMIN_PASSWORD).await,
    };
    let first = login.refresh().to_owned();
    let mut tokens = Tokens::default();
    tokens.learn(0, &first)?;
    let mut model = Model::new();
    let mut now = 0u64;
    // Each holder's token, by generation.
    let mut holders = [0i64, 0i64];
    for step in steps {
        match step {
            Step::Wait(secs) => {
                app.clock.advance(Duration::from_secs(secs));
                now += secs;
            }
            Step::Present(h) | Step::Lost(h) => {
                let token = tokens.by_generation[&holders[h]].clone();
                let (answer, got) = present(app, &token, key_of(h)).await;
                let expected = model.present_by(h, holders[h], now, bound);
                match (&expected, got) {
                    (Answer::Token(g), Some(got)) => {
                        tokens.learn(*g, &got)?;
                        if matches!(step, Step::Present(_)) {
                            holders[h] = *g;
                        }
                    }
                    _ => prop_assert_eq!(&answer, &expected, "holder {} at {}s", h, now),
                }
            }
            Step::Together(who) => {
                let presented: Vec<String> = who
                    .iter()
                    .map(|h| tokens.by_generation[&holders[*h]].clone())
                    .collect();
                let answers = futures_util::future::join_all(
                    presented
                        .iter()
                        .zip(&who)
                        .map(|(t, h)| present(app, t, key_of(*h))),
                )
                .await;
                // Some order of the requests, one at a time, gives exactly these answers.
                let mut matched = None;
                for order in permutations(who.len()) {
                    let mut trial = model.clone();
                    let mut outcome = vec![Answer::Revoked; who.len()];
                    for &i in &order {
                        outcome[i] = trial.present_by(who[i], holders[who[i]], now, bound);
                    }
                    let fits = outcome.iter().zip(&answers).all(|(m, (a, got))| match m {
                        Answer::Token(g) => got.as_deref().is_some_and(|got| {
                            tokens.by_generation.get(g).is_none_or(|known| known == got)
                        }),
                        other => a == other,
                    });
                    if fits {
                        matched = Some((trial, outcome));
                        break;
                    }
                }
                let Some((trial, outcome)) = matched else {
                    return Err(TestCaseError::fail(format!(
                        "no order of {who:?} at {now}s explains {answers:?} (model {model:?})"
                    )));
                };
                model = trial;
                for (i, expected) in outcome.iter().enumerate() {
                    if let (Answer::Token(g), Some(got)) = (expected, &answers[i].1) {
                        tokens.learn(*g, got)?;
                        holders[who[i]] = *g;
                    }
                }
            }
        }
    }
    // The session's row says what the model says.
    let sid = login.session_id.as_str();
    let (generation, revoked) = app.session_state(sid).await;
    prop_assert_eq!(generation, model.head());
    prop_assert_eq!(revoked, model.revoked);
    Ok(())
}

#[test]
fn two_holders_of_one_chain_get_what_the_contract_says_in_any_interleaving() {
    run_model(false, 48);
}

#[test]
fn in_a_session_bound_to_the_owners_key_the_thief_moves_nothing_in_any_interleaving() {
    run_model(true, 32);
}

fn run_model(bound: bool, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app_with(|s| {
        s.refresh_reuse_leeway = Duration::from_secs(LEEWAY_SECS);
        s.refresh_ttl = Duration::from_secs(IDLE_SECS);
    }));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(step(), 1..14), |steps| {
        runtime.block_on(run_case(&app, steps, bound))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_model_is_the_contracts_table() {
    let l = LEEWAY_SECS;
    let mut m = Model::new();
    assert_eq!(m.present(0, 1), Answer::Token(0), "a young head as it is");
    assert_eq!(m.present(0, l), Answer::Token(1), "rotated at L");
    assert_eq!(
        m.present(0, 2 * l),
        Answer::Token(1),
        "predecessor within L"
    );
    assert_eq!(m.present(0, 2 * l + 1), Answer::Reused, "after L");
    assert_eq!(m.present(1, 2 * l + 1), Answer::Revoked);
}
