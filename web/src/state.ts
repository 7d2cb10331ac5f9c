// state.ts owns the checkout's state: its shape (AppState), how it starts
// (initialState), every change made to it (the transitions) and the values
// derived from it (the selectors).
//
// Rules: no I/O here – no DOM, no network, no storage, no clock (the time
// is passed in). Transitions change only the state object they are given;
// selectors change nothing. The other modules never assign to the state
// themselves: actions.ts calls these transitions, view/ only reads.
// May import: messages.ts, and message types/enums of @tokenrelay/gen and
// types of @tokenrelay/sdk. Unit-tested under node (web/test/state.test.ts).
import type { Session } from "@tokenrelay/sdk";
import type { AuditEvent } from "@tokenrelay/gen/tokenrelay/capability/v1/capability_pb";
import type { Coupon } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import { OrderStatus, type Checkout, type Order, type Product } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { PaymentMethod } from "@tokenrelay/gen/tokenrelay/payments/v1/payments_pb";
import { CHECKOUT_EXPIRED, type Step } from "./messages.js";

// ---------------------------------------------------------------- the shape

export interface Amount {
  minor: bigint;
  currency: string;
}
export interface CouponChoice {
  code: string;
  token: string;
  discount: Amount;
  expiresAt: number;
}
export interface PointsChoice {
  points: bigint;
  token: string;
  value: Amount;
  remainingBalance: bigint;
  expiresAt: number;
}
export interface PaymentChoice {
  methodId: string;
  token: string;
  amount: Amount;
  expiresAt: number;
}
/** What the three domains offer for the open checkout; null where one did not answer. */
export interface Options {
  coupons: Coupon[] | null;
  balance: bigint | null;
  methods: PaymentMethod[] | null;
}
/** The open checkout and its confirmations, as saved across a reload of the tab. */
export interface SavedCheckout {
  checkout: Checkout;
  checkoutToken: string;
  coupon: CouponChoice | null;
  points: PointsChoice | null;
  payment: PaymentChoice | null;
  selectedMethod: string;
}

/** The token timeline of one order, as an admin asked for it (GetTokenAudit). */
export interface AuditView {
  orderId: string;
  events: AuditEvent[];
  /** The issuers that could not be asked: their events are missing. */
  unreachable: string[];
}

export interface AppState {
  session: Session | null;
  products: Product[];
  cart: Map<string, number>;
  checkout: Checkout | null;
  checkoutToken: string;
  /** The server said the checkout can no longer be placed (expired, placed elsewhere, cancelled). */
  checkoutClosed: boolean;
  options: Options | null;
  coupon: CouponChoice | null;
  points: PointsChoice | null;
  payment: PaymentChoice | null;
  selectedMethod: string;
  pointsInput: string;
  /** The steps whose call is under way. */
  busy: Set<Step>;
  /** Each step's failure, as shown in its error line. */
  errors: Map<Step, string>;
  order: Order | null;
  orders: Order[];
  loginName: string;
  /** The admin's order id field of the token audit, and the timeline shown. */
  auditInput: string;
  audit: AuditView | null;
}

export function initialState(session: Session | null, cart: Map<string, number>): AppState {
  return {
    session,
    products: [],
    cart,
    checkout: null,
    checkoutToken: "",
    checkoutClosed: false,
    options: null,
    coupon: null,
    points: null,
    payment: null,
    selectedMethod: "",
    pointsInput: "",
    busy: new Set(),
    errors: new Map(),
    order: null,
    orders: [],
    loginName: "shopper",
    auditInput: "",
    audit: null,
  };
}

/** amountOf turns a Money message (or its absence) into an Amount. */
export const amountOf = (m: { amountMinor: bigint; currency: string } | undefined): Amount => ({
  minor: m?.amountMinor ?? 0n,
  currency: m?.currency ?? "",
});

/** The most of one product a cart holds. */
export const MAX_QUANTITY = 99;

// ---------------------------------------------------------------- transitions: calls, errors, session

/** callStarted marks key busy and clears its previous error. */
export function callStarted(s: AppState, key: Step): void {
  s.busy.add(key);
  s.errors.delete(key);
}

export function callEnded(s: AppState, key: Step): void {
  s.busy.delete(key);
}

/**
 * callFailed shows text as key's error; a text saying the checkout is over
 * (expired, placed, cancelled) also closes the checkout.
 */
export function callFailed(s: AppState, key: Step, text: string): void {
  s.errors.set(key, text);
  if (text === CHECKOUT_EXPIRED || text.startsWith("This checkout was")) s.checkoutClosed = true;
}

export function setError(s: AppState, key: Step, text: string): void {
  s.errors.set(key, text);
}

export function clearError(s: AppState, key: Step): void {
  s.errors.delete(key);
}

export function setLoginName(s: AppState, name: string): void {
  s.loginName = name;
}

export function setSession(s: AppState, session: Session | null): void {
  s.session = session;
}

