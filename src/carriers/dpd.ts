/**
 * DPD parcel life cycle, in either of its forms (`DPD_FORM`, default `json`):
 *
 * * `json`: `GET {base}/rest/plc/{locale}/{parcelLabelNumber}` answers
 *   `{ parcellifecycleResponse: { parcelLifeCycleData: { shipmentInfo, statusInfo[], scanInfo: { scan[] } } } }`.
 * * `soap`: `getTrackingData` at `{base}/soap/services/ParcelLifeCycleService/V2_0` (dpd-soap.ts).
 *
 * Events come from `scanInfo.scan[]`: the time is `date`, local wall time of the locale's
 * country in any form DPD is known to send (below), else `scanData.scanDate` + `scanData.scanTime`;
 * `scanData.scanType.name` is the scan type (PickedUp, BetweenDepots, Depot, Courier,
 * DeliveryFailure, ParcelShop, Delivered, …) and carrierStatus. DPD answers some parcels with
 * status entries only: without `scanInfo`, the reached `statusInfo[]` entries with a date are the
 * events, their `status` (ACCEPTED, ON_THE_ROAD, …) the carrierStatus. Entries not reached yet
 * are DPD's forecast, not facts, and are left out. DPD sometimes answers errors with an HTML page
 * under HTTP 200: the content type is checked before anything is parsed.
 *
 * Local times without an offset are read in the zone of the locale's country by the identity
 * rules (src/pipeline/identity.ts): a wall time repeated by the autumn change is the earlier
 * instant, one skipped in spring moves forward by the gap.
 *
 * Two scans of one type at the same instant (DPD records, say, inbound and outbound sorting at
 * two depots with one timestamp) are one fact to us: they share a dedupKey, the first is stored
 * and the second is a duplicate. DPD states no delivery estimate in a structured field of either
 * form (`shipmentInfo.predictInformation` is free text in the locale's language), so DPD
 * shipments have no `expectedDelivery`: an estimate is never guessed from prose.
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
  type ScanCheck
} from './adapter.ts'
import { formOf, type Carrier } from './carrier.ts'
import { dpdLoginParse, dpdLoginRequest, dpdSoapParse, dpdSoapRequest } from './dpd-soap.ts'

const ZONES: Record<string, string> = {
  DE: 'Europe/Berlin',
  AT: 'Europe/Vienna',
  CH: 'Europe/Zurich',
  NL: 'Europe/Amsterdam',
  BE: 'Europe/Brussels',
  LU: 'Europe/Luxembourg',
  FR: 'Europe/Paris',
  PL: 'Europe/Warsaw',
  CZ: 'Europe/Prague',
  SK: 'Europe/Bratislava',
  HU: 'Europe/Budapest',
  GB: 'Europe/London',
  IE: 'Europe/Dublin',
  ES: 'Europe/Madrid',
  PT: 'Europe/Lisbon',
  IT: 'Europe/Rome',
  DK: 'Europe/Copenhagen',
  EE: 'Europe/Tallinn',
  LV: 'Europe/Riga',
  LT: 'Europe/Vilnius',
  HR: 'Europe/Zagreb',
  SI: 'Europe/Ljubljana'
}

export const DPD_DEFAULT_LOCALE = 'de_DE'

/** The IANA zone DPD's local times are in, from a locale like `de_DE`; Berlin when unknown. */
export const dpdZone = (locale: string) => ZONES[locale.split(/[_-]/)[1]?.toUpperCase() ?? ''] ?? 'Europe/Berlin'

export const DPD_DATE_FORMS = 'YYYY-MM-DDThh:mm:ss[.fff], M/D/YYYY h:mm:ss AM|PM, or scanDate YYYY-MM-DD with scanTime hh:mm:ss'

const ISO_RE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/
const US_RE = /^(\d{1,2})\/(\d{1,2})\/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])$/

