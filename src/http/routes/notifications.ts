/**
 * Notifications (contract §8): `POST /v1/notifications`; a user's inbox and its acks
 * (`/v1/users/:userId/notifications[/ack]`); presence (`/v1/users/:userId/presence`,
 * `/v1/presence?userIds=`); the watchers of a shipment (`/v1/shipments/:id/watchers[/:userId]`).
 * Every field is checked here, once (storable text, userId and type rules); a wrong one is a 4xx
 * naming it.
 */
import { Elysia, t } from 'elysia'
import type { Engine, Presence } from '../../engine/engine.ts'
import { AppError, NotFoundError, ValidationError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import { parseAckTarget } from '../../notifications/ack.ts'
import {
  createNotifications,
  MAX_BODY_LENGTH,
  MAX_DATA_BYTES,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_TITLE_LENGTH,
  MAX_USERS_PER_REQUEST,
  parseNotificationRequest
} from '../../notifications/create.ts'
import { userIdOf } from '../../notifications/model.ts'
import type { NotificationPublisher } from '../../notifications/publish.ts'
import type { NotificationQueries } from '../../notifications/queries.ts'
import type { WatcherStore } from '../../notifications/watchers.ts'
import type { MessageRef } from '../../webhooks/messages-sql.ts'
import type { Sql } from '../../db/client.ts'
import { retryConflicts } from '../../db/conflicts.ts'
import { isUuid } from '../../shipments/store.ts'
import { positiveInt } from './shipments.ts'

export const MAX_PRESENCE_USERS = 1000

const keyHash = (request: Request) => {
  // The guard has checked the key already; only its hash is ever stored.
  const key = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get('authorization') ?? '')?.[1] ?? ''
  return Buffer.from(new Bun.CryptoHasher('sha256').update(key).digest())
}

const presenceUnavailable = (err: unknown) =>
  new AppError('unavailable', 'presence cannot be read now: the delivery engine does not answer; retry shortly', { status: 503, retryable: true, cause: err })

