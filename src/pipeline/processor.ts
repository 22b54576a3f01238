/**
 * The processor: the one way a fact enters parcelcast.
 *
 * Guarantees:
 *   - a database failure throws DatabaseUnavailableError and nothing is written or published;
 *     so does a transaction that has not finished after INGEST_TIMEOUT_MS: its connection is
 *     closed and replaced (`connections`, db/guarded.ts), so its slot is free again at once;
 *   - an event is stored once per dedupKey, with the next gap-free seq of its shipment;
 *   - a shipment's projection only moves to a strictly newer carrier time;
 *   - publishing happens after the commit; if Redis fails the events stay unpublished in the
 *     outbox (`published: false`) and the relay sends them later. Appended events leave the
 *     outbox in the background (acks.ts);
 *   - the webhook messages the transaction created (contract §9) are handed to
 *     `onWebhookMessages` after the commit, to be scheduled; they are in PostgreSQL already;
 *   - right after the commit, before the stream append, the inserted events are also handed to
 *     `onCommitted` (this process's WebSocket hub), so sockets here need no Redis round trip.
 *     It must not throw; if it does, the error is logged and the stream still carries the events;
 *   - calls that arrive while the database is busy share a transaction (group-commit.ts); when
 *     too much is waiting a call is refused with OverloadedError;
 *   - one call's bad data never fails another: an event PostgreSQL refuses (past the validation
 *     layer) is found by retrying without it and is `invalid`; the rest commits;
 *   - a serialization failure or deadlock is retried (at most 5 attempts, with jitter), then is a
 *     ConflictError (503 `database_conflict`, nothing stored).
 */
import type { Sql } from '../db/client.ts'
import { CONFLICT_ATTEMPTS, retryConflicts } from '../db/conflicts.ts'
import type { GuardedConnections } from '../db/guarded.ts'
import { ConflictError, DatabaseUnavailableError, isDataError, isDatabaseUnavailable, isSerializationFailure } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { EventCheck, NormalizedEvent } from './event.ts'
import type { PublishAcks } from './acks.ts'
import type { NotificationPublisher } from '../notifications/publish.ts'
import { createGroupCommit, type Indexed } from './group-commit.ts'
import { runIngest, type IngestResult } from './ingest-query.ts'
import { eventPayload, shipmentMessage, type StreamMessage, type StreamWriter } from './stream.ts'

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

export interface IngestLimits {
  /** Ingest transactions running at once (INGEST_CONCURRENCY). */
  maxInFlight: number
  /** Events that must be waiting to start a transaction beside a running one (INGEST_OVERLAP_EVENTS). */
  minEventsToOverlap: number
  /** Events one shared transaction may carry. */
  maxBatchEvents: number
  /** Events waiting for a transaction before calls are refused (INGEST_QUEUE_EVENTS). */
  maxQueuedEvents: number
}

export const defaultIngestLimits: IngestLimits = { maxInFlight: 4, minEventsToOverlap: 100, maxBatchEvents: 1000, maxQueuedEvents: 20_000 }

