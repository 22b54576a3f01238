/**
 * DPD parcel life cycle, JSON form: `GET {base}/rest/plc/{locale}/{parcelLabelNumber}` answers
 * `{ parcellifecycleResponse: { parcelLifeCycleData: { shipmentInfo, statusInfo[], scanInfo: { scan[] } } } }`.
 * (The SOAP `getTrackingData` carries the same data; this adapter speaks the JSON form.)
 *
 * Events come from `scanInfo.scan[]`: `date` is local wall time in DPD's US form
 * (`8/18/2021 2:43:31 PM`, no offset), read in the zone of the locale's country; `scanData`
 * names the scan type (PickedUp, BetweenDepots, Depot, Courier, DeliveryFailure, ParcelShop,
 * Delivered, …) and the depot. DPD sometimes answers errors with an HTML page under HTTP 200:
 * the content type is checked before anything is parsed.
 *
 * carrierStatus is the scan type. Two scans of one type at the same instant (DPD records, say,
 * inbound and outbound sorting at two depots with one timestamp) are one fact to us: they share
 * a dedupKey, the first is stored and the second is a duplicate. The contract's key has no
 * location, and the tracking page gains nothing from a second identical status at the same time.
 */
import * as v from 'valibot'
import { toNormalizedEvent } from '../pipeline/event.ts'
import type { Status } from '../pipeline/identity.ts'
import { bodyHint, endpoint, readBody, retryAfterMs, type CarrierConfig, type CarrierRequest, type CarrierResponse, type ParseOutcome } from './adapter.ts'

const ZONES: Record<string, string> = {
  DE: 'Europe/Berlin', AT: 'Europe/Vienna', CH: 'Europe/Zurich', NL: 'Europe/Amsterdam', BE: 'Europe/Brussels', LU: 'Europe/Luxembourg',
  FR: 'Europe/Paris', PL: 'Europe/Warsaw', CZ: 'Europe/Prague', SK: 'Europe/Bratislava', HU: 'Europe/Budapest', GB: 'Europe/London',
  IE: 'Europe/Dublin', ES: 'Europe/Madrid', PT: 'Europe/Lisbon', IT: 'Europe/Rome', DK: 'Europe/Copenhagen', EE: 'Europe/Tallinn',
  LV: 'Europe/Riga', LT: 'Europe/Vilnius', HR: 'Europe/Zagreb', SI: 'Europe/Ljubljana'
}

/** The IANA zone DPD's local times are in, from a locale like `de_DE`; Berlin when unknown. */
export const dpdZone = (locale: string) => ZONES[locale.split(/[_-]/)[1]?.toUpperCase() ?? ''] ?? 'Europe/Berlin'

const Scan = v.object({
  date: v.string(),
  scanData: v.object({
    scanType: v.object({ name: v.pipe(v.string(), v.minLength(1)) }),
    location: v.optional(v.nullable(v.string())),
    depot: v.optional(v.nullable(v.string()))
  }),
  scanDescription: v.optional(v.nullable(v.object({ content: v.optional(v.array(v.string()), []) })))
})

const DpdResponse = v.object({
  parcellifecycleResponse: v.object({
    parcelLifeCycleData: v.nullable(
      v.object({
        shipmentInfo: v.optional(v.object({ parcelLabelNumber: v.optional(v.string()) })),
        scanInfo: v.optional(v.nullable(v.object({ scan: v.optional(v.nullable(v.array(v.unknown()))) })))
      })
    )
  })
})

export function dpdRequest(config: CarrierConfig, parcelLabelNumber: string): CarrierRequest {
  const locale = config.locale ?? 'de_DE'
  return { method: 'GET', url: endpoint(config.baseUrl, `/rest/plc/${encodeURIComponent(locale)}/${encodeURIComponent(parcelLabelNumber)}`).toString(), headers: { accept: 'application/json' } }
}

/** `8/18/2021 2:43:31 PM` → `2021-08-18T14:43:31` (wall time, no offset); null if it is not that. */
export function dpdLocalTime(input: string): string | null {
  const m = /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])\s*$/.exec(input)
  if (!m) return null
  const [, mo, d, y, h, mi, s = '00', ampm] = m
  let hour = Number(h)
  if (hour < 1 || hour > 12) return null
  if (ampm!.toUpperCase() === 'AM') hour = hour === 12 ? 0 : hour
  else hour = hour === 12 ? 12 : hour + 12
  const p = (n: string | number) => String(n).padStart(2, '0')
  return `${y}-${p(mo!)}-${p(d!)}T${p(hour)}:${mi}:${s}`
}

export function dpdStatus(scanType: string): Exclude<Status, 'pending'> {
  switch (scanType.toLowerCase()) {
    case 'accepted':
    case 'preadvice':
    case 'shipmentinfo':
      return 'info_received'
    case 'pickedup':
    case 'betweendepots':
    case 'depot':
      return 'in_transit'
    case 'courier':
      return 'out_for_delivery'
    case 'deliveryfailure':
      return 'failed_attempt'
    case 'parcelshop':
      return 'available_for_pickup'
    case 'delivered':
      return 'delivered'
    case 'returned':
    case 'returntosender':
      return 'returned'
    default:
      return 'unknown'
  }
}

export function dpdParse(parcelLabelNumber: string, res: CarrierResponse, locale = 'de_DE'): ParseOutcome {
  if (res.status === 429) return { kind: 'rate_limited', retryAfterMs: retryAfterMs(res.headers['retry-after']) }
  if (res.status >= 500) return { kind: 'error', retryable: true, message: `DPD answered HTTP ${res.status}` }
  const type = res.headers['content-type'] ?? ''
  // Must come before any parsing: DPD's error pages are HTML, sometimes under a 200.
  if (!/json/i.test(type)) return { kind: 'error', retryable: true, message: `DPD answered ${type || 'without a content type'} (HTTP ${res.status}), not JSON: ${bodyHint(res.body)}` }
  if (res.status === 404) return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'not_found' }] }
  if (res.status !== 200) return { kind: 'error', retryable: false, message: `DPD answered HTTP ${res.status}: ${bodyHint(res.body)}` }
  const parsed = readBody('DPD', res.body, DpdResponse)
  if (!parsed.ok) return parsed.outcome
  const data = parsed.value.parcellifecycleResponse.parcelLifeCycleData
  if (!data) return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'not_found' }] }
  const zone = dpdZone(locale)
  const events = (data.scanInfo?.scan ?? []).map((raw, i) => {
    const s = v.safeParse(Scan, raw)
    if (!s.success) return { ok: false as const, field: `scan[${i}].${v.getDotPath(s.issues[0]) ?? ''}`, message: s.issues[0].message }
    const local = dpdLocalTime(s.output.date)
    if (!local) return { ok: false as const, field: `scan[${i}].date`, message: `"${s.output.date}" is not a DPD date (M/D/YYYY h:mm:ss AM|PM)` }
    const name = s.output.scanData.scanType.name
    const where = [s.output.scanData.location, s.output.scanData.depot ? `depot ${s.output.scanData.depot}` : null].filter(Boolean).join(', ')
    return toNormalizedEvent(
      { carrier: 'dpd', trackingNumber: parcelLabelNumber, carrierStatus: name, status: dpdStatus(name), occurredAt: local, location: where || null, description: s.output.scanDescription?.content?.join(' ').slice(0, 1000) || null },
      { zone, raw }
    )
  })
  return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'events', events }] }
}
