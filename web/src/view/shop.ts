// view/shop.ts owns the catalog and the cart.
//
// Rules: reads the state, never changes it; reacts to the shopper only by
// calling Handlers (ports.ts); no network, no storage. May import: state.ts
// (types and selectors), ports.ts (types), format.ts, @tokenrelay/gen (types), view/*.
import type { Product } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { Handlers } from "../ports.js";
import { amountOf, cartLines, cartTotal, type AppState, type CartLine } from "../state.js";
import { errorLine, h } from "./dom.js";
import { money } from "../format.js";

export function renderCatalog(s: AppState, on: Handlers): HTMLElement {
  return h(
    "section",
    { class: "card", "aria-labelledby": "catalog-h" },
    h("h2", { id: "catalog-h", tabindex: "-1" }, "Catalog"),
    s.busy.has("catalog") ? h("p", { class: "status busy" }, "Loading the catalog…") : null,
    h("ul", { class: "plain", id: "products" }, ...s.products.map((p) => productItem(p, s.cart.get(p.sku) ?? 0, on))),
    errorLine(s, "catalog"),
  );
}

/** productItem is one product: name and description, price, and Add with how many are in the cart already. */
function productItem(p: Product, inCart: number, on: Handlers): HTMLElement {
  return h(
    "li",
    { class: "product" },
    h("div", {}, h("div", { class: "name" }, p.name), h("div", { class: "desc" }, p.description)),
    h("span", { class: "price" }, money(amountOf(p.unitPrice))),
    h(
      "div",
      { class: "add" },
      h(
        "button",
        {
          id: `add-${p.sku}`,
          type: "button",
          "aria-label": `Add ${p.name} to cart${inCart > 0 ? ` (${inCart} in cart)` : ""}`,
          onclick: () => on.addToCart(p.sku, 1),
        },
        "Add",
      ),
      h("span", { class: "incart", id: `incart-${p.sku}` }, inCart > 0 ? `${inCart} in cart` : ""),
    ),
  );
}

export function renderCart(s: AppState, on: Handlers): HTMLElement {
  const lines = cartLines(s);
  const total = cartTotal(lines);
  const starting = s.busy.has("start");
  const count = lines.reduce((n, l) => n + l.qty, 0);
  return h(
    "section",
    { class: "card", "aria-labelledby": "cart-h" },
    h("h2", { id: "cart-h" }, "Cart", count > 0 ? h("span", { class: "count", id: "cart-count" }, ` · ${count} ${count === 1 ? "item" : "items"}`) : null),
    lines.length === 0
      ? h("p", { class: "muted" }, "Your cart is empty.")
      : h("ul", { class: "plain lines", id: "cart-lines" }, ...lines.map((l) => cartLineItem(l, total.currency, on))),
    lines.length > 0 ? h("div", { class: "total" }, h("span", {}, "Estimated total"), h("span", { class: "price" }, money(total))) : null,
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { id: "start-checkout", class: "primary", type: "button", disabled: lines.length === 0 || starting, onclick: () => void on.startCheckout() },
        starting ? "Starting checkout…" : "Check out",
      ),
    ),
    errorLine(s, "start"),
  );
}

/** cartLineItem is one line of the cart: name, − quantity +, price in the cart's currency. */
function cartLineItem(l: CartLine, currency: string, on: Handlers): HTMLElement {
  const name = l.product?.name ?? l.sku;
  const lineTotal = (l.product?.unitPrice?.amountMinor ?? 0n) * BigInt(l.qty);
  return h(
    "li",
    { class: "line" },
    h("span", {}, name),
    h(
      "span",
      { class: "qty" },
      h("button", { id: `less-${l.sku}`, type: "button", "aria-label": `One ${name} less`, onclick: () => on.addToCart(l.sku, -1) }, "−"),
      h("output", { "aria-label": `${name} quantity` }, String(l.qty)),
      h("button", { id: `more-${l.sku}`, type: "button", "aria-label": `One ${name} more`, onclick: () => on.addToCart(l.sku, 1) }, "+"),
    ),
    h("span", { class: "price" }, money({ minor: lineTotal, currency })),
  );
}
