// view/labels.ts owns the words the page uses for the saga's statuses and
// steps, for coupons (their terms, why one cannot be used) and for what an
// order bought, and the sentences built from them: announced to screen
// readers, and shown as an order's outcome – what happened to each thing
// the shopper used, derived from the order's steps, never from an error
// chain.
//
// Rules: pure text, no DOM, no network; unit-tested under node
// (web/test/labels.test.ts). May import: enums and types of @tokenrelay/gen,
// format.ts, state.ts (amountOf).
import type { AuditEvent } from "@tokenrelay/gen/tokenrelay/capability/v1/capability_pb";
import { DiscountKind, UnusableReason, type Campaign } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import { OrderStatus, StepState, type Line, type Order, type Step } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import { money, percentOfBps } from "../format.js";
import { amountOf } from "../state.js";

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

/**
 * couponTerms states a campaign's terms from its fields ("€5.00 off orders
 * of €20.00 or more", "10% off any order"), so that they read in the page's
 * one money format rather than in the campaign's free-text description.
 */
export function couponTerms(c: Campaign | undefined): string {
  if (!c) return "";
  const off =
    c.kind === DiscountKind.FIXED ? `${money(amountOf(c.amountOff))} off` : c.kind === DiscountKind.PERCENT ? `${percentOfBps(c.percentOffBps)} off` : "";
  if (!off) return c.description;
  const min = amountOf(c.minimumSpend);
  return min.minor > 0n ? `${off} orders of ${money(min)} or more` : `${off} any order`;
}

/**
 * itemsText says what an order holds ("2 × Black tea · 1 × Stone mug"; past
 * three lines, "· 2 more"). The lines are set apart with " · ", not commas,
 * which product names may hold ("Black tea, 250 g").
 */
export function itemsText(lines: Pick<Line, "quantity" | "name">[]): string {
  const named = lines.slice(0, 3).map((l) => `${l.quantity} × ${l.name}`);
  const more = lines.length - named.length;
  return [...named, more > 0 ? `${more} more` : ""].filter((t) => t !== "").join(" · ");
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
  [OrderStatus.NEEDS_OPERATOR]: "Needs support",
};
const statusClasses: Record<number, string> = {
  [OrderStatus.COMPLETED]: "COMPLETED",
  [OrderStatus.FAILED]: "FAILED",
  [OrderStatus.COMPENSATING]: "COMPENSATING",
  [OrderStatus.NEEDS_OPERATOR]: "FAILED",
};
const stateNames: Record<number, string> = {
  [StepState.PENDING]: "Waiting",
  [StepState.EXERCISING]: "In progress",
  [StepState.APPLIED]: "Done",
  [StepState.FAILED]: "Failed",
  [StepState.COMPENSATING]: "Being undone",
  [StepState.COMPENSATED]: "Undone",
  [StepState.COMPENSATION_REFUSED]: "With support",
  [StepState.RESOLVED]: "Settled by support",
};
/**
 * What a step's state means for the thing it settles, in the shopper's
 * words. NOT_APPLIED stands for a step that ended without its effect ever
 * being applied (failed, or voided by the compensation: no reference).
 */
const NOT_APPLIED = -1;
const capabilityStateNames: Record<string, Record<number, string>> = {
  "coupons:redeem": { [StepState.APPLIED]: "Redeemed", [StepState.COMPENSATING]: "Being given back", [StepState.COMPENSATED]: "Given back", [NOT_APPLIED]: "Not used" },
  "points:spend": { [StepState.APPLIED]: "Spent", [StepState.COMPENSATING]: "Being given back", [StepState.COMPENSATED]: "Given back", [NOT_APPLIED]: "Not spent" },
  "payments:capture": { [StepState.APPLIED]: "Charged", [StepState.COMPENSATING]: "Being reversed", [StepState.COMPENSATED]: "Reversed", [NOT_APPLIED]: "Not charged" },
};
const stateClasses: Record<number, string> = {
  [StepState.APPLIED]: "APPLIED",
  [StepState.FAILED]: "FAILED",
  [StepState.COMPENSATING]: "COMPENSATING",
  [StepState.COMPENSATED]: "COMPENSATED",
  [StepState.COMPENSATION_REFUSED]: "FAILED",
  [StepState.RESOLVED]: "COMPENSATED",
};

