import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  CheckoutSchema,
  OrderSchema,
  OrderStatus,
  ProductSchema,
  type Checkout,
} from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import { AuditEventSchema } from "@tokenrelay/gen/tokenrelay/capability/v1/capability_pb";
import { PaymentMethodSchema } from "@tokenrelay/gen/tokenrelay/payments/v1/payments_pb";
import type { Session } from "@tokenrelay/sdk";
import { CHECKOUT_EXPIRED } from "../src/messages.js";
import * as st from "../src/state.js";

const eur = (minor: bigint) => ({ minor, currency: "EUR" });
const money = (amountMinor: bigint) => ({ amountMinor, currency: "EUR" });

const session: Session = {
  accessToken: "at",
  accessTokenExpiresAt: 0,
  refreshToken: "rt",
  refreshTokenExpiresAt: 0,
  user: { id: "u1", username: "shopper", displayName: "Shopper", scopes: [] },
};

const products = [
  create(ProductSchema, { sku: "TEA-BLACK-250G", name: "Black tea", unitPrice: money(1590n) }),
  create(ProductSchema, { sku: "MUG-STONE", name: "Stone mug", unitPrice: money(3000n) }),
];

/** checkout is a 61.80 EUR checkout, the e2e tests' cart. */
const checkout = (total = 6180n): Checkout =>
  create(CheckoutSchema, { id: "co-1", total: money(total), expiresAt: timestampFromMs(Date.UTC(2030, 0, 1)) });

const coupon = (discount: bigint, expiresAt = 1000): st.CouponChoice => ({ code: "WELCOME5", token: "t-coupon", discount: eur(discount), expiresAt });
const points = (n: bigint, expiresAt = 1000): st.PointsChoice => ({ points: n, token: "t-points", value: eur(n), remainingBalance: 1000n - n, expiresAt });
const payment = (amount: bigint, methodId = "pm-4242"): st.PaymentChoice => ({ methodId, token: "t-card", amount: eur(amount), expiresAt: 1000 });
const options = (balance: bigint | null = 1000n): st.Options => ({
  coupons: [],
  balance,
  methods: [create(PaymentMethodSchema, { id: "pm-4242", last4: "4242" }), create(PaymentMethodSchema, { id: "pm-0341", last4: "0341" })],
});

/** open is a logged-in state with an open checkout and its options loaded. */
function open(total = 6180n): { s: st.AppState; co: Checkout } {
  const s = st.initialState(session, new Map());
  const co = checkout(total);
  st.checkoutStarted(s, co, "checkout-token");
  st.optionsLoaded(s, options());
  return { s, co };
}

test("initialState starts logged in or out with the saved cart and nothing else", () => {
  const cart = new Map([["MUG-STONE", 2]]);
  const s = st.initialState(null, cart);
  assert.equal(s.session, null);
  assert.equal(s.cart, cart);
  assert.equal(s.checkout, null);
  assert.equal(s.order, null);
  assert.equal(s.loginName, "shopper");
  assert.equal(s.busy.size, 0);
  assert.equal(s.errors.size, 0);
  assert.equal(st.initialState(session, new Map()).session, session);
});

test("addToCart adds, counts up to 99, counts down and drops a line at 0", () => {
  const s = st.initialState(session, new Map());
  st.addToCart(s, "TEA-BLACK-250G", 1);
  st.addToCart(s, "TEA-BLACK-250G", 1);
  st.addToCart(s, "MUG-STONE", 1);
  assert.deepEqual([...s.cart], [["TEA-BLACK-250G", 2], ["MUG-STONE", 1]]);
  st.addToCart(s, "MUG-STONE", -1);
  assert.equal(s.cart.has("MUG-STONE"), false);
  st.addToCart(s, "MUG-STONE", -1); // nothing to take away
  assert.equal(s.cart.has("MUG-STONE"), false);
  st.addToCart(s, "TEA-BLACK-250G", 500);
  assert.equal(s.cart.get("TEA-BLACK-250G"), st.MAX_QUANTITY);
  assert.deepEqual(st.cartItems(s), [{ sku: "TEA-BLACK-250G", quantity: 99 }]);
});

