/**
 * The polling engine: one loop per enabled carrier. Each cycle leases up to `batchSize` due,
 * active shipments (not terminal, not deleted; never polled or least recently polled first)
 * by moving their `next_poll_at` forward under `for update skip locked` — so several processes
 * never poll one shipment in the same cycle — asks the carrier (through a token bucket that
 * also honours Retry-After), and hands every event to the processor in one batch.
 *
 * Guarantees: cycles never overlap (an overlapping one answers
 * `{status: "skipped", reason: "cycle_already_running"}`); carrier errors and 429s back the
 * carrier off exponentially with jitter (`backoffBaseMs * 2^attempt`, capped at 2^maxAttempts)
 * and leave the unpolled shipments due again; one carrier's trouble never holds up another's
 * loop; `stop()` waits for the running cycle. Every cycle is logged and counted.
 *
 * Nothing is dropped quietly: a scan the adapter rejects is counted
 * (`parcelcast_carrier_rejected_scans_total{carrier, field}`), the first rejection of each field
 * in a cycle is logged at `error` with one redacted sample, the shipment keeps why its last poll
 * did not read (`lastPollError`), and the cycle's sample goes to the carrier's health.
 */
import type { Sql } from '../db/client.ts'
import { DatabaseUnavailableError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { createLoop } from '../loop.ts'
import type { Processor } from '../pipeline/processor.ts'
import { fieldLabel, redact, type ScanCheck } from './adapter.ts'
import { recordAnswers, type AnswerRecord } from './answers.ts'
import type { CarrierClient } from './clients.ts'
import { emptySample, type CarrierHealth } from './health.ts'

const LEASE_MS = 5 * 60_000

export interface PollSettings {
  intervalMs: number
  batchSize: number
  backoffBaseMs: number
  maxAttempts: number
  ratePerSec: number
  /** Carrier calls in flight at once within a cycle (the rate limit still holds). */
  concurrency?: number
}

export type CycleResult =
  | { status: 'ok'; polled: number; inserted: number; duplicates: number; errors: number; durationMs: number }
  | { status: 'skipped'; reason: 'cycle_already_running' | 'backing_off' }
  | { status: 'error'; error: string; polled: number; durationMs: number }

/** A token bucket: `ratePerSec` calls a second, bursts of at most that many; `pauseFor` for Retry-After. */
export function createTokenBucket(ratePerSec: number, now = () => Date.now()) {
  const capacity = Math.max(1, ratePerSec)
  let tokens = capacity
  let last = now()
  let pausedUntil = 0
  return {
    /** Resolves when a call may be made; waits at most `maxWaitMs` (false: give up). */
    async take(maxWaitMs = 60_000): Promise<boolean> {
      const deadline = now() + maxWaitMs
      for (;;) {
        const t = now()
        tokens = Math.min(capacity, tokens + ((t - last) / 1000) * ratePerSec)
        last = t
        if (t >= pausedUntil && tokens >= 1) {
          tokens -= 1
          return true
        }
        const wait = Math.max(pausedUntil - t, ((1 - tokens) / ratePerSec) * 1000, 1)
        if (t + wait > deadline) return false
        await Bun.sleep(wait)
      }
    },
    pauseFor(ms: number) {
      pausedUntil = Math.max(pausedUntil, now() + ms)
      tokens = 0
    }
  }
}

export function createPoller(deps: {
  sql: Sql
  processor: Processor
  client: CarrierClient
  settings: PollSettings
  log: Logger
  metrics: Metrics
  health?: CarrierHealth
  random?: () => number
}) {
  const { sql, processor, client, settings, log, metrics, health, random = Math.random } = deps
  const carrier = client.carrier
  const bucket = createTokenBucket(settings.ratePerSec)
  let attempt = 0
  let backoffUntil = 0

  function backoffMs(): number {
    const base = settings.backoffBaseMs * 2 ** Math.min(attempt, settings.maxAttempts)
    return Math.round(base / 2 + random() * (base / 2)) // "equal jitter": between half and all of it
  }

  async function lease(): Promise<{ id: string; tracking_number: string }[]> {
    return sql<{ id: string; tracking_number: string }[]>`
      with due as (
        select id from shipments
        where carrier = ${carrier} and deleted_at is null and status not in ('delivered', 'returned', 'expired')
          and (next_poll_at is null or next_poll_at <= now())
        order by last_polled_at nulls first, id
        limit ${settings.batchSize}
        for update skip locked
      )
      update shipments s
      -- The lease: long enough for any cycle; shortened to the poll interval once polled.
      -- A process that dies mid-cycle leaves its shipments to others after it runs out.
      set last_polled_at = now(), next_poll_at = now() + make_interval(secs => ${LEASE_MS / 1000})
      from due where s.id = due.id
      returning s.id, s.tracking_number`
  }

  // Rows locked in id order, as ingest locks them: two statements that lock the same shipments
  // in one order cannot deadlock.
  const inIdOrder = (ids: string[]) => sql`select id from shipments where id = any(${ids}::uuid[]) order by id for update`

  async function polledDone(ids: string[]) {
    if (ids.length > 0)
      await sql`update shipments s set next_poll_at = now() + make_interval(secs => ${settings.intervalMs / 1000}) from (${inIdOrder(ids)}) o where s.id = o.id`
  }

  async function release(ids: string[]) {
    if (ids.length > 0) await sql`update shipments s set next_poll_at = now() from (${inIdOrder(ids)}) o where s.id = o.id`
  }

  async function cycle(): Promise<CycleResult> {
    const t0 = performance.now()
    if (Date.now() < backoffUntil) return { status: 'skipped', reason: 'backing_off' }
    let leased: { id: string; tracking_number: string }[] = []
    try {
      leased = await lease()
      const checks: ScanCheck[] = []
      const answers: AnswerRecord[] = []
      const sample = emptySample()
      const loggedFields = new Set<string>()
      let errors = 0
      let polled = 0
      let failed: string | null = null
      const chunks: { id: string; tracking_number: string }[][] = []
      for (let i = 0; i < leased.length; i += client.maxPerCall) chunks.push(leased.slice(i, i + client.maxPerCall))
      let next = 0
      const unpolled: string[] = []
      const rejectedScan = (trackingNumber: string, c: Extract<ScanCheck, { ok: false }>) => {
        const field = fieldLabel(c.field)
        sample.rejected++
        sample.fields[field] = (sample.fields[field] ?? 0) + 1
        metrics.carrierRejectedScans.inc({ carrier, field })
        if (!loggedFields.has(field)) {
          loggedFields.add(field)
          log.error(
            { component: 'poller', carrier, field: c.field, trackingNumber, err: c.message, sample: redact(c.sample) },
            'carrier scan rejected: the answer has a form we do not read; nothing of it is stored'
          )
        }
      }
      // A bounded pool of calls; after the first failure no new call starts, and what was not
      // asked is due again at once.
      async function worker() {
        while (next < chunks.length) {
          const chunk = chunks[next++]!
          if (failed || !(await bucket.take())) {
            failed ??= 'rate limit wait too long'
            unpolled.push(...chunk.map((s) => s.id))
            continue
          }
          const out = await client.track(chunk.map((s) => s.tracking_number))
          sample.calls++
          if (out.kind === 'ok') {
            attempt = 0
            polled += chunk.length
            for (const r of out.results) {
              sample.shipments++
              if (r.kind === 'events') {
                sample.scans += r.events.length
                let bad = 0
                let first: Extract<ScanCheck, { ok: false }> | null = null
                let asOf: string | null = null
                for (const c of r.events) {
                  if (c.ok) {
                    checks.push(c)
                    if (asOf === null || c.event.occurredAt > asOf) asOf = c.event.occurredAt
                  } else {
                    bad++
                    first ??= c
                    rejectedScan(r.trackingNumber, c)
                  }
                }
                const pollError = first ? `${bad} of ${r.events.length} scans rejected: ${first.field}: ${first.message}` : null
                answers.push({ trackingNumber: r.trackingNumber, pollError, expectedDelivery: r.expectedDelivery, asOf })
              } else if (r.kind === 'error') {
                errors++
                sample.failedShipments++
                sample.lastError = r.message
                metrics.carrierShipmentErrors.inc({ carrier, source: 'poll' })
                answers.push({ trackingNumber: r.trackingNumber, pollError: r.message })
                log.warn({ component: 'poller', carrier, trackingNumber: r.trackingNumber, err: r.message }, 'carrier could not answer for one shipment')
              } else answers.push({ trackingNumber: r.trackingNumber, pollError: null })
            }
            continue
          }
          unpolled.push(...chunk.map((s) => s.id))
          // A 429 is a failed call to carrier health: a carrier that only ever answers 429 is failing.
          sample.failedCalls++
          if (out.kind === 'rate_limited') {
            sample.lastError = 'rate limited (HTTP 429)'
            if (!failed) {
              attempt++
              const wait = out.retryAfterMs ?? backoffMs()
              bucket.pauseFor(wait)
              backoffUntil = Date.now() + wait
              failed = `rate limited; pausing ${wait} ms`
            }
            metrics.pollErrors.inc({ carrier, kind: 'rate_limited' })
            continue
          }
          sample.lastError = out.message
          for (const s of chunk) answers.push({ trackingNumber: s.tracking_number, pollError: out.message })
          if (out.retryable) {
            if (!failed) {
              attempt++
              backoffUntil = Date.now() + backoffMs()
              failed = out.message
            }
            metrics.pollErrors.inc({ carrier, kind: 'retryable' })
          } else {
            errors += chunk.length
            metrics.pollErrors.inc({ carrier, kind: 'final' })
            log.error(
              { component: 'poller', carrier, err: out.message },
              'carrier call failed and will not get better by retrying; check the carrier configuration'
            )
            failed ??= out.message
          }
        }
      }
      await Promise.all(Array.from({ length: Math.max(1, Math.min(settings.concurrency ?? 4, chunks.length)) }, worker))
      await release(unpolled)
      const skipped = new Set(unpolled)
      await polledDone(leased.filter((s) => !skipped.has(s.id)).map((s) => s.id))
      health?.record(carrier, sample)
      // Before the events: their frames then carry the estimate this answer states.
      await recordAnswers(sql, carrier, answers)
      const results = checks.length > 0 ? await processor.ingest(checks) : []
      const inserted = results.filter((r) => r.outcome === 'inserted').length
      const duplicates = results.filter((r) => r.outcome === 'duplicate').length
      const invalid = results.filter((r) => r.outcome === 'invalid').length
      for (const [outcome, n] of [
        ['inserted', inserted],
        ['duplicate', duplicates],
        ['invalid', invalid]
      ] as const)
        if (n) metrics.pollEvents.inc({ carrier, outcome }, n)
      const durationMs = Math.round(performance.now() - t0)
      metrics.pollCycles.inc({ carrier, result: failed ? 'error' : 'ok' })
      metrics.pollDuration.observe({ carrier }, durationMs / 1000)
      metrics.pollShipments.inc({ carrier }, polled)
      if (failed) {
        log.warn(
          {
            component: 'poller',
            carrier,
            polled,
            inserted,
            rejected: sample.rejected,
            attempt,
            backoffMs: Math.max(0, backoffUntil - Date.now()),
            err: failed
          },
          'poll cycle cut short'
        )
        return { status: 'error', error: failed, polled, durationMs }
      }
      log.info(
        { component: 'poller', carrier, polled, inserted, duplicates, rejected: sample.rejected, errors: errors + invalid + sample.rejected, durationMs },
        'poll cycle done'
      )
      return { status: 'ok', polled, inserted, duplicates, errors: errors + invalid + sample.rejected, durationMs }
    } catch (err) {
      const durationMs = Math.round(performance.now() - t0)
      metrics.pollCycles.inc({ carrier, result: 'error' })
      const message = err instanceof DatabaseUnavailableError ? 'database unavailable' : (err as Error).message
      log.warn({ component: 'poller', carrier, err: message }, 'poll cycle failed')
      await release(leased.map((s) => s.id)).catch(() => {})
      return { status: 'error', error: message, polled: 0, durationMs }
    }
  }

  const loop = createLoop(cycle, {
    delay: () => Math.max(settings.intervalMs, backoffUntil - Date.now()),
    busy: { status: 'skipped', reason: 'cycle_already_running' } as CycleResult
  })

  return {
    carrier,
    runOnce: loop.runOnce,
    start() {
      if (loop.start(0)) log.info({ component: 'poller', carrier, ...settings }, 'poller started')
    },
    stop: loop.stop
  }
}

export type Poller = ReturnType<typeof createPoller>
