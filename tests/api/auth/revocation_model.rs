//! Model-based test of revocation: random interleavings of logouts, RFC 7009 revocations
//! of refresh and of access tokens, ends of one's own sessions, new logins, checks and
//! the clock, over three sessions of one user, run against the real server (SQLite +
//! memory by default, PostgreSQL + Redis when the suite runs on them), and checked
//! against a reference model written from the contract.
//!
//! Revoking calls sent together commit together (in one group, each in a savepoint):
//! the answers must be those of some order of them, one at a time (linearizability), and
//! after every step each session's tokens are refused or accepted as the model says.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Pair, TestApp, permutations, spawn_app};

/// Sessions in play.
const SESSIONS: usize = 3;
/// The access token lifetime of the app under test (the default, 15 minutes).
const ACCESS_SECS: u64 = 15 * 60;

#[derive(Debug, Clone, Copy)]
enum Call {
    /// `POST /api/logout` with the session's refresh token.
    Logout(usize),
    /// RFC 7009 of the session's refresh token.
    RevokeRefresh(usize),
    /// RFC 7009 of the session's access token.
    RevokeAccess(usize),
    /// `DELETE /api/sessions/{first}` with the second's access token.
    End(usize, usize),
    /// `GET /api/me` with the session's access token.
    Check(usize),
}

#[derive(Debug, Clone)]
enum Step {
    One(Call),
    /// Several calls at once.
    Together(Vec<Call>),
    /// A new login takes the place of this session.
    Login(usize),
    /// The clock moves on by this many seconds.
    Wait(u64),
}

fn call() -> impl Strategy<Value = Call> {
    let s = 0..SESSIONS;
    prop_oneof![
        s.clone().prop_map(Call::Logout),
        s.clone().prop_map(Call::RevokeRefresh),
        s.clone().prop_map(Call::RevokeAccess),
        (s.clone(), s.clone()).prop_map(|(a, b)| Call::End(a, b)),
        s.prop_map(Call::Check),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => call().prop_map(Step::One),
        3 => proptest::collection::vec(call(), 2..=4).prop_map(Step::Together),
        1 => (0..SESSIONS).prop_map(Step::Login),
        // No sum of these comes closer than 20 s to an access token's end, so no outcome
        // depends on how long the requests themselves take.
        1 => prop_oneof![Just(0u64), Just(70), Just(600), Just(1000)].prop_map(Step::Wait),
    ]
}

/// One session as the contract sees it.
#[derive(Debug, Clone, Copy)]
struct Session {
    ended: bool,
    /// Its access token was revoked by itself (RFC 7009).
    access_revoked: bool,
    /// When its access token was issued (model seconds).
    issued: u64,
}

#[derive(Debug, Clone)]
struct Model {
    sessions: [Session; SESSIONS],
    now: u64,
}

impl Model {
    /// Whether the session's access token is accepted.
    fn accepts(&self, s: usize) -> bool {
        let session = self.sessions[s];
        !session.ended && !session.access_revoked && self.now < session.issued + ACCESS_SECS
    }

    /// The status a call gets, and its effect.
    fn call(&mut self, call: Call) -> u16 {
        match call {
            Call::Logout(s) => {
                self.sessions[s].ended = true;
                204
            }
            Call::RevokeRefresh(s) => {
                self.sessions[s].ended = true;
                200
            }
            Call::RevokeAccess(s) => {
                // An expired token is not revoked (nothing to refuse that is not refused).
                if self.now < self.sessions[s].issued + ACCESS_SECS {
                    self.sessions[s].access_revoked = true;
                }
                200
            }
            Call::End(target, by) => {
                let authenticated = self.accepts(by);
                self.end(target, authenticated)
            }
            Call::Check(s) => {
                if self.accepts(s) {
                    200
                } else {
                    401
                }
            }
        }
    }
}

impl Model {
    /// `DELETE /api/sessions/{target}` by a holder who did or did not authenticate.
    fn end(&mut self, target: usize, authenticated: bool) -> u16 {
        if !authenticated {
            401
        } else if self.sessions[target].ended {
            404
        } else {
            self.sessions[target].ended = true;
            204
        }
    }
}

