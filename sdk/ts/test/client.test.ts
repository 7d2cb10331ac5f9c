// Tests of the SDK's interceptors against in-memory services
// (createRouterTransport): the single-flight refresh, refresh-token rotation
// and failure, idempotency keys across retries, the checkout token, and the
// error union.
import { test } from "node:test";
import assert from "node:assert/strict";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { CouponsService } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import { IdentityService } from "@tokenrelay/gen/tokenrelay/identity/v1/identity_pb";
import { OrderProcessingService, OrderStatus } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import { PaymentsService } from "@tokenrelay/gen/tokenrelay/payments/v1/payments_pb";
import { PointsService } from "@tokenrelay/gen/tokenrelay/points/v1/points_pb";
import {
  createTokenRelay,
  formatMoney,
  MemorySessionStore,
  isSessionEnded,
  toRpcError,
  type Session,
  type SessionStore,
} from "../src/index.js";

const T0 = Date.parse("2030-01-01T00:00:00Z");

/** jwt returns an unsigned token with iat/exp, which is all the SDK reads. */
function jwt(claims: Record<string, unknown>): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b({ alg: "EdDSA", typ: "at+jwt" })}.${b(claims)}.sig`;
}

/**
 * A fake identity service and gateway: access tokens "at-N" are valid while
 * the server's clock (fake.now) is before their exp; refresh tokens rotate
 * and a reused one revokes the session, as the real service does.
 */
class Fake {
  now = T0;
  lifetimeMs = 60_000;
  n = 0;
  refreshCalls = 0;
  refreshGate: Promise<void> = Promise.resolve();
  failRefreshWith: Code | null = null;
  valid = new Map<string, number>(); // access token -> exp (ms)
  refreshTokens = new Map<string, boolean>(); // refresh token -> still usable
  revoked = false;
  seenKeys: string[] = [];
  unavailableOnce = new Set<string>(); // procedures failing once with Unavailable

  issue() {
    this.n++;
    const iat = this.now;
    const exp = this.now + this.lifetimeMs;
    const accessToken = jwt({ sub: "usr_1", iat: iat / 1000, exp: exp / 1000, n: this.n });
    const refreshToken = `rt-${this.n}`;
    this.valid.set(accessToken, exp);
    this.refreshTokens.set(refreshToken, true);
    return {
      accessToken,
      accessTokenExpiresAt: timestampFromMs(exp),
      refreshToken,
      refreshTokenExpiresAt: timestampFromMs(this.now + 86_400_000),
      user: { id: "usr_1", username: "shopper", displayName: "Shopper", scopes: ["shop"] },
    };
  }

  /** gate is what the gateway does: refuse a missing or expired token with a challenge. */
  gate(ctx: HandlerContext) {
    const key = ctx.requestHeader.get("Idempotency-Key");
    if (key !== null) this.seenKeys.push(`${ctx.method.name}:${key}`);
    if (this.unavailableOnce.delete(ctx.method.name)) {
      throw new ConnectError("try again", Code.Unavailable);
    }
    const tok = (ctx.requestHeader.get("Authorization") ?? "").replace(/^Bearer /, "");
    const exp = this.valid.get(tok);
    if (exp === undefined || this.now >= exp || this.revoked) {
      throw new ConnectError("access token: token expired", Code.Unauthenticated, {
        "WWW-Authenticate": 'Bearer error="invalid_token"',
      });
    }
  }

  routes = (router: ConnectRouter) => {
    const self = this;
    router.service(IdentityService, {
      login: () => ({ session: this.issue() }),
      refresh: async (req) => {
        this.refreshCalls++;
        await this.refreshGate;
        if (this.failRefreshWith !== null) throw new ConnectError("refresh token refused", this.failRefreshWith);
        if (this.refreshTokens.get(req.refreshToken) !== true) {
          this.revoked = true; // reuse: the family is revoked
          throw new ConnectError("refresh token is not valid", Code.Unauthenticated);
        }
        this.refreshTokens.set(req.refreshToken, false);
        return { session: this.issue() };
      },
      logout: () => ({}),
    });
    router.service(OrderProcessingService, {
      listProducts: (_req, ctx) => {
        this.gate(ctx);
        return { products: [{ sku: "MUG-STONE", name: "Mug" }] };
      },
      startCheckout: (_req, ctx) => {
        this.gate(ctx);
        return { checkout: { id: "op_1" }, checkoutToken: jwt({ order_processing_id: "op_1" }) };
      },
      placeOrder: (req, ctx) => {
        this.gate(ctx);
        return { order: { id: "ord_1", checkoutId: req.checkoutId, status: OrderStatus.PENDING } };
      },
      watchOrder: async function* (req, ctx) {
        self.gate(ctx);
        for (const status of [OrderStatus.PENDING, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED]) {
          yield { order: { id: req.orderId, status } };
        }
      },
    });
    router.service(CouponsService, {
      confirmCoupon: (req, ctx) => {
        this.gate(ctx);
        if (req.checkoutToken === "") throw new ConnectError("checkout_token is required", Code.InvalidArgument);
        if (req.checkoutToken === "expired") throw new ConnectError("checkout token: token expired", Code.Unauthenticated);
        return { confirmationToken: `ct-${req.code}`, discount: { amountMinor: 500n, currency: "EUR" } };
      },
    });
    router.service(PointsService, {
      confirmPoints: (req, ctx) => {
        this.gate(ctx);
        if (req.points > 1000n) throw new ConnectError("not enough points", Code.FailedPrecondition);
        return { confirmationToken: "ct-points", value: { amountMinor: req.points, currency: "EUR" } };
      },
    });
    router.service(PaymentsService, {
      listPaymentMethods: (_req, ctx) => {
        this.gate(ctx);
        return { paymentMethods: [{ id: "pm_1", last4: "4242" }] };
      },
    });
  };
}

function setup(opts: { store?: SessionStore } = {}) {
  const f = new Fake();
  const sessions: (Session | null)[] = [];
  const tr = createTokenRelay({
    transport: (interceptors) => createRouterTransport(f.routes, { transport: { interceptors } }),
    store: opts.store,
    now: () => f.now,
    retryDelayMs: 1,
    onSessionChange: (s) => sessions.push(s),
  });
  return { tr, fake: f, sessions };
}

test("a call carries the access token after login", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  const res = await tr.orders.listProducts({});
  assert.equal(res.products[0]?.sku, "MUG-STONE");
  assert.equal(fake.refreshCalls, 0);
});

test("without a session a call fails as sessionEnded without reaching the server", async () => {
  const { tr } = setup();
  await assert.rejects(tr.orders.listProducts({}), (err: unknown) => {
    const e = toRpcError(err);
    return isSessionEnded(err) && e.kind === "unauthenticated" && e.sessionEnded;
  });
});

test("single flight: N concurrent calls with an expired token make exactly one Refresh call and all succeed", async () => {
  const { tr, fake } = setup();
  const first = await tr.login("shopper", "shopper-demo");
  fake.now += fake.lifetimeMs + 1; // the access token has expired, on both clocks
  let release!: () => void;
  fake.refreshGate = new Promise((r) => (release = r));
  const calls = Array.from({ length: 8 }, (_, i) =>
    i % 2 === 0 ? tr.orders.listProducts({}) : tr.payments.listPaymentMethods({}),
  );
  await new Promise((r) => setTimeout(r, 10));
  release();
  const results = await Promise.all(calls);
  assert.equal(results.length, 8);
  assert.equal(fake.refreshCalls, 1);
  const s = tr.session();
  assert.notEqual(s?.accessToken, first.accessToken);
  assert.notEqual(s?.refreshToken, first.refreshToken, "the refresh token was rotated");
  assert.equal(fake.revoked, false);
});

test("single flight when only the server knows: N calls refused by the gateway refresh once and are retried", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  // The client's clock says the token is still good; the gateway refuses it
  // (a skewed clock, or a revoked key).
  fake.valid.clear();
  const calls = Array.from({ length: 6 }, () => tr.orders.listProducts({}));
  const results = await Promise.all(calls);
  assert.equal(results.length, 6);
  assert.equal(fake.refreshCalls, 1);
  assert.equal(fake.revoked, false, "no refresh token was used twice");
});

test("a rotated refresh token is used for the next refresh", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  for (let i = 0; i < 3; i++) {
    fake.now += fake.lifetimeMs + 1;
    await tr.orders.listProducts({});
  }
  assert.equal(fake.refreshCalls, 3);
  assert.equal(fake.revoked, false);
});

test("a server stream refused by the gateway is refreshed and restarted", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  fake.valid.clear();
  const statuses: OrderStatus[] = [];
  for await (const res of tr.orders.watchOrder({ orderId: "ord_1" })) statuses.push(res.order!.status);
  assert.deepEqual(statuses, [OrderStatus.PENDING, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED]);
  assert.equal(fake.refreshCalls, 1);
});

test("a refused refresh clears the session and surfaces unauthenticated once for every waiting call", async () => {
  const { tr, fake, sessions } = setup();
  await tr.login("shopper", "shopper-demo");
  fake.now += fake.lifetimeMs + 1;
  fake.failRefreshWith = Code.Unauthenticated;
  const results = await Promise.allSettled([tr.orders.listProducts({}), tr.orders.listProducts({}), tr.points.confirmPoints({ points: 1n })]);
  assert.equal(fake.refreshCalls, 1);
  for (const r of results) {
    assert.equal(r.status, "rejected");
    const e = toRpcError((r as PromiseRejectedResult).reason);
    assert.equal(e.kind, "unauthenticated");
    assert.equal(e.sessionEnded, true);
  }
  assert.equal(tr.session(), null);
  assert.equal(sessions.at(-1), null, "onSessionChange saw the end");
});

test("a refresh that fails for want of the server keeps the session", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  fake.now += fake.lifetimeMs + 1;
  fake.failRefreshWith = Code.Unavailable;
  await assert.rejects(tr.orders.listProducts({}), (err: unknown) => toRpcError(err).kind === "unavailable");
  assert.notEqual(tr.session(), null);
  fake.failRefreshWith = null;
  await tr.orders.listProducts({});
});

test("unauthenticated about another credential (an expired checkout token) does not refresh", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  await assert.rejects(tr.coupons.confirmCoupon({ checkoutToken: "expired", code: "WELCOME5" }), (err: unknown) => {
    const e = toRpcError(err);
    return e.kind === "unauthenticated" && !e.sessionEnded && e.message === "checkout token: token expired";
  });
  assert.equal(fake.refreshCalls, 0);
  assert.notEqual(tr.session(), null);
});

test("another store user's refresh is adopted instead of reusing the old refresh token", async () => {
  // Two clients (two tabs) over one store: the second finds the session
  // already refreshed by the first and must not refresh with the rotated
  // token.
  const store = new MemorySessionStore();
  const a = setup({ store });
  await a.tr.login("shopper", "shopper-demo");
  a.fake.now += a.fake.lifetimeMs + 1;
  const stale = store.load()!;
  await a.tr.orders.listProducts({}); // a refreshes
  assert.equal(a.fake.refreshCalls, 1);
  assert.notEqual(store.load()!.accessToken, stale.accessToken);
  const b = createTokenRelay({
    transport: (interceptors) => createRouterTransport(a.fake.routes, { transport: { interceptors } }),
    store,
    now: () => a.fake.now,
  });
  await b.orders.listProducts({});
  assert.equal(a.fake.refreshCalls, 1);
  assert.equal(a.fake.revoked, false);
});

test("a mutating call carries a fresh idempotency key, and its retry reuses it", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  fake.unavailableOnce.add("PlaceOrder");
  await tr.orders.placeOrder({ checkoutId: "op_1", confirmationTokens: ["a"] });
  await tr.orders.placeOrder({ checkoutId: "op_1", confirmationTokens: ["a"] });
  const keys = fake.seenKeys.filter((k) => k.startsWith("PlaceOrder:")).map((k) => k.slice("PlaceOrder:".length));
  assert.equal(keys.length, 3, "the first call was tried twice, the second once");
  assert.equal(keys[0], keys[1], "the retry reused the key");
  assert.notEqual(keys[1], keys[2], "a new logical call has a new key");
  assert.match(keys[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("a retry after an access-token refresh reuses the idempotency key", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  fake.valid.clear(); // the gateway refuses the first attempt
  await tr.orders.placeOrder({ checkoutId: "op_1", confirmationTokens: ["a"] });
  const keys = fake.seenKeys.filter((k) => k.startsWith("PlaceOrder:"));
  assert.equal(keys.length, 2);
  assert.equal(keys[0], keys[1]);
});

test("the request's idempotency_key field is sent as the header too", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  await tr.orders.placeOrder({ checkoutId: "op_1", confirmationTokens: ["a"], idempotencyKey: "op_1-attempt" });
  assert.deepEqual(
    fake.seenKeys.filter((k) => k.startsWith("PlaceOrder:")),
    ["PlaceOrder:op_1-attempt"],
  );
});

test("read-only calls carry no idempotency key", async () => {
  const { tr, fake } = setup();
  await tr.login("shopper", "shopper-demo");
  await tr.orders.listProducts({});
  assert.deepEqual(fake.seenKeys.filter((k) => k.startsWith("ListProducts:")), []);
});

test("the checkout token from StartCheckout is carried into Confirm calls until the order is placed", async () => {
  const { tr } = setup();
  await tr.login("shopper", "shopper-demo");
  await assert.rejects(tr.coupons.confirmCoupon({ code: "WELCOME5" }), (err: unknown) => toRpcError(err).kind === "invalid");
  await tr.orders.startCheckout({ items: [{ sku: "MUG-STONE", quantity: 1 }] });
  assert.notEqual(tr.checkoutToken, "");
  const res = await tr.coupons.confirmCoupon({ code: "WELCOME5" });
  assert.equal(res.confirmationToken, "ct-WELCOME5");
  await tr.orders.placeOrder({ checkoutId: "op_1", confirmationTokens: [res.confirmationToken] });
  assert.equal(tr.checkoutToken, "");
});

test("errors become the typed union", async () => {
  const { tr } = setup();
  await tr.login("shopper", "shopper-demo");
  await tr.orders.startCheckout({ items: [] });
  await assert.rejects(tr.points.confirmPoints({ points: 5000n }), (err: unknown) => {
    const e = toRpcError(err);
    return e.kind === "refused" && e.code === Code.FailedPrecondition && e.codeName === "failed_precondition" && e.message === "not enough points";
  });
  const cases: [Code, string][] = [
    [Code.PermissionDenied, "forbidden"],
    [Code.InvalidArgument, "invalid"],
    [Code.NotFound, "not_found"],
    [Code.AlreadyExists, "conflict"],
    [Code.FailedPrecondition, "refused"],
    [Code.Unavailable, "unavailable"],
    [Code.Internal, "unknown"],
  ];
  for (const [code, kind] of cases) assert.equal(toRpcError(new ConnectError("x", code)).kind, kind);
  assert.equal(toRpcError(new TypeError("Failed to fetch")).kind, "unavailable");
});

test("logout forgets the session", async () => {
  const { tr } = setup();
  await tr.login("shopper", "shopper-demo");
  await tr.logout();
  assert.equal(tr.session(), null);
});

test("formatMoney renders minor units exactly", () => {
  assert.equal(formatMoney({ amountMinor: 6180n, currency: "EUR" }, "en-GB"), "€61.80");
  assert.equal(formatMoney({ amountMinor: -500n, currency: "EUR" }, "en-GB"), "-€5.00");
  assert.equal(formatMoney({ amountMinor: 1234n, currency: "JPY" }, "en-GB"), "JP¥1,234");
  assert.equal(formatMoney({ amountMinor: 900719925474099312n, currency: "EUR" }, "en-GB"), "€9,007,199,254,740,993.12");
  assert.equal(formatMoney(undefined), "–");
});
