// The browser checkout: log in, fill a cart from the catalog, start a
// checkout, confirm a coupon, points and a card on the spot (each domain
// signs a confirmation token), place the order with those tokens and follow
// its saga live through WatchOrder. No framework: state in one object, the
// page re-rendered from it with DOM calls (never innerHTML), focus kept.
import "./style.css";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createTokenRelay,
  formatMoney,
  toRpcError,
  webStorageSessionStore,
  type Session,
} from "@tokenrelay/sdk";
import { UnusableReason, type Coupon } from "@tokenrelay/gen/tokenrelay/coupons/v1/coupons_pb";
import {
  CheckoutSchema,
  OrderStatus,
  StepState,
  type Checkout,
  type Order,
  type Product,
} from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { PaymentMethod } from "@tokenrelay/gen/tokenrelay/payments/v1/payments_pb";
import { CHECKOUT_EXPIRED, explain, SESSION_ENDED, type Step } from "./messages";

// ---------------------------------------------------------------- the SDK

const tr = createTokenRelay({
  // One login shared by the tabs of this browser; refreshes coordinate
  // through a Web Lock so that two tabs never spend one refresh token.
  store: webStorageSessionStore(localStorage),
  onSessionChange: (s) => {
    if (s === null && state.session !== null) endSession();
    state.session = s;
  },
});

// ---------------------------------------------------------------- state

interface Amount {
  minor: bigint;
  currency: string;
}
interface CouponChoice {
  code: string;
  token: string;
  discount: Amount;
  expiresAt: number;
}
interface PointsChoice {
  points: bigint;
  token: string;
  value: Amount;
  remainingBalance: bigint;
  expiresAt: number;
}
interface PaymentChoice {
  methodId: string;
  token: string;
  amount: Amount;
  expiresAt: number;
}
interface Options {
  coupons: Coupon[] | null;
  balance: bigint | null;
  methods: PaymentMethod[] | null;
}

const state = {
  session: tr.session() as Session | null,
  products: [] as Product[],
  cart: loadCart(),
  checkout: null as Checkout | null,
  checkoutToken: "",
  /** The server said the checkout can no longer be placed (expired, placed elsewhere, cancelled). */
  checkoutClosed: false,
  options: null as Options | null,
  coupon: null as CouponChoice | null,
  points: null as PointsChoice | null,
  payment: null as PaymentChoice | null,
  selectedMethod: "",
  pointsInput: "",
  busy: new Set<string>(),
  errors: new Map<string, string>(),
  order: null as Order | null,
  orders: [] as Order[],
  loginName: "shopper",
};

const CHECKOUT_KEY = "tokenrelay.checkout";
const CART_KEY = "tokenrelay.cart";

// ---------------------------------------------------------------- DOM helpers

