/**
 * Known carriers only (contract §4), the carrier list and push-only registration, and one reading
 * of a carrier for pushes and polls: the same DPD scan pushed and polled is stored once.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createCarrierClient } from '../../src/carriers/clients.ts'
import { createPoller } from '../../src/carriers/poller.ts'
import { createCarrierSimulator } from '../../src/carriers/simulator.ts'
import { sign } from '../../src/carriers/webhooks.ts'
import { createTestDb, silentLog, type TestDb } from '../support/db.ts'
import { api, testService } from '../support/service.ts'

setDefaultTimeout(30_000)

const DPD_SECRET = 'dpd-webhook-secret-0123'
let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>
const sim = createCarrierSimulator({ stepMs: 0 })
beforeAll(async () => {
  db = await createTestDb()
  // London, an hour behind Berlin: a push read in the wrong zone would be a second fact.
  service = testService({ DATABASE_URL: db.url, DPD_BASE_URL: `${sim.url}/dpd`, DPD_LOCALE: 'en_GB', DPD_WEBHOOK_SECRET: DPD_SECRET, POLL_ENABLED: 'false' })
  call = api(service)
})
afterAll(async () => {
  sim.stop()
  await service.stop()
  await db.drop()
})

describe('known carriers only', () => {
  test('a carrier with no adapter and no config is a 422 naming carrier and listing the known ones; nothing is created', async () => {
    const res = await call('POST', '/v1/shipments', { carrier: 'fedexx', trackingNumber: 'X1' })
    expect(res.status).toBe(422)
    expect(res.body.error).toEqual({
      code: 'unknown_carrier',
      field: 'carrier',
      message: expect.stringContaining('"fedexx" is not a known carrier; known: dhl, dpd, gls')
    })
    const [{ n }] = await db.sql<[{ n: number }]>`select count(*)::int as n from shipments where carrier = 'fedexx'`
    expect(n).toBe(0)
    expect((await call('POST', '/v1/shipments', { carrier: 'DPD', trackingNumber: 'known1' })).status).toBe(201)
  })

  test('PUT /v1/carriers/:code registers a push-only carrier: shipments may be created, events pushed through /v1/events; it is listed', async () => {
    const put = await call('PUT', '/v1/carriers/MyCo', { name: 'My Courier' })
    expect(put.status).toBe(201)
    expect(put.body).toEqual({ code: 'myco', name: 'My Courier', form: 'push', polling: false, health: 'ok' })
    expect((await call('PUT', '/v1/carriers/myco', { name: 'My Courier GmbH' })).status).toBe(200)
    const created = await call('POST', '/v1/shipments', { carrier: 'myco', trackingNumber: 'M1' })
    expect(created.status).toBe(201)
    const ev = await call('POST', '/v1/events', {
      events: [{ carrier: 'myco', trackingNumber: 'M1', carrierStatus: 'delivered', occurredAt: '2026-11-20T10:00:00Z' }]
    })
    expect(ev.body.results[0]).toMatchObject({ outcome: 'inserted', seq: 1 })
    const list = await call('GET', '/v1/carriers')
    expect(list.status).toBe(200)
    expect(list.body.items).toEqual([
      { code: 'dhl', name: 'DHL', form: 'json', polling: false, health: 'ok' },
      { code: 'dpd', name: 'DPD', form: 'json', polling: false, health: 'ok' },
      { code: 'gls', name: 'GLS', form: 'json', polling: false, health: 'ok' },
      { code: 'myco', name: 'My Courier GmbH', form: 'push', polling: false, health: 'ok' }
    ])
    // A push-only carrier has no adapter: its webhook is not a thing.
    expect((await call('POST', '/v1/webhooks/myco', '{}', { 'x-signature': sign(DPD_SECRET, '{}'), authorization: '' })).status).toBe(404)
  })

  test('bad codes and names are 400s naming the field; the carrier routes need the API key', async () => {
    expect((await call('PUT', '/v1/carriers/!x', { name: 'X' })).body.error).toMatchObject({ code: 'validation_failed', field: 'code' })
    expect((await call('PUT', '/v1/carriers/okay', { name: '' })).body.error).toMatchObject({ field: 'name' })
    expect((await call('PUT', '/v1/carriers/okay', {})).status).toBe(400)
    expect((await call('GET', '/v1/carriers', undefined, { authorization: '' })).status).toBe(401)
  })
})

describe('one reading of a carrier for pushes and polls', () => {
  test('the same DPD scans pushed and polled are stored once (the push is read with DPD_LOCALE too)', async () => {
    const tn = '0190PUSHPOLL1'
    await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: tn })
    await db.sql`update shipments set next_poll_at = now() + interval '1 day' where tracking_number <> ${tn}`
    // A journey under way (so the shipment is still polled after the push), with a wall time
    // an hour apart between Berlin and London.
    const at = (iso: string) => Date.parse(iso)
    sim.script('dpd', tn, {
      scans: [
        { code: 'PickedUp', text: 'Picked up by DPD.', place: 'London', depot: '1550', at: at('2026-10-23T16:12:04Z') },
        { code: 'BetweenDepots', text: 'In transit.', place: 'London', depot: '1550', at: at('2026-10-23T21:58:00Z') },
        { code: 'Depot', text: 'At parcel delivery centre.', place: 'Leeds', depot: '1560', at: at('2026-10-25T01:30:00Z') }
      ]
    })
    // DPD pushes what its tracking answers: the simulator's own answer for this parcel.
    const body = await (await fetch(`${sim.url}/dpd/rest/plc/en_GB/${tn}`)).text()
    const pushed = await call('POST', '/v1/webhooks/dpd', body, {
      'content-type': 'application/json',
      'x-signature': sign(DPD_SECRET, body),
      authorization: ''
    })
    expect(pushed.status).toBe(200)
    expect(pushed.body.results.map((r: any) => r.outcome)).toEqual(['inserted', 'inserted', 'inserted'])
    expect(pushed.body.results[0].dedupKey).toBe(`dpd:${tn}:PickedUp:2026-10-23T16:12:04.000Z`)
    const setup = (await service.carriers.setups()).find((s) => s.carrier === 'dpd')!
    expect(setup.client.locale).toBe('en_GB')
    const poller = createPoller({
      sql: service.sql,
      processor: service.processor,
      client: createCarrierClient('dpd', setup.client)!,
      settings: { ...setup.poll, ratePerSec: 100 },
      log: silentLog,
      metrics: service.metrics
    })
    expect(await poller.runOnce()).toMatchObject({ status: 'ok', polled: 1, inserted: 0, duplicates: 3 })
    const [{ n }] = await db.sql<
      [{ n: number }]
    >`select count(*)::int as n from tracking_events e join shipments s on s.id = e.shipment_id where s.tracking_number = ${tn}`
    expect(n).toBe(3)
  })

  test('a push whose scans are all unreadable is a 400 naming the field, and counted; a partly readable one stores the rest', async () => {
    const tn = '0190PUSHBAD1'
    await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: tn })
    const push = (scans: unknown[]) =>
      JSON.stringify({ parcellifecycleResponse: { parcelLifeCycleData: { shipmentInfo: { parcelLabelNumber: tn }, scanInfo: { scan: scans } } } })
    const bad = push([
      { date: '19/01/2026 17:42', scanData: { scanType: { name: 'Depot' } } },
      { date: 'soon', scanData: { scanType: { name: 'Courier' } } }
    ])
    const res = await call('POST', '/v1/webhooks/dpd', bad, { 'content-type': 'application/json', 'x-signature': sign(DPD_SECRET, bad), authorization: '' })
    expect(res.status).toBe(400)
    expect(res.body.error).toEqual({
      code: 'validation_failed',
      field: 'scan[0].date',
      message: expect.stringContaining('scan[0].date: "19/01/2026 17:42" is not a DPD date')
    })
    expect(await service.metrics.registry.getSingleMetricAsString('parcelcast_carrier_rejected_scans_total')).toContain(
      'parcelcast_carrier_rejected_scans_total{carrier="dpd",field="date"} 2'
    )
    const mixed = push([
      { date: 'soon', scanData: { scanType: { name: 'Depot' } } },
      { date: '2026-01-19T17:42:00', scanData: { scanType: { name: 'Courier' } } }
    ])
    const ok = await call('POST', '/v1/webhooks/dpd', mixed, { 'content-type': 'application/json', 'x-signature': sign(DPD_SECRET, mixed), authorization: '' })
    expect(ok.status).toBe(200)
    expect(ok.body.results.map((r: any) => [r.outcome, r.error?.field ?? null])).toEqual([
      ['invalid', 'scan[0].date'],
      ['inserted', null]
    ])
  })
})
