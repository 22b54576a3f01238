/**
 * `bun run load retry-storm` — 1,000 webhook messages to endpoints that fail 80 % of the time,
 * then recover (contract §9; issue 19).
 *
 * One parcelcast service in this process (the Redis engine on REDIS_URL, else the default Redis,
 * under a prefix of its own; a fresh database), 10 endpoints on one local receiver, 100 events
 * ingested at once, so 1,000 messages due at the same moment. For STORM_FAIL_MS the receiver
 * answers 80 % of requests with a failure (of those: 500 for most, 503 with `Retry-After: 2` for
 * one in ten, a hang past WEBHOOK_TIMEOUT_MS for one in twenty), every answer after 10 ms; then it
 * answers 200. The retry base is small (WEBHOOK_RETRY_BASE_MS, default here 1000) so the run ends
 * in about a minute.
 *
 * Thresholds (exit 1 when one fails):
 *   - every message ends delivered or in the dead-letter queue within STORM_DEADLINE_MS; none lost:
 *     every delivered message was answered 200 by the receiver, and every 200 belongs to a
 *     message that is delivered;
 *   - attempts bounded: no message beyond WEBHOOK_MAX_ATTEMPTS, in all at most 1,000 × that;
 *   - attempts per second never above the sender's ceiling, WEBHOOK_WORKERS sends at a time of at
 *     least 10 ms each: WEBHOOK_WORKERS × 100 a second;
 *   - no thundering herd: retries are spread by full jitter, so in no second do more than
 *     STORM_HERD_RATIO (default 3) times the failing phase's mean retries per second come back.
 *     Without jitter, each round's retries of the first wave would land in the same second.
 */
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { createService } from '../../src/service.ts'
import { freshDatabase, machine, redisUrl } from '../support.ts'

const env = (name: string, def: number) => Number(process.env[name] ?? def)
const ENDPOINTS = 10
const EVENTS = 100
const FAIL_MS = env('STORM_FAIL_MS', 20_000)
const DEADLINE_MS = env('STORM_DEADLINE_MS', 240_000)
const HERD_RATIO = env('STORM_HERD_RATIO', 3)
const settings = {
  WEBHOOK_RETRY_BASE_MS: String(env('WEBHOOK_RETRY_BASE_MS', 1000)),
  WEBHOOK_RETRY_MAX_MS: String(env('WEBHOOK_RETRY_MAX_MS', 16_000)),
  WEBHOOK_MAX_ATTEMPTS: String(env('WEBHOOK_MAX_ATTEMPTS', 6)),
  WEBHOOK_TIMEOUT_MS: String(env('WEBHOOK_TIMEOUT_MS', 1000)),
  WEBHOOK_WORKERS: String(env('WEBHOOK_WORKERS', 16)),
  WEBHOOK_CONCURRENCY: String(env('WEBHOOK_CONCURRENCY', 4)),
  WEBHOOK_POLL_MS: String(env('WEBHOOK_POLL_MS', 50)),
  WEBHOOK_REBUILD_MS: '5000'
}
const MAX_ATTEMPTS = Number(settings.WEBHOOK_MAX_ATTEMPTS)
const CEILING = Number(settings.WEBHOOK_WORKERS) * 100

const db = await freshDatabase('parcelcast_retry_storm')
const config = loadConfig({
  ...process.env,
  ...settings,
  API_KEYS: 'load-key-000000',
  DATABASE_URL: db.url,
  REDIS_URL: process.env.REDIS_URL ?? redisUrl,
  REDIS_PREFIX: `retry-storm-${process.pid}:`,
  MIGRATE_ON_BOOT: 'false',
  LOG_LEVEL: 'error',
  POLL_ENABLED: 'false',
  PORT: '0',
  WEBHOOK_ALLOW_PRIVATE: 'true'
})
const service = createService(config, { log: createLogger('error'), defaultMetrics: false })

// --- the receiver ---
let failing = true
const attempts: { at: number; id: string; status: number; retry: boolean }[] = []
const seen = new Set<string>()
const ok = new Set<string>()
const receiver = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const id = req.headers.get('webhook-id') ?? ''
    await req.text()
    const retry = seen.has(id)
    seen.add(id)
    const r = Math.random()
    let status = 200
    let headers: Record<string, string> = {}
    if (failing && r < 0.8) {
      if (r < 0.04) await Bun.sleep(Number(settings.WEBHOOK_TIMEOUT_MS) + 500)
      if (r < 0.08) (status = 503), (headers = { 'retry-after': '2' })
      else status = 500
    }
    attempts.push({ at: Date.now(), id, status, retry })
    await Bun.sleep(10)
    if (status === 200) ok.add(id)
    return new Response(null, { status, headers })
  }
})

