/**
 * deliveredAt (contract §8: set once a socket of the user was sent the notification): the hub
 * reports each notification frame it sent and each snapshot's notifications; this writer marks
 * them in batches, one UPDATE per `flushMs` for everything sent meanwhile — never a write per
 * frame, which would put a statement behind every fan-out.
 *
 * Bounded: at most `maxPending` marks wait; beyond that the oldest are dropped and counted (those
 * notifications stay without deliveredAt; they were delivered all the same). A failed write is
 * logged and dropped likewise. `stop()` flushes.
 */
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { NotificationQueries } from './queries.ts'

export interface DeliveredMarks {
  add(userId: string, seq: number): void
  flush(): Promise<void>
  stop(): Promise<void>
}

export function createDeliveredMarks({
  queries,
  log,
  metrics,
  flushMs = 250,
  maxPending = 100_000
}: {
  queries: Pick<NotificationQueries, 'markDelivered'>
  log: Logger
  metrics: Metrics
  flushMs?: number
  maxPending?: number
}): DeliveredMarks {
  let pending: { userId: string; seq: number }[] = []
  let timer: ReturnType<typeof setTimeout> | null = null
  let flushing: Promise<void> | null = null
  let failing = false

  async function write(refs: { userId: string; seq: number }[]) {
    try {
      metrics.notificationsDelivered.inc(await queries.markDelivered(refs))
      failing = false
    } catch (err) {
      if (!failing)
        log.warn(
          { component: 'notifications', err: (err as Error).message, marks: refs.length },
          'could not mark notifications delivered; those marks are dropped'
        )
      failing = true
      metrics.deliveredDropped.inc(refs.length)
    }
  }

  async function flush(): Promise<void> {
    if (timer) clearTimeout(timer)
    timer = null
    while (flushing) await flushing
    if (pending.length === 0) return
    // Each (user, seq) once, in (user, seq) order: the lock order of every writer of these rows.
    const seen = new Set<string>()
    const refs = pending
      .filter((r) => {
        const k = `${r.userId}\u0000${r.seq}`
        return !seen.has(k) && seen.add(k)
      })
      .sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.seq - b.seq))
    pending = []
    flushing = write(refs).finally(() => (flushing = null))
    await flushing
  }

  return {
    add(userId, seq) {
      pending.push({ userId, seq })
      if (pending.length > maxPending) {
        const dropped = pending.length - maxPending
        pending = pending.slice(dropped)
        metrics.deliveredDropped.inc(dropped)
      }
      if (!timer) timer = setTimeout(() => void flush(), flushMs)
    },
    flush,
    stop: flush
  }
}
