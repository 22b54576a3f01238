/**
 * The outbox relay: puts committed-but-unpublished rows on their stream once Redis answers. One
 * implementation for every outbox (an `OutboxSource` says how to read one): `event_outbox` →
 * `tracking:events` (here), `notification_outbox` → `notifications:stream`
 * (notifications/outbox.ts); each outbox gets a relay of its own.
 *
 * Guarantees:
 *   - every committed row reaches the stream at least once, whatever happened to Redis or to
 *     the process that committed it;
 *   - per topic, the relay appends in seq order: one relay per outbox at a time holds its
 *     advisory lock across all processes, and it reads in (key, seq) order;
 *   - it leaves alone rows younger than `graceMs`, which their committing process is most
 *     likely publishing right now (if it is not, they are picked up a cycle later);
 *   - bounded: at most `maxBatches` × `batchSize` rows per cycle, one cycle at a time, and
 *     `stop()` waits for the running cycle to end; the backlog it reports is counted up to
 *     BACKLOG_EXACT rows and estimated beyond (countBacklog), so a cycle never scans a big outbox.
 */
import type { Sql, Tx } from '../db/client.ts'
import type { GuardedConnections } from '../db/guarded.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { createLoop } from '../loop.ts'
import type { Engine } from '../engine/engine.ts'
import { deleteOutboxRows, type OutboxName, type OutboxRef } from './acks.ts'
import { shipmentMessage, type StreamMessage, type StreamWriter } from './stream.ts'

/** How the relay reads one outbox and appends its rows. */
export interface OutboxSource<M> {
  name: OutboxName
  /** The advisory lock that makes one relay of this outbox run at a time across processes. */
  lockKey: string
  /**
   * Up to `limit` rows committed more than `graceMs` ago, in (key, seq) order, locked `for update
   * skip locked` (rows an ack is deleting right now are on the stream already), with their messages.
   */
  read(tx: Tx, graceMs: number, limit: number): Promise<{ ref: OutboxRef; message: M }[]>
  /** Appends in order; resolves with how many were appended (a prefix). Never throws. */
  append(messages: M[]): Promise<number>
  /** How many rows wait: `countBacklog` of its table. */
  backlog(sql: Sql): Promise<number>
}

/** A backlog up to this many rows is counted; a bigger one is estimated (countBacklog). */
export const BACKLOG_EXACT = 1000

/**
 * Rows waiting in an outbox table: exact up to BACKLOG_EXACT, beyond that the larger of that and
 * PostgreSQL's live-row count from its statistics (kept at every commit, flushed within about a
 * second). The relay reports it every cycle — every second while Redis is down — and a count(*)
 * of a big outbox (after a long outage) read every row of it each time.
 */
export async function countBacklog(sql: Sql, table: 'event_outbox' | 'notification_outbox'): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select case when b.n <= ${BACKLOG_EXACT} then b.n
                else greatest(b.n, (select n_live_tup from pg_stat_user_tables where relid = ${table}::regclass))::int end as n
    from (select count(*)::int as n from (select from ${sql(table)} limit ${BACKLOG_EXACT + 1}) o) b`
  return row!.n
}

export type CycleResult =
  | { status: 'ok'; published: number; backlog: number }
  | { status: 'skipped'; reason: 'cycle_already_running' | 'redis_unavailable' | 'lock_held'; backlog?: number }
  | { status: 'error'; error: string }

export interface OutboxRelay {
  runOnce(): Promise<CycleResult>
  start(): void
  stop(): Promise<void>
}

interface OutboxRow {
  shipment_id: string
  seq: number
  dedup_key: string
  carrier: string
  tracking_number: string
  carrier_status: string
  status: string
  occurred_at: string
  location: string | null
  description: string | null
  received_at: string
  p_status: string
  p_carrier_status: string
  p_occurred_at: string
  expected_delivery: { from: string | null; to: string | null } | null
}

export function createOutboxRelay<M>(deps: {
  /** The relay's connection, with its deadline (the service's); or a plain pool, without one. */
  connections?: Pick<GuardedConnections, 'run'>
  sql?: Sql
  engine: Engine
  source: OutboxSource<M>
  log: Logger
  metrics: Metrics
  intervalMs: number
  graceMs: number
  batchSize: number
  maxBatches?: number
}): OutboxRelay {
  const { sql, engine, source, log, metrics, intervalMs, graceMs, batchSize, maxBatches = 20 } = deps
  const outbox = source.name
  const published = outbox === 'events' ? metrics.eventsPublished : metrics.notificationsPublished
  const onConnection: Pick<GuardedConnections, 'run'> = deps.connections ?? { run: (_what, f) => f(sql!) }

  async function backlog(): Promise<number> {
    const n = await onConnection.run(`${outbox} outbox backlog count`, (sql) => source.backlog(sql))
    metrics.outboxBacklog.set({ outbox }, n)
    return n
  }

  // One batch under the cross-process lock. Returns how many were published, or null when
  // another process holds the lock.
  async function batch(): Promise<number | null> {
    return onConnection.run(`${outbox} outbox relay batch`, (sql) =>
      sql.begin(async (tx) => {
        const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(${source.lockKey}::bigint) as ok`
        if (!lock!.ok) return null
        const rows = await source.read(tx, graceMs, batchSize)
        if (rows.length === 0) return 0
        const n = await source.append(rows.map((r) => r.message))
        if (n > 0)
          await deleteOutboxRows(
            tx,
            outbox,
            rows.slice(0, n).map((r) => r.ref)
          )
        published.inc({ path: 'relay' }, n)
        if (n < rows.length) throw new RelayStall(rows.length - n, n)
        return n
      })
    )
  }

  async function cycle(): Promise<CycleResult> {
    try {
      if (!engine.isReady) return { status: 'skipped', reason: 'redis_unavailable', backlog: await backlog() }
      let count = 0
      for (let i = 0; i < maxBatches; i++) {
        const n = await batch()
        if (n === null) return { status: 'skipped', reason: 'lock_held', backlog: await backlog() }
        count += n
        if (n < batchSize) break
      }
      const left = await backlog()
      if (count > 0) log.info({ component: 'outbox', outbox, published: count, backlog: left }, `relayed unpublished ${outbox} to the stream`)
      return { status: 'ok', published: count, backlog: left }
    } catch (err) {
      const message = err instanceof RelayStall ? err.message : (err as Error).message
      log.warn({ component: 'outbox', outbox, err: message }, 'outbox relay cycle failed; will retry')
      return { status: 'error', error: message }
    }
  }

  const loop = createLoop(
    () =>
      cycle().then((r) => {
        metrics.outboxCycles.inc({ outbox, result: r.status === 'skipped' ? `skipped_${r.reason}` : r.status })
        return r
      }),
    { delay: () => intervalMs, busy: { status: 'skipped', reason: 'cycle_already_running' } as CycleResult }
  )

  return {
    runOnce: loop.runOnce,
    start() {
      if (loop.start()) log.info({ component: 'outbox', outbox, intervalMs, graceMs, batchSize }, 'outbox relay started')
    },
    stop: loop.stop
  }
}

