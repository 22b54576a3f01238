/** The polling engine against the carrier simulators and the real database. */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import pino from 'pino'
import { createCarrierHealth } from '../../src/carriers/health.ts'
import { createCarrierClient } from '../../src/carriers/clients.ts'
import { createPoller, createTokenBucket, type PollSettings } from '../../src/carriers/poller.ts'
import { createCarrierSimulator, type CarrierSimulator } from '../../src/carriers/simulator.ts'
import { createTestDb, silentLog, type TestDb } from '../support/db.ts'
import { testService } from '../support/service.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
let sim: CarrierSimulator
beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url })
  sim = createCarrierSimulator({ stepMs: 0 })
})
afterAll(async () => {
  sim.stop()
  await service.stop()
  await db.drop()
})

const settings = (over: Partial<PollSettings> = {}): PollSettings => ({
  intervalMs: 60_000,
  batchSize: 10,
  backoffBaseMs: 200,
  maxAttempts: 5,
  ratePerSec: 1000,
  ...over
})
function poller(carrier: 'dhl' | 'dpd' | 'gls', base: string, over: Partial<PollSettings> = {}) {
  const client = createCarrierClient(
    carrier,
    { baseUrl: `${base}/${carrier}`, apiKey: 'sim-dhl-key', clientId: 'sim-gls-id', clientSecret: 'sim-gls-secret', locale: 'de_DE' },
    2000
  )!
  return createPoller({ sql: service.sql, processor: service.processor, client, settings: settings(over), log: silentLog, metrics: service.metrics })
}
async function shipments(carrier: string, prefix: string, n: number) {
  await db.sql`insert into shipments (carrier, tracking_number) select ${carrier}, ${prefix} || g from generate_series(1, ${n}) g`
}
const requestsFor = (s: CarrierSimulator, carrier: string) => s.requests.filter((r) => r.carrier === carrier)

