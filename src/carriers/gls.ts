/**
 * GLS Track & Trace: an OAuth2 client-credentials token from `POST {base}/oauth2/v1/token`,
 * then `GET {base}/track-and-trace-v1/tracking/simple/trackids/{id,id,…}?showEvents=true`
 * with up to 10 tracking numbers per call.
 *
 * Response: `parcels[]`, each with the number it answers (`requested`), `events[]` with `code`,
 * `description`, `city`, `country` and `eventDateTime` carrying a colon-less offset (`+0200`);
 * a parcel GLS does not know comes back inside the HTTP 200 with an `errorCode`. A 401 means
 * the token expired: the caller fetches a new one (tokens are cached until shortly before
 * `expires_in`). carrierStatus is the event `code`. No published GLS answer we could find states a
 * delivery estimate in a structured field, so GLS shipments have no `expectedDelivery`.
 */
import * as v from 'valibot'
import type { Status } from '../pipeline/identity.ts'
import {
  bodyHint,
  cutText,
  DESCRIPTION_MAX,
  endpoint,
  readBody,
  rejected,
  retryAfterMs,
  scanCheck,
  type CarrierConfig,
  type CarrierRequest,
  type CarrierResponse,
  type ParseOutcome,
  type TrackResult
} from './adapter.ts'
import type { Carrier, TokenOutcome } from './carrier.ts'

export const GLS_ZONE = 'Europe/Berlin'
export const GLS_MAX_IDS = 10

const Token = v.object({ access_token: v.pipe(v.string(), v.minLength(1)), expires_in: v.optional(v.number(), 3600), token_type: v.optional(v.string()) })

const GlsEvent = v.object({
  code: v.pipe(v.string(), v.minLength(1)),
  description: v.optional(v.nullable(v.string())),
  city: v.optional(v.nullable(v.string())),
  postalCode: v.optional(v.nullable(v.string())),
  country: v.optional(v.nullable(v.string())),
  eventDateTime: v.string()
})

const GlsResponse = v.object({
  parcels: v.array(
    v.object({
      requested: v.string(),
      unitno: v.optional(v.nullable(v.string())),
      status: v.optional(v.nullable(v.string())),
      events: v.optional(v.nullable(v.array(v.unknown()))),
      errorCode: v.optional(v.nullable(v.string())),
      errorMessage: v.optional(v.nullable(v.string()))
    })
  )
})

export function glsTokenRequest(config: CarrierConfig): CarrierRequest {
  const basic = Buffer.from(`${config.clientId ?? ''}:${config.clientSecret ?? ''}`).toString('base64')
  return {
    method: 'POST',
    url: endpoint(config.baseUrl, '/oauth2/v1/token').toString(),
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: 'grant_type=client_credentials'
  }
}

/** The token and when to stop using it (a minute before GLS says it expires). */
export function glsParseToken(res: CarrierResponse, now = Date.now()): TokenOutcome {
  if (res.status === 401 || res.status === 403) return { error: `GLS refused the client credentials (HTTP ${res.status})`, retryable: false }
  if (res.status !== 200)
    return { error: `GLS token endpoint answered HTTP ${res.status}: ${bodyHint(res.body)}`, retryable: res.status >= 500 || res.status === 429 }
  try {
    const t = v.parse(Token, JSON.parse(res.body))
    return { token: t.access_token, expiresAt: now + Math.max(0, t.expires_in - 60) * 1000 }
  } catch {
    return { error: `GLS token response is not what we expect: ${bodyHint(res.body)}`, retryable: true }
  }
}

export function glsRequest(config: CarrierConfig, token: string, trackingNumbers: string[]): CarrierRequest {
  if (trackingNumbers.length === 0 || trackingNumbers.length > GLS_MAX_IDS) throw new RangeError(`GLS takes 1 to ${GLS_MAX_IDS} tracking numbers per call`)
  const url = endpoint(config.baseUrl, `/track-and-trace-v1/tracking/simple/trackids/${trackingNumbers.map(encodeURIComponent).join(',')}`)
  url.searchParams.set('showEvents', 'true')
  return { method: 'GET', url: url.toString(), headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }
}

export function glsStatus(code: string): Exclude<Status, 'pending'> {
  switch (code.toUpperCase()) {
    case 'PREADVICE':
      return 'info_received'
    case 'INTRANSIT':
    case 'INWAREHOUSE':
      return 'in_transit'
    case 'INDELIVERY':
      return 'out_for_delivery'
    case 'NOTDELIVERED':
      return 'failed_attempt'
    case 'DELIVEREDPS':
    case 'ATPARCELSHOP':
      return 'available_for_pickup'
    case 'DELIVERED':
      return 'delivered'
    case 'RETURNED':
      return 'returned'
    case 'CANCELED':
    case 'DAMAGED':
      return 'exception'
    default:
      return 'unknown'
  }
}

