/**
 * What PostgreSQL answers about a user's notifications: the WebSocket snapshot (subscribes that
 * arrive together share a query, lookup-batcher.ts), the frames of a seq range (gap repair),
 * the last seq of many users (reconcile), the inbox, acks, and deliveredAt marks.
 *
 * Reads by seq are sent unprepared, as the shipment kind's are (delivery/queries.ts): a generic
 * plan cached while `notifications` was small would keep scanning it as it grows.
 */
import type { Sql } from '../db/client.ts'
import { createLookupBatcher } from '../delivery/lookup-batcher.ts'
import { NOTIFICATION_JSON, NOTIFICATION_RECORD_COLUMNS, notificationBody, recordOf, type NotificationRecord, type NotificationRow } from './model.ts'

/** Notifications a snapshot lists at most; the rest follow as frames. */
export const SNAPSHOT_NOTIFICATION_LIMIT = 1000

/** A notification as the inbox and snapshots show it: as created, `data` parsed, and its state. */
export interface Notification extends Omit<NotificationRecord, 'data'> {
  data: Record<string, unknown> | null
  deliveredAt: string | null
  readAt: string | null
}

export interface UserSnapshot {
  lastSeq: number
  unread: number
  items: Notification[]
  /** With `since`: the smallest seq still kept after it (null when none is). */
  firstAfter: number | null
}

const LAST_SEQ = (user: string) => `coalesce((select last_seq from user_seqs s where s.user_id = ${user}), 0)`

