import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import type { CarrierResponse } from '../../../src/carriers/adapter.ts'
import { gls, glsParse, glsParseToken, glsRequest, glsTokenRequest } from '../../../src/carriers/gls.ts'
import { GLS_PARCEL } from '../../fixtures/expected.ts'

const fixture = (name: string) => Bun.file(`${import.meta.dir}/../../fixtures/gls/${name}`).text()
const res = (status: number, body: string, headers: Record<string, string> = {}): CarrierResponse => ({ status, body, headers })
const config = { baseUrl: 'https://api.gls-group.net', clientId: 'id-1', clientSecret: 's3cret' }

describe('GLS adapter', () => {
  test('the token request: client credentials with basic auth', () => {
    const r = glsTokenRequest(config)
    expect(r).toMatchObject({ method: 'POST', url: 'https://api.gls-group.net/oauth2/v1/token', body: 'grant_type=client_credentials' })
    expect(r.headers.authorization).toBe(`Basic ${Buffer.from('id-1:s3cret').toString('base64')}`)
  })

  test('the token is kept until a minute before it expires; refusals are final', () => {
    expect(glsParseToken(res(200, '{"access_token":"abc","token_type":"Bearer","expires_in":3600}'), 1_000)).toEqual({
      token: 'abc',
      expiresAt: 1_000 + 3540_000
    })
    expect(glsParseToken(res(401, '{}'))).toMatchObject({ retryable: false })
    expect(glsParseToken(res(502, 'x'))).toMatchObject({ retryable: true })
    expect(glsParseToken(res(200, '{"nope":1}'))).toMatchObject({ retryable: true })
  })

  test('the tracking request: up to 10 ids, comma-separated, with events, bearer token', () => {
    const r = glsRequest(config, 'tok', ['ZX12AB34', 'ZX55CD66'])
    expect(r).toEqual({
      method: 'GET',
      url: 'https://api.gls-group.net/track-and-trace-v1/tracking/simple/trackids/ZX12AB34,ZX55CD66?showEvents=true',
      headers: { authorization: 'Bearer tok', accept: 'application/json' }
    })
    expect(() => glsRequest(config, 'tok', Array(11).fill('A'))).toThrow(RangeError)
  })

  test('several parcels in one answer: events, a per-parcel error inside the 200, every status', async () => {
    const out = glsParse(['ZX12AB34', 'ZX99NOPE', 'ZX55CD66', 'ZX00MISSING'], res(200, await fixture('two-parcels.json')))
    if (out.kind !== 'ok') throw new Error(out.kind)
    const [a, b, c, d] = out.results
    expect(b).toEqual({ trackingNumber: 'ZX99NOPE', kind: 'not_found' })
    expect(d).toMatchObject({ trackingNumber: 'ZX00MISSING', kind: 'error' })
    if (a!.kind !== 'events' || c!.kind !== 'events') throw new Error('expected events')
    expect(a!.events.map((e) => (e.ok ? [e.event.carrierStatus, e.event.status, e.event.occurredAt, e.event.location, e.event.description] : e.field))).toEqual(
      GLS_PARCEL.events
    )
    expect(a!.expectedDelivery).toBeNull()
    expect(c!.events.map((e) => (e.ok ? e.event.status : e.field))).toEqual(['available_for_pickup', 'failed_attempt', 'returned', 'exception', 'unknown'])
  })

  test('401 asks for a new token; 429 carries Retry-After; HTML and 5xx are retryable', () => {
    expect(glsParse(['A1'], res(401, ''))).toMatchObject({ kind: 'error', reauthenticate: true, retryable: true })
    expect(glsParse(['A1'], res(429, '', { 'retry-after': '3' }))).toEqual({ kind: 'rate_limited', retryAfterMs: 3000 })
    expect(glsParse(['A1'], res(200, '<html>oops</html>'))).toMatchObject({ kind: 'error', retryable: true })
    expect(glsParse(['A1'], res(500, ''))).toMatchObject({ kind: 'error', retryable: true })
    expect(glsParse(['A1'], res(200, '{"parcels":[{"events":[]}]}'))).toMatchObject({ kind: 'error', message: expect.stringContaining('parcels.0.requested') })
  })

  test('a push of parcels[] is read as the answer for the numbers it names; an unreadable date is rejected naming eventDateTime', async () => {
    const out = gls.push(await fixture('two-parcels.json'), { baseUrl: '' })
    if (out.kind !== 'ok') throw new Error(out.kind)
    expect(out.results.map((r) => r.kind)).toEqual(['events', 'not_found', 'events'])
    const bad = gls.push(JSON.stringify({ parcels: [{ requested: 'ZX1', events: [{ code: 'INTRANSIT', eventDateTime: '28.03.2026 18:02' }] }] }), {
      baseUrl: ''
    })
    expect(bad.kind === 'ok' && bad.results[0]!.kind === 'events' && bad.results[0]!.events[0]).toMatchObject({
      ok: false,
      field: 'parcels[ZX1].events[0].eventDateTime'
    })
  })

  test('fuzz: random and truncated payloads never throw out of the adapter (poll and push)', async () => {
    const good = await fixture('two-parcels.json')
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.integer({ min: 0, max: good.length }).map((n) => good.slice(0, n)),
          fc.anything().map((x) => JSON.stringify(x) ?? '')
        ),
        fc.constantFrom(200, 401, 429, 503),
        (body, status) => {
          expect(['ok', 'error', 'rate_limited']).toContain(glsParse(['ZX12AB34', 'ZX55CD66'], res(status, body)).kind)
          expect(['ok', 'error']).toContain(gls.push(body, { baseUrl: '' }).kind)
        }
      ),
      { numRuns: 1000 }
    )
  })
})
