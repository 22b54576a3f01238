/**
 * Outbound webhooks' guarantees across processes and failures (contract §9): the per-endpoint
 * concurrency bound across two services, no message sent twice at once even when two schedules
 * hold it, a schedule flushed mid-retry rebuilt from PostgreSQL, and SSRF refusals — over the
 * API and again at send time.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createTestDb, type TestDb } from '../support/db.ts'
import { outageTest } from '../support/engine.ts'
import { receiver } from '../support/receiver.ts'
import { connectRedis, privateRedis } from '../support/redis.ts'
import { SCHEDULE } from '../../src/webhooks/sender.ts'
import { API_KEY, api, testService, waitFor } from '../support/service.ts'

setDefaultTimeout(30_000)

const FAST = {
  WEBHOOK_ALLOW_PRIVATE: 'true',
  WEBHOOK_RETRY_BASE_MS: '20',
  WEBHOOK_RETRY_MAX_MS: '200',
  WEBHOOK_MAX_ATTEMPTS: '5',
  WEBHOOK_POLL_MS: '20',
  WEBHOOK_REBUILD_MS: '200',
  WEBHOOK_TIMEOUT_MS: '2000',
  POLL_ENABLED: 'false'
}

let db: TestDb
beforeAll(async () => {
  db = await createTestDb()
})
afterAll(async () => {
  await db.drop()
})

let t0 = Date.UTC(2026, 10, 21)
let n = 0
const ev = (tn: string) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${++n}`,
  status: 'in_transit',
  occurredAt: new Date((t0 += 60_000)).toISOString()
})
async function scenario(call: ReturnType<typeof api>, url: string, events: number, over: Record<string, unknown> = {}) {
  const ep = await call('POST', '/v1/webhook-endpoints', { url, eventTypes: ['shipment.event'], ...over })
  expect(ep.status).toBe(201)
  const tn = `G${++n}X${Math.random().toString(36).slice(2, 8).toUpperCase()}`
  await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
  const r = await call('POST', '/v1/events', { events: Array.from({ length: events }, () => ev(tn)) })
  expect(r.body.results.every((x: { outcome: string }) => x.outcome === 'inserted')).toBe(true)
  return ep.body as { id: string; secret: string }
}
const states = async (call: ReturnType<typeof api>, endpointId: string) => {
  const items = (await call('GET', `/v1/webhook-endpoints/${endpointId}/messages?limit=200`)).body.items as { id: string; state: string }[]
  return items
}

describe('webhook guarantees', () => {
  test('two services on one engine: at most WEBHOOK_CONCURRENCY sends to an endpoint at once, each message once', async () => {
    const env = { DATABASE_URL: db.url, ...FAST, WEBHOOK_CONCURRENCY: '2', WEBHOOK_WORKERS: '8' }
    const a = testService(env)
    const b = testService(env, { shareEngineWith: a })
    const rx = receiver(() => ({ status: 200, delayMs: 60 }))
    try {
      await Promise.all([a.start(), b.start()])
      const ep = await scenario(api(a), rx.url(), 24)
      await waitFor('24 delivered', async () => (await states(api(b), ep.id)).filter((m) => m.state === 'delivered').length === 24, 20_000)
      expect(rx.maxInFlight).toBeLessThanOrEqual(2)
      const ids = rx.received.map((r) => r.id)
      expect(ids.length).toBe(24)
      expect(new Set(ids).size).toBe(24)
    } finally {
      rx.stop()
      await Promise.all([a.stop(), b.stop()])
    }
  })

  test('two services whose schedules both hold every message (two engines): the PostgreSQL guard still sends each once', async () => {
    const env = { DATABASE_URL: db.url, ...FAST, WEBHOOK_WORKERS: '8', WEBHOOK_CONCURRENCY: '50' }
    const a = testService(env)
    const b = testService(env)
    // Slow enough that both schedules' claims overlap the sends; a 500 first, so the retries race too.
    const rx = receiver((_, nth) => ({ status: nth === 1 ? 500 : 200, delayMs: 40 }))
    try {
      await Promise.all([a.start(), b.start()])
      const ep = await scenario(api(a), rx.url(), 20)
      await waitFor('20 delivered', async () => (await states(api(a), ep.id)).filter((m) => m.state === 'delivered').length === 20, 20_000)
      const byId = new Map<string, number[]>()
      for (const r of rx.received) byId.set(r.id, [...(byId.get(r.id) ?? []), r.at])
      expect(byId.size).toBe(20)
      // Exactly the attempts recorded: one 500, one 200 per message; never two at once.
      for (const [id, ats] of byId) {
        expect(ats.length, id).toBe(2)
        const m = (await api(a)('GET', `/v1/webhook-messages/${id}`)).body
        expect(m.attempts.map((x: { status: number }) => x.status)).toEqual([500, 200])
      }
    } finally {
      rx.stop()
      await Promise.all([a.stop(), b.stop()])
    }
  })

  test('an attempt that outlived its lease records nothing over the claim that took the message since, even in its own process', async () => {
    const a = testService({ DATABASE_URL: db.url, ...FAST, WEBHOOK_TIMEOUT_MS: '5000' })
    // The first request is answered after 1 s; the second (a new claim of the same message) after 2.5 s.
    const rx = receiver((_, nth) => ({ status: 200, delayMs: nth === 1 ? 1000 : 2500 }))
    try {
      await a.start()
      const ep = await scenario(api(a), rx.url(), 1)
      await waitFor('the first attempt under way', () => rx.received.length === 1)
      const [m] = await db.sql<{ id: string; endpoint_id: string }[]>`select id, endpoint_id from webhook_messages where endpoint_id = ${ep.id}`
      // As if the first claim's lease had run out: the row's lease is over and the entry due again.
      await db.sql`update webhook_messages set lease_until = now() - interval '1 second' where id = ${m!.id}`
      await a.engine.scheduleAdd(SCHEDULE, [{ member: `${m!.endpoint_id} ${m!.id}`, dueAt: Date.now() }])
      await waitFor('a second attempt under way', () => rx.received.length === 2)
      await waitFor('delivered', async () => (await db.sql`select state from webhook_messages where id = ${m!.id}`)[0]!.state === 'delivered', 10_000)
      // The first attempt ended while the second held the message: it recorded nothing and left
      // the second's lease alone; the second recorded the delivery.
      const attempts = await db.sql<{ ms: number }[]>`select ms from webhook_attempts where message_id = ${m!.id}`
      expect(attempts.length).toBe(1)
      expect(attempts[0]!.ms).toBeGreaterThanOrEqual(2400)
      expect(rx.received.map((r) => r.id)).toEqual([m!.id, m!.id])
    } finally {
      rx.stop()
      await a.stop()
    }
  })

  test('a process restarted with an empty engine (memory, or another Redis prefix) delivers what was pending', async () => {
    let up = false
    const rx = receiver(() => ({ status: up ? 200 : 503 }))
    const first = testService({ DATABASE_URL: db.url, ...FAST, WEBHOOK_MAX_ATTEMPTS: '100', WEBHOOK_RETRY_MAX_MS: '50' })
    let second: ReturnType<typeof testService> | null = null
    let stopped = false
    try {
      await first.start()
      const ep = await scenario(api(first), rx.url(), 3)
      await waitFor('failures', () => rx.received.length >= 3)
      await first.stop()
      stopped = true
      up = true
      second = testService({ DATABASE_URL: db.url, ...FAST })
      await second.start()
      await waitFor('3 delivered', async () => (await states(api(second!), ep.id)).filter((m) => m.state === 'delivered').length === 3)
    } finally {
      rx.stop()
      if (!stopped) await first.stop()
      await second?.stop()
    }
  })

  outageTest('Redis flushed mid-retry: the schedule is rebuilt from PostgreSQL and every message is delivered', async () => {
    const redis = await privateRedis()
    await redis.start()
    const s = testService({ DATABASE_URL: db.url, ...FAST, REDIS_URL: redis.url, WEBHOOK_RETRY_BASE_MS: '300', WEBHOOK_RETRY_MAX_MS: '600' })
    let flushed = false
    const rx = receiver((_, nth) => ({ status: nth <= 2 || !flushed ? 503 : 200 }))
    const admin = await connectRedis(redis.url)
    try {
      await s.start()
      await waitFor('redis', () => s.engine.isReady)
      const ep = await scenario(api(s), rx.url(), 5)
      await waitFor('first failures', () => rx.received.length >= 5)
      await admin.flushAll()
      flushed = true
      await waitFor('5 delivered', async () => (await states(api(s), ep.id)).filter((m) => m.state === 'delivered').length === 5, 20_000)
      expect(new Set(rx.received.map((r) => r.id)).size).toBe(5)
    } finally {
      rx.stop()
      await admin.close()
      await s.stop()
      await redis.stop()
    }
  })

  outageTest('Redis down, then back empty: messages wait in PostgreSQL and go out once it answers', async () => {
    const redis = await privateRedis()
    await redis.start()
    const s = testService({ DATABASE_URL: db.url, ...FAST, REDIS_URL: redis.url, WEBHOOK_REBUILD_MS: '3600000' })
    const rx = receiver()
    try {
      await s.start()
      await waitFor('redis', () => s.engine.isReady)
      await redis.stop()
      const ep = await scenario(api(s), rx.url(), 3)
      await Bun.sleep(200)
      expect(rx.received.length).toBe(0)
      await redis.start()
      // The hourly rebuild is far off: the engine's return triggers it.
      await waitFor('3 delivered', async () => (await states(api(s), ep.id)).filter((m) => m.state === 'delivered').length === 3, 20_000)
    } finally {
      rx.stop()
      await s.stop()
      await redis.stop()
    }
  })
})

describe('retention', () => {
  test('finished messages older than WEBHOOK_RETENTION_DAYS go with their attempts; pending ones stay', async () => {
    const s = testService({ DATABASE_URL: db.url, ...FAST, WEBHOOK_RETENTION_DAYS: '30' })
    try {
      const ep = await s.webhooks.store.createEndpoint({
        url: 'https://93.184.215.14/old',
        eventTypes: ['shipment.event'],
        userIds: null,
        description: null,
        secret: 'whsec_' + Buffer.alloc(24).toString('base64')
      })
      await db.sql`
        insert into webhook_messages (id, endpoint_id, type, body, state, created_at, next_attempt_at) values
          ('msg_old_delivered', ${ep.id}, 'shipment.event', '{}', 'delivered', now() - interval '31 days', now() + interval '1 day'),
          ('msg_old_failed', ${ep.id}, 'shipment.event', '{}', 'failed', now() - interval '31 days', now() + interval '1 day'),
          ('msg_old_pending', ${ep.id}, 'shipment.event', '{}', 'pending', now() - interval '31 days', now() + interval '1 day'),
          ('msg_new_delivered', ${ep.id}, 'shipment.event', '{}', 'delivered', now() - interval '29 days', now() + interval '1 day')`
      await db.sql`insert into webhook_attempts (message_id, n, round, status, ms) values ('msg_old_delivered', 1, 1, 200, 5)`
      await waitFor('engine', () => s.engine.isReady)
      expect(await s.webhooks.rebuild.runOnce()).toMatchObject({ status: 'ok' })
      const left = await db.sql<{ id: string }[]>`select id from webhook_messages where endpoint_id = ${ep.id} order by id`
      expect(left.map((r) => r.id)).toEqual(['msg_new_delivered', 'msg_old_pending'])
      expect((await db.sql`select 1 from webhook_attempts where message_id = 'msg_old_delivered'`).length).toBe(0)
      await db.sql`delete from webhook_endpoints where id = ${ep.id}`
    } finally {
      await s.stop()
    }
  })
})

describe('SSRF', () => {
  test('private targets in any spelling are a 422 naming url, on create and PATCH, over the wire', async () => {
    const s = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    try {
      await s.start()
      const post = (body: unknown, path = '/v1/webhook-endpoints', method = 'POST') =>
        fetch(`http://127.0.0.1:${s.port}${path}`, {
          method,
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify(body)
        })
      for (const url of [
        'http://127.1/hook',
        'http://2130706433/',
        'http://0x7f000001/',
        'http://[::ffff:127.0.0.1]/',
        'http://localhost/',
        'http://10.0.0.5/',
        'http://169.254.169.254/',
        'http://[fe80::1]/',
        'http://[fd00::1]/',
        'ftp://93.184.215.14/',
        'file:///etc/passwd'
      ]) {
        const r = await post({ url, eventTypes: ['shipment.event'] })
        expect(r.status, url).toBe(422)
        const body = (await r.json()) as { error: { code: string; field: string } }
        expect(body.error, url).toMatchObject({ code: 'url_refused', field: 'url' })
      }
      const ok = await post({ url: 'https://93.184.215.14/hooks', eventTypes: ['shipment.event'] })
      expect(ok.status).toBe(201)
      const id = ((await ok.json()) as { id: string }).id
      const patched = await post({ url: 'http://127.0.0.1:9/' }, `/v1/webhook-endpoints/${id}`, 'PATCH')
      expect(patched.status).toBe(422)
      expect(((await patched.json()) as { error: { field: string } }).error.field).toBe('url')
      expect((await api(s)('DELETE', `/v1/webhook-endpoints/${id}`)).status).toBe(204)
    } finally {
      await s.stop()
    }
  })

  test('checked again at send time: a process without WEBHOOK_ALLOW_PRIVATE sends nothing to a private target', async () => {
    // Made by a process that allows private targets; sent by one that does not.
    const maker = testService({ DATABASE_URL: db.url, ...FAST })
    const sender = testService({ DATABASE_URL: db.url, ...FAST, WEBHOOK_ALLOW_PRIVATE: 'false', WEBHOOK_MAX_ATTEMPTS: '2' })
    const rx = receiver()
    try {
      await sender.start()
      const ep = await maker.webhooks.store.createEndpoint({
        url: rx.url(),
        eventTypes: ['shipment.event'],
        userIds: null,
        description: null,
        secret: 'whsec_' + Buffer.alloc(24).toString('base64')
      })
      const tn = `SSRF${++n}`
      await api(sender)('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
      await api(sender)('POST', '/v1/events', { events: [ev(tn)] })
      const dead = await waitFor('a dead letter', async () => (await api(sender)('GET', `/v1/dlq?endpointId=${ep.id}`)).body.items[0])
      const m = (await api(sender)('GET', `/v1/webhook-messages/${dead.id}`)).body
      expect(m.attempts.length).toBe(2)
      expect(m.attempts[0].error).toContain('not sent: the url 127.0.0.1 is a loopback address')
      expect(rx.received.length).toBe(0)
      await api(sender)('DELETE', `/v1/webhook-endpoints/${ep.id}`)
    } finally {
      rx.stop()
      await Promise.all([maker.stop(), sender.stop()])
    }
  })
})
