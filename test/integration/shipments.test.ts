/** The shipments API: idempotent create, keyset pagination, soft delete, timeline, errors. */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService } from '../support/service.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>

beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url })
  call = api(service)
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

describe('create', () => {
  test('201 for a new shipment, 200 for the same one however it is spelled', async () => {
    const a = await call('POST', '/v1/shipments', { carrier: 'DHL', trackingNumber: ' 0034 0434 1610 ', reference: 'order-1' })
    expect(a.status).toBe(201)
    expect(a.body).toMatchObject({
      carrier: 'dhl',
      trackingNumber: '003404341610',
      reference: 'order-1',
      status: 'pending',
      lastSeq: 0,
      lastEventAt: null,
      deletedAt: null
    })
    expect(a.body.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    const b = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: '003404341610' })
    expect(b.status).toBe(200)
    expect(b.body.id).toBe(a.body.id)
    expect(b.body.reference).toBe('order-1')
  })

  test('bad input is a 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ trackingNumber: 'X1' }, 'carrier'],
      [{ carrier: 'dhl' }, 'trackingNumber'],
      [{ carrier: 'dhl', trackingNumber: 42 }, 'trackingNumber'],
      [{ carrier: 'dhl', trackingNumber: 'a:b' }, 'trackingNumber'],
      [{ carrier: '!', trackingNumber: 'X1' }, 'carrier'],
      [{ carrier: 'dhl', trackingNumber: 'X1', reference: 'r'.repeat(201) }, 'reference']
    ]
    for (const [body, field] of cases) {
      const res = await call('POST', '/v1/shipments', body)
      expect(res.status).toBe(400)
      expect(res.body.error).toMatchObject({ code: 'validation_failed', field })
      expect(res.body.error.message).toStartWith(`${field}:`)
    }
    expect((await call('POST', '/v1/shipments', '{"carrier":')).body.error.code).toBe('invalid_body')
    expect((await call('POST', '/v1/shipments', '[1,2]')).status).toBe(400)
  })
})

describe('list', () => {
  test('2,000 shipments created in one statement, limit=7: every one exactly once, newest first', async () => {
    await db.sql`
      insert into shipments (carrier, tracking_number)
      select 'gls', 'PAGE' || lpad(g::text, 6, '0') from generate_series(1, 2000) g`
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const res: { status: number; body: any } = await call('GET', `/v1/shipments?carrier=gls&limit=7${cursor ? `&cursor=${cursor}` : ''}`)
      expect(res.status).toBe(200)
      expect(res.body.items.length).toBeLessThanOrEqual(7)
      seen.push(...res.body.items.map((s: any) => s.id))
      cursor = res.body.nextCursor
      pages++
    } while (cursor && pages < 1000)
    expect(seen.length).toBe(2000)
    expect(new Set(seen).size).toBe(2000)
    expect(pages).toBe(Math.ceil(2000 / 7))
  })

  test('newest first across distinct instants; filters by status and carrier', async () => {
    const first = await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: 'ORDER1' })
    const second = await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: 'ORDER2' })
    await call('POST', '/v1/events', {
      events: [{ carrier: 'dpd', trackingNumber: 'ORDER1', carrierStatus: 'Delivered', status: 'delivered', occurredAt: '2026-11-20T08:00:00Z' }]
    })
    const all = await call('GET', '/v1/shipments?carrier=DPD')
    expect(all.body.items.map((s: any) => s.id)).toEqual([second.body.id, first.body.id])
    expect((await call('GET', '/v1/shipments?carrier=dpd&status=&limit=&cursor=')).body.items.length).toBe(2)
    const delivered = await call('GET', '/v1/shipments?carrier=dpd&status=delivered')
    expect(delivered.body.items.map((s: any) => s.id)).toEqual([first.body.id])
  })

  test('bad query values are 400s naming the parameter', async () => {
    for (const [q, field] of [
      ['status=lost', 'status'],
      ['limit=0', 'limit'],
      ['limit=201', 'limit'],
      ['limit=abc', 'limit'],
      ['cursor=nonsense', 'cursor'],
      ['carrier=%21', 'carrier']
    ]) {
      const res = await call('GET', `/v1/shipments?${q}`)
      expect(res.status).toBe(400)
      expect(res.body.error.field).toBe(field)
    }
  })
})

