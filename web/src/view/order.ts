// view/order.ts owns the placed order's section (its saga's steps, live)
// and the history of the shopper's orders.
//
// Rules: reads the state, never changes it; reacts to the shopper only by
// calling Handlers (ports.ts); no network, no storage. May import: state.ts
// (types and selectors), ports.ts (types), @tokenrelay/gen, view/*.
import { OrderStatus, type Order, type Step as SagaStep } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { Handlers } from "../ports.js";
import { amountOf, isFinal, type AppState } from "../state.js";
import { errorLine, h } from "./dom.js";
import { dateTime, money } from "./format.js";
import { failedStep, stateClass, stateName, statusClass, statusName, stepName } from "./labels.js";

export function renderOrder(s: AppState, on: Handlers, o: Order): HTMLElement {
  const done = isFinal(o);
  return h(
    "section",
    { class: "card wide", "aria-labelledby": "order-h", id: "order" },
    h("h2", { id: "order-h", tabindex: "-1" }, "Your order"),
    h("p", { class: "hint" }, `Order ${o.id} · ${money(amountOf(o.total))}`),
    h("p", {}, "Status: ", h("span", { id: "order-status", class: `badge ${statusClass(o.status)}` }, statusName(o.status))),
    h("ol", { class: "plain steps", id: "order-steps", "aria-label": "Steps" }, ...o.steps.map((step) => orderStep(step, done))),
    orderOutcome(o),
    errorLine(s, "watch"),
    done
      ? h("div", { class: "actions" }, h("button", { id: "continue", class: "primary", type: "button", onclick: () => on.continueShopping() }, "Continue shopping"))
      : null,
  );
}

function orderStep(step: SagaStep, done: boolean): HTMLElement {
  return h(
    "li",
    { "data-capability": step.capability },
    h("span", {}, `${stepName(step.capability)} · ${money(amountOf(step.settlement))}`),
    h("span", { class: `badge ${stateClass(step.state)}` }, stateName(step.state)),
    step.lastError && !done ? h("span", { class: "sub muted" }, `Retrying: ${step.lastError}`) : null,
  );
}

/** orderOutcome says how the order ended, or that it is still under way (#order-outcome). */
function orderOutcome(o: Order): HTMLElement {
  switch (o.status) {
    case OrderStatus.COMPLETED:
      return h("p", { class: "outcome ok", id: "order-outcome" }, "Thank you! Your order is complete and paid.");
    case OrderStatus.FAILED:
      return h(
        "div",
        {},
        h(
          "p",
          { class: "outcome bad", id: "order-outcome" },
          `The order did not go through: ${failedStep(o)}. Everything was undone: your coupon and points are available again and your card was not charged.`,
        ),
        o.failureReason ? h("p", { class: "details" }, `Details: ${o.failureReason}`) : null,
      );
    case OrderStatus.COMPENSATING:
      return h("p", { class: "outcome bad", id: "order-outcome" }, `A step failed${o.failureReason ? ` (${o.failureReason})` : ""}; undoing the others…`);
    default:
      return h("p", { class: "status busy", id: "order-outcome" }, "Processing your order…");
  }
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

function historyItem(o: Order): HTMLElement {
  return h(
    "li",
    {},
    h("span", { class: "id" }, o.id),
    h("span", { class: `badge ${statusClass(o.status)}` }, statusName(o.status)),
    h("span", { class: "muted" }, dateTime(o.createdAt)),
    h("span", { class: "price" }, money(amountOf(o.total))),
  );
}
