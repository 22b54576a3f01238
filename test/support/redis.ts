/**
 * Redis for tests: a unique key prefix per test on the run's Redis (engine.ts), a private
 * `redis-server` on its own port that a test can stop and start again (a real outage), and the
 * stream as any engine holds it.
 */
import { createClient } from 'redis'
import type { Engine } from '../../src/engine/engine.ts'
import { STREAM } from '../../src/pipeline/stream.ts'
import { uniqueName } from './db.ts'

export const uniquePrefix = () => `${uniqueName('pct')}:`

export async function connectRedis(url: string) {
  const c = createClient({ url })
  await c.connect()
  return c
}

export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = s.port
  s.stop(true)
  return port
}

/**
 * A redis-server on `port`, and a watchdog that kills it once this process is gone: `bun test`
 * runs no exit hooks, so a server left running by a failed test or by the run would outlive it.
 */
export function spawnRedisServer(port: number) {
  const proc = Bun.spawn(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdout: 'ignore',
    stderr: 'ignore'
  })
  const watchdog = Bun.spawn(
    [
      'sh',
      '-c',
      'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.2; done; kill -CONT "$2" 2>/dev/null; kill -9 "$2" 2>/dev/null',
      'watchdog',
      String(process.pid),
      String(proc.pid)
    ],
    { stdout: 'ignore', stderr: 'ignore' }
  )
  proc.unref()
  watchdog.unref()
  return {
    proc,
    async kill() {
      proc.kill('SIGCONT')
      proc.kill('SIGKILL')
      await proc.exited
      watchdog.kill()
    }
  }
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
  let server: ReturnType<typeof spawnRedisServer> | null = null
  const self: PrivateRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      server = spawnRedisServer(port)
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
      server?.proc.kill('SIGSTOP')
    },
    resume() {
      server?.proc.kill('SIGCONT')
    },
    async stop() {
      if (!server) return
      await server.kill()
      server = null
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

/** The whole `tracking:events` stream of an engine, oldest first, with fields decoded. */
export async function readStream(engine: Engine): Promise<Entry[]> {
  const entries = await engine.streamRange(STREAM, 1_000_000)
  return entries.map((e) => ({
    id: e.id,
    topic: e.message.topic!,
    shipmentId: e.message.shipmentId!,
    seq: Number(e.message.seq),
    data: JSON.parse(e.message.data!)
  }))
}
