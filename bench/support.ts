/** Shared by the benchmarks: a fresh database, a server process, percentiles, the report file. */
import * as hdr from 'hdr-histogram-js'
import { statSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { createSql, type Sql } from '../src/db/client.ts'
import { migrate } from '../src/db/migrate.ts'
import { createLogger } from '../src/log.ts'

export const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

export async function freshDatabase(name: string): Promise<{ url: string; sql: Sql }> {
  const admin = createSql(adminUrl, { max: 1 })
  await admin.unsafe(`drop database if exists ${name} with (force)`)
  await admin.unsafe(`create database ${name}`)
  await admin.end()
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  const sql = createSql(u.toString(), { max: 10 })
  await migrate(sql, createLogger('silent'))
  return { url: u.toString(), sql }
}

export async function startServer(env: Record<string, string>): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  // A port the OS just handed out (two servers may run at once).
  const probe = Bun.serve({ port: 0, fetch: () => new Response() })
  const port = probe.port
  probe.stop(true)
  // BENCH_CPU_PROFILE_DIR=dir: the server writes a CPU profile (markdown) there when it stops.
  const profile = process.env.BENCH_CPU_PROFILE_DIR ? ['--cpu-prof-md', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE_DIR}`] : []
  const proc = Bun.spawn([process.execPath, ...profile, 'src/main.ts'], {
    env: { ...process.env, LOG_LEVEL: 'warn', PORT: String(port), ...env },
    stdout: 'inherit',
    stderr: 'inherit'
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break
    } catch {}
    await Bun.sleep(50)
  }
  return {
    url,
    pid: proc.pid,
    async stop() {
      proc.kill('SIGTERM')
      await proc.exited
    }
  }
}

export function histogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
}

/** microseconds in the histogram → "1.23 ms" */
export const ms = (us: number) => `${(us / 1000).toFixed(2)} ms`

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Bun ${Bun.version}; PostgreSQL and Redis on the same machine, load generator included`
}

/** Replaces the section between `<!-- name:start -->` and `<!-- name:end -->` in docs/BENCHMARKS.md. */
export async function writeSection(name: string, body: string): Promise<void> {
  const path = `${import.meta.dir}/../docs/BENCHMARKS.md`
  const file = Bun.file(path)
  let text = (await file.exists()) ? await file.text() : '# Benchmarks\n'
  const start = `<!-- ${name}:start -->`,
    end = `<!-- ${name}:end -->`
  const block = `${start}\n${body.trim()}\n${end}`
  const i = text.indexOf(start),
    j = text.indexOf(end)
  text = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n${block}\n`
  await Bun.write(path, text)
}

/** Resident set size of a process, in bytes (Linux). */
export async function rss(pid: number): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text()
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
}

/** Lines of a child's stdout, as they come. */
export async function* lines(stream: ReadableStream<Uint8Array>) {
  const decoder = new TextDecoder()
  let buf = ''
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true })
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, i)
      buf = buf.slice(i + 1)
    }
  }
  if (buf) yield buf
}

/**
 * What the disk under PostgreSQL's data directory did meanwhile, from the kernel's counters
 * (/proc/diskstats: completed writes and cache flushes, and the milliseconds spent on each),
 * read every `everyMs`. A commit waits for its WAL write and the flush after it, so a stall
 * here is a stall of every commit; the counters cost nothing to read and add no I/O.
 * The slowest window is that window's mean time per flush (or write): a lower bound for the
 * slowest single one in it; `slowFlushWindows` counts windows whose mean flush took over 10 ms.
 * The report is null where the device cannot be found (PostgreSQL on another machine or in a
 * container, no superuser to ask for data_directory, not Linux, a kernel before 5.5).
 */
export async function diskSampler(sql: Sql, everyMs = 50) {
  let device: string | null = null
  try {
    const [row] = await sql<{ dir: string }[]>`select current_setting('data_directory') as dir`
    const dev = statSync(row!.dir).dev
    const major = Math.floor(dev / 256) & 0xfff,
      minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00)
    const stats = await Bun.file('/proc/diskstats').text()
    device =
      stats
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .find((f) => Number(f[0]) === major && Number(f[1]) === minor)?.[2] ?? null
  } catch {}
  async function read(): Promise<{ writes: number; writeMs: number; flushes: number; flushMs: number } | null> {
    if (!device) return null
    let text: string
    try {
      text = await Bun.file('/proc/diskstats').text()
    } catch {
      return null
    }
    const f = text
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((x) => x[2] === device)
    // fields: 7 writes completed, 10 ms writing; 19 flushes completed, 20 ms flushing (kernel ≥ 5.5)
    return f && f.length >= 20 ? { writes: Number(f[7]), writeMs: Number(f[10]), flushes: Number(f[18]), flushMs: Number(f[19]) } : null
  }
  return {
    device,
    /** Samples until `stop()`; then the totals and the slowest window. */
    async start() {
      const first = await read()
      let prev = first
      let worstFlush = 0,
        worstWrite = 0,
        slowFlushWindows = 0,
        reading = false
      const timer = setInterval(async () => {
        if (reading) return
        reading = true
        const now = await read().finally(() => (reading = false))
        if (!now || !prev) return
        const df = now.flushes - prev.flushes,
          dw = now.writes - prev.writes
        if (df > 0) {
          const mean = (now.flushMs - prev.flushMs) / df
          worstFlush = Math.max(worstFlush, mean)
          if (mean > 10) slowFlushWindows++
        }
        if (dw > 0) worstWrite = Math.max(worstWrite, (now.writeMs - prev.writeMs) / dw)
        prev = now
      }, everyMs)
      return {
        async stop(): Promise<DiskReport | null> {
          clearInterval(timer)
          const last = await read()
          if (!first || !last) return null
          const flushes = last.flushes - first.flushes,
            writes = last.writes - first.writes
          return {
            device: device!,
            flushes,
            writes,
            flushMeanMs: flushes > 0 ? (last.flushMs - first.flushMs) / flushes : 0,
            writeMeanMs: writes > 0 ? (last.writeMs - first.writeMs) / writes : 0,
            worstFlushWindowMs: worstFlush,
            worstWriteWindowMs: worstWrite,
            slowFlushWindows,
            windowMs: everyMs
          }
        }
      }
    }
  }
}

export interface DiskReport {
  device: string
  flushes: number
  writes: number
  flushMeanMs: number
  writeMeanMs: number
  worstFlushWindowMs: number
  worstWriteWindowMs: number
  /** Windows whose mean flush took over 10 ms. */
  slowFlushWindows: number
  windowMs: number
}
