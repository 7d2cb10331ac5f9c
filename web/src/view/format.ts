// view/format.ts owns how amounts, numbers and times read on the page.
//
// Rules: pure formatting, no DOM, no network. May import: state.ts (types),
// formatMoney of the SDK, @bufbuild/protobuf/wkt.
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { formatMoney } from "@tokenrelay/sdk";
import type { Amount } from "../state.js";

export const money = (a: Amount | undefined): string =>
  a === undefined ? "–" : formatMoney({ amountMinor: a.minor, currency: a.currency });

export const fmtInt = (n: bigint): string => n.toLocaleString();

/** cap capitalises the first letter ("visa" → "Visa"). */
export const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** clockTime is a timestamp's hour and minute ("" without one). */
export const clockTime = (t: Timestamp | undefined): string =>
  t ? new Date(timestampMs(t)).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";

/** dateTime is a timestamp's date and time ("" without one). */
export const dateTime = (t: Timestamp | undefined): string => (t ? new Date(timestampMs(t)).toLocaleString() : "");
