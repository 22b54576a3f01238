/**
 * The ingest transaction, in two round trips on a connection of its own (`sql.reserve()`), each
 * a pipeline the server runs without waiting for us:
 *
 *   A. BEGIN, with sequential scans off and generic plans (every read is a key lookup, planned
 *      once per connection), in one message; lock every shipment the batch names (`for update`,
 *      in id order, so two batches that share shipments cannot deadlock); read which of the
 *      batch's keys already exist.
 *      Pipelined after the lock, the read gets a READ COMMITTED snapshot taken once the locks
 *      are held, so it sees every event committed before; and until we commit nobody else can
 *      add events to these shipments. What `plan` decides from these two reads is therefore exact.
 *   B. insert the new events with their seq (each into the outbox, and its webhook messages
 *      for the enabled endpoints that take it, src/webhooks/messages-sql.ts), move each touched
 *      shipment's last_seq and (only to a strictly newer carrier time) its projection; when an
 *      event changed a shipment's status, notify its watchers (notifications/watchers.ts: the
 *      notifications, their outbox rows and their `notification.created` messages); COMMIT.
 *      If any statement fails, the server turns the COMMIT into a rollback.
 *
 * Each round trip costs socket writes and a wake-up on each side; `sql.begin` would add two
 * more (BEGIN and COMMIT alone).
 * A key conflict on insert cannot happen under the shipment lock; if it ever did, the seq would
 * have a hole, so the insert has no `on conflict` clause: the unique violation aborts the
 * transaction and nothing is stored.
 */
import type { Sql } from '../db/client.ts'
import { isConnectionLost } from '../errors.ts'
import type { NormalizedEvent } from './event.ts'
import { shipmentMessages, type MessageRef } from '../webhooks/messages-sql.ts'
import { watcherNotifications, type StatusChange } from '../notifications/watchers.ts'
import type { NotificationMessage } from '../notifications/model.ts'

export interface LockedShipment {
  id: string
  carrier: string
  tracking_number: string
  last_seq: number
  status: string
  carrier_status: string | null
  last_event_at: string | null
  expected_delivery?: { from: string | null; to: string | null } | null
}

export interface Planned {
  ord: number
  outcome: 'inserted' | 'duplicate' | 'unknown_shipment'
  shipmentId: string | null
  seq: number | null
  projectionUpdated: boolean
  /** The shipment's projection right after this event (inserted events only). */
  projection: {
    status: string
    carrierStatus: string | null
    lastEventAt: string | null
    expectedDelivery?: { from: string | null; to: string | null } | null
  } | null
  /**
   * The projected status this event changed, or null: set exactly when the event moved the
   * projection and its status differs from the one before (never for duplicates, older or
   * same-status events). What §8's watcher notification and §9's `shipment.status_changed` announce.
   */
  statusChange: { from: string; to: string } | null
}

export interface IngestResult {
  planned: Planned[]
  receivedAt: string
  /** The webhook messages the transaction created (src/webhooks/), of events and of notifications: to be scheduled after the commit. */
  webhookMessages: MessageRef[]
  /** The watchers' `shipment.status_changed` notifications committed with the events. */
  notifications: NotificationMessage[]
}

interface WebhookMessageRef {
  id: string
  endpoint_id: string
}

