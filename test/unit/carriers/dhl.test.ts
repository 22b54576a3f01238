import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { dhl, dhlParse, dhlRequest, dhlStatus } from '../../../src/carriers/dhl.ts'
import type { CarrierResponse } from '../../../src/carriers/adapter.ts'
import { DHL_ETA_ONLY, DHL_IN_TRANSIT, DHL_JOURNEY, rows } from '../../fixtures/expected.ts'

const TN = '00340434161094042557'
const fixture = (name: string) => Bun.file(`${import.meta.dir}/../../fixtures/dhl/${name}`).text()
const res = (status: number, body: string, headers: Record<string, string> = {}): CarrierResponse => ({
  status,
  body,
  headers: { 'content-type': 'application/json', ...headers }
})

describe('DHL adapter', () => {
  test('the request: path, query and API-key header', () => {
    const r = dhlRequest({ baseUrl: 'https://api-eu.dhl.com', apiKey: 'k-123' }, TN)
    expect(r).toEqual({
      method: 'GET',
      url: `https://api-eu.dhl.com/track/shipments?trackingNumber=${TN}`,
      headers: { 'DHL-API-Key': 'k-123', accept: 'application/json' }
    })
    // A base URL with a path of its own (a proxy, the simulator) keeps it.
    expect(dhlRequest({ baseUrl: 'http://127.0.0.1:4000/dhl/', apiKey: 'k' }, TN).url).toBe(`http://127.0.0.1:4000/dhl/track/shipments?trackingNumber=${TN}`)
  })

  test('a journey: every status code, every timestamp form, the autumn DST repeat, location and raw kept', async () => {
    const out = dhlParse(TN, res(200, await fixture('journey.json')))
    expect(rows(out)).toEqual({ events: DHL_JOURNEY.events, expectedDelivery: null })
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    const first = out.results[0]!.events[0]!
    expect(first.ok && first.event).toMatchObject({ carrier: 'dhl', trackingNumber: TN, dedupKey: `dhl:${TN}:delivered:2026-10-25T00:30:00.000Z` })
    expect(first.ok && (first.event.raw as any).status).toBe('Delivered')
  })

  test('in transit: the spring DST gap moves forward; the time frame is the expected delivery', async () => {
    const out = dhlParse(DHL_IN_TRANSIT.trackingNumber, res(200, await fixture('in-transit.json')))
    expect(rows(out)).toEqual({ events: DHL_IN_TRANSIT.events, expectedDelivery: DHL_IN_TRANSIT.expectedDelivery })
  })

  test('estimatedTimeOfDelivery alone is the end of the window (Berlin wall time without an offset)', async () => {
    const out = dhlParse(DHL_ETA_ONLY.trackingNumber, res(200, await fixture('eta-only.json')))
    expect(rows(out)).toEqual({ events: DHL_ETA_ONLY.events, expectedDelivery: DHL_ETA_ONLY.expectedDelivery })
  })

  test('an unreadable estimate is no estimate, never a guess', () => {
    const body = JSON.stringify({
      shipments: [{ id: TN, estimatedTimeOfDelivery: 'tomorrow', estimatedDeliveryTimeFrame: { estimatedFrom: 'soon' }, events: [] }]
    })
    expect(rows(dhlParse(TN, res(200, body))).expectedDelivery).toBeNull()
  })

  test('status mapping covers every DHL code', () => {
    expect(dhlStatus('pre-transit', '')).toBe('info_received')
    expect(dhlStatus('transit', 'Processed in parcel center')).toBe('in_transit')
    expect(dhlStatus('transit', 'Out for delivery')).toBe('out_for_delivery')
    expect(dhlStatus('transit', 'Ready for pickup at the Packstation')).toBe('available_for_pickup')
    expect(dhlStatus('delivered', '')).toBe('delivered')
    expect(dhlStatus('failure', 'Returned to sender')).toBe('returned')
    expect(dhlStatus('failure', 'Delivery attempt failed')).toBe('failed_attempt')
    expect(dhlStatus('failure', 'Damaged')).toBe('exception')
    expect(dhlStatus('unknown', '')).toBe('unknown')
    expect(dhlStatus(undefined, '')).toBe('unknown')
  })

  test('404 problem details: not found yet, not an error', async () => {
    expect(dhlParse(TN, res(404, await fixture('not-found.json'), { 'content-type': 'application/problem+json' }))).toEqual({
      kind: 'ok',
      results: [{ trackingNumber: TN, kind: 'not_found' }]
    })
  })

  test('429 with Retry-After, in seconds or as a date', () => {
    expect(dhlParse(TN, res(429, '{}', { 'retry-after': '7' }))).toEqual({ kind: 'rate_limited', retryAfterMs: 7000 })
    expect(dhlParse(TN, res(429, '{}'))).toEqual({ kind: 'rate_limited', retryAfterMs: null })
    const later = dhlParse(TN, res(429, '{}', { 'retry-after': new Date(Date.now() + 30_000).toUTCString() }))
    expect(later.kind === 'rate_limited' && later.retryAfterMs! > 25_000).toBe(true)
  })

  test('errors: bad key is final, 5xx and HTML pages are retryable, a wrong shape names the field', () => {
    expect(dhlParse(TN, res(401, '{}'))).toMatchObject({ kind: 'error', retryable: false })
    expect(dhlParse(TN, res(503, 'x'))).toMatchObject({ kind: 'error', retryable: true })
    expect(dhlParse(TN, res(200, '<html><body>Maintenance</body></html>', { 'content-type': 'text/html' }))).toMatchObject({
      kind: 'error',
      retryable: true,
      message: expect.stringContaining('not JSON')
    })
    expect(dhlParse(TN, res(200, '{"shipments":[{"events":[]}]}'))).toMatchObject({ kind: 'error', message: expect.stringContaining('shipments.0.id') })
  })

  test('a bad event is reported with its field; the others still count', () => {
    const body = JSON.stringify({
      shipments: [
        {
          id: TN,
          events: [{ statusCode: 'transit' }, { timestamp: '2026-10-23T09:00:00Z', statusCode: 'transit' }, { timestamp: 'yesterday', statusCode: 'transit' }]
        }
      ]
    })
    const out = dhlParse(TN, res(200, body))
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    expect(out.results[0]!.events.map((c) => (c.ok ? 'ok' : c.field))).toEqual(['events[0].timestamp', 'ok', 'events[2].timestamp'])
  })

  test('fuzz: random and truncated payloads never throw out of the adapter (poll and push)', async () => {
    const good = (await fixture('journey.json')) + (await fixture('in-transit.json'))
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.integer({ min: 0, max: good.length }).map((n) => good.slice(0, n)),
          fc.anything().map((x) => JSON.stringify(x) ?? '')
        ),
        fc.constantFrom(200, 404, 429, 500),
        (body, status) => {
          const out = dhlParse(TN, res(status, body))
          expect(['ok', 'error', 'rate_limited']).toContain(out.kind)
          expect(['ok', 'error']).toContain(dhl.push(body, { baseUrl: '' }).kind)
        }
      ),
      { numRuns: 1000 }
    )
  })
})