/**
 * A DPD time as the identity rules read it, or null when it is in no form DPD is known to send:
 * ISO-8601 local wall time with or without fractions (`2026-01-19T17:42:05`, as the German
 * endpoint sends it), or the US form some locales produce (`8/18/2021 2:43:31 PM` →
 * `2021-08-18T14:43:31`). Calendar checks (February 30th) are the identity's.
 */
export function dpdLocalTime(input: string): string | null {
  const s = input.trim()
  if (ISO_RE.test(s)) return s
  const m = US_RE.exec(s)
  if (!m) return null
  const [, mo, d, y, h, mi, sec = '00', ampm] = m
  let hour = Number(h)
  if (hour < 1 || hour > 12) return null
  if (ampm!.toUpperCase() === 'AM') hour = hour === 12 ? 0 : hour
  else hour = hour === 12 ? 12 : hour + 12
  const p = (n: string | number) => String(n).padStart(2, '0')
  return `${y}-${p(mo!)}-${p(d!)}T${p(hour)}:${mi}:${sec}`
}

/** `scanDate` + `scanTime` (`2026-01-19` and `17:42:05`) as one local time; null unless both are that. */
export function dpdScanDateTime(date: unknown, time: unknown): string | null {
  if (typeof date !== 'string' || typeof time !== 'string') return null
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date.trim()) || !/^\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$/.test(time.trim())) return null
  return `${date.trim()}T${time.trim()}`
}

/** DPD's scan types and status codes (statusInfo, SOAP `status`) → our statuses. */
export function dpdStatus(code: string): Exclude<Status, 'pending'> {
  switch (code.toLowerCase().replace(/[^a-z]/g, '')) {
    case 'accepted':
    case 'preadvice':
    case 'shipmentinfo':
    case 'shipment':
      return 'info_received'
    case 'pickedup':
    case 'betweendepots':
    case 'depot':
    case 'atsendingdepot':
    case 'ontheroad':
    case 'atdeliverydepot':
    case 'hub':
      return 'in_transit'
    case 'courier':
    case 'outfordelivery':
      return 'out_for_delivery'
    case 'deliveryfailure':
    case 'notdelivered':
      return 'failed_attempt'
    case 'parcelshop':
    case 'pickup':
    case 'atparcelshop':
      return 'available_for_pickup'
    case 'delivered':
    case 'deliveredbydriver':
      return 'delivered'
    case 'returned':
    case 'returntosender':
      return 'returned'
    default:
      return 'unknown'
  }
}

const Text = v.optional(v.nullable(v.string()))

const Scan = v.object({
  date: v.optional(v.nullable(v.unknown())),
  scanData: v.object({
    scanDate: v.optional(v.nullable(v.unknown())),
    scanTime: v.optional(v.nullable(v.unknown())),
    scanType: v.object({ name: v.pipe(v.string(), v.minLength(1)) }),
    location: Text,
    scanDepot: v.optional(v.nullable(v.object({ number: Text })))
  }),
  scanDescription: v.optional(v.nullable(v.object({ content: v.optional(v.nullable(v.array(v.string()))) })))
})

const StatusEntry = v.object({
  status: v.pipe(v.string(), v.minLength(1)),
  label: Text,
  description: v.optional(v.nullable(v.object({ content: v.optional(v.nullable(v.array(v.string()))) }))),
  statusHasBeenReached: v.optional(v.nullable(v.boolean())),
  location: Text,
  date: v.optional(v.nullable(v.unknown()))
})

const DpdResponse = v.object({
  parcellifecycleResponse: v.object({
    parcelLifeCycleData: v.nullable(
      v.object({
        shipmentInfo: v.optional(v.nullable(v.object({ parcelLabelNumber: v.optional(v.nullable(v.string())) }))),
        statusInfo: v.optional(v.nullable(v.array(v.unknown()))),
        scanInfo: v.optional(v.nullable(v.object({ scan: v.optional(v.nullable(v.array(v.unknown()))) })))
      })
    )
  })
})