test("cartLines and cartTotal price the cart from the catalog", () => {
  const s = st.initialState(session, new Map());
  assert.deepEqual(st.cartTotal(st.cartLines(s)), eur(0n));
  st.addToCart(s, "TEA-BLACK-250G", 2);
  st.addToCart(s, "MUG-STONE", 1);
  assert.deepEqual(st.cartTotal(st.cartLines(s)), eur(0n), "no catalog yet: no prices, EUR");
  st.productsLoaded(s, products);
  const lines = st.cartLines(s);
  assert.deepEqual(lines.map((l) => [l.sku, l.qty, l.product?.name]), [["TEA-BLACK-250G", 2, "Black tea"], ["MUG-STONE", 1, "Stone mug"]]);
  assert.deepEqual(st.cartTotal(lines), eur(6180n));
  st.addToCart(s, "GONE", 1); // no longer in the catalog: counted at 0
  assert.deepEqual(st.cartTotal(st.cartLines(s)), eur(6180n));
});

test("a call marks its step busy, clears its old error and records a failure", () => {
  const { s } = open();
  st.setError(s, "coupon", "old");
  st.callStarted(s, "coupon");
  assert.equal(s.busy.has("coupon"), true);
  assert.equal(s.errors.has("coupon"), false);
  assert.equal(st.checkoutBusy(s), true);
  st.callFailed(s, "coupon", "This coupon was already used.");
  st.callEnded(s, "coupon");
  assert.equal(s.busy.has("coupon"), false);
  assert.equal(st.checkoutBusy(s), false);
  assert.equal(s.errors.get("coupon"), "This coupon was already used.");
  assert.equal(s.checkoutClosed, false, "a refused coupon leaves the checkout open");
  st.callStarted(s, "orders");
  assert.equal(st.checkoutBusy(s), false, "loading the history does not block the checkout");
});

test("a failure saying the checkout is over closes it", () => {
  for (const text of [CHECKOUT_EXPIRED, "This checkout was already placed as an order, perhaps in another tab.", "This checkout was cancelled."]) {
    const { s, co } = open();
    st.paymentConfirmed(s, payment(6180n));
    assert.equal(st.isPaid(s, co), true);
    st.callFailed(s, "place", text);
    assert.equal(s.checkoutClosed, true, text);
    assert.equal(s.errors.get("place"), text);
    assert.equal(st.isPaid(s, co), false, "a closed checkout cannot be placed");
    assert.equal(st.canPlace(s, co), false);
    assert.equal(st.needsCard(s, co), false, "no card hint on a closed checkout");
  }
});

test("remaining, isPaid and canPlace follow the coupon, the points and the card", () => {
  const { s, co } = open();
  assert.deepEqual(st.remaining(s, co), eur(6180n));
  assert.equal(st.isPaid(s, co), false);
  assert.equal(st.needsCard(s, co), true);
  st.couponChosen(s, coupon(500n));
  st.pointsConfirmed(s, points(300n));
  assert.deepEqual(st.remaining(s, co), eur(5380n));
  st.cardSelected(s, "pm-4242");
  st.paymentConfirmed(s, payment(5380n));
  assert.equal(st.isPaid(s, co), true);
  assert.equal(st.canPlace(s, co), true);
  assert.equal(st.needsCard(s, co), false);
  st.callStarted(s, "points");
  assert.equal(st.canPlace(s, co), false, "not while a confirmation is under way");
  st.callEnded(s, "points");
  st.couponChosen(s, null); // the hold is now for less than what is left
  assert.equal(st.isPaid(s, co), false);
  assert.equal(st.canPlace(s, co), false);
});

