/**
 * Retention (contract §8): notifications older than NOTIFICATION_RETENTION_DAYS are deleted,
 * oldest first and each user's in seq order, with their outbox rows if any are left; and
 * idempotency answers older than 24 hours. A background loop (loop.ts): bounded (about
 * `maxBatches` × `batchSize` rows of each per run, short statements that hold few locks), observable (a counter per kind, a log line
 * when it deleted something), one run at a time, and `stop()` waits for the run in progress.
 *
 * A socket that resumes from before the kept range gets what is kept and `truncated: true`
 * (user-kind.ts).
 */
import type { Sql } from '../db/client.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { createLoop } from '../loop.ts'
import { IDEMPOTENCY_HOURS } from './create.ts'

export type RetentionResult =
  | { status: 'ok'; notifications: number; requests: number }
  | { status: 'skipped'; reason: 'cycle_already_running' }
  | { status: 'error'; error: string }

export function createRetention({
  sql,
  log,
  metrics,
  days,
  intervalMs,
  batchSize = 1000,
  maxBatches = 10
}: {
  sql: Sql
  log: Logger
  metrics: Metrics
  days: number
  intervalMs: number
  batchSize?: number
  maxBatches?: number
}) {
  async function batches(statement: () => Promise<number>): Promise<number> {
    let total = 0
    for (let i = 0; i < maxBatches; i++) {
      const n = await statement()
      total += n
      if (n < batchSize) break
    }
    return total
  }

  // A user's notifications go in seq order, never one with a lower seq kept behind a deleted one:
  // the batch's oldest rows by created_at decide how far each of their users goes, and every seq
  // up to that goes. created_at alone could leave such a hole: it is the transaction's start, so
  // of two transactions racing for one user the later seq may have the earlier instant, and rows
  // of one transaction tie. What is kept stays one range from firstRetained (queries.ts), so
  // gap reads and resumes never wait for a seq that is gone while an older one stays.
  const oldNotifications = async () => {
    const [row] = await sql<{ n: number }[]>`
      with c as (
        select user_id, seq from notifications where created_at < now() - make_interval(days => ${days}) order by created_at limit ${batchSize}
      ),
      upto as (select user_id, max(seq) as seq from c group by user_id),
      d as (
        delete from notifications n using upto where n.user_id = upto.user_id and n.seq <= upto.seq
        returning n.user_id, n.seq
      ),
      o as (delete from notification_outbox o using d where o.user_id = d.user_id and o.seq = d.seq)
      select count(*)::int as n from d`
    return row!.n
  }

  const oldRequests = async () => {
    const [row] = await sql<{ n: number }[]>`
      with d as (
        delete from notification_requests where ctid = any(array(
          select ctid from notification_requests where created_at < now() - make_interval(hours => ${IDEMPOTENCY_HOURS}) order by created_at limit ${batchSize}))
        returning 1
      )
      select count(*)::int as n from d`
    return row!.n
  }

  async function cycle(): Promise<RetentionResult> {
    try {
      const notifications = await batches(oldNotifications)
      const requests = await batches(oldRequests)
      metrics.notificationsDeleted.inc({ what: 'notifications' }, notifications)
      metrics.notificationsDeleted.inc({ what: 'idempotency_answers' }, requests)
      if (notifications + requests > 0)
        log.info({ component: 'retention', notifications, requests, days }, 'deleted notifications past retention and expired idempotency answers')
      return { status: 'ok', notifications, requests }
    } catch (err) {
      log.warn({ component: 'retention', err: (err as Error).message }, 'retention run failed; will retry')
      return { status: 'error', error: (err as Error).message }
    }
  }

  const loop = createLoop(cycle, { delay: () => intervalMs, busy: { status: 'skipped', reason: 'cycle_already_running' } as RetentionResult })
  return {
    runOnce: loop.runOnce,
    start() {
      if (loop.start()) log.info({ component: 'retention', days, intervalMs }, 'notification retention started')
    },
    stop: loop.stop
  }
}

export type Retention = ReturnType<typeof createRetention>
