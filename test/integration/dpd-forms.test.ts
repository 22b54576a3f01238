/**
 * DPD in each of its forms, end to end: the service polls the simulator answering in the
 * documented shape, every scan is stored once at the right instant; then DPD changes its date
 * format overnight (the simulator's `unreadable` shape): within a few poll cycles /readyz is
 * degraded naming DPD, the rejected-scans counter rises, the shipments show lastPollError, and
 * nothing is stored wrongly; once DPD reads again, everything catches up and DPD is ok.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createCarrierSimulator, type CarrierSimulator } from '../../src/carriers/simulator.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService, waitFor } from '../support/service.ts'

setDefaultTimeout(60_000)

let db: TestDb
beforeAll(async () => {
  db = await createTestDb()
})
afterAll(async () => {
  await db.drop()
})

const rejectedCount = async (service: ReturnType<typeof testService>) => {
  const text = await service.metrics.registry.getSingleMetricAsString('parcelcast_carrier_rejected_scans_total')
  return Number(/parcelcast_carrier_rejected_scans_total\{carrier="dpd",field="date"\} (\d+)/.exec(text)?.[1] ?? 0)
}

describe.each(['json', 'soap'] as const)('DPD_FORM=%s', (form) => {
  let sim: CarrierSimulator
  let service: ReturnType<typeof testService>
  let call: ReturnType<typeof api>
  beforeAll(async () => {
    sim = createCarrierSimulator({ stepMs: 0 })
    service = testService({
      DATABASE_URL: db.url,
      DPD_BASE_URL: `${sim.url}/dpd`,
      DPD_FORM: form,
      DPD_LOCALE: 'de_DE',
      DPD_DELIS_ID: sim.options.dpdDelisId,
      DPD_PASSWORD: sim.options.dpdPassword,
      POLL_INTERVAL_MS: '100'
    })
    await service.start()
    call = api(service)
  })
  afterAll(async () => {
    await service.stop()
    sim.stop()
  })

  test('every scan stored once at the right instant', async () => {
    const tns = [1, 2, 3].map((i) => `${form.toUpperCase()}OK${i}`)
    const ids: string[] = []
    for (const tn of tns) ids.push((await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: tn })).body.id)
    await waitFor(
      'every journey stored',
      async () => {
        for (const id of ids) if ((await call('GET', `/v1/shipments/${id}`)).body.lastSeq < 5) return false
        return true
      },
      20_000
    )
    for (const [i, id] of ids.entries()) {
      const s = (await call('GET', `/v1/shipments/${id}`)).body
      expect(s).toMatchObject({ status: 'delivered', carrierStatus: 'Delivered', lastSeq: 5, lastPollError: null, expectedDelivery: null })
      const events = (await call('GET', `/v1/shipments/${id}/events`)).body.items
      const expected = sim
        .scans('dpd', tns[i]!)
        .map((x) => new Date(x.at).toISOString())
        .sort()
      expect(events.map((e: any) => e.occurredAt).sort()).toEqual(expected)
      expect(new Set(events.map((e: any) => e.dedupKey)).size).toBe(5)
    }
    expect((await call('GET', '/readyz')).body).toMatchObject({ status: 'ready', carriers: { dpd: 'ok' } })
    expect((await call('GET', '/v1/carriers')).body.items.find((c: any) => c.code === 'dpd')).toEqual({
      code: 'dpd',
      name: 'DPD',
      form,
      polling: true,
      health: 'ok'
    })
  })

  test('DPD changes its date format: degraded naming DPD within a few cycles, counted, lastPollError shown, nothing stored; ok again once it reads', async () => {
    const before = await rejectedCount(service)
    const [{ n: eventsBefore }] = await db.sql<[{ n: number }]>`select count(*)::int as n from tracking_events`
    sim.setShape('dpd', 'unreadable')
    const ids: string[] = []
    for (const tn of [`${form.toUpperCase()}BAD1`, `${form.toUpperCase()}BAD2`])
      ids.push((await call('POST', '/v1/shipments', { carrier: 'dpd', trackingNumber: tn })).body.id)
    const ready = await waitFor(
      'readyz degraded naming dpd',
      async () => {
        const r = await call('GET', '/readyz')
        return r.body.status === 'degraded' && String(r.body.carriers.dpd).startsWith('failing') && r
      },
      20_000
    )
    expect(ready.status).toBe(200)
    expect(ready.body.carriers.dpd).toMatch(/^failing: \d+ of \d+ scans rejected \(date\)$/)
    expect(ready.body.carriers.dhl).toBe('ok')
    expect(await rejectedCount(service)).toBeGreaterThan(before)
    for (const id of ids) {
      const s = (await call('GET', `/v1/shipments/${id}`)).body
      expect(s).toMatchObject({ status: 'pending', lastSeq: 0 })
      expect(s.lastPollError).toEqual({
        at: expect.stringMatching(/Z$/),
        message: expect.stringMatching(/^5 of 5 scans rejected: (scan|statusInfo)\[0\]\.date: .* is not a DPD date/)
      })
    }
    const [{ n: eventsDuring }] = await db.sql<[{ n: number }]>`select count(*)::int as n from tracking_events`
    expect(eventsDuring).toBe(eventsBefore)
    expect((await call('GET', '/v1/carriers')).body.items.find((c: any) => c.code === 'dpd').health).toStartWith('failing')

    sim.setShape('dpd', 'documented')
    await waitFor(
      'the journeys caught up',
      async () => {
        for (const id of ids) if ((await call('GET', `/v1/shipments/${id}`)).body.lastSeq < 5) return false
        return true
      },
      20_000
    )
    for (const id of ids) expect((await call('GET', `/v1/shipments/${id}`)).body.lastPollError).toBeNull()
    expect((await call('GET', '/readyz')).body).toMatchObject({ status: 'ready', carriers: { dpd: 'ok' } })
  })
})
