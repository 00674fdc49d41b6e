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
//! `TOKENMINT_URL`), `AUDIENCE` (`ws://<BIND>`), `TICKETS_API_KEY` (needed by `/ws`).

use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::Message;
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
        let header = decode_header(ticket).map_err(|e| format!("not a JWT: {e}"))?;
        if header.typ.as_deref() != Some("ticket+jwt") {
            return Err("not a ticket (typ)".into());
        }
        let kid = header.kid.ok_or("no kid")?;
        let mut jwk = self.jwks.read().await.find(&kid).cloned();
        if jwk.is_none() {
            // A key published since the last fetch.
            self.refresh_jwks().await?;
            jwk = self.jwks.read().await.find(&kid).cloned();
        }
        let jwk = jwk.ok_or("unknown signing key")?;
        // The algorithm comes from the published key, never from the token's header.
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse().ok())
            .ok_or("the key names no algorithm")?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key: {e}"))?;
        let mut validation = Validation::new(alg);
        validation.leeway = 0;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        decode::<Value>(ticket, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| format!("refused: {e}"))
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
    actix_web::rt::spawn(async move {
        let hello = json!({
            "verified": if offline { "offline" } else { "redeem" },
            "sub": who["sub"],
            "username": who["username"],
            "tenant_id": who["tenant_id"],
            "scope": who["scope"],
        });
        if session.text(hello.to_string()).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = messages.recv().await {
            let sent = match message {
                Message::Text(text) => session.text(text).await,
                Message::Ping(bytes) => session.pong(&bytes).await,
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
        let _ = session.close(None).await;
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
        tokenmint,
    });
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

async function login(username, password) {
  const answer = await fetch(`${config.tokenmint}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!answer.ok) throw new Error(`login: ${answer.status}`);
  access = (await answer.json()).access_token;
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

window.demo = { login, ticket, connect, logout, accessToken: () => access };

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
