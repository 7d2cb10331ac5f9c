// The harness of the browser tests (*.test.ts here): a real tokenrelayd
// (bin/tokenrelayd, a fresh data directory and a free port per test) serving
// web/dist, Debian's chromium driven through playwright-core, and the
// shopper's steps the tests share. Each test saves screenshots to
// $TOKENRELAY_SCREENSHOTS (default web/build/screenshots; `make screenshots`
// writes docs/).
//
// Importing this module registers, in the importing test file, a hook that
// checks the prerequisites before its tests and one that stops every system
// still running after them.
//
// Needs: `make e2e` (which builds bin/tokenrelayd and web/dist and installs
// chromium). TOKENRELAYD and CHROMIUM override the paths.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

const root = resolve(import.meta.dirname, "../../..");
const bin = process.env.TOKENRELAYD ?? join(root, "bin/tokenrelayd");
const webDir = join(root, "web/dist");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const shots = resolve(root, process.env.TOKENRELAY_SCREENSHOTS ?? "web/build/screenshots");
export const TIMEOUT = 120_000;

before(() => {
  for (const [what, path] of [["tokenrelayd", bin], ["the web build", join(webDir, "index.html")], ["chromium", executablePath]]) {
    if (!existsSync(path!)) throw new Error(`${what} not found at ${path}: run \`make e2e\``);
  }
  mkdirSync(shots, { recursive: true });
});

// ---------------------------------------------------------------- the system

export interface System {
  url: string;
  log: () => string;
  stop: () => Promise<void>;
}
const systems: System[] = [];
after(async () => {
  await Promise.all(systems.map((s) => s.stop()));
});

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

export async function startSystem(...args: string[]): Promise<System> {
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), "tokenrelay-e2e-"));
  const proc: ChildProcess = spawn(bin, ["-addr", `127.0.0.1:${port}`, "-data", data, "-web", webDir, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const up = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`tokenrelayd did not start in 60 s:\n${log}`)), 60_000);
    proc.stderr!.on("data", (b: Buffer) => {
      log += b.toString();
      if (log.includes("tokenrelay is up")) {
        clearTimeout(timer);
        res();
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      rej(new Error(`tokenrelayd exited with ${code}:\n${log}`));
    });
  });
  let stopped: Promise<void> | null = null;
  const sys: System = {
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    stop: () =>
      (stopped ??= new Promise<void>((res) => {
        if (proc.exitCode !== null) return res();
        proc.once("exit", () => res());
        proc.kill("SIGTERM");
      }).then(() => rmSync(data, { recursive: true, force: true }))),
  };
  systems.push(sys);
  await up;
  return sys;
}

// ---------------------------------------------------------------- the browser

/**
 * openBrowser starts chromium with a fresh profile; close it with
 * closeBrowser. The page writes every amount and date in one fixed locale,
 * whatever the browser's (web/src/format.ts).
 */
export async function openBrowser(viewport = { width: 1280, height: 900 }, locale = "en-GB"): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), "tokenrelay-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport,
    locale,
    timezoneId: "Europe/Berlin",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  ctx.setDefaultTimeout(30_000);
  profiles.set(ctx, profile);
  return ctx;
}

const profiles = new Map<BrowserContext, string>();

export async function closeBrowser(ctx: BrowserContext): Promise<void> {
  await ctx.close();
  rmSync(profiles.get(ctx)!, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}

/** watchErrors fails the test on an uncaught page error. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  return errors;
}

/** login logs in as a demo user (by default the shopper) and waits for the catalog. */
export async function login(page: Page, url: string, username = "shopper", password = "shopper-demo"): Promise<void> {
  await page.goto(url);
  // The keyboard path: the username is focused and prefilled; tab to the
  // password, type it, press Enter.
  await page.locator("#username").fill(username);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
  await page.locator("#products li").first().waitFor();
}

/** fillCart adds 2 × black tea and 1 mug (61.80 EUR), partly by keyboard; Add says how many are in the cart. */
export async function fillCart(page: Page): Promise<void> {
  await page.locator("#add-TEA-BLACK-250G").focus();
  await page.keyboard.press("Enter");
  await page.locator("#incart-TEA-BLACK-250G", { hasText: "1 in cart" }).waitFor();
  await page.locator("#more-TEA-BLACK-250G").click();
  await page.locator("#add-MUG-STONE").click();
  await page.locator("#incart-TEA-BLACK-250G", { hasText: "2 in cart" }).waitFor();
  assert.equal(await page.locator("#add-MUG-STONE").getAttribute("aria-label"), "Add Stoneware mug to cart (1 in cart)");
  assert.equal(await page.locator("#cart-count").textContent(), " · 3 items");
  await page.locator("#start-checkout").click();
  await page.locator("#checkout-h").waitFor();
  await page.locator("#coupons input[type=radio]").nth(1).waitFor(); // options loaded
}

export async function chooseCoupon(page: Page, code: string, discount: string): Promise<void> {
  await page.locator(`#coupon-${code}`).check();
  await page.locator("#coupon-status", { hasText: `Coupon ${code} confirmed: ${discount} off.` }).waitFor();
}

export async function usePoints(page: Page, points: number): Promise<void> {
  await page.locator("#points").fill(String(points));
  await page.locator("#points").press("Enter");
  await page.locator("#points-status", { hasText: `${points} points confirmed` }).waitFor();
}

export async function chooseCard(page: Page, last4: string, amount: string): Promise<void> {
  await page.locator(`#card-${last4}`).check();
  await page.locator("#payment-status", { hasText: `${amount} held on the card ending ${last4}.` }).waitFor();
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, name), fullPage: true });
}
