/**
 * `POST /v1/notifications`: one notification for each of 1–10,000 users, in one transaction and
 * one set-based statement — every user's seq bumped by one insert … on conflict … returning (rows
 * locked in user_id order, as every writer of user_seqs locks them), the notifications, their
 * outbox rows and their `notification.created` webhook messages (webhooks/messages-sql.ts)
 * inserted from it — answering in the request's user order. An accepted notification is never
 * without its messages; an idempotent replay creates neither.
 *
 * With an idempotencyKey, the request's row in `notification_requests` is inserted first, in
 * the same transaction: a concurrent duplicate waits on its primary key until this one commits
 * (then reads the stored answer) or rolls back (then goes ahead itself). The answer is stored by
 * the same statement that writes the notifications. Keys are per API key (its SHA-256) and live
 * 24 hours: an older row is taken over as if it were not there (the retention loop deletes them).
 */
import type { Sql } from '../db/client.ts'
import { ValidationError } from '../errors.ts'
import { jsonProblem, isStorableText, UNSTORABLE_TEXT } from '../pipeline/storable.ts'
import { messageRefs, notificationMessages, refsOf, type MessageRef } from '../webhooks/messages-sql.ts'
import { TYPE_RE, toMessage, userIdOf, type NotificationMessage } from './model.ts'

export const MAX_USERS_PER_REQUEST = 10_000
export const MAX_DATA_BYTES = 16 * 1024
export const MAX_TITLE_LENGTH = 200
export const MAX_BODY_LENGTH = 4000
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200
export const IDEMPOTENCY_HOURS = 24

export interface NotificationRequest {
  userIds: string[]
  type: string
  title: string | null
  body: string | null
  /** `data` as JSON text, or null. */
  data: string | null
  idempotencyKey: string | null
}

