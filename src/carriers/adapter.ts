/**
 * What every carrier adapter is: a pure translation between the carrier's own HTTP API and
 * normalized events. Adapters never perform I/O themselves (the poller does, with its rate
 * limit and backoff), never throw on a bad payload (an unexpected shape is an `error` outcome
 * naming what was wrong), and never deduplicate (the processor does, by dedupKey).
 */
import * as v from 'valibot'
import type { EventCheck } from '../pipeline/event.ts'

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

export type TrackResult =
  | { trackingNumber: string; kind: 'events'; events: EventCheck[] }
  | { trackingNumber: string; kind: 'not_found' }
  | { trackingNumber: string; kind: 'error'; message: string }

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

/** A short, log-safe description of a body that was not what we expected. */
export function bodyHint(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim()
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat
}

/**
 * The body as `schema` describes it, or the error outcome that says what was wrong: a body that
 * is not JSON is retryable (carriers' error pages), a JSON body of the wrong shape is not.
 */
export function readBody<S extends v.GenericSchema>(carrier: string, body: string, schema: S): { ok: true; json: unknown; value: v.InferOutput<S> } | { ok: false; outcome: ParseOutcome } {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    return { ok: false, outcome: { kind: 'error', retryable: true, message: `${carrier} sent a body that is not JSON: ${bodyHint(body)}` } }
  }
  const parsed = v.safeParse(schema, json)
  if (!parsed.success) {
    const issue = parsed.issues[0]
    return { ok: false, outcome: { kind: 'error', retryable: false, message: `${carrier} response has an unexpected shape at ${v.getDotPath(issue) ?? '(root)'}: ${issue.message}` } }
  }
  return { ok: true, json, value: parsed.output }
}

