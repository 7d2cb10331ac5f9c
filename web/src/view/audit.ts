// view/audit.ts owns the admin's token audit section: an order id field and
// the order's token timeline (GetTokenAudit), each token from its issue to
// its exercise or compensation, with refusals (a replay) in between.
//
// Rules: reads the state, never changes it; reacts to the admin only by
// calling Handlers (ports.ts); no network, no storage. May import: state.ts
// (types and selectors), ports.ts (types), format.ts, @tokenrelay/gen,
// view/*.
import type { AuditEvent } from "@tokenrelay/gen/tokenrelay/capability/v1/capability_pb";
import { dateTime } from "../format.js";
import type { Handlers } from "../ports.js";
import type { AppState, AuditView } from "../state.js";
import { errorLine, h } from "./dom.js";
import { auditEventText } from "./labels.js";

export function renderAudit(s: AppState, on: Handlers): HTMLElement {
  const busy = s.busy.has("audit");
  return h(
    "section",
    { class: "card wide", "aria-labelledby": "audit-h", id: "audit" },
    h("h2", { id: "audit-h" }, "Token audit"),
    h("p", { class: "hint" }, "An order's tokens from their issue to their exercise or compensation, across the services (admins only)."),
    h(
      "form",
      {
        class: "actions",
        onsubmit: (e: Event) => {
          e.preventDefault();
          void on.showTokenAudit(s.auditInput);
        },
      },
      h("label", { for: "audit-order" }, "Order id"),
      h("input", { id: "audit-order", name: "order", value: s.auditInput, placeholder: "ord_…", maxlength: 64, oninput: (e: Event) => on.setAuditInput((e.target as HTMLInputElement).value) }),
      h("button", { id: "audit-show", type: "submit", disabled: busy }, busy ? "Loading…" : "Show timeline"),
    ),
    errorLine(s, "audit"),
    s.audit ? timeline(s.audit) : null,
  );
}

/** timeline is the events of one order, oldest first (#audit-events), and the issuers that could not be asked. */
function timeline(a: AuditView): HTMLElement {
  return h(
    "div",
    {},
    h("h3", { id: "audit-events-h", tabindex: "-1" }, `Timeline of ${a.orderId}`),
    a.events.length === 0
      ? h("p", { class: "muted", id: "audit-empty" }, "No audit event for this order.")
      : h("ol", { class: "plain lines", id: "audit-events", "aria-labelledby": "audit-events-h" }, ...a.events.map(eventItem)),
    a.unreachable.length > 0
      ? h("p", { class: "error", id: "audit-unreachable", role: "alert" }, `Could not ask ${a.unreachable.join(", ")}: their events are missing.`)
      : null,
  );
}

/** eventItem is one event: when, what happened, and the token's jti and the request's txn to quote. */
function eventItem(e: AuditEvent): HTMLElement {
  return h(
    "li",
    { class: `line audit ${e.action}`, "data-action": e.action, "data-service": e.service },
    h("span", { class: "date" }, dateTime(e.at)),
    h("span", { class: "what" }, auditEventText(e)),
    h("span", { class: "id muted", title: `chain ${e.service} #${e.seq}${e.txn ? `, txn ${e.txn}` : ""}` }, e.jti || "–"),
  );
}
