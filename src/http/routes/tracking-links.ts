/**
 * `POST /v1/shipments/:id/tracking-link`: a capability URL for one shipment's recipient,
 * `/t/<trackingNumber>?token=<token>`. The token is a WebSocket token like those of POST /v1/tokens,
 * granting exactly that shipment's topic, naming no user (so it counts for no one's presence),
 * and with the recipient's view (tokens.ts): its holder is shown the parcel's public fields,
 * never your reference. The page it opens reads everything through it (src/pages/).
 */
import { Elysia } from 'elysia'
import { AppError, NotFoundError } from '../../errors.ts'
import { MAX_TOKEN_TTL_SECONDS, type Tokens } from '../../delivery/tokens.ts'
import type { ShipmentStore } from '../../shipments/store.ts'

/** A day: the longest any token of this service lives (delivery/tokens.ts). */
export const DEFAULT_LINK_TTL_SECONDS = MAX_TOKEN_TTL_SECONDS

export const trackingPath = (trackingNumber: string, token: string) => `/t/${encodeURIComponent(trackingNumber)}?token=${encodeURIComponent(token)}`

export function trackingLinkRoutes(store: Pick<ShipmentStore, 'get'>, tokens: Tokens) {
  return new Elysia({ name: 'tracking-links' }).post(
    '/v1/shipments/:id/tracking-link',
    // No body schema: linkTtl checks it, so a bad ttlSeconds is the 400 naming it whatever its type.
    async ({ params, body, set }) => {
      const ttlSeconds = linkTtl(body)
      const shipment = await store.get(params.id)
      if (!shipment || shipment.deletedAt) throw new NotFoundError(`no shipment with id "${params.id}"`)
      const topic = `shipment:${shipment.carrier}:${shipment.trackingNumber}`
      const { token, expiresAt } = await tokens.mint({ sub: null, topics: [topic], ttlSeconds, view: 'recipient' })
      set.status = 201
      return { url: trackingPath(shipment.trackingNumber, token), token, expiresAt }
    },
    {
      detail: { summary: "A tracking page link for the shipment's recipient (a capability URL scoped to this shipment)", tags: ['shipments'] }
    }
  )
}

function linkTtl(body: unknown): number {
  if (body === undefined || body === null || body === '') return DEFAULT_LINK_TTL_SECONDS
  if (typeof body !== 'object' || Array.isArray(body))
    throw new AppError('validation_failed', 'body: must be a JSON object {ttlSeconds?}', { status: 400, field: 'body' })
  const ttl = (body as { ttlSeconds?: unknown }).ttlSeconds
  if (ttl === undefined || ttl === null) return DEFAULT_LINK_TTL_SECONDS
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_SECONDS) {
    throw new AppError('validation_failed', `ttlSeconds: must be a whole number of seconds from 1 to ${MAX_TOKEN_TTL_SECONDS}`, {
      status: 400,
      field: 'ttlSeconds'
    })
  }
  return ttl
}
