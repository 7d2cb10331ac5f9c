import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { CouponsService } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import { IdentityService } from "@tokenrelay/gen/tokenrelay/identity/v1/identity_pb";
import { OrderProcessingService } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import { PaymentsService } from "@tokenrelay/gen/tokenrelay/payments/v1/payments_pb";
import { PointsService } from "@tokenrelay/gen/tokenrelay/points/v1/points_pb";
import { isSessionEnded, sessionEndedError } from "./errors.js";
import { newIdempotencyKey } from "./idempotency.js";
import { fromMessage, MemorySessionStore, type Session, type SessionStore } from "./session.js";

/** IdempotencyKeyHeader carries the idempotency key of a mutating call. */
export const IdempotencyKeyHeader = "Idempotency-Key";

/** TokenRelayOptions configures {@link createTokenRelay}. */
export interface TokenRelayOptions {
  /**
   * The gateway's base URL, e.g. "http://127.0.0.1:8080". Default: the
   * page's origin in a browser; required elsewhere (unless transport is set).
   */
  baseUrl?: string;
  /** Where the session lives. Default: in memory. */
  store?: SessionStore;
  /**
   * Builds the one transport from the SDK's interceptors. Default:
   * createConnectTransport from @connectrpc/connect-web (Connect protocol,
   * JSON). Tests pass createRouterTransport here.
   */
  transport?: (interceptors: Interceptor[]) => Transport;
  /** The fetch the default transport uses. Default: globalThis.fetch. */
  fetch?: typeof globalThis.fetch;
  /**
   * How many more times a call that may safely be repeated (read-only, or
   * carrying an idempotency key) is retried when the server or network is
   * unavailable. Default 2.
   */
  retries?: number;
  /** The first retry's delay in milliseconds, doubled after each. Default 250. */
  retryDelayMs?: number;
  /** The clock, in milliseconds since the epoch. Default Date.now. */
  now?: () => number;
  /** Called whenever the session changes: login, refresh, logout, or ended. */
  onSessionChange?: (session: Session | null) => void;
}

/** TokenRelay is the SDK: typed clients over one transport, and the session. */
export interface TokenRelay {
  readonly identity: Client<typeof IdentityService>;
  readonly orders: Client<typeof OrderProcessingService>;
  readonly coupons: Client<typeof CouponsService>;
  readonly points: Client<typeof PointsService>;
  readonly payments: Client<typeof PaymentsService>;
  /** The current session, or null when logged out. */
  session(): Session | null;
  /** Logs in and keeps the session. */
  login(username: string, password: string): Promise<Session>;
  /** Revokes the refresh token (best effort) and forgets the session. */
  logout(): Promise<void>;
  /**
   * Refreshes the access token now. Concurrent callers share one Refresh
   * call. Throws a sessionEndedError (and clears the session) when refused.
   */
  refresh(): Promise<Session>;
  /**
   * The checkout token of the open checkout: set from every StartCheckout
   * response, cleared when that checkout is placed or cancelled, and filled
   * into the checkout_token field of the domains' requests that leave it
   * empty. Settable, e.g. after restoring a checkout.
   */
  checkoutToken: string;
}

const anonymous = new Set<unknown>([IdentityService.method.login, IdentityService.method.refresh]);
const checkoutTokenServices = new Set<string>([CouponsService.typeName, PointsService.typeName, PaymentsService.typeName]);

/**
 * createTokenRelay builds the SDK: one transport (built once) whose
 * interceptors, outermost first,
 *
 *  1. attach an `Idempotency-Key` header to every mutating call (the
 *     request's idempotency_key field when set, else a fresh random UUID), so
 *     that every retry below reuses it;
 *  2. carry the checkout token into the domains' requests;
 *  3. retry calls that may safely be repeated when the server is unavailable;
 *  4. attach the access token, refreshing it first when it has expired, and
 *     once more when the gateway refuses it (single-flight: however many
 *     calls find it expired at once, one Refresh call is made).
 */