/** stepName names a saga step by its capability (the capability itself if unknown). */
export const stepName = (capability: string): string => stepNames[capability] ?? capability;
export const statusName = (s: OrderStatus): string => statusNames[s] ?? "Unknown";
/** statusClass is the badge's class of an order status ("" for the plain badge). */
export const statusClass = (s: OrderStatus): string => statusClasses[s] ?? "";
/** stateName is a step state's generic name ("Done", "Undone"). */
export const stateName = (s: StepState): string => stateNames[s] ?? "Unknown";
/** stateClass is the badge's class of a step state ("" for the plain badge). */
export const stateClass = (s: StepState): string => stateClasses[s] ?? "";

type StepFacts = Pick<Step, "capability" | "state" | "settlement" | "reference">;

/**
 * everApplied: the step's effect was applied at some point. Issuers return a
 * reference for an applied effect and the saga keeps it through the
 * compensation, so a compensated step without one was voided before it was
 * applied (the step that failed, or one of a stage that never ran).
 */
const everApplied = (s: StepFacts): boolean => s.state === StepState.APPLIED || s.reference !== "";

/**
 * settled: the step has ended one way (applied, failed, compensated, or
 * left to or settled by the operator when its issuer refused to undo it).
 */
const settled = (s: StepState): boolean =>
  s === StepState.APPLIED ||
  s === StepState.FAILED ||
  s === StepState.COMPENSATED ||
  s === StepState.COMPENSATION_REFUSED ||
  s === StepState.RESOLVED;

/**
 * stepStateName is where a step stands, in the words of what it settles
 * ("Charged", "Given back", "Not charged"), else generic ("Done").
 */
export function stepStateName(s: StepFacts): string {
  const key = settled(s.state) && !everApplied(s) ? NOT_APPLIED : s.state;
  return capabilityStateNames[s.capability]?.[key] ?? stateName(s.state);
}

/** progressText is the order's status and steps in one sentence, for the live region. */
export function progressText(o: Order): string {
  const steps = o.steps.map((s) => `${stepName(s.capability)}: ${stepStateName(s).toLowerCase()}`).join(", ");
  return `Order ${statusNames[o.status] ?? "unknown"}. ${steps}.`;
}

// ---------------------------------------------------------------- the outcome

/** Outcome is how an order ended (or stands) for the shopper: a headline, then what happened to each thing used. */
export interface Outcome {
  tone: "ok" | "bad" | "busy";
  headline: string;
  /** One sentence per step of the order: what became of the coupon, the points, the card payment. */
  fates: string[];
}

const failures: Record<string, string> = {
  "coupons:redeem": "your coupon could not be redeemed",
  "points:spend": "your points could not be spent",
  "payments:capture": "your card payment could not be taken",
};

type Fate = (amount: string) => string;
const notUsed: Record<string, Fate> = {
  "coupons:redeem": () => "Your coupon was not used.",
  "points:spend": () => "Your points were not spent.",
  "payments:capture": () => "Your card was not charged.",
};
const fates: Record<string, Partial<Record<StepState, Fate>>> = {
  "coupons:redeem": {
    [StepState.APPLIED]: (a) => `Your coupon took ${a} off.`,
    [StepState.COMPENSATING]: () => "Your coupon is being given back…",
    [StepState.COMPENSATED]: () => "Your coupon was given back: you can use it again.",
  },
  "points:spend": {
    [StepState.APPLIED]: (a) => `${a} was paid with your points.`,
    [StepState.COMPENSATING]: (a) => `Your points worth ${a} are being given back…`,
    [StepState.COMPENSATED]: (a) => `Your points worth ${a} were given back to your balance.`,
  },
  "payments:capture": {
    [StepState.APPLIED]: (a) => `${a} was charged to your card.`,
    [StepState.COMPENSATING]: (a) => `The ${a} card payment is being reversed…`,
    [StepState.COMPENSATED]: (a) => `The ${a} card payment was reversed: you are not charged.`,
  },
};
/** What became of a step voided by the compensation before it was ever applied. */
const voided: Record<string, Fate> = {
  "payments:capture": (a) => `Your card was not charged: the ${a} hold on it was released.`,
};

