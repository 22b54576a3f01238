/**
 * `bun run bench:ingest` — events persisted per second, end to end.
 *
 * Each run starts from a fresh database holding 10,000 shipments and no events:
 *   0. reference: the bare insert + guarded projection update, by hand (no dedup read, no
 *      publishing, no marks) — what PostgreSQL does here at best; also one event per transaction;
 *   1. the processor, in this process;
 *   2. `POST /v1/events` on a server in its own process, with 8 and with 16 requests in flight;
 *   3. latency, not throughput: the processor alone, one call at a time — one event every 200 ms
 *      (a machine at rest, where each round trip waits for the other process to wake up) and
 *      ten events every 5 ms.
 *
 * Each batch holds 10 events for each of 10 random shipments (the shape a poller produces),
 * every event new, so every one is inserted, numbered, projected, committed and XADDed before
 * the call returns. Bounded: BENCH_BATCHES batches per run (default 1500), then it reports.
 * BENCH_ONLY=reference|processor|http|latency runs one part (and then writes no report).
 */
import { loadConfig } from '../src/config.ts'
import { createLogger } from '../src/log.ts'
import { toNormalizedEvent } from '../src/pipeline/event.ts'
import { createService } from '../src/service.ts'
import type { Sql } from '../src/db/client.ts'
import { freshDatabase, histogram, machine, ms, redisUrl, startServer, writeSection } from './support.ts'

const BATCHES = Number(process.env.BENCH_BATCHES ?? 1500)
const ONLY = process.env.BENCH_ONLY
const part = (name: string) => !ONLY || ONLY === name
const SHIPMENTS = 10_000
const BATCH = 100
type Batch = ReturnType<typeof batch>

async function fresh() {
  const db = await freshDatabase('parcelcast_bench')
  await db.sql`insert into shipments (carrier, tracking_number) select 'dhl', 'BENCH' || lpad(g::text, 6, '0') from generate_series(1, ${SHIPMENTS}) g`
  await db.sql`analyze`
  return db
}

let counter = 0
function batch() {
  const events = []
  for (let s = 0; s < 10; s++) {
    const tn = `BENCH${String(1 + Math.floor(Math.random() * SHIPMENTS)).padStart(6, '0')}`
    for (let k = 0; k < BATCH / 10; k++) {
      const n = counter++
      events.push({
        carrier: 'dhl',
        trackingNumber: tn,
        carrierStatus: `S${n % 7}`,
        occurredAt: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(),
        location: 'Leipzig, DE'
      })
    }
  }
  return events
}

interface Result {
  label: string
  concurrency: number
  events: number
  seconds: number
  perSecond: number
  p50: number
  p99: number
  max: number
  check: string
}

async function run(
  label: string,
  concurrency: number,
  batches: number,
  send: (events: Batch) => Promise<number>,
  verify: () => Promise<string>
): Promise<Result> {
  const h = histogram()
  let inserted = 0,
    next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < batches) {
        const events = batch()
        const s = performance.now()
        const n = await send(events)
        inserted += n
        h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)))
      }
    })
  )
  const seconds = (performance.now() - t0) / 1000
  const r = {
    label,
    concurrency,
    events: inserted,
    seconds,
    perSecond: inserted / seconds,
    p50: h.getValueAtPercentile(50),
    p99: h.getValueAtPercentile(99),
    max: h.maxValue,
    check: await verify()
  }
  console.log(
    `${label} (${concurrency} in flight): ${inserted} events in ${seconds.toFixed(2)} s = ${Math.round(r.perSecond)} events/s; per batch p50 ${ms(r.p50)}, p99 ${ms(r.p99)}, max ${ms(r.max)}; ${r.check}`
  )
  return r
}

async function verify(sql: Sql, expected: number): Promise<string> {
  const [s] = await sql<{ n: number; gaps: number; unpublished: number }[]>`
    select count(*)::int as n,
           (select count(*)::int from shipments s where s.last_seq <> (select count(*) from tracking_events e where e.shipment_id = s.id)) as gaps,
           (select count(*)::int from event_outbox) as unpublished
    from tracking_events`
  await sql.end()
  return `${s!.n}/${expected} stored, ${s!.gaps} seq gaps, ${s!.unpublished} unpublished`
}

const results: Result[] = []

// 0. Reference.
if (part('reference'))
  for (const [label, size, batches] of [
    ['reference: bare insert + guarded update', BATCH, BATCHES],
    ['reference: the same, one event per transaction', 1, 15_000]
  ] as const) {
    const db = await fresh()
    let seq = 0
    const bare = async (events: Batch) => {
      const slice = events.slice(0, size)
      await db.sql.begin(async (tx) => {
        const tns = [...new Set(slice.map((e) => e.trackingNumber))]
        const ships = await tx<
          { id: string; tracking_number: string }[]
        >`select id, tracking_number from shipments where carrier = 'dhl' and tracking_number = any(${tns}::text[]) order by id for update`
        const ids = new Map(ships.map((x) => [x.tracking_number, x.id]))
        const rows = slice.map((e) => ({
          shipment_id: ids.get(e.trackingNumber),
          seq: ++seq,
          dedup_key: `ref:${seq}`,
          carrier_status: e.carrierStatus,
          status: 'unknown',
          occurred_at: e.occurredAt
        }))
        await tx`insert into tracking_events (shipment_id, seq, dedup_key, carrier_status, status, occurred_at)
               select * from json_to_recordset(${tx.json(rows as never)}::json) as r(shipment_id uuid, seq int, dedup_key text, carrier_status text, status text, occurred_at timestamptz)`
        await tx`update shipments s set last_event_at = ${slice.at(-1)!.occurredAt}::timestamptz
               where s.id = any(${ships.map((x) => x.id)}::uuid[]) and (s.last_event_at is null or s.last_event_at < ${slice.at(-1)!.occurredAt}::timestamptz)`
      })
      return slice.length
    }
    results.push(await run(label, 8, batches, bare, async () => (await db.sql.end(), 'no checks (reference only)')))
  }

