/**
 * DPD's SOAP form (DPD_FORM=soap): `getTrackingData` of the Parcel Life Cycle service 2.0 at
 * `{base}/soap/services/ParcelLifeCycleService/V2_0`, authenticated by a header carrying the
 * `delisId` and an `authToken` from the Login service 2.1 (`getAuth` at
 * `{base}/soap/services/LoginService/V2_1`, with the delisId and password; DPD_DELIS_ID,
 * DPD_PASSWORD). The token is kept until shortly before its `authTokenExpires`.
 *
 * The answer, after DPD's schema (ParcelLifecycleServiceV20.xsd): `getTrackingDataResponse/
 * trackingresult` with `shipmentInfo` and `statusInfo*`, each `status`, `label/content`,
 * `description/content/content*`, `statusHasBeenReached`, `location/content` and
 * `date/content` — local wall time, in the US form (`8/18/2021 2:43:31 PM`) in DPD's published
 * answers, or any form the JSON reader takes. A reached status entry is one event, as in the JSON
 * form's status-only answers. Parsed with fast-xml-parser (entity expansion bounded by its
 * defaults), then validated like every other payload; never with regular expressions.
 */
import { XMLParser } from 'fast-xml-parser'
import * as v from 'valibot'
import {
  bodyHint,
  cutText,
  endpoint,
  rejected,
  retryAfterMs,
  type CarrierConfig,
  type CarrierRequest,
  type CarrierResponse,
  type ParseOutcome,
  type ScanCheck
} from './adapter.ts'
import type { TokenOutcome } from './carrier.ts'
import { DPD_DEFAULT_LOCALE, dpdLocalTime, dpdStatusEntry, dpdZone } from './dpd.ts'
import { normalizeInstant } from '../pipeline/identity.ts'

export const DPD_SOAP_PATH = '/soap/services/ParcelLifeCycleService/V2_0'
export const DPD_LOGIN_PATH = '/soap/services/LoginService/V2_1'
const NS_PLC = 'http://dpd.com/common/service/types/ParcelLifeCycleService/2.0'
const NS_AUTH = 'http://dpd.com/common/service/types/Authentication/2.0'
const NS_LOGIN = 'http://dpd.com/common/service/types/LoginService/2.1'

const xml = new XMLParser({
  removeNSPrefix: true,
  ignoreAttributes: true,
  parseTagValue: false, // "0104" stays a string, "true" too
  trimValues: true,
  isArray: (name) => name === 'statusInfo' || name === 'content'
})

export const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!)