type Child = Node | string | null | undefined | false;
type Props = Record<string, unknown>;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === "class") {
      el.className = String(v);
    } else if (k === "value" || k === "checked" || k === "disabled" || k === "hidden") {
      (el as unknown as Record<string, unknown>)[k] = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const money = (a: Amount | undefined) => (a === undefined ? "–" : formatMoney({ amountMinor: a.minor, currency: a.currency }));
const amountOf = (m: { amountMinor: bigint; currency: string } | undefined): Amount => ({
  minor: m?.amountMinor ?? 0n,
  currency: m?.currency ?? "",
});
const fmtInt = (n: bigint) => n.toLocaleString();

// ---------------------------------------------------------------- rendering

const main = document.getElementById("main")!;
const userBox = document.getElementById("user")!;
const banner = document.getElementById("banner")!;
const live = h("p", { id: "order-live", class: "sr-only", "aria-live": "polite", role: "status" });
document.body.append(live);

// The last focused element's id: a re-render replaces the elements, and
// focus goes back to the new one with the same id.
let lastFocusId = "";
document.addEventListener("focusin", (e) => {
  const id = (e.target as HTMLElement | null)?.id;
  if (id) lastFocusId = id;
});

function render(): void {
  const active = document.activeElement;
  const focused = active && active !== document.body ? active.id : lastFocusId;
  userBox.replaceChildren(
    ...(state.session
      ? [
          h("span", {}, `Logged in as ${state.session.user.displayName || state.session.user.username}`),
          h("button", { id: "logout", type: "button", onclick: () => void logout() }, "Log out"),
        ]
      : []),
  );
  if (state.session === null) {
    main.className = "";
    main.replaceChildren(renderLogin());
  } else {
    main.className = "shop";
    main.replaceChildren(
      ...[
        state.order ? renderOrder(state.order) : null,
        state.checkout ? renderCheckout(state.checkout) : null,
        state.checkout || state.order ? null : renderCatalog(),
        state.checkout || state.order ? null : renderCart(),
        renderHistory(),
      ].filter((x): x is HTMLElement => x !== null),
    );
  }
  if (focused) {
    const el = document.getElementById(focused);
    if (el && el !== document.activeElement) el.focus();
  }
}

function errorLine(key: string): HTMLElement {
  return h("p", { id: `${key}-error`, class: "error", role: "alert" }, state.errors.get(key) ?? "");
}

function renderLogin(): HTMLElement {
  let password = "";
  return h(
    "section",
    { class: "card login", "aria-labelledby": "login-h" },
    h("h2", { id: "login-h" }, "Log in"),
    h(
      "form",
      {
        id: "login-form",
        onsubmit: (e: Event) => {
          e.preventDefault();
          void login(state.loginName, password);
        },
      },
      h("label", { for: "username" }, "Username"),
      h("input", {
        id: "username",
        type: "text",
        name: "username",
        autocomplete: "username",
        required: true,
        value: state.loginName,
        oninput: (e: Event) => (state.loginName = (e.target as HTMLInputElement).value),
      }),
      h("label", { for: "password" }, "Password"),
      h("input", {
        id: "password",
        type: "password",
        name: "password",
        autocomplete: "current-password",
        required: true,
        oninput: (e: Event) => (password = (e.target as HTMLInputElement).value),
      }),
      h("button", { id: "login-submit", class: "primary", type: "submit", disabled: state.busy.has("login") }, state.busy.has("login") ? "Logging in…" : "Log in"),
      errorLine("login"),
      h("p", { class: "hint" }, "Demo: shopper / shopper-demo"),
    ),
  );
}

function renderCatalog(): HTMLElement {
  return h(
    "section",
    { class: "card", "aria-labelledby": "catalog-h" },
    h("h2", { id: "catalog-h" }, "Catalog"),
    state.busy.has("catalog") ? h("p", { class: "status busy" }, "Loading the catalog…") : null,
    h(
      "ul",
      { class: "plain", id: "products" },
      ...state.products.map((p) =>
        h(
          "li",
          { class: "product" },
          h("div", {}, h("div", { class: "name" }, p.name), h("div", { class: "desc" }, p.description)),
          h("span", { class: "price" }, money(amountOf(p.unitPrice))),
          h(
            "button",
            { id: `add-${p.sku}`, type: "button", "aria-label": `Add ${p.name} to cart`, onclick: () => addToCart(p.sku, 1) },
            "Add",
          ),
        ),
      ),
    ),
    errorLine("catalog"),
  );
}

function renderCart(): HTMLElement {
  const lines = [...state.cart.entries()].map(([sku, qty]) => ({ sku, qty, p: state.products.find((p) => p.sku === sku) }));
  const currency = lines[0]?.p?.unitPrice?.currency ?? "EUR";
  const total = lines.reduce((t, l) => t + (l.p?.unitPrice?.amountMinor ?? 0n) * BigInt(l.qty), 0n);
  return h(
    "section",
    { class: "card", "aria-labelledby": "cart-h" },
    h("h2", { id: "cart-h" }, "Cart"),
    lines.length === 0
      ? h("p", { class: "muted" }, "Your cart is empty.")
      : h(
          "ul",
          { class: "plain", id: "cart-lines" },
          ...lines.map((l) => {
            const name = l.p?.name ?? l.sku;
            return h(
              "li",
              { class: "cart-line" },
              h("span", {}, name),
              h(
                "span",
                { class: "qty" },
                h("button", { id: `less-${l.sku}`, type: "button", "aria-label": `One ${name} less`, onclick: () => addToCart(l.sku, -1) }, "−"),
                h("output", { "aria-label": `${name} quantity` }, String(l.qty)),
                h("button", { id: `more-${l.sku}`, type: "button", "aria-label": `One ${name} more`, onclick: () => addToCart(l.sku, 1) }, "+"),
              ),
              h("span", { class: "price" }, money({ minor: (l.p?.unitPrice?.amountMinor ?? 0n) * BigInt(l.qty), currency })),
            );
          }),
        ),
    lines.length > 0 ? h("div", { class: "total" }, h("span", {}, "Estimated total"), h("span", { class: "price" }, money({ minor: total, currency }))) : null,
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { id: "start-checkout", class: "primary", type: "button", disabled: lines.length === 0 || state.busy.has("start"), onclick: () => void startCheckout() },
        state.busy.has("start") ? "Starting checkout…" : "Check out",
      ),
    ),
    errorLine("start"),
  );
}

