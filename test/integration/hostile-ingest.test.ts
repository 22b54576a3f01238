/**
 * Ingest under hostile input and an unlucky database, against the real PostgreSQL: poisoned
 * calls among valid ones (over the wire), values PostgreSQL refuses past the validation layer
 * (a test-only trigger), SQLSTATE class 53 errors that must not leak connections, deadlocks
 * and serialization failures that are retried, and a poll cycle with a bad scan in it.
 *
 * Faults are injected by PostgreSQL itself: triggers on this file's own database that raise a
 * given SQLSTATE. The count of faults left lives in a sequence, which a rolled-back transaction
 * does not undo.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createCarrierClient } from '../../src/carriers/clients.ts'
import { createPoller } from '../../src/carriers/poller.ts'
import { createTestDb, silentLog, type TestDb } from '../support/db.ts'
import { API_KEY, api, testService } from '../support/service.ts'

setDefaultTimeout(60_000)

let db: TestDb
beforeAll(async () => {
  db = await createTestDb()
  await db.sql.unsafe(`
    create sequence test_fault_calls;
    create table test_fault (sqlstate text not null, times int not null);
    -- Raises the configured SQLSTATE on the first "times" ingest inserts.
    create function test_fault() returns trigger language plpgsql as $$
    declare f record;
    begin
      select * into f from test_fault limit 1;
      if found and nextval('test_fault_calls') <= f.times then
        raise exception 'injected fault %', f.sqlstate using errcode = f.sqlstate;
      end if;
      return null;
    end $$;
    create trigger test_fault before insert on tracking_events for each statement execute function test_fault();
    -- A value the validation layer lets through but PostgreSQL refuses: stands for whatever
    -- gets past it.
    create function test_poison() returns trigger language plpgsql as $$
    begin
      if new.description like 'POISON-DB%' then raise exception 'poisoned row' using errcode = '22P05'; end if;
      return new;
    end $$;
    create trigger test_poison before insert on tracking_events for each row execute function test_poison();
  `)
})
afterAll(async () => {
  await db.drop()
})
beforeEach(async () => {
  await db.sql`truncate test_fault`
})

async function fault(sqlstate: string, times: number) {
  await db.sql`truncate test_fault`
  await db.sql`insert into test_fault values (${sqlstate}, ${times})`
  await db.sql`select setval('test_fault_calls', 1, false)`
}

let n = 0
const ev = (tn: string, extra: Record<string, unknown> = {}) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${n++}`,
  occurredAt: new Date(Date.UTC(2026, 10, 20) + n * 60_000).toISOString(),
  ...extra
})
async function shipments(prefix: string, count: number): Promise<string[]> {
  const rows = await db.sql<
    { tracking_number: string }[]
  >`insert into shipments (carrier, tracking_number) select 'dhl', ${prefix} || g from generate_series(1, ${count}) g returning tracking_number`
  return rows.map((r) => r.tracking_number)
}
/** `p`, or a failure once `ms` have passed: a call that waits for a leaked connection waits forever. */
const within = <T>(ms: number, p: Promise<T>) =>
  Promise.race([p, Bun.sleep(ms).then(() => Promise.reject(new Error(`no answer within ${ms} ms: ingest is waiting for a connection`)))])
const eventCount = async (like: string) =>
  (
    await db.sql<
      { n: number }[]
    >`select count(*)::int as n from tracking_events e join shipments s on s.id = e.shipment_id where s.tracking_number like ${like}`
  )[0]!.n
/** The pid of the parcelcast backend waiting for a row lock in this file's database, once there is one. */
async function lockWaiter(): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const [row] = await db.sql<
      { pid: number }[]
    >`select pid from pg_stat_activity where application_name = 'parcelcast' and wait_event_type = 'Lock' and datname = ${db.name}`
    if (row) return row.pid
    await Bun.sleep(10)
  }
  throw new Error('no ingest backend ever waited for the lock: ingest is waiting for a connection')
}

