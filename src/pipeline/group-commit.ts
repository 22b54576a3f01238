/**
 * Group commit: ingest calls that arrive while the database is busy share a transaction.
 *
 * One transaction per call costs the same fixed work whatever it carries: round trips, a WAL
 * flush, statement binds, a stream append, on both sides of the connection. At 1,000
 * single-event requests a second (webhooks arrive one event at a time) that fixed work alone
 * needed more than this 2-core machine has, and latency grew without bound (`bench:e2e`:
 * p50 2.7 s, p99 4.8 s over a 10 s run). So at most `maxInFlight` transactions run at once; a call that
 * finds them all busy waits in a queue, and when a slot frees, every queued call that fits in
 * `maxBatchEvents` goes into the next transaction together.
 *
 *   - When the database keeps up, a call starts at once and is alone in its transaction: no
 *     timer, no added latency. Calls are merged only while they would have waited anyway.
 *   - A database failure fails every call of the transaction, each with the same error; nothing
 *     of any of them is stored.
 *   - One call's bad data never fails another's: when PostgreSQL refuses the data (`isDataError`:
 *     a value it cannot take, a constraint), the transaction is retried in halves, and halves of
 *     those, until every event it refuses stands alone; those are `refused` (nothing of them
 *     stored) and everything else commits, in order. Only then may a call's events land in more
 *     than one transaction. (The validation layer, storable.ts, keeps such values out; this is
 *     what holds when something gets past it.) Should the database fail outright during those
 *     retries, every call of the group is failed with that error, though some parts may have
 *     committed: a retry of them is a `duplicate`, by dedupKey.
 *   - Merged events keep their calls' order, so within a transaction a shipment's seq follows
 *     arrival order, and a dedupKey sent by two merged calls is stored once: the later one is a
 *     `duplicate`. Between transactions running at once the shipment lock decides, as it always
 *     did between concurrent calls (with INGEST_CONCURRENCY=1 seq follows arrival order throughout).
 *   - Beside a running transaction a second one starts only when at least `minEventsToOverlap`
 *     events wait: small calls are cheaper merged into the next transaction than run in parallel
 *     (measured at 1,000 single-event calls/s), while large ones still use both cores.
 *   - The queue is bounded (`maxQueuedEvents`): beyond it a call is refused at once with
 *     `OverloadedError` (HTTP 503 `overloaded`, retryable) instead of waiting behind work that
 *     cannot finish in time. That bound is also what keeps postgres.js's own, unbounded
 *     connection queue short.
 *   - The slot is held only until the commit: publishing (`after`) runs outside it, so a slow or
 *     absent Redis never slows ingestion.
 */
import { OverloadedError } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import type { NormalizedEvent } from './event.ts'
import type { IngestResult, Planned } from './ingest-query.ts'

export interface Indexed {
  ord: number
  event: NormalizedEvent
}

export interface GroupCommitOptions {
  /** Transactions running at once. */
  maxInFlight: number
  /** A transaction starts beside running ones only when at least this many events wait. */
  minEventsToOverlap: number
  /** Events one merged transaction may carry (a larger single call still runs, alone). */
  maxBatchEvents: number
  /** Events waiting for a slot; beyond this a call is refused. */
  maxQueuedEvents: number
  /** Lock, plan, insert, commit: the database part, run with a slot held. */
  commit: (events: Indexed[]) => Promise<IngestResult>
  /** After the commit, without a slot: publish, and say which ords went out. Must not throw. */
  after: (events: Indexed[], result: IngestResult) => Promise<Set<number>>
  /** Whether a failed commit was refused for some events' data, so that it may succeed without them. */
  isDataError: (err: unknown) => boolean
  metrics: Metrics
}

export interface Committed {
  planned: Planned[]
  published: Set<number>
  /** Events PostgreSQL refused as data, each alone in its transaction: nothing of them was stored. */
  refused: Map<number, unknown>
}

