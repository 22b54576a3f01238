/**
 * Shipment queries: create (idempotent), list (keyset), get, soft delete, timeline.
 * Instants leave PostgreSQL already formatted (`iso_utc`); the list cursor carries
 * created_at with its microseconds as text, so no page boundary goes through a JS Date.
 */
import type { Sql } from '../db/client.ts'
import { ValidationError } from '../errors.ts'
import { IdentityError, parseInstant } from '../pipeline/identity.ts'

export interface Shipment {
  id: string
  carrier: string
  trackingNumber: string
  reference: string | null
  status: string
  carrierStatus: string | null
  lastEventAt: string | null
  lastSeq: number
  createdAt: string
  updatedAt: string
  deletedAt: string | null
  /** The carrier's estimate from the newest answer that states one (UTC ISO); null when none. */
  expectedDelivery: { from: string | null; to: string | null } | null
  /** Why the last poll of it could not be read; null when it read. */
  lastPollError: { at: string; message: string } | null
}

export interface TimelineEvent {
  seq: number
  dedupKey: string
  carrierStatus: string
  status: string
  occurredAt: string
  location: string | null
  description: string | null
  receivedAt: string
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isUuid = (s: string) => UUID_RE.test(s)

export function createShipmentStore(sql: Sql) {
  const columns = sql`
    id, carrier, tracking_number as "trackingNumber", reference, status, carrier_status as "carrierStatus",
    iso_utc(last_event_at) as "lastEventAt", last_seq as "lastSeq", iso_utc(created_at) as "createdAt",
    iso_utc(updated_at) as "updatedAt", iso_utc(deleted_at) as "deletedAt",
    expected_delivery_json(expected_delivery_from, expected_delivery_to) as "expectedDelivery", poll_error_json(last_poll_error_at, last_poll_error) as "lastPollError"`

  return {
    /** Creates the shipment, or returns the existing one (undeleting it). `created` tells which. */
    async create(carrier: string, trackingNumber: string, reference: string | null): Promise<{ shipment: Shipment; created: boolean }> {
      const [row] = await sql<(Shipment & { created: boolean })[]>`
        insert into shipments (carrier, tracking_number, reference)
        values (${carrier}, ${trackingNumber}, ${reference})
        on conflict (carrier, tracking_number) do update
          set deleted_at = null,
              reference = coalesce(excluded.reference, shipments.reference),
              updated_at = case when shipments.deleted_at is not null or excluded.reference is distinct from shipments.reference
                                 and excluded.reference is not null then now() else shipments.updated_at end
        returning ${columns}, (xmax = 0) as created`
      const { created, ...shipment } = row!
      return { shipment, created }
    },

    async get(id: string): Promise<Shipment | null> {
      if (!isUuid(id)) return null
      const [row] = await sql<Shipment[]>`select ${columns} from shipments where id = ${id}`
      return row ?? null
    },

    async remove(id: string): Promise<Shipment | null> {
      if (!isUuid(id)) return null
      const [row] = await sql<Shipment[]>`
        update shipments set deleted_at = coalesce(deleted_at, now()), updated_at = case when deleted_at is null then now() else updated_at end
        where id = ${id} returning ${columns}`
      return row ?? null
    },

    /** Newest first; the cursor is the last row's (created_at with microseconds, id). */
    async list(q: { status?: string; carrier?: string; limit: number; cursor?: string }): Promise<{ items: Shipment[]; nextCursor: string | null }> {
      const after = q.cursor ? decodeCursor(q.cursor) : null
      const rows = await sql<(Shipment & { _ts: string })[]>`
        select ${columns}, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as _ts
        from shipments
        where deleted_at is null
          ${q.status ? sql`and status = ${q.status}` : sql``}
          ${q.carrier ? sql`and carrier = ${q.carrier}` : sql``}
          ${after ? sql`and (created_at, id) < (${after.ts}::timestamptz, ${after.id}::uuid)` : sql``}
        order by created_at desc, id desc
        limit ${q.limit + 1}`
      const more = rows.length > q.limit
      const page = more ? rows.slice(0, q.limit) : rows
      const last = page.at(-1)
      const items = page.map(({ _ts, ...s }) => s)
      return { items, nextCursor: more && last ? encodeCursor(last._ts, last.id) : null }
    },

    async timeline(shipmentId: string, after: number, limit: number): Promise<TimelineEvent[]> {
      // Unprepared, like the delivery layer's event reads (see src/delivery/queries.ts): a
      // generic plan made while tracking_events was small would keep scanning it as it grows.
      return sql.unsafe<TimelineEvent[]>(
        `select seq, dedup_key as "dedupKey", carrier_status as "carrierStatus", status, iso_utc(occurred_at) as "occurredAt",
                location, description, iso_utc(received_at) as "receivedAt"
         from tracking_events where shipment_id = $1 and seq > $2
         order by seq limit $3`,
        [shipmentId, after, limit]
      )
    }
  }
}

export type ShipmentStore = ReturnType<typeof createShipmentStore>

function encodeCursor(ts: string, id: string): string {
  return Buffer.from(`${ts}|${id}`).toString('base64url')
}

/** A cursor this API made: a real calendar instant that PostgreSQL takes (not 2026-02-30, not year 0000) and a uuid. */
function decodeCursor(cursor: string): { ts: string; id: string } {
  const [ts, id, extra] = Buffer.from(cursor, 'base64url').toString().split('|')
  if (!ts || !id || extra !== undefined || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(ts) || !isUuid(id) || !isInstant(ts)) {
    throw new ValidationError('cursor', 'is not a cursor this API returned; pass nextCursor from the previous page unchanged')
  }
  return { ts, id }
}

function isInstant(ts: string): boolean {
  try {
    parseInstant(ts)
    return true
  } catch (err) {
    if (err instanceof IdentityError) return false
    throw err
  }
}