describe('poisoned calls among valid ones', () => {
  test('over the wire, concurrently: every valid event stored exactly once, every poisoned call a 4xx, no 5xx', async () => {
    const service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    await service.start()
    try {
      const tns = await shipments('MIX', 25)
      let deep: unknown = 'x'
      for (let i = 0; i < 100; i++) deep = [deep]
      const poisons: Record<string, unknown>[] = [
        { carrierStatus: 'P\u0000' },
        { carrierStatus: 'P\ud800' },
        { description: 'd\u0000' },
        { description: '\udc00' },
        { location: 'l\u0000' },
        { location: 'x\ud83d' },
        { occurredAt: '2026-02-30T25:61:61Z' },
        { occurredAt: '9999-12-31T23:59:59-01:00' },
        { occurredAt: '0000-01-01T00:00:00Z' },
        { extra: deep },
        { extra: { ['k\u0000']: 1 } }
      ]
      type Call = { kind: 'valid' | 'poison' | 'db_poison' | 'mixed'; body: string; keys: number }
      const calls: Call[] = []
      for (let i = 0; i < 60; i++) {
        const events = [ev(tns[i % 25]!), ev(tns[(i * 7) % 25]!)]
        calls.push({ kind: 'valid', body: JSON.stringify({ events }), keys: 2 })
      }
      for (let i = 0; i < 22; i++)
        calls.push({
          kind: 'poison',
          body: JSON.stringify({ events: [ev(tns[i % 25]!, poisons[i % poisons.length]), ev(tns[0]!, poisons[(i + 3) % poisons.length])] }),
          keys: 0
        })
      for (let i = 0; i < 10; i++)
        calls.push({ kind: 'db_poison', body: JSON.stringify({ events: [ev(tns[i]!, { description: `POISON-DB ${i}` })] }), keys: 0 })
      // A document nested too deep is refused whole, before it is parsed; it poisons only its own call.
      const inEvent = poisons.filter((p) => p.extra !== deep)
      for (let i = 0; i < 10; i++)
        calls.push({
          kind: 'mixed',
          body: JSON.stringify({ events: [ev(tns[i]!), ev(tns[i]!, inEvent[i]), ev(tns[i + 1]!, { description: `POISON-DB m${i}` }), ev(tns[i + 2]!)] }),
          keys: 2
        })
      // Interleaved, all at once, so that the group commit merges poisoned calls with valid ones.
      calls.sort(() => Math.random() - 0.5)
      const answers = await Promise.all(
        calls.map(async (c) => {
          const res = await fetch(`http://127.0.0.1:${service.port}/v1/events`, {
            method: 'POST',
            headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
            body: c.body
          })
          return { call: c, status: res.status, body: (await res.json()) as any }
        })
      )
      const merged = (await service.metrics.ingestCalls.get()).values.find((v) => v.metricName?.endsWith('_sum'))!.value
      const transactions = (await service.metrics.ingestCalls.get()).values.find((v) => v.metricName?.endsWith('_count'))!.value
      expect(merged, 'some calls shared a transaction').toBeGreaterThan(transactions)
      for (const { call, status, body } of answers) {
        const what = `${call.kind} ${call.body.slice(0, 300)} → ${status} ${JSON.stringify(body).slice(0, 300)}`
        expect(status, what).toBeLessThan(500)
        if (call.kind === 'valid') {
          expect(status, what).toBe(200)
          expect(
            body.results.map((r: any) => r.outcome),
            what
          ).toEqual(['inserted', 'inserted'])
        } else if (call.kind === 'mixed') {
          expect(status, what).toBe(200)
          expect(
            body.results.map((r: any) => r.outcome),
            what
          ).toEqual(['inserted', 'invalid', 'invalid', 'inserted'])
          expect(body.results[2].error.message, what).toContain('SQLSTATE 22P05')
        } else {
          expect(status, what).toBe(400)
          if (body.error.code === 'invalid_body') expect(body.error.message, what).toContain('nests deeper than 32')
          else {
            expect(body.error.code, what).toBe('validation_failed')
            expect(body.error.field, what).toMatch(/^events\[0\]/)
          }
        }
      }
      const expected = answers.flatMap((a) => a.body.results?.filter((r: any) => r.outcome === 'inserted').map((r: any) => r.dedupKey) ?? [])
      expect(expected.length).toBe(60 * 2 + 10 * 2)
      const stored = await db.sql<
        { dedup_key: string }[]
      >`select dedup_key from tracking_events e join shipments s on s.id = e.shipment_id where s.tracking_number like 'MIX%'`
      expect(stored.map((r) => r.dedup_key).sort()).toEqual(expected.sort())
      // Seq is still gap-free per shipment.
      const gaps = await db.sql`select shipment_id from tracking_events group by shipment_id having max(seq) <> count(*)`
      expect(gaps.length).toBe(0)
      const isolated = await service.metrics.registry.getSingleMetricAsString('parcelcast_ingest_isolated_events_total')
      expect(isolated).toContain('parcelcast_ingest_isolated_events_total{sqlstate="22P05"} 20')
    } finally {
      await service.stop()
    }
  })
})

