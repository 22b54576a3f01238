/**
 * Builds a service for a test the way main.ts does, on the test's own database and key
 * prefix, on the run's engine (engine.ts). Every service built here must be stopped; the
 * preload fails the run otherwise.
 */
import { loadConfig } from '../../src/config.ts'
import type { Engine } from '../../src/engine/engine.ts'
import { createService, type Service } from '../../src/service.ts'
import pino from 'pino'
import type { Logger } from '../../src/log.ts'
import { silentLog } from './db.ts'
import { engineMode, testRedisUrl } from './engine.ts'
import { createClient } from 'redis'
import { uniquePrefix } from './redis.ts'

export const API_KEY = 'test-key-0123456789'
export const TOKEN_SECRET = 'test-token-secret-0123456789-abcdef'

export const live = new Set<Service>()

/**
 * `opts.shareEngineWith`: run on that service's engine (same key prefix with Redis; the one way
 * two services of one process share a memory engine), for tests of two processes' relays.
 * `opts.engine`: run on this engine (made with `env.REDIS_PREFIX` for Redis), not closed by stop().
 */
export function testService(
  env: Record<string, string> & { DATABASE_URL: string },
  opts: { log?: Logger; shareEngineWith?: Service; engine?: Engine } = {}
): Service {
  const config = loadConfig({
    API_KEYS: API_KEY,
    TOKEN_SECRET,
    ENGINE: engineMode,
    ...(testRedisUrl ? { REDIS_URL: testRedisUrl } : {}),
    REDIS_PREFIX: opts.shareEngineWith?.config.REDIS_PREFIX ?? uniquePrefix(),
    LOG_LEVEL: 'silent',
    PORT: '0',
    MIGRATE_ON_BOOT: 'false',
    PUBLISH_TIMEOUT_MS: '500',
    ...env
  })
  const shared: Engine | undefined = opts.engine ?? (opts.shareEngineWith?.engine.kind === 'memory' ? opts.shareEngineWith.engine : undefined)
  const service = createService(config, { log: opts.log ?? silentLog, defaultMetrics: false, engine: shared })
  const stop = service.stop
  service.stop = async () => {
    live.delete(service)
    await stop()
    // Leave nothing behind in a shared Redis: every key of this test has its unique prefix.
    if (config.ENGINE === 'redis' && config.REDIS_URL) await dropKeys(config.REDIS_URL, config.REDIS_PREFIX)
  }
  live.add(service)
  return service
}

export function api(service: Service) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await service.app.handle(
      new Request(`http://local${path}`, {
        method,
        headers: { authorization: `Bearer ${API_KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
      })
    )
    const text = await res.text()
    let json: any
    try {
      json = text ? JSON.parse(text) : undefined
    } catch {
      json = text
    }
    return { status: res.status, body: json, headers: res.headers }
  }
}

export async function waitFor<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(20)
  }
}

/** A logger whose lines a test can read (JSON objects, in order). */
export function capturingLog(): { log: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  return { log, lines }
}

/** Deletes every key under `prefix`; a Redis that is not there (a stopped private one) has none to delete. */
export async function dropKeys(url: string, prefix: string) {
  const redis = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 1000 } })
  redis.on('error', () => {})
  if (
    !(await redis.connect().then(
      () => true,
      () => false
    ))
  )
    return
  try {
    for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) if (keys.length > 0) await redis.del(keys)
  } catch {
  } finally {
    redis.destroy()
  }
}
