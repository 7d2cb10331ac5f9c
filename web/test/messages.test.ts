import { test } from "node:test";
import assert from "node:assert/strict";
import { CHECKOUT_EXPIRED, SESSION_ENDED, UNAVAILABLE, explain, type Failure } from "../src/messages.js";

const f = (kind: string, message = "", sessionEnded = false): Failure => ({ kind, message, sessionEnded });

test("every refusal the checkout can meet has a clear sentence", () => {
  const cases: [Parameters<typeof explain>[0], Failure, RegExp | string][] = [
    ["coupon", f("refused", "coupon cannot be used: expired"), /coupon has expired/],
    ["coupon", f("refused", "coupon cannot be used: already used"), /already used/],
    ["coupon", f("not_found", "not found: you hold no coupon NOPE"), /no coupon with this code/],
    ["points", f("refused", "insufficient points: 5000 points requested, balance 1000"), /not have enough points: insufficient points: 5000 points requested, balance 1000\./],
    ["payment", f("refused", "authorize: card declined: the issuer refused the hold (simulated)"), /card was declined/],
    ["payment", f("unavailable", "payment processor unavailable"), /did not answer in time/],
    ["coupon", f("unauthenticated", "checkout token: token expired"), CHECKOUT_EXPIRED],
    ["place", f("refused", "checkout is not open: the checkout is expired"), CHECKOUT_EXPIRED],
    ["place", f("refused", "checkout is not open: an order was placed for it"), /already placed as an order/],
    ["place", f("conflict", "token replayed"), /already used for an order/],
    ["place", f("refused", "confirmations do not settle the order total"), /do not add up/],
    ["start", f("unavailable", "x"), UNAVAILABLE],
    ["place", f("unauthenticated", "x", true), SESSION_ENDED],
    ["login", f("unauthenticated", "bad credentials"), "Wrong username or password."],
    ["orders", f("unknown", "boom"), "Something went wrong: boom"],
  ];
  for (const [step, failure, want] of cases) {
    const got = explain(step, failure);
    if (typeof want === "string") assert.equal(got, want, `${step} ${failure.message}`);
    else assert.match(got, want, `${step} ${failure.message}`);
  }
});