/** Pure: given the locked shipments and the keys already stored, decide every event's fate. */
export function plan(events: { ord: number; event: NormalizedEvent }[], shipments: LockedShipment[], existing: Map<string, number>) {
  const byKey = new Map(shipments.map((s) => [`${s.carrier}:${s.tracking_number}`, s]))
  const state = new Map<string, { lastSeq: number; projection: NonNullable<Planned['projection']>; moved: boolean }>()
  const firstInBatch = new Map<string, number>()
  const planned: Planned[] = []
  for (const { ord, event: e } of events) {
    const s = byKey.get(`${e.carrier}:${e.trackingNumber}`)
    if (!s) {
      planned.push({ ord, outcome: 'unknown_shipment', shipmentId: null, seq: null, projectionUpdated: false, projection: null, statusChange: null })
      continue
    }
    const known = existing.get(e.dedupKey) ?? firstInBatch.get(e.dedupKey)
    if (known !== undefined) {
      planned.push({ ord, outcome: 'duplicate', shipmentId: s.id, seq: known, projectionUpdated: false, projection: null, statusChange: null })
      continue
    }
    let st = state.get(s.id)
    if (!st) {
      st = {
        lastSeq: s.last_seq,
        projection: { status: s.status, carrierStatus: s.carrier_status, lastEventAt: s.last_event_at, expectedDelivery: s.expected_delivery ?? null },
        moved: false
      }
      state.set(s.id, st)
    }
    const seq = ++st.lastSeq
    firstInBatch.set(e.dedupKey, seq)
    // ISO strings of one fixed format compare in time order.
    const newer = st.projection.lastEventAt === null || e.occurredAt > st.projection.lastEventAt
    const statusChange = newer && e.status !== st.projection.status ? { from: st.projection.status, to: e.status } : null
    if (newer) {
      st.projection = { ...st.projection, status: e.status, carrierStatus: e.carrierStatus, lastEventAt: e.occurredAt }
      st.moved = true
    }
    planned.push({ ord, outcome: 'inserted', shipmentId: s.id, seq, projectionUpdated: newer, projection: st.projection, statusChange })
  }
  return { planned, shipments: state }
}

