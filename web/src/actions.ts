// actions.ts owns what the shopper's actions do: the calls to tokenrelay
// through the SDK (log in, fill the cart, start a checkout, confirm a coupon,
// points and a card on the spot – each domain signs a confirmation token –,
// place the order with those tokens, follow its saga live through
// WatchOrder) and what their answers do to the state.
//
// Rules: changes the state only through the transitions of state.ts; never
// touches the DOM, document or window – it asks the page to re-render, move
// the focus, show the banner or announce the order through the Ui port
// (ports.ts); keeps the tab's cart and checkout through storage.ts.
// May import: state.ts, storage.ts, messages.ts, ports.ts (types), the SDK,
// @connectrpc/connect and @bufbuild/protobuf. Never imports view/.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { toRpcError, type Session, type TokenRelay } from "@tokenrelay/sdk";
import { explain, SESSION_ENDED, tooManyPoints, type Step } from "./messages.js";
import type { Handlers, Ui } from "./ports.js";
import * as st from "./state.js";
import * as storage from "./storage.js";

const expiry = (t: Timestamp | undefined): number => (t ? timestampMs(t) : 0);

/** How long before they expire the confirmations are confirmed again when placing the order. */
const REFRESH_MARGIN_MS = 15_000;

export interface ActionsDeps {
  tr: TokenRelay;
  state: st.AppState;
  ui: Ui;
  /** The tab's sessionStorage. */
  store: storage.KeyValueStore;
}

export class Actions implements Handlers {
  private readonly tr: TokenRelay;
  private readonly state: st.AppState;
  private readonly ui: Ui;
  private readonly store: storage.KeyValueStore;
  // Each choice is confirmed on the spot; a choice changed again before its
  // confirmation arrived (arrowing through radio buttons) drops the stale answer.
  private readonly latest = { coupon: 0, points: 0, payment: 0 };

  constructor(deps: ActionsDeps) {
    this.tr = deps.tr;
    this.state = deps.state;
    this.ui = deps.ui;
    this.store = deps.store;
  }

  // ---------------------------------------------------------------- the session

  /** sessionChanged follows the SDK's session; losing it unasked ends the session. */
  sessionChanged(s: Session | null): void {
    if (s === null && this.state.session !== null) this.endSession();
    st.setSession(this.state, s);
  }

  /** sessionRemovedElsewhere: another tab logged out, which ends this tab's session too. */
  sessionRemovedElsewhere(): void {
    if (this.state.session !== null) this.endSession();
  }

  /** start loads what the page shows, for a session restored at start-up. */
  async start(): Promise<void> {
    if (this.state.session) await this.afterLogin();
    else this.ui.focus("username");
  }

  async login(username: string, password: string): Promise<void> {
    this.ui.hideBanner();
    const s = await this.run("login", () => this.tr.login(username.trim(), password));
    if (!s) return;
    st.setSession(this.state, s);
    this.ui.render();
    this.ui.focus("main");
    await this.afterLogin();
  }

  async logout(): Promise<void> {
    st.setSession(this.state, null); // a deliberate logout is not an ended session
    storage.forgetCheckout(this.store);
    await this.tr.logout();
    st.loggedOut(this.state);
    this.ui.render();
    this.ui.focus("username");
  }

  setLoginName(name: string): void {
    st.setLoginName(this.state, name);
  }

  private endSession(): void {
    st.sessionEnded(this.state);
    this.ui.showBanner(SESSION_ENDED);
    this.ui.render();
    this.ui.focus("password");
  }

  private async afterLogin(): Promise<void> {
    this.restoreCheckout();
    this.ui.render();
    await Promise.all([this.loadProducts(), this.loadOrders(), this.state.checkout ? this.loadOptions() : Promise.resolve()]);
  }

  // ---------------------------------------------------------------- calls

  /** run marks step busy around fn and turns a failure into step's message. */
  private async run<T>(step: Step, fn: () => Promise<T>): Promise<T | undefined> {
    st.callStarted(this.state, step);
    this.ui.render();
    try {
      return await fn();
    } catch (err) {
      const e = toRpcError(err);
      if (e.kind === "canceled") return undefined;
      if (e.sessionEnded) {
        this.endSession();
        return undefined;
      }
      st.callFailed(this.state, step, explain(step, e));
      return undefined;
    } finally {
      st.callEnded(this.state, step);
      this.ui.render();
    }
  }

  private async loadProducts(): Promise<void> {
    const res = await this.run("catalog", () => this.tr.orders.listProducts({}));
    if (res) st.productsLoaded(this.state, res.products);
    this.ui.render();
  }

