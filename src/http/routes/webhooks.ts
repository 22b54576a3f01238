/**
 * `POST /v1/webhooks/:carrier`: a carrier's signed push, read by the carrier's adapter with the
 * same configuration as its polls, into the processor.
 *
 * The signature is checked over the body's bytes as they came (a BOM, any encoding), and only
 * then is the body decoded, as UTF-8 strictly (a leading BOM dropped): a body that is not UTF-8 is
 * a 400 naming the body, never text with replacement characters.
 *
 * Nothing unreadable passes quietly. A push that cannot be read at all (not UTF-8, nested too
 * deep, not the carrier's format, no shipment in it, no shipment in it readable) is a 400 naming
 * what is wrong; a push with some shipments unreadable stores the others and lists those under
 * `unreadable`. Either way it is logged once with a redacted sample, counted
 * (`parcelcast_carrier_unreadable_pushes_total`, `parcelcast_carrier_shipment_errors_total`),
 * and, like every push, a sample of the carrier's health. Rejected scans are counted like polled
 * ones; a push whose scans are all rejected is a 400 naming the first bad field.
 */
import { Elysia } from 'elysia'
import { bodyHint, fieldLabel, redact } from '../../carriers/adapter.ts'
import { recordAnswers } from '../../carriers/answers.ts'
import type { CarrierDirectory } from '../../carriers/directory.ts'
import { emptySample } from '../../carriers/health.ts'
import { verifySignature, webhookEvents } from '../../carriers/webhooks.ts'
import type { Sql } from '../../db/client.ts'
import type { Logger } from '../../log.ts'
import type { Metrics } from '../../metrics.ts'
import type { Processor } from '../../pipeline/processor.ts'
import { errorBody, json } from '../errors.ts'
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../pipeline/storable.ts'

const utf8 = new TextDecoder('utf-8', { fatal: true })

export function webhookRoutes({
  sql,
  processor,
  carriers,
  log,
  metrics
}: {
  sql: Sql
  processor: Processor
  carriers: CarrierDirectory
  log: Logger
  metrics: Metrics
}) {
  return new Elysia({ name: 'webhooks' }).post(
    '/v1/webhooks/:carrier',
    async ({ params, request }) => {
      const carrier = params.carrier.toLowerCase()
      const setup = await carriers.setup(carrier)
      if (!setup?.adapter)
        return json(
          404,
          errorBody(
            'webhook_not_configured',
            `carrier "${carrier}" has no adapter to read its pushes${setup ? ': push its scans with POST /v1/events' : ' (GET /v1/carriers lists the known ones)'}`
          )
        )
      const secret = setup.webhookSecret
      if (!secret)
        return json(
          404,
          errorBody('webhook_not_configured', `no webhook secret is configured for carrier "${carrier}" (set ${carrier.toUpperCase()}_WEBHOOK_SECRET)`)
        )
      const bytes = new Uint8Array(await request.arrayBuffer())
      if (!verifySignature(secret, bytes, request.headers.get('x-signature'))) {
        log.warn({ component: 'webhooks', carrier }, 'webhook with a missing or wrong signature refused')
        return json(401, errorBody('invalid_signature', 'X-Signature must be sha256=<hex HMAC-SHA256 of the raw body with the carrier secret>'))
      }

      /** The whole push refused: 400 naming why, one log line with a sample, counted, a failed call to health. */
      const refuse = (message: string, sample: unknown) => {
        metrics.carrierUnreadablePushes.inc({ carrier })
        carriers.record(carrier, { ...emptySample(), calls: 1, failedCalls: 1, lastError: message })
        log.error({ component: 'webhooks', carrier, err: message, sample }, 'signed push refused: it cannot be read; nothing of it is stored')
        return json(400, errorBody('invalid_payload', message, { field: 'body' }))
      }

      let raw: string
      try {
        raw = utf8.decode(bytes)
      } catch {
        return refuse('the body is not UTF-8 text: send the payload encoded as UTF-8', {
          bytes: bytes.length,
          start: Buffer.from(bytes.subarray(0, 32)).toString('hex')
        })
      }
      if (jsonTooDeep(raw)) return refuse(`the payload nests deeper than ${MAX_JSON_DEPTH} levels`, bodyHint(raw))
      const read = webhookEvents(carrier, raw, setup.client)
      if ('error' in read) return refuse(read.error, sampleOf(raw))
      if (read.answers.length === 0 && read.unreadable.length === 0) return refuse(`the push names no shipment`, sampleOf(raw))

      const health = { ...emptySample(), calls: 1, shipments: read.answers.length + read.unreadable.length }
      if (read.unreadable.length > 0) {
        const first = read.unreadable[0]!
        metrics.carrierShipmentErrors.inc({ carrier, source: 'push' }, read.unreadable.length)
        health.failedShipments = read.unreadable.length
        health.lastError = first.message
        log.error(
          {
            component: 'webhooks',
            carrier,
            trackingNumber: first.trackingNumber,
            err: first.message,
            unreadable: read.unreadable.length,
            of: health.shipments,
            sample: redact(first.sample)
          },
          'pushed shipment unreadable: nothing of it is stored'
        )
      }
      const logged = new Set<string>()
      for (const c of read.events) {
        health.scans++
        if (c.ok) continue
        const field = fieldLabel(c.field)
        health.rejected++
        health.fields[field] = (health.fields[field] ?? 0) + 1
        metrics.carrierRejectedScans.inc({ carrier, field })
        if (!logged.has(field)) {
          logged.add(field)
          log.error(
            { component: 'webhooks', carrier, field: c.field, err: c.message, sample: redact(c.sample) },
            'pushed scan rejected: the payload has a form we do not read; that scan is not stored'
          )
        }
      }
      carriers.record(carrier, health)

      const unreadable = read.unreadable.map((u) => ({ trackingNumber: u.trackingNumber, message: u.message }))
      if (read.events.length === 0) {
        // Nothing to store: the push is refused, naming what could not be read (it was counted above).
        const u = read.unreadable[0]
        if (u) return json(400, errorBody('invalid_payload', `${u.trackingNumber}: ${u.message}`, { field: 'body', unreadable }))
      }
      const firstBad = read.events.find((c) => !c.ok)
      if (firstBad && !firstBad.ok && read.events.every((c) => !c.ok)) {
        return json(
          400,
          errorBody('validation_failed', `${firstBad.field}: ${firstBad.message}`, { field: firstBad.field, ...(unreadable.length ? { unreadable } : {}) })
        )
      }
      await recordAnswers(
        sql,
        carrier,
        read.answers.map((a) => {
          const times = a.events.flatMap((c) => (c.ok ? [c.event.occurredAt] : [])).sort()
          return { trackingNumber: a.trackingNumber, expectedDelivery: a.expectedDelivery, asOf: times.at(-1) ?? null }
        })
      )
      const results = await processor.ingest(read.events)
      log.info(
        {
          component: 'webhooks',
          carrier,
          events: results.length,
          inserted: results.filter((r) => r.outcome === 'inserted').length,
          rejected: health.rejected,
          unreadable: unreadable.length
        },
        'webhook ingested'
      )
      return unreadable.length ? { results, unreadable } : { results }
    },
    { parse: 'none', detail: { summary: "A carrier's signed push, in the carrier's own format", tags: ['carriers'] } }
  )
}

/** A redacted sample of a push: its JSON with personal keys masked, or the start of its text. */
function sampleOf(raw: string): unknown {
  try {
    return redact(JSON.parse(raw))
  } catch {
    return bodyHint(raw)
  }
}
