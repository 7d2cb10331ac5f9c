import { test } from "node:test";
import assert from "node:assert/strict";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { clockTime, dateTime, fmtInt, LOCALE, money, percentOfBps } from "../src/format.js";

test("one locale for amounts, numbers, percentages and dates, whatever the runtime's own", () => {
  assert.equal(LOCALE, "en-IE");
  assert.equal(money({ minor: 6180n, currency: "EUR" }), "€61.80");
  assert.equal(money({ minor: -500n, currency: "EUR" }), "-€5.00");
  assert.equal(money({ minor: 123456789n, currency: "EUR" }), "€1,234,567.89");
  assert.equal(money(undefined), "–");
  assert.equal(fmtInt(5000n), "5,000");
  assert.equal(fmtInt(700n), "700");
  assert.equal(percentOfBps(1000), "10%");
  assert.equal(percentOfBps(1250), "12.5%");
});

test("dates read day month year with a 24-hour clock, in the runtime's time zone", () => {
  // Noon UTC on 1 March 2030 is 1 March in every time zone.
  const t = timestampFromMs(Date.UTC(2030, 2, 1, 12, 0));
  assert.match(dateTime(t), /^1 Mar 2030, \d\d:00$/);
  assert.match(clockTime(t), /^\d\d:00$/);
  assert.equal(dateTime(undefined), "");
  assert.equal(clockTime(undefined), "");
});
