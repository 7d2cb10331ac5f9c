import { test } from "node:test";
import assert from "node:assert/strict";
import { create, equals } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { CheckoutSchema, LineSchema } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import * as st from "../src/state.js";
import { CART_KEY, CHECKOUT_KEY, forgetCart, loadCart, loadCheckout, saveCart, saveCheckout, type KeyValueStore } from "../src/storage.js";

/** memory is a sessionStorage stand-in that shows what was written. */
function memory(): KeyValueStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
}

const NOW = Date.UTC(2030, 0, 1, 12, 0);
const eur = (minor: bigint) => ({ minor, currency: "EUR" });

function withCheckout(expiresAt: number): st.AppState {
  const s = st.initialState(null, new Map());
  const co = create(CheckoutSchema, {
    id: "co-1",
    lines: [create(LineSchema, { sku: "MUG-STONE", name: "Stone mug", quantity: 2, lineTotal: { amountMinor: 6000n, currency: "EUR" } })],
    total: { amountMinor: 6000n, currency: "EUR" },
    expiresAt: timestampFromMs(expiresAt),
  });
  st.checkoutStarted(s, co, "checkout-token");
  st.couponChosen(s, { code: "WELCOME5", token: "t-c", discount: eur(500n), expiresAt: NOW + 1 });
  st.pointsConfirmed(s, { points: 300n, token: "t-p", value: eur(300n), remainingBalance: 700n, expiresAt: NOW + 2 });
  st.cardSelected(s, "pm-4242");
  st.paymentConfirmed(s, { methodId: "pm-4242", token: "t-card", amount: eur(5200n), expiresAt: NOW + 3 });
  return s;
}

test("the cart survives a reload; a broken one is an empty cart", () => {
  const store = memory();
  assert.deepEqual([...loadCart(store)], []);
  saveCart(store, new Map([["TEA-BLACK-250G", 2], ["MUG-STONE", 1]]));
  assert.deepEqual([...loadCart(store)], [["TEA-BLACK-250G", 2], ["MUG-STONE", 1]]);
  forgetCart(store);
  assert.equal(store.data.has(CART_KEY), false);
  store.setItem(CART_KEY, "{not json");
  assert.deepEqual([...loadCart(store)], []);
});

test("the open checkout and its confirmations survive a reload, bigints included", () => {
  const store = memory();
  const s = withCheckout(NOW + 60_000);
  saveCheckout(store, s);
  const saved = loadCheckout(store, NOW);
  assert.ok(saved);
  assert.ok(equals(CheckoutSchema, saved.checkout, s.checkout!), "the same checkout message");
  assert.equal(saved.checkoutToken, "checkout-token");
  assert.deepEqual(saved.coupon, s.coupon);
  assert.deepEqual(saved.points, s.points);
  assert.equal(typeof saved.points?.remainingBalance, "bigint");
  assert.deepEqual(saved.payment, s.payment);
  assert.equal(saved.selectedMethod, "pm-4242");

  const restored = st.initialState(null, new Map());
  st.checkoutRestored(restored, saved);
  assert.equal(restored.pointsInput, "300");
  assert.deepEqual(st.remaining(restored, restored.checkout!), eur(5200n));
  assert.equal(st.isPaid(restored, restored.checkout!), true);
});

test("without an open checkout nothing is saved", () => {
  const store = memory();
  saveCheckout(store, st.initialState(null, new Map()));
  assert.equal(store.data.size, 0);
  assert.equal(loadCheckout(store, NOW), null);
});

test("an expired or unreadable saved checkout is forgotten", () => {
  const store = memory();
  saveCheckout(store, withCheckout(NOW - 1));
  assert.ok(store.data.has(CHECKOUT_KEY));
  assert.equal(loadCheckout(store, NOW), null);
  assert.equal(store.data.has(CHECKOUT_KEY), false);

  store.setItem(CHECKOUT_KEY, '{"checkout": {"total": "not money"}}');
  assert.equal(loadCheckout(store, NOW), null);
  assert.equal(store.data.has(CHECKOUT_KEY), false);
});