const unusable: Record<number, string> = {
  [UnusableReason.NOT_YET_VALID]: "not valid yet",
  [UnusableReason.EXPIRED]: "expired",
  [UnusableReason.ALREADY_USED]: "already used",
  [UnusableReason.BELOW_MINIMUM_SPEND]: "order below the minimum spend",
  [UnusableReason.CURRENCY_MISMATCH]: "other currency",
};

function remaining(co: Checkout): Amount {
  const total = amountOf(co.total);
  return { minor: total.minor - (state.coupon?.discount.minor ?? 0n) - (state.points?.value.minor ?? 0n), currency: total.currency };
}

function renderCheckout(co: Checkout): HTMLElement {
  const total = amountOf(co.total);
  const left = remaining(co);
  const opts = state.options;
  const busy = (k: string) => state.busy.has(k);
  const anyBusy = ["coupon", "points", "payment", "place", "cancel"].some(busy);
  const paid = !state.checkoutClosed && (left.minor === 0n || (state.payment !== null && state.payment.amount.minor === left.minor));
  const expires = co.expiresAt ? new Date(timestampMs(co.expiresAt)).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  const maxPoints = (() => {
    const byTotal = total.minor - (state.coupon?.discount.minor ?? 0n);
    const bal = opts?.balance ?? 0n;
    return bal < byTotal ? bal : byTotal;
  })();

  const couponBox = h(
    "fieldset",
    { id: "coupons" },
    h("legend", {}, "Coupon"),
    opts?.coupons === null || opts === null
      ? h("p", { class: "status busy" }, opts === null ? "Loading your coupons…" : "Coupons are not available right now.")
      : h(
          "div",
          { role: "radiogroup", "aria-describedby": "coupon-status" },
          h(
            "label",
            { class: "choice" },
            h("input", { type: "radio", name: "coupon", id: "coupon-none", value: "", checked: state.coupon === null, onchange: () => void chooseCoupon("") }),
            h("span", {}, "No coupon"),
          ),
          ...opts.coupons.map((c) => {
            const why = c.usable ? "" : unusable[c.unusableReason] ?? "not usable";
            return h(
              "label",
              { class: `choice${c.usable ? "" : " disabled"}` },
              h("input", {
                type: "radio",
                name: "coupon",
                id: `coupon-${c.code}`,
                value: c.code,
                checked: state.coupon?.code === c.code,
                disabled: !c.usable,
                onchange: () => void chooseCoupon(c.code),
              }),
              h(
                "span",
                {},
                `${c.code}${c.discount ? ` — ${money(amountOf(c.discount))} off` : ""}`,
                h("span", { class: "sub" }, c.campaign?.description ?? "", why ? ` (${why})` : ""),
              ),
            );
          }),
        ),
    h(
      "p",
      { id: "coupon-status", class: `status ${busy("coupon") ? "busy" : "ok"}`, role: "status" },
      busy("coupon") ? "Confirming the coupon…" : state.coupon ? `Coupon ${state.coupon.code} confirmed: ${money(state.coupon.discount)} off.` : "",
    ),
    errorLine("coupon"),
  );

  const pointsBox = h(
    "fieldset",
    { id: "points-box" },
    h("legend", {}, "Points"),
    h(
      "div",
      { class: "row" },
      h(
        "div",
        {},
        h("label", { for: "points" }, "Points to use"),
        h("input", {
          id: "points",
          type: "number",
          inputmode: "numeric",
          min: "1",
          max: String(maxPoints),
          step: "1",
          value: state.pointsInput,
          disabled: opts?.balance == null,
          "aria-describedby": "points-hint",
          oninput: (e: Event) => (state.pointsInput = (e.target as HTMLInputElement).value),
          onkeydown: (e: KeyboardEvent) => {
            if (e.key === "Enter") {
              e.preventDefault();
              void applyPoints();
            }
          },
        }),
      ),
      h("button", { id: "points-apply", type: "button", disabled: busy("points") || opts?.balance == null, onclick: () => void applyPoints() }, "Use points"),
      state.points ? h("button", { id: "points-remove", type: "button", disabled: busy("points"), onclick: () => void removePoints() }, "Remove") : null,
    ),
    h(
      "p",
      { id: "points-hint", class: "hint" },
      opts === null
        ? "Loading your balance…"
        : opts.balance === null
          ? "Your points are not available right now."
          : `You have ${fmtInt(opts.balance)} points; 1 point is worth ${money({ minor: 1n, currency: total.currency })}. At most ${fmtInt(maxPoints)} here.`,
    ),
    h(
      "p",
      { id: "points-status", class: `status ${busy("points") ? "busy" : "ok"}`, role: "status" },
      busy("points")
        ? "Confirming the points…"
        : state.points
          ? `${fmtInt(state.points.points)} points confirmed: ${money(state.points.value)} off; ${fmtInt(state.points.remainingBalance)} points will remain.`
          : "",
    ),
    errorLine("points"),
  );

  const summary = h(
    "table",
    { class: "summary", id: "summary", "aria-label": "Amounts" },
    h("tbody", {},
      h("tr", {}, h("th", { scope: "row" }, "Order total"), h("td", {}, money(total))),
      state.coupon ? h("tr", {}, h("th", { scope: "row" }, `Coupon ${state.coupon.code}`), h("td", {}, `−${money(state.coupon.discount)}`)) : null,
      state.points ? h("tr", {}, h("th", { scope: "row" }, `${fmtInt(state.points.points)} points`), h("td", {}, `−${money(state.points.value)}`)) : null,
      h("tr", { class: "remaining" }, h("th", { scope: "row" }, "Left to pay by card"), h("td", { id: "remaining" }, money(left))),
    ),
  );

  const cardBox = h(
    "fieldset",
    { id: "cards" },
    h("legend", {}, "Payment"),
    opts?.methods === null || opts === null
      ? h("p", { class: "status busy" }, opts === null ? "Loading your cards…" : "Your cards are not available right now.")
      : left.minor === 0n
        ? h("p", { class: "muted" }, "Nothing left to pay by card.")
        : h(
            "div",
            { role: "radiogroup", "aria-describedby": "payment-status" },
            ...opts.methods.map((m) =>
              h(
                "label",
                { class: "choice" },
                h("input", {
                  type: "radio",
                  name: "card",
                  id: `card-${m.last4}`,
                  value: m.id,
                  checked: state.selectedMethod === m.id,
                  onchange: () => void chooseCard(m.id),
                }),
                h(
                  "span",
                  {},
                  `${cap(m.brand)} ending ${m.last4}`,
                  h("span", { class: "sub" }, `${m.label}${m.label ? " · " : ""}expires ${String(m.expiryMonth).padStart(2, "0")}/${m.expiryYear}`),
                ),
              ),
            ),
          ),
    h(
      "p",
      { id: "payment-status", class: `status ${busy("payment") ? "busy" : "ok"}`, role: "status" },
      busy("payment")
        ? "Confirming the payment…"
        : state.payment && left.minor > 0n
          ? `${money(state.payment.amount)} held on the card ending ${methodLast4(state.payment.methodId)}.`
          : "",
    ),
    errorLine("payment"),
  );

  return h(
    "section",
    { class: "card wide", "aria-labelledby": "checkout-h", id: "checkout" },
    h("h2", { id: "checkout-h", tabindex: "-1" }, "Checkout"),
    h("p", { class: "hint" }, `Checkout ${co.id}`, expires ? ` · open until ${expires}` : ""),
    h(
      "ul",
      { class: "plain" },
      ...co.lines.map((l) =>
        h("li", { class: "cart-line" }, h("span", {}, `${l.quantity} × ${l.name}`), h("span", {}), h("span", { class: "price" }, money(amountOf(l.lineTotal)))),
      ),
    ),
    errorLine("options"),
    couponBox,
    pointsBox,
    cardBox,
    summary,
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { id: "place-order", class: "primary", type: "button", disabled: !paid || anyBusy || opts === null, onclick: () => void placeOrder() },
        busy("place") ? "Placing the order…" : `Place order · ${money(total)}`,
      ),
      h("button", { id: "cancel-checkout", type: "button", disabled: anyBusy, onclick: () => void cancelCheckout() }, state.checkoutClosed ? "Back to the shop" : "Cancel checkout"),
    ),
    !paid && opts !== null && !state.checkoutClosed ? h("p", { class: "hint", id: "place-hint" }, "Choose a card to pay what is left.") : null,
    errorLine("place"),
  );
}