const call = async (method: string, path: string, body?: unknown) => {
  const res = await service.app.handle(
    new Request(`http://local${path}`, {
      method,
      headers: { authorization: 'Bearer load-key-000000', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
  )
  return (await res.json()) as any
}

await service.start()
for (let i = 0; i < 100 && !service.engine.isReady; i++) await Bun.sleep(20)
for (let e = 0; e < ENDPOINTS; e++)
  await call('POST', '/v1/webhook-endpoints', { url: `http://127.0.0.1:${receiver.port}/ep/${e}`, eventTypes: ['shipment.event'] })
for (let i = 0; i < EVENTS; i++) await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: `STORM${i}` })
const t0 = Date.now()
const base = Date.UTC(2026, 0, 1)
const ingest = await call('POST', '/v1/events', {
  events: Array.from({ length: EVENTS }, (_, i) => ({
    carrier: 'dhl',
    trackingNumber: `STORM${i}`,
    carrierStatus: 'PU',
    status: 'in_transit',
    occurredAt: new Date(base + i * 1000).toISOString()
  }))
})
console.log(
  `retry-storm: ${ingest.results.filter((r: { outcome: string }) => r.outcome === 'inserted').length} events ingested, ${ENDPOINTS} endpoints; failing 80 % for ${FAIL_MS / 1000} s`
)
setTimeout(() => (failing = false), FAIL_MS)

type Count = { state: string; n: number }
let counts: Count[] = []
let settled = false
while (Date.now() - t0 < DEADLINE_MS) {
  await Bun.sleep(1000)
  counts = await db.sql<Count[]>`select state, count(*)::int as n from webhook_messages group by state order by state`
  const line = counts.map((c) => `${c.state} ${c.n}`).join(', ')
  console.log(`  t=${Math.round((Date.now() - t0) / 1000)} s: ${line}; ${attempts.length} attempts`)
  if (!counts.some((c) => c.state === 'pending') && counts.reduce((s, c) => s + c.n, 0) > 0) {
    settled = true
    break
  }
}
const elapsed = (Date.now() - t0) / 1000
const [totals] = await db.sql<
  { messages: number; delivered: number; failed: number; pending: number; max_attempts: number; attempts: number; recorded: number }[]
>`
  select count(*)::int as messages, count(*) filter (where state = 'delivered')::int as delivered, count(*) filter (where state = 'failed')::int as failed,
         count(*) filter (where state = 'pending')::int as pending, max(attempt_count)::int as max_attempts, sum(attempt_count)::int as attempts,
         (select count(*)::int from webhook_attempts) as recorded
  from webhook_messages`
const delivered = new Set((await db.sql<{ id: string }[]>`select id from webhook_messages where state = 'delivered'`).map((r) => r.id))
await service.stop()
receiver.stop(true)
await db.sql.end()

// Attempts per second (by arrival at the receiver), and retries per second during the failing phase.
const perSecond = new Map<number, { all: number; retries: number }>()
for (const a of attempts) {
  const s = Math.floor((a.at - t0) / 1000)
  const c = perSecond.get(s) ?? { all: 0, retries: 0 }
  c.all++
  if (a.retry) c.retries++
  perSecond.set(s, c)
}
const seconds = [...perSecond.entries()].sort((a, b) => a[0] - b[0])
const peak = Math.max(...seconds.map(([, c]) => c.all))
const failSeconds = Math.ceil(FAIL_MS / 1000)
const failingRetries = seconds.filter(([s]) => s < failSeconds).reduce((n, [, c]) => n + c.retries, 0)
const meanRetries = failingRetries / failSeconds
const peakRetries = Math.max(...seconds.filter(([s]) => s < failSeconds).map(([, c]) => c.retries))
const lostDelivered = [...delivered].filter((id) => !ok.has(id)).length
const okNotDelivered = [...ok].filter((id) => !delivered.has(id)).length

const checks: [string, boolean][] = [
  [
    `every message delivered or dead-lettered within ${DEADLINE_MS / 1000} s: ${totals!.delivered} + ${totals!.failed} of ${totals!.messages} (pending ${totals!.pending})`,
    settled && totals!.messages === ENDPOINTS * EVENTS && totals!.pending === 0
  ],
  [`none lost: delivered without a 200 at the receiver ${lostDelivered}, 200 without delivered ${okNotDelivered}`, lostDelivered === 0 && okNotDelivered === 0],
  [
    `attempts bounded: at most ${totals!.max_attempts} per message (limit ${MAX_ATTEMPTS}), ${totals!.attempts} in all (limit ${ENDPOINTS * EVENTS * MAX_ATTEMPTS}); ${totals!.recorded} recorded, ${attempts.length} received`,
    totals!.max_attempts <= MAX_ATTEMPTS && totals!.attempts <= ENDPOINTS * EVENTS * MAX_ATTEMPTS && totals!.recorded === totals!.attempts
  ],
  [`attempts per second at most ${peak} (ceiling ${CEILING}: ${settings.WEBHOOK_WORKERS} workers × 10 ms answers)`, peak <= CEILING],
  [
    `no herd: retries in the failing phase peak at ${peakRetries}/s against a mean of ${meanRetries.toFixed(1)}/s (bound ${HERD_RATIO}× = ${(HERD_RATIO * meanRetries).toFixed(1)})`,
    peakRetries <= HERD_RATIO * meanRetries
  ]
]
console.log(`\nretry-storm on ${machine()}`)
console.log(
  `settings: ${Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')} STORM_FAIL_MS=${FAIL_MS}`
)
console.log(`finished in ${elapsed.toFixed(1)} s; attempts per second: ${seconds.map(([s, c]) => `${s}:${c.all}`).join(' ')}`)
for (const [what, pass] of checks) console.log(`${pass ? 'PASS' : 'FAIL'} ${what}`)
process.exit(checks.every(([, pass]) => pass) ? 0 : 1)