describe('get, delete, timeline', () => {
  test('unknown or malformed ids are 404s', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-an-id']) {
      expect((await call('GET', `/v1/shipments/${id}`)).status).toBe(404)
      expect((await call('GET', `/v1/shipments/${id}/events`)).status).toBe(404)
      const del = await call('DELETE', `/v1/shipments/${id}`)
      expect(del.status).toBe(404)
      expect(del.body.error.code).toBe('not_found')
    }
  })

  test('soft delete hides the shipment from the list, keeps its history, and creating it again restores it', async () => {
    const s = (await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'DEL1' })).body
    await call('POST', '/v1/events', { events: [{ carrier: 'dhl', trackingNumber: 'DEL1', carrierStatus: 'PU', occurredAt: '2026-11-20T08:00:00Z' }] })
    const del = await call('DELETE', `/v1/shipments/${s.id}`)
    expect(del.status).toBe(200)
    expect(del.body.deletedAt).not.toBeNull()
    expect((await call('DELETE', `/v1/shipments/${s.id}`)).body.deletedAt).toBe(del.body.deletedAt)
    expect((await call('GET', '/v1/shipments?carrier=dhl')).body.items.some((x: any) => x.id === s.id)).toBe(false)
    expect((await call('GET', `/v1/shipments/${s.id}`)).body).toMatchObject({ lastSeq: 1, deletedAt: del.body.deletedAt })
    expect((await call('GET', `/v1/shipments/${s.id}/events`)).body.items.length).toBe(1)
    const again = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'DEL1' })
    expect(again.status).toBe(200)
    expect(again.body).toMatchObject({ id: s.id, deletedAt: null, lastSeq: 1 })
  })

  test('the timeline pages by seq with after and limit', async () => {
    const s = (await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'TIME1' })).body
    const events = Array.from({ length: 5 }, (_, i) => ({
      carrier: 'dhl',
      trackingNumber: 'TIME1',
      carrierStatus: `S${i}`,
      occurredAt: `2026-11-20T08:0${i}:00.123456Z`
    }))
    await call('POST', '/v1/events', { events })
    const page1 = await call('GET', `/v1/shipments/${s.id}/events?limit=2`)
    expect(page1.body.items.map((e: any) => e.seq)).toEqual([1, 2])
    expect(page1.body.nextAfter).toBe(2)
    expect(page1.body.items[0]).toMatchObject({
      carrierStatus: 'S0',
      status: 'unknown',
      occurredAt: '2026-11-20T08:00:00.123Z',
      dedupKey: 'dhl:TIME1:S0:2026-11-20T08:00:00.123Z'
    })
    const page2 = await call('GET', `/v1/shipments/${s.id}/events?after=2&limit=10`)
    expect(page2.body.items.map((e: any) => e.seq)).toEqual([3, 4, 5])
    expect(page2.body.nextAfter).toBeNull()
    expect((await call('GET', `/v1/shipments/${s.id}/events?after=-1`)).status).toBe(400)
  })
})

describe('the edge', () => {
  test('every /v1 route needs a valid API key', async () => {
    for (const [method, path] of [
      ['GET', '/v1/shipments'],
      ['POST', '/v1/shipments'],
      ['POST', '/v1/events'],
      ['GET', '/v1/shipments/x']
    ]) {
      const none = await call(method!, path!, undefined, { authorization: '' })
      expect(none.status).toBe(401)
      expect(none.body.error.code).toBe('unauthorized')
      expect((await call(method!, path!, undefined, { authorization: 'Bearer wrong-key-000000' })).status).toBe(401)
    }
  })

  test('an empty or oversized batch, or no events field, is a 400 naming events', async () => {
    for (const body of [{}, { events: [] }, { events: 'x' }, { events: Array(1001).fill({}) }]) {
      const res = await call('POST', '/v1/events', body)
      expect(res.status).toBe(400)
      expect(res.body.error.field).toBe('events')
    }
  })

  test('a batch in which no event is valid is a 400 naming the first bad field', async () => {
    const res = await call('POST', '/v1/events', { events: [{ carrier: 'dhl', trackingNumber: 'X1', carrierStatus: 'PU' }] })
    expect(res.status).toBe(400)
    expect(res.body.error).toMatchObject({ code: 'validation_failed', field: 'events[0].occurredAt' })
  })

  test('health, readiness, metrics and the OpenAPI document need no key', async () => {
    expect((await call('GET', '/healthz', undefined, { authorization: '' })).body).toEqual({ status: 'ok' })
    const ready = await call('GET', '/readyz', undefined, { authorization: '' })
    expect(ready.body.db).toBe('up')
    const metrics = await call('GET', '/metrics', undefined, { authorization: '' })
    expect(metrics.status).toBe(200)
    expect(metrics.body).toContain('parcelcast_events_ingested_total')
    const doc = await call('GET', '/openapi', undefined, { authorization: '' })
    expect(doc.body.openapi).toStartWith('3.')
    expect(Object.keys(doc.body.paths)).toContain('/v1/shipments/{id}/events')
  })

  test('an unknown route is a 404 in the error shape', async () => {
    const res = await call('GET', '/v1/nothing-here')
    expect(res.status).toBe(404)
    expect(res.body.error.code).toBe('not_found')
  })
})
