/**
 * Carrier health: whether a carrier's answers still make sense. Every poll cycle that asked the
 * carrier something, and every signed push, adds a sample: calls made and failed (a 429 is a
 * failed call, as is a push that could not be read at all), shipments answered and those whose
 * answer was an error (the carrier's own per-shipment error, a SOAP fault about one parcel, a
 * shipment of a push that could not be read), scans read and rejected by field. Over the last
 * `window` samples (younger than `maxAgeMs`), a carrier whose scans were mostly rejected, whose
 * calls mostly failed, or whose shipments' answers were mostly errors is `failing: <why>`, else
 * `ok` — and it is `ok` again as soon as a sample reads cleanly (nothing rejected, nothing failed),
 * not only once the bad ones have left the window: the shipments that were failing may be done by
 * then. `/readyz` and `GET /v1/carriers` show it; a failing carrier makes the service `degraded`
 * (still ready: the other carriers, the API and the sockets work). It is per process, like the
 * pollers and the pushes it sees.
 */
import { cutText } from './adapter.ts'

export interface CycleSample {
  calls: number
  failedCalls: number
  /** Shipments the carrier answered for, and those whose answer was an error. */
  shipments: number
  failedShipments: number
  scans: number
  rejected: number
  /** Rejected scans by the carrier's field (`date`). */
  fields: Record<string, number>
  lastError: string | null
}

export type Health = 'ok' | `failing: ${string}`

export function emptySample(): CycleSample {
  return { calls: 0, failedCalls: 0, shipments: 0, failedShipments: 0, scans: 0, rejected: 0, fields: {}, lastError: null }
}

export function createCarrierHealth({
  window = 5,
  maxAgeMs = 15 * 60_000,
  now = () => Date.now()
}: {
  window?: number
  maxAgeMs?: number
  now?: () => number
} = {}) {
  const samples = new Map<string, { at: number; s: CycleSample }[]>()

  function recent(carrier: string) {
    const list = (samples.get(carrier) ?? []).filter((x) => now() - x.at <= maxAgeMs)
    samples.set(carrier, list)
    return list.map((x) => x.s)
  }

  function of(carrier: string): Health {
    const list = recent(carrier)
    const last = list.at(-1)
    if (!last || (last.rejected === 0 && last.failedCalls === 0 && last.failedShipments === 0)) return 'ok'
    let calls = 0,
      failed = 0,
      shipments = 0,
      failedShipments = 0,
      scans = 0,
      rejected = 0
    const fields: Record<string, number> = {}
    let lastError: string | null = null
    for (const s of list) {
      calls += s.calls
      failed += s.failedCalls
      shipments += s.shipments
      failedShipments += s.failedShipments
      scans += s.scans
      rejected += s.rejected
      for (const [f, n] of Object.entries(s.fields)) fields[f] = (fields[f] ?? 0) + n
      lastError = s.lastError ?? lastError
    }
    if (scans > 0 && rejected * 2 > scans) {
      const why = Object.entries(fields)
        .sort((a, b) => b[1] - a[1])
        .map(([f]) => f)
        .join(', ')
      return `failing: ${rejected} of ${scans} scans rejected (${why})`
    }
    const why = () => cutText(lastError ?? 'unknown error', 200)
    // A failed call is a call, whoever counted it.
    calls = Math.max(calls, failed)
    if (calls > 0 && failed * 2 > calls) return `failing: ${failed} of ${calls} calls failed (${why()})`
    if (shipments > 0 && failedShipments * 2 > shipments) return `failing: ${failedShipments} of ${shipments} shipments answered with an error (${why()})`
    return 'ok'
  }

  return {
    /** One poll cycle's or push's sample; one that asked nothing and failed nothing adds none. */
    record(carrier: string, s: CycleSample) {
      if (s.calls === 0 && s.failedCalls === 0 && s.shipments === 0 && s.scans === 0) return
      const list = samples.get(carrier) ?? []
      list.push({ at: now(), s })
      if (list.length > window) list.splice(0, list.length - window)
      samples.set(carrier, list)
    },
    of,
    /** Every given carrier's health, by code. */
    snapshot(codes: Iterable<string>): Record<string, Health> {
      return Object.fromEntries([...codes].map((c) => [c, of(c)]))
    }
  }
}

export type CarrierHealth = ReturnType<typeof createCarrierHealth>
