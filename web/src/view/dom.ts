// view/dom.ts owns the DOM building blocks of the page: h() creates an
// element from props and children (DOM calls, never innerHTML), plus the
// error and status lines that several parts of the page share.
//
// Rules: builds elements only; reads the state, never changes it; no
// network, no storage. May import: state.ts and messages.ts (types).
import type { Step } from "../messages.js";
import type { AppState } from "../state.js";

export type Child = Node | string | null | undefined | false;
export type Props = Record<string, unknown>;

/**
 * h creates a tag element: props named on* with a function value become
 * event listeners, class the class name, value/checked/disabled/hidden
 * properties, the others attributes (true as ""); null, undefined and
 * false props and children are left out.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
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

/** errorLine is step's error line (#<step>-error), empty and hidden by CSS when all is well. */
export function errorLine(s: AppState, step: Step): HTMLElement {
  return h("p", { id: `${step}-error`, class: "error", role: "alert" }, s.errors.get(step) ?? "");
}

/** statusLine is a confirmation's status line (#coupon-status, …): what is being or was confirmed. */
export function statusLine(id: string, busy: boolean, text: string): HTMLElement {
  return h("p", { id, class: `status ${busy ? "busy" : "ok"}`, role: "status" }, text);
}