const stepName: Record<string, string> = {
  "coupons:redeem": "Coupon",
  "points:spend": "Points",
  "payments:capture": "Card payment",
};
const statusName: Record<number, string> = {
  [OrderStatus.PENDING]: "Pending",
  [OrderStatus.IN_PROGRESS]: "In progress",
  [OrderStatus.COMPENSATING]: "Undoing",
  [OrderStatus.COMPLETED]: "Completed",
  [OrderStatus.FAILED]: "Failed",
};
const statusClass: Record<number, string> = {
  [OrderStatus.COMPLETED]: "COMPLETED",
  [OrderStatus.FAILED]: "FAILED",
  [OrderStatus.COMPENSATING]: "COMPENSATING",
};
const stateName: Record<number, string> = {
  [StepState.PENDING]: "Waiting",
  [StepState.EXERCISING]: "In progress",
  [StepState.APPLIED]: "Done",
  [StepState.FAILED]: "Failed",
  [StepState.COMPENSATING]: "Being undone",
  [StepState.COMPENSATED]: "Undone",
};
const stateClass: Record<number, string> = {
  [StepState.APPLIED]: "APPLIED",
  [StepState.FAILED]: "FAILED",
  [StepState.COMPENSATING]: "COMPENSATING",
  [StepState.COMPENSATED]: "COMPENSATED",
};
const final = (o: Order) => o.status === OrderStatus.COMPLETED || o.status === OrderStatus.FAILED;

