/**
 * The ingest transaction. Two statements, sent pipelined in one round trip:
 *
 * 1. Lock every shipment the batch touches (`for update`, in id order so two batches that
 *    share shipments cannot deadlock). From here until commit nobody else can add events to
 *    these shipments, so reading `last_seq` and checking which keys exist is exact.
 * 2. One statement inserts the new events with seq = last_seq + n (gap-free, in input order),
 *    skips keys already stored or repeated in the batch (`on conflict (dedup_key) do nothing`
 *    stays as the last line of defence), and moves each projection only to a strictly newer
 *    carrier time. READ COMMITTED gives this statement a snapshot taken after the locks were
 *    granted, so it sees everything committed before it.
 */
import type { Sql } from '../db/client.ts'
import type { NormalizedEvent } from './event.ts'

export interface IngestRow {
  ord: number
  shipment_id: string | null
  outcome: 'inserted' | 'duplicate' | 'unknown_shipment'
  seq: number | null
  event_id: string | null
  projection_updated: boolean
  prev_status: string | null
  prev_carrier_status: string | null
  prev_last_event_at: string | null
  received_at: string | null
}

export async function runIngest(sql: Sql, events: { ord: number; event: NormalizedEvent }[]): Promise<IngestRow[]> {
  const col = <T>(f: (e: NormalizedEvent) => T) => events.map((x) => f(x.event))
  const ords = events.map((x) => x.ord)
  const carriers = col((e) => e.carrier)
  const tns = col((e) => e.trackingNumber)
  const results = await sql.begin((tx) => [
    tx`
      select s.id
      from shipments s
      join unnest(${carriers}::text[], ${tns}::text[]) as i(carrier, tracking_number)
        on s.carrier = i.carrier and s.tracking_number = i.tracking_number
      where s.deleted_at is null
      order by s.id
      for update of s`,
    tx<IngestRow[]>`
      with input as (
        select * from unnest(
          ${ords}::int[], ${col((e) => e.dedupKey)}::text[], ${carriers}::text[], ${tns}::text[],
          ${col((e) => e.carrierStatus)}::text[], ${col((e) => e.status)}::text[], ${col((e) => e.occurredAt)}::timestamptz[],
          ${col((e) => e.location)}::text[], ${col((e) => e.description)}::text[], ${col((e) => JSON.stringify(e.raw ?? null))}::text[]
        ) as i(ord, dedup_key, carrier, tracking_number, carrier_status, status, occurred_at, location, description, raw)
      ),
      matched as (
        select i.*, s.id as shipment_id, s.last_seq, s.last_event_at,
               s.status as prev_status, s.carrier_status as prev_carrier_status, e.seq as existing_seq
        from input i
        left join shipments s on s.carrier = i.carrier and s.tracking_number = i.tracking_number and s.deleted_at is null
        left join tracking_events e on e.dedup_key = i.dedup_key
      ),
      fresh as (
        select distinct on (dedup_key) * from matched
        where shipment_id is not null and existing_seq is null
        order by dedup_key, ord
      ),
      numbered as (
        select f.*,
               f.last_seq + row_number() over w as seq,
               f.occurred_at > coalesce(greatest(f.last_event_at, max(f.occurred_at) over earlier), '-infinity') as projection_updated
        from fresh f
        window w as (partition by f.shipment_id order by f.ord),
               earlier as (partition by f.shipment_id order by f.ord rows between unbounded preceding and 1 preceding)
      ),
      ins as (
        insert into tracking_events (shipment_id, seq, dedup_key, carrier_status, status, occurred_at, location, description, raw)
        select shipment_id, seq, dedup_key, carrier_status, status, occurred_at, location, description, raw::jsonb
        from numbered order by shipment_id, seq
        on conflict (dedup_key) do nothing
        returning id, shipment_id, seq, received_at
      ),
      newest as (
        select distinct on (shipment_id) shipment_id, status, carrier_status, occurred_at
        from numbered where projection_updated
        order by shipment_id, occurred_at desc, seq
      ),
      upd as (
        update shipments s
        set last_seq = c.last_seq,
            status = coalesce(n.status, s.status),
            carrier_status = coalesce(n.carrier_status, s.carrier_status),
            last_event_at = coalesce(n.occurred_at, s.last_event_at),
            updated_at = now()
        from (select shipment_id, max(seq) as last_seq from ins group by shipment_id) c
        left join newest n using (shipment_id)
        where s.id = c.shipment_id
        returning s.id
      )
      select m.ord, m.shipment_id,
             case when m.shipment_id is null then 'unknown_shipment'
                  when n.ord = m.ord then 'inserted'
                  else 'duplicate' end as outcome,
             coalesce(m.existing_seq, n.seq)::int as seq,
             case when n.ord = m.ord then ins.id end as event_id,
             coalesce(n.ord = m.ord and n.projection_updated, false) as projection_updated,
             m.prev_status, m.prev_carrier_status, iso_utc(m.last_event_at) as prev_last_event_at,
             iso_utc(ins.received_at) as received_at
      from matched m
      left join numbered n on n.dedup_key = m.dedup_key
      left join ins on ins.shipment_id = n.shipment_id and ins.seq = n.seq and n.ord = m.ord
      order by m.ord`
  ])
  return results[1] as IngestRow[]
}
