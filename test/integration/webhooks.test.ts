/** Carrier pushes: signed with the carrier's secret, in the carrier's format, into the processor. */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from 'bun:test'
import { sign } from '../../src/carriers/webhooks.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService } from '../support/service.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

const SECRET = 'dhl-webhook-secret-0123'
let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>
beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url, DHL_WEBHOOK_SECRET: SECRET, DPD_WEBHOOK_SECRET: 'dpd-webhook-secret-0123' })
  call = api(service)
  await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'HOOK1' })
  await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: '0190HOOK' })
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

const dhlPush = JSON.stringify({
  shipments: [{ id: 'HOOK1', events: [
    { timestamp: '2026-11-20T10:00:00+01:00', statusCode: 'transit', status: 'Processed', description: 'Processed in parcel center', location: { address: { addressLocality: 'Leipzig', countryCode: 'DE' } } },
    { timestamp: '2026-11-20T08:00:00', statusCode: 'pre-transit', status: 'Announced' }
  ] }]
})
const post = (carrier: string, body: string, signature?: string) => call('POST', `/v1/webhooks/${carrier}`, body, { 'content-type': 'application/json', ...(signature ? { 'x-signature': signature } : {}), authorization: '' })

test('a signed DHL push is ingested; the same push again is all duplicates', async () => {
  const first = await post('dhl', dhlPush, sign(SECRET, dhlPush))
  expect(first.status).toBe(200)
  expect(first.body.results.map((r: any) => [r.outcome, r.seq])).toEqual([['inserted', 1], ['inserted', 2]])
  const again = await post('dhl', dhlPush, sign(SECRET, dhlPush))
  expect(again.body.results.map((r: any) => r.outcome)).toEqual(['duplicate', 'duplicate'])
  const s = (await call('GET', '/v1/shipments?carrier=dhl')).body.items[0]
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
  expect((await post('gls', '{}', sign(SECRET, '{}'))).body.error.code).toBe('webhook_not_configured')
  const junk = '{"hello":"world"}'
  const res = await post('dhl', junk, sign(SECRET, junk))
  expect(res.status).toBe(400)
  expect(res.body.error).toMatchObject({ code: 'invalid_payload', field: 'body' })
})

test('a signed DPD push in the parcel life cycle format', async () => {
  const body = JSON.stringify({ parcellifecycleResponse: { parcelLifeCycleData: { shipmentInfo: { parcelLabelNumber: '0190HOOK' }, scanInfo: { scan: [{ date: '11/20/2026 2:43:31 PM', scanData: { scanType: { name: 'Courier' }, location: 'Hamburg' } }] } } } })
  const res = await post('dpd', body, sign('dpd-webhook-secret-0123', body))
  expect(res.body.results).toEqual([expect.objectContaining({ outcome: 'inserted', seq: 1, dedupKey: 'dpd:0190HOOK:Courier:2026-11-20T13:43:31.000Z' })])
})
