// view/labels.ts owns the words the page uses for the saga's statuses and
// steps and for coupons that cannot be used, and the sentences built from
// them (announced to screen readers, shown as an order's outcome).
//
// Rules: pure text, no DOM, no network; unit-tested under node
// (web/test/labels.test.ts). May import: enums and types of @tokenrelay/gen.
import { UnusableReason } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import { OrderStatus, StepState, type Order } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";

const unusable: Record<number, string> = {
  [UnusableReason.NOT_YET_VALID]: "not valid yet",
  [UnusableReason.EXPIRED]: "expired",
  [UnusableReason.ALREADY_USED]: "already used",
  [UnusableReason.BELOW_MINIMUM_SPEND]: "order below the minimum spend",
  [UnusableReason.CURRENCY_MISMATCH]: "other currency",
};

/** unusableText says why a coupon cannot be used ("" for a usable one). */
export function unusableText(c: { usable: boolean; unusableReason: UnusableReason }): string {
  return c.usable ? "" : unusable[c.unusableReason] ?? "not usable";
}

const stepNames: Record<string, string> = {
  "coupons:redeem": "Coupon",
  "points:spend": "Points",
  "payments:capture": "Card payment",
};
const statusNames: Record<number, string> = {
  [OrderStatus.PENDING]: "Pending",
  [OrderStatus.IN_PROGRESS]: "In progress",
  [OrderStatus.COMPENSATING]: "Undoing",
  [OrderStatus.COMPLETED]: "Completed",
  [OrderStatus.FAILED]: "Failed",
};
const statusClasses: Record<number, string> = {
  [OrderStatus.COMPLETED]: "COMPLETED",
  [OrderStatus.FAILED]: "FAILED",
  [OrderStatus.COMPENSATING]: "COMPENSATING",
};
const stateNames: Record<number, string> = {
  [StepState.PENDING]: "Waiting",
  [StepState.EXERCISING]: "In progress",
  [StepState.APPLIED]: "Done",
  [StepState.FAILED]: "Failed",
  [StepState.COMPENSATING]: "Being undone",
  [StepState.COMPENSATED]: "Undone",
};
const stateClasses: Record<number, string> = {
  [StepState.APPLIED]: "APPLIED",
  [StepState.FAILED]: "FAILED",
  [StepState.COMPENSATING]: "COMPENSATING",
  [StepState.COMPENSATED]: "COMPENSATED",
};

/** stepName names a saga step by its capability (the capability itself if unknown). */
export const stepName = (capability: string): string => stepNames[capability] ?? capability;
export const statusName = (s: OrderStatus): string => statusNames[s] ?? "Unknown";
/** statusClass is the badge's class of an order status ("" for the plain badge). */
export const statusClass = (s: OrderStatus): string => statusClasses[s] ?? "";
export const stateName = (s: StepState): string => stateNames[s] ?? "Unknown";
/** stateClass is the badge's class of a step state ("" for the plain badge). */
export const stateClass = (s: StepState): string => stateClasses[s] ?? "";

/** progressText is the order's status and steps in one sentence, for the live region. */
export function progressText(o: Order): string {
  const steps = o.steps.map((s) => `${stepName(s.capability)}: ${stateNames[s.state] ?? "unknown"}`).join(", ");
  return `Order ${statusNames[o.status] ?? "unknown"}. ${steps}.`;
}

/** failedStep names the step that failed, from the order's failure reason ("<capability> refused: ..."). */
export function failedStep(o: Pick<Order, "failureReason">): string {
  const capability = /^([a-z]+:[a-z]+)\b/.exec(o.failureReason)?.[1] ?? "";
  switch (capability) {
    case "payments:capture":
      return "the card payment could not be taken";
    case "coupons:redeem":
      return "the coupon could not be redeemed";
    case "points:spend":
      return "the points could not be spent";
    default:
      return "a step failed";
  }
}
