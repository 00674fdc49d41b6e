/** An error answered by Tokenmint: `code` is its error code (e.g. `TOKEN_REVOKED`). */
export class TokenmintError extends Error {
  readonly status: number;
  readonly code: string | undefined;
}

export interface ClientOptions {
  /** Tokenmint's base URL. */
  issuer: string;
  /** Keep the refresh token in Tokenmint's HttpOnly cookie (tabs then share a session). */
  cookie?: boolean;
  /** Refresh this long before expiry (at most a quarter of the lifetime). Default 30000. */
  refreshMarginMs?: number;
  /** Retries of a refresh whose answer was lost. Default 3. */
  retries?: number;
  /** Origins besides the issuer's whose requests get the access token. Default none. */
  origins?: string[];
  /** Where device proofs are kept outside cookie mode. Default `localStorage`; `null`: none. */
  deviceStorage?: Pick<Storage, 'getItem' | 'setItem'> | null;
  fetch?: typeof fetch;
  locks?: { request<T>(name: string, callback: () => Promise<T>): Promise<T> } | null;
  BroadcastChannel?: typeof BroadcastChannel | null;
  now?: () => number;
  /** Bind tokens to a non-extractable key of this origin (RFC 9449 DPoP). Default false. */
  dpop?: boolean;
  /** For tests: WebCrypto (default `globalThis.crypto`). */
  crypto?: Crypto;
  /** For tests: where the DPoP key is kept (default `indexedDB`; `null`: this page's memory). */
  indexedDB?: IDBFactory | null;
}

export interface LoginRequest {
  username: string;
  password: string;
  tenant?: string;
  client_id?: string;
  scope?: string;
}

/** A live session, as `GET /api/sessions` describes it. */
export interface Session {
  id: string;
  user_id: string;
  tenant: string;
  client_id: string | null;
  scope: string;
  created_at: string;
  last_refreshed_at: string | null;
  expires_at: string;
  user_agent: string | null;
  ip: string | null;
  last_ip: string | null;
  /** Whether it is this client's session. */
  current: boolean;
}

export interface SessionEndedEvent extends CustomEvent<{ code: string }> {}

export interface TokenmintClient {
  login(request: LoginRequest): Promise<{ scope: string; sessionId: string }>;
  logout(): Promise<void>;
  /** The user's live sessions, newest first (every page). */
  listSessions(): Promise<Session[]>;
  /** Ends one of the user's sessions; ending this one logs this client out too. */
  endSession(id: string): Promise<void>;
  /** Ends every session of the user but this one; how many it ended. */
  endOtherSessions(): Promise<number>;
  /** `fetch` with the bearer token; refreshes once and retries once on TOKEN_EXPIRED. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  getAccessToken(): Promise<string>;
  /** A fresh token, for libraries that take an `onTokenExpired` callback. */
  onTokenExpired(): Promise<string>;
  ticket(audience: string, scope?: string): Promise<string>;
  readonly loggedIn: boolean;
  addEventListener(type: 'session-ended', listener: (event: SessionEndedEvent) => void): void;
  removeEventListener(type: 'session-ended', listener: (event: SessionEndedEvent) => void): void;
  close(): void;
}

export function createClient(options: ClientOptions): TokenmintClient;
