//! A WebSocket service on its own origin that signs browsers in with Tokenmint's connect
//! tickets, and the page that uses it.
//!
//! A browser cannot set `Authorization` on a WebSocket upgrade, and cookies do not cross
//! origins; an access token in the URL would leak into logs for minutes. So the page logs
//! in to Tokenmint (CORS), asks for a ticket for this service's audience, and connects to
//! `ws://<this service>/ws?ticket=...`. The service checks the ticket one of two ways:
//!
//! - `/ws`: redeems it at Tokenmint (`POST /api/tickets/redeem` with its API key, scope
//!   `tickets`): exactly once across every Tokenmint instance, and refused if the user
//!   logged out since.
//! - `/ws-offline`: verifies it from JWKS with jsonwebtoken (`typ`, `aud`, `iss`, `exp`),
//!   without calling Tokenmint per connection. It cannot know of a logout or a second use:
//!   use it where seconds of validity are enough.
//!
//! Either way it answers with who connected, then echoes.
//!
//! With `EVENTS_API_KEY` (an API key with scope `events`), it also polls Tokenmint's
//! security events (RFC 8936, `POST /api/events/poll`), verifies each SET from JWKS
//! (`typ: secevent+jwt`), and closes what is no longer allowed, with close code 4001:
//! the sockets of a revoked session (`session-revoked`), of a disabled, deleted or
//! logged-out-everywhere user (`account-disabled`), and every socket when a signing key
//! is withdrawn (`key-withdrawn`: a ticket signed by it proves nothing). A refresh of the
//! session ends nothing, so it closes nothing. Events are acknowledged once handled.
//!
//! ```sh
//! # Tokenmint, allowing this page's origin and issuing tickets for this service:
//! TOKENMINT_CORS_ORIGINS=http://127.0.0.1:9090 TOKENMINT_TICKET_AUDIENCES=ws://127.0.0.1:9090 \
//!   cargo run --release
//! # an API key with scope `tickets` for this service (as an admin), then:
//! TICKETS_API_KEY=tmk_... cargo run --example ws_tickets
//! # open http://127.0.0.1:9090 and log in
//! ```
//!
//! Settings (environment): `BIND` (`127.0.0.1:9090`), `TOKENMINT_URL`
//! (`http://127.0.0.1:8080`), `TOKENMINT_ISSUER` (the tokens' `iss`; default
//! `TOKENMINT_URL`), `AUDIENCE` (`ws://<BIND>`), `TICKETS_API_KEY` (needed by `/ws`),
//! `EVENTS_API_KEY` (closing sockets on revocation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{CloseCode, CloseReason, Message};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::RwLock;

struct Service {
    tokenmint: String,
    issuer: String,
    audience: String,
    api_key: Option<String>,
    http: reqwest::Client,
    jwks: RwLock<JwkSet>,
    sockets: Sockets,
}

/// The open sockets, by whom they were opened for; each can be told to close.
#[derive(Default)]
struct Sockets {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Socket>>,
}

struct Socket {
    sid: Option<String>,
    sub: String,
    close: tokio::sync::mpsc::UnboundedSender<&'static str>,
}

