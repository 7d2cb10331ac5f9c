// storage.ts owns what the checkout keeps in the tab's sessionStorage: the
// cart, and the open checkout with its confirmations, so that both survive a
// reload of the tab. A duplicated tab gets a copy; placing it twice is
// refused by the server, which the UI explains.
//
// Rules: reads and writes only the store it is given (sessionStorage in the
// browser, a Map-backed fake in the unit tests); no DOM, no network; never
// changes the state (loadCheckout returns what actions.ts then restores).
// May import: state.ts (types), @bufbuild/protobuf and @tokenrelay/gen.
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { CheckoutSchema } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { AppState, SavedCheckout } from "./state.js";

/** The part of the Web Storage API used here. */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const CHECKOUT_KEY = "tokenrelay.checkout";
export const CART_KEY = "tokenrelay.cart";

export function loadCart(store: KeyValueStore): Map<string, number> {
  try {
    return new Map(JSON.parse(store.getItem(CART_KEY) ?? "[]") as [string, number][]);
  } catch {
    return new Map();
  }
}

export function saveCart(store: KeyValueStore, cart: Map<string, number>): void {
  store.setItem(CART_KEY, JSON.stringify([...cart]));
}

export function forgetCart(store: KeyValueStore): void {
  store.removeItem(CART_KEY);
}

export function forgetCheckout(store: KeyValueStore): void {
  store.removeItem(CHECKOUT_KEY);
}

/** saveCheckout saves the open checkout and its confirmations; without one it does nothing. */
export function saveCheckout(store: KeyValueStore, s: AppState): void {
  if (!s.checkout) return;
  const data = {
    checkout: toJson(CheckoutSchema, s.checkout),
    checkoutToken: s.checkoutToken,
    coupon: s.coupon,
    points: s.points,
    payment: s.payment,
    selectedMethod: s.selectedMethod,
  };
  store.setItem(CHECKOUT_KEY, JSON.stringify(data, (_k, v: unknown) => (typeof v === "bigint" ? { $bigint: v.toString() } : v)));
}

/**
 * loadCheckout returns the saved checkout, or null when there is none; a
 * saved checkout that expired before now (ms since the epoch) or cannot be
 * read is forgotten.
 */
export function loadCheckout(store: KeyValueStore, now: number): SavedCheckout | null {
  const raw = store.getItem(CHECKOUT_KEY);
  if (!raw) return null;
  try {
    const d = JSON.parse(raw, (_k, v: unknown) =>
      v !== null && typeof v === "object" && "$bigint" in v ? BigInt((v as { $bigint: string }).$bigint) : v,
    ) as Omit<SavedCheckout, "checkout"> & { checkout: JsonValue };
    const checkout = fromJson(CheckoutSchema, d.checkout);
    if (checkout.expiresAt && timestampMs(checkout.expiresAt) < now) {
      forgetCheckout(store);
      return null;
    }
    return { ...d, checkout };
  } catch {
    forgetCheckout(store);
    return null;
  }
}
