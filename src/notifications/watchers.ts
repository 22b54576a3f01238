/**
 * Watchers of shipments (contract §8): who follows a shipment, and the `shipment.status_changed`
 * notification each of them gets when its projected status changes — written by the ingest
 * transaction (pipeline/ingest-query.ts, round trip B) in the same commit as the event, by one
 * statement that also creates their `notification.created` webhook messages (contract §9,
 * webhooks/messages-sql.ts).
 *
 * The statement numbers each watcher's notifications from `user_seqs` under its row lock,
 * taken in user_id order (as every statement that bumps users does), so two transactions never
 * deadlock on users and every user's seq is gap-free in commit order. Ingest has locked its
 * shipments before (in id order): the lock order is always shipments, then users.
 */
import type { Sql } from '../db/client.ts'
import { AppError } from '../errors.ts'
import type { NormalizedEvent } from '../pipeline/event.ts'
import { eventPayload } from '../pipeline/stream.ts'
import { messageRefs, notificationMessages, refsOf, type MessageRef } from '../webhooks/messages-sql.ts'
import { STATUS_CHANGED, toMessage, type NotificationMessage } from './model.ts'

/** Watchers a shipment may have: each status change writes one notification per watcher in the ingest transaction. */
export const MAX_WATCHERS = 10_000

/** An inserted event that moved its shipment's projected status (plan()'s statusChange). */
export interface StatusChange {
  ord: number
  shipmentId: string
  seq: number
  from: string
  to: string
  event: NormalizedEvent
  /** The ingest transaction's start: the event's receivedAt. */
  receivedAt: string
}

interface Row {
  ord: number
  user_id: string
  seq: number
  id: string
  created_at: string
  webhook_messages: MessageRef[] | null
}

/** What the watchers' statement wrote: notifications for the stream, webhook messages for the schedule. */
export interface WatcherNotifications {
  notifications: NotificationMessage[]
  webhookMessages: MessageRef[]
}

/**
 * The pending statement for one batch's status changes (not yet sent: the caller puts it in its
 * pipeline, in order). Resolves with the notifications written, as messages for the stream, and
 * the `notification.created` webhook messages it created.
 */
export function watcherNotifications(tx: Sql, changes: readonly StatusChange[]): PromiseLike<WatcherNotifications> {
  const byOrd = new Map(changes.map((c) => [c.ord, { change: c, ...statusChangedContent(c) }]))
  const rows = changes.map((c) => ({ ord: c.ord, shipment_id: c.shipmentId, title: byOrd.get(c.ord)!.title, data: byOrd.get(c.ord)!.data }))
  const query = tx<Row[]>`
    with c as (
      select * from json_to_recordset(${tx.json(rows as never)}::json) as c(ord int, shipment_id uuid, title text, data text)
    ),
    w as (
      select c.ord, c.shipment_id, w.user_id, c.title, c.data from c join shipment_watchers w on w.shipment_id = c.shipment_id
    ),
    bumped as (
      insert into user_seqs as u (user_id, last_seq)
      select user_id, count(*)::int from w group by user_id order by user_id
      on conflict (user_id) do update set last_seq = u.last_seq + excluded.last_seq
      returning user_id, last_seq
    ),
    numbered as (
      select w.ord, w.user_id, w.shipment_id, w.title, w.data,
             (b.last_seq - count(*) over (partition by w.user_id) + row_number() over (partition by w.user_id order by w.ord))::int as seq
      from w join bumped b on b.user_id = w.user_id
    ),
    ins as (
      insert into notifications (user_id, seq, type, title, data, shipment_id)
      select user_id, seq, ${STATUS_CHANGED}, title, data::json, shipment_id from numbered
      returning *
    ),
    outbox as (insert into notification_outbox (user_id, seq) select user_id, seq from ins),
    messages as (${notificationMessages(tx)})
    select n.ord, i.user_id, i.seq, i.id, iso_utc(i.created_at) as created_at, ${messageRefs(tx, 'messages')} as webhook_messages
    from ins i join numbered n on n.user_id = i.user_id and n.seq = i.seq
    order by i.user_id, i.seq`
  const written = (found: Row[]): WatcherNotifications => ({
    notifications: found.map((r) => {
      const { change, title, data } = byOrd.get(r.ord)!
      return toMessage({
        id: r.id,
        userId: r.user_id,
        seq: r.seq,
        type: STATUS_CHANGED,
        title,
        body: null,
        data,
        shipmentId: change.shipmentId,
        createdAt: r.created_at
      })
    }),
    webhookMessages: refsOf(found)
  })
  // Not sent until the caller's pipeline asks for it (postgres.js sends a query when it is
  // awaited), so that it goes out in the caller's order.
  // biome-ignore lint/suspicious/noThenProperty: a lazy thenable on purpose, like postgres.js's own queries
  return { then: ((ok, fail) => query.then(written).then(ok, fail)) as PromiseLike<WatcherNotifications>['then'] }
}