// 1. The processor, in process.
if (part('processor')) {
  const db = await fresh()
  const config = loadConfig({
    ...process.env,
    API_KEYS: 'bench-key-000000',
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: 'bench:',
    MIGRATE_ON_BOOT: 'false',
    LOG_LEVEL: 'warn'
  })
  const service = createService(config, { log: createLogger('warn'), defaultMetrics: false })
  for (let i = 0; i < 100 && !service.engine.isReady; i++) await Bun.sleep(20)
  const send = async (events: Batch) => {
    const r = await service.processor.ingest(events.map((e) => toNormalizedEvent(e)))
    return r.filter((x) => x.outcome === 'inserted' && x.published).length
  }
  results.push(await run('processor', 8, BATCHES, send, async () => (await service.stop(), verify(db.sql, BATCHES * BATCH))))
}

// 2. HTTP, server in its own process.
if (part('http'))
  for (const concurrency of [8, 16]) {
    const db = await fresh()
    const server = await startServer({ API_KEYS: 'bench-key-000000', DATABASE_URL: db.url, REDIS_URL: redisUrl, REDIS_PREFIX: 'bench:' })
    const send = async (events: Batch) => {
      const res = await fetch(`${server.url}/v1/events`, {
        method: 'POST',
        headers: { authorization: 'Bearer bench-key-000000', 'content-type': 'application/json' },
        body: JSON.stringify({ events })
      })
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
      const body = (await res.json()) as { results: { outcome: string; published: boolean }[] }
      return body.results.filter((r) => r.outcome === 'inserted' && r.published).length
    }
    results.push(await run('POST /v1/events', concurrency, BATCHES, send, async () => (await server.stop(), verify(db.sql, BATCHES * BATCH))))
  }

// 3. Latency of one call at a time.
interface Latency {
  label: string
  calls: number
  p50: number
  p90: number
  p99: number
  max: number
}
const latencies: Latency[] = []
if (part('latency')) {
  const db = await fresh()
  const config = loadConfig({
    ...process.env,
    API_KEYS: 'bench-key-000000',
    TOKEN_SECRET: 'bench-token-secret-0123456789-abcdef',
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: 'bench:',
    MIGRATE_ON_BOOT: 'false',
    LOG_LEVEL: 'warn'
  })
  const service = createService(config, { log: createLogger('warn'), defaultMetrics: false })
  for (let i = 0; i < 100 && !service.engine.isReady; i++) await Bun.sleep(20)
  for (const [label, size, gapMs, calls] of [
    ['one event, every 200 ms', 1, 200, 100],
    ['ten events of ten shipments, every 5 ms', 10, 5, 1000]
  ] as const) {
    const h = histogram()
    // The first calls of each pooled connection prepare its statements: not measured.
    for (let i = -20; i < calls; i++) {
      const events = batch()
        .filter((_, k) => k % 10 === 0)
        .slice(0, size)
        .map((e) => toNormalizedEvent(e))
      const s = performance.now()
      await service.processor.ingest(events)
      if (i >= 0) h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)))
      await Bun.sleep(gapMs)
    }
    const r = { label, calls, p50: h.getValueAtPercentile(50), p90: h.getValueAtPercentile(90), p99: h.getValueAtPercentile(99), max: h.maxValue }
    console.log(`latency, ${label}: ${calls} calls, p50 ${ms(r.p50)}, p90 ${ms(r.p90)}, p99 ${ms(r.p99)}, max ${ms(r.max)}`)
    latencies.push(r)
  }
  await service.stop()
  await db.sql.end()
}

if (ONLY) process.exit(0)

const row = (r: Result) =>
  `| ${r.label} | ${r.concurrency} | ${r.events.toLocaleString('en')} | ${r.seconds.toFixed(2)} s | **${Math.round(r.perSecond).toLocaleString('en')}** | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.check} |`
await writeSection(
  'ingest',
  `## Ingest — \`bun run bench:ingest\`

Run on ${new Date().toISOString().slice(0, 10)}: ${machine()}.
Each row starts from a fresh database with ${SHIPMENTS.toLocaleString('en')} shipments. Batches of ${BATCH} events (10 for each of
10 random shipments); every event is new, so it is inserted, numbered, projected, committed, XADDed to Redis and
(in the background) marked published. Latency is per batch, as seen by the caller.

| path | in flight | events | time | events/s | p50 | p99 | max | check after the run |
|---|---|---|---|---|---|---|---|---|
${results.map(row).join('\n')}

The processor one call at a time (validate, lock and read, insert and update, commit, append to the
stream), after 20 unmeasured calls:

| calls | count | p50 | p90 | p99 | max |
|---|---|---|---|---|---|
${latencies.map((r) => `| ${r.label} | ${r.calls} | **${ms(r.p50)}** | ${ms(r.p90)} | ${ms(r.p99)} | ${ms(r.max)} |`).join('\n')}

Caveats: 2 cores shared by the server, the load generator, PostgreSQL and Redis; PostgreSQL with its stock
configuration (fsync and synchronous_commit on, 128 MB shared buffers). Repeated runs vary by about ±10 %.`
)
