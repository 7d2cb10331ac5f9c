// End-to-end tests of the browser checkout, on the harness of harness.ts (a
// real tokenrelayd per test, driven in Debian's chromium): the happy path, a
// failing capture on a phone, an access token refreshed mid-checkout, a
// second tab replaying a placed order's confirmations.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import {
  TIMEOUT,
  chooseCard,
  chooseCoupon,
  closeBrowser,
  fillCart,
  login,
  openBrowser,
  shot,
  startSystem,
  usePoints,
  watchErrors,
} from "./harness.js";

// ---------------------------------------------------------------- the checkout's own checks

/** placeAmount is what the Place order button says the card is charged ("€53.80"). */
async function placeAmount(page: Page): Promise<string> {
  const label = (await page.locator("#place-order").textContent()) ?? "";
  const m = /^Place order · pay (€[\d,.]+) by card$/.exec(label);
  assert.ok(m, `the button says what the card is charged: ${label}`);
  return m[1]!;
}

/** charged is what the shown order says was charged to the card (its capture step's amount). */
async function charged(page: Page): Promise<string> {
  return (await page.locator('#order-steps li[data-capability="payments:capture"] .price').textContent()) ?? "";
}

/** contrast is the WCAG contrast ratio of an element's text colour on its background colour (both opaque). */
async function contrast(page: Page, selector: string): Promise<number> {
  return page.locator(selector).evaluate((el) => {
    const cs = getComputedStyle(el);
    const lum = (c: string) => {
      const [r, g, b] = (c.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
        const x = Number(v) / 255;
        return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
    };
    if (cs.opacity !== "1") return 0;
    const [a, b] = [lum(cs.color), lum(cs.backgroundColor)].sort((x, y) => y - x);
    return (a! + 0.05) / (b! + 0.05);
  });
}

/** assertNoInternals fails when the page shows an error chain, a capability name or a Connect code. */
async function assertNoInternals(page: Page): Promise<void> {
  const text = await page.locator("main").innerText();
  assert.doesNotMatch(text, /Details:|payments:|coupons:|points:spend|failed_precondition|exercise|refused:/, text);
}

// ---------------------------------------------------------------- the tests

test("happy path: coupon WELCOME5, points and card 4242 complete the order", { timeout: TIMEOUT }, async () => {
  const sys = await startSystem();
  const ctx = await openBrowser();
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const errors = watchErrors(page);
    await login(page, sys.url);
    await fillCart(page);
    assert.match((await page.locator("#remaining").textContent()) ?? "", /€61\.80/);
    // Things, not ids; one money format (the campaigns' own descriptions say "5.00 EUR").
    assert.doesNotMatch(await page.locator("#checkout").innerText(), /\bop_|EUR/);
    assert.match(await page.locator("#coupons").innerText(), /€5\.00 off orders of €20\.00 or more/);
    // By keyboard: arrow through the coupons, each confirmed on the spot;
    // the last one chosen wins and keeps the focus.
    await page.locator("#coupon-none").focus();
    for (let i = 0; i < 5 && (await page.evaluate(() => document.activeElement?.id)) !== "coupon-WELCOME5"; i++) {
      await page.keyboard.press("ArrowDown");
    }
    await page.locator("#coupon-status", { hasText: "Coupon WELCOME5 confirmed: €5.00 off." }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), "coupon-WELCOME5");
    await usePoints(page, 300);
    assert.match((await page.locator("#points-status").textContent()) ?? "", /700 points will remain/);
    await chooseCard(page, "4242", "€53.80");
    assert.equal(await page.locator("#remaining").textContent(), "€53.80");
    // The button says what the card is charged, not the order total.
    const promised = await placeAmount(page);
    assert.equal(promised, "€53.80");
    assert.equal(promised, await page.locator("#remaining").textContent());
    await shot(page, "checkout-confirmed.png");

    await page.locator("#place-order").click();
    await page.locator("#order-status", { hasText: "Completed" }).waitFor();
    assert.match((await page.locator("#order-outcome").textContent()) ?? "", /complete and paid/);
    assert.equal(await page.locator("#order-steps li").count(), 3);
    assert.equal(await page.locator("#order-steps .badge.APPLIED").count(), 3);
    // What was charged is what the button said.
    assert.equal(await charged(page), promised);
    assert.match(await page.locator("#order-fates").innerText(), new RegExp(`${promised.replace(".", "\\.")} was charged to your card\\.`));
    // What was bought, in the order and in the history; the id only as a reference.
    assert.match(await page.locator("#order-lines").innerText(), /2 × Black tea, 250 g[\s\S]*1 × Stoneware mug/);
    assert.match((await page.locator("#order-ref").textContent()) ?? "", /^ord_\w+$/);
    assert.match((await page.locator("#order-live").textContent()) ?? "", /Order Completed/);
    await page.locator("#orders li", { hasText: "Completed" }).waitFor();
    assert.match(await page.locator("#orders li .what").first().innerText(), /^2 × Black tea, 250 g · 1 × Stoneware mug$/);
    await assertNoInternals(page);
    await shot(page, "order-completed.png");
    assert.deepEqual(errors, []);
  } finally {
    await closeBrowser(ctx);
    await sys.stop();
  }
});

