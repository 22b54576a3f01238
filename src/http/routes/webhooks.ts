/**
 * `POST /v1/webhooks/:carrier`: a carrier's signed push, read by the carrier's adapter with the
 * same configuration as its polls, into the processor. Rejected scans are counted like polled
 * ones; a push whose scans are all rejected is a 400 naming the first bad field.
 */
import { Elysia } from 'elysia'
import { fieldLabel, redact } from '../../carriers/adapter.ts'
import { recordAnswers } from '../../carriers/answers.ts'
import type { CarrierDirectory } from '../../carriers/directory.ts'
import { verifySignature, webhookEvents } from '../../carriers/webhooks.ts'
import type { Sql } from '../../db/client.ts'
import type { Logger } from '../../log.ts'
import type { Metrics } from '../../metrics.ts'
import type { Processor } from '../../pipeline/processor.ts'
import { errorBody, json } from '../errors.ts'
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../pipeline/storable.ts'

export function webhookRoutes({ sql, processor, carriers, log, metrics }: { sql: Sql; processor: Processor; carriers: CarrierDirectory; log: Logger; metrics: Metrics }) {
  return new Elysia({ name: 'webhooks' }).post(
    '/v1/webhooks/:carrier',
    async ({ params, request }) => {
      const carrier = params.carrier.toLowerCase()
      const setup = await carriers.setup(carrier)
      const secret = setup?.adapter ? setup.webhookSecret : null
      if (!setup || !secret) return json(404, errorBody('webhook_not_configured', `no webhook secret is configured for carrier "${carrier}" (set ${carrier.toUpperCase()}_WEBHOOK_SECRET)`))
      const raw = await request.text()
      if (!verifySignature(secret, raw, request.headers.get('x-signature'))) {
        log.warn({ component: 'webhooks', carrier }, 'webhook with a missing or wrong signature refused')
        return json(401, errorBody('invalid_signature', 'X-Signature must be sha256=<hex HMAC-SHA256 of the raw body with the carrier secret>'))
      }
      if (jsonTooDeep(raw)) return json(400, errorBody('invalid_payload', `the payload nests deeper than ${MAX_JSON_DEPTH} levels`, { field: 'body' }))
      const read = webhookEvents(carrier, raw, setup.client)
      if ('error' in read) return json(400, errorBody('invalid_payload', read.error, { field: 'body' }))
      const logged = new Set<string>()
      for (const c of read.events) {
        if (c.ok) continue
        const field = fieldLabel(c.field)
        metrics.carrierRejectedScans.inc({ carrier, field })
        if (!logged.has(field)) {
          logged.add(field)
          log.error({ component: 'webhooks', carrier, field: c.field, err: c.message, sample: redact(c.sample) }, 'pushed scan rejected: the payload has a form we do not read; that scan is not stored')
        }
      }
      const firstBad = read.events.find((c) => !c.ok)
      if (firstBad && !firstBad.ok && read.events.every((c) => !c.ok)) {
        return json(400, errorBody('validation_failed', `${firstBad.field}: ${firstBad.message}`, { field: firstBad.field }))
      }
      await recordAnswers(sql, carrier, read.answers.map((a) => {
        const times = a.events.flatMap((c) => (c.ok ? [c.event.occurredAt] : [])).sort()
        return { trackingNumber: a.trackingNumber, expectedDelivery: a.expectedDelivery, asOf: times.at(-1) ?? null }
      }))
      const results = await processor.ingest(read.events)
      log.info({ component: 'webhooks', carrier, events: results.length, inserted: results.filter((r) => r.outcome === 'inserted').length, rejected: logged.size ? read.events.filter((c) => !c.ok).length : 0 }, 'webhook ingested')
      return { results }
    },
    { parse: 'none', detail: { summary: "A carrier's signed push, in the carrier's own format", tags: ['carriers'] } }
  )
}