async fn send(app: &TestApp, pairs: &[Pair], call: Call) -> u16 {
    let (path, body) = match call {
        Call::Logout(s) => ("/api/logout", json!({"refresh_token": pairs[s].refresh()})),
        Call::RevokeRefresh(s) => ("/api/token/revoke", json!({"token": pairs[s].refresh()})),
        Call::RevokeAccess(s) => ("/api/token/revoke", json!({"token": pairs[s].access_token})),
        Call::End(target, by) => {
            let path = format!("/api/sessions/{}", pairs[target].session_id);
            return app
                .call(Method::DELETE, &path, &pairs[by].access_token, None)
                .await
                .status()
                .as_u16();
        }
        Call::Check(s) => return app.get_me(&pairs[s].access_token).await.status().as_u16(),
    };
    let response = app.client.post(app.url(path)).json(&body).send().await;
    response.unwrap().status().as_u16()
}

async fn log_in(app: &TestApp) -> Pair {
    app.log_in("rev", "rev-password").await
}

async fn run_case(app: &TestApp, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut pairs = Vec::new();
    for _ in 0..SESSIONS {
        pairs.push(log_in(app).await);
    }
    let fresh = Session {
        ended: false,
        access_revoked: false,
        issued: 0,
    };
    let mut model = Model {
        sessions: [fresh; SESSIONS],
        now: 0,
    };
    for step in steps {
        match step {
            Step::Wait(secs) => {
                app.clock.advance(Duration::from_secs(secs));
                model.now += secs;
            }
            Step::Login(s) => {
                pairs[s] = log_in(app).await;
                model.sessions[s] = Session {
                    issued: model.now,
                    ..fresh
                };
            }
            Step::One(call) => {
                let got = send(app, &pairs, call).await;
                let expected = model.call(call);
                prop_assert_eq!(got, expected, "{:?} at {}s", call, model.now);
            }
            Step::Together(calls) => {
                let answers: Vec<u16> =
                    futures_util::future::join_all(calls.iter().map(|c| send(app, &pairs, *c)))
                        .await;
                // Some order of the calls, one at a time, gives exactly these answers. A
                // session's end is two steps, as in any service: its holder is
                // authenticated when the request comes in, the session is ended later; so
                // a holder whose own session another call ends meanwhile may have been
                // let in (the end then answers for the target as it finds it).
                let explained = permutations(calls.len()).into_iter().find_map(|order| {
                    let mut trial = model.clone();
                    let mut outcome = vec![0; calls.len()];
                    for &i in &order {
                        outcome[i] = match calls[i] {
                            Call::End(target, by) => {
                                let let_in =
                                    trial.accepts(by) || (model.accepts(by) && answers[i] != 401);
                                trial.end(target, let_in)
                            }
                            call => trial.call(call),
                        };
                    }
                    (outcome == answers).then_some(trial)
                });
                let Some(trial) = explained else {
                    return Err(TestCaseError::fail(format!(
                        "no order of {calls:?} at {}s explains {answers:?} (model {model:?})",
                        model.now
                    )));
                };
                model = trial;
            }
        }
        // After every step, every session's tokens are what the model says.
        for (s, pair) in pairs.iter().enumerate() {
            let me = app.get_me(&pair.access_token).await.status().as_u16();
            let expected = if model.accepts(s) { 200 } else { 401 };
            prop_assert_eq!(me, expected, "session {} access token at {}s", s, model.now);
            let (_, ended) = app.session_state(&pair.session_id).await;
            prop_assert_eq!(ended, model.sessions[s].ended, "session {} row", s);
        }
    }
    // A live session still rotates; an ended one never does.
    for (pair, session) in pairs.iter().zip(&model.sessions) {
        let refreshed = app.post_refresh(pair.refresh()).await.status().as_u16();
        let expected = if session.ended { 401 } else { 200 };
        prop_assert_eq!(
            refreshed,
            expected,
            "refresh of session {}",
            pair.session_id
        );
    }
    Ok(())
}

#[test]
fn revocations_in_any_interleaving_refuse_and_accept_what_the_contract_says() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(async {
        let app = spawn_app().await;
        app.create_user("rev", "rev-password", &[], json!({})).await;
        app
    });
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(step(), 1..12), |steps| {
        runtime.block_on(run_case(&app, steps))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
