// view/order.ts owns the placed order's section (what was bought, its
// saga's steps live, and what happened to each thing the shopper used) and
// the history of the shopper's orders.
//
// Rules: reads the state, never changes it; reacts to the shopper only by
// calling Handlers (ports.ts); no network, no storage. May import: state.ts
// (types and selectors), ports.ts (types), format.ts, @tokenrelay/gen, view/*.
import type { Line, Order, Step as SagaStep } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import { dateTime, money } from "../format.js";
import type { Handlers } from "../ports.js";
import { amountOf, isFinal, type AppState } from "../state.js";
import { errorLine, h } from "./dom.js";
import { failedCapability, itemsText, orderOutcome, stateClass, statusClass, statusName, stepName, stepStateName } from "./labels.js";

export function renderOrder(s: AppState, on: Handlers, o: Order): HTMLElement {
  const done = isFinal(o);
  return h(
    "section",
    { class: "card wide", "aria-labelledby": "order-h", id: "order" },
    h(
      "div",
      { class: "heading" },
      h("h2", { id: "order-h", tabindex: "-1" }, "Your order"),
      h("span", { id: "order-status", class: `badge ${statusClass(o.status)}` }, statusName(o.status)),
    ),
    h("p", { class: "hint" }, dateTime(o.createdAt) ? `Placed ${dateTime(o.createdAt)}` : ""),
    orderLines(o.lines, o),
    h("h3", { id: "order-steps-h" }, "How it is paid"),
    h("ul", { class: "plain lines steps", id: "order-steps", "aria-labelledby": "order-steps-h" }, ...o.steps.map((step) => orderStep(step, done, step.capability === failedCapability(o)))),
    outcome(o),
    reference(o),
    errorLine(s, "watch"),
    done
      ? h("div", { class: "actions" }, h("button", { id: "continue", class: "primary", type: "button", onclick: () => on.continueShopping() }, "Continue shopping"))
      : null,
  );
}

/** orderLines is what was bought, line by line, and the order total. */
function orderLines(lines: Line[], o: Order): HTMLElement {
  return h(
    "ul",
    { class: "plain lines", id: "order-lines", "aria-label": "What you bought" },
    ...lines.map((l) => h("li", { class: "line" }, h("span", {}, `${l.quantity} × ${l.name}`), h("span", { class: "price" }, money(amountOf(l.lineTotal))))),
    h("li", { class: "line total" }, h("span", {}, "Order total"), h("span", { class: "price" }, money(amountOf(o.total)))),
  );
}

/**
 * orderStep is one saga step: the thing it settles, its amount (#order-steps
 * … .price) and where it stands (red for the step that failed); a step
 * being retried says so, without the error behind it.
 */
function orderStep(step: SagaStep, done: boolean, failed: boolean): HTMLElement {
  const retrying = !done && step.lastError !== "";
  return h(
    "li",
    { class: "line step", "data-capability": step.capability },
    h("span", {}, stepName(step.capability), retrying ? h("span", { class: "muted" }, " · retrying…") : null),
    h("span", { class: "price" }, settlementText(step)),
    h("span", { class: `badge ${failed ? "FAILED" : stateClass(step.state)}` }, stepStateName(step)),
  );
}

/** settlementText is a step's amount: a coupon's or the points' value as taken off the total, the card payment as charged. */
function settlementText(step: SagaStep): string {
  const amount = money(amountOf(step.settlement));
  return step.capability === "coupons:redeem" || step.capability === "points:spend" ? `−${amount}` : amount;
}

/** outcome says how the order ended, and what became of each thing used (#order-outcome, #order-fates). */
function outcome(o: Order): HTMLElement {
  const out = orderOutcome(o);
  return h(
    "div",
    { class: "outcome-box" },
    h("p", { class: out.tone === "busy" ? "status busy" : `outcome ${out.tone}`, id: "order-outcome" }, out.headline),
    out.fates.length > 0 ? h("ul", { class: "fates", id: "order-fates" }, ...out.fates.map((f) => h("li", {}, f))) : null,
  );
}

/** reference is the id to quote to the shop about this order (an id, never an error chain). */
function reference(o: Order): HTMLElement {
  return h("p", { class: "hint reference" }, "Reference to quote: ", h("span", { class: "id", id: "order-ref", title: o.id }, o.id));
}

export function renderHistory(s: AppState, on: Handlers): HTMLElement {
  return h(
    "section",
    { class: "card wide", "aria-labelledby": "history-h" },
    h("h2", { id: "history-h" }, "Your orders"),
    s.orders.length === 0
      ? h("p", { class: "muted" }, s.busy.has("orders") ? "Loading…" : "No orders yet.")
      : h("ul", { class: "plain orders", id: "orders" }, ...s.orders.map(historyItem)),
    h("div", { class: "actions" }, h("button", { id: "orders-refresh", type: "button", onclick: () => void on.loadOrders() }, "Refresh")),
    errorLine(s, "orders"),
  );
}

/** historyItem is one past order: what was bought and its total, then when, its status and its reference. */
function historyItem(o: Order): HTMLElement {
  return h(
    "li",
    {},
    h("span", { class: "what" }, itemsText(o.lines) || "Order"),
    h("span", { class: "price" }, money(amountOf(o.total))),
    h(
      "span",
      { class: "when muted" },
      h("span", { class: `badge ${statusClass(o.status)}` }, statusName(o.status)),
      h("span", { class: "date" }, dateTime(o.createdAt)),
      h("span", { class: "id", title: `Reference to quote: ${o.id}` }, o.id),
    ),
  );
}