export function glsParse(trackingNumbers: string[], res: CarrierResponse): ParseOutcome {
  if (res.status === 429) return { kind: 'rate_limited', retryAfterMs: retryAfterMs(res.headers['retry-after']) }
  if (res.status === 401) return { kind: 'error', retryable: true, reauthenticate: true, message: 'GLS refused the access token (expired?)' }
  if (res.status >= 500) return { kind: 'error', retryable: true, message: `GLS answered HTTP ${res.status}` }
  if (res.status !== 200) return { kind: 'error', retryable: false, message: `GLS answered HTTP ${res.status}: ${bodyHint(res.body)}` }
  const parsed = readBody('GLS', res.body, GlsResponse)
  if (!parsed.ok) return parsed.outcome
  // Every entry of a number: an answer (or a push) may name one twice, and each entry's scans count.
  const byNumber = new Map<string, (typeof parsed.value.parcels)[number][]>()
  for (const p of parsed.value.parcels) {
    const tn = p.requested.replace(/\s+/g, '').toUpperCase()
    byNumber.set(tn, [...(byNumber.get(tn) ?? []), p])
  }
  const results: TrackResult[] = [...new Set(trackingNumbers)].flatMap((tn): TrackResult[] => {
    const entries = byNumber.get(tn) ?? []
    if (entries.length === 0) return [{ trackingNumber: tn, kind: 'error', message: 'GLS did not answer for this tracking number' }]
    const failed = entries.filter((p) => p.errorCode)
    const readable = entries.filter((p) => !p.errorCode)
    const errors = failed.map(
      (p): TrackResult =>
        /404|NOT.?FOUND/i.test(`${p.errorCode} ${p.errorMessage ?? ''}`)
          ? { trackingNumber: tn, kind: 'not_found' }
          : { trackingNumber: tn, kind: 'error', message: `GLS: ${p.errorCode} ${p.errorMessage ?? ''}`.trim(), sample: p }
    )
    if (readable.length === 0) return errors.slice(0, 1)
    const raws = readable.flatMap((p) => p.events ?? [])
    const events = raws.map((raw, i) => {
      const e = v.safeParse(GlsEvent, raw)
      if (!e.success) return rejected(`parcels[${tn}].events[${i}].${v.getDotPath(e.issues[0]) ?? ''}`, e.issues[0].message, raw)
      const { code, description, city, postalCode, country, eventDateTime } = e.output
      return scanCheck(
        {
          carrier: 'gls',
          trackingNumber: tn,
          carrierStatus: code,
          status: glsStatus(code),
          occurredAt: eventDateTime,
          location: [[postalCode, city].filter(Boolean).join(' '), country].filter(Boolean).join(', ') || null,
          description: description == null ? null : cutText(description, DESCRIPTION_MAX)
        },
        { zone: GLS_ZONE, raw, at: `parcels[${tn}].events[${i}]`, names: { occurredAt: 'eventDateTime', carrierStatus: 'code' } }
      )
    })
    // Scans and an error for one number: the scans are stored, the error is not hidden.
    return [{ trackingNumber: tn, kind: 'events', events, expectedDelivery: null }, ...errors.filter((r) => r.kind === 'error')]
  })
  return { kind: 'ok', results }
}

const PushIds = v.object({ parcels: v.array(v.object({ requested: v.string() })) })

export const gls: Carrier = {
  code: 'gls',
  name: 'GLS',
  forms: ['json'],
  maxPerCall: () => GLS_MAX_IDS,
  zone: () => GLS_ZONE,
  status: glsStatus,
  auth: (config) => ({ request: () => glsTokenRequest(config), parse: (res, now) => glsParseToken(res, now) }),
  request: (config, numbers, token) => glsRequest(config, token ?? '', numbers),
  parse: (numbers, res) => glsParse(numbers, res),
  /** A push carries GLS's `parcels[]`, read as the answer for the numbers it names. */
  push(body) {
    const parsed = readBody('GLS push', body, PushIds)
    if (!parsed.ok) return parsed.outcome
    return glsParse(
      parsed.value.parcels.map((p) => p.requested.replace(/\s+/g, '').toUpperCase()),
      { status: 200, headers: { 'content-type': 'application/json' }, body }
    )
  },
  env: (c) => ({ baseUrl: c.GLS_BASE_URL, client: { clientId: c.GLS_CLIENT_ID, clientSecret: c.GLS_CLIENT_SECRET }, secret: c.GLS_WEBHOOK_SECRET })
}