export function dpdJsonRequest(config: CarrierConfig, parcelLabelNumber: string): CarrierRequest {
  const locale = config.locale ?? DPD_DEFAULT_LOCALE
  return {
    method: 'GET',
    url: endpoint(config.baseUrl, `/rest/plc/${encodeURIComponent(locale)}/${encodeURIComponent(parcelLabelNumber)}`).toString(),
    headers: { accept: 'application/json' }
  }
}

/** One status entry (JSON statusInfo[] or SOAP statusInfo) as an event; null when DPD has not reached it yet. */
export function dpdStatusEntry(
  parcelLabelNumber: string,
  e: { status: string; date: unknown; location?: string | null; label?: string | null; description: string | null; reached: boolean },
  raw: unknown,
  at: string,
  zone: string
): ScanCheck | null {
  if (!e.reached) return null
  const local = typeof e.date === 'string' ? dpdLocalTime(e.date) : null
  if (!local)
    return rejected(
      `${at}.date`,
      e.date == null || e.date === '' ? 'is required for a reached status' : `${JSON.stringify(e.date)} is not a DPD date (${DPD_DATE_FORMS})`,
      raw
    )
  return scanCheck(
    {
      carrier: 'dpd',
      trackingNumber: parcelLabelNumber,
      carrierStatus: e.status,
      status: dpdStatus(e.status),
      occurredAt: local,
      location: e.location || null,
      description: e.description || e.label ? cutText((e.description || e.label)!, DESCRIPTION_MAX) : null
    },
    { zone, raw, at, names: { occurredAt: 'date', carrierStatus: 'status', location: 'location', description: 'description' } }
  )
}

function scanEvent(parcelLabelNumber: string, raw: unknown, i: number, zone: string): ScanCheck {
  const at = `scan[${i}]`
  const s = v.safeParse(Scan, raw)
  if (!s.success) return rejected(`${at}.${v.getDotPath(s.issues[0]) ?? ''}`, s.issues[0].message, raw)
  const { date, scanData, scanDescription } = s.output
  // `date` first; its parts beside it when `date` is absent or in a form we do not read.
  const local = (typeof date === 'string' ? dpdLocalTime(date) : null) ?? dpdScanDateTime(scanData.scanDate, scanData.scanTime)
  if (!local) {
    const given = date ?? (scanData.scanDate != null ? `${scanData.scanDate} ${scanData.scanTime ?? ''}`.trim() : null)
    return rejected(
      `${at}.date`,
      given == null || given === '' ? 'is required (or scanData.scanDate with scanTime)' : `${JSON.stringify(given)} is not a DPD date (${DPD_DATE_FORMS})`,
      raw
    )
  }
  const name = scanData.scanType.name
  const depot = scanData.scanDepot?.number
  const where = [scanData.location, depot ? `depot ${depot}` : null].filter(Boolean).join(', ')
  return scanCheck(
    {
      carrier: 'dpd',
      trackingNumber: parcelLabelNumber,
      carrierStatus: name,
      status: dpdStatus(name),
      occurredAt: local,
      location: where || null,
      description: cutText(scanDescription?.content?.join(' ') ?? '', DESCRIPTION_MAX) || null
    },
    {
      zone,
      raw,
      at,
      names: { occurredAt: 'date', carrierStatus: 'scanData.scanType.name', location: 'scanData.location', description: 'scanDescription.content' }
    }
  )
}

function statusEvents(parcelLabelNumber: string, entries: unknown[], zone: string): ScanCheck[] {
  return entries.flatMap((raw, i) => {
    const at = `statusInfo[${i}]`
    const s = v.safeParse(StatusEntry, raw)
    if (!s.success) return [rejected(`${at}.${v.getDotPath(s.issues[0]) ?? ''}`, s.issues[0].message, raw)]
    const e = s.output
    const check = dpdStatusEntry(
      parcelLabelNumber,
      {
        status: e.status,
        date: e.date,
        location: e.location,
        label: e.label,
        description: e.description?.content?.join(' ') || null,
        reached: e.statusHasBeenReached === true
      },
      raw,
      at,
      zone
    )
    return check ? [check] : []
  })
}