/// What a security event ends.
enum Ends<'a> {
    Session(&'a str),
    User(&'a str),
    Everything,
}

impl Sockets {
    fn add(
        &self,
        sid: Option<String>,
        sub: String,
    ) -> (u64, tokio::sync::mpsc::UnboundedReceiver<&'static str>) {
        let (close, closed) = tokio::sync::mpsc::unbounded_channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Socket { sid, sub, close });
        (id, closed)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Tells the sockets an event ends to close; returns how many.
    fn close(&self, ends: &Ends<'_>, why: &'static str) -> usize {
        let open = self.lock();
        let mut told = 0;
        for socket in open.values() {
            let ended = match ends {
                Ends::Session(sid) => socket.sid.as_deref() == Some(*sid),
                Ends::User(sub) => socket.sub == *sub,
                Ends::Everything => true,
            };
            if ended && socket.close.send(why).is_ok() {
                told += 1;
            }
        }
        told
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Socket>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

impl Service {
    /// Redeems at Tokenmint: the first use anywhere gets who the ticket names.
    async fn redeem(&self, ticket: &str) -> Result<Value, String> {
        let key = self
            .api_key
            .as_deref()
            .ok_or("TICKETS_API_KEY is not set: /ws cannot redeem")?;
        let answer = self
            .http
            .post(format!("{}/api/tickets/redeem", self.tokenmint))
            .header("x-api-key", key)
            .json(&json!({"ticket": ticket, "audience": self.audience}))
            .send()
            .await
            .map_err(|e| format!("Tokenmint unreachable: {e}"))?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {}", body["message"]))
        }
    }

    /// Verifies offline from JWKS: signature, `typ: ticket+jwt`, `aud`, `iss`, `exp`.
    async fn verify_offline(&self, ticket: &str) -> Result<Value, String> {
        let (key, mut validation) = self
            .published_key(ticket, "ticket+jwt", "not a ticket (typ)")
            .await?;
        validation.leeway = 0;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        decode::<Value>(ticket, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| format!("refused: {e}"))
    }

    /// The published key that signed `jwt`, if its `typ` is `typ`, and a validation for
    /// that key's algorithm: the algorithm comes from the published key, never from the
    /// token's header. Fetches JWKS again for a key published since the last fetch.
    async fn published_key(
        &self,
        jwt: &str,
        typ: &str,
        wrong_type: &str,
    ) -> Result<(DecodingKey, Validation), String> {
        let header = decode_header(jwt).map_err(|e| format!("not a JWT: {e}"))?;
        if header.typ.as_deref() != Some(typ) {
            return Err(wrong_type.into());
        }
        let kid = header.kid.ok_or("no kid")?;
        let mut jwk = self.jwks.read().await.find(&kid).cloned();
        if jwk.is_none() {
            self.refresh_jwks().await?;
            jwk = self.jwks.read().await.find(&kid).cloned();
        }
        let jwk = jwk.ok_or("unknown signing key")?;
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse().ok())
            .ok_or("the key names no algorithm")?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key: {e}"))?;
        Ok((key, Validation::new(alg)))
    }

    /// A SET from the poll, verified from JWKS like a ticket (`typ: secevent+jwt`, `iss`;
    /// its `aud` is our events key's id); its one event's type and payload.
    async fn verify_set(&self, set: &str) -> Result<(String, Value), String> {
        let (key, mut validation) = self
            .published_key(set, "secevent+jwt", "not a SET (typ)")
            .await?;
        validation.set_issuer(&[&self.issuer]);
        // Fetched from Tokenmint with our own key: `aud` is that key's id.
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "iat", "jti"]);
        let claims = decode::<Value>(set, &key, &validation)
            .map_err(|e| format!("refused: {e}"))?
            .claims;
        let events = claims["events"].as_object().ok_or("no events")?;
        let (kind, payload) = events.iter().next().ok_or("no event")?;
        Ok((kind.clone(), payload.clone()))
    }

    /// Polls security events for as long as the service runs, closing the sockets each
    /// one ends; acknowledges each event once handled (a failed poll is retried: the
    /// events wait in Tokenmint until acknowledged).
    async fn watch_events(&self, key: String) {
        let mut ack: Vec<String> = Vec::new();
        loop {
            let polled = self
                .http
                .post(format!("{}/api/events/poll", self.tokenmint))
                .header("x-api-key", &key)
                .timeout(Duration::from_secs(40))
                .json(&json!({"ack": ack, "maxEvents": 100}))
                .send()
                .await;
            let body: Value = match polled {
                Ok(answer) if answer.status().is_success() => {
                    answer.json().await.unwrap_or(Value::Null)
                }
                Ok(answer) => {
                    eprintln!("events poll refused: {}", answer.status());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    eprintln!("events poll failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            ack.clear();
            let sets = body["sets"].as_object().cloned().unwrap_or_default();
            for (jti, set) in sets {
                match self.verify_set(set.as_str().unwrap_or_default()).await {
                    Ok((kind, payload)) => self.apply(&kind, &payload),
                    Err(reason) => eprintln!("security event {jti} refused: {reason}"),
                }
                ack.push(jti);
            }
        }
    }

    fn apply(&self, kind: &str, payload: &Value) {
        let text = |field: &str| payload[field].as_str().unwrap_or_default();
        let (ends, why) = match kind {
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked" => (
                Ends::Session(payload["subject"]["id"].as_str().unwrap_or_default()),
                "session revoked",
            ),
            "https://schemas.openid.net/secevent/risc/event-type/account-disabled" => {
                (Ends::User(text("sub")), "account disabled")
            }
            "urn:tokenmint:event:key-withdrawn" => (Ends::Everything, "signing key withdrawn"),
            _ => return,
        };
        let closed = self.sockets.close(&ends, why);
        eprintln!("security event: {why}: closing {closed} sockets");
    }

    async fn refresh_jwks(&self) -> Result<(), String> {
        let set: JwkSet = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.tokenmint))
            .send()
            .await
            .map_err(|e| format!("JWKS unreachable: {e}"))?
            .json()
            .await
            .map_err(|e| format!("JWKS unreadable: {e}"))?;
        *self.jwks.write().await = set;
        Ok(())
    }
}

