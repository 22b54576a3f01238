/**
 * Carrier clients: an adapter plus the HTTP call (with a timeout) and, for GLS, the cached
 * OAuth token. `track` never throws: every failure is a ParseOutcome the poller can act on.
 */
import type { CarrierConfig, CarrierRequest, CarrierResponse, ParseOutcome } from './adapter.ts'
import { dhlParse, dhlRequest } from './dhl.ts'
import { dpdParse, dpdRequest } from './dpd.ts'
import { GLS_MAX_IDS, glsParse, glsParseToken, glsRequest, glsTokenRequest } from './gls.ts'

export interface CarrierClient {
  carrier: string
  /** Tracking numbers per call. */
  maxPerCall: number
  track(trackingNumbers: string[]): Promise<ParseOutcome>
}

export async function send(r: CarrierRequest, timeoutMs: number): Promise<CarrierResponse> {
  const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body, signal: AbortSignal.timeout(timeoutMs) })
  const headers: Record<string, string> = {}
  res.headers.forEach((v, k) => (headers[k.toLowerCase()] = v))
  return { status: res.status, headers, body: await res.text() }
}

const unreachable = (carrier: string, err: unknown): ParseOutcome => ({ kind: 'error', retryable: true, message: `${carrier} unreachable: ${(err as Error).message}` })

export function createCarrierClient(carrier: string, config: CarrierConfig, timeoutMs = 10_000): CarrierClient | null {
  switch (carrier) {
    case 'dhl':
      return {
        carrier, maxPerCall: 1,
        async track([tn]) {
          try {
            return dhlParse(tn!, await send(dhlRequest(config, tn!), timeoutMs))
          } catch (err) {
            return unreachable(carrier, err)
          }
        }
      }
    case 'dpd':
      return {
        carrier, maxPerCall: 1,
        async track([tn]) {
          try {
            return dpdParse(tn!, await send(dpdRequest(config, tn!), timeoutMs), config.locale)
          } catch (err) {
            return unreachable(carrier, err)
          }
        }
      }
    case 'gls': {
      let token: { token: string; expiresAt: number } | null = null
      // Single flight: calls in parallel share one token request.
      let fetching: Promise<string | ParseOutcome> | null = null
      const getToken = async (): Promise<string | ParseOutcome> => {
        if (token && token.expiresAt > Date.now()) return token.token
        fetching ??= send(glsTokenRequest(config), timeoutMs)
          .then((res): string | ParseOutcome => {
            const t = glsParseToken(res)
            if ('error' in t) return { kind: 'error', retryable: t.retryable, message: t.error }
            token = t
            return t.token
          })
          .finally(() => (fetching = null))
        return fetching
      }
      return {
        carrier, maxPerCall: GLS_MAX_IDS,
        async track(tns) {
          try {
            for (let attempt = 0; attempt < 2; attempt++) {
              const tok = await getToken()
              if (typeof tok !== 'string') return tok
              const out = glsParse(tns, await send(glsRequest(config, tok, tns), timeoutMs))
              if (out.kind === 'error' && out.reauthenticate && attempt === 0) {
                token = null // expired early: fetch a new one and try once more
                continue
              }
              return out
            }
            return { kind: 'error', retryable: true, message: 'GLS refused a fresh token' }
          } catch (err) {
            return unreachable(carrier, err)
          }
        }
      }
    }
    default:
      return null
  }
}
