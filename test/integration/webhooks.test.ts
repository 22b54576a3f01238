/** Carrier pushes: signed with the carrier's secret, in the carrier's format, into the processor. */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { sign } from '../../src/carriers/webhooks.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, capturingLog, testService, waitFor } from '../support/service.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

const SECRET = 'dhl-webhook-secret-0123'
let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>
const GLS_SECRET = 'gls-webhook-secret-0123'
const captured = capturingLog()
beforeAll(async () => {
  db = await createTestDb()
  service = testService(
    { DATABASE_URL: db.url, DHL_WEBHOOK_SECRET: SECRET, DPD_WEBHOOK_SECRET: 'dpd-webhook-secret-0123', GLS_WEBHOOK_SECRET: GLS_SECRET, POLL_ENABLED: 'false' },
    { log: captured.log }
  )
  await service.start()
  call = api(service)
  for (const tn of ['HOOK1', 'HOOK2', 'HOOK3', 'HOOK4']) await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
  await call('POST', '/v1/shipments', { carrier: 'gls', trackingNumber: 'GLSHOOK1' })
  await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: '0190HOOK' })
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

const dhlPush = JSON.stringify({
  shipments: [
    {
      id: 'HOOK1',
      events: [
        {
          timestamp: '2026-11-20T10:00:00+01:00',
          statusCode: 'transit',
          status: 'Processed',
          description: 'Processed in parcel center',
          location: { address: { addressLocality: 'Leipzig', countryCode: 'DE' } }
        },
        { timestamp: '2026-11-20T08:00:00', statusCode: 'pre-transit', status: 'Announced' }
      ]
    }
  ]
})
const post = (carrier: string, body: string, signature?: string) =>
  call('POST', `/v1/webhooks/${carrier}`, body, { 'content-type': 'application/json', ...(signature ? { 'x-signature': signature } : {}), authorization: '' })

test('a signed DHL push is ingested; the same push again is all duplicates', async () => {
  const first = await post('dhl', dhlPush, sign(SECRET, dhlPush))
  expect(first.status).toBe(200)
  expect(first.body.results.map((r: any) => [r.outcome, r.seq])).toEqual([
    ['inserted', 1],
    ['inserted', 2]
  ])
  const again = await post('dhl', dhlPush, sign(SECRET, dhlPush))
  expect(again.body.results.map((r: any) => r.outcome)).toEqual(['duplicate', 'duplicate'])
  const s = (await call('GET', '/v1/shipments?carrier=dhl')).body.items.find((x: any) => x.trackingNumber === 'HOOK1')
  expect(s).toMatchObject({ trackingNumber: 'HOOK1', status: 'in_transit', lastEventAt: '2026-11-20T09:00:00.000Z' })
})

test('a wrong or missing signature is a 401; a tampered body too', async () => {
  expect((await post('dhl', dhlPush)).status).toBe(401)
  expect((await post('dhl', dhlPush, sign('another-secret-000000', dhlPush))).status).toBe(401)
  const tampered = dhlPush.replace('Leipzig', 'Berlin')
  const res = await post('dhl', tampered, sign(SECRET, dhlPush))
  expect(res.status).toBe(401)
  expect(res.body.error.code).toBe('invalid_signature')
})

test('a carrier without a secret is a 404; a signed body that is not the carrier’s format is a 400', async () => {
  expect((await post('myco', '{}', sign(SECRET, '{}'))).body.error).toEqual({
    code: 'webhook_not_configured',
    message: 'carrier "myco" has no adapter to read its pushes (GET /v1/carriers lists the known ones)'
  })
  // A push-only carrier is known, but its scans come through POST /v1/events: said so.
  expect((await call('PUT', '/v1/carriers/pushonly', { name: 'Push Only' })).status).toBe(201)
  const pushOnly = await post('pushonly', '{}', sign(SECRET, '{}'))
  expect(pushOnly.status).toBe(404)
  expect(pushOnly.body.error.message).toBe('carrier "pushonly" has no adapter to read its pushes: push its scans with POST /v1/events')
  const junk = '{"hello":"world"}'
  const res = await post('dhl', junk, sign(SECRET, junk))
  expect(res.status).toBe(400)
  expect(res.body.error).toMatchObject({ code: 'invalid_payload', field: 'body' })
})