async fn connect(
    req: HttpRequest,
    body: web::Payload,
    service: web::Data<Service>,
    query: web::Query<TicketQuery>,
    offline: bool,
) -> actix_web::Result<HttpResponse> {
    let Some(ticket) = query.into_inner().ticket else {
        return Ok(HttpResponse::Unauthorized().body("missing ?ticket="));
    };
    let checked = if offline {
        service.verify_offline(&ticket).await
    } else {
        service.redeem(&ticket).await
    };
    let who = match checked {
        Ok(who) => who,
        // Refused before the upgrade: the browser's WebSocket fails to open.
        Err(reason) => {
            eprintln!("refused a connection: {reason}");
            return Ok(HttpResponse::Unauthorized().body(reason));
        }
    };
    let (response, mut session, mut messages) = actix_ws::handle(&req, body)?;
    let (id, mut closing) = service.sockets.add(
        who["sid"].as_str().map(str::to_owned),
        who["sub"].as_str().unwrap_or_default().to_owned(),
    );
    actix_web::rt::spawn(async move {
        let hello = json!({
            "verified": if offline { "offline" } else { "redeem" },
            "sub": who["sub"],
            "username": who["username"],
            "tenant_id": who["tenant_id"],
            "scope": who["scope"],
        });
        let mut reason = None;
        if session.text(hello.to_string()).await.is_ok() {
            loop {
                tokio::select! {
                    why = closing.recv() => {
                        // 4001: a code of the application range (RFC 6455 section 7.4.2).
                        reason = why.map(|why| CloseReason {
                            code: CloseCode::Other(4001),
                            description: Some(why.to_owned()),
                        });
                        break;
                    }
                    message = messages.recv() => {
                        let sent = match message {
                            Some(Ok(Message::Text(text))) => session.text(text).await,
                            Some(Ok(Message::Ping(bytes))) => session.pong(&bytes).await,
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                            Some(Ok(_)) => Ok(()),
                        };
                        if sent.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        service.sockets.remove(id);
        let _ = session.close(reason).await;
    });
    Ok(response)
}

async fn page(service: web::Data<Service>) -> HttpResponse {
    let config = json!({"tokenmint": service.tokenmint, "audience": service.audience});
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE.replace("__CONFIG__", &config.to_string()))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tokenmint::keys::crypto_provider::install();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let bind = env("BIND").unwrap_or_else(|| "127.0.0.1:9090".into());
    let tokenmint = env("TOKENMINT_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let service = web::Data::new(Service {
        issuer: env("TOKENMINT_ISSUER").unwrap_or_else(|| tokenmint.clone()),
        audience: env("AUDIENCE").unwrap_or_else(|| format!("ws://{bind}")),
        api_key: env("TICKETS_API_KEY"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?,
        jwks: RwLock::new(JwkSet { keys: Vec::new() }),
        sockets: Sockets::default(),
        tokenmint,
    });
    if let Some(key) = env("EVENTS_API_KEY") {
        let watcher = service.clone();
        actix_web::rt::spawn(async move { watcher.watch_events(key).await });
    }
    eprintln!("ws_tickets: http://{bind} (audience {})", service.audience);
    HttpServer::new(move || {
        App::new()
            .app_data(service.clone())
            .route("/", web::get().to(page))
            .route(
                "/ws",
                web::get().to(|r, b, s, q| connect(r, b, s, q, false)),
            )
            .route(
                "/ws-offline",
                web::get().to(|r, b, s, q| connect(r, b, s, q, true)),
            )
    })
    .workers(2)
    // Once a socket is closed, actix waits this long for the browser to drop the
    // connection, while the browser waits for the server to (RFC 6455 section 7.1.1):
    // by default a second before the page sees the close.
    .client_disconnect_timeout(Duration::from_millis(50))
    .bind(bind)?
    .run()
    .await
}

/// The app page, on this service's origin: Tokenmint is another origin.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>Agents: signed in with a Tokenmint ticket</title>
<h1>Agents</h1>
<form id="login">
  <input name="username" placeholder="username" autocomplete="username">
  <input name="password" type="password" placeholder="password" autocomplete="current-password">
  <button>Log in and connect</button>
</form>
<pre id="log"></pre>
<script type="module">
const config = __CONFIG__;
let access = null;
let refresh = null;

async function login(username, password) {
  const answer = await fetch(`${config.tokenmint}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!answer.ok) throw new Error(`login: ${answer.status}`);
  const pair = await answer.json();
  access = pair.access_token;
  refresh = pair.refresh_token;
}

// A new pair for the session (what an app does on a 401); the session goes on.
async function refreshTokens() {
  const answer = await fetch(`${config.tokenmint}/api/refresh-token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: refresh }),
  });
  if (!answer.ok) throw new Error(`refresh: ${answer.status}`);
  const pair = await answer.json();
  access = pair.access_token;
  refresh = pair.refresh_token;
}

