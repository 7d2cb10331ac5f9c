// End-to-end test of the admin's token audit (web/src/view/audit.ts), on the
// harness of harness.ts: the shopper checks out, then the admin reads that
// order's token timeline, from each token's issue by its domain to its
// consumption by OrderProcessing and its exercise.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { TIMEOUT, chooseCard, chooseCoupon, closeBrowser, fillCart, login, openBrowser, shot, startSystem, usePoints, watchErrors } from "./harness.js";

const GET_TOKEN_AUDIT = "/tokenrelay.orderprocessing.v1.OrderProcessingService/GetTokenAudit";

/** askAuditAsCaller calls GetTokenAudit from the page with the logged-in user's access token, as a script of the page could; it returns the HTTP status and Connect code. */
async function askAuditAsCaller(page: Page, orderId: string): Promise<{ status: number; code: string }> {
  return page.evaluate(
    async ([path, orderId]) => {
      const session = JSON.parse(localStorage.getItem("tokenrelay.session")!) as { accessToken: string };
      const res = await fetch(path!, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1", Authorization: `Bearer ${session.accessToken}` },
        body: JSON.stringify({ orderId }),
      });
      const body = (await res.json()) as { code?: string };
      return { status: res.status, code: body.code ?? "" };
    },
    [GET_TOKEN_AUDIT, orderId],
  );
}

test("token audit: the admin follows each token of a shopper's order from issue to exercise; the shopper cannot", { timeout: TIMEOUT }, async () => {
  const sys = await startSystem();
  const ctx = await openBrowser();
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const errors = watchErrors(page);
    const asked: string[] = [];
    page.on("request", (r) => {
      if (r.url().endsWith(GET_TOKEN_AUDIT)) asked.push(r.postData() ?? "");
    });

    // The shopper's order: the happy path's coupon, points and card, one token from each domain.
    await login(page, sys.url);
    await fillCart(page);
    await chooseCoupon(page, "WELCOME5", "€5.00");
    await usePoints(page, 300);
    await chooseCard(page, "4242", "€53.80");
    await page.locator("#place-order").click();
    await page.locator("#order-status", { hasText: "Completed" }).waitFor();
    const orderId = (await page.locator("#order-ref").textContent()) ?? "";
    assert.match(orderId, /^ord_[a-z2-7]{26}$/);

    // A shopper is not shown the section, and the server refuses them the trail anyway.
    assert.equal(await page.getByRole("region", { name: "Token audit" }).count(), 0, "no Token audit section for a shopper");
    assert.equal(await page.getByLabel("Order id").count(), 0);
    assert.deepEqual(await askAuditAsCaller(page, orderId), { status: 403, code: "permission_denied" });

    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("Username").waitFor();
    await login(page, sys.url, "admin", "admin-demo");
    const audit = page.getByRole("region", { name: "Token audit" });
    // By keyboard (the history may still be loading and re-rendering the page).
    await audit.getByLabel("Order id").fill(orderId);
    await audit.getByLabel("Order id").press("Enter");
    const timeline = audit.getByRole("list", { name: `Timeline of ${orderId}` });
    await timeline.waitFor();
    // The timeline takes the focus, for keyboard and screen reader users.
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), `Timeline of ${orderId}`);

    // Oldest first: the checkout token issued by OrderProcessing, then
    // each confirmation token issued by its domain, consumed by
    // OrderProcessing for this order, then exercised by its domain; nothing
    // refused or compensated, and every issuer answered.
    const items = timeline.getByRole("listitem");
    const texts = await items.allTextContents();
    assert.equal(texts.length, 10, texts.join("\n"));
    assert.match(texts[0]!, /OrderProcessing issued the checkout token for checkout op_/, texts.join("\n"));
    const jtis = new Set<string>();
    for (const domain of ["Coupons", "Points", "Payments"]) {
      const at = (what: RegExp) => {
        const found = texts.flatMap((t, i) => (what.test(t) ? [i] : []));
        assert.equal(found.length, 1, `one event ${what} in:\n${texts.join("\n")}`);
        return found[0]!;
      };
      const steps = [
        at(new RegExp(`${domain} issued the ${domain} token for checkout op_`)),
        at(new RegExp(`OrderProcessing accepted and consumed the ${domain} token for order ${orderId}`)),
        at(new RegExp(`${domain} exercised the ${domain} token for order ${orderId}`)),
      ];
      assert.deepEqual([...steps].sort((a, b) => a - b), steps, `${domain}: issued, consumed, exercised, in this order`);
      // The three events quote one token (its jti), each in the chain of the service that recorded it.
      const refs = steps.map((i) => items.nth(i).getByTitle(/^chain /));
      const quoted = await Promise.all(refs.map((r) => r.textContent()));
      for (const r of refs) assert.ok(await r.evaluate((el) => el.scrollWidth <= el.clientWidth), `${domain}: the jti ${quoted[0]} is shown whole`);
      assert.ok(quoted[0] && quoted.every((j) => j === quoted[0]), `${domain}: one jti, ${quoted}`);
      jtis.add(quoted[0]);
    }
    assert.equal(jtis.size, 3, "three tokens");
    assert.equal(await audit.getByText(/refused|compensated/).count(), 0);
    assert.equal(await audit.getByText(/^Could not ask/).count(), 0, "no unreachable issuer");
    await shot(page, "token-audit.png");

    // Not an order id (the id without its prefix): said so, and not asked for.
    const before = asked.length;
    const bad = orderId.slice("ord_".length);
    await audit.getByLabel("Order id").fill(bad);
    await audit.getByLabel("Order id").press("Enter");
    await audit.getByRole("alert").filter({ hasText: "Enter an order id such as ord_…." }).waitFor();
    assert.equal(await audit.getByRole("heading", { name: `Timeline of ${bad}` }).count(), 0);
    assert.equal(asked.length, before, "the server was not asked");

    // An order id of no order: asked for, an empty timeline, and the error gone.
    const unknown = `ord_${"a".repeat(26)}`;
    await audit.getByLabel("Order id").fill(unknown);
    await audit.getByRole("button", { name: "Show timeline" }).click();
    await audit.getByRole("heading", { name: `Timeline of ${unknown}` }).waitFor();
    await audit.getByText("No audit event for this order.").waitFor();
    assert.equal(await audit.getByRole("alert").filter({ hasText: /\S/ }).count(), 0);
    assert.equal(asked.length, before + 1);
    assert.deepEqual(errors, []);
  } finally {
    await closeBrowser(ctx);
    await sys.stop();
  }
});
