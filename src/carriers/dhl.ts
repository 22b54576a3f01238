/**
 * DHL Shipment Tracking – Unified API: `GET {base}/track/shipments?trackingNumber=…` with the
 * header `DHL-API-Key`; one tracking number per call.
 *
 * Response: `shipments[]`, each with `id`, `status`, `estimatedTimeOfDelivery`,
 * `estimatedDeliveryTimeFrame {estimatedFrom, estimatedThrough}` and `events[]` with `timestamp`,
 * `statusCode` (pre-transit, transit, delivered, failure, unknown), `status`, `description`,
 * `location.address`. Timestamps come with `Z`, with an offset, or with none (parcel-de answers
 * carry none: Europe/Berlin wall time). A 404 is a problem-details JSON meaning "not known to DHL
 * yet" — not an error. A 429 carries Retry-After.
 *
 * carrierStatus (part of the dedupKey) is DHL's `statusCode`: two scans with the same code at the
 * same instant are one fact to us, as the contract's key says.
 */
import * as v from 'valibot'
import type { Status } from '../pipeline/identity.ts'
import {
  bodyHint,
  cutText,
  DESCRIPTION_MAX,
  endpoint,
  expectedDelivery,
  instantOrNull,
  readBody,
  retryAfterMs,
  scanCheck,
  type CarrierConfig,
  type CarrierRequest,
  type CarrierResponse,
  type ParseOutcome
} from './adapter.ts'
import type { Carrier } from './carrier.ts'

export const DHL_ZONE = 'Europe/Berlin'

const Address = v.object({
  addressLocality: v.optional(v.nullable(v.string())),
  postalCode: v.optional(v.nullable(v.string())),
  countryCode: v.optional(v.nullable(v.string()))
})

const DhlEvent = v.object({
  timestamp: v.string(),
  statusCode: v.optional(v.nullable(v.string())),
  status: v.optional(v.nullable(v.string())),
  description: v.optional(v.nullable(v.string())),
  location: v.optional(v.nullable(v.object({ address: v.optional(v.nullable(Address)) })))
})

const DhlResponse = v.object({
  shipments: v.array(
    v.object({
      id: v.string(),
      details: v.optional(v.nullable(v.object({ pieceIds: v.optional(v.nullable(v.array(v.string()))) }))),
      events: v.optional(v.array(v.unknown()), []),
      estimatedTimeOfDelivery: v.optional(v.unknown()),
      estimatedDeliveryTimeFrame: v.optional(v.unknown())
    })
  )
})

export function dhlRequest(config: CarrierConfig, trackingNumber: string): CarrierRequest {
  const url = endpoint(config.baseUrl, '/track/shipments')
  url.searchParams.set('trackingNumber', trackingNumber)
  return { method: 'GET', url: url.toString(), headers: { 'DHL-API-Key': config.apiKey ?? '', accept: 'application/json' } }
}

/** DHL's coarse statusCode, refined by the words of the scan where DHL itself is coarser than us. */
export function dhlStatus(statusCode: string | null | undefined, text = ''): Exclude<Status, 'pending'> {
  const t = text.toLowerCase()
  switch (statusCode) {
    case 'pre-transit':
      return 'info_received'
    case 'transit':
      if (/out for delivery|in zustellung|zustellfahrzeug/.test(t)) return 'out_for_delivery'
      if (/packstation|parcel shop|paketshop|filiale|ready for pick ?up|abholbereit/.test(t)) return 'available_for_pickup'
      return 'in_transit'
    case 'delivered':
      return 'delivered'
    case 'failure':
      if (/return|rücksendung|zurück/.test(t)) return 'returned'
      if (/attempt|not at home|nicht angetroffen|could not be delivered/.test(t)) return 'failed_attempt'
      return 'exception'
    default:
      return 'unknown'
  }
}

/**
 * The estimate of a shipment: the time frame gives both ends, `estimatedTimeOfDelivery` alone
 * gives the end. Unreadable values count as none (an estimate is never guessed).
 */
export function dhlExpectedDelivery(s: { estimatedTimeOfDelivery?: unknown; estimatedDeliveryTimeFrame?: unknown }) {
  const frame = (s.estimatedDeliveryTimeFrame ?? null) as { estimatedFrom?: unknown; estimatedThrough?: unknown } | null
  const from = typeof frame === 'object' && frame ? instantOrNull(frame.estimatedFrom, DHL_ZONE) : null
  const through = typeof frame === 'object' && frame ? instantOrNull(frame.estimatedThrough, DHL_ZONE) : null
  if (from !== null || through !== null) return expectedDelivery(from, through)
  return expectedDelivery(null, instantOrNull(s.estimatedTimeOfDelivery, DHL_ZONE))
}

