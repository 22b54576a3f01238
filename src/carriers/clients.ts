/**
 * Carrier clients: a carrier (registry.ts) plus the HTTP call (with a timeout) and, where the
 * carrier needs one, its cached access token (one request in flight for all callers). `track`
 * never throws: every failure is a ParseOutcome the poller can act on.
 */
import type { CarrierConfig, CarrierRequest, CarrierResponse, ParseOutcome } from './adapter.ts'
import type { Carrier } from './carrier.ts'
import { carrierFor } from './registry.ts'

export interface CarrierClient {
  carrier: string
  /** Tracking numbers per call. */
  maxPerCall: number
  track(trackingNumbers: string[]): Promise<ParseOutcome>
}

export async function send(r: CarrierRequest, timeoutMs: number): Promise<CarrierResponse> {
  const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body, signal: AbortSignal.timeout(timeoutMs) })
  const headers: Record<string, string> = {}
  res.headers.forEach((v, k) => {
    headers[k.toLowerCase()] = v
  })
  return { status: res.status, headers, body: await res.text() }
}

const unreachable = (carrier: string, err: unknown): ParseOutcome => ({
  kind: 'error',
  retryable: true,
  message: `${carrier.toUpperCase()} unreachable: ${(err as Error).message}`
})

/** A client for the carrier (or its code); null for a code with no adapter. */
export function createCarrierClient(carrierOrCode: Carrier | string, config: CarrierConfig, timeoutMs = 10_000): CarrierClient | null {
  const carrier = typeof carrierOrCode === 'string' ? carrierFor(carrierOrCode) : carrierOrCode
  if (!carrier) return null
  const auth = carrier.auth?.(config) ?? null
  let token: { token: string; expiresAt: number } | null = null
  // Single flight: calls in parallel share one token request.
  let fetching: Promise<string | ParseOutcome> | null = null
  const getToken = async (): Promise<string | ParseOutcome> => {
    if (!auth) return ''
    if (token && token.expiresAt > Date.now()) return token.token
    fetching ??= send(auth.request(), timeoutMs)
      .then((res): string | ParseOutcome => {
        const t = auth.parse(res)
        if ('error' in t) return { kind: 'error', retryable: t.retryable, message: t.error }
        token = t
        return t.token
      })
      .finally(() => (fetching = null))
    return fetching
  }
  return {
    carrier: carrier.code,
    maxPerCall: carrier.maxPerCall(config),
    async track(numbers) {
      try {
        for (let attempt = 0; attempt < 2; attempt++) {
          const tok = await getToken()
          if (typeof tok !== 'string') return tok
          const out = carrier.parse(numbers, await send(carrier.request(config, numbers, tok || undefined), timeoutMs), config)
          if (out.kind === 'error' && out.reauthenticate && auth && attempt === 0) {
            token = null // expired early: fetch a new one and try once more
            continue
          }
          return out
        }
        return { kind: 'error', retryable: true, message: `${carrier.name} refused a fresh token` }
      } catch (err) {
        return unreachable(carrier.code, err)
      }
    }
  }
}
