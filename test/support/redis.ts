/**
 * Redis for tests: the shared server with a unique key prefix per test, or a private
 * `redis-server` on its own port that a test can stop and start again (a real outage).
 */
import { createClient } from 'redis'
import type { Redis } from '../../src/pipeline/stream.ts'
import { uniqueName } from './db.ts'

export const sharedRedisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

export const uniquePrefix = () => `${uniqueName('pct')}:`

export async function connectRedis(url = sharedRedisUrl): Promise<Redis> {
  const c = createClient({ url }) as unknown as Redis
  await c.connect()
  return c
}

export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = s.port
  s.stop(true)
  return port
}

export interface PrivateRedis {
  url: string
  port: number
  start(): Promise<void>
  stop(): Promise<void>
  /** SIGSTOP: the server keeps its connections but answers nothing (a hung host); `resume` undoes it. */
  pause(): void
  resume(): void
}

export async function privateRedis(): Promise<PrivateRedis> {
  const port = await freePort()
  let proc: ReturnType<typeof Bun.spawn> | null = null
  const self: PrivateRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      proc = Bun.spawn(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdout: 'ignore', stderr: 'ignore' })
      for (let i = 0; i < 200; i++) {
        try {
          const c = await connectRedis(self.url)
          await c.close()
          return
        } catch {
          await Bun.sleep(25)
        }
      }
      throw new Error(`private redis-server on port ${port} did not start`)
    },
    pause() {
      proc?.kill('SIGSTOP')
    },
    resume() {
      proc?.kill('SIGCONT')
    },
    async stop() {
      if (!proc) return
      proc.kill('SIGCONT')
      proc.kill('SIGKILL')
      await proc.exited
      proc = null
    }
  }
  return self
}

export interface Entry {
  id: string
  topic: string
  shipmentId: string
  seq: number
  data: { event: Record<string, unknown> & { seq: number }; shipment: { status: string; carrierStatus: string | null; lastEventAt: string | null } }
}

/** The whole stream, oldest first, with fields decoded. */
export async function readStream(redis: Redis, key: string): Promise<Entry[]> {
  const entries = (await redis.xRange(key, '-', '+')) as unknown as { id: string; message: Record<string, string> }[] | null
  return (entries ?? []).map((e) => ({
    id: e.id, topic: e.message.topic!, shipmentId: e.message.shipmentId!, seq: Number(e.message.seq), data: JSON.parse(e.message.data!)
  }))
}
