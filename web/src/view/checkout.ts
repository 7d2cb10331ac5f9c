// view/checkout.ts owns the open checkout's section: its lines, the
// summary of amounts and the Place order / Cancel buttons, around the
// coupon, points and card choices of view/choices.ts.
//
// Rules: reads the state, never changes it; reacts to the shopper only by
// calling Handlers (ports.ts); no network, no storage. May import: state.ts
// (types and selectors), ports.ts (types), format.ts, @tokenrelay/gen (types), view/*.
import type { Checkout } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { Handlers } from "../ports.js";
import { amountOf, canPlace, checkoutBusy, methodLast4, needsCard, remaining, type AppState } from "../state.js";
import { cardBox, couponBox, pointsBox } from "./choices.js";
import { errorLine, h } from "./dom.js";
import { clockTime, fmtInt, money } from "../format.js";

export function renderCheckout(s: AppState, on: Handlers, co: Checkout): HTMLElement {
  const expires = clockTime(co.expiresAt);
  return h(
    "section",
    { class: "card wide", "aria-labelledby": "checkout-h", id: "checkout" },
    h("h2", { id: "checkout-h", tabindex: "-1" }, "Checkout"),
    expires ? h("p", { class: "hint" }, `This checkout is open until ${expires}.`) : null,
    checkoutLines(co),
    errorLine(s, "options"),
    couponBox(s, on),
    pointsBox(s, on, co),
    cardBox(s, on, co),
    summary(s, co),
    checkoutButtons(s, on, co),
    needsCard(s, co) ? h("p", { class: "hint", id: "place-hint" }, "Choose a card to pay what is left.") : null,
    errorLine(s, "place"),
  );
}

function checkoutLines(co: Checkout): HTMLElement {
  return h(
    "ul",
    { class: "plain lines", id: "checkout-lines", "aria-label": "What you are buying" },
    ...co.lines.map((l) => h("li", { class: "line" }, h("span", {}, `${l.quantity} × ${l.name}`), h("span", { class: "price" }, money(amountOf(l.lineTotal))))),
  );
}

/** summary is the table of amounts: total, less the coupon and the points, and what is paid by card. */
function summary(s: AppState, co: Checkout): HTMLElement {
  const row = (label: string, amount: string) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, amount));
  const last4 = s.payment ? methodLast4(s, s.payment.methodId) : "";
  return h(
    "table",
    { class: "summary", id: "summary", "aria-label": "Amounts" },
    h(
      "tbody",
      {},
      row("Order total", money(amountOf(co.total))),
      s.coupon ? row(`Coupon ${s.coupon.code}`, `−${money(s.coupon.discount)}`) : null,
      s.points ? row(`${fmtInt(s.points.points)} points`, `−${money(s.points.value)}`) : null,
      h(
        "tr",
        { class: "remaining" },
        h("th", { scope: "row" }, last4 && remaining(s, co).minor > 0n ? `Pay by card ending ${last4}` : "Left to pay by card"),
        h("td", { id: "remaining" }, money(remaining(s, co))),
      ),
    ),
  );
}

function checkoutButtons(s: AppState, on: Handlers, co: Checkout): HTMLElement {
  return h(
    "div",
    { class: "actions" },
    h(
      "button",
      { id: "place-order", class: "primary", type: "button", disabled: !canPlace(s, co), onclick: () => void on.placeOrder() },
      s.busy.has("place") ? "Placing the order…" : placeLabel(s, co),
    ),
    h(
      "button",
      { id: "cancel-checkout", type: "button", disabled: checkoutBusy(s), onclick: () => void on.cancelCheckout() },
      s.checkoutClosed ? "Back to the shop" : "Cancel checkout",
    ),
  );
}

/**
 * placeLabel is the Place order button's text: what the card is charged
 * (what is left to pay), never the order total, which the coupon and the
 * points may have reduced.
 */
function placeLabel(s: AppState, co: Checkout): string {
  const left = remaining(s, co);
  return left.minor > 0n ? `Place order · pay ${money(left)} by card` : "Place order · nothing to pay by card";
}
