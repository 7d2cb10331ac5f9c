import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { CampaignSchema, DiscountKind, UnusableReason } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import { OrderSchema, OrderStatus, StepSchema, StepState } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import { AuditEventSchema } from "@tokenrelay/gen/tokenrelay/capability/v1/capability_pb";
import {
  auditEventText,
  couponTerms,
  itemsText,
  orderOutcome,
  progressText,
  stateClass,
  failedCapability,
  stateName,
  statusClass,
  statusName,
  stepFate,
  stepName,
  stepStateName,
  unusableText,
} from "../src/view/labels.js";

const eur = (amountMinor: bigint) => ({ amountMinor, currency: "EUR" });
/** step is a saga step; reference is set once its effect was applied, and kept through its compensation. */
const step = (capability: string, state: StepState, settlement: bigint, reference = "") =>
  create(StepSchema, { capability, state, settlement: eur(settlement), reference });

test("progressText reads the order's status and every step", () => {
  const o = create(OrderSchema, {
    status: OrderStatus.COMPENSATING,
    steps: [
      create(StepSchema, { capability: "coupons:redeem", state: StepState.COMPENSATED, reference: "red_1" }),
      create(StepSchema, { capability: "points:spend", state: StepState.COMPENSATING, reference: "ent_1" }),
      create(StepSchema, { capability: "payments:capture", state: StepState.FAILED }),
      create(StepSchema, { capability: "gifts:wrap", state: StepState.PENDING }),
    ],
  });
  assert.equal(progressText(o), "Order Undoing. Coupon: given back, Points: being given back, Card payment: not charged, gifts:wrap: waiting.");
  assert.equal(progressText(create(OrderSchema, { status: 99 as OrderStatus })), "Order unknown. .");
});

test("a failed capture with points and no coupon: the points are given back, the card is not charged, no coupon is mentioned", () => {
  const o = create(OrderSchema, {
    status: OrderStatus.FAILED,
    failureReason: "payments:capture refused: failed_precondition: payments: exercise: capture failed",
    // As the saga leaves it: the points spent then given back, the failed capture voided too.
    steps: [step("points:spend", StepState.COMPENSATED, 100n, "ent_1"), step("payments:capture", StepState.COMPENSATED, 6080n)],
  });
  const out = orderOutcome(o);
  assert.equal(failedCapability(o), "payments:capture");
  assert.equal(out.tone, "bad");
  assert.equal(out.headline, "Your order did not go through: your card payment could not be taken.");
  assert.deepEqual(out.fates, ["Your points worth €1.00 were given back to your balance.", "Your card was not charged: the €60.80 hold on it was released."]);
  assert.deepEqual(o.steps.map(stepStateName), ["Given back", "Not charged"]);
  const all = [out.headline, ...out.fates].join(" ");
  assert.doesNotMatch(all, /coupon/i);
  assert.doesNotMatch(all, /payments:|failed_precondition|exercise/, "no internal error chain");
});

test("a failed order says what became of each thing it used, from the steps' final states", () => {
  const o = create(OrderSchema, {
    status: OrderStatus.FAILED,
    failureReason: "points:spend refused: failed_precondition: insufficient points",
    steps: [
      step("coupons:redeem", StepState.COMPENSATED, 618n, "red_1"),
      step("points:spend", StepState.FAILED, 100n),
      step("payments:capture", StepState.PENDING, 5462n),
    ],
  });
  const out = orderOutcome(o);
  assert.equal(out.headline, "Your order did not go through: your points could not be spent.");
  assert.deepEqual(out.fates, ["Your coupon was given back: you can use it again.", "Your points were not spent.", "Your card was not charged."]);
  assert.deepEqual(o.steps.map(stepStateName), ["Given back", "Not spent", "Waiting"]);
  // A card payment that was taken and then undone is reversed; an unknown capability is named as is.
  assert.equal(stepFate(step("payments:capture", StepState.COMPENSATED, 5380n, "cap_1")), "The €53.80 card payment was reversed: you are not charged.");
  assert.equal(stepFate(step("coupons:redeem", StepState.COMPENSATED, 500n)), "Your coupon was not used.");
  assert.equal(stepFate(step("gifts:wrap", StepState.COMPENSATED, 0n)), "gifts:wrap: undone.");
  // No step named (the reason names none of the order's steps): none blamed.
  assert.equal(orderOutcome(create(OrderSchema, { status: OrderStatus.FAILED })).headline, "Your order did not go through: it could not be completed.");
  assert.equal(failedCapability(create(OrderSchema, { failureReason: "gifts:wrap refused: x", steps: [step("points:spend", StepState.COMPENSATED, 1n)] })), "");
});

