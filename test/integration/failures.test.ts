/**
 * The failure asymmetry (contract §3): PostgreSQL down → 503 and nothing anywhere;
 * Redis down → accepted, `published: false`, and the outbox relay delivers every such event
 * in seq order once Redis is back.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createTestDb, type TestDb, uniqueName, urlFor } from '../support/db.ts'
import { outageTest } from '../support/engine.ts'
import { privateRedis, readStream, type PrivateRedis } from '../support/redis.ts'
import { api, testService, waitFor } from '../support/service.ts'
import { tcpProxy } from '../support/tcp-proxy.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
beforeAll(async () => {
  db = await createTestDb()
})
afterAll(async () => {
  await db.drop()
})

async function seedShipment(tn: string, carrier = 'dhl') {
  const [row] = await db.sql<{ id: string }[]>`insert into shipments (carrier, tracking_number) values (${carrier}, ${tn}) returning id`
  return row!.id
}

const ev = (tn: string, i: number) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${i}`,
  occurredAt: new Date(Date.UTC(2026, 10, 20, 8, i)).toISOString()
})

describe('PostgreSQL down', () => {
  test('a connection that fails: 503 database_unavailable, nothing stored, nothing in the stream', async () => {
    await seedShipment('PGDOWN1')
    const proxy = await tcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) })
    const url = new URL(db.url)
    url.host = `127.0.0.1:${proxy.port}`
    const service = testService({ DATABASE_URL: url.toString() })
    const call = api(service)
    try {
      expect((await call('POST', '/v1/events', { events: [ev('PGDOWN1', 0)] })).body.results[0].outcome).toBe('inserted')
      proxy.cut()
      const res = await call('POST', '/v1/events', { events: [ev('PGDOWN1', 1), ev('PGDOWN1', 2)] })
      expect(res.status).toBe(503)
      expect(res.body.error.code).toBe('database_unavailable')
      expect((await call('GET', '/readyz')).body).toMatchObject({ status: 'not_ready', db: 'down' })
      const [row] = await db.sql`select count(*)::int as n from tracking_events e join shipments s on s.id = e.shipment_id where s.tracking_number = 'PGDOWN1'`
      expect(row!.n).toBe(1)
      const entries = await readStream(service.engine)
      expect(entries.map((e) => e.seq)).toEqual([1])
      proxy.restore()
      const back = await waitFor('database back', async () => {
        const r = await call('POST', '/v1/events', { events: [ev('PGDOWN1', 1)] })
        return r.status === 200 && r
      })
      expect(back.body.results[0]).toMatchObject({ outcome: 'inserted', seq: 2, published: true })
    } finally {
      await service.stop()
      proxy.close()
    }
  })

  test('a database that is not there at all: 503, never a 500', async () => {
    const service = testService({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nothing' })
    const call = api(service)
    try {
      const res = await call('POST', '/v1/events', { events: [ev('X1', 0)] })
      expect(res.status).toBe(503)
      expect(res.body.error.code).toBe('database_unavailable')
      expect(res.headers.get('retry-after')).toBe('1')
      expect((await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'X1' })).status).toBe(503)
      expect((await call('GET', '/v1/shipments')).status).toBe(503)
    } finally {
      await service.stop()
    }
  })
  test('a server that refuses new connections (ALLOW_CONNECTIONS false, SQLSTATE 55000): 503 on every route, back once it takes them', async () => {
    const own = await createTestDb()
    const service = testService({ DATABASE_URL: own.url })
    const call = api(service)
    const calls = () => [
      call('POST', '/v1/events', { events: [ev('REFUSED1', 0)] }),
      call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'REFUSED2' }),
      call('GET', '/v1/shipments'),
      call('POST', '/v1/notifications', { userIds: ['u1'], type: 't', title: 'x' })
    ]
    const name = new URL(own.url).pathname.slice(1)
    try {
      expect((await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'REFUSED1' })).status).toBe(201)
      await db.sql.unsafe(`alter database "${name}" allow_connections false`)
      await db.sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name}`
      // The first round may meet pooled connections that were just ended ("cannot be reached");
      // from then on every new connection is refused.
      for (const round of [1, 2]) {
        for (const res of await Promise.all(calls())) {
          expect(res.status).toBe(503)
          expect(res.body.error.code).toBe('database_unavailable')
          if (round === 2) expect(res.body.error.message).toBe('the database refused the connection (SQLSTATE 55000); nothing was stored, retry later')
        }
      }
      const [refusing] = await db.sql`select count(*)::int as n from pg_database where datname = ${name} and not datallowconn`
      expect(refusing!.n).toBe(1)
      await db.sql.unsafe(`alter database "${name}" allow_connections true`)
      const back = await waitFor('connections allowed again', async () => {
        const r = await call('POST', '/v1/events', { events: [ev('REFUSED1', 0)] })
        return r.status === 200 && r
      })
      expect(back.body.results[0].outcome).toBe('inserted')
    } finally {
      await db.sql.unsafe(`alter database "${name}" allow_connections true`)
      await service.stop()
      await own.drop()
    }
  })

  test('a database that does not exist (3D000) or a role that is refused (class 28): 503, never a 500', async () => {
    // A role the server refuses, whatever its authentication (trust locally, a password on the
    // embedded server): no such role, and a wrong password.
    const refusedRole = new URL(urlFor('postgres'))
    refusedRole.username = 'no_such_role_pc'
    refusedRole.password = 'wrong-password'
    for (const url of [urlFor(uniqueName('missing')), refusedRole.toString()]) {
      const service = testService({ DATABASE_URL: url })
      const call = api(service)
      try {
        const res = await call('POST', '/v1/events', { events: [ev('X1', 0)] })
        expect(res.status).toBe(503)
        expect(res.body.error.message).toMatch(/^the database refused the connection \(SQLSTATE (3D000|28000|28P01)\)/)
        expect((await call('GET', '/v1/shipments')).status).toBe(503)
      } finally {
        await service.stop()
      }
    }
  })
})

describe('PostgreSQL that stops answering', () => {
  /** A service on `db` through a proxy the test can blackhole. */
  async function behindProxy(env: Record<string, string>) {
    const proxy = await tcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) })
    const url = new URL(db.url)
    url.host = `127.0.0.1:${proxy.port}`
    const service = testService({ DATABASE_URL: url.toString(), POLL_ENABLED: 'false', ...env })
    return { proxy, service, call: api(service) }
  }
  /** `p`, or a failure once `ms` have passed. */
  const within = <T>(ms: number, what: string, p: Promise<T>) =>
    Promise.race([p, Bun.sleep(ms).then(() => Promise.reject(new Error(`${what}: still waiting after ${ms} ms`)))])
  const stored = async (tn: string) =>
    (
      await db.sql<{ n: number }[]>`select count(*)::int as n from tracking_events e join shipments s on s.id = e.shipment_id where s.tracking_number = ${tn}`
    )[0]!.n

  test('blackholed: every ingest call is a 503 once INGEST_TIMEOUT_MS has passed, nothing stored, the slots free again; healed, ingest works', async () => {
    await seedShipment('HOLE1')
    const { proxy, service, call } = await behindProxy({ INGEST_TIMEOUT_MS: '1000', INGEST_CONCURRENCY: '2' })
    try {
      expect((await call('POST', '/v1/events', { events: [ev('HOLE1', 0)] })).status).toBe(200)
      proxy.blackhole()
      // More calls than slots: the later ones wait for a slot the deadline frees.
      const answers = await within(
        15_000,
        'ingest into a blackhole',
        Promise.all([1, 2, 3, 4, 5].map((i) => call('POST', '/v1/events', { events: [ev('HOLE1', i)] })))
      )
      for (const res of answers) {
        expect(res.status).toBe(503)
        expect(res.body.error.code).toBe('database_unavailable')
        expect(res.body.error.message).toBe('ingest transaction did not finish within 1000 ms; its connection was closed; nothing was stored, retry later')
      }
      expect(await service.metrics.registry.getSingleMetricAsString('parcelcast_db_deadlines_total')).toMatch(
        /parcelcast_db_deadlines_total\{what="ingest transaction"\} [1-9]/
      )
      proxy.restore()
      const back = await waitFor('ingest after the blackhole', async () => {
        const r = await call('POST', '/v1/events', { events: [ev('HOLE1', 9)] })
        return r.status === 200 && r
      })
      expect(back.body.results[0]).toMatchObject({ outcome: 'inserted', seq: 2 })
      expect(await stored('HOLE1')).toBe(2)
    } finally {
      proxy.close()
      await service.stop()
    }
  })

  test('answers lost on the way back: the client gives up at the deadline, and the server rolls the transaction back by itself, letting go of its row locks', async () => {
    await seedShipment('HOLE2')
    const { proxy, service, call } = await behindProxy({ INGEST_TIMEOUT_MS: '1000', INGEST_CONCURRENCY: '1' })
    try {
      expect((await call('POST', '/v1/events', { events: [ev('HOLE2', 0)] })).status).toBe(200)
      // The server gets BEGIN and the lock, its answers never arrive: ingest never sends its COMMIT.
      proxy.blackhole('replies')
      const res = await within(15_000, 'ingest with its answers lost', call('POST', '/v1/events', { events: [ev('HOLE2', 1)] }))
      expect(res.status).toBe(503)
      // The proxy tells the server nothing: it is the server's idle_in_transaction_session_timeout
      // that ends the session, not the client going away.
      await waitFor(
        'the row lock let go',
        async () => {
          const [row] = await db.sql<
            { n: number }[]
          >`select count(*)::int as n from pg_locks l join pg_stat_activity a on a.pid = l.pid where a.datname = ${db.name} and a.application_name = 'parcelcast' and l.relation = 'shipments'::regclass`
          return row!.n === 0
        },
        10_000
      )
      expect(await stored('HOLE2')).toBe(1)
    } finally {
      proxy.close()
      await service.stop()
    }
  })

  test('the outbox relay: a batch PostgreSQL does not finish is abandoned at the deadline; the cycle is an error, not a hang', async () => {
    const { proxy, service } = await behindProxy({ INGEST_TIMEOUT_MS: '1000' })
    try {
      await waitFor('engine ready', () => service.engine.isReady)
      proxy.blackhole()
      const result = await within(10_000, 'a relay cycle into a blackhole', service.relay.runOnce())
      expect(result).toEqual({ status: 'error', error: 'events outbox relay batch did not finish within 1000 ms; its connection was closed' })
    } finally {
      proxy.close()
      await service.stop()
    }
  })

  test('/readyz sees the ingest connections: every slot stuck behind a lock is not_ready (503), with the shared pool fine', async () => {
    await seedShipment('HOLE3')
    const service = testService({ DATABASE_URL: db.url, INGEST_CONCURRENCY: '1', INGEST_TIMEOUT_MS: '60000', POLL_ENABLED: 'false' })
    const call = api(service)
    const holder = await db.sql.reserve()
    try {
      await waitFor('engine ready', () => service.engine.isReady)
      expect((await call('GET', '/readyz')).body).toMatchObject({ status: 'ready', db: 'up', ingest: 'up' })
      await holder`begin`
      await holder`select id from shipments where tracking_number = 'HOLE3' for update`
      const ingest = call('POST', '/v1/events', { events: [ev('HOLE3', 0)] })
      await waitFor(
        'ingest waiting for the lock',
        async () => (await db.sql`select 1 from pg_stat_activity where datname = ${db.name} and wait_event_type = 'Lock'`).length > 0
      )
      const ready = await call('GET', '/readyz')
      expect(ready.status).toBe(503)
      expect(ready.body).toMatchObject({ status: 'not_ready', db: 'up', ingest: 'down' })
      await holder`rollback`
      expect((await ingest).status).toBe(200)
      expect((await call('GET', '/readyz')).body).toMatchObject({ status: 'ready', ingest: 'up' })
    } finally {
      await holder`rollback`.catch(() => {})
      holder.release()
      await service.stop()
    }
  })

  test('SIGTERM with PostgreSQL blackholed: stop() ends after STOP_TIMEOUT_MS, abandoning the hung ingest and relay cycle', async () => {
    await seedShipment('HOLE4')
    // The ingest deadline out of reach: only stop()'s own deadline can end this.
    const { proxy, service, call } = await behindProxy({ INGEST_TIMEOUT_MS: '600000', STOP_TIMEOUT_MS: '1000', OUTBOX_INTERVAL_MS: '20' })
    try {
      await service.start()
      expect((await call('POST', '/v1/events', { events: [ev('HOLE4', 0)] })).status).toBe(200)
      proxy.blackhole()
      const hung = call('POST', '/v1/events', { events: [ev('HOLE4', 1)] })
      // Awaited only after stop(): should it reject rather than answer, the test fails on that
      // await below, not as an unhandled rejection in the middle of stop().
      hung.catch(() => {})
      await Bun.sleep(200)
      const t0 = performance.now()
      await within(8000, 'service.stop() with PostgreSQL blackholed', service.stop())
      expect(performance.now() - t0).toBeGreaterThanOrEqual(900)
      expect((await within(5000, 'the hung ingest call', hung)).status).toBe(503)
    } finally {
      proxy.close()
      await service.stop()
    }
  })
})

