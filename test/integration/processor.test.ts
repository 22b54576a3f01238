/** The processor against the real PostgreSQL and Redis: identity, seq, projection, publish. */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { toNormalizedEvent } from '../../src/pipeline/event.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { readStream } from '../support/redis.ts'
import { API_KEY, api, testService, waitFor } from '../support/service.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>

beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url })
  call = api(service)
  await waitFor('the engine', () => service.engine.isReady)
})

afterAll(async () => {
  await service.stop()
  await db.drop()
})

let n = 0
async function newShipment(carrier = 'dhl') {
  const tn = `TN${Date.now()}${n++}`
  const res = await call('POST', '/v1/shipments', { carrier, trackingNumber: tn })
  expect(res.status).toBe(201)
  return res.body as { id: string; carrier: string; trackingNumber: string }
}

const ev = (tn: string, carrierStatus: string, occurredAt: string, extra: Record<string, unknown> = {}) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus,
  occurredAt,
  ...extra
})

async function streamEntries(topic?: string) {
  return (await readStream(service.engine)).filter((m) => !topic || m.topic === topic)
}

describe('ingest', () => {
  test('the same fact twice is stored once; spellings of one instant are one fact', async () => {
    const s = await newShipment()
    const first = await call('POST', '/v1/events', { events: [ev(s.trackingNumber, 'PU', '2026-11-20T10:15:00+02:00')] })
    expect(first.status).toBe(200)
    expect(first.body.results).toEqual([
      { dedupKey: `dhl:${s.trackingNumber}:PU:2026-11-20T08:15:00.000Z`, outcome: 'inserted', seq: 1, projectionUpdated: true, published: true }
    ])
    const again = await call('POST', '/v1/events', {
      events: [ev(s.trackingNumber.toLowerCase(), 'PU', '2026-11-20T08:15:00Z'), ev(` ${s.trackingNumber} `, 'PU', '2026-11-20T10:15:00.000+0200')]
    })
    expect(again.body.results.map((r: any) => [r.outcome, r.seq, r.published])).toEqual([
      ['duplicate', 1, false],
      ['duplicate', 1, false]
    ])
    const [row] = await db.sql`select count(*)::int as n from tracking_events where shipment_id = ${s.id}`
    expect(row!.n).toBe(1)
    expect((await streamEntries(`shipment:dhl:${s.trackingNumber}`)).length).toBe(1)
  })

  test('a batch repeating an event inserts it once and reports the repeat as duplicate', async () => {
    const s = await newShipment()
    const e = ev(s.trackingNumber, 'TR', '2026-11-20T09:00:00Z')
    const res = await call('POST', '/v1/events', { events: [e, ev(s.trackingNumber, 'OD', '2026-11-20T10:00:00Z'), e] })
    expect(res.body.results.map((r: any) => [r.outcome, r.seq])).toEqual([
      ['inserted', 1],
      ['inserted', 2],
      ['duplicate', 1]
    ])
  })

  test('out-of-order scans are kept in the timeline but never move the projection back', async () => {
    const s = await newShipment()
    await call('POST', '/v1/events', { events: [ev(s.trackingNumber, 'delivered', '2026-11-21T12:00:00Z')] })
    const late = await call('POST', '/v1/events', {
      events: [ev(s.trackingNumber, 'in_transit', '2026-11-20T12:00:00Z'), ev(s.trackingNumber, 'out_for_delivery', '2026-11-21T12:00:00Z')]
    })
    expect(late.body.results.map((r: any) => [r.outcome, r.seq, r.projectionUpdated])).toEqual([
      ['inserted', 2, false],
      ['inserted', 3, false]
    ])
    const got = await call('GET', `/v1/shipments/${s.id}`)
    expect(got.body).toMatchObject({ status: 'delivered', carrierStatus: 'delivered', lastEventAt: '2026-11-21T12:00:00.000Z', lastSeq: 3 })
    const timeline = await call('GET', `/v1/shipments/${s.id}/events`)
    expect(timeline.body.items.map((e: any) => [e.seq, e.carrierStatus])).toEqual([
      [1, 'delivered'],
      [2, 'in_transit'],
      [3, 'out_for_delivery']
    ])
  })

  test('within one batch the projection follows carrier time, event by event', async () => {
    const s = await newShipment()
    const res = await call('POST', '/v1/events', {
      events: [
        ev(s.trackingNumber, 'in_transit', '2026-11-20T10:00:00Z'),
        ev(s.trackingNumber, 'info_received', '2026-11-20T08:00:00Z'),
        ev(s.trackingNumber, 'out_for_delivery', '2026-11-20T11:00:00Z'),
        ev(s.trackingNumber, 'failed_attempt', '2026-11-20T11:00:00Z')
      ]
    })
    expect(res.body.results.map((r: any) => r.projectionUpdated)).toEqual([true, false, true, false])
    expect((await call('GET', `/v1/shipments/${s.id}`)).body).toMatchObject({ status: 'out_for_delivery', lastSeq: 4 })
    const msgs = await streamEntries(`shipment:dhl:${s.trackingNumber}`)
    expect(msgs.map((m) => [m.seq, m.data.shipment.status])).toEqual([
      [1, 'in_transit'],
      [2, 'in_transit'],
      [3, 'out_for_delivery'],
      [4, 'out_for_delivery']
    ])
  })

  test('an event for an unknown shipment stores nothing and publishes nothing', async () => {
    const before = (await streamEntries()).length
    const res = await call('POST', '/v1/events', { events: [ev('NOSUCHPARCEL1', 'PU', '2026-11-20T08:00:00Z')] })
    expect(res.body.results).toEqual([
      { dedupKey: 'dhl:NOSUCHPARCEL1:PU:2026-11-20T08:00:00.000Z', outcome: 'unknown_shipment', projectionUpdated: false, published: false }
    ])
    const [row] = await db.sql`select count(*)::int as n from tracking_events where dedup_key like 'dhl:NOSUCHPARCEL1:%'`
    expect(row!.n).toBe(0)
    expect((await streamEntries()).length).toBe(before)
  })

  test('an event for a deleted shipment is not tracked any more', async () => {
    const s = await newShipment()
    expect((await call('DELETE', `/v1/shipments/${s.id}`)).status).toBe(200)
    const res = await call('POST', '/v1/events', { events: [ev(s.trackingNumber, 'PU', '2026-11-20T08:00:00Z')] })
    expect(res.body.results[0].outcome).toBe('unknown_shipment')
  })

  test('invalid events are reported with their field and do not stop the valid ones', async () => {
    const s = await newShipment()
    const res = await call('POST', '/v1/events', {
      events: [
        ev(s.trackingNumber, 'PU', 'not a time'),
        ev(s.trackingNumber, 'PU', '2026-11-20T08:00:00Z'),
        { carrier: 'dhl' },
        ev(s.trackingNumber, 'X', '2026-11-20T08:00:00Z', { status: 'teleported' })
      ]
    })
    expect(res.status).toBe(200)
    expect(res.body.results.map((r: any) => [r.outcome, r.error?.field])).toEqual([
      ['invalid', 'occurredAt'],
      ['inserted', undefined],
      ['invalid', 'trackingNumber'],
      ['invalid', 'status']
    ])
  })

  test('events of several shipments in one batch each get their own gap-free seq', async () => {
    const a = await newShipment(),
      b = await newShipment('gls')
    const events = Array.from({ length: 40 }, (_, i) => ({
      carrier: i % 2 ? 'gls' : 'dhl',
      trackingNumber: i % 2 ? b.trackingNumber : a.trackingNumber,
      carrierStatus: `S${i}`,
      occurredAt: new Date(Date.UTC(2026, 10, 20, 0, i)).toISOString()
    }))
    const res = await call('POST', '/v1/events', { events })
    expect(res.body.results.filter((r: any) => r.outcome === 'inserted').length).toBe(40)
    for (const s of [a, b]) {
      const rows = await db.sql<{ seq: number }[]>`select seq from tracking_events where shipment_id = ${s.id} order by seq`
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    }
  })

  test('8 concurrent requests posting the same 100 events: 100 rows, seq 1..100, each published once', async () => {
    const s = await newShipment()
    const events = Array.from({ length: 100 }, (_, i) => ev(s.trackingNumber, `C${i}`, new Date(Date.UTC(2026, 10, 1) + i * 60_000).toISOString()))
    service.app.listen({ port: 0, hostname: '127.0.0.1' })
    try {
      const url = `http://127.0.0.1:${service.app.server!.port}/v1/events`
      const responses = await Promise.all(
        Array.from({ length: 8 }, () =>
          fetch(url, {
            method: 'POST',
            headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify({ events })
          }).then((r) => r.json() as Promise<any>)
        )
      )
      const inserted = responses.flatMap((r) => r.results).filter((r: any) => r.outcome === 'inserted')
      expect(inserted.length).toBe(100)
      expect(responses.flatMap((r) => r.results).filter((r: any) => r.outcome === 'duplicate').length).toBe(700)
    } finally {
      await service.app.stop(true)
    }
    const rows = await db.sql<
      { seq: number; carrier_status: string }[]
    >`select seq, carrier_status from tracking_events where shipment_id = ${s.id} order by seq`
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
    const msgs = await streamEntries(`shipment:dhl:${s.trackingNumber}`)
    expect(msgs.map((m) => m.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
    await service.acks.flush()
    const [unpublished] = await db.sql`select count(*)::int as n from event_outbox where shipment_id = ${s.id}`
    expect(unpublished!.n).toBe(0)
  })
})

describe('group commit', () => {
  test('200 single-event calls at once share transactions: every event stored once, gap-free seq, each call its own outcome', async () => {
    const [a, b] = [await newShipment(), await newShipment()]
    const { bodies, outcomes, transactions } = await concurrentCalls(service, a, b)
    // Fewer transactions than calls: they were shared.
    expect(transactions).toBeLessThan(200)
    expect(outcomes.filter((r) => r.outcome === 'inserted').length).toBe(180)
    for (let i = 9; i < 200; i += 10) expect(outcomes[i]).toMatchObject({ outcome: 'duplicate', seq: outcomes[i - 1]!.seq, published: false })
    for (const s of [a, b]) {
      const mine = outcomes.filter((r, i) => r.outcome === 'inserted' && bodies[i]![0]!.trackingNumber === s.trackingNumber)
      expect(mine.map((r) => r.seq).sort((x, y) => x! - y!)).toEqual(mine.map((_, i) => i + 1))
      expect(mine.every((r) => r.published)).toBe(true)
      const rows = await db.sql<
        { seq: number; carrier_status: string }[]
      >`select seq, carrier_status from tracking_events where shipment_id = ${s.id} order by seq`
      const bySeq = [...mine].sort((x, y) => x.seq! - y.seq!)
      expect(rows.map((r) => r.carrier_status)).toEqual(bySeq.map((r) => r.dedupKey!.split(':')[2]!))
      const msgs = await streamEntries(`shipment:dhl:${s.trackingNumber}`)
      expect(msgs.map((m) => m.seq).sort((x, y) => x - y)).toEqual(mine.map((_, i) => i + 1))
    }
  })

  test("with one transaction at a time, a shipment's seq follows the order the calls were made in", async () => {
    const [a, b] = [await newShipment(), await newShipment()]
    const serial = testService({ DATABASE_URL: db.url, INGEST_CONCURRENCY: '1' })
    try {
      const { bodies, outcomes, transactions } = await concurrentCalls(serial, a, b)
      expect(transactions).toBeLessThan(200)
      for (const s of [a, b]) {
        const mine = outcomes.filter((r, i) => r.outcome === 'inserted' && bodies[i]![0]!.trackingNumber === s.trackingNumber)
        expect(mine.map((r) => r.seq)).toEqual(mine.map((_, i) => i + 1))
      }
    } finally {
      await serial.stop()
    }
  })

  test('a call refused because the queue is full stores nothing and is a 503 overloaded', async () => {
    const s = await newShipment()
    const small = testService({ DATABASE_URL: db.url, INGEST_CONCURRENCY: '1', INGEST_QUEUE_EVENTS: '1000' })
    try {
      const smallCall = api(small)
      // One call running (held on the shipment's row lock), 1,000 events waiting: the next call does not fit.
      const holder = await db.sql.reserve()
      await holder`begin`
      await holder`select 1 from shipments where id = ${s.id} for update`
      const running = small.processor.ingest([toNormalizedEvent(ev(s.trackingNumber, 'R0', '2026-11-02T00:00:00Z'))])
      const waiting = small.processor.ingest(
        Array.from({ length: 1000 }, (_, i) => toNormalizedEvent(ev(s.trackingNumber, `W${i}`, new Date(Date.UTC(2026, 10, 3) + i * 1000).toISOString())))
      )
      const refused = await smallCall('POST', '/v1/events', { events: [ev(s.trackingNumber, 'X1', '2026-11-04T00:00:00Z')] })
      await holder`commit`
      holder.release()
      expect(refused.status).toBe(503)
      expect(refused.body.error.code).toBe('overloaded')
      expect(refused.headers.get('retry-after')).toBe('1')
      await Promise.all([running, waiting])
      const [row] = await db.sql<{ n: number; x: number }[]>`
        select count(*)::int as n, count(*) filter (where carrier_status = 'X1')::int as x from tracking_events where shipment_id = ${s.id}`
      expect(row).toEqual({ n: 1001, x: 0 })
      // Once the queue has drained the same call goes through.
      expect((await smallCall('POST', '/v1/events', { events: [ev(s.trackingNumber, 'X1', '2026-11-04T00:00:00Z')] })).body.results[0].seq).toBe(1002)
    } finally {
      await small.stop()
    }
  })
})

describe('ingest connections', () => {
  test('ingest has connections of its own: with every shared connection taken, an event still commits at once', async () => {
    const s = await newShipment()
    // Every connection of the shared pool held (what thousands of sockets resubscribing at once,
    // each reading its snapshot, look like to the pool), and one more query waiting for them.
    const held = await Promise.all(Array.from({ length: service.config.DATABASE_POOL_SIZE }, () => service.sql.reserve()))
    const waiting = service.sql`select 1`
    try {
      const t0 = performance.now()
      const res = await Promise.race([
        call('POST', '/v1/events', { events: [ev(s.trackingNumber, 'P1', '2026-11-05T00:00:00Z')] }),
        Bun.sleep(2000).then(() => null)
      ])
      expect(res?.body.results[0]).toMatchObject({ outcome: 'inserted', seq: 1 })
      expect(performance.now() - t0).toBeLessThan(1000)
    } finally {
      for (const c of held) c.release()
    }
    await waiting
  })
})

/** 200 single-event calls at once, alternating two shipments; every tenth repeats the one before (a redelivered webhook). */
async function concurrentCalls(on: ReturnType<typeof testService>, a: { trackingNumber: string }, b: { trackingNumber: string }) {
  const t0 = Date.UTC(2026, 10, 2)
  const bodies = Array.from({ length: 200 }, (_, i) => {
    const k = i % 10 === 9 ? i - 1 : i
    return [ev((k % 2 ? b : a).trackingNumber, `C${k}`, new Date(t0 + k * 60_000).toISOString(), { description: `call ${i}` })]
  })
  const before = await callsPerTransaction(on)
  const results = await Promise.all(bodies.map((events) => on.processor.ingest(events.map((e) => toNormalizedEvent(e)))))
  const after = await callsPerTransaction(on)
  expect(after.calls - before.calls).toBe(200)
  return { bodies, outcomes: results.map((r) => r[0]!), transactions: after.transactions - before.transactions }
}

async function callsPerTransaction(on: ReturnType<typeof testService>) {
  const values = (await on.metrics.ingestCalls.get()).values
  return {
    calls: values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0,
    transactions: values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0
  }
}