export function createNotificationQueries(sql: Sql) {
  // Keys are userId NUL since ('' without): a userId holds no NUL.
  const snapshots = createLookupBatcher<UserSnapshot>({
    maxInFlight: 2,
    maxBatch: 500,
    maxQueued: 50_000,
    async run(keys) {
      const input = keys.map((k, i) => {
        const [user, since] = k.split('\u0000') as [string, string]
        return { i, user_id: user, since: since === '' ? null : Number(since) }
      })
      const rows = await sql.unsafe<{ i: number; last_seq: number; unread: number; items: Notification[]; first_after: number | null }[]>(
        `select i.i, u.last_seq,
                (select count(*)::int from notifications n where n.user_id = i.user_id and n.read_at is null and n.seq <= u.last_seq) as unread,
                case when i.since is null then
                  (select coalesce(json_agg(x.j order by x.seq), '[]') from (
                     select n.seq, ${NOTIFICATION_JSON} as j from notifications n
                     where n.user_id = i.user_id and n.read_at is null and n.seq <= u.last_seq order by n.seq limit ${SNAPSHOT_NOTIFICATION_LIMIT}) x)
                else
                  (select coalesce(json_agg(x.j order by x.seq), '[]') from (
                     select n.seq, ${NOTIFICATION_JSON} as j from notifications n
                     where n.user_id = i.user_id and n.seq > i.since and n.seq <= u.last_seq order by n.seq limit ${SNAPSHOT_NOTIFICATION_LIMIT}) x)
                end as items,
                case when i.since is null then null else (select min(n.seq) from notifications n where n.user_id = i.user_id and n.seq > i.since) end as first_after
         from json_to_recordset($1::text::json) as i(i int, user_id text, since int)
         cross join lateral (select ${LAST_SEQ('i.user_id')} as last_seq) u`,
        [JSON.stringify(input)]
      )
      return new Map(rows.map((r) => [keys[r.i]!, { lastSeq: r.last_seq, unread: r.unread, items: r.items, firstAfter: r.first_after }]))
    }
  })

  return {
    /**
     * The state a subscribe starts from, read in one statement (one snapshot): the user's last
     * seq, unread count, and without `since` the unread notifications, with it those after it —
     * at most SNAPSHOT_NOTIFICATION_LIMIT, oldest first, none past that last seq.
     */
    snapshot: async (userId: string, since: number | undefined): Promise<UserSnapshot> => (await snapshots.get(`${userId}\u0000${since ?? ''}`))!,

    /** Frames of the notifications with after < seq <= upto, at most `limit`, in seq order. */
    async frames(userId: string, after: number, upto: number, limit: number): Promise<{ seq: number; data: string }[]> {
      const rows = await sql.unsafe<NotificationRow[]>(
        `select ${NOTIFICATION_RECORD_COLUMNS}
         from notifications n where n.user_id = $1 and n.seq > $2 and n.seq <= $3 order by n.seq limit $4`,
        [userId, after, upto, limit]
      )
      return rows.map((r) => ({ seq: r.seq, data: notificationBody(recordOf(r)) }))
    },

    /**
     * The lowest seq still stored for the user, or its last seq + 1 when none is (retention
     * deletes the oldest first, so every seq below it is gone for good): the sequencer's
     * `firstRetained`, asked when a gap read finds nothing. One probe of the primary key
     * (user_id, seq), and last_seq read in the same statement, so the two agree.
     */
    async firstRetained(userId: string): Promise<number> {
      const [row] = await sql.unsafe<{ first: number }[]>(
        `select coalesce((select min(seq) from notifications where user_id = $1), ${LAST_SEQ('$1')} + 1) as first`,
        [userId]
      )
      return row!.first
    },

    /** The last seq of each user that has one. */
    async lastSeqs(userIds: readonly string[]): Promise<Map<string, number>> {
      if (userIds.length === 0) return new Map()
      const rows = await sql<
        { user_id: string; last_seq: number }[]
      >`select user_id, last_seq from user_seqs where user_id = any(${userIds as string[]}::text[])`
      return new Map(rows.map((r) => [r.user_id, r.last_seq]))
    },

    /** The inbox: notifications after `after` in seq order (only unread ones with state unread), the user's last seq and unread count. */
    async inbox(
      userId: string,
      state: 'unread' | 'all',
      after: number,
      limit: number
    ): Promise<{ items: Notification[]; lastSeq: number; nextAfter: number | null; unread: number }> {
      const [row] = await sql.unsafe<{ last_seq: number; unread: number; items: Notification[] }[]>(
        `select u.last_seq,
                (select count(*)::int from notifications n where n.user_id = $1 and n.read_at is null) as unread,
                (select coalesce(json_agg(x.j order by x.seq), '[]') from (
                   select n.seq, ${NOTIFICATION_JSON} as j from notifications n
                   where n.user_id = $1 and n.seq > $2 ${state === 'unread' ? 'and n.read_at is null' : ''} and n.seq <= u.last_seq
                   order by n.seq limit $3) x) as items
         from (select ${LAST_SEQ('$1')} as last_seq) u`,
        [userId, after, limit + 1]
      )
      const more = row!.items.length > limit
      const items = more ? row!.items.slice(0, limit) : row!.items
      return { items, lastSeq: row!.last_seq, nextAfter: more ? items.at(-1)!.seq : null, unread: row!.unread }
    },

    /**
     * Marks read (and delivered, if not yet) every unread notification of the user up to `upToSeq`,
     * or those of `ids` that are the user's. Idempotent. How many it marked, and the unread left.
     */
    async ack(userId: string, what: { upToSeq: number } | { ids: string[] }): Promise<{ acked: number; unread: number }> {
      const marked =
        'upToSeq' in what
          ? await sql`update notifications set read_at = now(), delivered_at = coalesce(delivered_at, now())
                    where user_id = ${userId} and read_at is null and seq <= ${what.upToSeq}`
          : await sql`update notifications set read_at = now(), delivered_at = coalesce(delivered_at, now())
                    where user_id = ${userId} and read_at is null and id = any(${what.ids}::uuid[])`
      const [row] = await sql<{ unread: number }[]>`select count(*)::int as unread from notifications where user_id = ${userId} and read_at is null`
      return { acked: marked.count, unread: row!.unread }
    },

    /** deliveredAt = now for these (user, seq) not yet delivered; in (user, seq) order, as every writer of these rows locks them. */
    async markDelivered(refs: readonly { userId: string; seq: number }[]): Promise<number> {
      if (refs.length === 0) return 0
      const res = await sql`
        update notifications n set delivered_at = now()
        from json_to_recordset(${sql.json(refs as never)}::json) as u("userId" text, seq int)
        where n.user_id = u."userId" and n.seq = u.seq and n.delivered_at is null`
      return res.count
    }
  }
}

export type NotificationQueries = ReturnType<typeof createNotificationQueries>