describe('Redis down', () => {
  // Needs no Redis server, so it runs on a machine without one too.
  test('an unreachable Redis: events accepted with published false, kept in the outbox', async () => {
    await seedShipment('RDDOWN1')
    const service = testService({ DATABASE_URL: db.url, ENGINE: 'redis', REDIS_URL: 'redis://127.0.0.1:1' })
    const call = api(service)
    try {
      const t0 = performance.now()
      const res = await call('POST', '/v1/events', { events: [ev('RDDOWN1', 0), ev('RDDOWN1', 1)] })
      expect(performance.now() - t0).toBeLessThan(1000)
      expect(res.status).toBe(200)
      expect(res.body.results.map((r: any) => [r.outcome, r.seq, r.published])).toEqual([
        ['inserted', 1, false],
        ['inserted', 2, false]
      ])
      expect((await call('GET', '/readyz')).body).toEqual({
        status: 'degraded',
        db: 'up',
        ingest: 'up',
        database: 'external',
        redis: 'down',
        engine: 'redis',
        broadcaster: null,
        notificationWorkers: null,
        carriers: { dhl: 'ok', dpd: 'ok', gls: 'ok' },
        webhooks: { status: 'ok', deadLetters: 0, deadLettersLastHour: 0, pending: 0, disabledEndpoints: [] }
      })
      expect((await call('GET', '/readyz')).status).toBe(200)
      const [row] = await db.sql`select count(*)::int as n from event_outbox o join shipments s on s.id = o.shipment_id where s.tracking_number = 'RDDOWN1'`
      expect(row!.n).toBe(2)
      expect(await service.relay.runOnce()).toMatchObject({ status: 'skipped', reason: 'redis_unavailable' })
    } finally {
      await service.stop()
    }
  })

  outageTest('a Redis server stopped under ingest and restarted: the relay puts every event on the stream in seq order', async () => {
    const tns = ['RDSTOP1', 'RDSTOP2', 'RDSTOP3']
    for (const tn of tns) await seedShipment(tn)
    const redisServer: PrivateRedis = await privateRedis()
    await redisServer.start()
    const service = testService({ DATABASE_URL: db.url, REDIS_URL: redisServer.url, OUTBOX_GRACE_MS: '0' })
    const call = api(service)
    try {
      await waitFor('redis ready', () => service.engine.isReady)
      // Some events go through while Redis is up.
      const up = await call('POST', '/v1/events', { events: tns.map((tn) => ev(tn, 0)) })
      expect(up.body.results.every((r: any) => r.published)).toBe(true)
      await service.acks.flush()

      await redisServer.stop()
      await waitFor('client to notice', () => !service.engine.isReady)
      for (let batch = 1; batch <= 5; batch++) {
        const res = await call('POST', '/v1/events', { events: tns.flatMap((tn) => [ev(tn, batch * 2), ev(tn, batch * 2 + 1)]) })
        expect(res.status).toBe(200)
        expect(res.body.results.map((r: any) => [r.outcome, r.published])).toEqual(Array(6).fill(['inserted', false]))
      }
      expect((await service.relay.runOnce()).status).toBe('skipped')

      const [outbox] = await db.sql`select count(*)::int as n from event_outbox`
      expect(outbox!.n).toBeGreaterThanOrEqual(30)

      await redisServer.start()
      await waitFor('client to reconnect', () => service.engine.isReady, 15_000)
      const result = await service.relay.runOnce()
      expect(result).toEqual({ status: 'ok', published: outbox!.n, backlog: 0 })

      const entries = await readStream(service.engine)
      // The restarted Redis is empty: what is on it now came from the relay alone.
      for (const tn of tns) {
        const seqs = entries.filter((e) => e.topic === `shipment:dhl:${tn}`).map((e) => e.seq)
        expect(seqs).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        const shipments = entries.filter((e) => e.topic === `shipment:dhl:${tn}`).map((e) => e.data.shipment.carrierStatus)
        expect(shipments).toEqual(['S2', 'S3', 'S4', 'S5', 'S6', 'S7', 'S8', 'S9', 'S10', 'S11'])
      }
      expect((await service.relay.runOnce()).status).toBe('ok')
      const [row] = await db.sql`select count(*)::int as n from event_outbox`
      expect(row!.n).toBe(0)
    } finally {
      await service.stop()
      await redisServer.stop()
    }
  })

  test('two relays at once: one works, the other steps aside', async () => {
    await seedShipment('RDTWO1')
    const down = testService({ DATABASE_URL: db.url, ENGINE: 'redis', REDIS_URL: 'redis://127.0.0.1:1' })
    await api(down)('POST', '/v1/events', { events: Array.from({ length: 50 }, (_, i) => ev('RDTWO1', i)) })
    await down.stop()
    const a = testService({ DATABASE_URL: db.url, OUTBOX_GRACE_MS: '0', OUTBOX_BATCH_SIZE: '5' })
    // Two processes' relays on one engine (with Redis: one key prefix).
    const b = testService({ DATABASE_URL: db.url, OUTBOX_GRACE_MS: '0', OUTBOX_BATCH_SIZE: '5' }, { shareEngineWith: a })
    try {
      await waitFor('engine ready', () => a.engine.isReady && b.engine.isReady)
      // The lock is taken per batch: the two may take turns, and the one that finds it held steps aside.
      const results = await Promise.all([a.relay.runOnce(), b.relay.runOnce()])
      expect(results.some((r) => r.status === 'ok')).toBe(true)
      for (const r of results) if (r.status !== 'ok') expect(r).toMatchObject({ status: 'skipped', reason: 'lock_held' })
      await a.relay.runOnce()
      const [left] = await db.sql<{ n: number }[]>`select count(*)::int as n from event_outbox`
      expect(left!.n).toBe(0)
      // Every event once, in seq order: never appended by both.
      const entries = (await readStream(a.engine)).filter((e) => e.topic === 'shipment:dhl:RDTWO1')
      expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    } finally {
      // b runs on a's engine: b first.
      await b.stop()
      await a.stop()
    }
  })
})