  async loadOrders(): Promise<void> {
    const res = await this.run("orders", () => this.tr.orders.listOrders({ pageSize: 10 }));
    if (res) st.ordersLoaded(this.state, res.orders);
    this.ui.render();
  }

  setAuditInput(raw: string): void {
    st.setAuditInput(this.state, raw);
  }

  async showTokenAudit(orderId: string): Promise<void> {
    const id = st.auditOrderId(orderId);
    if (id === null) {
      st.setError(this.state, "audit", "Enter an order id such as ord_….");
      this.ui.render();
      return;
    }
    const res = await this.run("audit", () => this.tr.orders.getTokenAudit({ by: { case: "orderId", value: id } }));
    if (res) st.auditLoaded(this.state, id, res.events, res.unreachableIssuers);
    this.ui.render();
    if (res) this.ui.focus("audit-events-h");
  }

  addToCart(sku: string, delta: number): void {
    st.addToCart(this.state, sku, delta);
    storage.saveCart(this.store, this.state.cart);
    this.ui.render();
  }

  // ---------------------------------------------------------------- the checkout

  async startCheckout(): Promise<void> {
    const items = st.cartItems(this.state);
    const res = await this.run("start", () => this.tr.orders.startCheckout({ items }));
    if (!res?.checkout) return;
    st.checkoutStarted(this.state, res.checkout, res.checkoutToken);
    storage.saveCheckout(this.store, this.state);
    this.ui.render();
    this.ui.focus("checkout-h");
    await this.loadOptions();
  }

  /** restoreCheckout reopens the checkout this tab had open before a reload. */
  private restoreCheckout(): void {
    const saved = storage.loadCheckout(this.store, Date.now());
    if (!saved) return;
    st.checkoutRestored(this.state, saved);
    this.tr.checkoutToken = saved.checkoutToken;
  }

