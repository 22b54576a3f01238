/** `POST /v1/webhooks/:carrier`: a carrier's signed push, through its adapter into the processor. */
import { Elysia } from 'elysia'
import { verifySignature, webhookEvents } from '../../carriers/webhooks.ts'
import type { Logger } from '../../log.ts'
import type { Processor } from '../../pipeline/processor.ts'
import { errorBody, json } from '../errors.ts'

export function webhookRoutes({ processor, secrets, log }: { processor: Processor; secrets: () => Promise<Map<string, string>>; log: Logger }) {
  return new Elysia({ name: 'webhooks' }).post(
    '/v1/webhooks/:carrier',
    async ({ params, request }) => {
      const carrier = params.carrier.toLowerCase()
      const secret = (await secrets()).get(carrier)
      if (!secret) return json(404, errorBody('webhook_not_configured', `no webhook secret is configured for carrier "${carrier}" (set ${carrier.toUpperCase()}_WEBHOOK_SECRET)`))
      const raw = await request.text()
      if (!verifySignature(secret, raw, request.headers.get('x-signature'))) {
        log.warn({ component: 'webhooks', carrier }, 'webhook with a missing or wrong signature refused')
        return json(401, errorBody('invalid_signature', 'X-Signature must be sha256=<hex HMAC-SHA256 of the raw body with the carrier secret>'))
      }
      const read = webhookEvents(carrier, raw)
      if ('error' in read) return json(400, errorBody('invalid_payload', read.error, { field: 'body' }))
      const results = await processor.ingest(read.events)
      log.info({ component: 'webhooks', carrier, events: results.length, inserted: results.filter((r) => r.outcome === 'inserted').length }, 'webhook ingested')
      return { results }
    },
    { parse: 'none', detail: { summary: "A carrier's signed push, in the carrier's own format", tags: ['carriers'] } }
  )
}