test("failing capture on a phone: points and card 0341, no coupon; the page says what became of each, and only of those", { timeout: TIMEOUT }, async () => {
  const sys = await startSystem();
  // An en-US browser: the page still writes amounts and dates in its one locale.
  const ctx = await openBrowser({ width: 390, height: 844 }, "en-US");
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const errors = watchErrors(page);
    await login(page, sys.url);
    await fillCart(page);

    // Refusals first. 5,000 points: the balance (1,000) is the tighter
    // limit, not the order (6,180 points), and is the one named.
    await page.locator("#points").fill("5000");
    await page.locator("#points-apply").click();
    await page.locator("#points-error", { hasText: "You have only 1,000 points." }).waitFor();
    // The primary button, disabled until a card is chosen, stays readable (WCAG AA: 4.5:1).
    assert.equal(await page.locator("#place-order").isDisabled(), true);
    const ratio = await contrast(page, "#place-order");
    assert.ok(ratio >= 4.5, `disabled Place order contrast ${ratio.toFixed(2)}:1`);
    await page.locator("#card-0002").click(); // declined: it does not stay checked
    await page.locator("#payment-error", { hasText: "Your card was declined. Please choose another payment method." }).waitFor();
    assert.equal(await page.locator("#card-0002").isChecked(), false);
    await assertFitsThePhone(page);
    await shot(page, "refusals.png");

    // Use maximum: min(balance 1,000, 6,180 left to pay).
    await page.locator("#points-max", { hasText: "Use maximum (1,000)" }).click();
    await page.locator("#points-status", { hasText: "1,000 points confirmed: €10.00 off" }).waitFor();
    await chooseCard(page, "0341", "€51.80");
    const promised = await placeAmount(page);
    assert.equal(promised, "€51.80");
    await page.locator("#place-order").click();
    await page.locator("#order-status", { hasText: "Failed" }).waitFor();
    const order = page.locator("#order");
    assert.equal(await page.locator("#order-outcome").textContent(), "Your order did not go through: your card payment could not be taken.");
    assert.deepEqual(await page.locator("#order-fates li").allTextContents(), [
      "Your points worth €10.00 were given back to your balance.",
      `Your card was not charged: the ${promised} hold on it was released.`,
    ]);
    // No coupon was used, so none is mentioned; no error chain, a reference instead.
    assert.doesNotMatch(await order.innerText(), /coupon/i);
    await assertNoInternals(page);
    assert.match((await page.locator("#order-ref").textContent()) ?? "", /^ord_\w+$/);
    assert.match(await page.locator('#order-steps li[data-capability="points:spend"]').innerText(), /Given back/);
    assert.match(await page.locator('#order-steps li[data-capability="payments:capture"]').innerText(), /Not charged/);
    assert.match((await page.locator("#order-live").textContent()) ?? "", /Order Failed/);
    await page.locator("#orders li", { hasText: "Failed" }).waitFor();
    assert.match(await page.locator("#orders li .date").first().innerText(), /^\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d$/, "one date format, not the browser's en-US");
    await assertFitsThePhone(page);
    await shot(page, "order-failed-compensated.png");

    // Given back: the whole balance can be used again on a new checkout.
    await page.locator("#continue").click();
    await fillCart(page);
    await page.locator("#points-hint", { hasText: "You have 1,000 points" }).waitFor();
    assert.deepEqual(errors, []);
  } finally {
    await closeBrowser(ctx);
    await sys.stop();
  }
});

/**
 * assertFitsThePhone fails when the page scrolls sideways, a status pill
 * wraps or stretches, or a reference (an id) is broken over two lines.
 */
async function assertFitsThePhone(page: Page): Promise<void> {
  const width = page.viewportSize()!.width;
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= width, "no sideways scrolling");
  for (const pill of await page.locator(".badge").all()) {
    const [height, width, textWidth] = await pill.evaluate((el) => {
      const r = document.createRange();
      r.selectNodeContents(el);
      const box = el.getBoundingClientRect();
      return [box.height, box.width, r.getBoundingClientRect().width];
    });
    const text = await pill.textContent();
    assert.ok(height < 28, `pill "${text}" is one line (${height}px high)`);
    assert.ok(width <= textWidth + 20, `pill "${text}" is as wide as its text and padding (${width}px for ${textWidth}px)`);
  }
  for (const id of await page.locator(".id").all()) {
    const lines = await id.evaluate((el) => el.getClientRects().length === 1 && el.getBoundingClientRect().height < 24);
    assert.ok(lines, `reference ${await id.textContent()} is on one line`);
    assert.equal(await id.evaluate((el) => el.scrollWidth <= el.clientWidth), true, `reference ${await id.textContent()} is shown whole`);
  }
}

