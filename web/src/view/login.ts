// view/login.ts owns the login form and the header's user box.
//
// Rules: reads the state, never changes it; reacts to the shopper only by
// calling Handlers (ports.ts); no network, no storage. The password stays in
// the form's closure, never in the state. May import: state.ts (types),
// ports.ts (types), view/dom.ts.
import type { Handlers } from "../ports.js";
import type { AppState } from "../state.js";
import { errorLine, h } from "./dom.js";

/** userBox is the header's "Logged in as …" and Log out button (nothing when logged out). */
export function userBox(s: AppState, on: Handlers): HTMLElement[] {
  if (!s.session) return [];
  return [
    h("span", {}, `Logged in as ${s.session.user.displayName || s.session.user.username}`),
    h("button", { id: "logout", type: "button", onclick: () => void on.logout() }, "Log out"),
  ];
}

export function renderLogin(s: AppState, on: Handlers): HTMLElement {
  let password = "";
  const busy = s.busy.has("login");
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
          void on.login(s.loginName, password);
        },
      },
      h("label", { for: "username" }, "Username"),
      h("input", {
        id: "username",
        type: "text",
        name: "username",
        autocomplete: "username",
        required: true,
        value: s.loginName,
        oninput: (e: Event) => on.setLoginName((e.target as HTMLInputElement).value),
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
      h("button", { id: "login-submit", class: "primary", type: "submit", disabled: busy }, busy ? "Logging in…" : "Log in"),
      errorLine(s, "login"),
      h("p", { class: "hint" }, "Demo: shopper / shopper-demo"),
    ),
  );
}
