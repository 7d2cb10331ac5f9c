import { test } from "node:test";
import assert from "node:assert/strict";
import { CHECKOUT_EXPIRED, SESSION_ENDED, UNAVAILABLE, explain, tooManyPoints, type Failure } from "../src/messages.js";

const f = (kind: string, message = "", sessionEnded = false): Failure => ({ kind, message, sessionEnded });

test("every refusal the checkout can meet has a clear sentence", () => {
  const cases: [Parameters<typeof explain>[0], Failure, RegExp | string][] = [
    ["coupon", f("refused", "coupon cannot be used: expired"), /coupon has expired/],
    ["coupon", f("refused", "coupon cannot be used: already used"), /already used/],
    ["coupon", f("not_found", "not found: you hold no coupon NOPE"), /no coupon with this code/],
    ["points", f("refused", "insufficient points: 5000 points requested, balance 1000"), "You do not have that many points."],
    ["points", f("refused", "points exceed the checkout total"), "That is more points than what is left to pay."],
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

test("tooManyPoints names the tighter limit, in the page's number format", () => {
  assert.equal(tooManyPoints({ max: 700n, by: "balance" }), "You have only 700 points.");
  assert.equal(tooManyPoints({ max: 1000n, by: "balance" }), "You have only 1,000 points.");
  assert.equal(tooManyPoints({ max: 0n, by: "balance" }), "You have no points to use.");
  assert.equal(tooManyPoints({ max: 5680n, by: "order" }), "This order needs at most 5,680 points: that pays all that is left.");
  assert.equal(tooManyPoints({ max: 0n, by: "order" }), "Nothing is left to pay with points.");
});
