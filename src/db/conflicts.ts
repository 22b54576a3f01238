/**
 * Serialization failures and deadlocks (40001, 40P01) are retried, at most `attempts` times in
 * all, after a full-jitter pause (up to base, 2×base, 4×base … ms) so that two colliding
 * transactions do not collide again in step, and so that the transaction the deadlock let
 * through gets to take its locks before the retry does (a retry at once can take a row back from
 * it and deadlock again). Anything else is thrown at once; the last conflict is thrown as is.
 */
import { isSerializationFailure } from '../errors.ts'

export const CONFLICT_ATTEMPTS = 5
export const CONFLICT_BASE_MS = 50

export async function retryConflicts<T>(
  f: () => Promise<T>,
  {
    attempts = CONFLICT_ATTEMPTS,
    baseMs = CONFLICT_BASE_MS,
    random = Math.random,
    onRetry
  }: { attempts?: number; baseMs?: number; random?: () => number; onRetry?: (sqlstate: string, attempt: number) => void } = {}
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f()
    } catch (err) {
      if (!isSerializationFailure(err) || attempt >= attempts) throw err
      onRetry?.((err as { code: string }).code, attempt)
      await Bun.sleep(random() * baseMs * 2 ** (attempt - 1))
    }
  }
}