function progressText(o: Order): string {
  const steps = o.steps.map((s) => `${stepName[s.capability] ?? s.capability}: ${stateName[s.state] ?? "unknown"}`).join(", ");
  return `Order ${statusName[o.status] ?? "unknown"}. ${steps}.`;
}

/** failedStep names the step that failed, from the order's failure reason ("<capability> refused: ..."). */
function failedStep(o: Order): string {
  const cap = /^([a-z]+:[a-z]+)\b/.exec(o.failureReason)?.[1] ?? "";
  switch (cap) {
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

function renderOrder(o: Order): HTMLElement {
  const done = final(o);
  return h(
    "section",
    { class: "card wide", "aria-labelledby": "order-h", id: "order" },
    h("h2", { id: "order-h", tabindex: "-1" }, "Your order"),
    h("p", { class: "hint" }, `Order ${o.id} · ${money(amountOf(o.total))}`),
    h(
      "p",
      {},
      "Status: ",
      h("span", { id: "order-status", class: `badge ${statusClass[o.status] ?? ""}` }, statusName[o.status] ?? "Unknown"),
    ),
    h(
      "ol",
      { class: "plain steps", id: "order-steps", "aria-label": "Steps" },
      ...o.steps.map((s) =>
        h(
          "li",
          { "data-capability": s.capability },
          h("span", {}, `${stepName[s.capability] ?? s.capability} · ${money(amountOf(s.settlement))}`),
          h("span", { class: `badge ${stateClass[s.state] ?? ""}` }, stateName[s.state] ?? "Unknown"),
          s.lastError && !done ? h("span", { class: "sub muted" }, `Retrying: ${s.lastError}`) : null,
        ),
      ),
    ),
    o.status === OrderStatus.COMPLETED
      ? h("p", { class: "outcome ok", id: "order-outcome" }, "Thank you! Your order is complete and paid.")
      : o.status === OrderStatus.FAILED
        ? h(
            "div",
            {},
            h(
              "p",
              { class: "outcome bad", id: "order-outcome" },
              `The order did not go through: ${failedStep(o)}. Everything was undone: your coupon and points are available again and your card was not charged.`,
            ),
            o.failureReason ? h("p", { class: "details" }, `Details: ${o.failureReason}`) : null,
          )
        : o.status === OrderStatus.COMPENSATING
          ? h("p", { class: "outcome bad", id: "order-outcome" }, `A step failed${o.failureReason ? ` (${o.failureReason})` : ""}; undoing the others…`)
          : h("p", { class: "status busy", id: "order-outcome" }, "Processing your order…"),
    errorLine("watch"),
    done
      ? h("div", { class: "actions" }, h("button", { id: "continue", class: "primary", type: "button", onclick: () => continueShopping() }, "Continue shopping"))
      : null,
  );
}

function renderHistory(): HTMLElement {
  return h(
    "section",
    { class: "card wide", "aria-labelledby": "history-h" },
    h("h2", { id: "history-h" }, "Your orders"),
    state.orders.length === 0
      ? h("p", { class: "muted" }, state.busy.has("orders") ? "Loading…" : "No orders yet.")
      : h(
          "ul",
          { class: "plain orders", id: "orders" },
          ...state.orders.map((o) =>
            h(
              "li",
              {},
              h("span", { class: "id" }, o.id),
              h("span", { class: `badge ${statusClass[o.status] ?? ""}` }, statusName[o.status] ?? "Unknown"),
              h("span", { class: "muted" }, o.createdAt ? new Date(timestampMs(o.createdAt)).toLocaleString() : ""),
              h("span", { class: "price" }, money(amountOf(o.total))),
            ),
          ),
        ),
    h("div", { class: "actions" }, h("button", { id: "orders-refresh", type: "button", onclick: () => void loadOrders() }, "Refresh")),
    errorLine("orders"),
  );
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const methodLast4 = (id: string) => state.options?.methods?.find((m) => m.id === id)?.last4 ?? "";

// ---------------------------------------------------------------- actions

/** run marks key busy around fn and turns a failure into key's message. */
async function run<T>(key: string, step: Step, fn: () => Promise<T>): Promise<T | undefined> {
  state.busy.add(key);
  state.errors.delete(key);
  render();
  try {
    return await fn();
  } catch (err) {
    const e = toRpcError(err);
    if (e.kind === "canceled") return undefined;
    if (e.sessionEnded) {
      endSession();
      return undefined;
    }
    const text = explain(step, e);
    state.errors.set(key, text);
    if (text === CHECKOUT_EXPIRED || text.startsWith("This checkout was")) state.checkoutClosed = true;
    return undefined;
  } finally {
    state.busy.delete(key);
    render();
  }
}

function endSession(): void {
  state.session = null;
  state.checkout = null;
  state.order = null;
  banner.textContent = SESSION_ENDED;
  banner.hidden = false;
  render();
  document.getElementById("password")?.focus();
}

async function login(username: string, password: string): Promise<void> {
  banner.hidden = true;
  const s = await run("login", "login", () => tr.login(username.trim(), password));
  if (!s) return;
  state.session = s;
  render();
  main.focus();
  await afterLogin();
}

async function afterLogin(): Promise<void> {
  restoreCheckout();
  render();
  await Promise.all([loadProducts(), loadOrders(), state.checkout ? loadOptions() : Promise.resolve()]);
}

async function logout(): Promise<void> {
  state.session = null; // a deliberate logout is not an ended session
  sessionStorage.removeItem(CHECKOUT_KEY);
  await tr.logout();
  Object.assign(state, { checkout: null, order: null, orders: [], products: [], options: null, coupon: null, points: null, payment: null });
  render();
  document.getElementById("username")?.focus();
}

async function loadProducts(): Promise<void> {
  const res = await run("catalog", "catalog", () => tr.orders.listProducts({}));
  if (res) state.products = res.products;
  render();
}

async function loadOrders(): Promise<void> {
  const res = await run("orders", "orders", () => tr.orders.listOrders({ pageSize: 10 }));
  if (res) state.orders = res.orders;
  render();
}

function addToCart(sku: string, delta: number): void {
  const q = (state.cart.get(sku) ?? 0) + delta;
  if (q <= 0) state.cart.delete(sku);
  else state.cart.set(sku, Math.min(q, 99));
  sessionStorage.setItem(CART_KEY, JSON.stringify([...state.cart]));
  render();
}

function loadCart(): Map<string, number> {
  try {
    return new Map(JSON.parse(sessionStorage.getItem(CART_KEY) ?? "[]") as [string, number][]);
  } catch {
    return new Map();
  }
}

async function startCheckout(): Promise<void> {
  const items = [...state.cart].map(([sku, quantity]) => ({ sku, quantity }));
  const res = await run("start", "start", () => tr.orders.startCheckout({ items }));
  if (!res?.checkout) return;
  Object.assign(state, { checkout: res.checkout, checkoutToken: res.checkoutToken, checkoutClosed: false, coupon: null, points: null, payment: null, selectedMethod: "", pointsInput: "", options: null, order: null });
  saveCheckout();
  render();
  document.getElementById("checkout-h")?.focus();
  await loadOptions();
}

/** loadOptions asks the three domains at once; each may fail on its own. */
async function loadOptions(): Promise<void> {
  state.errors.delete("options");
  const [coupons, balance, methods] = await Promise.allSettled([
    tr.coupons.listAvailableCoupons({ checkoutToken: state.checkoutToken }),
    tr.points.getBalance({}),
    tr.payments.listPaymentMethods({}),
  ]);
  const failures = [coupons, balance, methods].filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => toRpcError(r.reason));
  if (failures.some((f) => f.sessionEnded)) return endSession();
  if (failures[0]) state.errors.set("options", explain("options", failures[0]));
  state.options = {
    coupons: coupons.status === "fulfilled" ? coupons.value.coupons : null,
    balance: balance.status === "fulfilled" ? balance.value.balance : null,
    methods: methods.status === "fulfilled" ? methods.value.paymentMethods : null,
  };
  render();
}

// Each choice is confirmed on the spot; a choice changed again before its
// confirmation arrived (arrowing through radio buttons) drops the stale answer.
const latest = { coupon: 0, points: 0, payment: 0 };

async function chooseCoupon(code: string): Promise<void> {
  const seq = ++latest.coupon;
  if (code === "") {
    state.coupon = null;
    state.errors.delete("coupon");
  } else {
    const res = await run("coupon", "coupon", () => tr.coupons.confirmCoupon({ code }));
    if (seq !== latest.coupon) return;
    state.coupon = res
      ? { code, token: res.confirmationToken, discount: amountOf(res.discount), expiresAt: res.expiresAt ? timestampMs(res.expiresAt) : 0 }
      : null;
  }
  await afterDiscountChange();
}

async function applyPoints(): Promise<void> {
  const raw = state.pointsInput.trim();
  if (!/^\d+$/.test(raw) || BigInt(raw) === 0n) {
    state.errors.set("points", "Enter a whole number of points, at least 1.");
    render();
    document.getElementById("points")?.focus();
    return;
  }
  const points = BigInt(raw);
  const seq = ++latest.points;
  const res = await run("points", "points", () => tr.points.confirmPoints({ points }));
  if (seq !== latest.points) return;
  if (res) {
    state.points = {
      points,
      token: res.confirmationToken,
      value: amountOf(res.value),
      remainingBalance: res.remainingBalance,
      expiresAt: res.expiresAt ? timestampMs(res.expiresAt) : 0,
    };
  }
  await afterDiscountChange();
}

async function removePoints(): Promise<void> {
  latest.points++;
  state.points = null;
  state.pointsInput = "";
  await afterDiscountChange();
  document.getElementById("points")?.focus();
}

/** afterDiscountChange re-confirms the card for the new amount left to pay. */
async function afterDiscountChange(): Promise<void> {
  saveCheckout();
  const co = state.checkout;
  if (!co) return;
  const left = remaining(co);
  if (left.minor <= 0n) state.payment = null;
  else if (state.selectedMethod && state.payment?.amount.minor !== left.minor) await confirmCard(state.selectedMethod);
  saveCheckout();
  render();
}

async function chooseCard(methodId: string): Promise<void> {
  state.selectedMethod = methodId;
  await confirmCard(methodId);
}

async function confirmCard(methodId: string): Promise<void> {
  const co = state.checkout;
  if (!co) return;
  const amount = remaining(co);
  const seq = ++latest.payment;
  state.payment = null;
  const res = await run("payment", "payment", () =>
    tr.payments.confirmPayment({ paymentMethodId: methodId, amount: { amountMinor: amount.minor, currency: amount.currency } }),
  );
  if (seq !== latest.payment) return;
  if (res) {
    state.payment = { methodId, token: res.confirmationToken, amount: amountOf(res.amount), expiresAt: res.expiresAt ? timestampMs(res.expiresAt) : 0 };
  } else {
    state.selectedMethod = "";
  }
  saveCheckout();
  render();
}

/**
 * refreshConfirmations confirms again whatever would expire before the
 * order reaches OrderProcessing (confirmation tokens live two minutes).
 */
async function refreshConfirmations(): Promise<void> {
  const soon = Date.now() + 15_000;
  if (state.coupon && state.coupon.expiresAt < soon) await chooseCoupon(state.coupon.code);
  if (state.points && state.points.expiresAt < soon) {
    state.pointsInput = String(state.points.points);
    await applyPoints();
  }
  if (state.payment && state.payment.expiresAt < soon) await confirmCard(state.payment.methodId);
}

async function placeOrder(): Promise<void> {
  const co = state.checkout;
  if (!co) return;
  await refreshConfirmations();
  const tokens = [state.coupon?.token, state.points?.token, state.payment?.token].filter((t): t is string => !!t);
  const res = await run("place", "place", () => tr.orders.placeOrder({ checkoutId: co.id, confirmationTokens: tokens }));
  if (!res?.order) {
    if (state.checkoutClosed) await loadOrders(); // placed elsewhere: show that order
    return;
  }
  sessionStorage.removeItem(CHECKOUT_KEY);
  sessionStorage.removeItem(CART_KEY);
  Object.assign(state, { checkout: null, checkoutToken: "", order: res.order, cart: new Map(), coupon: null, points: null, payment: null, selectedMethod: "", pointsInput: "" });
  render();
  document.getElementById("order-h")?.focus();
  await watchOrder(res.order.id);
}

/** watchOrder follows the saga through the WatchOrder stream until it is final. */
async function watchOrder(orderId: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      for await (const res of tr.orders.watchOrder({ orderId })) {
        if (!res.order) continue;
        state.order = res.order;
        live.textContent = progressText(res.order);
        render();
      }
    } catch (err) {
      const e = toRpcError(err);
      if (e.sessionEnded) return endSession();
      if (e.kind !== "unavailable" && !(err instanceof ConnectError && err.code === Code.Unknown)) {
        state.errors.set("watch", explain("watch", e));
        render();
        return;
      }
    }
    if (state.order && final(state.order)) break;
    await new Promise((r) => setTimeout(r, 1000 * (attempt + 1))); // the stream broke: follow again
  }
  await loadOrders();
}

