/**
 * newIdempotencyKey returns a random UUID (version 4) for one logical
 * mutating call; every retry of that call must send the same key, and the
 * server then returns the first result instead of acting twice. It uses
 * crypto.getRandomValues, which, unlike crypto.randomUUID, also works on
 * pages that are not a secure context.
 */
export function newIdempotencyKey(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