export function notificationRoutes({
  sql,
  queries,
  watchers,
  publisher,
  engine,
  log,
  onWebhookMessages
}: {
  sql: Sql
  queries: NotificationQueries
  watchers: WatcherStore
  publisher: NotificationPublisher
  engine: Engine
  log: Logger
  /** After the commit: the `notification.created` webhook messages it created, to be scheduled. Must not throw. */
  onWebhookMessages?: (messages: readonly MessageRef[]) => void
}) {
  async function presenceOf(userIds: string[]) {
    let found: Map<string, Presence>
    try {
      found = await engine.presenceGet(userIds)
    } catch (err) {
      throw presenceUnavailable(err)
    }
    return userIds.map((userId) => {
      const p = found.get(userId)
      const connections = p?.connections ?? 0
      return { userId, online: connections > 0, connections, lastSeenAt: p?.lastSeenAt == null ? null : new Date(p.lastSeenAt).toISOString() }
    })
  }

  return new Elysia({ name: 'notifications' })
    .post(
      '/v1/notifications',
      async ({ body, request, set }) => {
        const req = parseNotificationRequest(body)
        const done = await retryConflicts(() => createNotifications(sql, req, keyHash(request)), {
          onRetry: (sqlstate, attempt) => log.warn({ component: 'notifications', sqlstate, attempt }, 'creating notifications conflicted; retrying')
        })
        // After the commit; neither throws (what the engine does not take stays in the outbox, and
        // in webhook_messages for the schedule's rebuild).
        if (done.webhookMessages.length > 0) onWebhookMessages?.(done.webhookMessages)
        await publisher.publish(done.messages, 'api')
        set.status = 202
        if (done.replayed) set.headers['idempotent-replayed'] = 'true'
        return done.answer
      },
      {
        body: t.Object({
          userIds: t.Optional(
            t.Array(t.String(), {
              minItems: 1,
              maxItems: MAX_USERS_PER_REQUEST,
              description: `1 to ${MAX_USERS_PER_REQUEST} userIds (1-128 of A-Z a-z 0-9 . _ @ : -), each once`
            })
          ),
          userId: t.Optional(t.String({ description: 'one user, instead of userIds' })),
          type: t.String({ description: '1-100 of a-z 0-9 . _ -' }),
          title: t.Optional(t.Nullable(t.String({ maxLength: MAX_TITLE_LENGTH }))),
          body: t.Optional(t.Nullable(t.String({ maxLength: MAX_BODY_LENGTH }))),
          data: t.Optional(t.Nullable(t.Unknown({ description: `a JSON object of at most ${MAX_DATA_BYTES} bytes` }))),
          idempotencyKey: t.Optional(
            t.String({
              minLength: 1,
              maxLength: MAX_IDEMPOTENCY_KEY_LENGTH,
              description: 'the same key (per API key, for 24 h) returns the first answer again and creates nothing'
            })
          )
        }),
        detail: { summary: 'Notify 1 to 10,000 users: 202 {notifications: [{userId, id, seq}]} in the order given', tags: ['notifications'] }
      }
    )
    .get(
      '/v1/users/:userId/notifications',
      ({ params, query }) => {
        const userId = userIdOf('userId', params.userId)
        const state = query.state || 'all'
        if (state !== 'all' && state !== 'unread') throw new ValidationError('state', 'must be unread or all')
        return queries.inbox(userId, state, positiveInt('after', query.after, 0, 0, 2_147_483_647), positiveInt('limit', query.limit, 100, 1, 1000))
      },
      {
        query: t.Object({
          state: t.Optional(t.String({ description: 'unread or all (default)' })),
          after: t.Optional(t.String({ description: 'the last seq you have; default 0' })),
          limit: t.Optional(t.String({ description: '1-1000, default 100' }))
        }),
        detail: { summary: "A user's inbox in seq order: {items, lastSeq, nextAfter, unread}", tags: ['notifications'] }
      }
    )
    .post(
      '/v1/users/:userId/notifications/ack',
      async ({ params, body }) => {
        const userId = userIdOf('userId', params.userId)
        const b = (body ?? {}) as { upToSeq?: unknown; ids?: unknown }
        return queries.ack(userId, parseAckTarget(b.upToSeq, b.ids, 'upToSeq'))
      },
      {
        body: t.Object({
          upToSeq: t.Optional(t.Unknown({ description: 'marks every notification up to this seq read' })),
          ids: t.Optional(t.Unknown({ description: 'or these notification ids (1-1000)' }))
        }),
        detail: { summary: 'Mark notifications read (idempotent): {acked, unread}', tags: ['notifications'] }
      }
    )
    .get('/v1/users/:userId/presence', async ({ params }) => (await presenceOf([userIdOf('userId', params.userId)]))[0]!, {
      detail: { summary: 'Whether a user has a socket open on any process: {userId, online, connections, lastSeenAt}', tags: ['notifications'] }
    })
    .get(
      '/v1/presence',
      async ({ query }) => {
        const raw = (query.userIds ?? '')
          .split(',')
          .map((u) => u.trim())
          .filter((u) => u !== '')
        if (raw.length === 0) throw new ValidationError('userIds', 'is required: userIds=a,b,c')
        const userIds = [...new Set(raw.map((u, i) => userIdOf(`userIds[${i}]`, u)))]
        if (userIds.length > MAX_PRESENCE_USERS) throw new ValidationError('userIds', `must list at most ${MAX_PRESENCE_USERS} users`)
        return { items: await presenceOf(userIds) }
      },
      {
        query: t.Object({ userIds: t.Optional(t.String({ description: `comma-separated, at most ${MAX_PRESENCE_USERS}` })) }),
        detail: { summary: 'Presence of up to 1,000 users: {items: [{userId, online, connections, lastSeenAt}]}', tags: ['notifications'] }
      }
    )
    .put(
      '/v1/shipments/:id/watchers/:userId',
      async ({ params, set }) => {
        const userId = userIdOf('userId', params.userId)
        const put = isUuid(params.id) ? await watchers.put(params.id, userId) : null
        if (!put) throw new NotFoundError(`no shipment with id "${params.id}"`)
        set.status = put.created ? 201 : 200
        return put.watcher
      },
      { detail: { summary: 'Watch a shipment: the user is notified of every status change (201 new, 200 existing)', tags: ['notifications'] } }
    )
    .delete(
      '/v1/shipments/:id/watchers/:userId',
      async ({ params }) => {
        const userId = userIdOf('userId', params.userId)
        const removed = isUuid(params.id) ? await watchers.remove(params.id, userId) : null
        if (!removed) throw new NotFoundError(`user "${userId}" does not watch shipment "${params.id}"`)
        return removed
      },
      { detail: { summary: 'Stop watching a shipment', tags: ['notifications'] } }
    )
    .get(
      '/v1/shipments/:id/watchers',
      async ({ params, query }) => {
        const after = query.after ? userIdOf('after', query.after) : null
        const limit = positiveInt('limit', query.limit, 1000, 1, 1000)
        if (!isUuid(params.id) || !(await watchers.exists(params.id))) throw new NotFoundError(`no shipment with id "${params.id}"`)
        const items = await watchers.list(params.id, after, limit + 1)
        const more = items.length > limit
        const page = more ? items.slice(0, limit) : items
        return { items: page, nextAfter: more ? page.at(-1)!.userId : null }
      },
      {
        query: t.Object({
          after: t.Optional(t.String({ description: 'the last userId of the previous page' })),
          limit: t.Optional(t.String({ description: '1-1000, default 1000' }))
        }),
        detail: { summary: "A shipment's watchers in userId order: {items: [{userId, createdAt}], nextAfter}", tags: ['notifications'] }
      }
    )
}
