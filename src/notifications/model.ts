/**
 * What a notification is (contract §8), in one place: the user id and type rules, the topic and
 * stream names, and the frame body every path builds the same way — right after the commit,
 * from the outbox, from a gap fill — so that a client sees one notification as one string.
 */
import { ValidationError } from '../errors.ts'

/** 1–128 of A-Z a-z 0-9 . _ @ : - (also the check constraint of sql/000005). */
export const USER_ID_RE = /^[A-Za-z0-9._@:-]{1,128}$/
/** 1–100 of a-z 0-9 . _ - */
export const TYPE_RE = /^[a-z0-9._-]{1,100}$/

export const NOTIFICATION_STREAM = 'notifications:stream'
export const NOTIFICATION_GROUP = 'notification-workers'
/** The pub/sub channel the notification workers fan entries out on (FanoutMessage batches, as tracking:fanout). */
export const NOTIFICATION_FANOUT_CHANNEL = 'notifications:fanout'

export const STATUS_CHANGED = 'shipment.status_changed'

export const userTopic = (userId: string) => `user:${userId}`

export function isUserId(s: unknown): s is string {
  return typeof s === 'string' && USER_ID_RE.test(s)
}

/** `value` when it is a userId, else a ValidationError naming `field`. */
export function userIdOf(field: string, value: unknown): string {
  if (!isUserId(value)) throw new ValidationError(field, 'must be a userId: 1-128 of A-Z, a-z, 0-9, ".", "_", "@", ":" or "-"')
  return value
}

/** A notification as it was created: what its frames carry. `data` is its JSON text (or null). */
export interface NotificationRecord {
  id: string
  userId: string
  seq: number
  type: string
  title: string | null
  body: string | null
  data: string | null
  shipmentId: string | null
  createdAt: string
}

/**
 * The columns of a `notifications` row that make its record, as `NOTIFICATION_RECORD_COLUMNS`
 * selects them (over a row aliased `n`).
 */
export interface NotificationRow {
  id: string
  user_id: string
  seq: number
  type: string
  title: string | null
  body: string | null
  data: string | null
  shipment_id: string | null
  created_at: string
}

export const NOTIFICATION_RECORD_COLUMNS =
  'n.id, n.user_id, n.seq, n.type, n.title, n.body, n.data::text as data, n.shipment_id, iso_utc(n.created_at) as created_at'

export const recordOf = (r: NotificationRow): NotificationRecord => ({
  id: r.id,
  userId: r.user_id,
  seq: r.seq,
  type: r.type,
  title: r.title,
  body: r.body,
  data: r.data,
  shipmentId: r.shipment_id,
  createdAt: r.created_at
})

/** A committed notification on its way to sockets and the stream: `data` is the frame body (FanoutMessage's). */
export interface NotificationMessage {
  topic: string
  userId: string
  seq: number
  data: string
}

/**
 * A notification as the inbox and snapshots show it (queries.ts's `Notification`), as SQL over a
 * row of `notifications` aliased `n`: the inbox, snapshots and the `data` of `notification.created`
 * webhook messages (webhooks/messages-sql.ts) are built by this one expression.
 */
export const NOTIFICATION_JSON = `json_build_object('id', n.id, 'userId', n.user_id, 'seq', n.seq, 'type', n.type, 'title', n.title, 'body', n.body, 'data', n.data,
  'shipmentId', n.shipment_id, 'createdAt', iso_utc(n.created_at), 'deliveredAt', iso_utc(n.delivered_at), 'readAt', iso_utc(n.read_at))`

const str = (s: string | null) => (s === null ? 'null' : JSON.stringify(s))

/** `{"notification":{…}}`: the body of a notification frame, built by concatenation (`data` is already JSON). */
export function notificationBody(n: NotificationRecord): string {
  return `{"notification":{"id":"${n.id}","userId":${JSON.stringify(n.userId)},"seq":${n.seq},"type":"${n.type}","title":${str(n.title)},"body":${str(n.body)},"data":${n.data ?? 'null'},"shipmentId":${str(n.shipmentId)},"createdAt":"${n.createdAt}"}}`
}

export function toMessage(n: NotificationRecord): NotificationMessage {
  return { topic: userTopic(n.userId), userId: n.userId, seq: n.seq, data: notificationBody(n) }
}
