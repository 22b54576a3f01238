/**
 * Carrier pushes: `POST /v1/webhooks/:carrier` with the carrier's own payload, signed with the
 * carrier's shared secret: header `X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`,
 * compared in constant time. The payload is the carrier's tracking format (DHL `shipments[]`,
 * DPD `parcellifecycleResponse`, GLS `parcels[]`), read by the carrier's `push` with the same
 * configuration as its polls (DPD's locale, so a scan pushed and polled is one fact).
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { CarrierConfig, ExpectedDelivery, ScanCheck } from './adapter.ts'
import { carrierFor } from './registry.ts'

export function verifySignature(secret: string, rawBody: string, header: string | null): boolean {
  const given = header?.trim().replace(/^sha256=/i, '') ?? ''
  if (!/^[0-9a-f]{64}$/i.test(given)) return false
  const expected = createHmac('sha256', secret).update(rawBody).digest()
  return timingSafeEqual(expected, Buffer.from(given, 'hex'))
}

export const sign = (secret: string, rawBody: string) => `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`

export interface PushedAnswer {
  trackingNumber: string
  expectedDelivery: ExpectedDelivery | null | undefined
  events: ScanCheck[]
}

/** The events of a pushed payload (and each answer's estimate), or why it cannot be read. */
export function webhookEvents(carrier: string, rawBody: string, config: CarrierConfig = { baseUrl: '' }): { events: ScanCheck[]; answers: PushedAnswer[] } | { error: string } {
  const c = carrierFor(carrier)
  if (!c) return { error: `no adapter for carrier ${carrier}` }
  const out = c.push(rawBody, config)
  if (out.kind !== 'ok') return { error: out.kind === 'error' ? out.message : 'unexpected rate limit answer' }
  const answers = out.results.flatMap((r) => (r.kind === 'events' ? [{ trackingNumber: r.trackingNumber, expectedDelivery: r.expectedDelivery, events: r.events }] : []))
  return { events: answers.flatMap((a) => a.events), answers }
}
