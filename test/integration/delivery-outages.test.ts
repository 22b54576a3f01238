/**
 * Delivery across a Redis outage and across processes: every open socket still gets every
 * event in order, whichever process ingested it, even while Redis is gone.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout } from 'bun:test'
import { createTestDb, type TestDb } from '../support/db.ts'
import { outageTest, redisTest, testRedisUrl } from '../support/engine.ts'
import { freePort, privateRedis, uniquePrefix } from '../support/redis.ts'
import { API_KEY, api, dropKeys, testService, TOKEN_SECRET, waitFor } from '../support/service.ts'
import { connect, type Client } from '../support/ws.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
beforeAll(async () => {
  db = await createTestDb()
})
afterAll(async () => {
  await db.drop()
})

let t0 = Date.UTC(2026, 10, 21)
const ev = (tn: string) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${t0}`,
  status: 'in_transit',
  occurredAt: new Date((t0 += 60_000)).toISOString()
})
const seqs = (c: Client) => c.frames.filter((f) => f.type === 'event').map((f) => f.seq)
const upTo = (n: number, from = 0) => Array.from({ length: n - from }, (_, i) => from + i + 1)

async function subscriber(service: ReturnType<typeof testService>, topic: string) {
  const token = (await api(service)('POST', '/v1/tokens', { topics: [topic] })).body.token
  const c = await connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${token}`)
  c.send({ op: 'subscribe', topic })
  const snap = await c.next()
  expect(snap.type).toBe('snapshot')
  return c
}

describe('delivery', () => {
  outageTest('Redis stopped under ingest and restarted empty: every socket gets every event, in order', async () => {
    const redis = await privateRedis()
    await redis.start()
    const service = testService({ DATABASE_URL: db.url, REDIS_URL: redis.url, OUTBOX_GRACE_MS: '0', OUTBOX_INTERVAL_MS: '100', RECONCILE_MS: '200' })
    const call = api(service)
    try {
      await service.start()
      await waitFor('redis', () => service.engine.isReady)
      await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'OUTAGE1' })
      const clients = await Promise.all([1, 2, 3].map(() => subscriber(service, 'shipment:dhl:OUTAGE1')))
      for (let i = 0; i < 5; i++) await call('POST', '/v1/events', { events: [ev('OUTAGE1')] })
      await redis.stop()
      for (let i = 0; i < 10; i++) {
        const r = await call('POST', '/v1/events', { events: [ev('OUTAGE1')] })
        expect(r.body.results[0].outcome).toBe('inserted')
      }
      // Delivery goes on from PostgreSQL while Redis is gone.
      for (const c of clients) await waitFor('events during the outage', () => seqs(c).length >= 15, 10_000)
      await redis.start()
      await waitFor('redis back', () => service.engine.isReady, 15_000)
      for (let i = 0; i < 5; i++) await call('POST', '/v1/events', { events: [ev('OUTAGE1')] })
      for (const c of clients) {
        await waitFor('all 20', () => seqs(c).length >= 20, 10_000)
        expect(seqs(c)).toEqual(upTo(20))
        c.close()
      }
    } finally {
      await service.stop()
      await redis.stop()
    }
  })

  outageTest('the ingesting process serves its own sockets straight after the commit, without Redis', async () => {
    const redis = await privateRedis()
    await redis.start()
    // Reconcile off: with Redis gone, only the local hand-off can bring these events.
    const service = testService({ DATABASE_URL: db.url, REDIS_URL: redis.url, RECONCILE_MS: '3600000', OUTBOX_INTERVAL_MS: '3600000' })
    const call = api(service)
    try {
      await service.start()
      await waitFor('redis', () => service.engine.isReady)
      await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'LOCAL1' })
      const c = await subscriber(service, 'shipment:dhl:LOCAL1')
      await redis.stop()
      for (let i = 0; i < 5; i++) {
        const r = await call('POST', '/v1/events', { events: [ev('LOCAL1'), ev('LOCAL1')] })
        expect(r.body.results.map((x: { published: boolean }) => x.published)).toEqual([false, false])
      }
      await waitFor('10 events', () => seqs(c).length >= 10, 5_000)
      expect(seqs(c)).toEqual(upTo(10))
      expect(c.frames.filter((f) => f.type === 'event').map((f) => f.event.dedupKey)).toEqual(
        (
          await db.sql<
            { dedup_key: string }[]
          >`select dedup_key from tracking_events e join shipments s on s.id = e.shipment_id where s.tracking_number = 'LOCAL1' order by seq`
        ).map((r) => r.dedup_key)
      )
      expect((await service.metrics.hubOffers.get()).values.find((v) => v.labels.source === 'local')?.value).toBe(10)
      c.close()
    } finally {
      await service.stop()
      await redis.stop()
    }
  })

  redisTest('two processes share nothing but Redis', 'two OS processes: each delivers to its own sockets every event, whichever one ingested it', async () => {
    const prefix = uniquePrefix()
    // Reconcile off: what reaches the other process here came through the fan-out.
    const env = {
      ...process.env,
      DATABASE_URL: db.url,
      ENGINE: 'redis',
      REDIS_URL: testRedisUrl!,
      REDIS_PREFIX: prefix,
      API_KEYS: API_KEY,
      TOKEN_SECRET,
      LOG_LEVEL: 'warn',
      MIGRATE_ON_BOOT: 'false',
      RECONCILE_MS: '3600000'
    }
    const ports = [await freePort(), await freePort()]
    const procs = ports.map((port) =>
      Bun.spawn([process.execPath, `${import.meta.dir}/../../src/main.ts`], { env: { ...env, PORT: String(port) }, stdout: 'inherit', stderr: 'inherit' })
    )
    try {
      const bases = ports.map((p) => `http://127.0.0.1:${p}`)
      for (const base of bases) await waitFor(`${base} ready`, async () => (await fetch(`${base}/readyz`).catch(() => null))?.ok, 15_000)
      const post = (base: string, path: string, body: unknown) =>
        fetch(base + path, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify(body)
        }).then((r) => r.json() as Promise<any>)
      await post(bases[0]!, '/v1/shipments', { carrier: 'dhl', trackingNumber: 'TWOPROC1' })
      const clients: Client[] = []
      for (const base of bases) {
        const { token } = await post(base, '/v1/tokens', { topics: ['shipment:dhl:TWOPROC1'] })
        const c = await connect(`${base.replace('http', 'ws')}/v1/ws?token=${token}`)
        c.send({ op: 'subscribe', topic: 'shipment:dhl:TWOPROC1' })
        expect((await c.next()).type).toBe('snapshot')
        clients.push(c)
      }
      for (let i = 0; i < 10; i++) await post(bases[i % 2]!, '/v1/events', { events: [ev('TWOPROC1'), ev('TWOPROC1')] })
      // The ingesting process serves its own sockets directly; these last events reach the
      // first process's socket only through the fan-out (no later local event reveals a gap).
      for (let i = 0; i < 5; i++) await post(bases[1]!, '/v1/events', { events: [ev('TWOPROC1')] })
      for (const c of clients) {
        await waitFor('25 events', () => seqs(c).length >= 25, 10_000)
        expect(seqs(c)).toEqual(upTo(25))
        c.close()
      }
    } finally {
      for (const p of procs) p.kill('SIGTERM')
      await Promise.all(procs.map((p) => p.exited))
      await dropKeys(testRedisUrl!, prefix)
    }
  })
})