  /** loadOptions asks the three domains at once; each may fail on its own. */
  private async loadOptions(): Promise<void> {
    st.clearError(this.state, "options");
    const [coupons, balance, methods] = await Promise.allSettled([
      this.tr.coupons.listAvailableCoupons({ checkoutToken: this.state.checkoutToken }),
      this.tr.points.getBalance({}),
      this.tr.payments.listPaymentMethods({}),
    ]);
    const failures = [coupons, balance, methods].filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => toRpcError(r.reason));
    if (failures.some((f) => f.sessionEnded)) return this.endSession();
    if (failures[0]) st.setError(this.state, "options", explain("options", failures[0]));
    st.optionsLoaded(this.state, {
      coupons: coupons.status === "fulfilled" ? coupons.value.coupons : null,
      balance: balance.status === "fulfilled" ? balance.value.balance : null,
      methods: methods.status === "fulfilled" ? methods.value.paymentMethods : null,
    });
    this.ui.render();
  }

  async chooseCoupon(code: string): Promise<void> {
    const seq = ++this.latest.coupon;
    if (code === "") {
      st.couponChosen(this.state, null);
      st.clearError(this.state, "coupon");
    } else {
      const res = await this.run("coupon", () => this.tr.coupons.confirmCoupon({ code }));
      if (seq !== this.latest.coupon) return;
      st.couponChosen(this.state, res ? { code, token: res.confirmationToken, discount: st.amountOf(res.discount), expiresAt: expiry(res.expiresAt) } : null);
    }
    await this.afterDiscountChange();
  }

  setPointsInput(raw: string): void {
    st.setPointsInput(this.state, raw);
  }

  async applyPoints(): Promise<void> {
    const points = st.parsePoints(this.state.pointsInput);
    if (points === null) {
      st.setError(this.state, "points", "Enter a whole number of points, at least 1.");
      this.ui.render();
      this.ui.focus("points");
      return;
    }
    // Refused here, naming the tighter limit, rather than by whichever limit
    // the Points domain happens to check first.
    const over = this.state.checkout ? st.pointsOverLimit(this.state, this.state.checkout, points) : null;
    if (over) {
      st.setError(this.state, "points", tooManyPoints(over));
      this.ui.render();
      this.ui.focus("points");
      return;
    }
    const seq = ++this.latest.points;
    const res = await this.run("points", () => this.tr.points.confirmPoints({ points }));
    if (seq !== this.latest.points) return;
    if (res) {
      const value = st.amountOf(res.value);
      st.pointsConfirmed(this.state, { points, token: res.confirmationToken, value, remainingBalance: res.remainingBalance, expiresAt: expiry(res.expiresAt) });
    }
    await this.afterDiscountChange();
  }

  /** useMaxPoints uses as many points as can be: min(balance, what is left to pay after the coupon). */
  async useMaxPoints(): Promise<void> {
    const co = this.state.checkout;
    if (!co) return;
    st.setPointsInput(this.state, String(st.maxPoints(this.state, co)));
    await this.applyPoints();
  }

  async removePoints(): Promise<void> {
    this.latest.points++;
    st.pointsRemoved(this.state);
    await this.afterDiscountChange();
    this.ui.focus("points");
  }

  /** afterDiscountChange re-confirms the card for the new amount left to pay. */
  private async afterDiscountChange(): Promise<void> {
    storage.saveCheckout(this.store, this.state);
    const co = this.state.checkout;
    if (!co) return;
    const card = st.cardToReconfirm(this.state, co);
    if (st.remaining(this.state, co).minor <= 0n) st.paymentCleared(this.state);
    else if (card) await this.confirmCard(card);
    storage.saveCheckout(this.store, this.state);
    this.ui.render();
  }

  async chooseCard(methodId: string): Promise<void> {
    st.cardSelected(this.state, methodId);
    await this.confirmCard(methodId);
  }

  private async confirmCard(methodId: string): Promise<void> {
    const co = this.state.checkout;
    if (!co) return;
    const amount = st.remaining(this.state, co);
    const seq = ++this.latest.payment;
    st.paymentCleared(this.state);
    const res = await this.run("payment", () =>
      this.tr.payments.confirmPayment({ paymentMethodId: methodId, amount: { amountMinor: amount.minor, currency: amount.currency } }),
    );
    if (seq !== this.latest.payment) return;
    if (res) {
      st.paymentConfirmed(this.state, { methodId, token: res.confirmationToken, amount: st.amountOf(res.amount), expiresAt: expiry(res.expiresAt) });
    } else {
      st.paymentRefused(this.state);
    }
    storage.saveCheckout(this.store, this.state);
    this.ui.render();
  }

  /**
   * refreshConfirmations confirms again whatever would expire before the
   * order reaches OrderProcessing (confirmation tokens live two minutes).
   * One after the other: a new coupon can mean a new card confirmation.
   */
  private async refreshConfirmations(): Promise<void> {
    const soon = Date.now() + REFRESH_MARGIN_MS;
    const s = this.state;
    if (s.coupon && s.coupon.expiresAt < soon) await this.chooseCoupon(s.coupon.code);
    if (s.points && s.points.expiresAt < soon) {
      st.setPointsInput(s, String(s.points.points));
      await this.applyPoints();
    }
    if (s.payment && s.payment.expiresAt < soon) await this.confirmCard(s.payment.methodId);
  }

  async cancelCheckout(): Promise<void> {
    const co = this.state.checkout;
    if (!co) return;
    if (!this.state.checkoutClosed) await this.run("cancel", () => this.tr.orders.cancelCheckout({ checkoutId: co.id }));
    storage.forgetCheckout(this.store);
    st.checkoutLeft(this.state);
    this.ui.render();
    this.ui.focus("start-checkout");
  }

  // ---------------------------------------------------------------- the order

  async placeOrder(): Promise<void> {
    const co = this.state.checkout;
    if (!co) return;
    await this.refreshConfirmations();
    const tokens = st.confirmationTokens(this.state);
    const res = await this.run("place", () => this.tr.orders.placeOrder({ checkoutId: co.id, confirmationTokens: tokens }));
    if (!res?.order) {
      if (this.state.checkoutClosed) await this.loadOrders(); // placed elsewhere: show that order
      return;
    }
    storage.forgetCheckout(this.store);
    storage.forgetCart(this.store);
    st.orderPlaced(this.state, res.order);
    this.ui.render();
    this.ui.focus("order-h");
    await this.watchOrder(res.order.id);
  }

  /** watchOrder follows the saga through the WatchOrder stream until it is final. */
  private async watchOrder(orderId: string): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        for await (const res of this.tr.orders.watchOrder({ orderId })) {
          if (!res.order) continue;
          st.orderUpdated(this.state, res.order);
          this.ui.announceOrder(res.order);
          this.ui.render();
        }
      } catch (err) {
        const e = toRpcError(err);
        if (e.sessionEnded) return this.endSession();
        if (e.kind !== "unavailable" && !(err instanceof ConnectError && err.code === Code.Unknown)) {
          st.setError(this.state, "watch", explain("watch", e));
          this.ui.render();
          return;
        }
      }
      if (this.state.order && st.isFinal(this.state.order)) break;
      await new Promise((r) => setTimeout(r, 1000 * (attempt + 1))); // the stream broke: follow again
    }
    await this.loadOrders();
  }

  continueShopping(): void {
    st.orderDismissed(this.state);
    this.ui.render();
    this.ui.focus("catalog-h");
  }
}
