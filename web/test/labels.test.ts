import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { UnusableReason } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import { OrderSchema, OrderStatus, StepSchema, StepState } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import { failedStep, progressText, stateClass, stateName, statusClass, statusName, stepName, unusableText } from "../src/view/labels.js";

test("progressText reads the order's status and every step", () => {
  const o = create(OrderSchema, {
    status: OrderStatus.COMPENSATING,
    steps: [
      create(StepSchema, { capability: "coupons:redeem", state: StepState.COMPENSATED }),
      create(StepSchema, { capability: "points:spend", state: StepState.COMPENSATING }),
      create(StepSchema, { capability: "payments:capture", state: StepState.FAILED }),
      create(StepSchema, { capability: "gifts:wrap", state: StepState.PENDING }),
    ],
  });
  assert.equal(progressText(o), "Order Undoing. Coupon: Undone, Points: Being undone, Card payment: Failed, gifts:wrap: Waiting.");
  assert.equal(progressText(create(OrderSchema, { status: 99 as OrderStatus })), "Order unknown. .");
});

test("failedStep tells which step failed from the failure reason", () => {
  const f = (failureReason: string) => failedStep({ failureReason });
  assert.equal(f("payments:capture refused: card declined"), "the card payment could not be taken");
  assert.equal(f("coupons:redeem refused: already used"), "the coupon could not be redeemed");
  assert.equal(f("points:spend refused: insufficient points"), "the points could not be spent");
  assert.equal(f("gifts:wrap refused"), "a step failed");
  assert.equal(f(""), "a step failed");
});

test("badges: names and classes of statuses and step states", () => {
  assert.deepEqual([statusName(OrderStatus.COMPLETED), statusClass(OrderStatus.COMPLETED)], ["Completed", "COMPLETED"]);
  assert.deepEqual([statusName(OrderStatus.IN_PROGRESS), statusClass(OrderStatus.IN_PROGRESS)], ["In progress", ""]);
  assert.deepEqual([statusName(99 as OrderStatus), statusClass(99 as OrderStatus)], ["Unknown", ""]);
  assert.deepEqual([stateName(StepState.APPLIED), stateClass(StepState.APPLIED)], ["Done", "APPLIED"]);
  assert.deepEqual([stateName(StepState.EXERCISING), stateClass(StepState.EXERCISING)], ["In progress", ""]);
  assert.equal(stepName("payments:capture"), "Card payment");
  assert.equal(stepName("gifts:wrap"), "gifts:wrap");
});

test("unusableText says why a coupon cannot be used", () => {
  assert.equal(unusableText({ usable: true, unusableReason: UnusableReason.EXPIRED }), "");
  assert.equal(unusableText({ usable: false, unusableReason: UnusableReason.EXPIRED }), "expired");
  assert.equal(unusableText({ usable: false, unusableReason: UnusableReason.BELOW_MINIMUM_SPEND }), "order below the minimum spend");
  assert.equal(unusableText({ usable: false, unusableReason: 99 as UnusableReason }), "not usable");
});
