// view/choices.ts owns the three choices of the open checkout, each
// confirmed on the spot: the coupon, the points and the card fieldsets,
// with their status and error lines.
//
// Rules: reads the state, never changes it; reacts to the shopper only by
// calling Handlers (ports.ts); no network, no storage. May import: state.ts
// (types and selectors), ports.ts (types), format.ts, @tokenrelay/gen (types), view/*.
import type { Coupon } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import type { Checkout } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { PaymentMethod } from "@tokenrelay/gen/tokenrelay/payments/v1/payments_pb";
import type { Handlers } from "../ports.js";
import { amountOf, maxPoints, methodLast4, remaining, type AppState } from "../state.js";
import { errorLine, h, statusLine } from "./dom.js";
import { cap, fmtInt, money } from "../format.js";
import { couponTerms, unusableText } from "./labels.js";

// ---------------------------------------------------------------- coupon

export function couponBox(s: AppState, on: Handlers): HTMLElement {
  const opts = s.options;
  const busy = s.busy.has("coupon");
  return h(
    "fieldset",
    { id: "coupons" },
    h("legend", {}, "Coupon"),
    opts === null || opts.coupons === null
      ? h("p", { class: "status busy" }, opts === null ? "Loading your coupons…" : "Coupons are not available right now.")
      : h(
          "div",
          { role: "radiogroup", "aria-describedby": "coupon-status" },
          h(
            "label",
            { class: "choice" },
            h("input", { type: "radio", name: "coupon", id: "coupon-none", value: "", checked: s.coupon === null, onchange: () => void on.chooseCoupon("") }),
            h("span", {}, "No coupon"),
          ),
          ...opts.coupons.map((c) => couponChoice(s, on, c)),
        ),
    statusLine("coupon-status", busy, busy ? "Confirming the coupon…" : s.coupon ? `Coupon ${s.coupon.code} confirmed: ${money(s.coupon.discount)} off.` : ""),
    errorLine(s, "coupon"),
  );
}

function couponChoice(s: AppState, on: Handlers, c: Coupon): HTMLElement {
  const why = unusableText(c);
  return h(
    "label",
    { class: `choice${c.usable ? "" : " disabled"}` },
    h("input", {
      type: "radio",
      name: "coupon",
      id: `coupon-${c.code}`,
      value: c.code,
      checked: s.coupon?.code === c.code,
      disabled: !c.usable,
      onchange: () => void on.chooseCoupon(c.code),
    }),
    h(
      "span",
      {},
      `${c.code}${c.discount ? ` — ${money(amountOf(c.discount))} off this order` : ""}`,
      h("span", { class: "sub" }, couponTerms(c.campaign), why ? ` (${why})` : ""),
    ),
  );
}

// ---------------------------------------------------------------- points

export function pointsBox(s: AppState, on: Handlers, co: Checkout): HTMLElement {
  const busy = s.busy.has("points");
  const max = maxPoints(s, co);
  const unavailable = s.options?.balance == null;
  return h(
    "fieldset",
    { id: "points-box" },
    h("legend", {}, "Points"),
    h(
      "div",
      { class: "row" },
      h("div", {}, h("label", { for: "points" }, "Points to use"), pointsInput(s, on, max)),
      h("button", { id: "points-apply", type: "button", disabled: busy || unavailable, onclick: () => void on.applyPoints() }, "Use points"),
      h(
        "button",
        { id: "points-max", type: "button", disabled: busy || unavailable || max === 0n, onclick: () => void on.useMaxPoints() },
        unavailable ? "Use maximum" : `Use maximum (${fmtInt(max)})`,
      ),
      s.points ? h("button", { id: "points-remove", type: "button", disabled: busy, onclick: () => void on.removePoints() }, "Remove") : null,
    ),
    h("p", { id: "points-hint", class: "hint" }, pointsHint(s, co, max)),
    statusLine(
      "points-status",
      busy,
      busy
        ? "Confirming the points…"
        : s.points
          ? `${fmtInt(s.points.points)} points confirmed: ${money(s.points.value)} off; ${fmtInt(s.points.remainingBalance)} points will remain.`
          : "",
    ),
    errorLine(s, "points"),
  );
}

function pointsInput(s: AppState, on: Handlers, max: bigint): HTMLElement {
  return h("input", {
    id: "points",
    type: "number",
    inputmode: "numeric",
    min: "1",
    max: String(max),
    step: "1",
    value: s.pointsInput,
    disabled: s.options?.balance == null,
    "aria-describedby": "points-hint",
    oninput: (e: Event) => on.setPointsInput((e.target as HTMLInputElement).value),
    onkeydown: (e: KeyboardEvent) => {
      if (e.key === "Enter") {
        e.preventDefault();
        void on.applyPoints();
      }
    },
  });
}

function pointsHint(s: AppState, co: Checkout, max: bigint): string {
  const opts = s.options;
  if (opts === null) return "Loading your balance…";
  if (opts.balance === null) return "Your points are not available right now.";
  const onePoint = money({ minor: 1n, currency: amountOf(co.total).currency });
  const limit = max < opts.balance ? ` Up to ${fmtInt(max)} here: that pays all that is left.` : "";
  return `You have ${fmtInt(opts.balance)} points; 1 point is worth ${onePoint}.${limit}`;
}

// ---------------------------------------------------------------- card

export function cardBox(s: AppState, on: Handlers, co: Checkout): HTMLElement {
  const opts = s.options;
  const left = remaining(s, co);
  const busy = s.busy.has("payment");
  return h(
    "fieldset",
    { id: "cards" },
    h("legend", {}, "Payment"),
    opts === null || opts.methods === null
      ? h("p", { class: "status busy" }, opts === null ? "Loading your cards…" : "Your cards are not available right now.")
      : left.minor === 0n
        ? h("p", { class: "muted" }, "Nothing left to pay by card.")
        : h("div", { role: "radiogroup", "aria-describedby": "payment-status" }, ...opts.methods.map((m) => cardChoice(s, on, m))),
    statusLine(
      "payment-status",
      busy,
      busy
        ? "Confirming the payment…"
        : s.payment && left.minor > 0n
          ? `${money(s.payment.amount)} held on the card ending ${methodLast4(s, s.payment.methodId)}.`
          : "",
    ),
    errorLine(s, "payment"),
  );
}

function cardChoice(s: AppState, on: Handlers, m: PaymentMethod): HTMLElement {
  return h(
    "label",
    { class: "choice" },
    h("input", {
      type: "radio",
      name: "card",
      id: `card-${m.last4}`,
      value: m.id,
      checked: s.selectedMethod === m.id,
      onchange: () => void on.chooseCard(m.id),
    }),
    h(
      "span",
      {},
      `${cap(m.brand)} ending ${m.last4}`,
      h("span", { class: "sub" }, `${m.label}${m.label ? " · " : ""}expires ${String(m.expiryMonth).padStart(2, "0")}/${m.expiryYear}`),
    ),
  );
}
