/**
 * Outbound webhooks (contract §9), put together: the store the API uses, the sender, the
 * schedule's rebuild, what ingest calls after a commit that created messages, and the health
 * that /readyz shows. Messages themselves are created by the transactions of what they announce
 * (messages-sql.ts).
 */
import type { Config } from '../config.ts'
import type { Sql } from '../db/client.ts'
import type { Engine } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { createScheduleRebuild } from './rebuild.ts'
import { createSender, member, SCHEDULE } from './sender.ts'
import { createWebhookStore, type Due } from './store.ts'

export interface WebhookHealth {
  /** `ok`, or `failing: …` when an endpoint was disabled by failures or a message was dead-lettered in the last hour. */
  status: string
  deadLetters: number
  deadLettersLastHour: number
  pending: number
  disabledEndpoints: { id: string; reason: string | null }[]
}

const COUNT_CAP = 100_000

type WebhookConfig = Pick<
  Config,
  | 'WEBHOOK_CONCURRENCY'
  | 'WEBHOOK_TIMEOUT_MS'
  | 'WEBHOOK_RETRY_BASE_MS'
  | 'WEBHOOK_RETRY_MAX_MS'
  | 'WEBHOOK_MAX_ATTEMPTS'
  | 'WEBHOOK_DISABLE_AFTER_MS'
  | 'WEBHOOK_ALLOW_PRIVATE'
  | 'WEBHOOK_WORKERS'
  | 'WEBHOOK_POLL_MS'
  | 'WEBHOOK_REBUILD_MS'
  | 'WEBHOOK_RETENTION_DAYS'
>

export function createWebhooks(deps: { sql: Sql; engine: Engine; log: Logger; metrics: Metrics; config: WebhookConfig }) {
  const { sql, engine, log, metrics, config } = deps
  const store = createWebhookStore(sql)
  const sender = createSender({
    sql,
    engine,
    log,
    metrics,
    opts: {
      concurrency: config.WEBHOOK_CONCURRENCY,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      workers: config.WEBHOOK_WORKERS,
      pollMs: config.WEBHOOK_POLL_MS,
      baseMs: config.WEBHOOK_RETRY_BASE_MS,
      maxMs: config.WEBHOOK_RETRY_MAX_MS,
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
      disableAfterMs: config.WEBHOOK_DISABLE_AFTER_MS,
      allowPrivate: config.WEBHOOK_ALLOW_PRIVATE
    }
  })
  const rebuild = createScheduleRebuild({
    sql,
    engine,
    log,
    metrics,
    intervalMs: config.WEBHOOK_REBUILD_MS,
    retentionDays: config.WEBHOOK_RETENTION_DAYS,
    onCycle: async () => void (await health().catch(() => null)),
    onAdded: sender.wake
  })

  /** Puts messages on the schedule; when the engine cannot take them, the rebuild will. Never throws. */
  async function schedule(due: readonly Due[]) {
    if (due.length === 0) return
    try {
      for (let i = 0; i < due.length; i += 1000) {
        await engine.scheduleAdd(
          SCHEDULE,
          due.slice(i, i + 1000).map((d) => ({ member: member(d.endpointId, d.id), dueAt: d.dueAt }))
        )
      }
      sender.wake()
    } catch (err) {
      log.warn({ component: 'webhooks', err: (err as Error).message, messages: due.length }, 'could not schedule webhook messages; the schedule rebuild will')
    }
  }

  async function health(): Promise<WebhookHealth> {
    const [row] = await sql<{ dead: number; recent: number; pending: number; disabled: { id: string; reason: string | null }[] }[]>`
      select
        (select count(*)::int from (select 1 from webhook_messages where state = 'failed' limit ${COUNT_CAP}) x) as dead,
        (select count(*)::int from (select 1 from webhook_messages where state = 'failed' and failed_at > now() - interval '1 hour' limit ${COUNT_CAP}) x) as recent,
        (select count(*)::int from (select 1 from webhook_messages where state = 'pending' limit ${COUNT_CAP}) x) as pending,
        (select coalesce(json_agg(json_build_object('id', id, 'reason', disabled_reason)), '[]'::json) from (
           select id, disabled_reason from webhook_endpoints where not enabled and disabled_by in ('failures', 'gone') order by updated_at desc limit 20) d) as disabled`
    const r = row!
    metrics.webhookDeadLetterQueue.set(r.dead)
    metrics.webhookPending.set(r.pending)
    const problems = [
      r.disabled.length > 0 ? `${r.disabled.length} endpoint(s) disabled by failures` : '',
      r.recent > 0 ? `${r.recent} message(s) dead-lettered in the last hour` : ''
    ].filter(Boolean)
    return {
      status: problems.length ? `failing: ${problems.join('; ')}` : 'ok',
      deadLetters: r.dead,
      deadLettersLastHour: r.recent,
      pending: r.pending,
      disabledEndpoints: r.disabled
    }
  }

  /** The API's changes that schedule something, scheduled and logged (never a secret). */
  const actions = {
    async createEndpoint(e: Parameters<typeof store.createEndpoint>[0]) {
      const endpoint = await store.createEndpoint(e)
      log.info(
        { component: 'webhooks', endpointId: endpoint.id, host: new URL(endpoint.url).host, eventTypes: endpoint.eventTypes },
        'webhook endpoint created'
      )
      return endpoint
    },
    async deleteEndpoint(id: string) {
      const deleted = await store.deleteEndpoint(id)
      if (deleted) log.info({ component: 'webhooks', endpointId: id }, 'webhook endpoint deleted with its messages')
      return deleted
    },
    async rotateSecret(id: string, secret: string, graceMs: number) {
      const rotated = await store.rotateSecret(id, secret, graceMs)
      if (rotated)
        log.info(
          { component: 'webhooks', endpointId: id, previousSecretExpiresAt: rotated.previousSecretExpiresAt },
          'webhook secret rotated; both secrets sign until the previous one expires'
        )
      return rotated
    },
    async updateEndpoint(id: string, patch: Parameters<typeof store.updateEndpoint>[1]) {
      const done = await store.updateEndpoint(id, patch)
      if (!done) return null
      if (done.resumed.length > 0 || patch.enabled === true)
        log.info({ component: 'webhooks', endpointId: id, pending: done.resumed.length }, 'webhook endpoint enabled; its pending messages are due now')
      else if (patch.enabled === false) log.info({ component: 'webhooks', endpointId: id }, 'webhook endpoint disabled through the API')
      await schedule(done.resumed)
      return done.endpoint
    },
    async replay(where: Parameters<typeof store.replay>[0]) {
      const r = await store.replay(where)
      if ('refused' in r) return r
      log.info({ component: 'webhooks', ...where, replayed: r.due.length }, 'dead letters replayed: a new round of attempts')
      await schedule(r.due)
      return { replayed: r.due.length }
    }
  }

  return {
    store,
    sender,
    rebuild,
    schedule,
    health,
    ...actions,
    /** After an ingest commit: its messages are due now. */
    afterCommit(refs: readonly { id: string; endpointId: string }[]) {
      if (refs.length === 0) return
      metrics.webhookMessagesCreated.inc(refs.length)
      const now = Date.now()
      void schedule(refs.map((r) => ({ ...r, dueAt: now })))
    },
    start() {
      rebuild.start()
      sender.start()
    },
    async stop() {
      await rebuild.stop()
      await sender.stop()
    }
  }
}

export type Webhooks = ReturnType<typeof createWebhooks>