const envelope = (ns: string, header: string, body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ${ns}><soapenv:Header>${header}</soapenv:Header><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`

const soapHeaders = { 'content-type': 'text/xml; charset=utf-8', accept: 'text/xml', soapaction: '""' }

export function dpdSoapRequest(config: CarrierConfig, parcelLabelNumber: string, authToken: string): CarrierRequest {
  const language = config.locale ?? DPD_DEFAULT_LOCALE
  return {
    method: 'POST',
    url: endpoint(config.baseUrl, DPD_SOAP_PATH).toString(),
    headers: soapHeaders,
    body: envelope(
      `xmlns:ns="${NS_AUTH}" xmlns:ns1="${NS_PLC}"`,
      `<ns:authentication><delisId>${escapeXml(config.clientId ?? '')}</delisId><authToken>${escapeXml(authToken)}</authToken><messageLanguage>${escapeXml(language)}</messageLanguage></ns:authentication>`,
      `<ns1:getTrackingData><parcelLabelNumber>${escapeXml(parcelLabelNumber)}</parcelLabelNumber></ns1:getTrackingData>`
    )
  }
}

export function dpdLoginRequest(config: CarrierConfig): CarrierRequest {
  return {
    method: 'POST',
    url: endpoint(config.baseUrl, DPD_LOGIN_PATH).toString(),
    headers: soapHeaders,
    body: envelope(
      `xmlns:ns="${NS_LOGIN}"`,
      '',
      `<ns:getAuth><delisId>${escapeXml(config.clientId ?? '')}</delisId><password>${escapeXml(config.clientSecret ?? '')}</password><messageLanguage>${escapeXml(config.locale ?? DPD_DEFAULT_LOCALE)}</messageLanguage></ns:getAuth>`
    )
  }
}

/** The XML body as an object, or why not. Never throws. */
export function readXml(body: string): { ok: true; doc: Record<string, any> } | { ok: false; message: string } {
  try {
    const doc = xml.parse(body)
    if (!doc || typeof doc !== 'object') return { ok: false, message: 'the body is not XML' }
    return { ok: true, doc }
  } catch (err) {
    return { ok: false, message: `the body is not XML (${(err as Error).message})` }
  }
}

/** `<x><content>a</content></x>` → `a` (ContentLine), several lines joined. */
const line = (x: unknown): string | null => {
  if (typeof x === 'string') return x || null
  if (!x || typeof x !== 'object') return null
  const c = (x as { content?: unknown }).content
  const parts = (Array.isArray(c) ? c : [c]).map((p) => (typeof p === 'string' ? p : line(p))).filter((p): p is string => !!p)
  return parts.length ? parts.join(' ') : null
}

const Fault = v.object({ faultcode: v.optional(v.unknown()), faultstring: v.optional(v.unknown()), detail: v.optional(v.unknown()) })

function fault(body: Record<string, any>): { message: string; auth: boolean; client: boolean } | null {
  const f = body?.Fault
  if (!f || typeof f !== 'object') return null
  const p = v.safeParse(Fault, f)
  const detail = p.success ? JSON.stringify(p.output.detail ?? '') : ''
  const text = p.success ? `${typeof p.output.faultstring === 'string' ? p.output.faultstring : 'SOAP fault'}` : 'SOAP fault'
  // SOAP's own split: a `Client` (1.2: `Sender`) fault blames the request — here, the parcel
  // asked for; `Server` or anything else blames DPD.
  const code = p.success && typeof p.output.faultcode === 'string' ? p.output.faultcode : ''
  // DPD reports a refused or expired token as an authenticationFault (LOGIN_*).
  return {
    message: `DPD SOAP fault: ${cutText(text, 200)}`,
    auth: /authenticationFault|LOGIN_|authToken/i.test(detail + text),
    client: /(?:^|:)(?:Client|Sender)$/i.test(code.trim())
  }
}

const isXml = (type: string | undefined) => /xml/i.test(type ?? '')

export function dpdSoapParse(parcelLabelNumber: string, res: CarrierResponse, locale = DPD_DEFAULT_LOCALE): ParseOutcome {
  if (res.status === 429) return { kind: 'rate_limited', retryAfterMs: retryAfterMs(res.headers['retry-after']) }
  const type = res.headers['content-type']
  if (!isXml(type)) {
    if (res.status >= 500) return { kind: 'error', retryable: true, message: `DPD answered HTTP ${res.status}` }
    return { kind: 'error', retryable: true, message: `DPD answered ${type || 'without a content type'} (HTTP ${res.status}), not XML: ${bodyHint(res.body)}` }
  }
  const read = readXml(res.body)
  if (!read.ok) return { kind: 'error', retryable: true, message: `DPD SOAP answer unreadable: ${read.message}: ${bodyHint(res.body)}` }
  const body = read.doc.Envelope?.Body
  if (!body || typeof body !== 'object')
    return { kind: 'error', retryable: res.status >= 500, message: `DPD SOAP answer has no Envelope/Body: ${bodyHint(res.body)}` }
  const f = fault(body)
  if (f) {
    if (f.auth) return { kind: 'error', retryable: true, reauthenticate: true, message: f.message }
    // A fault about this parcel (a Client fault): an answer that says it cannot be tracked. Any
    // other fault ("Fault occurred while processing.") is DPD failing: a failed call, backed
    // off and counted in the carrier's health.
    if (f.client) return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'error', message: f.message }] }
    return { kind: 'error', retryable: true, message: `${f.message} (HTTP ${res.status})` }
  }
  if (res.status !== 200) return { kind: 'error', retryable: res.status >= 500, message: `DPD answered HTTP ${res.status}: ${bodyHint(res.body)}` }
  const result = body.getTrackingDataResponse?.trackingresult
  if (body.getTrackingDataResponse === undefined)
    return { kind: 'error', retryable: false, message: `DPD SOAP answer has no getTrackingDataResponse: ${bodyHint(res.body)}` }
  const entries: unknown[] = Array.isArray(result?.statusInfo) ? result.statusInfo : []
  if (entries.length === 0) return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'not_found' }] }
  const zone = dpdZone(locale)
  const events = entries.flatMap((raw, i): ScanCheck[] => {
    const at = `statusInfo[${i}]`
    const e = (raw ?? {}) as Record<string, unknown>
    const status = typeof e.status === 'string' ? e.status : null
    if (!status) return [rejected(`${at}.status`, 'is required', raw)]
    const c = dpdStatusEntry(
      parcelLabelNumber,
      {
        status,
        date: line(e.date),
        location: line(e.location),
        label: line(e.label),
        description: line(e.description),
        reached: e.statusHasBeenReached === 'true'
      },
      raw,
      at,
      zone
    )
    return c ? [c] : []
  })
  return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'events', events, expectedDelivery: null }] }
}

/** The login answer: the token, used until ten minutes before `authTokenExpires` (local time of `zone`). */
export function dpdLoginParse(res: CarrierResponse, zone: string, now = Date.now()): TokenOutcome {
  if (!isXml(res.headers['content-type']))
    return { error: `DPD login answered HTTP ${res.status}, not XML: ${bodyHint(res.body)}`, retryable: res.status >= 500 || res.status === 429 }
  const read = readXml(res.body)
  const body = read.ok ? read.doc.Envelope?.Body : null
  if (!body || typeof body !== 'object') return { error: `DPD login answer unreadable: ${bodyHint(res.body)}`, retryable: true }
  const f = fault(body)
  if (f) return { error: `DPD refused the login (delisId/password): ${f.message}`, retryable: false }
  const ret = body.getAuthResponse?.return
  const token = typeof ret?.authToken === 'string' ? ret.authToken : ''
  if (!token) return { error: `DPD login answer has no authToken: ${bodyHint(res.body)}`, retryable: true }
  let expires = now + 3_600_000
  if (typeof ret.authTokenExpires === 'string' && dpdLocalTime(ret.authTokenExpires)) {
    try {
      expires = Date.parse(normalizeInstant(ret.authTokenExpires, zone))
    } catch {}
  }
  return { token, expiresAt: Math.max(now, expires - 600_000) }
}
