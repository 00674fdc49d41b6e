// Type-checked by `npx tsc` (never run): every declaration of index.d.ts in use, as an
// app would write it. A declaration that drifts from this use fails the check.
import { createClient, TokenmintError, type Session, type TokenmintClient } from '../src/index.js';

async function app(): Promise<void> {
  const auth: TokenmintClient = createClient({
    issuer: 'https://id.example.com',
    cookie: true,
    origins: ['https://api.example.com'],
    refreshMarginMs: 30_000,
    retries: 3,
    deviceStorage: null,
    dpop: true,
    indexedDB: null,
  });
  const { scope, sessionId }: { scope: string; sessionId: string } = await auth.login({
    username: 'alice',
    password: 'correct horse battery staple',
    tenant: 'acme',
    client_id: 'web',
    scope: 'read',
  });
  const response: Response = await auth.fetch('https://api.example.com/orders', {
    method: 'GET',
  });
  const token: string = await auth.getAccessToken();
  const fresh: string = await auth.onTokenExpired();
  const ticket: string = await auth.ticket('wss://agents.example', 'read');
  const loggedIn: boolean = auth.loggedIn;
  const sessions: Session[] = await auth.listSessions();
  const others = sessions.filter((s) => !s.current);
  const where: string | null = others.length > 0 ? others[0].user_agent ?? others[0].ip : null;
  if (others.length > 0) await auth.endSession(others[0].id);
  const ended: number = await auth.endOtherSessions();
  console.log(where, ended, sessions[0]?.last_refreshed_at, sessions[0]?.expires_at);
  const onEnded = (event: CustomEvent<{ code: string }>) => console.log(event.detail.code);
  auth.addEventListener('session-ended', onEnded);
  auth.removeEventListener('session-ended', onEnded);
  await auth.logout();
  auth.close();
  try {
    await auth.getAccessToken();
  } catch (e) {
    if (e instanceof TokenmintError) {
      const status: number = e.status;
      const code: string | undefined = e.code;
      console.log(status, code);
    }
  }
  console.log(scope, sessionId, response.status, token, fresh, ticket, loggedIn);
}

void app;