test("an access token that expires mid-checkout is refreshed without the shopper noticing", { timeout: TIMEOUT }, async () => {
  // Access tokens live 3 s; the gateway tolerates 10 s of clock skew.
  const sys = await startSystem("-access-token-lifetime", "3s");
  const ctx = await openBrowser();
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const errors = watchErrors(page);
    const refreshes: number[] = [];
    let refused = 0;
    page.on("response", (r) => {
      if (r.url().endsWith("/tokenrelay.identity.v1.IdentityService/Refresh")) refreshes.push(r.status());
      if (r.status() === 401) refused++;
    });
    await login(page, sys.url);
    await fillCart(page);

    // The shopper pauses: the token expires for the gateway too. Make the
    // page believe it is still good, so that the gateway's refusal is what
    // triggers the refresh (the SDK also refreshes ahead on its own clock).
    await page.waitForTimeout(14_000);
    await page.evaluate(() => {
      const s = JSON.parse(localStorage.getItem("tokenrelay.session")!) as { accessTokenExpiresAt: number };
      s.accessTokenExpiresAt = Date.now() + 3_600_000;
      localStorage.setItem("tokenrelay.session", JSON.stringify(s));
    });
    const [refreshesBefore, refusedBefore] = [refreshes.length, refused];
    await chooseCoupon(page, "WELCOME5", "€5.00");
    assert.equal(refused - refusedBefore, 1, "the gateway refused the expired token once");
    assert.equal(refreshes.length - refreshesBefore, 1, "one refresh, then the call was retried");

    await usePoints(page, 300);
    await chooseCard(page, "4242", "€53.80");
    await page.locator("#place-order").click();
    await page.locator("#order-status", { hasText: "Completed" }).waitFor();
    assert.ok(refreshes.every((s) => s === 200), `every refresh succeeded: ${refreshes}`);
    assert.equal(await page.locator("#banner").isVisible(), false, "no session-ended banner");
    for (const id of ["#coupon-error", "#points-error", "#payment-error", "#place-error"]) {
      assert.equal(await page.locator(id).count(), 0, `${id} is gone`);
    }
    await shot(page, "token-refreshed-mid-checkout.png");
    assert.deepEqual(errors, []);
  } finally {
    await closeBrowser(ctx);
    await sys.stop();
  }
});

test("a second tab replaying a placed order's confirmation tokens is refused", { timeout: TIMEOUT }, async () => {
  const sys = await startSystem();
  const ctx = await openBrowser();
  try {
    const first = ctx.pages()[0] ?? (await ctx.newPage());
    const errors = watchErrors(first);
    await login(first, sys.url);
    await fillCart(first);
    await chooseCoupon(first, "WELCOME5", "€5.00");
    await usePoints(first, 300);
    await chooseCard(first, "4242", "€53.80");

    // Duplicate the tab: same login (localStorage), a copy of the open
    // checkout and its confirmation tokens (sessionStorage).
    const saved = await first.evaluate(() => sessionStorage.getItem("tokenrelay.checkout"));
    assert.ok(saved);
    const second = await ctx.newPage();
    errors.push(...watchErrors(second));
    await second.addInitScript((v) => sessionStorage.setItem("tokenrelay.checkout", v), saved);
    await second.goto(sys.url);
    await second.locator("#checkout-h").waitFor();
    await second.locator("#place-order:not([disabled])").waitFor();

    await first.bringToFront();
    await first.locator("#place-order").click();
    await first.locator("#order-status", { hasText: "Completed" }).waitFor();

    await second.bringToFront();
    await second.locator("#place-order").click();
    await second.locator("#place-error", { hasText: "This checkout was already placed as an order, perhaps in another tab." }).waitFor();
    // Nothing was taken twice: the one order, shown in the history.
    await second.locator("#orders li", { hasText: "Completed" }).waitFor();
    assert.equal(await second.locator("#orders li").count(), 1);
    assert.equal(await second.locator("#place-order").isDisabled(), true);
    await shot(second, "second-tab-refused.png");
    await second.locator("#cancel-checkout", { hasText: "Back to the shop" }).click();
    await second.locator("#catalog-h").waitFor();
    assert.deepEqual(errors, []);
  } finally {
    await closeBrowser(ctx);
    await sys.stop();
  }
});
