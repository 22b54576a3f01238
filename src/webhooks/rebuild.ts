/**
 * The schedule's repair: the engine may lose the schedule (Redis restarted or flushed, the memory
 * engine's process restarted), PostgreSQL never does. Every WEBHOOK_REBUILD_MS, at start and at
 * once whenever the engine becomes ready again, every pending message of an enabled endpoint that
 * no sender holds is added to the schedule at its due time — only if missing (ZADD NX), so an
 * entry a sender has claimed keeps its lease. Also what schedules a message whose after-commit
 * add failed (the engine was down then): PostgreSQL is the outbox.
 *
 * Each cycle also deletes finished messages (delivered or dead letters) created more than
 * WEBHOOK_RETENTION_DAYS ago, with their attempts, so the tables do not grow without end.
 *
 * Bounded: pages of PAGE rows in (next_attempt_at, id) order, at most MAX_PAGES a cycle (and as
 * many deletions); one cycle at a time; `stop()` waits for it.
 */
import type { Sql } from '../db/client.ts'
import type { Engine } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { createLoop } from '../loop.ts'
import { member, SCHEDULE } from './sender.ts'

const PAGE = 1000
const MAX_PAGES = 100

export type RebuildResult =
  | { status: 'ok'; pending: number }
  | { status: 'skipped'; reason: 'cycle_already_running' | 'engine_unavailable' }
  | { status: 'error'; error: string }

export function createScheduleRebuild(deps: {
  sql: Sql
  engine: Engine
  log: Logger
  metrics: Metrics
  intervalMs: number
  retentionDays: number
  onAdded?: () => void
  onCycle?: () => Promise<void>
}) {
  const { sql, engine, log, metrics, intervalMs } = deps

  /** Deletes finished messages past their retention, in bounded batches. */
  async function retire() {
    let deleted = 0
    for (let page = 0; page < MAX_PAGES; page++) {
      const gone = await sql`
        delete from webhook_messages where id in (
          select id from webhook_messages
          where state <> 'pending' and created_at < now() - make_interval(days => ${deps.retentionDays})
          limit ${PAGE})
        returning 1`
      deleted += gone.length
      if (gone.length < PAGE) break
    }
    if (deleted > 0) log.info({ component: 'webhooks', deleted, retentionDays: deps.retentionDays }, 'deleted finished webhook messages past their retention')
  }

  async function cycle(): Promise<RebuildResult> {
    try {
      await retire()
      await deps.onCycle?.()
      if (!engine.isReady) return { status: 'skipped', reason: 'engine_unavailable' }
      let after: { at: string; id: string } | null = null
      let pending = 0
      for (let page = 0; page < MAX_PAGES; page++) {
        const rows: { id: string; endpoint_id: string; due_at: number; k: string }[] = await sql`
          select m.id, m.endpoint_id, extract(epoch from m.next_attempt_at)::float8 * 1000 as due_at,
                 to_char(m.next_attempt_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as k
          from webhook_messages m join webhook_endpoints w on w.id = m.endpoint_id and w.enabled
          where m.state = 'pending' and (m.lease_until is null or m.lease_until < now())
            and ${after ? sql`(m.next_attempt_at, m.id) > (${after.at}::timestamptz, ${after.id})` : sql`true`}
          order by m.next_attempt_at, m.id
          limit ${PAGE}`
        if (rows.length > 0)
          await engine.scheduleAdd(
            SCHEDULE,
            rows.map((r) => ({ member: member(r.endpoint_id, r.id), dueAt: r.due_at })),
            { onlyNew: true }
          )
        pending += rows.length
        if (rows.length < PAGE) break
        after = { at: rows.at(-1)!.k, id: rows.at(-1)!.id }
      }
      const size = await engine.scheduleSize(SCHEDULE)
      metrics.webhookScheduled.set(size)
      if (pending > 0) deps.onAdded?.()
      return { status: 'ok', pending }
    } catch (err) {
      log.warn({ component: 'webhooks', err: (err as Error).message }, 'rebuilding the webhook schedule from PostgreSQL failed; will retry')
      return { status: 'error', error: (err as Error).message }
    }
  }

  const loop = createLoop(cycle, { delay: () => intervalMs, busy: { status: 'skipped', reason: 'cycle_already_running' } as RebuildResult })
  let unlisten: (() => void) | null = null

  return {
    runOnce: loop.runOnce,
    start() {
      if (!loop.start(0)) return
      // Redis came back (maybe empty): rebuild now rather than at the next interval.
      unlisten = engine.onReady(() => void loop.runOnce())
    },
    async stop() {
      unlisten?.()
      await loop.stop()
    }
  }
}
