/**
 * Liveness, readiness and Prometheus metrics. Readiness: `{status, db, ingest, database, redis,
 * engine, broadcaster, notificationWorkers, carriers, webhooks}` (`broadcaster`,
 * `notificationWorkers`: the lag of each consumer group). `db` is the shared pool, `ingest` ingest's own
 * connections: a free one must answer within a second (one that does not is replaced), so an
 * ingest path that hangs while reads work — a lost connection, every slot stuck on a lock — is
 * `down` and the process `not_ready` (503). `engine` is the delivery engine this process runs (`redis` or
 * `memory`); `redis` is `up` or `down` with the Redis engine (down = degraded but ready: ingest
 * goes on, the outbox keeps what Redis missed), and `not_used` with the memory engine. A failing
 * carrier is degraded but ready too, and so are webhooks with an endpoint disabled by failures or a
 * message dead-lettered in the last hour (`webhooks: {status, deadLetters, deadLettersLastHour,
 * pending, disabledEndpoints}`).
 */
import { Elysia } from 'elysia'
import type { Sql } from '../../db/client.ts'
import type { GuardedConnections } from '../../db/guarded.ts'
import type { Engine } from '../../engine/engine.ts'
import type { Metrics } from '../../metrics.ts'
import type { Broadcaster } from '../../delivery/broadcaster.ts'
import type { DatabaseKind } from '../../db/select.ts'
import { json } from '../errors.ts'
import type { WebhookHealth } from '../../webhooks/webhooks.ts'

const STALL_MS = 10_000

const within = <T>(ms: number, p: Promise<T>) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref?.())])

export function healthRoutes({
  sql,
  ingest,
  engine,
  metrics,
  broadcaster,
  notificationWorkers,
  carriers = () => ({}),
  webhooks,
  database
}: {
  sql: Sql
  ingest?: Pick<GuardedConnections, 'probe'>
  engine: Engine
  metrics: Metrics
  broadcaster: Broadcaster
  notificationWorkers?: Broadcaster
  carriers?: () => Record<string, string>
  webhooks?: () => Promise<WebhookHealth>
  database: DatabaseKind
}) {
  return new Elysia({ name: 'health' })
    .get('/healthz', () => ({ status: 'ok' }), { detail: { summary: 'Liveness', tags: ['ops'] } })
    .get(
      '/readyz',
      async () => {
        const [db, ing, rd] = await Promise.all([
          within(1000, sql`select 1`).then(
            () => 'up' as const,
            () => 'down' as const
          ),
          ingest ? ingest.probe(1000).then((ok) => (ok ? ('up' as const) : ('down' as const))) : ('up' as const),
          engine.kind === 'memory'
            ? ('not_used' as const)
            : engine.isReady
              ? within(1000, engine.ping()).then(
                  () => 'up' as const,
                  () => 'down' as const
                )
              : ('down' as const)
        ])
        const [lag, notificationLag] =
          rd !== 'down' ? await Promise.all([broadcaster, notificationWorkers].map((b) => (b ? within(1000, b.lag()).catch(() => null) : null))) : [null, null]
        // A broadcaster that stopped delivering shows here instead of staying green.
        const stalled = [lag, notificationLag].some((l) => l != null && ((l.oldestMs ?? 0) > STALL_MS || (l.unreadAgeMs ?? 0) > STALL_MS))
        // A carrier whose answers stopped making sense shows here too (carriers/health.ts).
        const health = carriers()
        const failing = Object.values(health).some((h) => h !== 'ok')
        // Dead letters and endpoints disabled by failures show here too: never a silent failure.
        const hooks = db === 'up' && webhooks ? await within(1000, webhooks()).catch(() => null) : null
        const hooksFailing = hooks !== null && hooks.status !== 'ok'
        const status = db === 'down' || ing === 'down' ? 'not_ready' : rd === 'down' || stalled || failing || hooksFailing ? 'degraded' : 'ready'
        return json(status === 'not_ready' ? 503 : 200, {
          status,
          db,
          ingest: ing,
          database,
          redis: rd,
          engine: engine.kind,
          broadcaster: lag ?? null,
          notificationWorkers: notificationLag ?? null,
          carriers: health,
          webhooks: hooks
        })
      },
      { detail: { summary: 'Readiness: {status, db, ingest, database, redis, engine, broadcaster, notificationWorkers, carriers, webhooks}', tags: ['ops'] } }
    )
    .get('/metrics', async () => new Response(await metrics.registry.metrics(), { headers: { 'content-type': metrics.registry.contentType } }), {
      detail: { summary: 'Prometheus metrics', tags: ['ops'] }
    })
}
