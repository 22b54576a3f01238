/** `/v1/shipments`: create (idempotent), list (keyset), get, soft delete, timeline. */
import { Elysia, t } from 'elysia'
import { AppError, NotFoundError, ValidationError } from '../../errors.ts'
import { storable } from '../../pipeline/storable.ts'
import { IdentityError, STATUSES, isStatus, normalizeCarrier, normalizeTrackingNumber } from '../../pipeline/identity.ts'
import type { ShipmentStore } from '../../shipments/store.ts'

export const positiveInt = (name: string, raw: string | undefined, def: number, min: number, max: number): number => {
  if (raw === undefined || raw === '') return def
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new ValidationError(name, `must be a whole number from ${min} to ${max}`)
  return Number(raw)
}

function identity<T>(f: () => T): T {
  try {
    return f()
  } catch (err) {
    if (err instanceof IdentityError) throw new ValidationError(err.field, err.message)
    throw err
  }
}

export function shipmentRoutes(store: ShipmentStore, carriers?: { isKnown(code: string): Promise<boolean>; codes(): Promise<string[]> }) {
  const notFound = (id: string) => new NotFoundError(`no shipment with id "${id}"`)

  return new Elysia({ name: 'shipments' })
    .post(
      '/v1/shipments',
      async ({ body, set }) => {
        const carrier = identity(() => normalizeCarrier(body.carrier))
        const trackingNumber = identity(() => normalizeTrackingNumber(body.trackingNumber))
        const reference = storable('reference', body.reference?.trim() || null)
        // A shipment nothing will ever update is refused (contract §4: known carriers only).
        if (carriers && !(await carriers.isKnown(carrier))) {
          throw new AppError(
            'unknown_carrier',
            `carrier: "${carrier}" is not a known carrier; known: ${(await carriers.codes()).join(', ')}. Register a push-only carrier with PUT /v1/carriers/${carrier}`,
            { status: 422, field: 'carrier' }
          )
        }
        const { shipment, created } = await store.create(carrier, trackingNumber, reference)
        set.status = created ? 201 : 200
        return shipment
      },
      {
        body: t.Object({
          carrier: t.String({ minLength: 1, maxLength: 32, description: 'carrier code, e.g. dhl, dpd, gls' }),
          trackingNumber: t.String({ minLength: 1, maxLength: 128, description: 'normalized: trimmed, inner spaces removed, upper-cased' }),
          reference: t.Optional(t.Nullable(t.String({ maxLength: 200 })))
        }),
        detail: { summary: 'Track a shipment (idempotent: 201 new, 200 existing)', tags: ['shipments'] }
      }
    )
    .get(
      '/v1/shipments',
      ({ query }) => {
        // An empty parameter (`?status=`) means no filter, as forms and query builders send it.
        const status = query.status || undefined
        if (status !== undefined && !isStatus(status)) throw new ValidationError('status', `must be one of ${STATUSES.join(', ')}`)
        const carrier = query.carrier ? identity(() => normalizeCarrier(query.carrier!)) : undefined
        return store.list({ status, carrier, limit: positiveInt('limit', query.limit, 50, 1, 200), cursor: query.cursor || undefined })
      },
      {
        query: t.Object({
          status: t.Optional(t.String()),
          carrier: t.Optional(t.String()),
          limit: t.Optional(t.String({ description: '1-200, default 50' })),
          cursor: t.Optional(t.String({ maxLength: 200, description: 'nextCursor of the previous page' }))
        }),
        detail: { summary: 'List shipments, newest first, keyset-paginated', tags: ['shipments'] }
      }
    )
    .get('/v1/shipments/:id', async ({ params }) => (await store.get(params.id)) ?? Promise.reject(notFound(params.id)), {
      detail: { summary: 'A shipment with its projection and lastSeq', tags: ['shipments'] }
    })
    .delete('/v1/shipments/:id', async ({ params }) => (await store.remove(params.id)) ?? Promise.reject(notFound(params.id)), {
      detail: { summary: 'Soft delete: polling stops, history stays', tags: ['shipments'] }
    })
    .get(
      '/v1/shipments/:id/events',
      async ({ params, query }) => {
        const after = positiveInt('after', query.after, 0, 0, 2_147_483_647)
        const limit = positiveInt('limit', query.limit, 100, 1, 1000)
        const shipment = await store.get(params.id)
        if (!shipment) throw notFound(params.id)
        const items = await store.timeline(shipment.id, after, limit)
        const last = items.at(-1)
        return { items, lastSeq: shipment.lastSeq, nextAfter: last && last.seq < shipment.lastSeq ? last.seq : null }
      },
      {
        query: t.Object({
          after: t.Optional(t.String({ description: 'the last seq you have; default 0' })),
          limit: t.Optional(t.String({ description: '1-1000, default 100' }))
        }),
        detail: { summary: 'The timeline in seq order', tags: ['shipments'] }
      }
    )
}
