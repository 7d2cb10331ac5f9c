// format.ts owns how amounts, numbers, percentages and times read on the
// page, in one locale for all of them.
//
// The locale is fixed, not the browser's: the page's words are English
// (index.html is lang="en") and the shop trades in euros, so every amount,
// number and date is written as in en-IE, the English-speaking euro locale
// ("€61.80", "5,000", "3 Dec 2026, 14:05"). Taking the browser's locale would
// put "61,80 €" or US dates next to English sentences. Times are shown in the
// browser's own time zone.
//
// Rules: pure formatting, no DOM, no network. May import: state.ts (types),
// formatMoney of the SDK, @bufbuild/protobuf/wkt. Unit-tested under node
// (web/test/format.test.ts).
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { formatMoney } from "@tokenrelay/sdk";
import type { Amount } from "./state.js";

/** LOCALE is the one locale of every number, amount and date on the page (see above). */
export const LOCALE = "en-IE";

const ints = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const percents = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 2 });
const clock = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit" });
const dates = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short" });

/** money is an amount in its currency ("€61.80"); "–" for none. */
export const money = (a: Amount | undefined): string =>
  a === undefined ? "–" : formatMoney({ amountMinor: a.minor, currency: a.currency }, LOCALE);

/** fmtInt is a whole number with thousands separators ("5,000"). */
export const fmtInt = (n: bigint): string => ints.format(n);

/** percentOfBps is a percentage given in basis points (1000 → "10%"). */
export const percentOfBps = (bps: number): string => percents.format(bps / 10_000);

/** cap capitalises the first letter ("visa" → "Visa"). */
export const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** clockTime is a timestamp's hour and minute ("14:05"; "" without one). */
export const clockTime = (t: Timestamp | undefined): string => (t ? clock.format(timestampMs(t)) : "");

/** dateTime is a timestamp's date and time ("3 Dec 2026, 14:05"; "" without one). */
export const dateTime = (t: Timestamp | undefined): string => (t ? dates.format(timestampMs(t)) : "");