interface Call {
  events: Indexed[]
  resolve: (r: Committed) => void
  reject: (err: unknown) => void
}

export function createGroupCommit(opts: GroupCommitOptions) {
  const queue: Call[] = []
  let queued = 0
  let inFlight = 0

  function pump() {
    // Beside a running transaction, a new one starts only if it is worth its fixed cost.
    while (queue.length > 0 && (inFlight === 0 || (inFlight < opts.maxInFlight && queued >= opts.minEventsToOverlap))) {
      // The first waiting call, and every one after it that still fits; one splice, not a
      // shift per call (the queue may hold thousands of single-event calls).
      let take = 1
      let size = queue[0]!.events.length
      while (take < queue.length && size + queue[take]!.events.length <= opts.maxBatchEvents) size += queue[take++]!.events.length
      const calls = queue.splice(0, take)
      queued -= size
      opts.metrics.ingestQueued.set(queued)
      inFlight++
      void run(calls)
    }
  }

  async function run(calls: Call[]) {
    // One index space for the transaction; `back` maps each merged position to its call and ord.
    const merged: Indexed[] = []
    const back: { call: number; ord: number }[] = []
    calls.forEach((c, i) => {
      for (const e of c.events) {
        back.push({ call: i, ord: e.ord })
        merged.push({ ord: merged.length, event: e.event })
      }
    })
    opts.metrics.ingestCalls.observe(calls.length)
    const results: IngestResult[] = []
    const refused = new Map<number, unknown>()
    let failure: { err: unknown } | null = null
    try {
      await commitIsolating(merged, results, refused)
    } catch (err) {
      failure = { err }
    } finally {
      inFlight--
      pump()
    }
    const published = new Set<number>()
    for (const result of results) {
      // After retries without refused events, each part is published with its own events.
      const events = results.length === 1 ? merged : result.planned.map((p) => merged[p.ord]!)
      try {
        for (const ord of await opts.after(events, result)) published.add(ord)
      } catch {
        // `after` does not throw; were it to, the events are committed and stay in the outbox.
      }
    }
    if (failure) {
      for (const c of calls) c.reject(failure.err)
      return
    }
    const out = calls.map((): Committed => ({ planned: [], published: new Set(), refused: new Map() }))
    for (const result of results) {
      for (const p of result.planned) {
        const b = back[p.ord]!
        out[b.call]!.planned.push({ ...p, ord: b.ord })
        if (published.has(p.ord)) out[b.call]!.published.add(b.ord)
      }
    }
    for (const [ord, err] of refused) out[back[ord]!.call]!.refused.set(back[ord]!.ord, err)
    for (const [i, c] of calls.entries()) c.resolve(out[i]!)
  }

  /** Commits `events`; refused for their data, commits each half alone, down to single events. */
  async function commitIsolating(events: Indexed[], results: IngestResult[], refused: Map<number, unknown>): Promise<void> {
    try {
      results.push(await opts.commit(events))
    } catch (err) {
      if (!opts.isDataError(err)) throw err
      if (events.length === 1) {
        refused.set(events[0]!.ord, err)
        return
      }
      const mid = events.length >>> 1
      await commitIsolating(events.slice(0, mid), results, refused)
      await commitIsolating(events.slice(mid), results, refused)
    }
  }

  return {
    submit(events: Indexed[]): Promise<Committed> {
      const mustWait = inFlight > 0 || queue.length > 0
      if (mustWait && queued + events.length > opts.maxQueuedEvents) {
        opts.metrics.ingestRefused.inc(events.length)
        return Promise.reject(new OverloadedError(queued))
      }
      return new Promise<Committed>((resolve, reject) => {
        queue.push({ events, resolve, reject })
        queued += events.length
        pump()
      })
    },
    /** Events waiting for a slot, and transactions running. */
    state: () => ({ queued, inFlight })
  }
}
