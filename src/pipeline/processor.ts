/**
 * The processor: the one way a fact enters parcelcast.
 *
 * Guarantees:
 *   - the batch commits in one transaction or not at all (a database failure throws
 *     DatabaseUnavailableError and nothing is written or published);
 *   - an event is stored once per dedupKey, with the next gap-free seq of its shipment;
 *   - a shipment's projection only moves to a strictly newer carrier time;
 *   - publishing happens after the commit; if Redis fails the events stay unpublished in the
 *     outbox (`published: false`) and the relay sends them later. Appended events leave the
 *     outbox in the background (acks.ts);
 *   - right after the commit, before the stream append, the inserted events are also handed to
 *     `onCommitted` (this process's WebSocket hub), so sockets here need no Redis round trip.
 *     It must not throw; if it does, the error is logged and the stream still carries the events.
 */
import type { Sql } from '../db/client.ts'
import { DatabaseUnavailableError, isDatabaseUnavailable } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { EventCheck, NormalizedEvent } from './event.ts'
import type { PublishAcks } from './acks.ts'
import { runIngest, type IngestResult } from './ingest-query.ts'
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

export function createProcessor({ sql, stream, acks, log, metrics, onCommitted }: {
  sql: Sql
  stream: StreamWriter
  acks: PublishAcks
  log: Logger
  metrics: Metrics
  onCommitted?: (messages: StreamMessage[]) => void
}): Processor {
  return {
    async ingest(checks) {
      const results: EventResult[] = checks.map((c) =>
        c.ok
          ? { dedupKey: c.event.dedupKey, outcome: 'duplicate', projectionUpdated: false, published: false }
          : { dedupKey: null, outcome: 'invalid', projectionUpdated: false, published: false, error: { field: c.field, message: c.message } }
      )
      const valid = checks.flatMap((c, ord) => (c.ok ? [{ ord, event: c.event }] : []))
      if (valid.length === 0) return count(results)
      const stop = metrics.ingestDuration.startTimer()
      let ingest: IngestResult
      try {
        ingest = await runIngest(sql, valid)
      } catch (err) {
        if (isDatabaseUnavailable(err)) {
          log.error({ component: 'processor', err: (err as Error).message, events: valid.length }, 'database unavailable; batch not stored')
          throw new DatabaseUnavailableError(err)
        }
        throw err
      } finally {
        stop()
      }
      for (const p of ingest.planned) {
        const r = results[p.ord]!
        r.outcome = p.outcome
        if (p.seq !== null) r.seq = p.seq
        r.projectionUpdated = p.projectionUpdated
      }
      const byOrd = new Map(valid.map((v) => [v.ord, v.event]))
      const published = await publish(ingest, byOrd)
      for (const ord of published) results[ord]!.published = true
      return count(results)
    }
  }

  function count(results: EventResult[]) {
    const tally = new Map<Outcome, number>()
    for (const r of results) tally.set(r.outcome, (tally.get(r.outcome) ?? 0) + 1)
    for (const [outcome, n] of tally) metrics.eventsIngested.inc({ outcome }, n)
    return results
  }

  async function publish(ingest: IngestResult, events: Map<number, NormalizedEvent>): Promise<number[]> {
    const messages = toMessages(ingest, events)
    if (messages.length === 0) return []
    if (onCommitted) {
      try {
        onCommitted(messages.map((m) => m.message))
      } catch (err) {
        log.error({ component: 'processor', err: (err as Error).message }, 'local delivery failed; the stream still carries these events')
      }
    }
    const sent = new Set(await stream.append(messages.map((m) => m.message)))
    const ok = messages.filter((m) => sent.has(m.message))
    metrics.eventsPublished.inc({ path: 'inline' }, ok.length)
    if (ok.length < messages.length) metrics.publishFailures.inc(messages.length - ok.length)
    acks.add(ok.map((m) => ({ shipmentId: m.message.shipmentId, seq: m.message.seq })))
    return ok.map((m) => m.ord)
  }
}

/** Stream messages for the inserted events, in seq order per shipment. */
function toMessages(ingest: IngestResult, events: Map<number, NormalizedEvent>) {
  return ingest.planned
    .filter((p) => p.outcome === 'inserted')
    .sort((a, b) => (a.shipmentId! < b.shipmentId! ? -1 : a.shipmentId! > b.shipmentId! ? 1 : a.seq! - b.seq!))
    .map((p) => {
      const e = events.get(p.ord)!
      const message: StreamMessage = {
        topic: shipmentTopic(e.carrier, e.trackingNumber),
        shipmentId: p.shipmentId!,
        seq: p.seq!,
        event: {
          seq: p.seq!, dedupKey: e.dedupKey, carrier: e.carrier, trackingNumber: e.trackingNumber, carrierStatus: e.carrierStatus,
          status: e.status, occurredAt: e.occurredAt, location: e.location, description: e.description, receivedAt: ingest.receivedAt
        },
        shipment: p.projection!
      }
      return { message, ord: p.ord }
    })
}