/** The title and the data (JSON text) of a `shipment.status_changed` notification. */
export function statusChangedContent(c: StatusChange): { title: string; data: string } {
  const e = c.event
  const event = eventPayload(e, c.seq, c.receivedAt)
  return {
    title: `${e.carrier.toUpperCase()} ${e.trackingNumber}: ${c.to.replaceAll('_', ' ')}`,
    data: JSON.stringify({ shipmentId: c.shipmentId, carrier: e.carrier, trackingNumber: e.trackingNumber, from: c.from, to: c.to, event })
  }
}

export interface Watcher {
  shipmentId: string
  userId: string
  createdAt: string
}

export function createWatcherStore(sql: Sql) {
  return {
    /** Adds the watcher; `created` false when it was one already. Null when there is no such shipment. */
    async put(shipmentId: string, userId: string): Promise<{ watcher: Watcher; created: boolean } | null> {
      // The bound is checked by the insert itself: approximate under concurrent puts, by at most their number.
      const [added] = await sql<Watcher[]>`
        insert into shipment_watchers (shipment_id, user_id)
        select id, ${userId} from shipments
        where id = ${shipmentId} and (select count(*) from shipment_watchers where shipment_id = ${shipmentId}) < ${MAX_WATCHERS}
        on conflict do nothing
        returning shipment_id as "shipmentId", user_id as "userId", iso_utc(created_at) as "createdAt"`
      if (added) return { watcher: added, created: true }
      const [row] = await sql<{ found: boolean; watcher: Watcher | null }[]>`
        select exists (select 1 from shipments where id = ${shipmentId}) as found,
               (select json_build_object('shipmentId', shipment_id, 'userId', user_id, 'createdAt', iso_utc(created_at))
                from shipment_watchers where shipment_id = ${shipmentId} and user_id = ${userId}) as watcher`
      if (!row!.found) return null
      if (row!.watcher) return { watcher: row!.watcher, created: false }
      throw new AppError('too_many_watchers', `userId: the shipment has ${MAX_WATCHERS} watchers, the most it may have`, { status: 409, field: 'userId' })
    },

    async remove(shipmentId: string, userId: string): Promise<Watcher | null> {
      const [row] = await sql<Watcher[]>`
        delete from shipment_watchers where shipment_id = ${shipmentId} and user_id = ${userId}
        returning shipment_id as "shipmentId", user_id as "userId", iso_utc(created_at) as "createdAt"`
      return row ?? null
    },

    async exists(shipmentId: string): Promise<boolean> {
      const [row] = await sql<{ ok: boolean }[]>`select exists (select 1 from shipments where id = ${shipmentId}) as ok`
      return row!.ok
    },

    /** In user_id order, after `after` (keyset). */
    list(shipmentId: string, after: string | null, limit: number): Promise<{ userId: string; createdAt: string }[]> {
      return sql<{ userId: string; createdAt: string }[]>`
        select user_id as "userId", iso_utc(created_at) as "createdAt" from shipment_watchers
        where shipment_id = ${shipmentId} ${after === null ? sql`` : sql`and user_id > ${after}`}
        order by user_id limit ${limit}`
    }
  }
}

export type WatcherStore = ReturnType<typeof createWatcherStore>
