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
}

export interface LoginRequest {
  username: string;
  password: string;
  tenant?: string;
  client_id?: string;
  scope?: string;
}

export interface SessionEndedEvent extends CustomEvent<{ code: string }> {}

export interface TokenmintClient {
  login(request: LoginRequest): Promise<{ scope: string; sessionId: string }>;
  logout(): Promise<void>;
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
