/**
 * `bun run bench:ingest` — events persisted per second, end to end.
 *
 *  1. through the processor directly (in this process), batches of 100;
 *  2. through `POST /v1/events` on a server in its own process, batches of 100, from a
 *     load generator in this process with a fixed number of requests in flight.
 *
 * Each batch holds 10 events for each of 10 random shipments out of 10,000 (the shape a
 * poller produces), every event new, so every one is inserted, numbered, projected and
 * published to Redis. Bounded: a fixed number of batches, then it stops and reports.
 * Options (env): BENCH_BATCHES (default 1500), BENCH_CONCURRENCY (default 8).
 */
import { loadConfig } from '../src/config.ts'
import { createService } from '../src/service.ts'
import { createLogger } from '../src/log.ts'
import { toNormalizedEvent } from '../src/pipeline/event.ts'
import { freshDatabase, histogram, machine, ms, redisUrl, startServer, writeSection } from './support.ts'

const BATCHES = Number(process.env.BENCH_BATCHES ?? 1500)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8)
const SHIPMENTS = 10_000
const BATCH = 100

const db = await freshDatabase('parcelcast_bench')
await db.sql`insert into shipments (carrier, tracking_number) select 'dhl', 'BENCH' || lpad(g::text, 6, '0') from generate_series(1, ${SHIPMENTS}) g`
await db.sql`analyze`

let counter = 0
function batch() {
  const events = []
  for (let s = 0; s < 10; s++) {
    const tn = `BENCH${String(1 + Math.floor(Math.random() * SHIPMENTS)).padStart(6, '0')}`
    for (let k = 0; k < BATCH / 10; k++) {
      const n = counter++
      events.push({ carrier: 'dhl', trackingNumber: tn, carrierStatus: `S${n % 7}`, occurredAt: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(), location: 'Leipzig, DE' })
    }
  }
  return events
}

async function run(label: string, send: (events: ReturnType<typeof batch>) => Promise<number>) {
  const h = histogram()
  let inserted = 0, next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < BATCHES) {
        const events = batch()
        const s = performance.now()
        const n = await send(events)
        inserted += n
        h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)))
      }
    })
  )
  const seconds = (performance.now() - t0) / 1000
  const result = { label, events: inserted, seconds, perSecond: inserted / seconds, p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), max: h.maxValue }
  console.log(`${label}: ${inserted} events in ${seconds.toFixed(2)} s = ${Math.round(result.perSecond)} events/s; per batch p50 ${ms(result.p50)}, p99 ${ms(result.p99)}, max ${ms(result.max)}`)
  return result
}

// 1. The processor, in process.
const config = loadConfig({ ...process.env, API_KEYS: 'bench-key-000000', DATABASE_URL: db.url, REDIS_URL: redisUrl, REDIS_PREFIX: 'bench:', MIGRATE_ON_BOOT: 'false', LOG_LEVEL: 'warn' })
const service = createService(config, { log: createLogger('warn'), defaultMetrics: false })
for (let i = 0; i < 100 && !service.redis.isReady; i++) await Bun.sleep(20)
const direct = await run('processor', async (events) => {
  const results = await service.processor.ingest(events.map((e) => toNormalizedEvent(e)))
  return results.filter((r) => r.outcome === 'inserted' && r.published).length
})
await service.stop()

// 2. HTTP, server in its own process.
const server = await startServer({ API_KEYS: 'bench-key-000000', DATABASE_URL: db.url, REDIS_URL: redisUrl, REDIS_PREFIX: 'bench:' })
const http = await run('http', async (events) => {
  const res = await fetch(`${server.url}/v1/events`, {
    method: 'POST',
    headers: { authorization: 'Bearer bench-key-000000', 'content-type': 'application/json' },
    body: JSON.stringify({ events })
  })
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
  const body = (await res.json()) as { results: { outcome: string; published: boolean }[] }
  return body.results.filter((r) => r.outcome === 'inserted' && r.published).length
})
await server.stop()

const [stored] = await db.sql<{ n: number; gaps: number; unpublished: number }[]>`
  select count(*)::int as n,
         (select count(*)::int from shipments s where s.last_seq <> (select count(*) from tracking_events e where e.shipment_id = s.id)) as gaps,
         count(*) filter (where published_at is null)::int as unpublished
  from tracking_events`
console.log(`check: ${stored!.n} rows stored (expected ${direct.events + http.events}), ${stored!.gaps} shipments whose last_seq disagrees with their rows, ${stored!.unpublished} unpublished`)
await db.sql.end()

const row = (r: typeof direct) => `| ${r.label} | ${r.events} | ${r.seconds.toFixed(2)} s | **${Math.round(r.perSecond).toLocaleString('en')}** | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} |`
await writeSection(
  'ingest',
  `## Ingest — \`bun run bench:ingest\`

Run on ${new Date().toISOString().slice(0, 10)}: ${machine()}.
${BATCHES} batches of ${BATCH} events per path (10 events for each of 10 random shipments out of ${SHIPMENTS.toLocaleString('en')}),
${CONCURRENCY} batches in flight. Every event is new: inserted, numbered, projected, committed, then XADDed to Redis
and marked published before the call returns. Latency is per batch of ${BATCH}, as seen by the caller.

| path | events | time | events/s | p50 | p99 | max |
|---|---|---|---|---|---|---|
${row(direct)}
${row(http)}

Check after the run: ${stored!.n} rows stored (expected ${direct.events + http.events}), ${stored!.gaps} shipments with a seq gap, ${stored!.unpublished} unpublished.
Caveats: 2 cores shared by the server, the load generator, PostgreSQL and Redis; PostgreSQL with its stock
configuration (fsync on, synchronous_commit on). Figures vary by ±10 % between runs.`
)
