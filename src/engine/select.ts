/**
 * Which engine a process runs (contract §7): `ENGINE=redis|memory|auto`, default auto. Auto
 * takes Redis when `REDIS_URL` is set, else when something answers PING at the default address
 * within `probeMs`, else the memory engine (one process, no network). Explicit choices are
 * never probed: `ENGINE=redis` starts with Redis down (degraded) rather than fall back.
 */
import type { Config } from '../config.ts'
import type { Logger } from '../log.ts'
import type { Engine } from './engine.ts'
import { createMemoryEngine } from './engine-memory.ts'
import { createRedisEngine } from './engine-redis.ts'

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

export type EngineChoice = { kind: 'redis'; url: string; reason: string } | { kind: 'memory'; reason: string }

type EngineConfig = Pick<Config, 'ENGINE' | 'REDIS_URL'>

/** The choice when the configuration alone decides it; null when auto has to probe. */
export function configuredEngine(config: EngineConfig): EngineChoice | null {
  if (config.ENGINE === 'memory') return { kind: 'memory', reason: config.REDIS_URL ? 'ENGINE=memory (REDIS_URL is set but not used)' : 'ENGINE=memory' }
  if (config.ENGINE === 'redis') return { kind: 'redis', url: config.REDIS_URL ?? DEFAULT_REDIS_URL, reason: 'ENGINE=redis' }
  if (config.REDIS_URL) return { kind: 'redis', url: config.REDIS_URL, reason: 'REDIS_URL is set' }
  return null
}

/** The engine to run: the configured one, or auto's probe of the default address. */
export async function chooseEngine(config: EngineConfig, { probeMs = 300, defaultUrl = DEFAULT_REDIS_URL } = {}): Promise<EngineChoice> {
  const configured = configuredEngine(config)
  if (configured) return configured
  if (await answersPing(defaultUrl, probeMs)) return { kind: 'redis', url: defaultUrl, reason: `REDIS_URL unset; Redis answered at ${defaultUrl}` }
  return { kind: 'memory', reason: `REDIS_URL unset and nothing answered at ${defaultUrl} within ${probeMs} ms: one process only` }
}

export function createEngine(choice: EngineChoice, deps: { prefix: string; log: Logger; commandTimeoutMs: number }): Engine {
  return choice.kind === 'memory' ? createMemoryEngine({ log: deps.log }) : createRedisEngine({ url: choice.url, ...deps })
}

/** Whether a Redis (any RESP reply, even an auth error) answers a PING at `url` within `ms`. */
export async function answersPing(url: string, ms: number): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise<boolean>((resolve) => {
    let socket: { end(): void } | null = null
    let settled = false
    const settle = (ok: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket?.end()
      resolve(ok)
    }
    const timer = setTimeout(() => settle(false), ms)
    Bun.connect({
      hostname: hostname.replace(/^\[|\]$/g, ''),
      port: Number(port || 6379),
      socket: {
        open(s) {
          s.write('PING\r\n')
        },
        data(_s, chunk) {
          settle(/^[+-]/.test(chunk.toString('latin1', 0, 1)))
        },
        close: () => settle(false),
        error: () => settle(false),
        connectError: () => settle(false)
      }
    }).then(
      (s) => {
        socket = s
        if (settled) s.end()
      },
      () => settle(false)
    )
  })
}
