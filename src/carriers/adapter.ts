/**
 * What every carrier adapter is: a pure translation between the carrier's own HTTP API and
 * normalized events. Adapters never perform I/O themselves (the poller does, with its rate
 * limit and backoff), never throw on a bad payload (an unexpected shape is an `error` outcome
 * naming what was wrong), and never deduplicate (the processor does, by dedupKey).
 */
import * as v from 'valibot'
import { toNormalizedEvent, type EventInput, type NormalizedEvent } from '../pipeline/event.ts'
import { normalizeInstant } from '../pipeline/identity.ts'

export interface CarrierRequest {
  method: 'GET' | 'POST'
  url: string
  headers: Record<string, string>
  body?: string
}

export interface CarrierResponse {
  status: number
  headers: Record<string, string> // lower-cased names
  body: string
}

/**
 * One scan of a carrier's answer: a normalized event, or why it was rejected — `field` in the
 * carrier's own words (`scan[3].date`), and the scan as it came (`sample`, for one log line).
 */
export type ScanCheck = { ok: true; event: NormalizedEvent } | { ok: false; field: string; message: string; sample?: unknown }

/** A delivery estimate as UTC ISO instants; `from` may be null (a deadline only). */
export interface ExpectedDelivery {
  from: string | null
  to: string | null
}

export type TrackResult =
  | { trackingNumber: string; kind: 'events'; events: ScanCheck[]; expectedDelivery?: ExpectedDelivery | null }
  | { trackingNumber: string; kind: 'not_found' }
  /** `sample`: the carrier's answer for this shipment as it came, for one log line (redacted there). */
  | { trackingNumber: string; kind: 'error'; message: string; sample?: unknown }

export type ParseOutcome =
  | { kind: 'ok'; results: TrackResult[] }
  | { kind: 'rate_limited'; retryAfterMs: number | null }
  /**
   * The whole call failed: `retryable` tells the poller whether backing off can help, and
   * `reauthenticate` that the access token was refused and a fresh one may help.
   */
  | { kind: 'error'; retryable: boolean; message: string; reauthenticate?: boolean }

export interface CarrierConfig {
  baseUrl: string
  apiKey?: string
  clientId?: string
  clientSecret?: string
  locale?: string
  zone?: string
  /** Which of the carrier's answer forms to ask for (DPD: `json` or `soap`); the carrier's first when unset. */
  form?: string
}

/**
 * `path` below the configured base URL, keeping the base's own path: a base of
 * `http://sim:4000/dhl` and `/track/shipments` give `http://sim:4000/dhl/track/shipments`.
 */
export function endpoint(baseUrl: string, path: string): URL {
  return new URL(baseUrl.replace(/\/+$/, '') + path)
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}

/** The longest scan description kept, in UTF-16 units; longer ones are cut (`cutText`). */
export const DESCRIPTION_MAX = 1000

/**
 * `text` cut to at most `max` UTF-16 units, never inside a surrogate pair: a cut through an emoji
 * would leave half of it, which PostgreSQL refuses, and the scan would be rejected instead of stored.
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text
  const last = text.charCodeAt(max - 1)
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max)
}

/** A short, log-safe description of a body that was not what we expected. */
export function bodyHint(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim()
  return flat.length > 120 ? `${cutText(flat, 120)}…` : flat
}

/**
 * The body as `schema` describes it, or the error outcome that says what was wrong: a body that
 * is not JSON is retryable (carriers' error pages), a JSON body of the wrong shape is not.
 */
export function readBody<S extends v.GenericSchema>(
  carrier: string,
  body: string,
  schema: S
): { ok: true; json: unknown; value: v.InferOutput<S> } | { ok: false; outcome: ParseOutcome } {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    return { ok: false, outcome: { kind: 'error', retryable: true, message: `${carrier} sent a body that is not JSON: ${bodyHint(body)}` } }
  }
  const parsed = v.safeParse(schema, json)
  if (!parsed.success) {
    const issue = parsed.issues[0]
    return {
      ok: false,
      outcome: {
        kind: 'error',
        retryable: false,
        message: `${carrier} response has an unexpected shape at ${v.getDotPath(issue) ?? '(root)'}: ${issue.message}`
      }
    }
  }
  return { ok: true, json, value: parsed.output }
}

/**
 * A carrier's scan as a normalized event, or the rejection naming the carrier's own field:
 * `at` is where the scan sits in the answer (`scan[3]`), `names` maps the normalized fields to
 * the carrier's (`occurredAt` → `date`).
 */
export function scanCheck(input: EventInput, opts: { zone: string; raw: unknown; at: string; names?: Partial<Record<keyof EventInput, string>> }): ScanCheck {
  const c = toNormalizedEvent(input, { zone: opts.zone, raw: opts.raw })
  if (c.ok) return c
  const name = opts.names?.[c.field as keyof EventInput] ?? c.field
  return { ok: false, field: `${opts.at}.${name}`, message: c.message, sample: opts.raw }
}

export const rejected = (field: string, message: string, sample: unknown): ScanCheck => ({ ok: false, field, message, sample })

/**
 * The counter label of a rejected field: the carrier's field without the position of the scan
 * (`scan[3].date` → `date`, `parcels[ZX1].events[0].eventDateTime` → `eventDateTime`).
 */
export function fieldLabel(field: string): string {
  return field.replace(/^(?:[^.[\]]+\[[^\]]*\]\.)+/, '') || field
}

/** A carrier's instant (offset applied, or wall time in `zone`) as UTC ISO; null when unreadable. */
export function instantOrNull(input: unknown, zone: string): string | null {
  if (typeof input !== 'string' || input.trim() === '') return null
  try {
    return normalizeInstant(input, zone)
  } catch {
    return null
  }
}

/** An estimate from its ends; null when neither end can be read. `to` is never before `from`. */
export function expectedDelivery(from: string | null, to: string | null): ExpectedDelivery | null {
  if (from === null && to === null) return null
  if (from !== null && to !== null && to < from) return { from: to, to: from }
  return { from, to }
}

const PERSONAL = /name|receiver|recipient|consignee|sender|address|street|phone|mail|signed|signature|contact/i

/**
 * A scan fit for a log line: keys that may carry a person's data are masked, long strings cut,
 * depth and breadth bounded. What stays is what an operator needs to see a format change.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > 80 ? `${cutText(value, 80)}…` : value
  if (value === null || typeof value !== 'object') return value
  if (depth >= 5) return '…'
  if (Array.isArray(value)) return value.slice(0, 10).map((x) => redact(x, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value).slice(0, 30)) {
    // scanType.name is the scan's type, not a person's name.
    out[k] = PERSONAL.test(k) && !(k === 'name' && depth > 0 && typeof v === 'string' && /^[A-Za-z]+$/.test(v)) ? '[redacted]' : redact(v, depth + 1)
  }
  return out
}
