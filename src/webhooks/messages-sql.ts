/**
 * The SQL that creates webhook messages inside the transactions of what they announce (contract
 * §9): set-based, part of the statement that writes what they announce, each message's body
 * fixed as the exact JSON text every attempt will send. Messages are made for enabled endpoints
 * whose event types match, only:
 *
 *   - `shipment.event` and `shipment.status_changed`: in the statement that inserts an ingest
 *     batch's events (pipeline/ingest-query.ts, round trip B);
 *   - `notification.created`: in every statement that inserts notifications — POST
 *     /v1/notifications (notifications/create.ts) and the watchers' status-change notifications
 *     of the ingest transaction (notifications/watchers.ts) — filtered by the endpoint's `userIds`.
 *
 * Cost when no endpoint takes them: each insert sits under an uncorrelated `exists`, which
 * PostgreSQL runs once as a one-time filter (an InitPlan over webhook_endpoints_enabled_idx) and
 * skips the join.
 */
import type { Sql, Tx } from '../db/client.ts'
import { NOTIFICATION_JSON } from '../notifications/model.ts'

/** A message a transaction created, to be scheduled after its commit (webhooks.ts's afterCommit). */
export interface MessageRef {
  id: string
  endpointId: string
}

/** A message id (the `webhook-id`): `msg_` and 32 hex digits of a random UUID. */
const MESSAGE_ID = "'msg_' || replace(gen_random_uuid()::text, '-', '')"

/**
 * The message insert for the events of an ingest batch, read from the CTE `r` (one row per
 * inserted event with its projection right after it and `status_from`, the status it changed,
 * or null): `shipment.event` for every event, `shipment.status_changed` for those that changed
 * the projected status. Returns the messages' `id, endpoint_id`.
 */
export function shipmentMessages(sql: Sql) {
  return sql`
    insert into webhook_messages (id, endpoint_id, type, body)
    select ${sql.unsafe(MESSAGE_ID)}, w.id, t.type,
           json_build_object('type', t.type, 'timestamp', iso_utc(now()), 'data', case t.type
             when 'shipment.event' then json_build_object(
               'shipmentId', r.shipment_id, 'carrier', s.carrier, 'trackingNumber', s.tracking_number, 'seq', r.seq, 'event', e.event,
               'shipment', json_build_object('status', r.p_status, 'carrierStatus', r.p_carrier_status, 'lastEventAt', iso_utc(r.p_last_event_at)))
             else json_build_object(
               'shipmentId', r.shipment_id, 'carrier', s.carrier, 'trackingNumber', s.tracking_number, 'from', r.status_from, 'to', r.status, 'event', e.event)
           end)::text
    from r
    -- a key lookup per event (a join let the generic plan scan every shipment)
    cross join lateral (select carrier, tracking_number from shipments x where x.id = r.shipment_id limit 1) s
    cross join lateral (
      select json_build_object('seq', r.seq, 'dedupKey', r.dedup_key, 'carrierStatus', r.carrier_status, 'status', r.status,
        'occurredAt', iso_utc(r.occurred_at), 'location', r.location, 'description', r.description, 'receivedAt', iso_utc(now())) as event
    ) e
    cross join lateral (select 'shipment.event' as type union all select 'shipment.status_changed' where r.status_from is not null) t
    join webhook_endpoints w on w.enabled and t.type = any(w.event_types)
    where exists (select 1 from webhook_endpoints where enabled)
    returning id, endpoint_id`
}

/**
 * The `notification.created` message insert for the notifications a statement inserts, read from
 * the CTE `ins` (its rows of `notifications` as inserted: `returning *`): one message per
 * notification and enabled endpoint that takes the type, when the endpoint has no `userIds` or
 * they list the notification's user. `data` is the notification as the inbox shows it. Returns
 * the messages' `id, endpoint_id`; put it in a CTE and read it with `messageRefs`.
 */
export function notificationMessages(sql: Sql | Tx) {
  return sql`
    insert into webhook_messages (id, endpoint_id, type, body)
    select ${sql.unsafe(MESSAGE_ID)}, w.id, 'notification.created',
           json_build_object('type', 'notification.created', 'timestamp', iso_utc(now()), 'data', ${sql.unsafe(NOTIFICATION_JSON)})::text
    from webhook_endpoints w
    -- every notification for an endpoint without userIds; for one with, a hash join on its list
    -- rather than "= any(user_ids)" per pair (10,000 users against 1,000 listed: 10 million
    -- comparisons, 0.1-0.2 s more for that statement in EXPLAIN ANALYZE runs here)
    cross join lateral (
      select * from ins where w.user_ids is null
      union all
      select ins.* from ins join unnest(w.user_ids) as u(user_id) on u.user_id = ins.user_id where w.user_ids is not null
    ) n
    where w.enabled and 'notification.created' = any(w.event_types)
      and exists (select 1 from webhook_endpoints where enabled and 'notification.created' = any(event_types))
    returning id, endpoint_id`
}

/**
 * The refs of the messages in the CTE `cte` (an insert … returning id, endpoint_id), as a column
 * of the statement's final select: on one of its rows (the first the window numbers), null on
 * the others, so that a statement answering 10,000 rows carries each message once. Read them
 * back with `refsOf`.
 */
export function messageRefs(sql: Sql | Tx, cte: string) {
  return sql`case when row_number() over () = 1 then (select json_agg(json_build_object('id', m.id, 'endpointId', m.endpoint_id)) from ${sql(cte)} m) end`
}

/** The refs `messageRefs` put on the rows of a result. */
export function refsOf(rows: readonly { webhook_messages: MessageRef[] | null }[]): MessageRef[] {
  return rows.flatMap((r) => r.webhook_messages ?? [])
}