describe('connections', () => {
  test('class 53 errors INGEST_CONCURRENCY + 1 times: each a 503, every connection given back, then ingest works', async () => {
    const service = testService({ DATABASE_URL: db.url, INGEST_CONCURRENCY: '2', POLL_ENABLED: 'false' })
    const call = api(service)
    try {
      const [tn] = await shipments('C53X', 1)
      for (const [i, sqlstate] of ['53100', '53200', '53400'].entries()) {
        await fault(sqlstate, 1)
        const res = await within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))
        expect(res.status, `fault ${i + 1}: ${sqlstate}`).toBe(503)
        expect(res.body.error.code).toBe('database_unavailable')
      }
      await db.sql`truncate test_fault`
      const ok = await within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))
      expect(ok.status).toBe(200)
      expect(ok.body.results[0].outcome).toBe('inserted')
      expect(await eventCount('C53X%')).toBe(1)
    } finally {
      await service.stop()
    }
  })
  test('an ingest backend terminated while it waits for a lock, INGEST_CONCURRENCY + 1 times: each call a 503, then ingest works', async () => {
    // The deadline (INGEST_TIMEOUT_MS) would heal a lost connection by itself; far out of reach
    // here, so that only the driver's own recovery is tested.
    const service = testService({ DATABASE_URL: db.url, INGEST_CONCURRENCY: '2', INGEST_TIMEOUT_MS: '120000', POLL_ENABLED: 'false' })
    const call = api(service)
    try {
      const [tn] = await shipments('KILLX', 1)
      for (let i = 0; i < 3; i++) {
        const holder = await db.sql.reserve()
        try {
          await holder`begin`
          await holder`select id from shipments where tracking_number = ${tn!} for update`
          const ingest = within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))
          const pid = await lockWaiter()
          await db.sql`select pg_terminate_backend(${pid})`
          const res = await ingest
          expect(res.status, `kill ${i + 1}`).toBe(503)
          expect(res.body.error.code).toBe('database_unavailable')
        } finally {
          await holder`rollback`.catch(() => {})
          holder.release()
        }
      }
      const ok = await within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))
      expect(ok.status).toBe(200)
      expect(ok.body.results[0].outcome).toBe('inserted')
      expect(await eventCount('KILLX%')).toBe(1)
    } finally {
      await service.stop()
    }
  })
})

describe('the database could not do it now', () => {
  test('an ingest cancelled while it waits for a lock (pg_cancel_backend) is a retryable 503 naming why, not a 500; nothing stored', async () => {
    const service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    const call = api(service)
    const holder = await db.sql.reserve()
    try {
      const [tn] = await shipments('CANCELX', 1)
      await holder`begin`
      await holder`select id from shipments where tracking_number = ${tn!} for update`
      const ingest = within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))
      await db.sql`select pg_cancel_backend(${await lockWaiter()})`
      const res = await ingest
      expect(res.status).toBe(503)
      expect(res.body.error).toEqual({
        code: 'database_unavailable',
        message: 'a statement was cancelled or ran past its time limit (SQLSTATE 57014); nothing was stored, retry later'
      })
      expect(res.headers.get('retry-after')).toBe('1')
      await holder`rollback`
      expect(await eventCount('CANCELX%')).toBe(0)
      // The connection was given back: the next call on it works.
      expect((await within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))).status).toBe(200)
    } finally {
      await holder`rollback`.catch(() => {})
      holder.release()
      await service.stop()
    }
  })

  test('a lock not granted in time (55P03) and a read-only database (25006) are 503s too', async () => {
    const service = testService({ DATABASE_URL: db.url, INGEST_CONCURRENCY: '1', POLL_ENABLED: 'false' })
    const call = api(service)
    try {
      const [tn] = await shipments('NOTNOW', 1)
      for (const [sqlstate, why] of [
        ['55P03', 'a lock was not granted in time'],
        ['25006', 'the database is read-only for now']
      ]) {
        await fault(sqlstate!, 1)
        const res = await within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))
        expect(res.status, sqlstate).toBe(503)
        expect(res.body.error.message).toBe(`${why} (SQLSTATE ${sqlstate}); nothing was stored, retry later`)
      }
      await db.sql`truncate test_fault`
      expect((await within(10_000, call('POST', '/v1/events', { events: [ev(tn!)] }))).status).toBe(200)
    } finally {
      await service.stop()
    }
  })
})