/** sessionEnded drops the session and whatever was shown with it (the server ended it). */
export function sessionEnded(s: AppState): void {
  s.session = null;
  s.checkout = null;
  s.order = null;
  s.audit = null;
}

/** loggedOut forgets everything of the shopper but the cart (a deliberate logout). */
export function loggedOut(s: AppState): void {
  Object.assign(s, { checkout: null, order: null, orders: [], products: [], options: null, coupon: null, points: null, payment: null });
  Object.assign(s, { audit: null, auditInput: "" });
}

// ---------------------------------------------------------------- transitions: the admin's token audit

export function setAuditInput(s: AppState, raw: string): void {
  s.auditInput = raw;
}

/**
 * auditOrderId is the order id the admin typed, trimmed, or null when it is
 * none: not "ord_" and more, or longer than the 64 characters the services
 * accept. Anything else would be asked for and show an empty timeline, as if
 * the order had no token.
 */
export function auditOrderId(raw: string): string | null {
  const id = raw.trim();
  return /^ord_\S+$/.test(id) && id.length <= 64 ? id : null;
}

/** auditLoaded shows the token timeline of orderId. */
export function auditLoaded(s: AppState, orderId: string, events: AuditEvent[], unreachable: string[]): void {
  s.auditInput = orderId;
  s.audit = { orderId, events, unreachable };
}

/** isAdmin says whether the logged-in user may read the token audit trail (scope admin). */
export const isAdmin = (s: AppState): boolean => s.session?.user.scopes.includes("admin") ?? false;

export function productsLoaded(s: AppState, products: Product[]): void {
  s.products = products;
}

export function ordersLoaded(s: AppState, orders: Order[]): void {
  s.orders = orders;
}

// ---------------------------------------------------------------- transitions: cart and checkout

/** addToCart changes sku's quantity by delta, within 1..MAX_QUANTITY; at 0 the line goes. */
export function addToCart(s: AppState, sku: string, delta: number): void {
  const q = (s.cart.get(sku) ?? 0) + delta;
  if (q <= 0) s.cart.delete(sku);
  else s.cart.set(sku, Math.min(q, MAX_QUANTITY));
}

/** checkoutStarted opens checkout with no choices made yet (and hides a shown order). */
export function checkoutStarted(s: AppState, checkout: Checkout, checkoutToken: string): void {
  Object.assign(s, {
    checkout,
    checkoutToken,
    checkoutClosed: false,
    coupon: null,
    points: null,
    payment: null,
    selectedMethod: "",
    pointsInput: "",
    options: null,
    order: null,
  });
}

/** checkoutRestored reopens a checkout saved before a reload, with its confirmations. */
export function checkoutRestored(s: AppState, d: SavedCheckout): void {
  Object.assign(s, {
    checkout: d.checkout,
    checkoutToken: d.checkoutToken,
    coupon: d.coupon,
    points: d.points,
    payment: d.payment,
    selectedMethod: d.selectedMethod,
    pointsInput: d.points ? String(d.points.points) : "",
  });
}

export function optionsLoaded(s: AppState, options: Options): void {
  s.options = options;
}

/** couponChosen records the confirmed coupon, or none (null). */
export function couponChosen(s: AppState, coupon: CouponChoice | null): void {
  s.coupon = coupon;
}

export function setPointsInput(s: AppState, raw: string): void {
  s.pointsInput = raw;
}

export function pointsConfirmed(s: AppState, points: PointsChoice): void {
  s.points = points;
}

export function pointsRemoved(s: AppState): void {
  s.points = null;
  s.pointsInput = "";
}

export function cardSelected(s: AppState, methodId: string): void {
  s.selectedMethod = methodId;
}

/** paymentCleared drops the card confirmation (it is being confirmed again, or not needed). */
export function paymentCleared(s: AppState): void {
  s.payment = null;
}

export function paymentConfirmed(s: AppState, payment: PaymentChoice): void {
  s.payment = payment;
}

/** paymentRefused unselects the card, so that its radio button does not stay checked. */
export function paymentRefused(s: AppState): void {
  s.selectedMethod = "";
}

/** checkoutLeft closes the checkout view (cancelled, or over) and clears every error. */
export function checkoutLeft(s: AppState): void {
  Object.assign(s, {
    checkout: null,
    checkoutToken: "",
    checkoutClosed: false,
    options: null,
    coupon: null,
    points: null,
    payment: null,
    selectedMethod: "",
  });
  s.errors.clear();
}

/** orderPlaced swaps the checkout for its order and empties the cart. */
export function orderPlaced(s: AppState, order: Order): void {
  Object.assign(s, {
    checkout: null,
    checkoutToken: "",
    order,
    cart: new Map(),
    coupon: null,
    points: null,
    payment: null,
    selectedMethod: "",
    pointsInput: "",
  });
}

export function orderUpdated(s: AppState, order: Order): void {
  s.order = order;
}

/** orderDismissed goes back to the shop from a shown order. */
export function orderDismissed(s: AppState): void {
  s.order = null;
  s.errors.delete("watch");
}

// ---------------------------------------------------------------- selectors

