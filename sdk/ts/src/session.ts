import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Session as SessionMessage } from "@tokenrelay/gen/tokenrelay/identity/v1/identity_pb";

/**
 * Session is what the SDK keeps of a login: plain JSON, so that a
 * {@link SessionStore} can persist it as is.
 */
export interface Session {
  /** The access token (at+jwt), sent as `Authorization: Bearer`. */
  readonly accessToken: string;
  /** When the access token expires, in milliseconds since the epoch. */
  readonly accessTokenExpiresAt: number;
  /** The opaque refresh token; rotated on every refresh. */
  readonly refreshToken: string;
  /** When the refresh token expires, in milliseconds since the epoch. */
  readonly refreshTokenExpiresAt: number;
  /** The user, as Login returned it. */
  readonly user: SessionUser;
}

/** SessionUser is the logged-in user. */
export interface SessionUser {
  readonly id: string;
  readonly username: string;
  readonly displayName: string;
  readonly scopes: readonly string[];
}

/**
 * SessionStore keeps the session between calls (and, for a browser, between
 * page loads and across tabs). The SDK reads it before every call, so a
 * session written by another tab is picked up at once.
 */
export interface SessionStore {
  load(): Session | null;
  save(session: Session | null): void;
  /**
   * Optional: runs fn while holding a lock shared by every client of this
   * store, so that two tabs never refresh with the same refresh token (the
   * identity service treats a reused refresh token as theft and revokes the
   * session). Without it, refreshes are single-flight per client only.
   */
  lock?<T>(fn: () => Promise<T>): Promise<T>;
}

/** MemorySessionStore keeps the session in memory (Node, tests). */
export class MemorySessionStore implements SessionStore {
  #session: Session | null;
  constructor(session: Session | null = null) {
    this.#session = session;
  }
  load(): Session | null {
    return this.#session;
  }
  save(session: Session | null): void {
    this.#session = session;
  }
}

/**
 * webStorageSessionStore keeps the session in a Web Storage area under key,
 * and, when the browser has the Web Locks API, serializes refreshes across
 * tabs with a lock of the same name. Use localStorage to share the login
 * between tabs (refreshes then coordinate through the lock), sessionStorage
 * for one login per tab.
 */
export function webStorageSessionStore(storage: Storage, key = "tokenrelay.session"): SessionStore {
  const store: SessionStore = {
    load() {
      const raw = storage.getItem(key);
      if (raw === null) return null;
      try {
        const s = JSON.parse(raw) as Partial<Session>;
        if (typeof s.accessToken !== "string" || typeof s.refreshToken !== "string" || s.user === undefined) {
          return null;
        }
        return s as Session;
      } catch {
        return null;
      }
    },
    save(session) {
      if (session === null) storage.removeItem(key);
      else storage.setItem(key, JSON.stringify(session));
    },
  };
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (locks !== undefined) {
    store.lock = <T>(fn: () => Promise<T>) => locks.request(key, fn) as Promise<T>;
  }
  return store;
}

/** fromMessage converts a Login or Refresh session message. */
export function fromMessage(s: SessionMessage | undefined): Session {
  if (s === undefined || s.accessToken === "" || s.refreshToken === "") {
    throw new Error("the identity service returned no session");
  }
  return {
    accessToken: s.accessToken,
    accessTokenExpiresAt: s.accessTokenExpiresAt ? timestampMs(s.accessTokenExpiresAt) : 0,
    refreshToken: s.refreshToken,
    refreshTokenExpiresAt: s.refreshTokenExpiresAt ? timestampMs(s.refreshTokenExpiresAt) : 0,
    user: {
      id: s.user?.id ?? "",
      username: s.user?.username ?? "",
      displayName: s.user?.displayName ?? "",
      scopes: [...(s.user?.scopes ?? [])],
    },
  };
}