async function cancelCheckout(): Promise<void> {
  const co = state.checkout;
  if (!co) return;
  if (!state.checkoutClosed) await run("cancel", "cancel", () => tr.orders.cancelCheckout({ checkoutId: co.id }));
  sessionStorage.removeItem(CHECKOUT_KEY);
  Object.assign(state, { checkout: null, checkoutToken: "", checkoutClosed: false, options: null, coupon: null, points: null, payment: null, selectedMethod: "" });
  state.errors.clear();
  render();
  document.getElementById("start-checkout")?.focus();
}

function continueShopping(): void {
  state.order = null;
  state.errors.delete("watch");
  render();
  document.getElementById("catalog-h")?.focus();
}

// ---------------------------------------------------------------- persistence

// The open checkout (with its confirmations) survives a reload of this tab;
// a duplicated tab gets a copy, and placing it twice is refused by the
// server, which the UI explains.
function saveCheckout(): void {
  if (!state.checkout) return;
  const data = {
    checkout: toJson(CheckoutSchema, state.checkout),
    checkoutToken: state.checkoutToken,
    coupon: state.coupon,
    points: state.points,
    payment: state.payment,
    selectedMethod: state.selectedMethod,
  };
  sessionStorage.setItem(CHECKOUT_KEY, JSON.stringify(data, (_k, v: unknown) => (typeof v === "bigint" ? { $bigint: v.toString() } : v)));
}