test("a checkout paid by coupon and points needs no card, but its options", () => {
  const { s, co } = open(800n);
  st.couponChosen(s, coupon(500n));
  st.pointsConfirmed(s, points(300n));
  assert.equal(st.remaining(s, co).minor, 0n);
  assert.equal(st.isPaid(s, co), true);
  assert.equal(st.canPlace(s, co), true);
  s.options = null; // as before the options are loaded (set directly: no transition un-loads them)
  assert.equal(st.canPlace(s, co), false);
  assert.equal(st.needsCard(s, co), false);
});

test("maxPoints is the balance, at most what the coupon leaves to pay", () => {
  const { s, co } = open();
  assert.equal(st.maxPoints(s, co), 1000n, "the balance is the limit");
  st.optionsLoaded(s, options(100_000n));
  assert.equal(st.maxPoints(s, co), 6180n, "the total is the limit");
  st.couponChosen(s, coupon(500n));
  assert.equal(st.maxPoints(s, co), 5680n);
  st.optionsLoaded(s, options(null));
  assert.equal(st.maxPoints(s, co), 0n, "no balance known: none");
});

test("pointsLimit names the tighter limit: 5,000 points against a balance of 700 break the balance, not the order", () => {
  const { s, co } = open(); // 61.80 EUR: the order allows 6,180 points
  st.optionsLoaded(s, options(700n));
  assert.deepEqual(st.pointsLimit(s, co), { max: 700n, by: "balance" });
  assert.deepEqual(st.pointsOverLimit(s, co, 5000n), { max: 700n, by: "balance" });
  assert.equal(st.pointsOverLimit(s, co, 700n), null, "the whole balance is fine");
  st.optionsLoaded(s, options(100_000n));
  assert.deepEqual(st.pointsOverLimit(s, co, 7000n), { max: 6180n, by: "order" }, "a large balance: the order is the limit");
  st.couponChosen(s, coupon(500n));
  assert.deepEqual(st.pointsLimit(s, co), { max: 5680n, by: "order" }, "what the coupon leaves to pay");
  st.couponChosen(s, coupon(9000n));
  assert.deepEqual(st.pointsLimit(s, co), { max: 0n, by: "order" }, "a coupon covering everything leaves nothing for points");
  st.optionsLoaded(s, options(null));
  assert.equal(st.pointsOverLimit(s, co, 5000n), null, "no balance known: the Points domain decides");
});

test("cardToReconfirm names the selected card when its hold no longer matches what is left", () => {
  const { s, co } = open();
  assert.equal(st.cardToReconfirm(s, co), "", "no card selected");
  st.cardSelected(s, "pm-4242");
  assert.equal(st.cardToReconfirm(s, co), "pm-4242", "selected but no hold");
  st.paymentConfirmed(s, payment(6180n));
  assert.equal(st.cardToReconfirm(s, co), "", "the hold is for what is left");
  st.couponChosen(s, coupon(500n));
  assert.equal(st.cardToReconfirm(s, co), "pm-4242", "the coupon changed what is left");
  st.pointsConfirmed(s, points(5680n));
  assert.equal(st.cardToReconfirm(s, co), "", "nothing left to pay by card");
});

test("a refused card is unselected; a cleared payment keeps the selection", () => {
  const { s } = open();
  st.cardSelected(s, "pm-0341");
  st.paymentConfirmed(s, payment(6180n, "pm-0341"));
  st.paymentCleared(s);
  assert.equal(s.payment, null);
  assert.equal(s.selectedMethod, "pm-0341");
  st.paymentRefused(s);
  assert.equal(s.selectedMethod, "");
  assert.equal(st.methodLast4(s, "pm-0341"), "0341");
  assert.equal(st.methodLast4(s, "pm-none"), "");
});

test("parsePoints accepts only a whole number of at least 1", () => {
  assert.equal(st.parsePoints(" 300 "), 300n);
  assert.equal(st.parsePoints("12345678901234567890"), 12345678901234567890n);
  for (const bad of ["", "0", "00", "-1", "1.5", "1e3", "abc", "3 00"]) assert.equal(st.parsePoints(bad), null, JSON.stringify(bad));
});