export function createTokenRelay(opts: TokenRelayOptions = {}): TokenRelay {
  const store: SessionStore = opts.store ?? new MemorySessionStore();
  const now = opts.now ?? Date.now;
  const retries = opts.retries ?? 2;
  const retryDelayMs = opts.retryDelayMs ?? 250;
  let checkout: { id: string; token: string } | null = null;
  let inflight: Promise<Session> | null = null;

  const save = (s: Session | null) => {
    store.save(s);
    opts.onSessionChange?.(s);
  };

  const idempotency: Interceptor = (next) => async (req) => {
    if (req.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS && !req.stream) {
      const field = (req.message as { idempotencyKey?: unknown }).idempotencyKey;
      if (typeof field === "string" && field !== "") {
        req.header.set(IdempotencyKeyHeader, field);
      } else if (!req.header.has(IdempotencyKeyHeader)) {
        req.header.set(IdempotencyKeyHeader, newIdempotencyKey());
      }
    }
    return next(req);
  };

  const checkoutTokens: Interceptor = (next) => async (req) => {
    if (!req.stream && checkout !== null && checkoutTokenServices.has(req.service.typeName)) {
      const msg = req.message as { checkoutToken?: unknown };
      if (msg.checkoutToken === "") msg.checkoutToken = checkout.token;
    }
    const res = await next(req);
    if (res.stream) return res;
    if (req.method === OrderProcessingService.method.startCheckout) {
      const m = res.message as { checkoutToken?: string; checkout?: { id: string } };
      if (m.checkoutToken) checkout = { id: m.checkout?.id ?? "", token: m.checkoutToken };
    } else if (
      req.method === OrderProcessingService.method.placeOrder ||
      req.method === OrderProcessingService.method.cancelCheckout
    ) {
      if (checkout !== null && (req.message as { checkoutId?: string }).checkoutId === checkout.id) checkout = null;
    }
    return res;
  };

  const retry: Interceptor = (next) => async (req) => {
    const repeatable =
      !req.stream &&
      (req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || req.header.has(IdempotencyKeyHeader));
    if (!repeatable) return next(req);
    for (let attempt = 0; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        if (attempt >= retries || !transient(err) || req.signal.aborted) throw err;
        await sleep(retryDelayMs * 2 ** attempt, req.signal);
      }
    }
  };

  const auth: Interceptor = (next) => async (req) => {
    if (anonymous.has(req.method)) return next(req);
    let s = store.load();
    if (s === null) throw sessionEndedError("you are not logged in");
    if (s.accessTokenExpiresAt > 0 && now() >= s.accessTokenExpiresAt) {
      s = await refreshFrom(s.accessToken);
    }
    if (req.stream) return authStream(next, req, s.accessToken);
    req.header.set("Authorization", `Bearer ${s.accessToken}`);
    try {
      return await next(req);
    } catch (err) {
      if (!refused(err)) throw err;
      s = await refreshFrom(s.accessToken);
      req.header.set("Authorization", `Bearer ${s.accessToken}`);
      return next(req);
    }
  };

  // authStream is auth for a server stream: the gateway's refusal arrives
  // either instead of the response or as the stream's first item, so the
  // first item is awaited before the stream is handed on.
  async function authStream(next: Parameters<Interceptor>[0], req: StreamRequest, token: string): Promise<StreamResponse> {
    const inputs: unknown[] = [];
    if (req.method.methodKind === "server_streaming") {
      for await (const m of req.message) inputs.push(m);
    }
    const attempt = async (tok: string) => {
      req.header.set("Authorization", `Bearer ${tok}`);
      const r: StreamRequest =
        req.method.methodKind === "server_streaming" ? { ...req, message: iterate(inputs) as StreamRequest["message"] } : req;
      const res = (await next(r)) as StreamResponse;
      const it = res.message[Symbol.asyncIterator]();
      const first = await it.next();
      return { ...res, message: resume(first, it) } as StreamResponse;
    };
    try {
      return await attempt(token);
    } catch (err) {
      if (!refused(err) || req.method.methodKind !== "server_streaming") throw err;
      const s = await refreshFrom(token);
      return attempt(s.accessToken);
    }
  }

  // refreshFrom returns a session whose access token is newer than stale,
  // calling Refresh at most once however many callers ask at the same time.
  function refreshFrom(stale: string): Promise<Session> {
    const cur = store.load();
    if (cur !== null && cur.accessToken !== stale && !(cur.accessTokenExpiresAt > 0 && now() >= cur.accessTokenExpiresAt)) {
      return Promise.resolve(cur); // someone else refreshed meanwhile
    }
    if (inflight === null) {
      const run = () => doRefresh(stale);
      const p = (store.lock ? store.lock(run) : run()).finally(() => {
        inflight = null;
      });
      inflight = p;
      return p;
    }
    return inflight;
  }

  async function doRefresh(stale: string): Promise<Session> {
    // Read again under the lock: another tab may have rotated the refresh
    // token already, and using the old one would revoke the session.
    const cur = store.load();
    if (cur === null) throw sessionEndedError();
    if (cur.accessToken !== stale && !(cur.accessTokenExpiresAt > 0 && now() >= cur.accessTokenExpiresAt)) return cur;
    let res;
    try {
      res = await identity.refresh({ refreshToken: cur.refreshToken });
    } catch (err) {
      const ce = ConnectError.from(err);
      if (ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded || ce.code === Code.Canceled || transient(err)) {
        throw err; // keep the session: the identity service may come back
      }
      if (store.load()?.refreshToken === cur.refreshToken) save(null);
      throw sessionEndedError("your session has ended; log in again", err);
    }
    const s = localize(fromMessage(res.session), now());
    save(s);
    return s;
  }

  const interceptors = [idempotency, checkoutTokens, retry, auth];
  const transport = opts.transport
    ? opts.transport(interceptors)
    : createConnectTransport({
        baseUrl: opts.baseUrl ?? (globalThis as { location?: { origin: string } }).location?.origin ?? "",
        interceptors,
        fetch: opts.fetch,
      });
  const identity = createClient(IdentityService, transport);

  return {
    identity,
    orders: createClient(OrderProcessingService, transport),
    coupons: createClient(CouponsService, transport),
    points: createClient(PointsService, transport),
    payments: createClient(PaymentsService, transport),
    session: () => store.load(),
    async login(username, password) {
      const res = await identity.login({ username, password });
      const s = localize(fromMessage(res.session), now());
      save(s);
      return s;
    },
    async logout() {
      const s = store.load();
      checkout = null;
      try {
        if (s !== null) await identity.logout({ refreshToken: s.refreshToken });
      } catch {
        // The session is forgotten either way; an unrevoked refresh token
        // expires on its own.
      } finally {
        save(null);
      }
    },
    refresh() {
      const s = store.load();
      if (s === null) return Promise.reject(sessionEndedError("you are not logged in"));
      return refreshFrom(s.accessToken);
    },
    get checkoutToken() {
      return checkout?.token ?? "";
    },
    set checkoutToken(token: string) {
      checkout = token === "" ? null : { id: checkoutIdOf(token), token };
    },
  };
}

