import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { dhlParse, dhlRequest, dhlStatus } from '../../../src/carriers/dhl.ts'
import type { CarrierResponse } from '../../../src/carriers/adapter.ts'

const TN = '00340434161094042557'
const fixture = (name: string) => Bun.file(`${import.meta.dir}/../../fixtures/dhl/${name}`).text()
const res = (status: number, body: string, headers: Record<string, string> = {}): CarrierResponse => ({ status, body, headers: { 'content-type': 'application/json', ...headers } })

describe('DHL adapter', () => {
  test('the request: path, query and API-key header', () => {
    const r = dhlRequest({ baseUrl: 'https://api-eu.dhl.com', apiKey: 'k-123' }, TN)
    expect(r).toEqual({ method: 'GET', url: `https://api-eu.dhl.com/track/shipments?trackingNumber=${TN}`, headers: { 'DHL-API-Key': 'k-123', accept: 'application/json' } })
    // A base URL with a path of its own (a proxy, the simulator) keeps it.
    expect(dhlRequest({ baseUrl: 'http://127.0.0.1:4000/dhl/', apiKey: 'k' }, TN).url).toBe(`http://127.0.0.1:4000/dhl/track/shipments?trackingNumber=${TN}`)
  })

  test('a journey: every status code, every timestamp form, DST, location and raw kept', async () => {
    const out = dhlParse(TN, res(200, await fixture('journey.json')))
    expect(out.kind).toBe('ok')
    if (out.kind !== 'ok') return
    const r = out.results[0]!
    expect(r.kind).toBe('events')
    if (r.kind !== 'events') return
    const events = r.events.map((c) => (c.ok ? c.event : null))
    expect(events.map((e) => [e!.carrierStatus, e!.status, e!.occurredAt])).toEqual([
      // No offset: Berlin wall time; 02:30 on 2026-10-25 happens twice and resolves to the first (CEST).
      ['delivered', 'delivered', '2026-10-25T00:30:00.000Z'],
      ['failure', 'failed_attempt', '2026-10-24T15:05:00.000Z'],
      ['transit', 'out_for_delivery', '2026-10-24T06:40:00.000Z'],
      ['transit', 'in_transit', '2026-10-23T20:14:00.000Z'],
      ['pre-transit', 'info_received', '2026-10-23T07:00:00.000Z']
    ])
    expect(events[0]).toMatchObject({ carrier: 'dhl', trackingNumber: TN, location: '10115 Berlin, DE', dedupKey: `dhl:${TN}:delivered:2026-10-25T00:30:00.000Z` })
    expect(events[3]!.location).toBe('Börnicke, DE')
    expect((events[0]!.raw as any).status).toBe('Delivered')
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
    expect(dhlParse(TN, res(404, await fixture('not-found.json'), { 'content-type': 'application/problem+json' }))).toEqual({ kind: 'ok', results: [{ trackingNumber: TN, kind: 'not_found' }] })
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
    expect(dhlParse(TN, res(200, '<html><body>Maintenance</body></html>', { 'content-type': 'text/html' }))).toMatchObject({ kind: 'error', retryable: true, message: expect.stringContaining('not JSON') })
    expect(dhlParse(TN, res(200, '{"shipments":[{"events":[]}]}'))).toMatchObject({ kind: 'error', message: expect.stringContaining('shipments.0.id') })
  })

  test('a bad event is reported with its field; the others still count', () => {
    const body = JSON.stringify({ shipments: [{ id: TN, events: [{ statusCode: 'transit' }, { timestamp: '2026-10-23T09:00:00Z', statusCode: 'transit' }, { timestamp: 'yesterday', statusCode: 'transit' }] }] })
    const out = dhlParse(TN, res(200, body))
    if (out.kind !== 'ok' || out.results[0]!.kind !== 'events') throw new Error('expected events')
    expect(out.results[0]!.events.map((c) => (c.ok ? 'ok' : c.field))).toEqual(['events[0].timestamp', 'ok', 'occurredAt'])
  })

  test('fuzz: random and truncated payloads never throw out of the adapter', async () => {
    const good = await fixture('journey.json')
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.integer({ min: 0, max: good.length }).map((n) => good.slice(0, n)), fc.anything().map((x) => JSON.stringify(x) ?? '')), fc.constantFrom(200, 404, 429, 500), (body, status) => {
        const out = dhlParse(TN, res(status, body))
        expect(['ok', 'error', 'rate_limited']).toContain(out.kind)
      }),
      { numRuns: 1000 }
    )
  })
})