function restoreCheckout(): void {
  const raw = sessionStorage.getItem(CHECKOUT_KEY);
  if (!raw) return;
  try {
    const d = JSON.parse(raw, (_k, v: unknown) =>
      v !== null && typeof v === "object" && "$bigint" in v ? BigInt((v as { $bigint: string }).$bigint) : v,
    ) as {
      checkout: Parameters<typeof fromJson>[1];
      checkoutToken: string;
      coupon: CouponChoice | null;
      points: PointsChoice | null;
      payment: PaymentChoice | null;
      selectedMethod: string;
    };
    const co = fromJson(CheckoutSchema, d.checkout);
    if (co.expiresAt && timestampMs(co.expiresAt) < Date.now()) {
      sessionStorage.removeItem(CHECKOUT_KEY);
      return;
    }
    Object.assign(state, {
      checkout: co,
      checkoutToken: d.checkoutToken,
      coupon: d.coupon,
      points: d.points,
      payment: d.payment,
      selectedMethod: d.selectedMethod,
      pointsInput: d.points ? String(d.points.points) : "",
    });
    tr.checkoutToken = d.checkoutToken;
  } catch {
    sessionStorage.removeItem(CHECKOUT_KEY);
  }
}

// Another tab logging out ends this tab's session too.
window.addEventListener("storage", (e) => {
  if (e.key === "tokenrelay.session" && e.newValue === null && state.session !== null) endSession();
});

render();
if (state.session) void afterLogin();
else document.getElementById("username")?.focus();
