/**
 * Event identity. A fact reported twice must get the same key, however it was spelled:
 *   dedupKey = <carrier>:<trackingNumber>:<carrierStatus>:<carrierTimestamp, UTC ISO-8601 with ms>
 *
 * Timestamp rules (explicit, because carriers disagree):
 *   - `YYYY-MM-DD[T ]HH:mm[:ss[.fraction]]` followed by `Z`, `±HH:MM`, `±HHMM`, `±HH`, or nothing;
 *   - with an offset, the offset is applied;
 *   - without one, the wall time is read in `zone` (an IANA name, UTC unless the caller says);
 *     a wall time repeated by a DST change (October) resolves to the earlier instant, a wall time
 *     skipped by one (March) moves forward by the gap — Temporal's "compatible" rule;
 *   - fractions beyond milliseconds are truncated, never rounded (rounding can carry into the
 *     next second and make two spellings of one instant disagree);
 *   - the instant, once the offset or zone is applied, lies in the years 1000-9999 UTC: so it is
 *     a `timestamptz` PostgreSQL takes, its ISO string has four year digits (and ISO strings
 *     compare in time order, which the projection relies on), and the same limits hold for a
 *     date written with `+14:00` or `-12:00` as for one in UTC.
 */
export const STATUSES = [
  'pending',
  'info_received',
  'in_transit',
  'out_for_delivery',
  'failed_attempt',
  'available_for_pickup',
  'delivered',
  'returned',
  'exception',
  'expired',
  'unknown'
] as const
export type Status = (typeof STATUSES)[number]
export const TERMINAL_STATUSES: readonly Status[] = ['delivered', 'returned', 'expired']

/** Statuses an event may carry: everything but `pending`, which means "no event yet". */
export const EVENT_STATUSES = STATUSES.filter((s) => s !== 'pending') as Exclude<Status, 'pending'>[]

export const isStatus = (s: unknown): s is Status => typeof s === 'string' && (STATUSES as readonly string[]).includes(s)

export class IdentityError extends Error {
  constructor(
    readonly field: string,
    message: string
  ) {
    super(message)
  }
}

const CARRIER_RE = /^[a-z][a-z0-9_-]{1,31}$/
// At least one letter or digit: `.` and `..` alone would be path segments, not a parcel (a
// tracking page's URL, /t/<trackingNumber>, could never reach them).
const TRACKING_RE = /^(?=[._-]*[A-Z0-9])[A-Z0-9._-]{1,64}$/

export function normalizeCarrier(input: string): string {
  const carrier = input.trim().toLowerCase()
  if (!CARRIER_RE.test(carrier)) throw new IdentityError('carrier', `"${input}" is not a carrier code (2-32 of a-z, 0-9, _ or -, starting with a letter)`)
  return carrier
}

export function normalizeTrackingNumber(input: string): string {
  const tn = input.replace(/\s+/g, '').toUpperCase()
  if (!TRACKING_RE.test(tn))
    throw new IdentityError(
      'trackingNumber',
      `"${input}" is not a tracking number (1-64 of A-Z, 0-9, '.', '_' or '-' once spaces are removed, at least one a letter or digit)`
    )
  return tn
}

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/

/** Parses a carrier timestamp into epoch milliseconds following the rules above. */
export function parseInstant(input: string, zone = 'UTC'): number {
  const m = TS_RE.exec(input.trim())
  if (!m) throw new IdentityError('occurredAt', `"${input}" is not an ISO-8601 date-time (YYYY-MM-DDTHH:mm[:ss[.sss]][Z|±HH:MM|±HHMM])`)
  const [, y, mo, d, h, mi, s = '0', frac = '', off] = m
  const year = Number(y),
    month = Number(mo),
    day = Number(d),
    hour = Number(h),
    minute = Number(mi),
    second = Number(s)
  const ms = Number(frac.slice(0, 3).padEnd(3, '0'))
  if (year < 1000 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new IdentityError('occurredAt', `"${input}" is not a valid calendar date-time`)
  }
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, ms)
  let utc = wall
  if (off === undefined) utc = wallTimeToUtc(wall, zone)
  else if (off !== 'Z' && off !== 'z') {
    const sign = off[0] === '-' ? -1 : 1
    const digits = off.slice(1).replace(':', '')
    const offH = Number(digits.slice(0, 2)),
      offM = Number(digits.slice(2) || '0')
    if (offH > 14 || offM > 59) throw new IdentityError('occurredAt', `"${input}" has an impossible UTC offset`)
    utc = wall - sign * (offH * 60 + offM) * 60_000
  }
  if (utc < MIN_INSTANT_MS || utc > MAX_INSTANT_MS) throw new IdentityError('occurredAt', `"${input}" is outside the years 1000-9999 once in UTC`)
  return utc
}

const MIN_INSTANT_MS = Date.UTC(1000, 0, 1)
const MAX_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** Epoch milliseconds → `YYYY-MM-DDTHH:mm:ss.sssZ`. Exact: milliseconds are the key's precision. */
export function formatInstant(ms: number): string {
  return new Date(ms).toISOString()
}

/** Any accepted spelling → the canonical UTC string used in keys, the database and the wire. */
export function normalizeInstant(input: string, zone = 'UTC'): string {
  return formatInstant(parseInstant(input, zone))
}

export function dedupKey(carrier: string, trackingNumber: string, carrierStatus: string, occurredAtIso: string): string {
  return `${carrier}:${trackingNumber}:${carrierStatus}:${occurredAtIso}`
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate()
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone)
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric'
      })
    } catch {
      throw new IdentityError('zone', `"${zone}" is not an IANA time zone`)
    }
    formatters.set(zone, f)
  }
  return f
}

export function assertTimeZone(zone: string): void {
  formatter(zone)
}

/** The zone's UTC offset in ms at instant `utc` (local = utc + offset). */
function offsetAt(zone: string, utc: number): number {
  if (zone === 'UTC') return 0
  const p: Record<string, number> = {}
  for (const part of formatter(zone).formatToParts(utc)) if (part.type !== 'literal') p[part.type] = Number(part.value)
  const local = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!)
  return local - Math.floor(utc / 1000) * 1000
}

function wallTimeToUtc(wall: number, zone: string): number {
  if (zone === 'UTC') return wall
  const before = offsetAt(zone, wall - 86_400_000)
  const after = offsetAt(zone, wall + 86_400_000)
  const candidates = [wall - before, wall - after].filter((utc) => utc + offsetAt(zone, utc) === wall).sort((a, b) => a - b)
  // Repeated hour: two candidates, the earlier wins. Skipped hour: none; shift forward by the gap.
  return candidates[0] ?? wall - before
}
