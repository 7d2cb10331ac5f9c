// The browser checkout of tokenrelay: log in, fill a cart from the catalog,
// start a checkout, confirm a coupon, points and a card on the spot (each
// domain signs a confirmation token), place the order with those tokens and
// follow its saga live through WatchOrder. No framework: the state in one
// object (state.ts), changed by what the shopper does (actions.ts), the page
// re-rendered from it with DOM calls, never innerHTML, focus kept (view/).
//
// main.ts owns only the start-up: it creates the SDK client, the state, the
// page and the actions, connects them (ports.ts), listens for another tab
// logging out, and renders the first page.
// Rules: no rendering, state changes or calls of its own. May import any
// module of web/src.
import "./style.css";
import { createTokenRelay, webStorageSessionStore } from "@tokenrelay/sdk";
import { Actions } from "./actions.js";
import { initialState } from "./state.js";
import { loadCart } from "./storage.js";
import { Page } from "./view/page.js";

const SESSION_KEY = "tokenrelay.session";

const tr = createTokenRelay({
  // One login shared by the tabs of this browser; refreshes coordinate
  // through a Web Lock so that two tabs never spend one refresh token.
  store: webStorageSessionStore(localStorage, SESSION_KEY),
  onSessionChange: (s) => actions.sessionChanged(s),
});

const state = initialState(tr.session(), loadCart(sessionStorage));
const page = new Page(state);
const actions = new Actions({ tr, state, ui: page, store: sessionStorage });
page.bind(actions);

// Another tab logging out ends this tab's session too.
window.addEventListener("storage", (e) => {
  if (e.key === SESSION_KEY && e.newValue === null) actions.sessionRemovedElsewhere();
});

page.render();
void actions.start();