export interface CreatedNotifications {
  notifications: { userId: string; id: string; seq: number }[]
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function optionalText(field: string, v: unknown, max: number): string | null {
  if (v === undefined || v === null) return null
  if (typeof v !== 'string') throw new ValidationError(field, 'must be a string')
  if (v.length > max) throw new ValidationError(field, `must be at most ${max} characters`)
  if (!isStorableText(v)) throw new ValidationError(field, UNSTORABLE_TEXT)
  return v
}

/** The request body, checked field by field; the first wrong field is a ValidationError naming it. */
export function parseNotificationRequest(body: unknown): NotificationRequest {
  if (!isObject(body)) throw new ValidationError('body', 'must be a JSON object {userIds | userId, type, title?, body?, data?, idempotencyKey?}')
  let userIds: string[]
  if (body.userIds !== undefined && body.userId !== undefined) throw new ValidationError('userId', 'give userIds or userId, not both')
  if (body.userIds !== undefined) {
    if (!Array.isArray(body.userIds)) throw new ValidationError('userIds', 'must be an array of userIds')
    if (body.userIds.length < 1 || body.userIds.length > MAX_USERS_PER_REQUEST)
      throw new ValidationError('userIds', `must list 1 to ${MAX_USERS_PER_REQUEST} userIds`)
    const seen = new Set<string>()
    userIds = body.userIds.map((u, i) => {
      const id = userIdOf(`userIds[${i}]`, u)
      if (seen.has(id)) throw new ValidationError(`userIds[${i}]`, `"${id}" is listed twice`)
      seen.add(id)
      return id
    })
  } else if (body.userId !== undefined) {
    userIds = [userIdOf('userId', body.userId)]
  } else throw new ValidationError('userIds', 'is required (or userId, for one user)')
  if (typeof body.type !== 'string' || !TYPE_RE.test(body.type)) throw new ValidationError('type', 'must be 1-100 of a-z, 0-9, ".", "_" or "-"')
  const title = optionalText('title', body.title, MAX_TITLE_LENGTH)
  const text = optionalText('body', body.body, MAX_BODY_LENGTH)
  let data: string | null = null
  if (body.data !== undefined && body.data !== null) {
    if (!isObject(body.data)) throw new ValidationError('data', 'must be a JSON object')
    const problem = jsonProblem(body.data)
    if (problem) throw new ValidationError(problem.path ? `data.${problem.path}` : 'data', problem.message)
    data = JSON.stringify(body.data)
    const bytes = Buffer.byteLength(data)
    if (bytes > MAX_DATA_BYTES) throw new ValidationError('data', `is ${bytes} bytes as JSON; at most ${MAX_DATA_BYTES}`)
  }
  const idempotencyKey = optionalText('idempotencyKey', body.idempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH)
  if (idempotencyKey === '') throw new ValidationError('idempotencyKey', 'must not be empty')
  return { userIds, type: body.type, title, body: text, data, idempotencyKey }
}

interface Row {
  user_id: string
  seq: number
  id: string
  created_at: string
  webhook_messages: MessageRef[] | null
}

/**
 * Writes the notifications (or finds the first answer to the same idempotency key). `messages`
 * are the committed notifications, to publish; `webhookMessages` the `notification.created`
 * webhook messages the same statement created, to schedule. Both empty for a replay.
 */
export async function createNotifications(
  sql: Sql,
  req: NotificationRequest,
  apiKeyHash: Buffer
): Promise<{ answer: CreatedNotifications; replayed: boolean; messages: NotificationMessage[]; webhookMessages: MessageRef[] }> {
  return sql.begin(async (tx) => {
    if (req.idempotencyKey !== null) {
      const [mine] = await tx`
        insert into notification_requests (api_key_hash, idempotency_key) values (${apiKeyHash}, ${req.idempotencyKey})
        on conflict (api_key_hash, idempotency_key) do update set response = null, created_at = now()
          where notification_requests.created_at < now() - make_interval(hours => ${IDEMPOTENCY_HOURS})
        returning 1`
      if (!mine) {
        const [first] = await tx<{ response: CreatedNotifications }[]>`
          select response from notification_requests where api_key_hash = ${apiKeyHash} and idempotency_key = ${req.idempotencyKey}`
        return { answer: first!.response, replayed: true, messages: [], webhookMessages: [] }
      }
    }
    // The users travel as one JSON document (postgres.js escapes array parameters element by element).
    const rows = await tx<Row[]>`
      with input as (
        select u.user_id, u.ord from json_array_elements_text(${tx.json(req.userIds)}::json) with ordinality as u(user_id, ord)
      ),
      bumped as (
        insert into user_seqs as s (user_id, last_seq)
        select user_id, 1 from input order by user_id
        on conflict (user_id) do update set last_seq = s.last_seq + 1
        returning user_id, last_seq
      ),
      ins as (
        insert into notifications (user_id, seq, type, title, body, data)
        select user_id, last_seq, ${req.type}, ${req.title}, ${req.body}, ${req.data}::text::json from bumped
        returning *
      ),
      outbox as (insert into notification_outbox (user_id, seq) select user_id, seq from ins),
      messages as (${notificationMessages(tx)}),
      answer as (
        update notification_requests set response = (
          select json_build_object('notifications', json_agg(json_build_object('userId', i.user_id, 'id', i.id, 'seq', i.seq) order by input.ord))
          from ins i join input on input.user_id = i.user_id
        )
        where ${req.idempotencyKey !== null} and api_key_hash = ${apiKeyHash} and idempotency_key = ${req.idempotencyKey ?? ''}
      )
      select i.user_id, i.seq, i.id, iso_utc(i.created_at) as created_at, ${messageRefs(tx, 'messages')} as webhook_messages
      from ins i join input on input.user_id = i.user_id order by input.ord`
    const notifications = rows.map((r) => ({ userId: r.user_id, id: r.id, seq: r.seq }))
    const messages = rows.map((r) =>
      toMessage({
        id: r.id,
        userId: r.user_id,
        seq: r.seq,
        type: req.type,
        title: req.title,
        body: req.body,
        data: req.data,
        shipmentId: null,
        createdAt: r.created_at
      })
    )
    return { answer: { notifications }, replayed: false, messages, webhookMessages: refsOf(rows) }
  })
}
