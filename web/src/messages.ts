// What the shopper reads when a call fails: one clear sentence per refusal,
// chosen by the step that failed and the error's kind (the SDK's RpcError),
// with the server's own (safe) message as the fallback detail. Pure, so that
// it is unit-tested under node. May import: format.ts, state.ts (types).
import { fmtInt } from "./format.js";
import type { PointsLimit } from "./state.js";

/** The parts of the SDK's RpcError this module reads. */
export interface Failure {
  readonly kind: string;
  readonly message: string;
  readonly sessionEnded: boolean;
}

/** Step names the UI's calls belong to. */
export type Step =
  | "login"
  | "catalog"
  | "start"
  | "options"
  | "coupon"
  | "points"
  | "payment"
  | "place"
  | "watch"
  | "orders"
  | "cancel"
  | "audit";

export const SESSION_ENDED = "Your session has ended. Please log in again.";
export const CHECKOUT_EXPIRED = "This checkout has expired. Start a new checkout from your cart.";
export const UNAVAILABLE = "The shop cannot be reached right now. Please try again in a moment.";

/** explain returns the sentence to show for a failure of step. */
export function explain(step: Step, f: Failure): string {
  const m = f.message.toLowerCase();
  if (f.sessionEnded) return SESSION_ENDED;
  if (step === "login") {
    if (f.kind === "unauthenticated" || f.kind === "invalid") return "Wrong username or password.";
    if (f.kind === "unavailable") return UNAVAILABLE;
    return `Logging in failed: ${f.message}`;
  }
  if (f.kind === "unavailable") {
    if (step === "payment") return "The card processor did not answer in time. Please try again.";
    return UNAVAILABLE;
  }
  // A Confirm call that finds the checkout token bad: the checkout expired.
  if (f.kind === "unauthenticated" && (step === "coupon" || step === "points" || step === "payment" || step === "options")) {
    return CHECKOUT_EXPIRED;
  }
  if (m.includes("checkout is not open") || m.includes("checkout has expired")) {
    if (m.includes("placed")) {
      return "This checkout was already placed as an order, perhaps in another tab. Start a new checkout to order again.";
    }
    if (m.includes("cancel")) return "This checkout was cancelled. Start a new checkout from your cart.";
    return CHECKOUT_EXPIRED;
  }
  switch (step) {
    case "coupon":
      if (f.kind === "not_found") return "You hold no coupon with this code.";
      if (f.kind === "refused") {
        if (m.includes("expired")) return "This coupon has expired and can no longer be used.";
        if (m.includes("already") || m.includes("used") || m.includes("redeemed")) return "This coupon was already used.";
        if (m.includes("minimum")) return "This coupon needs a larger order.";
        return `This coupon can no longer be used: ${f.message}`;
      }
      break;
    case "points":
      if (f.kind === "refused") {
        if (m.includes("insufficient")) return "You do not have that many points.";
        if (m.includes("exceed")) return "That is more points than what is left to pay.";
        return `These points cannot be used: ${f.message}`;
      }
      if (f.kind === "invalid") return "Enter a whole number of points, at least 1.";
      break;
    case "payment":
      if (f.kind === "refused") {
        if (m.includes("declined")) return "Your card was declined. Please choose another payment method.";
        if (m.includes("expired")) return "This card has expired. Please choose another payment method.";
        return `The payment was refused: ${f.message}`;
      }
      if (f.kind === "not_found") return "This payment method no longer exists.";
      break;
    case "place":
      if (f.kind === "conflict") {
        return "These confirmations were already used for an order, perhaps in another tab. Start a new checkout to order again.";
      }
      if (f.kind === "refused") {
        if (m.includes("settle") || m.includes("total")) return "The amounts do not add up to the order total. Please confirm the payment again.";
        if (m.includes("expired")) return "A confirmation has expired. Please choose your coupon, points and card again.";
        return `The order was refused: ${f.message}`;
      }
      break;
    case "start":
      if (f.kind === "invalid") return `The cart cannot be checked out: ${f.message}`;
      break;
    case "audit":
      if (f.kind === "forbidden") return "Only admins may read the token audit trail.";
      if (f.kind === "invalid") return "Enter an order id such as ord_…, at most 64 characters.";
      break;
  }
  if (f.kind === "forbidden") return "This is not yours to see or change.";
  return `Something went wrong: ${f.message}`;
}

/**
 * tooManyPoints is the refusal of more points than limit allows, naming the
 * limit that is the tighter one: the balance, or what is left to pay.
 */
export function tooManyPoints(limit: PointsLimit): string {
  if (limit.by === "balance") return limit.max === 0n ? "You have no points to use." : `You have only ${fmtInt(limit.max)} points.`;
  return limit.max === 0n
    ? "Nothing is left to pay with points."
    : `This order needs at most ${fmtInt(limit.max)} points: that pays all that is left.`;
}
