import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { XMLParser } from 'fast-xml-parser'
import type { CarrierResponse } from '../../../src/carriers/adapter.ts'
import { dpd } from '../../../src/carriers/dpd.ts'
import { dpdLoginParse, dpdLoginRequest, dpdSoapParse, dpdSoapRequest } from '../../../src/carriers/dpd-soap.ts'
import { DPD_SOAP_JOURNEY, fixture, rows } from '../../fixtures/expected.ts'

const PLN = DPD_SOAP_JOURNEY.trackingNumber
const xml = (status: number, body: string, type = 'text/xml; charset=utf-8'): CarrierResponse => ({ status, body, headers: { 'content-type': type } })
const config = { baseUrl: 'https://public-ws.dpd.com', locale: 'de_DE', form: 'soap', clientId: 'KD123', clientSecret: 'pa<ss' }

describe('DPD adapter, SOAP form', () => {
  test('the request: getTrackingData at ParcelLifeCycleService/V2_0 with the authentication header, values escaped', () => {
    const r = dpdSoapRequest(config, PLN, 'tok&en')
    expect(r).toMatchObject({
      method: 'POST',
      url: 'https://public-ws.dpd.com/soap/services/ParcelLifeCycleService/V2_0',
      headers: { 'content-type': 'text/xml; charset=utf-8' }
    })
    const doc = new XMLParser({ removeNSPrefix: true, parseTagValue: false }).parse(r.body!)
    expect(doc.Envelope.Header.authentication).toEqual({ delisId: 'KD123', authToken: 'tok&en', messageLanguage: 'de_DE' })
    expect(doc.Envelope.Body.getTrackingData).toEqual({ parcelLabelNumber: PLN })
    // DPD_FORM=soap picks it; the token comes from the login first.
    expect(dpd.request(config, [PLN], 't').url).toEndWith('/soap/services/ParcelLifeCycleService/V2_0')
    expect(dpd.auth!(config)!.request().url).toBe('https://public-ws.dpd.com/soap/services/LoginService/V2_1')
    expect(dpd.auth!({ ...config, form: 'json' })).toBeNull()
  })

  test('the login: getAuth with delisId and password; the token is used until ten minutes before it expires', async () => {
    const doc = new XMLParser({ removeNSPrefix: true, parseTagValue: false }).parse(dpdLoginRequest(config).body!)
    expect(doc.Envelope.Body.getAuth).toEqual({ delisId: 'KD123', password: 'pa<ss', messageLanguage: 'de_DE' })
    const now = Date.parse('2026-05-08T00:00:00Z')
    // 13:02:56.06 Berlin summer time is 11:02:56.060Z.
    expect(dpdLoginParse(xml(200, await fixture('dpd/soap-login.xml')), 'Europe/Berlin', now)).toEqual({
      token: 'GFadfGob14GWWgQcIldI6zYtuR7cyEHe2z6e',
      expiresAt: Date.parse('2026-05-08T11:02:56.060Z') - 600_000
    })
    expect(dpdLoginParse(xml(500, await fixture('dpd/soap-auth-fault.xml')), 'Europe/Berlin')).toMatchObject({ retryable: false })
    expect(dpdLoginParse(xml(502, '<html>bad gateway</html>', 'text/html'), 'Europe/Berlin')).toMatchObject({ retryable: true })
  })

  test('a journey: US local times in the locale’s zone, the October repeat read as the earlier instant; the forecast entry left out', async () => {
    expect(rows(dpdSoapParse(PLN, xml(200, await fixture('dpd/soap-journey.xml'))))).toEqual({ events: DPD_SOAP_JOURNEY.events, expectedDelivery: null })
    // Through the carrier object, as the poller calls it.
    expect(rows(dpd.parse([PLN], xml(200, await fixture('dpd/soap-journey.xml')), config)).events).toEqual(DPD_SOAP_JOURNEY.events)
  })

  test('the spring gap moves forward; ISO dates are read too; an unreadable date is rejected naming statusInfo[i].date', () => {
    const entry = (status: string, date: string) =>
      `<statusInfo><status>${status}</status><label><content>x</content></label><statusHasBeenReached>true</statusHasBeenReached><date><content>${date}</content></date></statusInfo>`
    const body = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><getTrackingDataResponse xmlns="http://dpd.com/common/service/types/ParcelLifeCycleService/2.0"><trackingresult>${entry('Depot', '3/29/2026 2:30:00 AM')}${entry('Courier', '2026-03-29T08:00:00')}${entry('Delivered', '29.03.2026 12:00')}</trackingresult></getTrackingDataResponse></soap:Body></soap:Envelope>`
    expect(rows(dpdSoapParse(PLN, xml(200, body))).events).toEqual([
      ['Depot', 'in_transit', '2026-03-29T01:30:00.000Z', null, 'x'],
      ['Courier', 'out_for_delivery', '2026-03-29T06:00:00.000Z', null, 'x'],
      'statusInfo[2].date'
    ])
  })

  test('no status entries: not found; a refused token asks for a new one; HTML pages and 5xx are retryable', async () => {
    expect(dpdSoapParse(PLN, xml(200, await fixture('dpd/soap-not-found.xml')))).toEqual({ kind: 'ok', results: [{ trackingNumber: PLN, kind: 'not_found' }] })
    expect(dpdSoapParse(PLN, xml(500, await fixture('dpd/soap-auth-fault.xml')))).toMatchObject({ kind: 'error', reauthenticate: true, retryable: true })
    expect(dpdSoapParse(PLN, xml(200, '<html>maintenance</html>', 'text/html'))).toMatchObject({ kind: 'error', retryable: true })
    expect(dpdSoapParse(PLN, xml(503, '', 'text/plain'))).toMatchObject({ kind: 'error', retryable: true })
    expect(dpdSoapParse(PLN, xml(429, ''))).toEqual({ kind: 'rate_limited', retryAfterMs: null })
    const parcelFault =
      '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>parcelLabelNumber is not valid</faultstring></soap:Fault></soap:Body></soap:Envelope>'
    expect(dpdSoapParse(PLN, xml(500, parcelFault))).toEqual({
      kind: 'ok',
      results: [{ trackingNumber: PLN, kind: 'error', message: 'DPD SOAP fault: parcelLabelNumber is not valid' }]
    })
    // Any other fault is DPD failing, not the parcel: a failed call (backed off, counted in health).
    const serverFault =
      '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Fault occurred while processing.</faultstring></soap:Fault></soap:Body></soap:Envelope>'
    expect(dpdSoapParse(PLN, xml(500, serverFault))).toEqual({
      kind: 'error',
      retryable: true,
      message: 'DPD SOAP fault: Fault occurred while processing. (HTTP 500)'
    })
    expect(dpdSoapParse(PLN, xml(200, '<a></a>'))).toMatchObject({ kind: 'error' })
  })

  test('fuzz: random, truncated and mangled XML never throws out of the adapter', async () => {
    const docs = await Promise.all(['dpd/soap-journey.xml', 'dpd/soap-not-found.xml', 'dpd/soap-auth-fault.xml', 'dpd/soap-login.xml'].map(fixture))
    const mangle = (d: string, at: number, junk: string) => d.slice(0, at) + junk + d.slice(at)
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.constantFrom(...docs).chain((d) => fc.integer({ min: 0, max: d.length }).map((n) => d.slice(0, n))),
          fc
            .constantFrom(...docs)
            .chain((d) =>
              fc
                .tuple(
                  fc.integer({ min: 0, max: d.length }),
                  fc.constantFrom('<', '>', '&', '<statusInfo>', '</content>', '<!DOCTYPE x [<!ENTITY a "aaaa">]>', '&a;', '\u0000')
                )
                .map(([n, j]) => mangle(d, n, j))
            )
        ),
        fc.constantFrom(200, 500, 503),
        (body, status) => {
          expect(['ok', 'error', 'rate_limited']).toContain(dpdSoapParse(PLN, xml(status, body)).kind)
          const login = dpdLoginParse(xml(status, body), 'Europe/Berlin')
          expect('token' in login || 'error' in login).toBe(true)
        }
      ),
      { numRuns: 1000 }
    )
  })
})
