// ports.ts owns the two interfaces between the page and the calls, so that
// neither imports the other: Handlers is what the page (view/) may ask for
// when the shopper does something, implemented by actions.ts; Ui is what
// the calls (actions.ts) may ask of the page, implemented by view/page.ts.
// main.ts connects the two.
//
// Rules: types only. May import: types of @tokenrelay/gen.
import type { Order } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";

/** Handlers: one per thing the shopper can do on the page. */
export interface Handlers {
  login(username: string, password: string): Promise<void>;
  logout(): Promise<void>;
  /** setLoginName keeps the username field's text (no re-render). */
  setLoginName(name: string): void;
  addToCart(sku: string, delta: number): void;
  startCheckout(): Promise<void>;
  /** chooseCoupon confirms the coupon with this code; "" for no coupon. */
  chooseCoupon(code: string): Promise<void>;
  /** setPointsInput keeps the points field's text (no re-render). */
  setPointsInput(raw: string): void;
  applyPoints(): Promise<void>;
  /** useMaxPoints uses as many points as the balance and what is left to pay allow. */
  useMaxPoints(): Promise<void>;
  removePoints(): Promise<void>;
  chooseCard(methodId: string): Promise<void>;
  placeOrder(): Promise<void>;
  cancelCheckout(): Promise<void>;
  continueShopping(): void;
  loadOrders(): Promise<void>;
  /** setAuditInput keeps the admin's order id field's text (no re-render). */
  setAuditInput(raw: string): void;
  /** showTokenAudit shows an order's token timeline (admins only). */
  showTokenAudit(orderId: string): Promise<void>;
}

/** Ui: what the calls may ask of the page. */
export interface Ui {
  /** render draws the page again from the state, keeping the focus. */
  render(): void;
  /** focus moves the focus to the element with this id, if it is on the page. */
  focus(id: string): void;
  showBanner(text: string): void;
  hideBanner(): void;
  /** announceOrder tells screen readers how the order's saga is going. */
  announceOrder(order: Order): void;
}
