/**
 * The SQL that creates webhook messages inside the transactions of what they announce (contract
 * §9): set-based, one statement per batch, each message's body fixed as the exact JSON text every
 * attempt will send. Messages are made for enabled endpoints whose event types match, only.
 *
 * Cost when no endpoint is enabled: the `exists` below is uncorrelated, so PostgreSQL runs it once
 * as a one-time filter (an InitPlan over webhook_endpoints_enabled_idx) and skips the join.
 */
import type { Sql } from '../db/client.ts'

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
