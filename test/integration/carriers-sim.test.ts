/** The adapters against the carrier simulator over real HTTP: each format, each fault. */
import { afterAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import type { CarrierRequest, CarrierResponse } from '../../src/carriers/adapter.ts'
import { dhlParse, dhlRequest } from '../../src/carriers/dhl.ts'
import { dpdJsonParse as dpdParse, dpdJsonRequest as dpdRequest } from '../../src/carriers/dpd.ts'
import { glsParse, glsParseToken, glsRequest, glsTokenRequest } from '../../src/carriers/gls.ts'
import { createCarrierSimulator } from '../../src/carriers/simulator.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

const sim = createCarrierSimulator({ stepMs: 0 })
afterAll(() => sim.stop())

async function send(r: CarrierRequest): Promise<CarrierResponse> {
  const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body })
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() }
}
const statuses = (out: any) => out.results[0].events.map((e: any) => e.event.status)

describe('carrier simulator', () => {
  test('DHL: a whole journey, every timestamp form read back to the same instants', async () => {
    const out = dhlParse('JJD000111', await send(dhlRequest({ baseUrl: `${sim.url}/dhl`, apiKey: 'sim-dhl-key' }, 'JJD000111')))
    expect(out.kind).toBe('ok')
    expect(statuses(out).sort()).toEqual(['delivered', 'in_transit', 'in_transit', 'info_received', 'out_for_delivery'].sort())
    const expected = sim
      .scans('dhl', 'JJD000111')
      .map((s) => new Date(s.at).toISOString())
      .sort()
    expect((out as any).results[0].events.map((e: any) => e.event.occurredAt).sort()).toEqual(expected)
  })

  test('DHL: wrong key, unknown number', async () => {
    expect(dhlParse('X', await send(dhlRequest({ baseUrl: `${sim.url}/dhl`, apiKey: 'wrong' }, 'X')))).toMatchObject({ kind: 'error', retryable: false })
    expect(dhlParse('UNKNOWN1', await send(dhlRequest({ baseUrl: `${sim.url}/dhl`, apiKey: 'sim-dhl-key' }, 'UNKNOWN1')))).toEqual({
      kind: 'ok',
      results: [{ trackingNumber: 'UNKNOWN1', kind: 'not_found' }]
    })
  })

  test('DPD: ISO local dates (Berlin) read back to the same instants; unknown parcels', async () => {
    const out = dpdParse('0190500001', await send(dpdRequest({ baseUrl: `${sim.url}/dpd`, locale: 'de_DE' }, '0190500001')))
    expect(statuses(out)).toContain('delivered')
    const expected = sim
      .scans('dpd', '0190500001')
      .map((s) => new Date(Math.floor(s.at / 1000) * 1000).toISOString())
      .sort()
    expect((out as any).results[0].events.map((e: any) => e.event.occurredAt).sort()).toEqual(expected)
    expect(dpdParse('UNKNOWN2', await send(dpdRequest({ baseUrl: `${sim.url}/dpd` }, 'UNKNOWN2')))).toEqual({
      kind: 'ok',
      results: [{ trackingNumber: 'UNKNOWN2', kind: 'not_found' }]
    })
  })

  test('GLS: token flow, ten numbers a call, a per-parcel error, token expiry', async () => {
    const short = createCarrierSimulator({ stepMs: 0, glsTokenTtlSeconds: 1 })
    try {
      const cfg = { baseUrl: `${short.url}/gls`, clientId: 'sim-gls-id', clientSecret: 'sim-gls-secret' }
      const tok = glsParseToken(await send(glsTokenRequest(cfg)))
      if (!('token' in tok)) throw new Error(tok.error)
      const ids = ['GLS1', 'GLS2', 'UNKNOWN3']
      const out = glsParse(ids, await send(glsRequest(cfg, tok.token, ids)))
      if (out.kind !== 'ok') throw new Error(out.kind)
      expect(out.results.map((r) => r.kind)).toEqual(['events', 'events', 'not_found'])
      await Bun.sleep(1100)
      expect(glsParse(ids, await send(glsRequest(cfg, tok.token, ids)))).toMatchObject({ kind: 'error', reauthenticate: true })
      expect(glsParseToken(await send(glsTokenRequest({ ...cfg, clientSecret: 'nope' })))).toMatchObject({ retryable: false })
    } finally {
      short.stop()
    }
  })

  test('faults: 429 past the rate limit, HTML error pages, duplicates', async () => {
    const faulty = createCarrierSimulator({ stepMs: 0, rateLimitPerSec: 3, errorRate: 1, duplicateEvery: 2 })
    try {
      const outcomes = []
      for (let i = 0; i < 6; i++) outcomes.push(dpdParse('P1', await send(dpdRequest({ baseUrl: `${faulty.url}/dpd` }, 'P1'))).kind)
      expect(outcomes.filter((k) => k === 'rate_limited').length).toBeGreaterThanOrEqual(1)
      expect(outcomes.filter((k) => k === 'error').length).toBeGreaterThanOrEqual(1)
    } finally {
      faulty.stop()
    }
    const dup = createCarrierSimulator({ stepMs: 0, duplicateEvery: 2 })
    try {
      const out = dhlParse('DUP1', await send(dhlRequest({ baseUrl: `${dup.url}/dhl`, apiKey: 'sim-dhl-key' }, 'DUP1'))) as any
      const keys = out.results[0].events.map((e: any) => e.event.dedupKey)
      expect(keys.length).toBeGreaterThan(new Set(keys).size)
    } finally {
      dup.stop()
    }
  })
})