test("a completed order says what was charged where; one under way has no fates yet", () => {
  const done = orderOutcome(
    create(OrderSchema, {
      status: OrderStatus.COMPLETED,
      steps: [
        step("coupons:redeem", StepState.APPLIED, 500n, "red_1"),
        step("points:spend", StepState.APPLIED, 300n, "ent_1"),
        step("payments:capture", StepState.APPLIED, 5380n, "cap_1"),
      ],
    }),
  );
  assert.deepEqual(done, {
    tone: "ok",
    headline: "Thank you! Your order is complete and paid.",
    fates: ["Your coupon took €5.00 off.", "€3.00 was paid with your points.", "€53.80 was charged to your card."],
  });
  const going = orderOutcome(
    create(OrderSchema, {
      status: OrderStatus.COMPENSATING,
      steps: [step("coupons:redeem", StepState.COMPENSATING, 500n, "red_1"), step("payments:capture", StepState.FAILED, 1n)],
    }),
  );
  assert.equal(going.headline, "Your order did not go through: your card payment could not be taken. Giving back what was used…");
  assert.deepEqual(going.fates, ["Your coupon is being given back…", "Your card was not charged."]);
  assert.deepEqual(orderOutcome(create(OrderSchema, { status: OrderStatus.IN_PROGRESS })), { tone: "busy", headline: "Processing your order…", fates: [] });
});

test("couponTerms reads a campaign's terms in the page's money format, not its free-text description", () => {
  const fixed = create(CampaignSchema, {
    description: "5.00 EUR off any order of 20.00 EUR or more",
    kind: DiscountKind.FIXED,
    amountOff: eur(500n),
    minimumSpend: eur(2000n),
  });
  assert.equal(couponTerms(fixed), "€5.00 off orders of €20.00 or more");
  assert.equal(couponTerms(create(CampaignSchema, { kind: DiscountKind.PERCENT, percentOffBps: 1000, minimumSpend: eur(0n) })), "10% off any order");
  assert.equal(couponTerms(create(CampaignSchema, { kind: DiscountKind.PERCENT, percentOffBps: 1250 })), "12.5% off any order");
  assert.equal(couponTerms(create(CampaignSchema, { description: "a gift" })), "a gift", "an unknown kind falls back to the description");
  assert.equal(couponTerms(undefined), "");
});

test("itemsText says what was bought", () => {
  const l = (quantity: number, name: string) => ({ quantity, name });
  assert.equal(itemsText([l(2, "Black tea, 250 g"), l(1, "Stone mug")]), "2 × Black tea, 250 g · 1 × Stone mug");
  assert.equal(itemsText([l(1, "A"), l(1, "B"), l(1, "C"), l(3, "D"), l(1, "E")]), "1 × A · 1 × B · 1 × C · 2 more");
  assert.equal(itemsText([]), "");
});

test("badges: names and classes of statuses and step states", () => {
  assert.deepEqual([statusName(OrderStatus.COMPLETED), statusClass(OrderStatus.COMPLETED)], ["Completed", "COMPLETED"]);
  assert.deepEqual([statusName(OrderStatus.IN_PROGRESS), statusClass(OrderStatus.IN_PROGRESS)], ["In progress", ""]);
  assert.deepEqual([statusName(99 as OrderStatus), statusClass(99 as OrderStatus)], ["Unknown", ""]);
  assert.deepEqual([stateName(StepState.APPLIED), stateClass(StepState.APPLIED)], ["Done", "APPLIED"]);
  assert.deepEqual([stateName(StepState.EXERCISING), stateClass(StepState.EXERCISING)], ["In progress", ""]);
  assert.equal(stepStateName(step("payments:capture", StepState.APPLIED, 1n, "cap_1")), "Charged");
  assert.equal(stepStateName(step("coupons:redeem", StepState.COMPENSATED, 1n, "red_1")), "Given back");
  assert.equal(stepStateName(step("points:spend", StepState.EXERCISING, 1n)), "In progress");
  assert.equal(stepStateName(step("gifts:wrap", StepState.APPLIED, 1n)), "Done");
  assert.equal(stepName("payments:capture"), "Card payment");
  assert.equal(stepName("gifts:wrap"), "gifts:wrap");
});