// Another tab of the same app shares the session (as it would through storage).
const tokens = () => ({ access, refresh });
function useTokens(shared) {
  access = shared.access;
  refresh = shared.refresh;
}

// Keeps a socket open; `watched` tells how it is (open, greeted, or closed: code, reason,
// when). Resolves once it is open or closed.
const watched = {};
function watch(ticket, path = '/ws') {
  const url = `${location.origin.replace(/^http/, 'ws')}${path}?ticket=${encodeURIComponent(ticket)}`;
  return new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onmessage = (event) => {
      if (!watched.hello) {
        Object.assign(watched, { open: true, hello: JSON.parse(event.data) });
        resolve({ ...watched });
      }
    };
    socket.onclose = (event) => {
      Object.assign(watched, { open: false, code: event.code, reason: event.reason, closedAt: Date.now() });
      resolve({ ...watched });
    };
  });
}

// A ticket for this service (or another audience): lives seconds, works once.
async function ticket(audience = config.audience) {
  const answer = await fetch(`${config.tokenmint}/api/tickets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${access}` },
    body: JSON.stringify({ audience }),
  });
  if (answer.status !== 201) throw new Error(`ticket: ${answer.status}`);
  return (await answer.json()).ticket;
}

// Opens the socket with the ticket in the URL; resolves with the greeting or the refusal.
function connect(ticket, path = '/ws') {
  const url = `${location.origin.replace(/^http/, 'ws')}${path}?ticket=${encodeURIComponent(ticket)}`;
  return new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onmessage = (event) => {
      resolve({ connected: true, hello: JSON.parse(event.data) });
      socket.close();
    };
    socket.onclose = (event) => resolve({ connected: false, code: event.code });
  });
}

async function logout() {
  await fetch(`${config.tokenmint}/api/logout`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${access}` },
    body: '{}',
  });
}

window.demo = {
  login, ticket, connect, logout, accessToken: () => access,
  refreshTokens, tokens, useTokens, watch, watched: () => ({ ...watched }),
};

document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const log = document.getElementById('log');
  try {
    await login(form.get('username'), form.get('password'));
    const result = await connect(await ticket());
    log.textContent = JSON.stringify(result, null, 2);
  } catch (error) {
    log.textContent = String(error);
  }
});
</script>
"#;
