/**
 * The embedded PostgreSQL (src/db/embedded.ts, select.ts): data kept across restarts, clear
 * refusals when its directory or port is taken, and `bun run start` choosing it, reporting it
 * and stopping it last — also when start-up fails or is interrupted.
 * One cluster is initialised for the file (initdb takes seconds) and started several times.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts'
import { migrate } from '../../src/db/migrate.ts'
import { openDatabase, probe, redact } from '../../src/db/select.ts'
import { EmbeddedDatabaseError } from '../../src/errors.ts'
import { adminUrl, silentLog } from '../support/db.ts'
import { API_KEY, TOKEN_SECRET, api, testService, waitFor } from '../support/service.ts'

setDefaultTimeout(60_000)

const mainPath = join(import.meta.dir, '../../src/main.ts')
const dirs: string[] = []
const running = new Set<EmbeddedPostgres>()
const procs = new Set<ReturnType<typeof Bun.spawn>>()
let dataDir: string

async function tempDir() {
  // Left at mkdtemp's mode 700: as root the server runs in a user namespace as root's files' owner,
  // so it reaches directories no other user could (a CI checkout under mktemp -d is one).
  const dir = await mkdtemp(join(tmpdir(), 'pc-embedded-'))
  dirs.push(dir)
  return dir
}

async function start(dir = dataDir, port = 0) {
  const server = await startEmbeddedPostgres({ dataDir: dir, port, log: silentLog })
  running.add(server)
  return server
}

async function stop(server: EmbeddedPostgres) {
  await server.stop()
  running.delete(server)
}

const lockFile = (dir: string) => join(dir, 'postgres', 'postmaster.pid')
const lockPid = async (dir: string) => Number((await readFile(lockFile(dir), 'utf8')).split('\n')[0])
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

beforeAll(async () => {
  dataDir = await tempDir()
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL')
  for (const s of running) await s.stop()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

describe('embedded PostgreSQL', () => {
  test('the first start initialises the cluster; a restart keeps every shipment and event', async () => {
    let server = await start()
    expect(server.initialised).toBe(true)
    expect(server.version).toMatch(/^\d+\.\d+$/)
    let service = testService({ DATABASE_URL: server.url })
    await migrate(service.sql, silentLog)
    let call = api(service)

    const shipments: { id: string; carrier: string; trackingNumber: string }[] = []
    for (const [carrier, trackingNumber] of [
      ['dhl', 'EMB0001'],
      ['dpd', 'EMB0002'],
      ['gls', 'EMB0003']
    ] as const) {
      shipments.push((await call('POST', '/v1/shipments', { carrier, trackingNumber, reference: `order ${trackingNumber}` })).body)
    }
    const events = shipments.flatMap((s, i) =>
      ['info_received', 'in_transit', 'out_for_delivery', 'delivered'].slice(0, i + 2).map((status, n) => ({
        carrier: s.carrier,
        trackingNumber: s.trackingNumber,
        carrierStatus: status.toUpperCase(),
        status,
        occurredAt: `2026-11-2${n}T10:00:00.123+01:00`,
        location: `Hub ${n}`
      }))
    )
    const ingested = await call('POST', '/v1/events', { events })
    expect(ingested.status).toBe(200)
    expect(ingested.body.results.map((r: { outcome: string }) => r.outcome)).toEqual(events.map(() => 'inserted'))
    const snapshot = async () =>
      Promise.all(
        shipments.map(async (s) => ({
          shipment: (await call('GET', `/v1/shipments/${s.id}`)).body,
          events: (await call('GET', `/v1/shipments/${s.id}/events`)).body
        }))
      )
    const before = await snapshot()
    expect(before.map((b) => b.events.items.length)).toEqual([2, 3, 4])
    expect(before[2]!.shipment).toMatchObject({ status: 'delivered', lastSeq: 4 })

    await service.stop()
    await stop(server)
    expect(existsSync(lockFile(dataDir))).toBe(false)

    server = await start()
    expect(server.initialised).toBe(false)
    service = testService({ DATABASE_URL: server.url })
    call = api(service)
    expect(await snapshot()).toEqual(before)
    // The same history, not a copy of it: a repeat is a duplicate, a new scan takes the next seq.
    const again = await call('POST', '/v1/events', {
      events: [events[0], { ...events[0], carrierStatus: 'RETURNED', status: 'returned', occurredAt: '2026-11-29T10:00:00Z' }]
    })
    expect(again.body.results.map((r: { outcome: string; seq: number }) => [r.outcome, r.seq])).toEqual([
      ['duplicate', 1],
      ['inserted', 3]
    ])
    await service.stop()
    await stop(server)
  })

  test('restarted four times under 8 parallel ingests: calls meanwhile are 200 or 503, never hang, and ingest works after each restart', async () => {
    let server = await start()
    const port = server.port
    // The deadline (INGEST_TIMEOUT_MS) would heal a lost connection by itself; out of reach here.
    const service = testService({ DATABASE_URL: server.url, INGEST_TIMEOUT_MS: '120000', POLL_ENABLED: 'false' })
    const call = api(service)
    /** A call, or a failure naming it once `ms` have passed: an ingest waiting for a lost connection waits forever. */
    const within = <T>(ms: number, what: string, p: Promise<T>) =>
      Promise.race([p, Bun.sleep(ms).then(() => Promise.reject(new Error(`${what}: no answer within ${ms} ms; ingest hangs`)))])
    try {
      const tns = Array.from({ length: 8 }, (_, i) => `RESTART${i}`)
      for (const tn of tns) expect((await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })).status).toBeLessThan(300)
      let minute = 0
      const ev = (tn: string) => ({
        carrier: 'dhl',
        trackingNumber: tn,
        carrierStatus: 'transit',
        occurredAt: new Date(Date.UTC(2026, 10, 1) + ++minute * 60_000).toISOString()
      })
      for (let round = 1; round <= 4; round++) {
        let restarting = true
        const statuses: number[] = []
        const load = tns.map(async (tn) => {
          while (restarting) statuses.push((await within(15_000, `round ${round}, under the restart`, call('POST', '/v1/events', { events: [ev(tn)] }))).status)
        })
        await Bun.sleep(50)
        await stop(server)
        server = await start(dataDir, port)
        restarting = false
        await Promise.all(load)
        expect(
          statuses.filter((s) => s !== 200 && s !== 503),
          `round ${round}`
        ).toEqual([])
        const after = await Promise.all(tns.map((tn) => within(15_000, `round ${round}, after the restart`, call('POST', '/v1/events', { events: [ev(tn)] }))))
        expect(
          after.map((r) => r.status),
          `round ${round}`
        ).toEqual(tns.map(() => 200))
      }
    } finally {
      await service.stop()
      await stop(server)
    }
  })

  test('a data directory in use is refused, naming it and the server holding it', async () => {
    const server = await start()
    const err = await start().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EmbeddedDatabaseError)
    expect((err as Error).message).toContain(`the data directory ${server.dir} is in use by another PostgreSQL (pid ${server.pid})`)
    expect((err as Error).message).toContain('PARCELCAST_DATA_DIR')
    // The refused start left the running server alone.
    expect(await probe(server.url)).toBeNull()
    await stop(server)
  })

  test('a port in use is refused, naming the port and PARCELCAST_PG_PORT', async () => {
    const holder = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    try {
      const err = await start(dataDir, holder.port).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(EmbeddedDatabaseError)
      expect((err as Error).message).toContain(`port ${holder.port} on 127.0.0.1 is in use`)
      expect((err as Error).message).toContain('PARCELCAST_PG_PORT')
      expect(existsSync(lockFile(dataDir))).toBe(false)
    } finally {
      holder.stop(true)
    }
  })

  test('probe tells a server that refuses us from no server; logs never carry the password', async () => {
    const server = await start()
    const wrong = new URL(server.url)
    wrong.password = 'not-the-password'
    expect(await probe(wrong.toString())).toMatchObject({ answered: true, reason: expect.stringContaining('password authentication failed') })
    const gone = `postgres://postgres@127.0.0.1:${server.port}/postgres`
    await stop(server)
    expect(await probe(gone)).toMatchObject({ answered: false })
    expect(redact(server.url)).toBe(`postgres@127.0.0.1:${server.port}/postgres`)
    expect(server.url).toContain(':' + encodeURIComponent((await readFile(join(dataDir, 'postgres.password'), 'utf8')).trim()) + '@')
  })

  test('DATABASE=auto uses a server that lets us in, external', async () => {
    const db = await openDatabase({ DATABASE: 'auto', DATABASE_URL: adminUrl, PARCELCAST_DATA_DIR: dataDir, PARCELCAST_PG_PORT: 0 }, silentLog)
    expect(db).toMatchObject({ kind: 'external', url: adminUrl, label: redact(adminUrl) })
    await db.stop()
    expect(existsSync(lockFile(dataDir))).toBe(false)
  })
})

