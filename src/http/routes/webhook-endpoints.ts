/**
 * Outbound webhooks' API (contract §9): `/v1/webhook-endpoints` (CRUD, rotate-secret, an
 * endpoint's messages), `/v1/webhook-messages/:id` (one message with every attempt), and the
 * dead-letter queue `/v1/dlq` with its replays. The secret is shown at creation and rotation only.
 * A url that is not http(s), or whose host is or resolves to a non-public address, is a 422
 * naming `url` (unless WEBHOOK_ALLOW_PRIVATE=true); nothing is sent on creation.
 */
import { Elysia, t } from 'elysia'
import { AppError, NotFoundError, ValidationError } from '../../errors.ts'
import { normalizeInstant, IdentityError } from '../../pipeline/identity.ts'
import { storable } from '../../pipeline/storable.ts'
import { newSecret } from '../../webhooks/signature.ts'
import { EVENT_TYPES, MESSAGE_STATES } from '../../webhooks/store.ts'
import { checkTarget } from '../../webhooks/url-guard.ts'
import type { Webhooks } from '../../webhooks/webhooks.ts'
import { USER_ID_RE } from '../../notifications/model.ts'

const MAX_USER_IDS = 1000

const limitOf = (raw: string | undefined, def = 50, max = 200): number => {
  if (raw === undefined || raw === '') return def
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new ValidationError('limit', `must be a whole number from 1 to ${max}`)
  return Number(raw)
}

function eventTypes(value: string[]): string[] {
  const unknown = value.findIndex((v) => !(EVENT_TYPES as readonly string[]).includes(v))
  if (unknown !== -1) throw new ValidationError(`eventTypes[${unknown}]`, `must be one of ${EVENT_TYPES.join(', ')}`)
  return [...new Set(value)]
}

function userIds(value: string[] | null | undefined): string[] | null | undefined {
  if (value === undefined || value === null) return value
  const bad = value.findIndex((u) => !USER_ID_RE.test(u))
  if (bad !== -1) throw new ValidationError(`userIds[${bad}]`, 'must be 1-128 characters of A-Z a-z 0-9 . _ @ : -')
  return [...new Set(value)]
}

function description(value: string | null | undefined): string | null | undefined {
  return value === undefined || value === null ? value : storable('description', value.trim()) || null
}

