/**
 * Takes events out of the outbox once they are on the stream, in batches, off the request path.
 *
 * An outbox row is bookkeeping, not a fact: losing an ack only means the relay appends that
 * event again (consumers dedupe by seq). So acks are coalesced — one DELETE statement every
 * `flushMs` for everything appended meanwhile. Every statement costs the process socket writes
 * and wake-ups, which on a small machine are what an ingest request waits behind: at a 20 ms
 * cadence (as a four-statement `synchronous_commit = off` transaction) the acks wrote as often
 * to PostgreSQL as ingest itself. At 250 ms the one WAL flush per DELETE is noise, and the
 * rows still leave long before the relay's grace period (OUTBOX_GRACE_MS, 2 s by default).
 *
 * Bounded: at most `maxPending` acks wait; beyond that the oldest are dropped (and counted),
 * which costs duplicates on the stream, never a lost event. `stop()` flushes.
 */
import type { Sql } from '../db/client.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'

export interface EventRef {
  shipmentId: string
  seq: number
}

export interface PublishAcks {
  add(events: EventRef[]): void
  flush(): Promise<void>
  stop(): Promise<void>
}

export function createPublishAcks({ sql, log, metrics, flushMs = 250, maxPending = 100_000 }: { sql: Sql; log: Logger; metrics: Metrics; flushMs?: number; maxPending?: number }): PublishAcks {
  let pending: EventRef[] = []
  let timer: ReturnType<typeof setTimeout> | null = null
  let flushing: Promise<void> | null = null

  async function write(ids: EventRef[]) {
    try {
      await sql`
        delete from event_outbox o
        using unnest(${ids.map((r) => r.shipmentId)}::uuid[], ${ids.map((r) => r.seq)}::int[]) as u(shipment_id, seq)
        where o.shipment_id = u.shipment_id and o.seq = u.seq`
    } catch (err) {
      // The relay will append these again after its grace period; duplicates, not losses.
      log.warn({ component: 'acks', err: (err as Error).message, events: ids.length }, 'could not take published events out of the outbox; the relay will resend them')
    }
  }

  async function flush(): Promise<void> {
    if (timer) clearTimeout(timer)
    timer = null
    while (flushing) await flushing
    if (pending.length === 0) return
    // One lock order for every writer of these rows (the relay reads in the same order).
    const ids = pending.sort((a, b) => (a.shipmentId < b.shipmentId ? -1 : a.shipmentId > b.shipmentId ? 1 : a.seq - b.seq))
    pending = []
    metrics.acksPending.set(0)
    flushing = write(ids).finally(() => (flushing = null))
    await flushing
  }

  return {
    add(ids) {
      pending.push(...ids)
      if (pending.length > maxPending) {
        const dropped = pending.length - maxPending
        pending = pending.slice(dropped)
        metrics.acksDropped.inc(dropped)
      }
      metrics.acksPending.set(pending.length)
      if (!timer) timer = setTimeout(() => void flush(), flushMs)
    },
    flush,
    stop: flush
  }
}