/**
 * What became of a step whose issuer refused to undo it: the saga stopped
 * and an operator settles it by hand (RESOLVED once done).
 */
const withSupport: Partial<Record<StepState, (thing: string) => string>> = {
  [StepState.COMPENSATION_REFUSED]: (thing) => `Your ${thing} could not be given back automatically: our support team has been alerted and will settle it.`,
  [StepState.RESOLVED]: (thing) => `Your ${thing} was settled by our support team.`,
};

/** stepFate says what became of the thing one step settles. */
export function stepFate(step: StepFacts): string {
  const support = withSupport[step.state];
  if (support) return support(stepName(step.capability).toLowerCase());
  const amount = money(amountOf(step.settlement));
  const fate = everApplied(step)
    ? fates[step.capability]?.[step.state]
    : step.state === StepState.COMPENSATED
      ? (voided[step.capability] ?? notUsed[step.capability])
      : notUsed[step.capability];
  return fate ? fate(amount) : `${stepName(step.capability)}: ${stateName(step.state).toLowerCase()}.`;
}

/**
 * failedCapability is the capability of the step that failed: the step still
 * FAILED, else the one the order's failure reason starts with (the saga
 * writes "<capability> refused: …" and then voids that step too); "" when
 * no step of the order is named.
 */
export function failedCapability(o: Pick<Order, "steps" | "failureReason">): string {
  const failed = o.steps.find((s) => s.state === StepState.FAILED);
  if (failed) return failed.capability;
  const named = /^([a-z]+:[a-z]+)\b/.exec(o.failureReason)?.[1] ?? "";
  return o.steps.some((s) => s.capability === named) ? named : "";
}

/** orderOutcome derives the order's outcome from its status and its steps' final states. */
export function orderOutcome(o: Pick<Order, "status" | "steps" | "failureReason">): Outcome {
  const all = o.steps.map(stepFate);
  const what = failures[failedCapability(o)] ?? "it could not be completed";
  switch (o.status) {
    case OrderStatus.COMPLETED:
      return { tone: "ok", headline: "Thank you! Your order is complete and paid.", fates: all };
    case OrderStatus.FAILED:
      return { tone: "bad", headline: `Your order did not go through: ${what}.`, fates: all };
    case OrderStatus.COMPENSATING:
      return { tone: "bad", headline: `Your order did not go through: ${what}. Giving back what was used…`, fates: all };
    case OrderStatus.NEEDS_OPERATOR:
      return { tone: "bad", headline: `Your order did not go through: ${what}. Part of it needs our support team; quote the reference below.`, fates: all };
    default:
      return { tone: "busy", headline: "Processing your order…", fates: [] };
  }
}

/** The services' names as the audit timeline shows them. */
const SERVICE_NAMES: Record<string, string> = {
  "order-processing": "OrderProcessing",
  coupons: "Coupons",
  points: "Points",
  payments: "Payments",
};

/** serviceName is a service of the audit trail for people; an unknown one as it is. */
export const serviceName = (service: string): string => SERVICE_NAMES[service] ?? service;

/**
 * auditEventText says what happened to a token in one sentence, for the
 * admin's timeline: who did what, for which order, and for a refusal the
 * check that failed. It never shows a token, only its claims.
 */
export function auditEventText(e: Pick<AuditEvent, "service" | "action" | "issuer" | "kind" | "orderId" | "checkoutId" | "check">): string {
  const who = serviceName(e.service);
  const token = e.kind === "checkout" ? "the checkout token" : e.issuer ? `the ${serviceName(e.issuer)} token` : "a token";
  switch (e.action) {
    case "issued":
      return `${who} issued ${token}${e.checkoutId ? ` for checkout ${e.checkoutId}` : ""}`;
    case "consumed":
      return `${who} accepted and consumed ${token} for order ${e.orderId}`;
    case "accepted":
      return `${who} accepted ${token}`;
    case "refused":
      return `${who} refused ${token}${e.orderId ? ` for order ${e.orderId}` : ""} (${e.check || "unknown check"})`;
    case "exercised":
      return `${who} exercised ${token} for order ${e.orderId}`;
    case "compensated":
      return `${who} compensated ${token} for order ${e.orderId}`;
    case "purged":
      return `${who} purged its records of ${token}`;
  }
  return `${who}: ${e.action} ${token}`;
}
