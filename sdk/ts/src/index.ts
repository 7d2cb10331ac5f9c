/**
 * @tokenrelay/sdk is the TypeScript SDK of tokenrelay, for browsers and Node:
 * one Connect-Web transport whose interceptors attach and transparently
 * refresh the access token (single-flight), attach idempotency keys and carry
 * the checkout token; typed clients for every public service; and a small
 * error union a UI can switch on.
 *
 * ```ts
 * const tr = createTokenRelay({ store: webStorageSessionStore(localStorage) });
 * await tr.login("shopper", "shopper-demo");
 * const { checkout } = await tr.orders.startCheckout({ items: [{ sku: "MUG-STONE", quantity: 1 }] });
 * const { discount } = await tr.coupons.confirmCoupon({ code: "WELCOME5" }); // checkout token carried
 * ```
 */
export { createTokenRelay, IdempotencyKeyHeader, type TokenRelay, type TokenRelayOptions } from "./client.js";
export { isSessionEnded, kindOf, sessionEndedError, toRpcError, type ErrorKind, type RpcError } from "./errors.js";
export { newIdempotencyKey } from "./idempotency.js";
export { formatMoney } from "./money.js";
export {
  fromMessage,
  MemorySessionStore,
  webStorageSessionStore,
  type Session,
  type SessionStore,
  type SessionUser,
} from "./session.js";