const norm = (s: string) => s.replace(/\s+/g, '').toUpperCase()

export function dhlParse(trackingNumber: string, res: CarrierResponse): ParseOutcome {
  if (res.status === 429) return { kind: 'rate_limited', retryAfterMs: retryAfterMs(res.headers['retry-after']) }
  if (res.status === 404) return { kind: 'ok', results: [{ trackingNumber, kind: 'not_found' }] }
  if (res.status === 401 || res.status === 403) return { kind: 'error', retryable: false, message: `DHL refused the API key (HTTP ${res.status})` }
  if (res.status >= 500) return { kind: 'error', retryable: true, message: `DHL answered HTTP ${res.status}` }
  if (res.status !== 200) return { kind: 'error', retryable: false, message: `DHL answered HTTP ${res.status}: ${bodyHint(res.body)}` }

  const parsed = readBody('DHL', res.body, DhlResponse)
  if (!parsed.ok) return parsed.outcome
  // The shipment answering this number: by its id, or by one of its pieces (a piece number asked
  // for is answered under the shipment's id). Never another shipment: its events would be stored
  // under this number.
  const shipment =
    parsed.value.shipments.find((s) => norm(s.id) === trackingNumber) ??
    parsed.value.shipments.find((s) => s.details?.pieceIds?.some((p) => norm(p) === trackingNumber))
  if (!shipment) {
    if (parsed.value.shipments.length === 0) return { kind: 'ok', results: [{ trackingNumber, kind: 'not_found' }] }
    const ids = parsed.value.shipments
      .map((s) => s.id)
      .slice(0, 3)
      .join(', ')
    return {
      kind: 'ok',
      results: [
        {
          trackingNumber,
          kind: 'error',
          message: `DHL answered for ${ids}, not for ${trackingNumber}`,
          sample: { ids: parsed.value.shipments.map((s) => s.id).slice(0, 10) }
        }
      ]
    }
  }
  const events = shipment.events.map((raw, i) => {
    const e = v.safeParse(DhlEvent, raw)
    if (!e.success) return { ok: false as const, field: `events[${i}].${v.getDotPath(e.issues[0]) ?? ''}`, message: e.issues[0].message, sample: raw }
    const { timestamp, statusCode, status, description, location } = e.output
    const a = location?.address
    const place = [a?.postalCode, a?.addressLocality].filter(Boolean).join(' ')
    return scanCheck(
      {
        carrier: 'dhl',
        trackingNumber,
        carrierStatus: statusCode || 'unknown',
        status: dhlStatus(statusCode, `${status ?? ''} ${description ?? ''}`),
        occurredAt: timestamp,
        location: [place, a?.countryCode].filter(Boolean).join(', ') || null,
        description: description || status ? cutText((description || status)!, DESCRIPTION_MAX) : null
      },
      {
        zone: DHL_ZONE,
        raw,
        at: `events[${i}]`,
        names: { occurredAt: 'timestamp', carrierStatus: 'statusCode', description: 'description', location: 'location' }
      }
    )
  })
  return { kind: 'ok', results: [{ trackingNumber, kind: 'events', events, expectedDelivery: dhlExpectedDelivery(shipment) }] }
}

const PushIds = v.object({ shipments: v.array(v.object({ id: v.string() })) })

/** A push carries DHL's `shipments[]`: each shipment is read as the answer for its own number. */
export function dhlPush(body: string): ParseOutcome {
  const parsed = readBody('DHL push', body, PushIds)
  if (!parsed.ok) return parsed.outcome
  // The validated output drops unknown keys (the events); pass each shipment as it came.
  const shipments = (parsed.json as { shipments: unknown[] }).shipments
  const results = parsed.value.shipments.flatMap((s, i) => {
    const out = dhlParse(norm(s.id), { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ shipments: [shipments[i]] }) })
    return out.kind === 'ok'
      ? out.results
      : [{ trackingNumber: norm(s.id), kind: 'error' as const, message: out.kind === 'error' ? out.message : 'unreadable', sample: shipments[i] }]
  })
  return { kind: 'ok', results }
}

export const dhl: Carrier = {
  code: 'dhl',
  name: 'DHL',
  forms: ['json'],
  maxPerCall: () => 1,
  zone: () => DHL_ZONE,
  status: dhlStatus,
  request: (config, [tn]) => dhlRequest(config, tn!),
  parse: ([tn], res) => dhlParse(tn!, res),
  push: dhlPush,
  env: (c) => ({ baseUrl: c.DHL_BASE_URL, client: { apiKey: c.DHL_API_KEY }, secret: c.DHL_WEBHOOK_SECRET })
}