class RelayStall extends Error {
  constructor(failed: number, sent: number) {
    super(`stream append failed for ${failed} rows after ${sent} succeeded`)
  }
}

/** `event_outbox` → `tracking:events`: each event with the shipment's projection right after it. */
export function eventOutbox(stream: StreamWriter): OutboxSource<StreamMessage> {
  return {
    name: 'events',
    lockKey: '7284911003771515',
    async read(tx, graceMs, limit) {
      // The outbox drives: each of its rows is looked up by key (the `limit 1` laterals cannot
      // be flattened into joins). Written as plain joins, the planner — trusting stale
      // statistics that counted the outbox's dead rows — merge-joined it with the whole of
      // tracking_events every cycle: 14 ms at 12,000 events, growing with the table.
      const rows = await tx<OutboxRow[]>`
        select e.shipment_id, e.seq, e.dedup_key, s.carrier, s.tracking_number, e.carrier_status, e.status,
               iso_utc(e.occurred_at) as occurred_at, e.location, e.description, iso_utc(e.received_at) as received_at,
               p.status as p_status, p.carrier_status as p_carrier_status, iso_utc(p.occurred_at) as p_occurred_at, s.expected_delivery
        from event_outbox o
        cross join lateral (
          select * from tracking_events e
          where e.shipment_id = o.shipment_id and e.seq = o.seq and e.received_at < now() - make_interval(secs => ${graceMs / 1000})
          limit 1
        ) e
        cross join lateral (select carrier, tracking_number, expected_delivery_json(expected_delivery_from, expected_delivery_to) as expected_delivery from shipments s where s.id = o.shipment_id limit 1) s
        -- the projection as it stood right after this event: newest carrier time so far, first seq on ties
        cross join lateral (
          select status, carrier_status, occurred_at from tracking_events p
          where p.shipment_id = e.shipment_id and p.seq <= e.seq
          order by p.occurred_at desc, p.seq limit 1
        ) p
        order by o.shipment_id, o.seq
        limit ${limit}
        for update of o skip locked`
      return rows.map((r) => ({ ref: { key: r.shipment_id, seq: r.seq }, message: toMessage(r) }))
    },
    append: async (messages) => (await stream.append(messages)).length,
    backlog: (sql) => countBacklog(sql, 'event_outbox')
  }
}

function toMessage(r: OutboxRow): StreamMessage {
  return shipmentMessage(
    r.shipment_id,
    {
      seq: r.seq,
      dedupKey: r.dedup_key,
      carrier: r.carrier,
      trackingNumber: r.tracking_number,
      carrierStatus: r.carrier_status,
      status: r.status,
      occurredAt: r.occurred_at,
      location: r.location,
      description: r.description,
      receivedAt: r.received_at
    },
    { status: r.p_status, carrierStatus: r.p_carrier_status, lastEventAt: r.p_occurred_at, expectedDelivery: r.expected_delivery }
  )
}
