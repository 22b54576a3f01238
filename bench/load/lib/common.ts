/**
 * Shared by the load scenarios: a fresh database, a parcelcast process on the Redis engine with
 * a key prefix of its own (its keys deleted at the end, never the rest of Redis), swarms of
 * clients in processes of their own (swarm.ts), the server's metrics and RSS, and the report:
 * a table of figures against thresholds, exit code 1 when one fails.
 */
import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { freshDatabase, lines, machine, redisUrl, rss, startServer, writeSection } from '../../support.ts'

export const API_KEY = 'load-key-0123456789'
export const TOKEN_SECRET = randomBytes(32).toString('base64url')

/** LOAD_SCALE=0.1 runs a scenario with a tenth of its users (development); figures are written to docs/BENCHMARKS.md only at full scale. */
export const SCALE = Number(process.env.LOAD_SCALE ?? 1)
if (!(SCALE > 0 && SCALE <= 1)) throw new Error(`LOAD_SCALE=${process.env.LOAD_SCALE}: a number in (0, 1]`)
export const scaled = (n: number) => Math.max(1, Math.round(n * SCALE))
/** LOAD_SECONDS overrides a scenario's duration (development). */
export const seconds = (def: number) => Number(process.env.LOAD_SECONDS ?? def)

export async function setup(name: string, env: Record<string, string> = {}) {
  const db = await freshDatabase(`parcelcast_load_${name.replaceAll('-', '_')}`)
  const prefix = `load-${name}-${randomBytes(3).toString('hex')}:`
  const server = await startServer({
    DATABASE_URL: db.url,
    ENGINE: 'redis',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    API_KEYS: API_KEY,
    TOKEN_SECRET,
    POLL_ENABLED: 'false',
    MIGRATE_ON_BOOT: 'false',
    ...env
  })
  const ready = await fetch(`${server.url}/readyz`).then((r) => r.json() as Promise<{ engine: string; redis: string }>)
  if (ready.engine !== 'redis' || ready.redis !== 'up') throw new Error(`the server is not on Redis: ${JSON.stringify(ready)}`)
  const post = async (path: string, body: unknown) => {
    const res = await fetch(server.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body)
    })
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`)
    return res.json() as Promise<any>
  }
  return {
    db,
    server,
    post,
    ws: `${server.url.replace('http', 'ws')}/v1/ws`,
    rss: () => rss(server.pid),
    async metric(name: string): Promise<number> {
      const text = await (await fetch(`${server.url}/metrics`)).text()
      const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN
    },
    async teardown() {
      await server.stop()
      await db.sql.end()
      const redis = createClient({ url: redisUrl })
      await redis.connect()
      for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) if (keys.length > 0) await redis.del(keys)
      await redis.close()
    }
  }
}

export type Setup = Awaited<ReturnType<typeof setup>>

/** A swarm process for these users; `send` a command, `next(event)` for its answer. */
export function swarm(ws: string, users: string[]) {
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/swarm.ts`, JSON.stringify({ ws, secret: TOKEN_SECRET, users })], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit'
  })
  const inbox: any[] = []
  const waiters: (() => void)[] = []
  void (async () => {
    for await (const line of lines(proc.stdout as ReadableStream<Uint8Array>)) {
      if (!line.trim()) continue
      const m = JSON.parse(line)
      if (m.event === 'error') console.error('swarm:', m.message)
      inbox.push(m)
      for (const w of waiters.splice(0)) w()
    }
    for (const w of waiters.splice(0)) w()
  })()
  return {
    pid: proc.pid,
    send(cmd: Record<string, unknown>) {
      proc.stdin.write(JSON.stringify(cmd) + '\n')
      proc.stdin.flush()
    },
    async next(event: string, timeoutMs = 120_000): Promise<any> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const i = inbox.findIndex((m) => m.event === event)
        if (i >= 0) return inbox.splice(i, 1)[0]
        if (Date.now() > deadline) throw new Error(`swarm ${proc.pid}: no ${event} within ${timeoutMs} ms`)
        if (proc.exitCode !== null) throw new Error(`swarm ${proc.pid} exited (${proc.exitCode}) before ${event}`)
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 200)
        })
      }
    },
    async close() {
      this.send({ cmd: 'close' })
      await Promise.race([proc.exited, Bun.sleep(5000)])
      proc.kill()
    }
  }
}

export type Swarm = ReturnType<typeof swarm>

/** `users` split over `processes` swarms. */
export function swarms(ws: string, users: string[], processes: number): Swarm[] {
  const per = Math.ceil(users.length / processes)
  return Array.from({ length: processes }, (_, i) => users.slice(i * per, (i + 1) * per))
    .filter((u) => u.length > 0)
    .map((u) => swarm(ws, u))
}

export async function all<T>(list: Swarm[], cmd: Record<string, unknown> | null, event: string, timeoutMs?: number): Promise<T[]> {
  if (cmd) for (const s of list) s.send(cmd)
  return Promise.all(list.map((s) => s.next(event, timeoutMs)))
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

export interface Row {
  what: string
  value: string
  /** What it must be, said for people (`< 100 ms`); absent for figures without a threshold. */
  threshold?: string
  ok?: boolean
}

/** Prints the report; writes it to docs/BENCHMARKS.md at full scale; exits 1 when a threshold failed. */
export async function finish(name: string, title: string, rows: Row[], notes: string[] = []) {
  const table = [
    '| figure | value | threshold | |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.what} | ${r.value} | ${r.threshold ?? ''} | ${r.ok === undefined ? '' : r.ok ? 'pass' : '**FAIL**'} |`)
  ].join('\n')
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ')
  const body = `### ${title} — \`bun run load ${name}\`\n\nRun on ${when} UTC: ${machine()}${SCALE < 1 ? ` (LOAD_SCALE=${SCALE})` : ''}.\n\n${table}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}`
  console.log(`\n${body}`)
  const failed = rows.filter((r) => r.ok === false)
  if (SCALE === 1 && !process.env.LOAD_SECONDS) await writeSection(`load-${name}`, body)
  else console.log('(not written to docs/BENCHMARKS.md: LOAD_SCALE or LOAD_SECONDS set)')
  if (failed.length > 0) {
    console.log(`FAILED: ${failed.map((r) => r.what).join('; ')}`)
    process.exitCode = 1
  } else console.log('all thresholds met')
}

export const fmtMs = (ms: number) => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`
export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`
