/**
 * `POST /v1/events`: ingest normalized events. Each event gets its own outcome, in order; a
 * bad event is `invalid` (with the field) and does not hold back the others, nor other callers'
 * events sharing its transaction. When no event in the batch is valid the request itself is
 * bad: 400 naming the first wrong field.
 */
import { Elysia, t } from 'elysia'
import { toNormalizedEvent } from '../../pipeline/event.ts'
import type { Processor } from '../../pipeline/processor.ts'
import { errorBody, json } from '../errors.ts'

export const MAX_EVENTS_PER_REQUEST = 1000

export function eventRoutes(processor: Processor) {
  return new Elysia({ name: 'events' }).post(
    '/v1/events',
    async ({ body }) => {
      const results = await processor.ingest(body.events.map((e) => toNormalizedEvent(e)))
      // Invalid at the edge, or refused by the database alone in its transaction (processor.ts).
      if (results.every((r) => r.outcome === 'invalid')) {
        const { field: inEvent, message } = results[0]!.error!
        const field = inEvent === 'event' ? 'events[0]' : `events[0].${inEvent}`
        return json(400, errorBody('validation_failed', `${field}: ${message}`, { field, results }))
      }
      return { results }
    },
    {
      body: t.Object({
        events: t.Array(
          t.Unknown({
            description:
              '{ carrier, trackingNumber, carrierStatus, status?, occurredAt, location?, description? } — occurredAt is ISO-8601; without an offset it is read as UTC'
          }),
          { minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST }
        )
      }),
      detail: { summary: 'Ingest normalized events; per-event outcomes in order', tags: ['events'] }
    }
  )
}
