/**
 * The normalized event: what adapters, webhooks and `POST /v1/events` hand to the processor.
 * `toNormalizedEvent` validates one input (valibot) and gives it its identity, or says which
 * field is wrong; it never throws for bad input. Whatever it accepts PostgreSQL stores as is
 * (storable.ts): text without NUL or unpaired surrogates, instants in range, and a `raw`
 * document (the input itself, or the carrier's event) with storable strings, nested at most
 * MAX_JSON_DEPTH deep.
 */
import * as v from 'valibot'
import { EVENT_STATUSES, IdentityError, dedupKey, normalizeCarrier, normalizeInstant, normalizeTrackingNumber, type Status } from './identity.ts'
import { isStorableText, jsonProblem, storableCopy, UNSTORABLE_TEXT } from './storable.ts'

export interface NormalizedEvent {
  carrier: string
  trackingNumber: string
  carrierStatus: string
  status: Exclude<Status, 'pending'>
  occurredAt: string
  location: string | null
  description: string | null
  raw: unknown
  dedupKey: string
}

export type EventCheck = { ok: true; event: NormalizedEvent } | { ok: false; field: string; message: string }

const text = (max: number) => v.pipe(v.string(), v.trim(), v.minLength(1, 'must not be empty'), v.maxLength(max, `must be at most ${max} characters`))
const optionalText = (max: number) => v.nullish(v.pipe(v.string(), v.trim(), v.maxLength(max, `must be at most ${max} characters`)))

export const EventInput = v.object({
  carrier: text(32),
  trackingNumber: text(128),
  carrierStatus: text(100),
  status: v.optional(v.picklist(EVENT_STATUSES, `must be one of ${EVENT_STATUSES.join(', ')}`)),
  occurredAt: text(64),
  location: optionalText(200),
  description: optionalText(1000)
})

export type EventInput = v.InferInput<typeof EventInput>

/**
 * `status` is optional: when absent, a carrier status that already is a normalized status
 * (`delivered`, `in_transit`…) is taken as is; anything else is `unknown`.
 * Carrier adapters always set it from their own mapping.
 */
export function toNormalizedEvent(input: unknown, opts: { zone?: string; raw?: unknown } = {}): EventCheck {
  const parsed = v.safeParse(EventInput, input)
  if (!parsed.success) {
    const issue = parsed.issues[0]
    const field = issue.path?.map((p) => String(p.key)).join('.') || 'event'
    const message = issue.kind === 'schema' && issue.received === 'undefined' ? 'is required' : issue.message
    return refused(field, message)
  }
  const e = parsed.output
  // Every string stored must be storable text. Without a separate `raw`, the input itself is
  // stored as raw, and one walk over it checks the fields too.
  if (opts.raw === undefined) {
    const bad = jsonProblem(input)
    if (bad) return refused(bad.path || 'event', bad.message)
  } else {
    for (const field of ['carrierStatus', 'location', 'description'] as const) {
      const value = e[field]
      if (value && !isStorableText(value)) return refused(field, UNSTORABLE_TEXT)
    }
    const bad = jsonProblem(opts.raw)
    if (bad) return refused(`raw${bad.path && !bad.path.startsWith('[') ? '.' : ''}${bad.path}`, bad.message)
  }
  const raw = opts.raw === undefined ? input : opts.raw
  try {
    const carrier = normalizeCarrier(e.carrier)
    const trackingNumber = normalizeTrackingNumber(e.trackingNumber)
    const occurredAt = normalizeInstant(e.occurredAt, opts.zone)
    const lowered = e.carrierStatus.toLowerCase()
    const status = e.status ?? ((EVENT_STATUSES as string[]).includes(lowered) ? (lowered as NormalizedEvent['status']) : 'unknown')
    return {
      ok: true,
      event: {
        carrier,
        trackingNumber,
        carrierStatus: e.carrierStatus,
        status,
        occurredAt,
        location: e.location || null,
        description: e.description || null,
        raw,
        dedupKey: dedupKey(carrier, trackingNumber, e.carrierStatus, occurredAt)
      }
    }
  } catch (err) {
    if (err instanceof IdentityError) return refused(err.field, err.message)
    throw err
  }
}

/**
 * A refusal whose field and message are themselves storable text: messages quote the input
 * (`"…" is not an ISO-8601 date-time`), and a refusal is stored and logged in turn (a poll's
 * `lastPollError`, the rejected-scans counter's label).
 */
function refused(field: string, message: string): EventCheck {
  return { ok: false, field: storableCopy(field), message: storableCopy(message) }
}
