// view/page.ts owns the page as a whole: the elements of index.html
// (#main, #user, #banner), the live region (#order-live), and re-rendering
// everything from the state with the focus kept (a re-render replaces the
// elements; focus goes back to the new one with the same id). Page
// implements the Ui port (ports.ts) that actions.ts drives.
//
// Rules: reads the state, never changes it; reacts to the shopper only by
// calling the Handlers it is bound to; no network, no storage. May import:
// state.ts (types), ports.ts (types), @tokenrelay/gen (types), view/*.
import type { Order } from "@tokenrelay/gen/tokenrelay/orderprocessing/v1/orderprocessing_pb";
import type { Handlers, Ui } from "../ports.js";
import { isAdmin, type AppState } from "../state.js";
import { renderAudit } from "./audit.js";
import { renderCheckout } from "./checkout.js";
import { h } from "./dom.js";
import { progressText } from "./labels.js";
import { renderLogin, userBox } from "./login.js";
import { renderHistory, renderOrder } from "./order.js";
import { renderCart, renderCatalog } from "./shop.js";

export class Page implements Ui {
  private readonly state: AppState;
  private readonly main = document.getElementById("main")!;
  private readonly user = document.getElementById("user")!;
  private readonly banner = document.getElementById("banner")!;
  private readonly live = h("p", { id: "order-live", class: "sr-only", "aria-live": "polite", role: "status" });
  private handlers: Handlers | null = null;
  /** The last focused element's id, for when the focus was lost with its element. */
  private lastFocusId = "";

  constructor(state: AppState) {
    this.state = state;
    document.body.append(this.live);
    document.addEventListener("focusin", (e) => {
      const id = (e.target as HTMLElement | null)?.id;
      if (id) this.lastFocusId = id;
    });
  }

  /** bind connects the page to what the shopper's actions do; before it, the page cannot render. */
  bind(handlers: Handlers): void {
    this.handlers = handlers;
  }

  render(): void {
    const on = this.handlers;
    if (on === null) throw new Error("Page.render before Page.bind");
    const active = document.activeElement;
    const focused = active && active !== document.body ? active.id : this.lastFocusId;
    this.user.replaceChildren(...userBox(this.state, on));
    if (this.state.session === null) {
      this.main.className = "";
      this.main.replaceChildren(renderLogin(this.state, on));
    } else {
      this.main.className = "shop";
      this.main.replaceChildren(...shop(this.state, on));
    }
    if (focused) {
      const el = document.getElementById(focused);
      if (el && el !== document.activeElement) el.focus();
    }
  }

  focus(id: string): void {
    document.getElementById(id)?.focus();
  }

  showBanner(text: string): void {
    this.banner.textContent = text;
    this.banner.hidden = false;
  }

  hideBanner(): void {
    this.banner.hidden = true;
  }

  announceOrder(order: Order): void {
    this.live.textContent = progressText(order);
  }
}

/** shop is what a logged-in shopper sees: the order or the checkout, else catalog and cart; then the history; an admin, the token audit too. */
function shop(s: AppState, on: Handlers): HTMLElement[] {
  const shopping = !s.checkout && !s.order;
  return [
    s.order ? renderOrder(s, on, s.order) : null,
    s.checkout ? renderCheckout(s, on, s.checkout) : null,
    shopping ? renderCatalog(s, on) : null,
    shopping ? renderCart(s, on) : null,
    renderHistory(s, on),
    isAdmin(s) ? renderAudit(s, on) : null,
  ].filter((x): x is HTMLElement => x !== null);
}
