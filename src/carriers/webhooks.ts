/**
 * Carrier pushes: `POST /v1/webhooks/:carrier` with the carrier's own payload, signed with the
 * carrier's shared secret: header `X-Signature: sha256=<hex HMAC-SHA256 of the raw body>` — of
 * the body's bytes as they came, before any decoding — compared in constant time. The payload is the carrier's tracking format (DHL `shipments[]`,
 * DPD `parcellifecycleResponse`, GLS `parcels[]`), read by the carrier's `push` with the same
 * configuration as its polls (DPD's locale, so a scan pushed and polled is one fact).
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { CarrierConfig, ExpectedDelivery, ScanCheck } from './adapter.ts'
import { carrierFor } from './registry.ts'

export function verifySignature(secret: string, rawBody: string | Uint8Array, header: string | null): boolean {
  const given = header?.trim().replace(/^sha256=/i, '') ?? ''
  if (!/^[0-9a-f]{64}$/i.test(given)) return false
  const expected = createHmac('sha256', secret).update(rawBody).digest()
  return timingSafeEqual(expected, Buffer.from(given, 'hex'))
}

export const sign = (secret: string, rawBody: string | Uint8Array) => `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`

export interface PushedAnswer {
  trackingNumber: string
  expectedDelivery: ExpectedDelivery | null | undefined
  events: ScanCheck[]
}

/** A shipment of a push that could not be read (or that the carrier says it does not know): nothing of it is stored. */
export interface UnreadableShipment {
  trackingNumber: string
  message: string
  sample?: unknown
}

/**
 * The events of a pushed payload (and each answer's estimate), and the shipments in it that
 * could not be read; or why the push cannot be read at all.
 */
export function webhookEvents(
  carrier: string,
  rawBody: string,
  config: CarrierConfig = { baseUrl: '' }
): { events: ScanCheck[]; answers: PushedAnswer[]; unreadable: UnreadableShipment[] } | { error: string } {
  const c = carrierFor(carrier)
  if (!c) return { error: `no adapter for carrier ${carrier}` }
  const out = c.push(rawBody, config)
  if (out.kind !== 'ok') return { error: out.kind === 'error' ? out.message : 'unexpected rate limit answer' }
  const answers: PushedAnswer[] = []
  const unreadable: UnreadableShipment[] = []
  for (const r of out.results) {
    if (r.kind === 'events') answers.push({ trackingNumber: r.trackingNumber, expectedDelivery: r.expectedDelivery, events: r.events })
    else if (r.kind === 'error') unreadable.push({ trackingNumber: r.trackingNumber, message: r.message, sample: r.sample })
    else unreadable.push({ trackingNumber: r.trackingNumber, message: `${c.name} says it does not know this shipment` })
  }
  return { events: answers.flatMap((a) => a.events), answers, unreadable }
}
