/** Liveness, readiness ({db, database, redis, carriers}; Redis down or a failing carrier = degraded but ready) and Prometheus metrics. */
import { Elysia } from 'elysia'
import type { Sql } from '../../db/client.ts'
import type { Metrics } from '../../metrics.ts'
import type { Redis } from '../../pipeline/stream.ts'
import type { Broadcaster } from '../../delivery/broadcaster.ts'
import type { DatabaseKind } from '../../db/select.ts'
import { json } from '../errors.ts'

const STALL_MS = 10_000

const within = <T>(ms: number, p: Promise<T>) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref?.())])

export function healthRoutes({ sql, redis, metrics, broadcaster, carriers = () => ({}), database }: { sql: Sql; redis: Redis; metrics: Metrics; broadcaster: Broadcaster; carriers?: () => Record<string, string>; database: DatabaseKind }) {
  return new Elysia({ name: 'health' })
    .get('/healthz', () => ({ status: 'ok' }), { detail: { summary: 'Liveness', tags: ['ops'] } })
    .get(
      '/readyz',
      async () => {
        const [db, rd] = await Promise.all([
          within(1000, sql`select 1`).then(() => 'up' as const, () => 'down' as const),
          redis.isReady ? within(1000, redis.ping()).then(() => 'up' as const, () => 'down' as const) : ('down' as const)
        ])
        const lag = rd === 'up' ? await within(1000, broadcaster.lag()).catch(() => null) : null
        // A broadcaster that stopped delivering shows here instead of staying green.
        const stalled = lag !== null && ((lag.oldestMs ?? 0) > STALL_MS || (lag.unreadAgeMs ?? 0) > STALL_MS)
        // A carrier whose answers stopped making sense shows here too (carriers/health.ts).
        const health = carriers()
        const failing = Object.values(health).some((h) => h !== 'ok')
        const status = db === 'down' ? 'not_ready' : rd === 'down' || stalled || failing ? 'degraded' : 'ready'
        return json(db === 'up' ? 200 : 503, { status, db, database, redis: rd, broadcaster: lag, carriers: health })
      },
      { detail: { summary: 'Readiness: {status, db, database, redis, broadcaster, carriers}', tags: ['ops'] } }
    )
    .get(
      '/metrics',
      async () => new Response(await metrics.registry.metrics(), { headers: { 'content-type': metrics.registry.contentType } }),
      { detail: { summary: 'Prometheus metrics', tags: ['ops'] } }
    )
}