/** `bun run start` as a child process, its JSON log lines collected. */
function startMain(env: Record<string, string | undefined>) {
  const { DATABASE_URL: _, ...inherited } = process.env
  const proc = Bun.spawn([process.execPath, mainPath], {
    env: { ...inherited, API_KEYS: API_KEY, TOKEN_SECRET, LOG_LEVEL: 'info', PORT: '0', POLL_ENABLED: 'false', ...env },
    stdout: 'pipe',
    stderr: 'pipe'
  })
  procs.add(proc)
  const lines: { msg: string; [k: string]: unknown }[] = []
  void (async () => {
    let rest = ''
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split('\n')
      rest = parts.pop()!
      for (const p of parts) if (p.startsWith('{')) lines.push(JSON.parse(p))
    }
  })()
  const line = (what: string, pred: (l: (typeof lines)[number]) => boolean) =>
    waitFor(
      what,
      async () => {
        const found = lines.find(pred)
        if (!found && proc.exitCode !== null)
          throw new Error(`parcelcast exited (${proc.exitCode}) before ${what}: ${await new Response(proc.stderr).text()} ${JSON.stringify(lines)}`)
        return found
      },
      60_000
    )
  return { proc, lines, line }
}

describe('bun run start', () => {
  test('no server at DATABASE_URL with DATABASE=auto: embedded, said at start and in /readyz; SIGTERM stops PostgreSQL last', async () => {
    const main = startMain({
      DATABASE: 'auto',
      DATABASE_URL: 'postgres://postgres:secret@127.0.0.1:1/postgres',
      PARCELCAST_DATA_DIR: dataDir,
      PARCELCAST_PG_PORT: '0'
    })
    const listening = await main.line('listening', (l) => l.msg === 'parcelcast listening')
    const messages = main.lines.map((l) => l.msg)
    expect(messages.find((m) => m.startsWith('no PostgreSQL answers at'))).toStartWith('no PostgreSQL answers at postgres@127.0.0.1:1/postgres (')
    expect(messages).toContain(
      `using embedded PostgreSQL ${messages.join('').match(/PostgreSQL (\d+\.\d+) at/)?.[1]} at ${join(dataDir, 'postgres')}, 127.0.0.1:${main.lines.find((l) => l.database === 'embedded' && l.port)?.port} (kept from an earlier run)`
    )
    expect(JSON.stringify(main.lines)).not.toContain('secret')
    const ready = await (await fetch(`http://127.0.0.1:${listening.port}/readyz`)).json()
    expect(ready).toMatchObject({ db: 'up', database: 'embedded' })
    const pid = await lockPid(dataDir)
    expect(alive(pid)).toBe(true)

    main.proc.kill('SIGTERM')
    expect(await main.proc.exited).toBe(0)
    const order = main.lines.map((l) => l.msg).filter((m) => m === 'parcelcast stopped' || m === 'embedded PostgreSQL stopped')
    expect(order).toEqual(['parcelcast stopped', 'embedded PostgreSQL stopped'])
    expect(existsSync(lockFile(dataDir))).toBe(false)
    expect(alive(pid)).toBe(false)
  })

  test('a start-up that fails after the database started stops the database', async () => {
    const holder = Bun.listen({ hostname: '0.0.0.0', port: 0, socket: { data() {} } })
    try {
      const main = startMain({ DATABASE: 'embedded', PARCELCAST_DATA_DIR: dataDir, PARCELCAST_PG_PORT: '0', PORT: String(holder.port) })
      expect(await main.proc.exited).toBe(1)
      expect(main.lines.map((l) => l.msg)).toContain('embedded PostgreSQL stopped')
      expect(main.lines.find((l) => l.level === 60)?.msg).toStartWith('start-up failed:')
      expect(existsSync(lockFile(dataDir))).toBe(false)
    } finally {
      holder.stop(true)
    }
  })

  test('SIGTERM during the first start (initdb) ends with nothing left running', async () => {
    const fresh = await tempDir()
    const main = startMain({ DATABASE: 'embedded', PARCELCAST_DATA_DIR: fresh, PARCELCAST_PG_PORT: '0' })
    await main.line('initialising', (l) => l.msg.startsWith('initialising a new PostgreSQL cluster'))
    main.proc.kill('SIGTERM')
    expect(await main.proc.exited).toBe(0)
    expect(existsSync(lockFile(fresh))).toBe(false)
    expect(Bun.spawnSync(['pgrep', '-f', join(fresh, 'postgres')]).exitCode).toBe(1)
  })

  test('a database that dies under the service is logged and turns /readyz not_ready; the next start recovers it', async () => {
    const main = startMain({ DATABASE: 'embedded', PARCELCAST_DATA_DIR: dataDir, PARCELCAST_PG_PORT: '0' })
    const listening = await main.line('listening', (l) => l.msg === 'parcelcast listening')
    process.kill(await lockPid(dataDir), 'SIGKILL')
    const died = await main.line('the exit logged', (l) => l.msg === 'embedded PostgreSQL exited while parcelcast was using it')
    expect(died).toMatchObject({ level: 50, signal: 'SIGKILL' })
    const ready = await fetch(`http://127.0.0.1:${listening.port}/readyz`)
    expect(ready.status).toBe(503)
    expect(await ready.json()).toMatchObject({ status: 'not_ready', db: 'down', database: 'embedded' })
    main.proc.kill('SIGTERM')
    expect(await main.proc.exited).toBe(0)
    const server = await start()
    expect(server.initialised).toBe(false)
    expect(await probe(server.url)).toBeNull()
    await stop(server)
  })

  // setpriv (util-linux) gives the server a parent-death signal; without it the next start names the leftover.
  test.skipIf(process.platform !== 'linux' || !Bun.which('setpriv'))(
    'parcelcast killed with SIGKILL: its PostgreSQL shuts down too, and the next start works',
    async () => {
      const main = startMain({ DATABASE: 'embedded', PARCELCAST_DATA_DIR: dataDir, PARCELCAST_PG_PORT: '0' })
      await main.line('listening', (l) => l.msg === 'parcelcast listening')
      const pid = await lockPid(dataDir)
      main.proc.kill('SIGKILL')
      await main.proc.exited
      await waitFor('the orphaned PostgreSQL to shut down', () => !alive(pid) && !existsSync(lockFile(dataDir)), 30_000)
      const server = await start()
      expect(server.initialised).toBe(false)
      await stop(server)
    }
  )

  test('DATABASE=embedded beside DATABASE_URL is a configuration error naming both', async () => {
    const main = startMain({ DATABASE: 'embedded', DATABASE_URL: adminUrl })
    expect(await main.proc.exited).toBe(2)
    expect(await new Response(main.proc.stderr).text()).toContain('DATABASE=embedded runs its own server, so DATABASE_URL must be unset')
  })
})
