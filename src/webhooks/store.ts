/**
 * Webhook endpoints, messages and the dead-letter queue as the API shows them (contract §9).
 * Instants leave PostgreSQL formatted (`iso_utc`); list cursors carry the sort key with its
 * microseconds, formatted by PostgreSQL, so pages never repeat or skip rows of one instant.
 */
import type { Sql } from '../db/client.ts'
import { ValidationError } from '../errors.ts'
import { isUuid } from '../shipments/store.ts'

export const EVENT_TYPES = ['shipment.event', 'shipment.status_changed', 'notification.created'] as const
export type EventType = (typeof EVENT_TYPES)[number]
export const MESSAGE_STATES = ['pending', 'delivered', 'failed'] as const

export interface Endpoint {
  id: string
  url: string
  eventTypes: string[]
  userIds: string[] | null
  description: string | null
  enabled: boolean
  disabledReason: string | null
  failingSince: string | null
  createdAt: string
  updatedAt: string
}

export interface MessageSummary {
  id: string
  endpointId: string
  type: string
  state: string
  attemptCount: number
  round: number
  lastError: string | null
  nextAttemptAt: string | null
  deliveredAt: string | null
  failedAt: string | null
  createdAt: string
}

export interface Attempt {
  n: number
  round: number
  at: string
  status: number | null
  error: string | null
  ms: number
}

export interface Page<T> {
  items: T[]
  nextCursor: string | null
}

/** A due message for the schedule: its member (`<endpointId> <messageId>`) and due time. */
export interface Due {
  id: string
  endpointId: string
  dueAt: number
}