export async function runIngest(sql: Sql, events: { ord: number; event: NormalizedEvent }[]): Promise<IngestResult> {
  const pairs = [...new Map(events.map((x) => [`${x.event.carrier}:${x.event.trackingNumber}`, [x.event.carrier, x.event.trackingNumber] as const])).values()]
  const keys = events.map((x) => x.event.dedupKey)
  const tx = await sql.reserve()
  // Given back on every path: a connection kept after an error that left it alive (disk full,
  // out of memory — SQLSTATE class 53) would leave one slot fewer each time, until ingest hangs.
  let lost = false
  try {
    const [, locked, found] = await Promise.all([
      // One simple-protocol message: the transaction and its settings cost a single reply.
      // Every read in it is a key lookup, and on a generic plan. A plan cached while a table
      // was young may be a sequential scan that grows with the table (postgres.js prepares
      // every statement; the dedup probe went from 0.4 to 7 ms a call within 10,000 events);
      // and a custom plan costs a planning pass on every call (0.46 ms for the lock query,
      // from PostgreSQL's statement log, against 0.10 ms to bind its generic plan).
      tx`begin; set local enable_seqscan = off; set local plan_cache_mode = force_generic_plan`.simple(),
      // One unique-index probe per (carrier, tracking number), then lock by primary key in id
      // order. Spelled this way because a generic plan for `carrier = any($1) and
      // tracking_number = any($2)` scans every live shipment through the partial index.
      // `now` is the transaction's start, the events' receivedAt.
      tx<(LockedShipment & { now: string })[]>`
        select id, carrier, tracking_number, last_seq, status, carrier_status, iso_utc(last_event_at) as last_event_at, iso_utc(now()) as now,
               expected_delivery_json(expected_delivery_from, expected_delivery_to) as expected_delivery
        from shipments
        where id = any(array(
          select (select id from shipments x where x.carrier = i.carrier and x.tracking_number = i.tracking_number)
          from unnest(${pairs.map((p) => p[0])}::text[], ${pairs.map((p) => p[1])}::text[]) as i(carrier, tracking_number)
        )) and deleted_at is null
        order by id
        for update`,
      tx<{ dedup_key: string; seq: number }[]>`select dedup_key, seq from tracking_events where dedup_key = any(${keys}::text[])`
    ])
    const { planned, shipments } = plan(events, locked, new Map(found.map((r) => [r.dedup_key, r.seq])))
    const inserts = planned.filter((p) => p.outcome === 'inserted')
    if (inserts.length > 0) {
      const byOrd = new Map(events.map((x) => [x.ord, x.event]))
      // Rows travel as one JSON document: JSON.stringify is native, while postgres.js escapes
      // array parameters element by element in JS (a tenth of the server's CPU at 15k events/s).
      const rows = inserts.map((p) => {
        const e = byOrd.get(p.ord)!
        return {
          shipment_id: p.shipmentId,
          seq: p.seq,
          dedup_key: e.dedupKey,
          carrier_status: e.carrierStatus,
          status: e.status,
          occurred_at: e.occurredAt,
          location: e.location,
          description: e.description,
          raw: e.raw ?? null,
          p_status: p.projection!.status,
          p_carrier_status: p.projection!.carrierStatus,
          p_last_event_at: p.projection!.lastEventAt,
          status_from: p.statusChange?.from ?? null
        }
      })
      const touched = [...shipments.entries()].map(([id, t]) => ({
        id,
        last_seq: t.lastSeq,
        moved: t.moved,
        status: t.projection.status,
        carrier_status: t.projection.carrierStatus,
        last_event_at: t.projection.lastEventAt
      }))
      // Each status change notifies the shipment's watchers, in this transaction; no statement at
      // all when nothing changed a status (most batches).
      const receivedAt = locked[0]!.now
      const changes: StatusChange[] = inserts.flatMap((p) =>
        p.statusChange ? [{ ord: p.ord, shipmentId: p.shipmentId!, seq: p.seq!, ...p.statusChange, event: byOrd.get(p.ord)!, receivedAt }] : []
      )
      const [messages, , watched] = await Promise.all([
        // Each event enters the outbox in the statement that stores it, and so do its webhook
        // messages (contract §9: an accepted event is never without them). With no enabled
        // endpoint the message insert stops at its one-time filter, one probe of a tiny index.
        tx<WebhookMessageRef[]>`
          with r as (
            select * from json_to_recordset(${tx.json(rows as never)}::json) as r(
              shipment_id uuid, seq int, dedup_key text, carrier_status text, status text, occurred_at timestamptz,
              location text, description text, raw json, p_status text, p_carrier_status text, p_last_event_at timestamptz, status_from text)
          ), ins as (
            insert into tracking_events (shipment_id, seq, dedup_key, carrier_status, status, occurred_at, location, description, raw)
            select shipment_id, seq, dedup_key, carrier_status, status, occurred_at, location, description, raw from r
            returning shipment_id, seq
          ), outbox as (
            insert into event_outbox (shipment_id, seq) select shipment_id, seq from ins
          )
          ${shipmentMessages(tx)}`,
        tx`
          update shipments s
          set last_seq = u.last_seq,
              status = case when u.moved then u.status else s.status end,
              carrier_status = case when u.moved then u.carrier_status else s.carrier_status end,
              last_event_at = case when u.moved then u.last_event_at else s.last_event_at end,
              updated_at = now()
          from json_to_recordset(${tx.json(touched as never)}::json) as u(
            id uuid, last_seq int, moved boolean, status text, carrier_status text, last_event_at timestamptz)
          -- the id list is the planner's cue to probe the primary key; joined on u.id alone it
          -- hashes the recordset and scans every shipment
          where s.id = u.id and s.id = any(${touched.map((t) => t.id)}::uuid[])`,
        changes.length > 0 ? watcherNotifications(tx, changes) : { notifications: [], webhookMessages: [] },
        tx`commit`
      ])
      return {
        planned,
        receivedAt,
        notifications: watched.notifications,
        webhookMessages: [...messages.map((m) => ({ id: m.id, endpointId: m.endpoint_id })), ...watched.webhookMessages]
      }
    }
    await tx`commit`
    // Nothing inserted; with no shipment locked, receivedAt is not read.
    return { planned, receivedAt: locked[0]?.now ?? '', webhookMessages: [], notifications: [] }
  } catch (err) {
    lost = isConnectionLost(err) || !(await rollback(tx))
    throw err
  } finally {
    // A connection that is gone is postgres.js's to replace; handing it back would put a closed
    // connection in the pool.
    if (!lost) tx.release()
  }
}

/** Rolls back after a failure; false when the connection turned out to be gone. */
async function rollback(tx: Awaited<ReturnType<Sql['reserve']>>): Promise<boolean> {
  try {
    await tx`rollback`
    return true
  } catch (err) {
    return !isConnectionLost(err)
  }
}