export function createProcessor({
  sql,
  connections,
  stream,
  acks,
  log,
  metrics,
  onCommitted,
  onWebhookMessages,
  notifications,
  limits = defaultIngestLimits,
  random = Math.random
}: {
  /** Ingest's connections, with their deadline (the service's); or a plain pool, without one. */
  connections?: Pick<GuardedConnections, 'run'>
  sql?: Sql
  stream: StreamWriter
  acks: PublishAcks
  log: Logger
  metrics: Metrics
  onCommitted?: (messages: StreamMessage[]) => void
  /** After the commit: the webhook messages it created, to be scheduled. Must not throw. */
  onWebhookMessages?: (messages: IngestResult['webhookMessages']) => void
  /** Publishes the watchers' notifications a commit wrote (without it they wait for the outbox relay). */
  notifications?: NotificationPublisher
  limits?: IngestLimits
  random?: () => number
}): Processor {
  const onConnection: Pick<GuardedConnections, 'run'> = connections ?? { run: (_what, f) => f(sql!) }
  const commits = createGroupCommit({
    ...limits,
    metrics,
    isDataError,
    async commit(events) {
      const stop = metrics.ingestDuration.startTimer()
      try {
        return await withConflictRetries(() => onConnection.run('ingest transaction', (tx) => runIngest(tx, events)))
      } catch (err) {
        if (isDatabaseUnavailable(err)) {
          log.error({ component: 'processor', err: (err as Error).message, events: events.length }, 'database unavailable; batch not stored')
          throw new DatabaseUnavailableError(err)
        }
        if (isSerializationFailure(err)) {
          log.error(
            { component: 'processor', err: (err as Error).message, events: events.length, attempts: CONFLICT_ATTEMPTS },
            'ingest kept conflicting; batch not stored'
          )
          throw new ConflictError(err)
        }
        throw err
      } finally {
        stop()
      }
    },
    after: (events, ingest) => publish(ingest, new Map(events.map((v) => [v.ord, v.event])))
  })

  /** Conflicts retried as db/conflicts.ts says; ingest locks shipments in id order, and so do the pollers, so a deadlock needs a third party. */
  const withConflictRetries = <T>(f: () => Promise<T>) =>
    retryConflicts(f, {
      random,
      onRetry(sqlstate, attempt) {
        metrics.ingestRetries.inc({ sqlstate })
        log.warn({ component: 'processor', sqlstate, attempt }, 'ingest transaction conflicted; retrying')
      }
    })

  return {
    async ingest(checks) {
      const results: EventResult[] = checks.map((c) =>
        c.ok
          ? { dedupKey: c.event.dedupKey, outcome: 'duplicate', projectionUpdated: false, published: false }
          : { dedupKey: null, outcome: 'invalid', projectionUpdated: false, published: false, error: { field: c.field, message: c.message } }
      )
      const valid: Indexed[] = checks.flatMap((c, ord) => (c.ok ? [{ ord, event: c.event }] : []))
      if (valid.length === 0) return count(results)
      const { planned, published, refused } = await commits.submit(valid)
      for (const p of planned) {
        const r = results[p.ord]!
        r.outcome = p.outcome
        if (p.seq !== null) r.seq = p.seq
        r.projectionUpdated = p.projectionUpdated
        r.published = published.has(p.ord)
      }
      for (const [ord, err] of refused) {
        const sqlstate = (err as { code?: string }).code ?? 'unknown'
        metrics.ingestIsolated.inc({ sqlstate })
        log.warn(
          { component: 'processor', sqlstate, err: (err as Error).message, dedupKey: results[ord]!.dedupKey },
          'PostgreSQL refused one event as data; stored the others without it'
        )
        results[ord] = {
          dedupKey: results[ord]!.dedupKey,
          outcome: 'invalid',
          projectionUpdated: false,
          published: false,
          error: { field: 'event', message: `the database refused this event's data (SQLSTATE ${sqlstate}); nothing of it was stored` }
        }
      }
      return count(results)
    }
  }

  function count(results: EventResult[]) {
    const tally = new Map<Outcome, number>()
    for (const r of results) tally.set(r.outcome, (tally.get(r.outcome) ?? 0) + 1)
    for (const [outcome, n] of tally) metrics.eventsIngested.inc({ outcome }, n)
    return results
  }

  /** Hands the committed events to local sockets and the stream; the ords that reached the stream. Never throws. */
  async function publish(ingest: IngestResult, events: Map<number, NormalizedEvent>): Promise<Set<number>> {
    if (ingest.webhookMessages.length > 0) onWebhookMessages?.(ingest.webhookMessages)
    const messages = toMessages(ingest, events)
    if (messages.length === 0) return new Set()
    // The watchers' notifications, beside the events (never throws; what fails waits in notification_outbox).
    const notified = ingest.notifications.length > 0 && notifications ? notifications.publish(ingest.notifications, 'watchers') : null
    if (onCommitted) {
      try {
        onCommitted(messages.map((m) => m.message))
      } catch (err) {
        log.error({ component: 'processor', err: (err as Error).message }, 'local delivery failed; the stream still carries these events')
      }
    }
    // append never throws: on failure it logs and returns [] (the events stay in the outbox).
    const sent = new Set(await stream.append(messages.map((m) => m.message)))
    const ok = messages.filter((m) => sent.has(m.message))
    metrics.eventsPublished.inc({ path: 'inline' }, ok.length)
    if (ok.length < messages.length) metrics.publishFailures.inc(messages.length - ok.length)
    acks.add(ok.map((m) => ({ key: m.message.shipmentId, seq: m.message.seq })))
    await notified
    return new Set(ok.map((m) => m.ord))
  }
}

/** Stream messages for the inserted events, in seq order per shipment. */
function toMessages(ingest: IngestResult, events: Map<number, NormalizedEvent>) {
  return ingest.planned
    .filter((p) => p.outcome === 'inserted')
    .sort((a, b) => (a.shipmentId! < b.shipmentId! ? -1 : a.shipmentId! > b.shipmentId! ? 1 : a.seq! - b.seq!))
    .map((p) => {
      const e = events.get(p.ord)!
      // Encoded here, once, for the local hand-off and the stream alike.
      const message: StreamMessage = shipmentMessage(p.shipmentId!, eventPayload(e, p.seq!, ingest.receivedAt), p.projection!)
      return { message, ord: p.ord }
    })
}