const US = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`

export function createWebhookStore(sql: Sql) {
  const endpointColumns = sql`
    id, url, event_types as "eventTypes", user_ids as "userIds", description, enabled, disabled_reason as "disabledReason",
    iso_utc(failing_since) as "failingSince", iso_utc(created_at) as "createdAt", iso_utc(updated_at) as "updatedAt"`
  const messageColumns = sql`
    m.id, m.endpoint_id as "endpointId", m.type, m.state, m.attempt_count as "attemptCount", m.round, m.last_error as "lastError",
    case when m.state = 'pending' then iso_utc(m.next_attempt_at) end as "nextAttemptAt", iso_utc(m.delivered_at) as "deliveredAt",
    iso_utc(m.failed_at) as "failedAt", iso_utc(m.created_at) as "createdAt"`
  const sortKey = (column: string) => sql.unsafe(`to_char(${column} at time zone 'UTC', ${US})`)

  return {
    async createEndpoint(e: { url: string; eventTypes: string[]; userIds: string[] | null; description: string | null; secret: string }): Promise<Endpoint> {
      const [row] = await sql<Endpoint[]>`
        insert into webhook_endpoints (url, event_types, user_ids, description, secret)
        values (${e.url}, ${e.eventTypes}::text[], ${e.userIds}::text[], ${e.description}, ${e.secret})
        returning ${endpointColumns}`
      return row!
    },

    async getEndpoint(id: string): Promise<Endpoint | null> {
      if (!isUuid(id)) return null
      const [row] = await sql<Endpoint[]>`select ${endpointColumns} from webhook_endpoints where id = ${id}`
      return row ?? null
    },

    async listEndpoints(q: { limit: number; cursor?: string }): Promise<Page<Endpoint>> {
      const after = q.cursor ? decodeCursor(q.cursor) : null
      if (after && !isUuid(after.id)) throw badCursor()
      const rows = await sql<(Endpoint & { k: string })[]>`
        select ${endpointColumns}, ${sortKey('created_at')} as k from webhook_endpoints
        where ${after ? sql`(created_at, id) > (${after.at}::timestamptz, ${after.id}::uuid)` : sql`true`}
        order by created_at, id limit ${q.limit + 1}`
      return page(rows, q.limit)
    },

    /**
     * Changes what is given. Enabling a disabled endpoint clears why it was disabled and its
     * failure clock, and makes its pending messages due now (returned, to be scheduled).
     */
    async updateEndpoint(
      id: string,
      p: { url?: string; eventTypes?: string[]; userIds?: string[] | null; description?: string | null; enabled?: boolean }
    ): Promise<{ endpoint: Endpoint; resumed: Due[] } | null> {
      if (!isUuid(id)) return null
      return sql.begin(async (tx) => {
        const [before] = await tx<{ enabled: boolean }[]>`select enabled from webhook_endpoints where id = ${id} for update`
        if (!before) return null
        const resuming = p.enabled === true && !before.enabled
        const disabling = p.enabled === false && before.enabled
        const [endpoint] = await tx<Endpoint[]>`
          update webhook_endpoints set
            url = coalesce(${p.url ?? null}, url),
            event_types = coalesce(${p.eventTypes ?? null}::text[], event_types),
            user_ids = case when ${p.userIds !== undefined} then ${p.userIds ?? null}::text[] else user_ids end,
            description = case when ${p.description !== undefined} then ${p.description ?? null} else description end,
            enabled = coalesce(${p.enabled ?? null}::boolean, enabled),
            disabled_reason = case when ${resuming} then null when ${disabling} then 'disabled through the API' else disabled_reason end,
            disabled_by = case when ${resuming} then null when ${disabling} then 'operator' else disabled_by end,
            failing_since = case when ${resuming} then null else failing_since end,
            updated_at = now()
          where id = ${id}
          returning ${endpointColumns}`
        const resumed = resuming
          ? await tx<Due[]>`
              update webhook_messages set next_attempt_at = least(next_attempt_at, now())
              where endpoint_id = ${id} and state = 'pending'
              returning id, endpoint_id as "endpointId", extract(epoch from next_attempt_at)::float8 * 1000 as "dueAt"`
          : []
        return { endpoint: endpoint!, resumed }
      })
    },

    async deleteEndpoint(id: string): Promise<boolean> {
      if (!isUuid(id)) return false
      const rows = await sql`delete from webhook_endpoints where id = ${id} returning id`
      return rows.length > 0
    },

    /** The new secret signs from now on; the previous one also signs until `graceMs` from now. */
    async rotateSecret(id: string, secret: string, graceMs: number): Promise<{ id: string; previousSecretExpiresAt: string } | null> {
      if (!isUuid(id)) return null
      const [row] = await sql<{ id: string; previousSecretExpiresAt: string }[]>`
        update webhook_endpoints
        set previous_secret = secret, previous_secret_until = now() + make_interval(secs => ${graceMs / 1000}), secret = ${secret}, updated_at = now()
        where id = ${id}
        returning id, iso_utc(previous_secret_until) as "previousSecretExpiresAt"`
      return row ?? null
    },

    async listMessages(q: { endpointId?: string; state?: string; deadLetters?: boolean; limit: number; cursor?: string }): Promise<Page<MessageSummary>> {
      const after = q.cursor ? decodeCursor(q.cursor) : null
      if (q.endpointId !== undefined && !isUuid(q.endpointId)) return { items: [], nextCursor: null }
      // The DLQ pages by when messages failed, newest first; an endpoint's messages by creation.
      const column = q.deadLetters ? 'm.failed_at' : 'm.created_at'
      const rows = await sql<(MessageSummary & { k: string })[]>`
        select ${messageColumns}, ${sortKey(column)} as k from webhook_messages m
        where ${q.endpointId ? sql`m.endpoint_id = ${q.endpointId}` : sql`true`}
          and ${q.deadLetters ? sql`m.state = 'failed'` : q.state ? sql`m.state = ${q.state}` : sql`true`}
          and ${after ? sql`(${sql.unsafe(column)}, m.id) < (${after.at}::timestamptz, ${after.id})` : sql`true`}
        order by ${sql.unsafe(column)} desc, m.id desc limit ${q.limit + 1}`
      return page(rows, q.limit)
    },

    async getMessage(id: string): Promise<(MessageSummary & { attempts: Attempt[]; payload: unknown }) | null> {
      const [row] = await sql<(MessageSummary & { body: string })[]>`select ${messageColumns}, m.body from webhook_messages m where m.id = ${id}`
      if (!row) return null
      const attempts = await sql<Attempt[]>`
        select n, round, iso_utc(at) as at, status, error, ms from webhook_attempts where message_id = ${id} order by n`
      const { body, ...message } = row
      return { ...message, attempts, payload: JSON.parse(body) }
    },

    /**
     * A new round of attempts for dead letters — one message, or every one of an endpoint created
     * since `since` — with the same ids. Returns the messages now due, or why none could be.
     */
    async replay(
      where: { messageId: string } | { endpointId: string; since: string | null }
    ): Promise<{ due: Due[] } | { refused: 'not_found' | 'not_dead_lettered' | 'endpoint_disabled' }> {
      return sql.begin(async (tx) => {
        const endpointId =
          'endpointId' in where
            ? where.endpointId
            : (
                await tx<{ endpoint_id: string; state: string }[]>`
          select endpoint_id, state from webhook_messages where id = ${where.messageId}`
              )[0]?.endpoint_id
        if (!endpointId || !isUuid(endpointId)) return { refused: 'not_found' as const }
        const [endpoint] = await tx<{ enabled: boolean }[]>`select enabled from webhook_endpoints where id = ${endpointId} for share`
        if (!endpoint) return { refused: 'not_found' as const }
        if (!endpoint.enabled) return { refused: 'endpoint_disabled' as const }
        const due = await tx<Due[]>`
          update webhook_messages m
          set state = 'pending', round = round + 1, round_attempts = 0, next_attempt_at = now(), failed_at = null,
              lease_until = null, lease_holder = null
          where m.state = 'failed' and ${
            'messageId' in where
              ? tx`m.id = ${where.messageId}`
              : tx`m.endpoint_id = ${endpointId} and m.created_at >= coalesce(${where.since}::timestamptz, '-infinity')`
          }
          returning id, endpoint_id as "endpointId", extract(epoch from next_attempt_at)::float8 * 1000 as "dueAt"`
        if ('messageId' in where && due.length === 0) return { refused: 'not_dead_lettered' as const }
        return { due }
      })
    }
  }
}

export type WebhookStore = ReturnType<typeof createWebhookStore>

function page<T extends { k: string; id: string }>(rows: T[], limit: number): Page<Omit<T, 'k'>> {
  const more = rows.length > limit
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return {
    items: items.map(({ k: _, ...rest }) => rest),
    nextCursor: more && last ? Buffer.from(JSON.stringify([last.k, last.id])).toString('base64url') : null
  }
}

const CURSOR_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/

function decodeCursor(cursor: string): { at: string; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[]
    if (typeof at === 'string' && CURSOR_TIME_RE.test(at) && typeof id === 'string' && /^[\w-]{1,64}$/.test(id)) return { at, id }
  } catch {}
  throw badCursor()
}

const badCursor = () => new ValidationError('cursor', 'is not a cursor this API gave out (use nextCursor of the previous page)')