describe('conflicts', () => {
  test('a deadlock or serialization failure is retried; the call succeeds and stores its events once', async () => {
    const service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    const call = api(service)
    try {
      const [tn] = await shipments('RETRY', 1)
      await fault('40P01', 1)
      const a = await call('POST', '/v1/events', { events: [ev(tn!), ev(tn!)] })
      expect(a.status).toBe(200)
      expect(a.body.results.map((r: any) => [r.outcome, r.seq])).toEqual([
        ['inserted', 1],
        ['inserted', 2]
      ])
      await fault('40001', 3)
      const b = await call('POST', '/v1/events', { events: [ev(tn!)] })
      expect(b.body.results.map((r: any) => [r.outcome, r.seq])).toEqual([['inserted', 3]])
      const retries = await service.metrics.registry.getSingleMetricAsString('parcelcast_ingest_retries_total')
      expect(retries).toContain('{sqlstate="40P01"} 1')
      expect(retries).toContain('{sqlstate="40001"} 3')
      expect(await eventCount('RETRY%')).toBe(3)
    } finally {
      await service.stop()
    }
  })

  test('a conflict that persists through every retry is a 503 database_conflict, nothing stored', async () => {
    const service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    const call = api(service)
    try {
      const [tn] = await shipments('STUCK', 1)
      await fault('40001', 1000)
      const res = await call('POST', '/v1/events', { events: [ev(tn!)] })
      expect(res.status).toBe(503)
      expect(res.body.error.code).toBe('database_conflict')
      expect(res.headers.get('retry-after')).toBe('1')
      expect(await eventCount('STUCK%')).toBe(0)
      expect(Number((await db.sql`select last_value from test_fault_calls`)[0]!.last_value)).toBe(5)
    } finally {
      await service.stop()
    }
  })

  test('a real deadlock with another transaction: PostgreSQL aborts ingest, which retries and commits', async () => {
    const service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    const call = api(service)
    const other = await db.sql.reserve()
    try {
      const [a, b] = (
        await db.sql<{ id: string; tracking_number: string }[]>`
        insert into shipments (carrier, tracking_number) values ('dhl', 'DEADA'), ('dhl', 'DEADB') returning id, tracking_number`
      ).sort((x, y) => (x.id < y.id ? -1 : 1))
      // The other transaction never detects the deadlock itself (its own timeout is long), so
      // PostgreSQL's detector, run by ingest's backend after deadlock_timeout (1 s), aborts ingest.
      await other`begin`
      await other`set local deadlock_timeout = '60s'`
      await other`select id from shipments where id = ${b!.id} for update`
      // Ingest locks a, then waits for b.
      const ingest = call('POST', '/v1/events', { events: [ev(a!.tracking_number), ev(b!.tracking_number)] })
      const waitingIngest = async () =>
        (await db.sql`select 1 from pg_stat_activity where application_name = 'parcelcast' and wait_event_type = 'Lock' and datname = ${db.name}`).length > 0
      for (let i = 0; !(await waitingIngest()); i++) {
        if (i > 500) throw new Error('ingest never waited for the lock')
        await Bun.sleep(10)
      }
      // Now the other transaction wants a: a cycle. Ingest is aborted, so this gets a.
      await other`select id from shipments where id = ${a!.id} for update`
      await other`commit`
      const res = await ingest
      expect(res.status).toBe(200)
      expect(res.body.results.map((r: any) => r.outcome)).toEqual(['inserted', 'inserted'])
      // Usually once; twice or more when the retry takes `a` back before the other transaction,
      // woken by the abort, has taken it (the retry's pause grows to let it).
      const retries = await service.metrics.registry.getSingleMetricAsString('parcelcast_ingest_retries_total')
      expect(Number(/\{sqlstate="40P01"\} (\d+)/.exec(retries)?.[1])).toBeGreaterThanOrEqual(1)
      expect(await eventCount('DEAD%')).toBe(2)
    } finally {
      other.release()
      await service.stop()
    }
  })
})