test('a signed DPD push in the parcel life cycle format', async () => {
  const body = JSON.stringify({
    parcellifecycleResponse: {
      parcelLifeCycleData: {
        shipmentInfo: { parcelLabelNumber: '0190HOOK' },
        scanInfo: { scan: [{ date: '11/20/2026 2:43:31 PM', scanData: { scanType: { name: 'Courier' }, location: 'Hamburg' } }] }
      }
    }
  })
  const res = await post('dpd', body, sign('dpd-webhook-secret-0123', body))
  expect(res.body.results).toEqual([expect.objectContaining({ outcome: 'inserted', seq: 1, dedupKey: 'dpd:0190HOOK:Courier:2026-11-20T13:43:31.000Z' })])
})

/** Over the wire, the body's bytes exactly as given. */
const wire = (carrier: string, body: Uint8Array, signature: string) =>
  fetch(`http://127.0.0.1:${service.port}/v1/webhooks/${carrier}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signature': signature },
    body
  })
const metric = async (name: string) => service.metrics.registry.getSingleMetricAsString(name)

describe('the signature is over the raw bytes', () => {
  const scan = { timestamp: '2026-11-21T10:00:00+01:00', statusCode: 'transit', status: 'Processed', description: 'Bei Müller abgegeben' }
  test('a body with a UTF-8 BOM, signed over its bytes: read, the BOM dropped', async () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(JSON.stringify({ shipments: [{ id: 'HOOK2', events: [scan] }] }))])
    const res = await wire('dhl', bytes, sign(SECRET, bytes))
    expect(res.status).toBe(200)
    expect(((await res.json()) as any).results.map((r: any) => r.outcome)).toEqual(['inserted'])
  })

  test('a Latin-1 body, signed over its bytes: a 400 naming the body, logged, counted; never text with replacement characters', async () => {
    const text = JSON.stringify({ shipments: [{ id: 'HOOK2', events: [{ ...scan, timestamp: '2026-11-21T11:00:00+01:00' }] }] })
    const bytes = new Uint8Array(Buffer.from(text, 'latin1'))
    const refused = async () =>
      Number(/parcelcast_carrier_unreadable_pushes_total\{carrier="dhl"\} (\d+)/.exec(await metric('parcelcast_carrier_unreadable_pushes_total'))?.[1] ?? 0)
    const before = await refused()
    const res = await wire('dhl', bytes, sign(SECRET, bytes))
    expect(res.status).toBe(400)
    expect(((await res.json()) as any).error).toEqual({
      code: 'invalid_payload',
      field: 'body',
      message: 'the body is not UTF-8 text: send the payload encoded as UTF-8'
    })
    expect(await refused()).toBe(before + 1)
    // Signed over other bytes than were sent: still a 401.
    expect((await wire('dhl', bytes, sign(SECRET, text))).status).toBe(401)
  })
})

describe('a signed push that cannot be read is never a 200 with nothing', () => {
  test('DHL: a shipment whose events are not a list is a 400 naming it; logged once with a redacted sample, counted, and the carrier failing', async () => {
    const before = captured.lines.length
    const body = JSON.stringify({
      shipments: [{ id: 'HOOK3', events: { timestamp: '2026-11-20T10:00:00Z', statusCode: 'transit' }, receiver: { name: 'Jane Doe' } }]
    })
    const res = await post('dhl', body, sign(SECRET, body))
    expect(res.status).toBe(400)
    expect(res.body.error).toMatchObject({
      code: 'invalid_payload',
      field: 'body',
      message: expect.stringMatching(/^HOOK3: DHL response has an unexpected shape at shipments\.0\.events/)
    })
    const lines = captured.lines.slice(before).filter((l) => l.component === 'webhooks' && l.level === 50)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ carrier: 'dhl', trackingNumber: 'HOOK3', sample: { id: 'HOOK3', receiver: '[redacted]' } })
    expect(await metric('parcelcast_carrier_shipment_errors_total')).toContain('parcelcast_carrier_shipment_errors_total{carrier="dhl",source="push"} 1')
    // Health is over the last five samples: the same push four more times (a carrier retrying it) fills them.
    for (let i = 0; i < 4; i++) expect((await post('dhl', body, sign(SECRET, body))).status).toBe(400)
    expect((await call('GET', '/readyz')).body.carriers.dhl).toMatch(/^failing: 5 of 5 shipments answered with an error \(DHL response has an unexpected shape/)
    // A push that reads makes DHL ok again.
    expect((await post('dhl', dhlPush, sign(SECRET, dhlPush))).status).toBe(200)
    expect((await call('GET', '/readyz')).body.carriers.dhl).toBe('ok')
  })

  test('one shipment readable, one not: the readable one is stored, the other listed as unreadable', async () => {
    const body = JSON.stringify({
      shipments: [
        { id: 'HOOK4', events: [{ timestamp: '2026-11-20T12:00:00Z', statusCode: 'transit' }] },
        { id: 'HOOK3', events: 'soon' }
      ]
    })
    const res = await post('dhl', body, sign(SECRET, body))
    expect(res.status).toBe(200)
    expect(res.body.results.map((r: any) => r.outcome)).toEqual(['inserted'])
    expect(res.body.unreadable).toEqual([{ trackingNumber: 'HOOK3', message: expect.stringContaining('unexpected shape') }])
  })

  test('a push naming no shipment is a 400 saying so', async () => {
    const body = JSON.stringify({ shipments: [] })
    const res = await post('dhl', body, sign(SECRET, body))
    expect(res.status).toBe(400)
    expect(res.body.error).toMatchObject({ code: 'invalid_payload', message: 'the push names no shipment' })
  })

  test('GLS: a push naming one parcel twice stores the scans of both entries', async () => {
    const ev = (minute: number) => ({
      code: 'INTRANSIT',
      eventDateTime: `2026-11-20T10:${String(minute).padStart(2, '0')}:00+0100`,
      city: 'Neuenstein',
      country: 'DE'
    })
    const body = JSON.stringify({ parcels: [{ requested: 'GLSHOOK1', events: [ev(1), ev(2)] }, { requested: 'GLSHOOK1' }] })
    const res = await post('gls', body, sign(GLS_SECRET, body))
    expect(res.status).toBe(200)
    expect(res.body.results.map((r: any) => r.outcome)).toEqual(['inserted', 'inserted'])
  })
})

describe('HTTP metrics', () => {
  test('every answer is recorded with the status that went out: a Response from a route, an error, the 401 before routing', async () => {
    const count = async (route: string, status: number) =>
      Number(
        new RegExp(
          `parcelcast_http_request_seconds_count\\{method="[A-Z]+",route="${route.replace(/[/:]/g, (c) => `\\${c}`)}",status="${status}"\\} (\\d+)`
        ).exec(await metric('parcelcast_http_request_seconds'))?.[1] ?? 0
      )
    const unsigned = await count('/v1/webhooks/:carrier', 401)
    const unrouted = await count('unrouted', 401)
    const missing = await count('unmatched', 404)
    expect((await post('dhl', dhlPush)).status).toBe(401)
    expect((await call('GET', '/v1/shipments', undefined, { authorization: '' })).status).toBe(401)
    expect((await call('GET', '/no/such/route')).status).toBe(404)
    // Recorded once the answer has gone out: a moment after the client has it.
    await waitFor('the webhook 401 recorded', async () => (await count('/v1/webhooks/:carrier', 401)) === unsigned + 1, 2000)
    await waitFor('the 401 before routing recorded', async () => (await count('unrouted', 401)) === unrouted + 1, 2000)
    await waitFor('the 404 recorded', async () => (await count('unmatched', 404)) === missing + 1, 2000)
  })
})