test("unusableText says why a coupon cannot be used", () => {
  assert.equal(unusableText({ usable: true, unusableReason: UnusableReason.EXPIRED }), "");
  assert.equal(unusableText({ usable: false, unusableReason: UnusableReason.EXPIRED }), "expired");
  assert.equal(unusableText({ usable: false, unusableReason: UnusableReason.BELOW_MINIMUM_SPEND }), "order below the minimum spend");
  assert.equal(unusableText({ usable: false, unusableReason: 99 as UnusableReason }), "not usable");
});

test("an order left to support says so, per step, without internals", () => {
  const o = create(OrderSchema, {
    status: OrderStatus.NEEDS_OPERATOR,
    failureReason: "payments:capture refused: failed_precondition: declined; compensation refused by coupons:redeem (already_exists: exercised for another order)",
    steps: [step("coupons:redeem", StepState.COMPENSATION_REFUSED, 500n, "red_1"), step("payments:capture", StepState.COMPENSATED, 5680n)],
  });
  const out = orderOutcome(o);
  assert.equal(out.tone, "bad");
  assert.equal(out.headline, "Your order did not go through: your card payment could not be taken. Part of it needs our support team; quote the reference below.");
  assert.deepEqual(out.fates, [
    "Your coupon could not be given back automatically: our support team has been alerted and will settle it.",
    "Your card was not charged: the €56.80 hold on it was released.",
  ]);
  assert.doesNotMatch([out.headline, ...out.fates].join(" "), /already_exists|compensation refused|coupons:/);
  assert.equal(statusName(OrderStatus.NEEDS_OPERATOR), "Needs support");
  assert.equal(statusClass(OrderStatus.NEEDS_OPERATOR), "FAILED");
  assert.equal(stateName(StepState.RESOLVED), "Settled by support");
  assert.equal(stepFate(step("coupons:redeem", StepState.RESOLVED, 500n, "red_1")), "Your coupon was settled by our support team.");
});

test("auditEventText says who did what to which token, for which order, and which check refused it", () => {
  const ev = (action: string, more: Record<string, string> = {}) =>
    auditEventText(create(AuditEventSchema, { service: "coupons", issuer: "coupons", action, orderId: "ord_1", checkoutId: "op_1", ...more }));
  assert.equal(ev("issued"), "Coupons issued the Coupons token for checkout op_1");
  assert.equal(ev("consumed", { service: "order-processing" }), "OrderProcessing accepted and consumed the Coupons token for order ord_1");
  assert.equal(ev("refused", { service: "order-processing", orderId: "", check: "replayed" }), "OrderProcessing refused the Coupons token (replayed)");
  assert.equal(ev("refused", { service: "order-processing", orderId: "", issuer: "", check: "signature" }), "OrderProcessing refused a token (signature)");
  assert.equal(ev("refused", { service: "payments", issuer: "payments", check: "failed_precondition" }), "Payments refused the Payments token for order ord_1 (failed_precondition)");
  assert.equal(ev("issued", { service: "order-processing", issuer: "order-processing", kind: "checkout" }), "OrderProcessing issued the checkout token for checkout op_1");
  assert.equal(ev("exercised"), "Coupons exercised the Coupons token for order ord_1");
  assert.equal(ev("compensated", { service: "payments", issuer: "payments" }), "Payments compensated the Payments token for order ord_1");
  assert.equal(ev("purged"), "Coupons purged its records of the Coupons token");
  assert.equal(ev("rewound", { service: "ledger" }), "ledger: rewound the Coupons token");
});