describe('poll cycles', () => {
  test("a bad scan in a carrier answer is an invalid outcome; it blocks neither its shipment's other scans nor anyone else's", async () => {
    const service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    const scan = (minute: number, over: Record<string, unknown> = {}) => ({
      timestamp: `2026-11-20T08:${String(minute).padStart(2, '0')}:00+01:00`,
      statusCode: 'transit',
      status: 'in transit',
      description: `scan ${minute}`,
      location: { address: { addressLocality: 'Bonn', postalCode: '53113', countryCode: 'DE' } },
      ...over
    })
    const answers: Record<string, unknown[]> = {
      POLLA: [scan(1), scan(2, { description: 'bad\u0000scan' }), scan(3)],
      POLLB: [scan(1, { location: { address: { addressLocality: 'x\ud800' } } }), scan(2)],
      POLLC: [scan(1, { description: 'POISON-DB in a carrier answer' }), scan(2)],
      POLLD: [
        scan(1, { timestamp: '2026-02-30T08:00:00' }),
        scan(4, { extra: { deep: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['x']]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]] } }),
        scan(5)
      ],
      // Every scan unreadable: the shipment's lastPollError says why (stored, so it must be
      // storable text itself), and nobody else's scans are held up.
      POLLE: [scan(1, { timestamp: '2026-11-20T08:00:00\u0000Z' }), scan(2, { timestamp: '\ud800' })]
    }
    const carrier = Bun.serve({
      port: 0,
      fetch(req) {
        const id = new URL(req.url).searchParams.get('trackingNumber')!
        return Response.json({ shipments: [{ id, events: answers[id] ?? [] }] })
      }
    })
    try {
      // Only these four are due (the other tests' shipments are DHL ones too).
      await db.sql`update shipments set next_poll_at = now() + interval '1 day'`
      await db.sql`insert into shipments (carrier, tracking_number) values ('dhl', 'POLLA'), ('dhl', 'POLLB'), ('dhl', 'POLLC'), ('dhl', 'POLLD'), ('dhl', 'POLLE')`
      const client = createCarrierClient('dhl', { baseUrl: `http://127.0.0.1:${carrier.port}`, apiKey: 'k' }, 2000)!
      const poller = createPoller({
        sql: service.sql,
        processor: service.processor,
        client,
        settings: { intervalMs: 60_000, batchSize: 10, backoffBaseMs: 100, maxAttempts: 3, ratePerSec: 1000 },
        log: silentLog,
        metrics: service.metrics
      })
      const result = await poller.runOnce()
      expect(result).toMatchObject({ status: 'ok', polled: 5, inserted: 5, errors: 7 })
      const stored = await db.sql<{ tn: string; n: number; error: string | null }[]>`
        select s.tracking_number as tn, count(e.seq)::int as n, s.last_poll_error as error from shipments s left join tracking_events e on e.shipment_id = s.id
        where s.tracking_number like 'POLL%' group by 1, 3 order by 1`
      expect(stored.map((r) => [r.tn, r.n])).toEqual([
        ['POLLA', 2],
        ['POLLB', 1],
        ['POLLC', 1],
        ['POLLD', 1],
        ['POLLE', 0]
      ])
      expect(stored.find((r) => r.tn === 'POLLE')!.error).toStartWith('2 of 2 scans rejected: ')
      // Unreadable scans are the adapter's rejections; the one PostgreSQL refused is the processor's.
      const rejected = await service.metrics.registry.getSingleMetricAsString('parcelcast_carrier_rejected_scans_total')
      const total = [...rejected.matchAll(/^parcelcast_carrier_rejected_scans_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
      expect(total).toBe(6)
      const counted = await service.metrics.registry.getSingleMetricAsString('parcelcast_poll_events_total')
      expect(counted).toContain('parcelcast_poll_events_total{carrier="dhl",outcome="invalid"} 1')
      // The next cycle finds them due again later, not stuck: nothing is left leased.
      const [leased] = await db.sql`select count(*)::int as n from shipments where tracking_number like 'POLL%' and next_poll_at > now() + interval '2 minutes'`
      expect(leased!.n).toBe(0)
    } finally {
      carrier.stop(true)
      await service.stop()
    }
  })
})