describe('DHL: which shipment answers, and long descriptions', () => {
  const scan = { timestamp: '2026-11-20T10:00:00+01:00', statusCode: 'transit', status: 'Processed' }
  test('an answer naming only other shipments is an error naming them, never their events under this number', () => {
    const out = dhlParse(TN, res(200, JSON.stringify({ shipments: [{ id: 'JJD000OTHER', events: [scan] }] })))
    expect(out).toEqual({
      kind: 'ok',
      results: [{ trackingNumber: TN, kind: 'error', message: `DHL answered for JJD000OTHER, not for ${TN}`, sample: { ids: ['JJD000OTHER'] } }]
    })
    expect(dhlParse(TN, res(200, JSON.stringify({ shipments: [] })))).toEqual({ kind: 'ok', results: [{ trackingNumber: TN, kind: 'not_found' }] })
  })

  test("a piece number is answered under its shipment's id: that shipment is the answer", () => {
    const out = dhlParse(
      'JD014600003828',
      res(200, JSON.stringify({ shipments: [{ id: '7777777770', details: { pieceIds: ['JD014600003828'] }, events: [scan] }] }))
    )
    expect(rows(out).events).toHaveLength(1)
  })

  test('a description over 1,000 UTF-16 units is cut at a code point: an emoji across the cut does not make the scan unstorable', () => {
    const description = `${'a'.repeat(999)}😀 and more`
    const out = dhlParse(TN, res(200, JSON.stringify({ shipments: [{ id: TN, events: [{ ...scan, description }] }] })))
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    const e = out.results[0]!.events[0]!
    expect(e.ok).toBe(true)
    expect(e.ok && e.event.description).toBe('a'.repeat(999))
  })
})