test("removing the points clears them and the field", () => {
  const { s } = open();
  st.setPointsInput(s, "300");
  st.pointsConfirmed(s, points(300n));
  st.pointsRemoved(s);
  assert.equal(s.points, null);
  assert.equal(s.pointsInput, "");
});

test("confirmationTokens are the confirmed ones, coupon, points, card", () => {
  const { s } = open();
  assert.deepEqual(st.confirmationTokens(s), []);
  st.paymentConfirmed(s, payment(5680n));
  st.couponChosen(s, coupon(500n));
  assert.deepEqual(st.confirmationTokens(s), ["t-coupon", "t-card"]);
  st.pointsConfirmed(s, points(300n));
  assert.deepEqual(st.confirmationTokens(s), ["t-coupon", "t-points", "t-card"]);
});

test("starting a checkout drops the previous one's choices and the shown order", () => {
  const { s } = open();
  st.couponChosen(s, coupon(500n));
  st.pointsConfirmed(s, points(300n));
  st.setPointsInput(s, "300");
  st.cardSelected(s, "pm-4242");
  st.paymentConfirmed(s, payment(5380n));
  st.callFailed(s, "place", CHECKOUT_EXPIRED);
  st.orderUpdated(s, create(OrderSchema, { id: "o-0" }));
  const next = checkout(3000n);
  st.checkoutStarted(s, next, "token-2");
  assert.equal(s.checkout, next);
  assert.equal(s.checkoutToken, "token-2");
  assert.equal(s.checkoutClosed, false);
  assert.deepEqual([s.coupon, s.points, s.payment, s.options, s.order], [null, null, null, null, null]);
  assert.deepEqual([s.selectedMethod, s.pointsInput], ["", ""]);
});

test("a restored checkout brings back its confirmations and the points field", () => {
  const s = st.initialState(session, new Map());
  const co = checkout();
  st.checkoutRestored(s, { checkout: co, checkoutToken: "tok", coupon: coupon(500n), points: points(300n), payment: payment(5380n), selectedMethod: "pm-4242" });
  assert.equal(s.checkout, co);
  assert.equal(s.checkoutToken, "tok");
  assert.equal(s.pointsInput, "300");
  assert.equal(s.selectedMethod, "pm-4242");
  assert.equal(st.isPaid(s, co), true);
  st.checkoutRestored(s, { checkout: co, checkoutToken: "tok", coupon: null, points: null, payment: null, selectedMethod: "" });
  assert.equal(s.pointsInput, "");
});

test("leaving a checkout clears it, its choices and every error", () => {
  const { s } = open();
  st.couponChosen(s, coupon(500n));
  st.cardSelected(s, "pm-4242");
  st.callFailed(s, "place", CHECKOUT_EXPIRED);
  st.setError(s, "orders", "Something went wrong: boom");
  st.checkoutLeft(s);
  assert.equal(s.checkout, null);
  assert.equal(s.checkoutToken, "");
  assert.equal(s.checkoutClosed, false);
  assert.equal(s.coupon, null);
  assert.equal(s.selectedMethod, "");
  assert.equal(s.errors.size, 0);
});

test("placing the order swaps the checkout for the order and empties the cart", () => {
  const { s } = open();
  st.addToCart(s, "MUG-STONE", 1);
  st.couponChosen(s, coupon(500n));
  st.setPointsInput(s, "300");
  const order = create(OrderSchema, { id: "o-1", status: OrderStatus.PENDING });
  st.orderPlaced(s, order);
  assert.equal(s.order, order);
  assert.equal(s.checkout, null);
  assert.equal(s.checkoutToken, "");
  assert.equal(s.cart.size, 0);
  assert.deepEqual([s.coupon, s.points, s.payment, s.selectedMethod, s.pointsInput], [null, null, null, "", ""]);
  const later = create(OrderSchema, { id: "o-1", status: OrderStatus.COMPLETED });
  st.orderUpdated(s, later);
  assert.equal(s.order, later);
  st.setError(s, "watch", "lost");
  st.orderDismissed(s);
  assert.equal(s.order, null);
  assert.equal(s.errors.has("watch"), false);
});

