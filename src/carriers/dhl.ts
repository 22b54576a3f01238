/**
 * DHL Shipment Tracking – Unified API: `GET {base}/track/shipments?trackingNumber=…` with the
 * header `DHL-API-Key`; one tracking number per call.
 *
 * Response: `shipments[].events[]` with `timestamp`, `statusCode` (pre-transit, transit,
 * delivered, failure, unknown), `status`, `description`, `location.address`. Timestamps come
 * with `Z`, with an offset, or with none (then they are Europe/Berlin wall time). A 404 is a
 * problem-details JSON meaning "not known to DHL yet" — not an error. A 429 carries Retry-After.
 *
 * carrierStatus (part of the dedupKey) is DHL's `statusCode`: two scans with the same code at the
 * same instant are one fact to us, as the contract's key says.
 */
import * as v from 'valibot'
import { toNormalizedEvent } from '../pipeline/event.ts'
import type { Status } from '../pipeline/identity.ts'
import { bodyHint, endpoint, readBody, retryAfterMs, type CarrierConfig, type CarrierRequest, type CarrierResponse, type ParseOutcome } from './adapter.ts'

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
  shipments: v.array(v.object({ id: v.string(), events: v.optional(v.array(v.unknown()), []) }))
})

export function dhlRequest(config: CarrierConfig, trackingNumber: string): CarrierRequest {
  const url = endpoint(config.baseUrl, '/track/shipments')
  url.searchParams.set('trackingNumber', trackingNumber)
  return { method: 'GET', url: url.toString(), headers: { 'DHL-API-Key': config.apiKey ?? '', accept: 'application/json' } }
}

/** DHL's coarse statusCode, refined by the words of the scan where DHL itself is coarser than us. */
export function dhlStatus(statusCode: string | null | undefined, text: string): Exclude<Status, 'pending'> {
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

export function dhlParse(trackingNumber: string, res: CarrierResponse): ParseOutcome {
  if (res.status === 429) return { kind: 'rate_limited', retryAfterMs: retryAfterMs(res.headers['retry-after']) }
  if (res.status === 404) return { kind: 'ok', results: [{ trackingNumber, kind: 'not_found' }] }
  if (res.status === 401 || res.status === 403) return { kind: 'error', retryable: false, message: `DHL refused the API key (HTTP ${res.status})` }
  if (res.status >= 500) return { kind: 'error', retryable: true, message: `DHL answered HTTP ${res.status}` }
  if (res.status !== 200) return { kind: 'error', retryable: false, message: `DHL answered HTTP ${res.status}: ${bodyHint(res.body)}` }

  const parsed = readBody('DHL', res.body, DhlResponse)
  if (!parsed.ok) return parsed.outcome
  const shipment = parsed.value.shipments.find((s) => s.id.replace(/\s+/g, '').toUpperCase() === trackingNumber) ?? parsed.value.shipments[0]
  if (!shipment) return { kind: 'ok', results: [{ trackingNumber, kind: 'not_found' }] }
  const events = shipment.events.map((raw, i) => {
    const e = v.safeParse(DhlEvent, raw)
    if (!e.success) return { ok: false as const, field: `events[${i}].${v.getDotPath(e.issues[0]) ?? ''}`, message: e.issues[0].message }
    const { timestamp, statusCode, status, description, location } = e.output
    const a = location?.address
    const place = [a?.postalCode, a?.addressLocality].filter(Boolean).join(' ')
    return toNormalizedEvent(
      {
        carrier: 'dhl',
        trackingNumber,
        carrierStatus: statusCode || 'unknown',
        status: dhlStatus(statusCode, `${status ?? ''} ${description ?? ''}`),
        occurredAt: timestamp,
        location: [place, a?.countryCode].filter(Boolean).join(', ') || null,
        description: (description || status || null)?.slice(0, 1000) ?? null
      },
      { zone: DHL_ZONE, raw }
    )
  })
  return { kind: 'ok', results: [{ trackingNumber, kind: 'events', events }] }
}
