/**
 * Which delivery engine the tests run on, decided once per run and said in one line:
 *
 *   TEST_ENGINE=memory   the memory engine; tests that need a real Redis are skipped, each
 *                        with its reason in its name;
 *   TEST_ENGINE=redis    the Redis engine, on TEST_REDIS_URL or REDIS_URL when set, else on a
 *                        private `redis-server` started for the run (killed when it ends);
 *   unset (auto)         as redis, when one of those is there or Redis answers at the default
 *                        address; otherwise the memory engine.
 *
 * Keys are isolated per test with a unique prefix, so the shared Redis serves as well.
 * `.ci/run` runs the suite once per engine.
 */
import { test } from 'bun:test'
import { answersPing, DEFAULT_REDIS_URL } from '../../src/engine/select.ts'

export type EngineMode = 'redis' | 'memory'

/** Whether the `redis-server` binary is here: tests of real outages start and stop their own. */
export const hasRedisServer = Bun.which('redis-server') !== null

const requested = process.env.TEST_ENGINE ?? 'auto'
if (!['redis', 'memory', 'auto'].includes(requested)) throw new Error(`TEST_ENGINE=${requested}: use redis, memory, or leave it unset`)

async function resolve(): Promise<{ mode: EngineMode; url: string | null; line: string }> {
  if (requested === 'memory') return { mode: 'memory', url: null, line: 'memory engine (TEST_ENGINE=memory); tests that need a real Redis are skipped' }
  const given = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL
  if (given) return { mode: 'redis', url: given, line: `Redis engine on ${given}` }
  if (hasRedisServer) {
    const url = await startRunRedis()
    return { mode: 'redis', url, line: `Redis engine on a private redis-server for this run (${url})` }
  }
  if (await answersPing(DEFAULT_REDIS_URL, 300)) return { mode: 'redis', url: DEFAULT_REDIS_URL, line: `Redis engine on ${DEFAULT_REDIS_URL}` }
  if (requested === 'redis') throw new Error('TEST_ENGINE=redis, but there is no REDIS_URL, no redis-server binary and no Redis at 127.0.0.1:6379')
  return {
    mode: 'memory',
    url: null,
    line: 'memory engine: no Redis here (no REDIS_URL, no redis-server, nothing at 127.0.0.1:6379); tests that need a real Redis are skipped'
  }
}

/** A redis-server for the whole run, on a free port; its watchdog ends it with the test process. */
async function startRunRedis(): Promise<string> {
  const { freePort, spawnRedisServer } = await import('./redis.ts')
  const port = await freePort()
  spawnRedisServer(port)
  const url = `redis://127.0.0.1:${port}`
  for (let i = 0; i < 200; i++) {
    if (await answersPing(url, 200)) return url
    await Bun.sleep(25)
  }
  throw new Error(`the test run's redis-server on port ${port} did not start`)
}

const resolved = await resolve()

export const engineMode: EngineMode = resolved.mode
/** The Redis the tests use (redis mode), else null. */
export const testRedisUrl: string | null = resolved.url

let said = false
/** The run's one line about its engine (the preload prints it). */
export function sayEngine() {
  if (said) return
  said = true
  console.error(`tests: delivery on the ${resolved.line}`)
}

type TestFn = () => undefined | Promise<unknown>
/**
 * `test`, or, on the memory engine, the same test skipped with `reason` in its name — for
 * what only a real Redis can show (an outage, a second OS process sharing it).
 */
export function redisTest(reason: string, name: string, fn: TestFn, timeout?: number) {
  if (engineMode === 'redis') return test(name, fn, timeout)
  return test.skip(`${name} — skipped on the memory engine: ${reason}`, fn, timeout)
}

/** `test` when a redis-server can be started and stopped here (a real outage), else skipped, saying so. */
export function outageTest(name: string, fn: TestFn, timeout?: number) {
  if (engineMode !== 'redis') return test.skip(`${name} — skipped on the memory engine: it stops and starts a Redis server`, fn, timeout)
  if (!hasRedisServer) return test.skip(`${name} — skipped: needs the redis-server binary to stop and start a Redis`, fn, timeout)
  return test(name, fn, timeout)
}
