/**
 * Takes events (or notifications) out of their outbox once they are on the stream, in batches,
 * off the request path. One implementation for both outboxes: `event_outbox` (key: the
 * shipment's id) and `notification_outbox` (key: the user's id).
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
import type { Sql, Tx } from '../db/client.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'

/** A row of an outbox: the topic's key (shipment id, user id) and the seq. */
export interface OutboxRef {
  key: string
  seq: number
}

export type OutboxName = 'events' | 'notifications'

export interface PublishAcks {
  add(refs: OutboxRef[]): void
  flush(): Promise<void>
  stop(): Promise<void>
}

/** Deletes outbox rows, per outbox (the key's column and type differ). */
export function deleteOutboxRows(sql: Sql | Tx, outbox: OutboxName, refs: readonly OutboxRef[]) {
  const keys = refs.map((r) => r.key),
    seqs = refs.map((r) => r.seq)
  return outbox === 'events'
    ? sql`delete from event_outbox o using unnest(${keys}::uuid[], ${seqs}::int[]) as u(k, seq) where o.shipment_id = u.k and o.seq = u.seq`
    : sql`delete from notification_outbox o using unnest(${keys}::text[], ${seqs}::int[]) as u(k, seq) where o.user_id = u.k and o.seq = u.seq`
}

export function createPublishAcks({
  sql,
  log,
  metrics,
  outbox = 'events',
  flushMs = 250,
  maxPending = 100_000
}: {
  sql: Sql
  log: Logger
  metrics: Metrics
  outbox?: OutboxName
  flushMs?: number
  maxPending?: number
}): PublishAcks {
  let pending: OutboxRef[] = []
  let timer: ReturnType<typeof setTimeout> | null = null
  let flushing: Promise<void> | null = null

  async function write(refs: OutboxRef[]) {
    try {
      await deleteOutboxRows(sql, outbox, refs)
    } catch (err) {
      // The relay will append these again after its grace period; duplicates, not losses.
      log.warn(
        { component: 'acks', outbox, err: (err as Error).message, rows: refs.length },
        'could not take published rows out of the outbox; the relay will resend them'
      )
    }
  }

  async function flush(): Promise<void> {
    if (timer) clearTimeout(timer)
    timer = null
    while (flushing) await flushing
    if (pending.length === 0) return
    // One lock order for every writer of these rows (the relay reads in the same order).
    const ids = pending.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq))
    pending = []
    metrics.acksPending.set({ outbox }, 0)
    flushing = write(ids).finally(() => (flushing = null))
    await flushing
  }

  return {
    add(ids) {
      pending.push(...ids)
      if (pending.length > maxPending) {
        const dropped = pending.length - maxPending
        pending = pending.slice(dropped)
        metrics.acksDropped.inc({ outbox }, dropped)
      }
      metrics.acksPending.set({ outbox }, pending.length)
      if (!timer) timer = setTimeout(() => void flush(), flushMs)
    },
    flush,
    stop: flush
  }
}
