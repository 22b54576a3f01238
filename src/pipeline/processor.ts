/**
 * The processor: the one way a fact enters parcelcast.
 *
 * Guarantees:
 *   - the batch commits in one transaction or not at all (a database failure throws
 *     DatabaseUnavailableError and nothing is written or published);
 *   - an event is stored once per dedupKey, with the next gap-free seq of its shipment;
 *   - a shipment's projection only moves to a strictly newer carrier time;
 *   - publishing happens after the commit; if Redis fails the events stay unpublished in the
 *     outbox (`published: false`) and the relay sends them later.
 */
import type { Sql } from '../db/client.ts'
import { DatabaseUnavailableError, isDatabaseUnavailable } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { EventCheck, NormalizedEvent } from './event.ts'
import { runIngest, type IngestRow } from './ingest-query.ts'
import { shipmentTopic, type StreamMessage, type StreamWriter } from './stream.ts'

export type Outcome = 'inserted' | 'duplicate' | 'unknown_shipment' | 'invalid'

export interface EventResult {
  dedupKey: string | null
  outcome: Outcome
  seq?: number
  projectionUpdated: boolean
  published: boolean
  error?: { field: string; message: string }
}

export interface Processor {
  ingest(checks: EventCheck[]): Promise<EventResult[]>
}

export function createProcessor({ sql, stream, log, metrics }: { sql: Sql; stream: StreamWriter; log: Logger; metrics: Metrics }): Processor {
  return {
    async ingest(checks) {
      const results: EventResult[] = checks.map((c) =>
        c.ok
          ? { dedupKey: c.event.dedupKey, outcome: 'duplicate', projectionUpdated: false, published: false }
          : { dedupKey: null, outcome: 'invalid', projectionUpdated: false, published: false, error: { field: c.field, message: c.message } }
      )
      const valid = checks.flatMap((c, ord) => (c.ok ? [{ ord, event: c.event }] : []))
      let rows: IngestRow[] = []
      if (valid.length > 0) {
        const stop = metrics.ingestDuration.startTimer()
        try {
          rows = await runIngest(sql, valid)
        } catch (err) {
          if (isDatabaseUnavailable(err)) {
            log.error({ component: 'processor', err: (err as Error).message, events: valid.length }, 'database unavailable; batch not stored')
            throw new DatabaseUnavailableError(err)
          }
          throw err
        } finally {
          stop()
        }
      }
      for (const row of rows) {
        const r = results[row.ord]!
        r.outcome = row.outcome
        if (row.seq !== null) r.seq = row.seq
        r.projectionUpdated = row.projection_updated
      }
      const byOrd = new Map(valid.map((v) => [v.ord, v.event]))
      const inserted = rows.filter((r) => r.outcome === 'inserted')
      const published = await publish(inserted, byOrd)
      for (const row of inserted) results[row.ord]!.published = published.has(row.ord)
      for (const r of results) metrics.eventsIngested.inc({ outcome: r.outcome })
      return results
    }
  }

  async function publish(rows: IngestRow[], events: Map<number, NormalizedEvent>): Promise<Set<number>> {
    if (rows.length === 0) return new Set()
    const messages = toMessages(rows, events)
    const sent = await stream.append(messages.map((m) => m.message))
    const sentSet = new Set(sent)
    const ok = messages.filter((m) => sentSet.has(m.message))
    metrics.eventsPublished.inc({ path: 'inline' }, ok.length)
    if (ok.length < messages.length) metrics.publishFailures.inc(messages.length - ok.length)
    if (ok.length > 0) {
      try {
        await sql`update tracking_events set published_at = now() where id = any(${ok.map((m) => m.eventId)}::bigint[])`
      } catch (err) {
        // The entries are on the stream; the relay will send them again, which consumers absorb.
        log.warn({ component: 'processor', err: (err as Error).message }, 'could not mark events published; the relay will resend them')
      }
    }
    return new Set(ok.map((m) => m.ord))
  }
}

/** Stream messages in seq order per shipment, each with the projection as it stood after that event. */
function toMessages(rows: IngestRow[], events: Map<number, NormalizedEvent>) {
  const sorted = [...rows].sort((a, b) => (a.shipment_id! < b.shipment_id! ? -1 : a.shipment_id! > b.shipment_id! ? 1 : a.seq! - b.seq!))
  const state = new Map<string, StreamMessage['shipment']>()
  return sorted.map((row) => {
    const e = events.get(row.ord)!
    let shipment = state.get(row.shipment_id!) ?? { status: row.prev_status!, carrierStatus: row.prev_carrier_status, lastEventAt: row.prev_last_event_at }
    if (row.projection_updated) shipment = { status: e.status, carrierStatus: e.carrierStatus, lastEventAt: e.occurredAt }
    state.set(row.shipment_id!, shipment)
    const message: StreamMessage = {
      topic: shipmentTopic(e.carrier, e.trackingNumber),
      shipmentId: row.shipment_id!,
      seq: row.seq!,
      event: {
        seq: row.seq!, dedupKey: e.dedupKey, carrier: e.carrier, trackingNumber: e.trackingNumber, carrierStatus: e.carrierStatus,
        status: e.status, occurredAt: e.occurredAt, location: e.location, description: e.description, receivedAt: row.received_at!
      },
      shipment
    }
    return { message, ord: row.ord, eventId: row.event_id! }
  })
}
