/**
 * Carrier pushes: `POST /v1/webhooks/:carrier` with the carrier's own payload, signed with the
 * carrier's shared secret: header `X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`,
 * compared in constant time. The payload is the carrier's tracking format (DHL `shipments[]`,
 * DPD `parcellifecycleResponse`, GLS `parcels[]`), read by the same adapters as polling.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import * as v from 'valibot'
import type { EventCheck } from '../pipeline/event.ts'
import type { CarrierResponse, ParseOutcome } from './adapter.ts'
import { dhlParse } from './dhl.ts'
import { dpdParse } from './dpd.ts'
import { glsParse } from './gls.ts'

export function verifySignature(secret: string, rawBody: string, header: string | null): boolean {
  const given = header?.trim().replace(/^sha256=/i, '') ?? ''
  if (!/^[0-9a-f]{64}$/i.test(given)) return false
  const expected = createHmac('sha256', secret).update(rawBody).digest()
  return timingSafeEqual(expected, Buffer.from(given, 'hex'))
}

export const sign = (secret: string, rawBody: string) => `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`

const asResponse = (body: string): CarrierResponse => ({ status: 200, headers: { 'content-type': 'application/json' }, body })
const ids = {
  dhl: v.object({ shipments: v.array(v.object({ id: v.string() })) }),
  dpd: v.object({ parcellifecycleResponse: v.object({ parcelLifeCycleData: v.object({ shipmentInfo: v.object({ parcelLabelNumber: v.string() }) }) }) }),
  gls: v.object({ parcels: v.array(v.object({ requested: v.string() })) })
}

/** The events of a pushed payload, or why it cannot be read. */
export function webhookEvents(carrier: string, rawBody: string, locale = 'de_DE'): { events: EventCheck[] } | { error: string } {
  let json: unknown
  try {
    json = JSON.parse(rawBody)
  } catch {
    return { error: 'the body is not JSON' }
  }
  const collect = (outcomes: ParseOutcome[]) => {
    const events: EventCheck[] = []
    for (const o of outcomes) {
      if (o.kind !== 'ok') return { error: o.kind === 'error' ? o.message : 'unexpected rate limit answer' }
      for (const r of o.results) if (r.kind === 'events') events.push(...r.events)
    }
    return { events }
  }
  const norm = (s: string) => s.replace(/\s+/g, '').toUpperCase()
  switch (carrier) {
    case 'dhl': {
      const p = v.safeParse(ids.dhl, json)
      if (!p.success) return { error: `not a DHL shipments payload: ${v.getDotPath(p.issues[0]) ?? '(root)'} ${p.issues[0].message}` }
      // The validated output drops unknown keys (the events); pass each shipment as it came.
      const shipments = (json as { shipments: unknown[] }).shipments
      return collect(p.output.shipments.map((s, i) => dhlParse(norm(s.id), asResponse(JSON.stringify({ shipments: [shipments[i]] })))))
    }
    case 'dpd': {
      const p = v.safeParse(ids.dpd, json)
      if (!p.success) return { error: `not a DPD parcel life cycle payload: ${v.getDotPath(p.issues[0]) ?? '(root)'} ${p.issues[0].message}` }
      return collect([dpdParse(norm(p.output.parcellifecycleResponse.parcelLifeCycleData.shipmentInfo.parcelLabelNumber), asResponse(rawBody), locale)])
    }
    case 'gls': {
      const p = v.safeParse(ids.gls, json)
      if (!p.success) return { error: `not a GLS parcels payload: ${v.getDotPath(p.issues[0]) ?? '(root)'} ${p.issues[0].message}` }
      return collect([glsParse(p.output.parcels.map((x) => norm(x.requested)), asResponse(rawBody))])
    }
    default:
      return { error: `no adapter for carrier ${carrier}` }
  }
}