test("isFinal: only completed, failed and operator-bound orders are over", () => {
  const final = (status: OrderStatus) => st.isFinal(create(OrderSchema, { status }));
  assert.equal(final(OrderStatus.COMPLETED), true);
  assert.equal(final(OrderStatus.FAILED), true);
  assert.equal(final(OrderStatus.NEEDS_OPERATOR), true);
  assert.equal(final(OrderStatus.PENDING), false);
  assert.equal(final(OrderStatus.IN_PROGRESS), false);
  assert.equal(final(OrderStatus.COMPENSATING), false);
});

test("an ended session hides the checkout and the order but keeps the cart and history", () => {
  const { s } = open();
  st.addToCart(s, "MUG-STONE", 1);
  st.ordersLoaded(s, [create(OrderSchema, { id: "o-1" })]);
  st.sessionEnded(s);
  assert.equal(s.session, null);
  assert.equal(s.checkout, null);
  assert.equal(s.order, null);
  assert.equal(s.cart.get("MUG-STONE"), 1);
  assert.equal(s.orders.length, 1);
});

test("logging out forgets the shopper's data but not the cart", () => {
  const { s } = open();
  st.addToCart(s, "MUG-STONE", 1);
  st.productsLoaded(s, products);
  st.ordersLoaded(s, [create(OrderSchema, { id: "o-1" })]);
  st.couponChosen(s, coupon(500n));
  st.setSession(s, null);
  st.loggedOut(s);
  assert.deepEqual([s.session, s.checkout, s.order, s.options, s.coupon, s.points, s.payment], [null, null, null, null, null, null, null]);
  assert.deepEqual([s.orders, s.products], [[], []]);
  assert.equal(s.cart.get("MUG-STONE"), 1);
  st.setLoginName(s, "someone");
  assert.equal(s.loginName, "someone");
});

test("the token audit: admins only, a loaded timeline shown, forgotten at logout", () => {
  const s = st.initialState(session, new Map());
  assert.equal(st.isAdmin(s), false);
  const admin = st.initialState({ ...session, user: { ...session.user, scopes: ["shop", "admin"] } }, new Map());
  assert.equal(st.isAdmin(admin), true);
  assert.equal(st.isAdmin(st.initialState(null, new Map())), false);
  st.setAuditInput(admin, " ord_1 ");
  const ev = create(AuditEventSchema, { service: "coupons", action: "issued", jti: "j1" });
  st.auditLoaded(admin, "ord_1", [ev], ["payments"]);
  assert.equal(admin.auditInput, "ord_1");
  assert.deepEqual(admin.audit, { orderId: "ord_1", events: [ev], unreachable: ["payments"] });
  st.loggedOut(admin);
  assert.equal(admin.audit, null);
  assert.equal(admin.auditInput, "");
  st.auditLoaded(admin, "ord_2", [], []);
  st.sessionEnded(admin);
  assert.equal(admin.audit, null);
});

test("the token audit asks only for an order id: ord_ and more, trimmed, at most 64 characters", () => {
  assert.equal(st.auditOrderId(" ord_abc234 "), "ord_abc234");
  assert.equal(st.auditOrderId(`ord_${"a".repeat(60)}`), `ord_${"a".repeat(60)}`);
  // Not an order id: asked for, each would show an empty timeline as if the order had no token.
  for (const raw of ["", "   ", "ord_", "op_abc234", "abc234", "ORD_abc234", "xord_abc", "ord_ab c", `ord_${"a".repeat(61)}`]) {
    assert.equal(st.auditOrderId(raw), null, JSON.stringify(raw));
  }
});
