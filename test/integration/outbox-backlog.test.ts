/**
 * The outbox relay while the engine is down: it reports the backlog every cycle, and that must
 * not cost a scan of the whole outbox (after a long outage, every second).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { createSql, type Sql } from '../../src/db/client.ts'
import { createMemoryEngine } from '../../src/engine/engine-memory.ts'
import { createMetrics } from '../../src/metrics.ts'
import { createPublishAcks } from '../../src/pipeline/acks.ts'
import { toNormalizedEvent } from '../../src/pipeline/event.ts'
import { BACKLOG_EXACT, createOutboxRelay, eventOutbox } from '../../src/pipeline/outbox.ts'
import { createProcessor } from '../../src/pipeline/processor.ts'
import { createStreamWriter } from '../../src/pipeline/stream.ts'
import { createTestDb, silentLog, type TestDb } from '../support/db.ts'

setDefaultTimeout(30_000)

let db: TestDb
let relaySql: Sql
beforeAll(async () => {
  db = await createTestDb()
  // One connection, so that the relay's statistics can be flushed from it (pg_stat_force_next_flush).
  relaySql = createSql(db.url, { max: 1 })
})
afterAll(async () => {
  await relaySql.end({ timeout: 1 })
  await db.drop()
})

/** Rows of event_outbox the relay's connection has read so far (sequential and index scans). */
async function outboxRowsRead(): Promise<number> {
  await relaySql`select pg_stat_force_next_flush()`
  const [t] = await db.sql<{ n: string }[]>`
    select coalesce(t.seq_tup_read, 0) + coalesce((select sum(idx_tup_read) from pg_stat_user_indexes i where i.relid = t.relid), 0) as n
    from pg_stat_user_tables t where t.relname = 'event_outbox'`
  return Number(t!.n)
}

test(`with the engine down, a relay cycle reads at most ${BACKLOG_EXACT + 1} outbox rows to report the backlog: exact up to ${BACKLOG_EXACT}, estimated beyond`, async () => {
  // An engine that is down (closed: never ready), as Redis during an outage; its readiness is
  // all the relay asks of it here, whichever engine the run uses.
  const down = createMemoryEngine()
  await down.close()
  const metrics = createMetrics({ defaults: false })
  const stream = createStreamWriter({ engine: down, maxLen: 1000 })
  const acks = createPublishAcks({ sql: db.sql, log: silentLog, metrics })
  const processor = createProcessor({ sql: db.sql, stream, acks, log: silentLog, metrics })
  const relay = createOutboxRelay({
    sql: relaySql,
    engine: down,
    source: eventOutbox(stream),
    log: silentLog,
    metrics,
    intervalMs: 1000,
    graceMs: 0,
    batchSize: 500
  })
  await db.sql`insert into shipments (carrier, tracking_number) values ('dhl', 'BACKLOG1')`
  const t0 = Date.UTC(2026, 10, 1)
  for (let b = 0; b < 3; b++) {
    const events = Array.from({ length: 1000 }, (_, i) => ({
      carrier: 'dhl',
      trackingNumber: 'BACKLOG1',
      carrierStatus: `S${b}-${i}`,
      status: 'in_transit',
      occurredAt: new Date(t0 + (b * 1000 + i) * 60_000).toISOString()
    }))
    const results = await processor.ingest(events.map((e) => toNormalizedEvent(e)))
    expect(results.every((r) => r.outcome === 'inserted' && !r.published)).toBe(true)
  }
  await acks.stop()

  const before = await outboxRowsRead()
  const cycle = await relay.runOnce()
  const read = (await outboxRowsRead()) - before
  expect(cycle).toMatchObject({ status: 'skipped', reason: 'redis_unavailable' })
  expect((cycle as { backlog: number }).backlog).toBeGreaterThan(BACKLOG_EXACT)
  expect(read).toBeLessThanOrEqual(BACKLOG_EXACT + 1)

  // A small backlog is counted exactly.
  await db.sql`delete from event_outbox where seq > 10`
  expect(await relay.runOnce()).toEqual({ status: 'skipped', reason: 'redis_unavailable', backlog: 10 })
  expect(await metrics.registry.getSingleMetricAsString('parcelcast_outbox_backlog')).toContain('parcelcast_outbox_backlog{outbox="events"} 10')
})
