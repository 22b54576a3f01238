/**
 * The carrier's delivery estimate on the shipment: from DHL's time frame (and its time of
 * delivery alone), kept from the newest answer that states one, in REST, in the WebSocket
 * snapshot and in the event frames' shipment — also on the stream, so other processes' sockets
 * get it. DPD and GLS state none (see their adapters), so theirs stay null.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from 'bun:test'
import { createCarrierSimulator } from '../../src/carriers/simulator.ts'
import { sign } from '../../src/carriers/webhooks.ts'
import { createDeliveryQueries } from '../../src/delivery/queries.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { readStream } from '../support/redis.ts'
import { api, testService, waitFor } from '../support/service.ts'
import { connect } from '../support/ws.ts'

setDefaultTimeout(30_000)

const SECRET = 'dhl-webhook-secret-0123'
const TN = 'ETA00000001'
const at = (iso: string) => Date.parse(iso)
let db: TestDb
const sim = createCarrierSimulator({ stepMs: 700 })
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>
beforeAll(async () => {
  db = await createTestDb()
  service = testService({
    DATABASE_URL: db.url,
    DHL_BASE_URL: `${sim.url}/dhl`,
    DHL_API_KEY: 'sim-dhl-key',
    DHL_WEBHOOK_SECRET: SECRET,
    POLL_INTERVAL_MS: '100'
  })
  // Oldest first: the simulator shows one more scan every stepMs.
  sim.script('dhl', TN, {
    estimate: { from: at('2026-11-24T09:00:00Z'), through: at('2026-11-24T13:00:00Z') },
    scans: [
      {
        code: 'pre-transit',
        label: 'Electronic notification',
        text: 'The instruction data for this shipment have been provided by the sender',
        at: at('2026-11-22T08:00:00Z')
      },
      { code: 'transit', label: 'Picked up', text: 'The shipment has been picked up', place: 'Leipzig', country: 'DE', at: at('2026-11-22T15:00:00Z') },
      {
        code: 'transit',
        label: 'Processed',
        text: 'The shipment has been processed in the parcel center',
        place: 'Börnicke',
        country: 'DE',
        at: at('2026-11-23T21:00:00Z')
      }
    ]
  })
  await service.start()
  call = api(service)
})
afterAll(async () => {
  await service.stop()
  sim.stop()
  await db.drop()
})

const frame = { from: '2026-11-24T09:00:00.000Z', to: '2026-11-24T13:00:00.000Z' }

test('DHL’s time frame shows in REST, in the snapshot and in the event frames (and on the stream)', async () => {
  const id = (await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: TN })).body.id
  const topic = `shipment:dhl:${TN}`
  await waitFor('the first scan', async () => (await call('GET', `/v1/shipments/${id}`)).body.lastSeq >= 1)
  expect((await call('GET', `/v1/shipments/${id}`)).body.expectedDelivery).toEqual(frame)
  const token = (await call('POST', '/v1/tokens', { topics: [topic] })).body.token
  const ws = await connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${token}`)
  try {
    ws.send({ op: 'subscribe', topic })
    const snapshot = await ws.until((m) => m.type === 'snapshot')
    expect(snapshot.shipment.expectedDelivery).toEqual(frame)
    const event = await ws.until((m) => m.type === 'event', 10_000)
    expect(event.shipment).toMatchObject({ status: 'in_transit', expectedDelivery: frame })
  } finally {
    ws.close()
  }
  await waitFor('the whole journey', async () => (await call('GET', `/v1/shipments/${id}`)).body.lastSeq === 3)
  const entries = (await readStream(service.engine)).filter((e) => e.topic === topic)
  expect(entries.length).toBeGreaterThan(0)
  for (const e of entries) expect((e.data.shipment as any).expectedDelivery).toEqual(frame)
  // Gap fills and resumes read the frames back from PostgreSQL: the same shipment object.
  const filled = await createDeliveryQueries(service.sql).events(id, topic, 0, 3, 10)
  expect(filled.map((m) => m.shipment.expectedDelivery)).toEqual([frame, frame, frame])
  expect(filled.map((m) => m.shipment.lastEventAt)).toEqual(['2026-11-22T08:00:00.000Z', '2026-11-22T15:00:00.000Z', '2026-11-23T21:00:00.000Z'])
  // The outbox relay (events committed while Redis was away) sends the same shipment object.
  const before = (await readStream(service.engine)).length
  await db.sql`insert into event_outbox (shipment_id, seq) values (${id}, 3) on conflict do nothing`
  await db.sql`update tracking_events set received_at = received_at - interval '1 hour' where shipment_id = ${id} and seq = 3`
  expect(await service.relay.runOnce()).toMatchObject({ status: 'ok', published: 1 })
  const relayed = (await readStream(service.engine)).slice(before)
  expect(relayed.map((e) => [e.topic, e.seq, (e.data.shipment as any).expectedDelivery])).toEqual([[topic, 3, frame]])
})

test('only a newer answer moves it: a late push with an older newest scan does not; a push with a newer scan does', async () => {
  const id = (await call('GET', `/v1/shipments?carrier=dhl`)).body.items.find((s: any) => s.trackingNumber === TN).id
  const push = async (timestamp: string, estimatedTimeOfDelivery: string, frame?: { estimatedFrom: string; estimatedThrough: string }) => {
    const body = JSON.stringify({
      shipments: [
        {
          id: TN,
          estimatedTimeOfDelivery,
          ...(frame ? { estimatedDeliveryTimeFrame: frame } : {}),
          events: [{ timestamp, statusCode: 'transit', status: 'Processed', description: 'Processed' }]
        }
      ]
    })
    const res = await call('POST', '/v1/webhooks/dhl', body, { 'content-type': 'application/json', 'x-signature': sign(SECRET, body), authorization: '' })
    expect(res.status).toBe(200)
  }
  // Older than the newest scan already seen (2026-11-23T21:00Z): ignored.
  await push('2026-11-22T10:00:00Z', '2026-11-30T18:00:00Z')
  expect((await call('GET', `/v1/shipments/${id}`)).body.expectedDelivery).toEqual(frame)
  // Newer: DHL's time of delivery alone is the end of the window, with no start.
  await push('2026-11-24T07:00:00Z', '2026-11-25T18:00:00+01:00')
  expect((await call('GET', `/v1/shipments/${id}`)).body.expectedDelivery).toEqual({ from: null, to: '2026-11-25T17:00:00.000Z' })
})

test('the list shows both fields too: null when there is no estimate and no poll error', async () => {
  await db.sql`insert into shipments (carrier, tracking_number) values ('dpd', 'NOETA1')`
  const s = (await call('GET', '/v1/shipments?carrier=dpd')).body.items[0]
  expect(s).toMatchObject({ trackingNumber: 'NOETA1', expectedDelivery: null, lastPollError: null })
})
