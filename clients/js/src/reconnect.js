// When a client connects again, and after how long: after 1001, 1006, 1011 and 1013
// (honouring `retry_after`), never after a close that says the stream must not come back
// as it was (4001, 4003, 4008, 4009, 4402…).

/** Close codes after which a client connects again. */
export const RETRY_CODES = new Set([1001, 1006, 1011, 1012, 1013, 1014]);
/** Backoff between attempts: doubling from the first, capped, with full jitter. */
export const FIRST_DELAY = 0.5;
export const MAX_DELAY = 10;

/**
 * Whether a connection that ended with `closeCode` (null: no close frame, the network
 * went away) is worth another attempt.
 * @param {number | null} closeCode
 */
export function mayReconnect(closeCode) {
  return closeCode === null || RETRY_CODES.has(closeCode);
}

/**
 * Seconds to wait before retry `attempt` (0: the first). The gateway's `retry_after`
 * comes first; jitter keeps a classroom's clients from coming back in step.
 * @param {number} attempt
 * @param {number | null} [retryAfter]
 * @param {() => number} [random]
 */
export function reconnectDelay(attempt, retryAfter = null, random = Math.random) {
  if (typeof retryAfter === "number") return retryAfter * (1 + random() / 2);
  return Math.min(MAX_DELAY, FIRST_DELAY * 2 ** attempt) * (0.5 + random() / 2);
}