export function dpdJsonParse(parcelLabelNumber: string, res: CarrierResponse, locale = DPD_DEFAULT_LOCALE): ParseOutcome {
  if (res.status === 429) return { kind: 'rate_limited', retryAfterMs: retryAfterMs(res.headers['retry-after']) }
  if (res.status >= 500) return { kind: 'error', retryable: true, message: `DPD answered HTTP ${res.status}` }
  const type = res.headers['content-type'] ?? ''
  // Must come before any parsing: DPD's error pages are HTML, sometimes under a 200.
  if (!/json/i.test(type))
    return { kind: 'error', retryable: true, message: `DPD answered ${type || 'without a content type'} (HTTP ${res.status}), not JSON: ${bodyHint(res.body)}` }
  if (res.status === 404) return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'not_found' }] }
  if (res.status !== 200) return { kind: 'error', retryable: false, message: `DPD answered HTTP ${res.status}: ${bodyHint(res.body)}` }
  const parsed = readBody('DPD', res.body, DpdResponse)
  if (!parsed.ok) return parsed.outcome
  const data = parsed.value.parcellifecycleResponse.parcelLifeCycleData
  if (!data) return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'not_found' }] }
  const zone = dpdZone(locale)
  const scans = data.scanInfo?.scan ?? []
  const events =
    scans.length > 0 ? scans.map((raw, i) => scanEvent(parcelLabelNumber, raw, i, zone)) : statusEvents(parcelLabelNumber, data.statusInfo ?? [], zone)
  return { kind: 'ok', results: [{ trackingNumber: parcelLabelNumber, kind: 'events', events, expectedDelivery: null }] }
}

const PushIds = v.object({
  parcellifecycleResponse: v.object({ parcelLifeCycleData: v.object({ shipmentInfo: v.object({ parcelLabelNumber: v.string() }) }) })
})

export const dpd: Carrier = {
  code: 'dpd',
  name: 'DPD',
  forms: ['json', 'soap'],
  maxPerCall: () => 1,
  zone: (config) => dpdZone(config.locale ?? DPD_DEFAULT_LOCALE),
  status: dpdStatus,
  auth(config) {
    if (formOf(dpd, config) !== 'soap') return null
    return { request: () => dpdLoginRequest(config), parse: (res, now) => dpdLoginParse(res, dpdZone(config.locale ?? DPD_DEFAULT_LOCALE), now) }
  },
  request: (config, [pln], token) => (formOf(dpd, config) === 'soap' ? dpdSoapRequest(config, pln!, token ?? '') : dpdJsonRequest(config, pln!)),
  parse: ([pln], res, config) => (formOf(dpd, config) === 'soap' ? dpdSoapParse(pln!, res, config.locale) : dpdJsonParse(pln!, res, config.locale)),
  /** A push carries the JSON form; it is read with the configured locale, exactly as a poll would be. */
  push(body, config) {
    const parsed = readBody('DPD push', body, PushIds)
    if (!parsed.ok) return parsed.outcome
    const pln = parsed.value.parcellifecycleResponse.parcelLifeCycleData.shipmentInfo.parcelLabelNumber.replace(/\s+/g, '').toUpperCase()
    return dpdJsonParse(pln, { status: 200, headers: { 'content-type': 'application/json' }, body }, config.locale)
  },
  env: (c) => ({
    baseUrl: c.DPD_BASE_URL,
    client: { locale: c.DPD_LOCALE, form: c.DPD_FORM, clientId: c.DPD_DELIS_ID, clientSecret: c.DPD_PASSWORD },
    secret: c.DPD_WEBHOOK_SECRET
  })
}
