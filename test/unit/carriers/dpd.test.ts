import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import type { CarrierResponse } from '../../../src/carriers/adapter.ts'
import { dpdLocalTime, dpdParse, dpdRequest, dpdStatus, dpdZone } from '../../../src/carriers/dpd.ts'

const PLN = '01905020138765'
const fixture = (name: string) => Bun.file(`${import.meta.dir}/../../fixtures/dpd/${name}`).text()
const json = (status: number, body: string, headers: Record<string, string> = {}): CarrierResponse => ({ status, body, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } })

describe('DPD adapter', () => {
  test('the request: locale and parcel label number in the path', () => {
    expect(dpdRequest({ baseUrl: 'https://tracking.dpd.de', locale: 'de_DE' }, PLN)).toEqual({ method: 'GET', url: `https://tracking.dpd.de/rest/plc/de_DE/${PLN}`, headers: { accept: 'application/json' } })
  })

  test('US-style local times, minding AM and PM at noon and midnight', () => {
    expect(dpdLocalTime('8/18/2021 2:43:31 PM')).toBe('2021-08-18T14:43:31')
    expect(dpdLocalTime('8/18/2021 2:43:31 AM')).toBe('2021-08-18T02:43:31')
    expect(dpdLocalTime('12/1/2021 12:05:00 AM')).toBe('2021-12-01T00:05:00')
    expect(dpdLocalTime('12/1/2021 12:05:00 PM')).toBe('2021-12-01T12:05:00')
    expect(dpdLocalTime('2021-08-18 14:43')).toBeNull()
    expect(dpdLocalTime('8/18/2021 13:43:31 PM')).toBeNull()
  })

  test('the zone follows the locale’s country', () => {
    expect(dpdZone('de_DE')).toBe('Europe/Berlin')
    expect(dpdZone('nl_NL')).toBe('Europe/Amsterdam')
    expect(dpdZone('en_GB')).toBe('Europe/London')
    expect(dpdZone('xx')).toBe('Europe/Berlin')
  })

  test('a journey: every scan type, Berlin wall time across the October change, depots', async () => {
    const out = dpdParse(PLN, json(200, await fixture('journey.json')))
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    const events = out.results[0]!.events.map((c) => (c.ok ? c.event : null)!)
    expect(events.map((e) => [e.carrierStatus, e.status, e.occurredAt])).toEqual([
      ['PickedUp', 'in_transit', '2026-10-23T16:12:04.000Z'],
      ['BetweenDepots', 'in_transit', '2026-10-23T21:58:00.000Z'],
      ['Depot', 'in_transit', '2026-10-24T02:30:00.000Z'],
      ['Depot', 'in_transit', '2026-10-24T02:30:00.000Z'],
      ['Courier', 'out_for_delivery', '2026-10-24T06:05:00.000Z'],
      ['DeliveryFailure', 'failed_attempt', '2026-10-24T10:40:00.000Z'],
      // 2:30 AM on 2026-10-25 happens twice in Berlin: the earlier one (CEST).
      ['ParcelShop', 'available_for_pickup', '2026-10-25T00:30:00.000Z'],
      // After the change: CET, +01:00.
      ['Delivered', 'delivered', '2026-10-25T23:05:00.000Z']
    ])
    expect(events[2]!.location).toBe('Hamburg, depot 0120')
    expect(events[7]!.description).toBe('Delivered. Collected by consignee.')
  })

  test('two scans of one type at one instant (two depots) are one fact: the same dedupKey', async () => {
    const out = dpdParse(PLN, json(200, await fixture('journey.json')))
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    const [, , a, b] = out.results[0]!.events
    expect(a!.ok && b!.ok && a!.event.dedupKey === b!.event.dedupKey).toBe(true)
    expect(a!.ok && a!.event.location).toBe('Hamburg, depot 0120')
  })

  test('status mapping', () => {
    for (const [k, s] of [['PickedUp', 'in_transit'], ['BetweenDepots', 'in_transit'], ['Depot', 'in_transit'], ['Courier', 'out_for_delivery'], ['DeliveryFailure', 'failed_attempt'], ['ParcelShop', 'available_for_pickup'], ['Delivered', 'delivered'], ['Accepted', 'info_received'], ['ReturnToSender', 'returned'], ['Whatever', 'unknown']]) {
      expect(dpdStatus(k!)).toBe(s as never)
    }
  })

  test('an HTML error page is caught by its content type, even under a 200', () => {
    const html = { status: 200, body: '<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>', headers: { 'content-type': 'text/html' } }
    expect(dpdParse(PLN, html)).toMatchObject({ kind: 'error', retryable: true, message: expect.stringContaining('text/html') })
  })

  test('unknown parcels, rate limits, server errors, wrong shapes', () => {
    expect(dpdParse(PLN, json(200, '{"parcellifecycleResponse":{"parcelLifeCycleData":null}}'))).toEqual({ kind: 'ok', results: [{ trackingNumber: PLN, kind: 'not_found' }] })
    expect(dpdParse(PLN, json(404, '{}'))).toEqual({ kind: 'ok', results: [{ trackingNumber: PLN, kind: 'not_found' }] })
    expect(dpdParse(PLN, json(429, '', { 'retry-after': '2' }))).toEqual({ kind: 'rate_limited', retryAfterMs: 2000 })
    expect(dpdParse(PLN, json(502, ''))).toMatchObject({ kind: 'error', retryable: true })
    expect(dpdParse(PLN, json(200, '{"something":"else"}'))).toMatchObject({ kind: 'error', message: expect.stringContaining('parcellifecycleResponse') })
    const bad = dpdParse(PLN, json(200, JSON.stringify({ parcellifecycleResponse: { parcelLifeCycleData: { scanInfo: { scan: [{ date: 'yesterday', scanData: { scanType: { name: 'Depot' } } }] } } } })))
    if (bad.kind !== 'ok' || bad.results[0]!.kind !== 'events') throw new Error('expected events')
    expect(bad.results[0]!.events[0]).toMatchObject({ ok: false, field: 'scan[0].date' })
  })

  test('fuzz: random and truncated payloads never throw out of the adapter', async () => {
    const good = await fixture('journey.json')
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.integer({ min: 0, max: good.length }).map((n) => good.slice(0, n))), fc.constantFrom('application/json', 'text/html', ''), (body, type) => {
        expect(['ok', 'error', 'rate_limited']).toContain(dpdParse(PLN, { status: 200, body, headers: { 'content-type': type } }).kind)
      }),
      { numRuns: 1000 }
    )
  })
})
