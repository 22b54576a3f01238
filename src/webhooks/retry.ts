/**
 * The retry rules of contract §9, pure: what an attempt's outcome means, and when the next one is.
 *
 *   - 2xx: delivered;
 *   - timeouts, connection errors, a refused address (DNS changed since the endpoint was
 *     checked), 408, 429 and 5xx: retried, at most WEBHOOK_MAX_ATTEMPTS attempts a round;
 *   - 410 Gone: final, and the endpoint is disabled at once (Standard Webhooks' convention);
 *   - any other 4xx, and 3xx (redirects are not followed: the endpoint's url is the operator's
 *     to fix, and the same request would get the same answer): final, to the dead-letter queue.
 *
 * The delay after the n-th failed attempt of a round is full jitter over
 * min(WEBHOOK_RETRY_MAX_MS, WEBHOOK_RETRY_BASE_MS × 2^(n−1)) — uniform in [0, that] — so that a
 * crowd of messages failing together spreads out instead of coming back in step. A `Retry-After`
 * (seconds or an HTTP date, on a 429 or any retried answer) makes the delay at least that long —
 * beyond WEBHOOK_RETRY_MAX_MS if the receiver asks for it, up to RETRY_AFTER_CAP_MS (a day), so
 * that a receiver cannot park a message for ever.
 */

export const RETRY_AFTER_CAP_MS = 86_400_000

export type Verdict = 'delivered' | 'retry' | 'final' | 'gone'

export interface Outcome {
  status: number | null
  /** Why there was no answer (timeout, connection error, refused address), or what a non-2xx answer was. */
  error: string | null
  retryAfterMs: number | null
}

export function verdict(o: Outcome): Verdict {
  const s = o.status
  if (s === null) return 'retry'
  if (s >= 200 && s < 300) return 'delivered'
  if (s === 410) return 'gone'
  if (s === 408 || s === 429 || s >= 500) return 'retry'
  return 'final'
}

export interface RetryPolicy {
  baseMs: number
  maxMs: number
  maxAttempts: number
}

/** Milliseconds until the next attempt after the `n`-th failed attempt of a round, or null when the round is over. */
export function nextDelay(policy: RetryPolicy, n: number, retryAfterMs: number | null, random: () => number = Math.random): number | null {
  if (n >= policy.maxAttempts) return null
  const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** (n - 1))
  const jittered = Math.floor(random() * cap)
  return retryAfterMs === null ? jittered : Math.max(jittered, Math.min(retryAfterMs, RETRY_AFTER_CAP_MS))
}

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null) return null
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}
