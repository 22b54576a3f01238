import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import type { CarrierResponse } from '../../../src/carriers/adapter.ts'
import { dpd, dpdJsonParse, dpdJsonRequest, dpdLocalTime, dpdScanDateTime, dpdStatus, dpdZone } from '../../../src/carriers/dpd.ts'
import { DPD_JSON_JOURNEY, DPD_STATUS_ONLY, fixture, rows } from '../../fixtures/expected.ts'

const PLN = '01905020138765'
const json = (status: number, body: string, headers: Record<string, string> = {}): CarrierResponse => ({
  status,
  body,
  headers: { 'content-type': 'application/json; charset=utf-8', ...headers }
})

describe('DPD adapter, JSON form', () => {
  test('the request: locale and parcel label number in the path', () => {
    expect(dpdJsonRequest({ baseUrl: 'https://tracking.dpd.de', locale: 'de_DE' }, PLN)).toEqual({
      method: 'GET',
      url: `https://tracking.dpd.de/rest/plc/de_DE/${PLN}`,
      headers: { accept: 'application/json' }
    })
    // JSON is the default form.
    expect(dpd.request({ baseUrl: 'https://tracking.dpd.de' }, [PLN]).url).toBe(`https://tracking.dpd.de/rest/plc/de_DE/${PLN}`)
  })

  test('every date form DPD is known to send: ISO wall time with or without fractions, and the US form', () => {
    expect(dpdLocalTime('2026-01-19T17:42:05')).toBe('2026-01-19T17:42:05')
    expect(dpdLocalTime('2026-01-19T17:42:05.250')).toBe('2026-01-19T17:42:05.250')
    expect(dpdLocalTime(' 2026-01-19 17:42 ')).toBe('2026-01-19 17:42')
    expect(dpdLocalTime('8/18/2021 2:43:31 PM')).toBe('2021-08-18T14:43:31')
    expect(dpdLocalTime('8/18/2021 2:43:31 AM')).toBe('2021-08-18T02:43:31')
    expect(dpdLocalTime('12/1/2021 12:05:00 AM')).toBe('2021-12-01T00:05:00')
    expect(dpdLocalTime('12/1/2021 12:05:00 PM')).toBe('2021-12-01T12:05:00')
    expect(dpdLocalTime('8/18/2021 13:43:31 PM')).toBeNull()
    expect(dpdLocalTime('19/01/2026 17:42')).toBeNull()
    expect(dpdLocalTime('yesterday')).toBeNull()
    expect(dpdScanDateTime('2026-01-19', '17:42:05')).toBe('2026-01-19T17:42:05')
    expect(dpdScanDateTime('2026-01-19', undefined)).toBeNull()
    expect(dpdScanDateTime('19.01.2026', '17:42')).toBeNull()
  })

  test('the zone follows the locale’s country', () => {
    expect(dpdZone('de_DE')).toBe('Europe/Berlin')
    expect(dpdZone('nl_NL')).toBe('Europe/Amsterdam')
    expect(dpdZone('en_GB')).toBe('Europe/London')
    expect(dpdZone('xx')).toBe('Europe/Berlin')
    expect(dpd.zone({ baseUrl: '', locale: 'pt_PT' })).toBe('Europe/Lisbon')
  })

  test('a journey as the German endpoint sends it: ISO local times, the October repeat read as the earlier instant, depots', async () => {
    const out = dpdJsonParse(PLN, json(200, await fixture('dpd/journey.json')))
    expect(rows(out)).toEqual({ events: DPD_JSON_JOURNEY.events, expectedDelivery: null })
  })

  test('the same wall times read in another locale’s zone', async () => {
    const out = rows(dpdJsonParse(PLN, json(200, await fixture('dpd/journey.json')), 'en_GB'))
    // London is an hour behind Berlin: 18:12:04 BST is 17:12:04Z.
    expect((out.events[0] as any)[2]).toBe('2026-10-23T17:12:04.000Z')
  })

  test('two scans of one type at one instant (two depots) are one fact: the same dedupKey', async () => {
    const out = dpdJsonParse(PLN, json(200, await fixture('dpd/journey.json')))
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    const [, , a, b] = out.results[0]!.events
    expect(a!.ok && b!.ok && a!.event.dedupKey === b!.event.dedupKey).toBe(true)
  })

  test('date forms: fractions, scanDate + scanTime, the US form (midnight too, and the October repeat); an unknown form is rejected, the others still count', async () => {
    const out = dpdJsonParse('01905020130001', json(200, await fixture('dpd/date-forms.json')))
    expect(rows(out).events).toEqual([
      ['PickedUp', 'in_transit', '2026-01-19T16:42:05.250Z', 'Leipzig', 'Picked up by DPD.'],
      ['BetweenDepots', 'in_transit', '2026-01-19T17:00:00.000Z', 'Leipzig', 'In transit.'],
      ['Depot', 'in_transit', '2026-01-19T18:42:05.000Z', 'Hamburg', null],
      ['Depot', 'in_transit', '2026-01-19T23:05:00.000Z', 'Hamburg', null],
      'scan[4].date',
      ['Courier', 'out_for_delivery', '2026-10-25T00:30:00.000Z', 'Hamburg', null]
    ])
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    const bad = out.results[0]!.events[4]!
    expect(bad).toMatchObject({ ok: false, message: expect.stringContaining('"19/01/2026 20:00" is not a DPD date') })
    expect(!bad.ok && (bad.sample as any).date).toBe('19/01/2026 20:00')
  })

  test('an answer with status entries only: the reached ones with a date are the events (spring gap moves forward); the forecast is left out', async () => {
    const out = dpdJsonParse(DPD_STATUS_ONLY.trackingNumber, json(200, await fixture('dpd/status-only.json')))
    expect(rows(out)).toEqual({ events: DPD_STATUS_ONLY.events, expectedDelivery: null })
  })

  test('a reached status entry without a readable date is rejected, naming the field', () => {
    const body = JSON.stringify({
      parcellifecycleResponse: {
        parcelLifeCycleData: {
          statusInfo: [
            { status: 'ACCEPTED', statusHasBeenReached: true },
            { status: 'ON_THE_ROAD', statusHasBeenReached: true, date: 'gestern' },
            { status: 'DELIVERED', statusHasBeenReached: false }
          ]
        }
      }
    })
    expect(rows(dpdJsonParse(PLN, json(200, body))).events).toEqual(['statusInfo[0].date', 'statusInfo[1].date'])
  })

  test('status table: scan types and status codes', () => {
    const table: [string, string][] = [
      ['PickedUp', 'in_transit'],
      ['BetweenDepots', 'in_transit'],
      ['Depot', 'in_transit'],
      ['Courier', 'out_for_delivery'],
      ['DeliveryFailure', 'failed_attempt'],
      ['ParcelShop', 'available_for_pickup'],
      ['Delivered', 'delivered'],
      ['Accepted', 'info_received'],
      ['ReturnToSender', 'returned'],
      ['Whatever', 'unknown'],
      ['ACCEPTED', 'info_received'],
      ['AT_SENDING_DEPOT', 'in_transit'],
      ['ON_THE_ROAD', 'in_transit'],
      ['AT_DELIVERY_DEPOT', 'in_transit'],
      ['OUT_FOR_DELIVERY', 'out_for_delivery'],
      ['DELIVERED', 'delivered'],
      ['PICKUP', 'available_for_pickup']
    ]
    for (const [k, s] of table) expect([k, dpdStatus(k)]).toEqual([k, s as never])
  })

  test('an HTML error page is caught by its content type, even under a 200', () => {
    const html = { status: 200, body: '<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>', headers: { 'content-type': 'text/html' } }
    expect(dpdJsonParse(PLN, html)).toMatchObject({ kind: 'error', retryable: true, message: expect.stringContaining('text/html') })
  })

  test('unknown parcels, rate limits, server errors, wrong shapes', () => {
    expect(dpdJsonParse(PLN, json(200, '{"parcellifecycleResponse":{"parcelLifeCycleData":null}}'))).toEqual({
      kind: 'ok',
      results: [{ trackingNumber: PLN, kind: 'not_found' }]
    })
    expect(dpdJsonParse(PLN, json(404, '{}'))).toEqual({ kind: 'ok', results: [{ trackingNumber: PLN, kind: 'not_found' }] })
    expect(dpdJsonParse(PLN, json(429, '', { 'retry-after': '2' }))).toEqual({ kind: 'rate_limited', retryAfterMs: 2000 })
    expect(dpdJsonParse(PLN, json(502, ''))).toMatchObject({ kind: 'error', retryable: true })
    expect(dpdJsonParse(PLN, json(200, '{"something":"else"}'))).toMatchObject({ kind: 'error', message: expect.stringContaining('parcellifecycleResponse') })
    const bad = dpdJsonParse(
      PLN,
      json(
        200,
        JSON.stringify({
          parcellifecycleResponse: {
            parcelLifeCycleData: {
              scanInfo: {
                scan: [
                  { date: 'yesterday', scanData: { scanType: { name: 'Depot' } } },
                  { date: '2026-01-01T10:00:00', scanData: {} }
                ]
              }
            }
          }
        })
      )
    )
    expect(rows(bad).events).toEqual(['scan[0].date', 'scan[1].scanData.scanType'])
  })

  test('a push is read with the configured locale, as a poll would be', async () => {
    const body = await fixture('dpd/journey.json')
    const berlin = rows(dpd.push(body, { baseUrl: '', locale: 'de_DE' }))
    const london = rows(dpd.push(body, { baseUrl: '', locale: 'en_GB' }))
    expect(berlin.events).toEqual(DPD_JSON_JOURNEY.events)
    expect((london.events[0] as any)[2]).toBe('2026-10-23T17:12:04.000Z')
  })

  test('fuzz: random and truncated payloads never throw out of the adapter (poll and push)', async () => {
    const docs = await Promise.all(['dpd/journey.json', 'dpd/date-forms.json', 'dpd/status-only.json'].map(fixture))
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.constantFrom(...docs).chain((d) => fc.integer({ min: 0, max: d.length }).map((n) => d.slice(0, n))),
          fc.anything().map((x) => JSON.stringify(x) ?? '')
        ),
        fc.constantFrom('application/json', 'text/html', ''),
        fc.constantFrom('de_DE', 'en_GB', 'xx'),
        (body, type, locale) => {
          expect(['ok', 'error', 'rate_limited']).toContain(dpdJsonParse(PLN, { status: 200, body, headers: { 'content-type': type } }, locale).kind)
          expect(['ok', 'error']).toContain(dpd.push(body, { baseUrl: '', locale }).kind)
        }
      ),
      { numRuns: 1000 }
    )
  })

  test('fuzz: scans with arbitrary dates are events or rejections naming date, never a throw', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.date({ noInvalidDate: true }).map((d) => d.toISOString().slice(0, 19)),
          fc.constant('2/30/2026 1:00:00 PM')
        ),
        (date) => {
          const body = JSON.stringify({
            parcellifecycleResponse: { parcelLifeCycleData: { scanInfo: { scan: [{ date, scanData: { scanType: { name: 'Depot' } } }] } } }
          })
          const [c] = rows(dpdJsonParse(PLN, json(200, body))).events
          expect(Array.isArray(c) || c === 'scan[0].date').toBe(true)
        }
      ),
      { numRuns: 500 }
    )
  })
})
