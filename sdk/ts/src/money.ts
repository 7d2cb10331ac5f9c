import type { Money } from "@tokenrelay/gen/tokenrelay/type/v1/money_pb";

/**
 * formatMoney renders integer minor units with the currency's own number of
 * decimals (Intl), e.g. 6180n EUR -> "€61.80". Undefined renders as "–".
 */
export function formatMoney(m: Pick<Money, "amountMinor" | "currency"> | undefined, locale?: string): string {
  if (m === undefined || m.currency === "") return "–";
  const fmt = new Intl.NumberFormat(locale, { style: "currency", currency: m.currency });
  const digits = fmt.resolvedOptions().maximumFractionDigits ?? 2;
  const scale = 10n ** BigInt(digits);
  const neg = m.amountMinor < 0n;
  const abs = neg ? -m.amountMinor : m.amountMinor;
  // Through a decimal string, not a float division, so no amount is rounded.
  const whole = abs / scale;
  const frac = abs % scale;
  const value = `${neg ? "-" : ""}${whole}${digits > 0 ? "." + frac.toString().padStart(digits, "0") : ""}`;
  return fmt.format(value as unknown as number);
}