describe('poller', () => {
  test('polls active shipments into the processor; terminal and deleted ones never', async () => {
    await shipments('dhl', 'ACT', 3)
    await db.sql`insert into shipments (carrier, tracking_number, status) values ('dhl', 'DONE1', 'delivered'), ('dhl', 'RET1', 'returned')`
    await db.sql`insert into shipments (carrier, tracking_number, deleted_at) values ('dhl', 'GONE1', now())`
    const before = sim.requests.length
    const result = await poller('dhl', sim.url).runOnce()
    expect(result).toMatchObject({ status: 'ok', polled: 3, inserted: 15, errors: 0 })
    expect(await service.metrics.registry.getSingleMetricAsString('parcelcast_poll_events_total')).toContain(
      'parcelcast_poll_events_total{carrier="dhl",outcome="inserted"} 15'
    )
    const asked = sim.requests.slice(before).length
    expect(asked).toBe(3)
    const [row] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from shipments where tracking_number like 'ACT%' and status = 'delivered' and last_seq = 5`
    expect(row!.n).toBe(3)
    // Delivered now: a second cycle has nothing to poll.
    await db.sql`update shipments set next_poll_at = null`
    expect(await poller('dhl', sim.url).runOnce()).toMatchObject({ status: 'ok', polled: 0 })
  })

  test('GLS: ten numbers a call, with a token; DPD: one a call', async () => {
    await shipments('gls', 'GL', 12)
    await shipments('dpd', 'DP', 2)
    const before = sim.requests.length
    expect(await poller('gls', sim.url, { batchSize: 20 }).runOnce()).toMatchObject({ status: 'ok', polled: 12, inserted: 60 })
    expect(await poller('dpd', sim.url).runOnce()).toMatchObject({ status: 'ok', polled: 2, inserted: 10 })
    const since = sim.requests.slice(before)
    expect(since.filter((r) => r.carrier === 'gls').length).toBe(3) // one token + two tracking calls
    expect(since.filter((r) => r.carrier === 'dpd').length).toBe(2)
  })

  test('cycles never overlap', async () => {
    const slow = createCarrierSimulator({ stepMs: 0, latencyMs: 200 })
    try {
      await shipments('dhl', 'OVL', 2)
      const p = poller('dhl', slow.url)
      const [a, b] = await Promise.all([p.runOnce(), p.runOnce()])
      expect(a.status).toBe('ok')
      expect(b).toEqual({ status: 'skipped', reason: 'cycle_already_running' })
    } finally {
      slow.stop()
    }
  })

  test('a failing carrier is backed off with jitter, and its shipments stay due', async () => {
    const down = createCarrierSimulator({ stepMs: 0, errorRate: 1 })
    try {
      await db.sql`update shipments set next_poll_at = now() + interval '1 day' where carrier = 'dpd'`
      await shipments('dpd', 'ERR', 3)
      const p = poller('dpd', down.url, { backoffBaseMs: 300, concurrency: 1 })
      const first = await p.runOnce()
      expect(first).toMatchObject({ status: 'error' })
      expect(await p.runOnce()).toEqual({ status: 'skipped', reason: 'backing_off' })
      const [due] = await db.sql<{ n: number }[]>`select count(*)::int as n from shipments where tracking_number like 'ERR%' and next_poll_at <= now()`
      expect(due!.n).toBe(3)
      // attempt 1: between 300 and 600 ms.
      await Bun.sleep(650)
      expect((await p.runOnce()).status).toBe('error')
      // Only one call per cycle reached the carrier: the cycle stops at the first failure.
      expect(requestsFor(down, 'dpd').length).toBe(2)
    } finally {
      down.stop()
    }
  })

  test('the rate limit holds (counted at the simulator) and a 429 pauses the carrier', async () => {
    await db.sql`update shipments set next_poll_at = now() + interval '1 day' where carrier = 'dhl'`
    await shipments('dhl', 'RATE', 12)
    const counted = createCarrierSimulator({ stepMs: 0 })
    try {
      const result = await poller('dhl', counted.url, { ratePerSec: 5, batchSize: 12 }).runOnce()
      expect(result).toMatchObject({ status: 'ok', polled: 12 })
      const perSecond = new Map<number, number>()
      for (const r of requestsFor(counted, 'dhl')) perSecond.set(Math.floor(r.at / 1000), (perSecond.get(Math.floor(r.at / 1000)) ?? 0) + 1)
      // A bucket of 5: a burst of 5, then 5 a second; no second may see more than 2 × 5.
      expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(10)
      expect(result.status === 'ok' && result.durationMs).toBeGreaterThanOrEqual(1000)
    } finally {
      counted.stop()
    }
    const strict = createCarrierSimulator({ stepMs: 0, rateLimitPerSec: 2 })
    try {
      // The first part delivered those journeys; fresh shipments for this one.
      await shipments('dhl', 'LIMIT', 6)
      const p = poller('dhl', strict.url, { batchSize: 12 })
      const r = await p.runOnce()
      expect(r).toMatchObject({ status: 'error', error: expect.stringContaining('rate limited') })
      expect(await p.runOnce()).toEqual({ status: 'skipped', reason: 'backing_off' })
    } finally {
      strict.stop()
    }
  })

  test('a carrier that is down does not hold up the others', async () => {
    await db.sql`update shipments set next_poll_at = now()`
    await shipments('gls', 'SIDE', 2)
    const dead = poller('dpd', 'http://127.0.0.1:1')
    const alive = poller('gls', sim.url, { batchSize: 50 })
    const t0 = performance.now()
    const [d, a] = await Promise.all([dead.runOnce(), alive.runOnce()])
    expect(d.status).toBe('error')
    expect(a.status).toBe('ok')
    expect(performance.now() - t0).toBeLessThan(3000)
  })

  test('two service instances (separate connection pools, as two processes have) never poll one shipment twice in a cycle', async () => {
    await db.sql`update shipments set next_poll_at = now() + interval '1 day'`
    await shipments('dhl', 'TWIN', 40)
    const twin = createCarrierSimulator({ stepMs: 0, latencyMs: 5 })
    try {
      const other = testService({ DATABASE_URL: db.url })
      try {
        const a = poller('dhl', twin.url, { batchSize: 40 })
        const b = createPoller({
          sql: other.sql,
          processor: other.processor,
          client: createCarrierClient('dhl', { baseUrl: `${twin.url}/dhl`, apiKey: 'sim-dhl-key' })!,
          settings: settings({ batchSize: 40 }),
          log: silentLog,
          metrics: other.metrics
        })
        const [ra, rb] = await Promise.all([a.runOnce(), b.runOnce()])
        const polled = (ra.status === 'ok' ? ra.polled : 0) + (rb.status === 'ok' ? rb.polled : 0)
        expect(polled).toBe(40)
        expect(requestsFor(twin, 'dhl').length).toBe(40)
      } finally {
        await other.stop()
      }
    } finally {
      twin.stop()
    }
  })
})

describe('poller: rejected scans are loud', () => {
  test('one error line per field per cycle with a redacted sample, the counter per scan, lastPollError per shipment, the health sample', async () => {
    const broken = createCarrierSimulator({ stepMs: 0 })
    broken.setShape('dpd', 'unreadable')
    const lines: any[] = []
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
    const health = createCarrierHealth()
    try {
      await db.sql`update shipments set next_poll_at = now() + interval '1 day' where carrier = 'dpd'`
      await shipments('dpd', 'LOUD', 3)
      const client = createCarrierClient('dpd', { baseUrl: `${broken.url}/dpd`, locale: 'de_DE' }, 2000)!
      const p = createPoller({ sql: service.sql, processor: service.processor, client, settings: settings(), log, metrics: service.metrics, health })
      expect(await p.runOnce()).toMatchObject({ status: 'ok', polled: 3, inserted: 0, errors: 15 })
      const errors = lines.filter((l) => l.level === 50)
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatchObject({
        component: 'poller',
        carrier: 'dpd',
        field: 'scan[0].date',
        err: expect.stringContaining('is not a DPD date'),
        sample: { date: expect.stringMatching(/^\d\d\/\d\d\/\d{4} \d\d:\d\d$/), scanData: { scanType: { name: expect.any(String) } } }
      })
      expect(await service.metrics.registry.getSingleMetricAsString('parcelcast_carrier_rejected_scans_total')).toContain(
        'parcelcast_carrier_rejected_scans_total{carrier="dpd",field="date"} 15'
      )
      const rows = await db.sql<
        { last_poll_error: string; at: string; last_seq: number }[]
      >`select last_poll_error, iso_utc(last_poll_error_at) as at, last_seq from shipments where tracking_number like 'LOUD%'`
      expect(rows.map((r) => [r.last_seq, r.at !== null, r.last_poll_error.startsWith('5 of 5 scans rejected: scan[0].date')])).toEqual([
        [0, true, true],
        [0, true, true],
        [0, true, true]
      ])
      expect(health.of('dpd')).toBe('failing: 15 of 15 scans rejected (date)')
      // The next cycle logs again (once), counts again.
      await db.sql`update shipments set next_poll_at = null where tracking_number like 'LOUD%'`
      await p.runOnce()
      expect(lines.filter((l) => l.level === 50)).toHaveLength(2)
    } finally {
      broken.stop()
    }
  })
})

describe('token bucket', () => {
  test('a burst of capacity, then the rate; a pause holds every call', async () => {
    let now = 0
    const b = createTokenBucket(5, () => now)
    for (let i = 0; i < 5; i++) expect(await b.take(0)).toBe(true)
    expect(await b.take(0)).toBe(false)
    now += 200
    expect(await b.take(0)).toBe(true)
    b.pauseFor(1000)
    now += 500
    expect(await b.take(0)).toBe(false)
    now += 600
    expect(await b.take(0)).toBe(true)
  })
})

describe('carrier health sees every failure', () => {
  const fakeCarrier = (fetch: (req: Request) => Response | Promise<Response>) => Bun.serve({ port: 0, fetch })
  const pollerOn = (carrier: 'dhl' | 'dpd' | 'gls', url: string, health: ReturnType<typeof createCarrierHealth>, config: Record<string, string> = {}) =>
    createPoller({
      sql: service.sql,
      processor: service.processor,
      client: createCarrierClient(carrier, { baseUrl: url, apiKey: 'k', clientId: 'id', clientSecret: 'secret', locale: 'de_DE', ...config }, 2000)!,
      settings: settings({ backoffBaseMs: 1 }),
      log: silentLog,
      metrics: service.metrics,
      health
    })

  test('a carrier that only ever answers 429 is failing', async () => {
    await db.sql`update shipments set next_poll_at = now() + interval '1 day'`
    await shipments('dhl', 'ALWAYS429', 2)
    const server = fakeCarrier(() => new Response('{}', { status: 429, headers: { 'retry-after': '0' } }))
    try {
      const health = createCarrierHealth()
      const p = pollerOn('dhl', `http://127.0.0.1:${server.port}`, health)
      for (let i = 0; i < 6; i++) {
        await p.runOnce()
        await Bun.sleep(5)
      }
      expect(health.of('dhl')).toMatch(/^failing: \d+ of \d+ calls failed \(rate limited \(HTTP 429\)\)$/)
    } finally {
      server.stop(true)
    }
  })

  test('GLS answering every parcel with an error (E_500_01): failing, and counted per shipment', async () => {
    await db.sql`update shipments set next_poll_at = now() + interval '1 day'`
    await shipments('gls', 'GLSERR', 3)
    const server = fakeCarrier((req) => {
      if (new URL(req.url).pathname.endsWith('/token')) return Response.json({ access_token: 't', expires_in: 3600 })
      const ids = new URL(req.url).pathname.split('/').pop()!.split(',')
      return Response.json({ parcels: ids.map((requested) => ({ requested, errorCode: 'E_500_01', errorMessage: 'internal error' })) })
    })
    try {
      const health = createCarrierHealth()
      expect(await pollerOn('gls', `http://127.0.0.1:${server.port}`, health).runOnce()).toMatchObject({ status: 'ok', polled: 3, errors: 3 })
      expect(health.of('gls')).toBe('failing: 3 of 3 shipments answered with an error (GLS: E_500_01 internal error)')
      expect(await service.metrics.registry.getSingleMetricAsString('parcelcast_carrier_shipment_errors_total')).toContain(
        'parcelcast_carrier_shipment_errors_total{carrier="gls",source="poll"} 3'
      )
    } finally {
      server.stop(true)
    }
  })

  test('DPD SOAP answering HTTP 500 "Fault occurred while processing.": a failed call, and failing', async () => {
    await db.sql`update shipments set next_poll_at = now() + interval '1 day'`
    await shipments('dpd', 'SOAPFAULT', 1)
    const login = await Bun.file(`${import.meta.dir}/../fixtures/dpd/soap-login.xml`).text()
    const fault =
      '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Fault occurred while processing.</faultstring></soap:Fault></soap:Body></soap:Envelope>'
    const server = fakeCarrier((req) =>
      new URL(req.url).pathname.includes('LoginService')
        ? new Response(login, { headers: { 'content-type': 'text/xml' } })
        : new Response(fault, { status: 500, headers: { 'content-type': 'text/xml' } })
    )
    try {
      const health = createCarrierHealth()
      expect(await pollerOn('dpd', `http://127.0.0.1:${server.port}`, health, { form: 'soap' }).runOnce()).toMatchObject({
        status: 'error',
        error: 'DPD SOAP fault: Fault occurred while processing. (HTTP 500)'
      })
      expect(health.of('dpd')).toBe('failing: 1 of 1 calls failed (DPD SOAP fault: Fault occurred while processing. (HTTP 500))')
    } finally {
      server.stop(true)
    }
  })
})