export function webhookEndpointRoutes(webhooks: Webhooks, opts: { allowPrivate: boolean; secretGraceMs: number }) {
  const { store } = webhooks
  const notFound = (id: string) => new NotFoundError(`no webhook endpoint with id "${id}"`)

  async function targetUrl(raw: string): Promise<string> {
    const url = storable('url', raw.trim())
    const check = await checkTarget(url, { allowPrivate: opts.allowPrivate })
    if (!check.ok) throw new AppError('url_refused', `url: ${check.reason}`, { status: 422, field: 'url' })
    return check.url.href
  }

  const endpointBody = {
    url: t.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL the messages are POSTed to' }),
    eventTypes: t.Array(t.String({ maxLength: 64 }), { minItems: 1, maxItems: 3, description: EVENT_TYPES.join(', ') }),
    userIds: t.Optional(
      t.Nullable(t.Array(t.String({ maxLength: 128 }), { maxItems: MAX_USER_IDS, description: 'notification.created only for these users; null: every user' }))
    ),
    description: t.Optional(t.Nullable(t.String({ maxLength: 500 })))
  }

  return new Elysia({ name: 'webhook-endpoints' })
    .post(
      '/v1/webhook-endpoints',
      async ({ body, set }) => {
        const types = eventTypes(body.eventTypes)
        const users = userIds(body.userIds) ?? null
        const desc = description(body.description) ?? null
        const url = await targetUrl(body.url)
        const secret = newSecret()
        const endpoint = await webhooks.createEndpoint({ url, eventTypes: types, userIds: users, description: desc, secret })
        set.status = 201
        return { ...endpoint, secret }
      },
      { body: t.Object(endpointBody), detail: { summary: 'Create a webhook endpoint; the secret is shown here and at rotation only', tags: ['webhooks'] } }
    )
    .get('/v1/webhook-endpoints', ({ query }) => store.listEndpoints({ limit: limitOf(query.limit, 100, 1000), cursor: query.cursor || undefined }), {
      query: t.Object({ limit: t.Optional(t.String()), cursor: t.Optional(t.String({ maxLength: 300 })) }),
      detail: { summary: 'Webhook endpoints, oldest first', tags: ['webhooks'] }
    })
    .get('/v1/webhook-endpoints/:id', async ({ params }) => (await store.getEndpoint(params.id)) ?? Promise.reject(notFound(params.id)), {
      detail: { summary: 'One webhook endpoint', tags: ['webhooks'] }
    })
    .patch(
      '/v1/webhook-endpoints/:id',
      async ({ params, body }) => {
        const patch = {
          url: body.url === undefined ? undefined : await targetUrl(body.url),
          eventTypes: body.eventTypes === undefined ? undefined : eventTypes(body.eventTypes),
          userIds: userIds(body.userIds),
          description: description(body.description),
          enabled: body.enabled
        }
        return (await webhooks.updateEndpoint(params.id, patch)) ?? Promise.reject(notFound(params.id))
      },
      {
        body: t.Object({
          ...t.Partial(t.Object(endpointBody)).properties,
          enabled: t.Optional(t.Boolean({ description: 'true resumes a disabled endpoint and its pending messages' }))
        }),
        detail: { summary: 'Change an endpoint; {"enabled": true} resumes a disabled one', tags: ['webhooks'] }
      }
    )
    .delete(
      '/v1/webhook-endpoints/:id',
      async ({ params, set }) => {
        if (!(await webhooks.deleteEndpoint(params.id))) throw notFound(params.id)
        set.status = 204
      },
      { detail: { summary: 'Delete an endpoint with its messages', tags: ['webhooks'] } }
    )
    .post(
      '/v1/webhook-endpoints/:id/rotate-secret',
      async ({ params }) => {
        const secret = newSecret()
        const rotated = await webhooks.rotateSecret(params.id, secret, opts.secretGraceMs)
        if (!rotated) throw notFound(params.id)
        return { ...rotated, secret }
      },
      { detail: { summary: 'A new secret; the previous one also signs until previousSecretExpiresAt', tags: ['webhooks'] } }
    )
    .get(
      '/v1/webhook-endpoints/:id/messages',
      async ({ params, query }) => {
        const state = query.state || undefined
        if (state !== undefined && !(MESSAGE_STATES as readonly string[]).includes(state))
          throw new ValidationError('state', `must be one of ${MESSAGE_STATES.join(', ')}`)
        const limit = limitOf(query.limit)
        if (!(await store.getEndpoint(params.id))) throw notFound(params.id)
        return store.listMessages({ endpointId: params.id, state, limit, cursor: query.cursor || undefined })
      },
      {
        query: t.Object({ state: t.Optional(t.String()), limit: t.Optional(t.String()), cursor: t.Optional(t.String({ maxLength: 300 })) }),
        detail: { summary: "An endpoint's messages, newest first", tags: ['webhooks'] }
      }
    )
    .get(
      '/v1/webhook-messages/:id',
      async ({ params }) => (await store.getMessage(params.id)) ?? Promise.reject(new NotFoundError(`no webhook message with id "${params.id}"`)),
      {
        detail: { summary: 'One message with every attempt', tags: ['webhooks'] }
      }
    )
    .get(
      '/v1/dlq',
      async ({ query }) => {
        const endpointId = query.endpointId || undefined
        const limit = limitOf(query.limit)
        // As for an endpoint's messages: a filter naming no endpoint is a 404, not an empty page.
        if (endpointId !== undefined && !(await store.getEndpoint(endpointId))) throw notFound(endpointId)
        return store.listMessages({ endpointId, deadLetters: true, limit, cursor: query.cursor || undefined })
      },
      {
        query: t.Object({ endpointId: t.Optional(t.String()), limit: t.Optional(t.String()), cursor: t.Optional(t.String({ maxLength: 300 })) }),
        detail: { summary: 'The dead-letter queue: messages whose delivery failed finally, newest first', tags: ['webhooks'] }
      }
    )
    .post(
      '/v1/dlq/:messageId/replay',
      async ({ params, set }) => {
        const r = await webhooks.replay({ messageId: params.messageId })
        if ('refused' in r) throw refusal(r.refused, `webhook message "${params.messageId}"`)
        set.status = 202
        return { id: params.messageId, ...r }
      },
      { detail: { summary: 'A new round of attempts for one dead letter, same webhook-id', tags: ['webhooks'] } }
    )
    .post(
      '/v1/dlq/replay',
      async ({ body, set }) => {
        let since: string | null = null
        if (body.since !== undefined && body.since !== null) {
          try {
            since = normalizeInstant(body.since)
          } catch (err) {
            if (err instanceof IdentityError) throw new ValidationError('since', err.message)
            throw err
          }
        }
        const r = await webhooks.replay({ endpointId: body.endpointId, since })
        if ('refused' in r) throw refusal(r.refused, `webhook endpoint "${body.endpointId}"`)
        set.status = 202
        return r
      },
      {
        body: t.Object({
          endpointId: t.String({ maxLength: 64 }),
          since: t.Optional(t.Nullable(t.String({ maxLength: 64, description: 'ISO-8601; dead letters created at or after it (default: all)' })))
        }),
        detail: { summary: 'A new round of attempts for every dead letter of an endpoint (since a time)', tags: ['webhooks'] }
      }
    )
}

function refusal(why: 'not_found' | 'not_dead_lettered' | 'endpoint_disabled', what: string): AppError {
  if (why === 'not_found') return new NotFoundError(`no ${what}`)
  if (why === 'endpoint_disabled')
    return new AppError(
      'endpoint_disabled',
      `the endpoint of ${what} is disabled; resume it with PATCH {"enabled": true}, which resumes its pending messages too`,
      { status: 409 }
    )
  return new AppError('not_dead_lettered', `${what} is not in the dead-letter queue (only failed messages are replayed)`, { status: 409 })
}