// refused reports the gateway refusing the access token: Unauthenticated with
// a Bearer challenge. An Unauthenticated without one is about another
// credential (an expired checkout token) and refreshing would not help.
function refused(err: unknown): boolean {
  if (!(err instanceof ConnectError) || err.code !== Code.Unauthenticated || isSessionEnded(err)) return false;
  return /^\s*bearer\b/i.test(err.metadata.get("www-authenticate") ?? "");
}

function transient(err: unknown): boolean {
  if (err instanceof ConnectError) {
    return err.code === Code.Unavailable || (err.code === Code.Unknown && err.cause instanceof TypeError);
  }
  return err instanceof TypeError; // fetch: network failure
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(new ConnectError("the call was cancelled", Code.Canceled));
      },
      { once: true },
    );
  });
}

async function* iterate<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

async function* resume<T>(first: IteratorResult<T>, it: AsyncIterator<T>): AsyncGenerator<T> {
  if (first.done) return;
  yield first.value;
  for (;;) {
    const n = await it.next();
    if (n.done) return;
    yield n.value;
  }
}

// localize re-expresses the access token's expiry on the local clock: the
// token's own lifetime (exp - iat) counted from when it was received, so that
// a client whose clock is off neither refreshes on every call nor sends
// tokens long expired.
function localize(s: Session, receivedAt: number): Session {
  const claims = jwtClaims(s.accessToken);
  if (claims !== null && typeof claims.exp === "number" && typeof claims.iat === "number" && claims.exp > claims.iat) {
    return { ...s, accessTokenExpiresAt: receivedAt + (claims.exp - claims.iat) * 1000 };
  }
  return s;
}

function jwtClaims(jwt: string): Record<string, unknown> | null {
  const part = jwt.split(".")[1];
  if (part === undefined) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    const v: unknown = JSON.parse(json);
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function checkoutIdOf(token: string): string {
  const id = jwtClaims(token)?.order_processing_id;
  return typeof id === "string" ? id : "";
}