export interface CartLine {
  sku: string;
  qty: number;
  product: Product | undefined;
}

export function cartLines(s: AppState): CartLine[] {
  return [...s.cart.entries()].map(([sku, qty]) => ({ sku, qty, product: s.products.find((p) => p.sku === sku) }));
}

/** cartTotal estimates the cart's total from the catalog's prices (EUR when empty). */
export function cartTotal(lines: CartLine[]): Amount {
  const currency = lines[0]?.product?.unitPrice?.currency ?? "EUR";
  const minor = lines.reduce((t, l) => t + (l.product?.unitPrice?.amountMinor ?? 0n) * BigInt(l.qty), 0n);
  return { minor, currency };
}

/** cartItems is the cart as StartCheckout's items. */
export function cartItems(s: AppState): { sku: string; quantity: number }[] {
  return [...s.cart].map(([sku, quantity]) => ({ sku, quantity }));
}

/** remaining is what is left to pay by card: the total less the coupon and the points. */
export function remaining(s: AppState, co: Checkout): Amount {
  const total = amountOf(co.total);
  return { minor: total.minor - (s.coupon?.discount.minor ?? 0n) - (s.points?.value.minor ?? 0n), currency: total.currency };
}

/**
 * PointsLimit is the most points the shopper can use on the open checkout
 * and what sets it: their balance, or what is left to pay after the coupon
 * (one point is worth one minor unit of the checkout's currency).
 */
export interface PointsLimit {
  max: bigint;
  by: "balance" | "order";
}

/** pointsLimit is the tighter of the two limits on the points: the balance and what the coupon leaves to pay. */
export function pointsLimit(s: AppState, co: Checkout): PointsLimit {
  const left = amountOf(co.total).minor - (s.coupon?.discount.minor ?? 0n);
  const byOrder = left > 0n ? left : 0n;
  const bal = s.options?.balance ?? 0n;
  return bal <= byOrder ? { max: bal, by: "balance" } : { max: byOrder, by: "order" };
}

/** maxPoints is the most points the shopper can use: min(balance, what is left to pay after the coupon). */
export function maxPoints(s: AppState, co: Checkout): bigint {
  return pointsLimit(s, co).max;
}

/** pointsOverLimit is the limit points break (null when within it, or while the balance is unknown). */
export function pointsOverLimit(s: AppState, co: Checkout, points: bigint): PointsLimit | null {
  if (s.options?.balance == null) return null;
  const limit = pointsLimit(s, co);
  return points > limit.max ? limit : null;
}

/** isPaid: the open checkout's total is covered (nothing left, or a card hold for exactly what is left). */
export function isPaid(s: AppState, co: Checkout): boolean {
  const left = remaining(s, co);
  return !s.checkoutClosed && (left.minor === 0n || (s.payment !== null && s.payment.amount.minor === left.minor));
}

/** checkoutBusy: a call on the open checkout is under way, so it must not be placed or cancelled. */
export function checkoutBusy(s: AppState): boolean {
  const steps: Step[] = ["coupon", "points", "payment", "place", "cancel"];
  return steps.some((k) => s.busy.has(k));
}

/** canPlace: the Place order button is enabled. */
export function canPlace(s: AppState, co: Checkout): boolean {
  return isPaid(s, co) && !checkoutBusy(s) && s.options !== null;
}

/** needsCard: the page asks the shopper to choose a card. */
export function needsCard(s: AppState, co: Checkout): boolean {
  return !isPaid(s, co) && s.options !== null && !s.checkoutClosed;
}

/** parsePoints reads the points field: a whole number of at least 1, else null. */
export function parsePoints(raw: string): bigint | null {
  const t = raw.trim();
  if (!/^\d+$/.test(t) || BigInt(t) === 0n) return null;
  return BigInt(t);
}

/**
 * cardToReconfirm is the card to confirm again after a discount changed:
 * the selected card when its hold is not for what is left (or there is none).
 */
export function cardToReconfirm(s: AppState, co: Checkout): string {
  const left = remaining(s, co);
  if (left.minor <= 0n || !s.selectedMethod) return "";
  return s.payment?.amount.minor !== left.minor ? s.selectedMethod : "";
}

/** confirmationTokens are the tokens PlaceOrder carries: coupon, points, card, those confirmed. */
export function confirmationTokens(s: AppState): string[] {
  return [s.coupon?.token, s.points?.token, s.payment?.token].filter((t): t is string => !!t);
}

/** methodLast4 is the last four digits of one of the shopper's cards ("" if unknown). */
export function methodLast4(s: AppState, id: string): string {
  return s.options?.methods?.find((m) => m.id === id)?.last4 ?? "";
}

/**
 * isFinal: the order's saga is over (completed, failed, or left to an
 * operator, whose settling the page does not wait for).
 */
export const isFinal = (o: Order): boolean =>
  o.status === OrderStatus.COMPLETED || o.status === OrderStatus.FAILED || o.status === OrderStatus.NEEDS_OPERATOR;
