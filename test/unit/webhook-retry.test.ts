import { describe, expect, test } from 'bun:test'
import { nextDelay, parseRetryAfter, RETRY_AFTER_CAP_MS, verdict } from '../../src/webhooks/retry.ts'

const policy = { baseMs: 5000, maxMs: 3_600_000, maxAttempts: 8 }
const answer = (status: number | null) => ({ status, error: status === null ? 'timed out after 10000 ms' : null, retryAfterMs: null })

describe('webhook retry rules (contract §9)', () => {
  test('which answers are retried, final, delivered, gone', () => {
    expect([200, 201, 204, 299].map((s) => verdict(answer(s)))).toEqual(['delivered', 'delivered', 'delivered', 'delivered'])
    expect([null, 408, 429, 500, 502, 503, 504, 599].map((s) => verdict(answer(s)))).toEqual(Array(8).fill('retry'))
    expect([400, 401, 403, 404, 409, 413, 422, 301, 302, 307, 308].map((s) => verdict(answer(s)))).toEqual(Array(11).fill('final'))
    expect(verdict(answer(410))).toBe('gone')
  })

  test('base × 2^(n−1) with full jitter, capped, and none after the last attempt', () => {
    // random() = 1 - ε gives the top of each window, 0 its bottom.
    const top = () => 0.999999
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => Math.round(nextDelay(policy, n, null, top)! / 1000))).toEqual([5, 10, 20, 40, 80, 160, 320])
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => nextDelay(policy, n, null, () => 0))).toEqual([0, 0, 0, 0, 0, 0, 0])
    expect(nextDelay(policy, 8, null, top)).toBeNull()
    expect(nextDelay({ ...policy, maxAttempts: 30 }, 20, null, top)).toBe(3_599_996)
    // Full jitter: spread over the whole window.
    const samples = Array.from({ length: 2000 }, () => nextDelay(policy, 3, null)!)
    expect(Math.min(...samples)).toBeLessThan(2000)
    expect(Math.max(...samples)).toBeGreaterThan(18_000)
  })

  test('Retry-After is honoured: the delay is at least that long, even past the cap, up to a day', () => {
    expect(nextDelay(policy, 1, 30_000, () => 0)).toBe(30_000)
    expect(nextDelay({ ...policy, maxMs: 1000 }, 1, 5000, () => 0)).toBe(5000)
    expect(nextDelay(policy, 1, 10 * RETRY_AFTER_CAP_MS, () => 0)).toBe(RETRY_AFTER_CAP_MS)
    expect(parseRetryAfter('120')).toBe(120_000)
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.parse('2026-10-21T07:27:00Z'))).toBe(60_000)
    expect(parseRetryAfter('soon')).toBeNull()
    expect(parseRetryAfter(null)).toBeNull()
  })
})
